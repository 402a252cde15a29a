"""The gates' shared vocabulary: what a gate reads, its labels, its prompt, its defaults."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_NEGATIVES_PER_POSITIVE",
    "DEFAULT_REFUSAL",
    "DEFAULT_THRESHOLD_MARGIN",
    "DEFAULT_TOPIC",
    "DEFAULT_WITHHELD",
    "DISCRIMINATOR_SYSTEM_PROMPT",
    "MAX_SEED",
    "MIN_HELDOUT_PER_CLASS",
    "OFF_TOPIC_LABEL",
    "ON_TOPIC_LABEL",
    "Gate",
    "GuardOutcome",
    "NegativeSource",
]

Gate = Literal["question", "answer"]
"""What a discriminator reads: the question alone, or the question and the answer."""

GuardOutcome = Literal["passed", "refused_question", "withheld_answer"]
"""What a :class:`GuardedChatModel` did with one question."""

ON_TOPIC_LABEL = "yes"
"""Label of on-topic examples: one token in both o200k_base and cl100k_base."""

OFF_TOPIC_LABEL = "no"
"""Label of off-topic examples: one token in both o200k_base and cl100k_base."""

DISCRIMINATOR_SYSTEM_PROMPT = (
    "You decide whether the user's text is on topic for this company's QA chatbot. "
    f"Reply with one word: {ON_TOPIC_LABEL} or {OFF_TOPIC_LABEL}."
)
"""System message of every discriminator example (and of every check)."""

DEFAULT_HELDOUT_FRACTION = 0.2
"""Share of each class kept out of training to choose the threshold and report on."""

DEFAULT_MAX_NEGATIVES_PER_POSITIVE = 4.0
"""Most off-topic examples kept per on-topic one. Bank questions beyond it are left out
(a seeded choice, counted as ``dropped["capped"]``); your own negatives are always kept.
Without a cap, a handful of QA pairs against the ~100-question bank would train a gate
that says "no" to almost everything and still looks accurate."""

DEFAULT_THRESHOLD_MARGIN = 0.05
"""How far above the highest held-out off-topic score a threshold chosen on held-out
rephrasings is kept when it is lowered towards the off-topic side (see
:meth:`Discriminator.train`)."""

MIN_HELDOUT_PER_CLASS = 10
"""Fewer held-out inputs than this in a class make a :class:`GateReport` carry a warning:
precision, recall and the threshold chosen from them rest on too few examples."""

MAX_SEED = 2_147_483_647
"""Largest seed of a split (and of the fine-tuning job, whose API takes 0 to 2**31 - 1)."""

DEFAULT_REFUSAL = "Sorry, I can only answer questions about {topic}."
"""What :class:`GuardedChatModel` says to an off-topic question (``{topic}`` filled in)."""

DEFAULT_WITHHELD = (
    "Sorry, I don't have a reliable answer to that. I can help with questions about {topic}."
)
"""What :class:`GuardedChatModel` says instead of an off-topic answer."""

DEFAULT_TOPIC = "our website"

NegativeSource = Literal["bank", "user", "near_miss"]
