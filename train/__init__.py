"""``ssrl-train``: teach the embedded SmolLM2-135M-Instruct the SSRL protocol, from the embedded corpus.

corpus -> questions (qa.py) -> article-level splits (splits.py) -> trajectories in the served format
(trajectories.py) -> LoRA fine-tuning (trainer.py) -> adapter + model card (card.py).
"""
