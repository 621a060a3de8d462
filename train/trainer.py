"""LoRA fine-tuning of the embedded model on trajectories, on CPU or GPU.

Loss only on what the model writes (prompt and injected results masked, as in Search-R1), logits
computed only at those positions, batches grouped by length under a token cap, bf16 autocast where
the hardware runs it (a GPU, or a CPU with AVX-512; on an AVX2-only CPU bf16 matrix products are
emulated: measured 7.1 s against 13 ms in fp32 for a 512x576x1536 product, so it trains in fp32),
resumable checkpoints, a bounded run time, a JSONL log and a loss-curve PNG.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from train.trajectories import Trajectory

logger = logging.getLogger(__name__)

IGNORE = -100
#: Micro-batches of several sequences are padded to a multiple of this width, so CPU kernels and the
#: allocator see a few distinct shapes rather than one per batch. (One sequence needs no padding.)
WIDTH_MULTIPLE = 64
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
END_OF_TURN = "<|im_end|>"
BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 8
    max_batch_tokens: int = 6144
    #: Sequences per forward/backward pass; a step accumulates the gradients of its micro-batches.
    #: One (the default) needs no padding mask, so attention runs the causal kernel that never
    #: materialises the T x T matrix: measured here, 20 s instead of 35 s for a step of 8 x 560
    #: tokens, and 2.6 GB resident instead of 11 GB and growing.
    #: Unset: 1 on CPU, the whole step on a GPU (there one padded pass is ~6x faster than eight:
    #: measured on an H100, 0.37 s instead of 2.4 s a step).
    micro_batch: int | None = None
    max_length: int = 1536
    lr: float = 4e-4
    warmup: int = 10
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    seed: int = 0
    max_minutes: float | None = None
    #: Stop (and save) at this step while keeping the schedule of ``steps``: a snapshot of a run.
    stop_at: int | None = None
    save_every: int = 25
    threads: int | None = None
    #: An adapter to start from (a later round goes on from the earlier round's weights).
    init_adapter: Path | None = None
    #: Loss weight of the tokens that state the answer (the reasoning's last naming of it and the
    #: ``<answer>`` text; ``answer_spans``), against 1 for every other trained token.
    answer_weight: float = 1.0


@dataclass(frozen=True)
class Example:
    ids: list[int]
    labels: list[int]
    #: Tokens of the chat-templated prompt (what the server's max_tokens does not count).
    prompt_length: int = 0
    #: Loss weight per position (aligned with ``labels``); empty = 1 everywhere.
    weights: tuple[float, ...] = ()


def answer_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` that state its answer: the text of ``<answer> ... </answer>`` and
    the reasoning's last naming of that answer outside a quotation ("... So the answer is Accra.").
    Those tokens carry the choice of the span; the rest of a trajectory is format and copying."""
    opened = text.rfind("<answer>")
    closed = text.find("</answer>", opened)
    if opened < 0 or closed < 0:
        return []
    start, end = opened + len("<answer>"), closed
    answer = text[start:end].strip()
    if not answer:
        return []
    start = text.index(answer, start)
    spans = [(start, start + len(answer))]
    think = text.rfind("</think>", 0, opened)
    found = text.lower().rfind(answer.lower(), 0, think if think >= 0 else opened)
    if found >= 0 and text.count('"', 0, found) % 2 == 0:  # not inside a quotation
        spans.insert(0, (found, found + len(answer)))
    return spans


def _weighted_pieces(text: str, tokenizer: Any, weight: float) -> tuple[list[int], list[float]]:
    """Token ids of ``text`` (as ``tokenizer.encode`` makes them) and a weight each: ``weight`` for
    the tokens that overlap ``answer_spans``, else 1."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = answer_spans(text)
    weights = [
        weight if any(a < span_end and b > span_start for span_start, span_end in spans) else 1.0
        for a, b in encoded["offset_mapping"]
    ]
    return list(encoded["input_ids"]), weights


def tokenize(trajectory: Trajectory, tokenizer: Any, answer_weight: float = 1.0) -> Example:
    """Token ids as the server builds them: the chat-templated prompt, then each piece of the
    trajectory encoded on its own (the loop encodes injected text separately), then end of turn.
    With ``answer_weight`` other than 1, the tokens that state the answer of a trajectory that
    read it from results (not a chat turn) weigh that much in the loss."""
    prompt = tokenizer.apply_chat_template(trajectory.messages, add_generation_prompt=True, tokenize=False)
    ids = list(tokenizer.encode(prompt, add_special_tokens=False))
    labels = [IGNORE] * len(ids)
    weights = [1.0] * len(ids)
    prompt_length = len(ids)
    weigh = answer_weight != 1.0 and trajectory.kind != "chat"
    for segment in trajectory.segments:
        if weigh and segment.trained:
            piece, piece_weights = _weighted_pieces(segment.text, tokenizer, answer_weight)
        else:
            piece = list(tokenizer.encode(segment.text, add_special_tokens=False))
            piece_weights = [1.0] * len(piece)
        ids += piece
        labels += piece if segment.trained else [IGNORE] * len(piece)
        weights += piece_weights
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end, int) and end >= 0:
        ids.append(end)
        labels.append(end)
        weights.append(1.0)
    return Example(ids, labels, prompt_length, tuple(weights) if weigh else ())


def make_batches(examples: list[Example], config: TrainConfig, rng: random.Random) -> list[list[int]]:
    """Indices grouped by length (little padding), each batch under the token cap, in random order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([len(examples[j].ids) for j in current] + [len(examples[i].ids)])
        if current and (
            len(current) >= config.batch_size or longest * (len(current) + 1) > config.max_batch_tokens
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def lr_at(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Trainer:
    def __init__(self, base_dir: Path, out: Path, config: TrainConfig) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.torch = torch
        self.config = config
        self.out = out
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.micro_batch = config.micro_batch or (config.batch_size if self.device == "cuda" else 1)
        #: bf16 autocast where the hardware runs bf16 products natively (see the module's docstring).
        self.bf16 = self.device == "cuda" or "AVX512" in torch.backends.cpu.get_cpu_capability()
        self.tokenizer = AutoTokenizer.from_pretrained(base_dir)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(self.device)
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=TARGET_MODULES,
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(base, lora)
        if config.init_adapter is not None:
            self._load_adapter(config.init_adapter)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        self.step = 0

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint"

    def save_checkpoint(self) -> None:
        from peft import get_peft_model_state_dict

        work = self.out / "checkpoint.tmp"
        work.mkdir(parents=True, exist_ok=True)
        self.torch.save(
            {
                "adapter": get_peft_model_state_dict(self.model),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "torch_rng": self.torch.get_rng_state(),
            },
            work / "state.pt",
        )
        if self.checkpoint.exists():
            for child in self.checkpoint.iterdir():
                child.unlink()
            self.checkpoint.rmdir()
        work.rename(self.checkpoint)

    def _load_adapter(self, adapter: Path) -> None:
        """Start from an earlier adapter's weights (its rank must be this run's)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(adapter / "adapter_model.safetensors"))
        state = {k: v.to(self.torch.float32) for k, v in weights.items()}
        result = set_peft_model_state_dict(self.model, state)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing:
            raise ValueError(f"{adapter} does not fit this run's LoRA layers: {missing[:3]} ...")
        logger.info("starting from the adapter in %s", adapter)

    def resume(self) -> bool:
        from peft import set_peft_model_state_dict

        state_file = self.checkpoint / "state.pt"
        if not state_file.is_file():
            return False
        state = self.torch.load(state_file, map_location=self.device, weights_only=False)
        set_peft_model_state_dict(self.model, state["adapter"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        log = self.out / "train_log.jsonl"
        if log.is_file():  # steps logged after the checkpoint are run again: drop their rows
            rows = [r for r in read_log(log) if r["step"] <= self.step]
            log.write_text("".join(json.dumps(r) + "\n" for r in rows))
        logger.info("resumed from step %d", self.step)
        return True

    # -- training ------------------------------------------------------------------------------
    def _loss(self, batch: list[Example]) -> tuple[Any, Any]:
        """Summed cross-entropy over the trained positions of ``batch``: as weighted by the
        examples' ``weights`` (what is trained on), and plain (what the log reports)."""
        torch = self.torch
        longest = max(len(e.ids) for e in batch)
        # One sequence needs no padding and no mask: attention then takes the causal kernel, which
        # never materialises the T x T matrix.
        width = longest if len(batch) == 1 else -(-longest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([e.ids + [pad] * (width - len(e.ids)) for e in batch], device=self.device)
        labels = torch.tensor(
            [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch], device=self.device
        )
        mask = torch.tensor(
            [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in batch], device=self.device
        )
        inner = self.model.get_base_model()
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            hidden = inner.model(
                input_ids=ids, attention_mask=None if len(batch) == 1 else mask
            ).last_hidden_state
            targets = labels[:, 1:]
            keep = targets != IGNORE
            logits = inner.lm_head(hidden[:, :-1][keep])  # only where the model is trained
        losses = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="none")
        if not any(e.weights for e in batch):
            total = losses.sum()
            return total, total
        weights = torch.tensor(
            [list(e.weights or [1.0] * len(e.ids)) + [1.0] * (width - len(e.ids)) for e in batch],
            device=self.device,
        )[:, 1:][keep]
        return (losses * weights).sum(), losses.sum()

    def _micro_batches(self, batch: list[Example]) -> list[list[Example]]:
        ordered = sorted(batch, key=lambda e: len(e.ids))
        size = self.micro_batch
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    def _step(self, batch: list[Example]) -> float:
        """One optimizer step over ``batch``, in micro-batches; the mean loss per trained token."""
        trained = sum(sum(label != IGNORE for label in e.labels[1:]) for e in batch)
        total = 0.0
        for micro in self._micro_batches(batch):
            loss, plain = self._loss(micro)
            (loss / trained).backward()
            total += float(plain.item())
            del loss, plain
        return total / trained

    def train(self, examples: list[Example]) -> dict[str, Any]:
        config = self.config
        batches = make_batches(examples, config, random.Random(config.seed))
        log_path = self.out / "train_log.jsonl"
        started = time.monotonic()
        stopped_early = False
        self.model.train()
        progress = tqdm(total=config.steps, initial=self.step, desc="training", unit="step")
        with log_path.open("a", encoding="utf-8") as log:
            while self.step < min(config.steps, config.stop_at or config.steps):
                if config.max_minutes is not None and time.monotonic() - started > config.max_minutes * 60:
                    stopped_early = True
                    logger.warning("time limit of %.0f min reached at step %d", config.max_minutes, self.step)
                    break
                batch = [examples[i] for i in batches[self.step % len(batches)]]
                lr = lr_at(self.step, config)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                t0 = time.monotonic()
                loss = self._step(batch)
                self.torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], 1.0
                )
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                row = {
                    "step": self.step,
                    "loss": round(loss, 5),
                    "lr": lr,
                    "sequences": len(batch),
                    "tokens": sum(len(e.ids) for e in batch),
                    "seconds": round(time.monotonic() - t0, 2),
                    "rss_mb": _rss_mb(),
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                progress.set_postfix(loss=f"{row['loss']:.3f}")
                progress.update(1)
                if self.step % config.save_every == 0:
                    self.save_checkpoint()
        progress.close()
        self.save_checkpoint()
        return {
            "steps": self.step,
            "stopped_early": stopped_early,
            "epochs": round(self.step / len(batches), 2),
            "precision": "bf16 autocast" if self.bf16 else "fp32",
        }

    def save_adapter(self, target: Path) -> None:
        """The adapter in bf16 (about 10 MB), as peft writes it."""
        for param in self.model.parameters():
            if param.requires_grad:
                param.data = param.data.to(self.torch.bfloat16)
        # The base as published, not this machine's cache path (the service merges into its own copy).
        self.model.peft_config["default"].base_model_name_or_path = BASE_HUB_ID
        self.model.save_pretrained(target)


def _rss_mb() -> int | None:
    """Resident memory of this process (Linux), logged per step to catch growth early."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * 4096 // 2**20


def read_log(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_loss(log: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log]
    losses = [r["loss"] for r in log]
    window = 10
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, losses, alpha=0.3, label="loss per step")
    ax.plot(steps, smooth, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy on model-written tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
