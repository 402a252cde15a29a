"""On-topic discriminators and a guarded chat model.

A model fine-tuned on a company's QA pairs answers "What is Star Wars?" as happily as a
question about the company. The fix the seed tutorial announces is a *discriminator*: a
small classifier fine-tune that says whether a question (or a question and its answer)
is on topic. This module builds one, provider-neutral:

* :class:`DiscriminatorData` makes its chat training examples: the QA pairs' questions
  (or question + answer) are the positives; the negatives are a built-in bank of varied
  off-topic questions (:data:`OFF_TOPIC_TRAINING_QUESTIONS`), the user's own, and, for the
  answer gate, the QA model's own fluent answers to those unrelated questions, since those
  are exactly what the answer gate must catch. Every example has the fixed system prompt
  :data:`DISCRIMINATOR_SYSTEM_PROMPT` and a one-token label, :data:`ON_TOPIC_LABEL` or
  :data:`OFF_TOPIC_LABEL`. A seeded split keeps a held-out share (no question on both
  sides) to choose the decision threshold and report precision and recall;
* :class:`Discriminator` trains one (:meth:`Discriminator.train`: write JSONL, run a
  :class:`~finetune_qa.jobs.FineTuneJob`, choose the threshold on the held-out split) or
  loads one, and :meth:`~Discriminator.check` returns a :class:`Verdict` whose probability
  comes from the label's log-probability when the provider gives it;
* :class:`GuardedChatModel` puts a question gate in front of a
  :class:`~finetune_qa.chat.ChatModel` (an off-topic question gets a refusal, and the QA
  model is not called) and an answer gate behind it (an off-topic answer is withheld), with
  ChatModel's call shape, so evaluation code can run either.

Everything runs on the offline backend, whose fine-tunes trained on labels answer with
labels and log-probabilities (see :mod:`finetune_qa.backends._fake._answers`).

Example:
    >>> scores_on, scores_off = [0.97, 0.8, 0.35], [0.02, 0.3, 0.05]
    >>> choose_threshold(scores_on, scores_off)
    0.325
    >>> gate_report(scores_on, scores_off, threshold=0.325).f1
    1.0

The package's modules, along the way a gate is made and used: ``_common`` (labels,
prompt, defaults), ``_bank`` (built-in negatives), ``_data`` (labelled examples and
their split), ``_verdicts`` (probabilities, held-out reports, thresholds),
``_discriminator`` (train, save, load, check) and ``_guarded`` (the guarded model).
"""

from __future__ import annotations

from finetune_qa.guardrails._bank import (
    NEAR_MISS_QUESTIONS,
    OFF_TOPIC_TRAINING_QUESTIONS,
    company_name,
    company_swaps,
)
from finetune_qa.guardrails._common import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
    DEFAULT_REFUSAL,
    DEFAULT_THRESHOLD_MARGIN,
    DEFAULT_WITHHELD,
    DISCRIMINATOR_SYSTEM_PROMPT,
    MAX_SEED,
    MIN_HELDOUT_PER_CLASS,
    OFF_TOPIC_LABEL,
    ON_TOPIC_LABEL,
    Gate,
    GuardOutcome,
)
from finetune_qa.guardrails._data import DataCounts, DiscriminatorData, GateExample, gate_input
from finetune_qa.guardrails._discriminator import Discriminator, DiscriminatorSettings
from finetune_qa.guardrails._guarded import GuardedAnswer, GuardedChatModel
from finetune_qa.guardrails._verdicts import (
    GateReport,
    Verdict,
    choose_threshold,
    gate_report,
    probability_from_logprobs,
)

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_NEGATIVES_PER_POSITIVE",
    "DEFAULT_REFUSAL",
    "DEFAULT_THRESHOLD_MARGIN",
    "DEFAULT_WITHHELD",
    "DISCRIMINATOR_SYSTEM_PROMPT",
    "MAX_SEED",
    "MIN_HELDOUT_PER_CLASS",
    "NEAR_MISS_QUESTIONS",
    "OFF_TOPIC_LABEL",
    "OFF_TOPIC_TRAINING_QUESTIONS",
    "ON_TOPIC_LABEL",
    "DataCounts",
    "Discriminator",
    "DiscriminatorData",
    "DiscriminatorSettings",
    "Gate",
    "GateExample",
    "GateReport",
    "GuardOutcome",
    "GuardedAnswer",
    "GuardedChatModel",
    "Verdict",
    "choose_threshold",
    "company_name",
    "company_swaps",
    "gate_input",
    "gate_report",
    "probability_from_logprobs",
]
