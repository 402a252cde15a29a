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
labels and log-probabilities (see :mod:`finetune_qa.backends._answers`).

Example:
    >>> scores_on, scores_off = [0.97, 0.8, 0.35], [0.02, 0.3, 0.05]
    >>> choose_threshold(scores_on, scores_off)
    0.325
    >>> gate_report(scores_on, scores_off, threshold=0.325).f1
    1.0
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa._text import key_hash, question_key
from finetune_qa.backends import get_backend
from finetune_qa.backends.base import Backend, Usage
from finetune_qa.chat import Answer, BatchItem, ChatModel, _check_question, _check_questions
from finetune_qa.config import DEFAULT_MODEL, MIN_TRAINING_EXAMPLES
from finetune_qa.data import Message, QAPair, TrainingExample
from finetune_qa.exceptions import BackendError, DatasetError, InputFileError, UsageError
from finetune_qa.jobs import FineTuneJob, Journal

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_NEGATIVES_PER_POSITIVE",
    "DEFAULT_REFUSAL",
    "DEFAULT_WITHHELD",
    "DISCRIMINATOR_SYSTEM_PROMPT",
    "MAX_SEED",
    "MIN_HELDOUT_PER_CLASS",
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
    "gate_input",
    "gate_report",
    "probability_from_logprobs",
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

logger = logging.getLogger(__name__)

DEFAULT_HELDOUT_FRACTION = 0.2
"""Share of each class kept out of training to choose the threshold and report on."""

DEFAULT_MAX_NEGATIVES_PER_POSITIVE = 4.0
"""Most off-topic examples kept per on-topic one. Bank questions beyond it are left out
(a seeded choice, counted as ``dropped["capped"]``); your own negatives are always kept.
Without a cap, a handful of QA pairs against the ~100-question bank would train a gate
that says "no" to almost everything and still looks accurate."""

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

NegativeSource = Literal["bank", "user"]

# The discriminator's negatives. finetune_qa.evaluation has its own, separate bank of
# unrelated questions for evaluation suites, so a guard is never scored on its training data.
OFF_TOPIC_TRAINING_QUESTIONS: tuple[str, ...] = (
    # pop culture
    "Who wrote the Odyssey?",
    "Who directed the movie Jaws?",
    "How many Harry Potter books are there?",
    "Who is the lead singer of Coldplay?",
    "What is the plot of The Lord of the Rings?",
    "Which actor played Iron Man?",
    "When did the Beatles break up?",
    "What is the most watched series on Netflix?",
    "Who won the Eurovision Song Contest in 1974?",
    "What is anime?",
    # history and geography
    "When did the Roman Empire fall?",
    "Who was the first president of the United States?",
    "What is the largest desert on Earth?",
    "How deep is the Mariana Trench?",
    "Which river flows through Cairo?",
    "Why did the Titanic sink?",
    "What was the Cold War?",
    "How tall is Mount Kilimanjaro?",
    "Which countries border Switzerland?",
    "Who built the pyramids of Giza?",
    # science and nature
    "How do I descale a kettle?",
    "How do black holes form?",
    "How do magnets work?",
    "How far away is the Moon?",
    "At what temperature does water boil on a mountain?",
    "How do vaccines train the immune system?",
    "Why do dogs wag their tails?",
    "What causes earthquakes?",
    "How many teeth does an adult have?",
    "What is quantum entanglement?",
    # cooking and food
    "How do I make sourdough bread?",
    "How do I make risotto?",
    "How do I poach an egg?",
    "What is a good recipe for lasagne?",
    "Which wine goes with salmon?",
    "How do you make guacamole?",
    "Is olive oil good for frying?",
    "What spices are in garam masala?",
    # sport
    "Who won the last football World Cup?",
    "How many players are on a basketball team?",
    "What are the rules of cricket?",
    "Who holds the marathon world record?",
    "When are the next Olympic Games?",
    "How does scoring work in tennis?",
    "Which team has won the most Tour de France stages?",
    # travel
    "What should I see in Rome in three days?",
    "Do I need a visa to visit Japan?",
    "What is the cheapest time to fly to New York?",
    "Which Greek island has the best beaches?",
    "How do I get from the airport to central London?",
    "Is it safe to travel to Iceland in winter?",
    # code and computing
    "How do I read a CSV file in R?",
    "What is the difference between TCP and UDP?",
    "How do I exit vim?",
    "What does a Kubernetes pod do?",
    "What is a JavaScript closure?",
    "What is a segmentation fault?",
    "Which is faster, Rust or Go?",
    "How do I undo the last git commit?",
    # finance and economics
    "Should I buy Bitcoin?",
    "What is inflation?",
    "How do index funds work?",
    "What is a good credit score?",
    "How are mortgage interest rates set?",
    "What is the stock price of Tesla?",
    # health
    "How much water should I drink a day?",
    "What are the symptoms of the flu?",
    "How can I sleep better?",
    "Is coffee bad for your heart?",
    "How many calories does running burn?",
    "What is a normal resting heart rate?",
    # everyday life, language, misc
    "How do I remove a red wine stain?",
    "What is stoicism?",
    "Tell me a joke about penguins.",
    "Write a poem about autumn leaves.",
    "How do I train my puppy to sit?",
    "What is the weather like in Paris tomorrow?",
    "How do you say thank you in Japanese?",
    "What rhymes with orange?",
    "How do I jump-start a car battery?",
    "What is the tallest building in the world?",
    "How many legs does a spider have?",
    "Who designed the Eiffel Tower?",
    "Can you recommend a good science fiction novel?",
    "What is the best way to learn the guitar?",
    "When should I plant garlic?",
    "Why do we dream?",
    "What time is it in Sydney?",
    "Translate hello into Spanish.",
    "What is the difference between a crocodile and an alligator?",
    "How do I knit a scarf?",
    "What is the population of Brazil?",
    "Who painted The Starry Night?",
    "How do hot air balloons fly?",
    "What is chess notation?",
    "How do I write a cover letter?",
    "Which planet has the most moons?",
)
"""Varied off-topic questions (trivia, pop culture, science, cooking, sport, travel, code,
finance, health, everyday life): the discriminator's built-in negatives. Separate from
the unrelated questions of :mod:`finetune_qa.evaluation`, which are for scoring."""


# =============================================================================== data


def gate_input(gate: Gate, question: str, answer: str | None = None) -> str:
    """The user message a discriminator of ``gate`` reads.

    The question gate reads the question; the answer gate reads two lines,
    ``Question: ...`` and ``Answer: ...``.

    Raises:
        UsageError: a blank question, or the answer gate without an answer.

    Example:
        >>> print(gate_input("answer", "What is Acme?", "Acme makes anvils."))
        Question: What is Acme?
        Answer: Acme makes anvils.
    """
    q = question.strip() if isinstance(question, str) else ""
    if not q:
        raise UsageError(f"a question to check must be a non-empty string, got {question!r}")
    if gate == "question":
        return q
    if gate != "answer":
        raise UsageError(f"gate must be 'question' or 'answer', got {gate!r}")
    a = answer.strip() if isinstance(answer, str) else ""
    if not a:
        raise UsageError(
            f"the answer gate checks a question *and* its answer; got answer={answer!r} for {q!r}"
        )
    return f"Question: {q}\nAnswer: {a}"


class GateExample(BaseModel):
    """One labelled discriminator input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(description="The question (the split and duplicate key).")
    answer: str | None = Field(default=None, description="The answer (answer gate only).")
    on_topic: bool = Field(description="True for positives (QA pairs), False for negatives.")
    source: Literal["pairs", "bank", "user"] = Field(
        description="Where it came from: the QA pairs, the built-in bank or the user's negatives."
    )

    def text(self, gate: Gate) -> str:
        """The user message for ``gate`` (see :func:`gate_input`)."""
        return gate_input(gate, self.question, self.answer)

    def training_example(self, gate: Gate) -> TrainingExample:
        """The chat example: fixed system prompt, the input, the one-token label."""
        return TrainingExample(
            messages=[
                Message(role="system", content=DISCRIMINATOR_SYSTEM_PROMPT),
                Message(role="user", content=self.text(gate)),
                Message(
                    role="assistant", content=ON_TOPIC_LABEL if self.on_topic else OFF_TOPIC_LABEL
                ),
            ]
        )


class DataCounts(BaseModel):
    """What went into a discriminator's data, what was dropped and why, and the split."""

    model_config = ConfigDict(extra="forbid")

    gate: Gate = Field(description="The gate the data is for.")
    pairs_read: int = Field(description="QA pairs given (the positives' source).")
    negatives_read: dict[str, int] = Field(description="Negatives given, by source.")
    positives: int = Field(description="Positive examples kept.")
    negatives: dict[str, int] = Field(description="Negative examples kept, by source.")
    dropped: dict[str, int] = Field(
        description=(
            "Inputs not used, by reason: duplicate_positive, duplicate_negative, "
            "conflict (a negative that is one of the QA questions), capped (a bank "
            "question beyond max_negatives_per_positive x positives), unanswered (the QA "
            "model failed to answer a negative, answer gate)."
        )
    )
    train_on_topic: int = Field(description="Positives in the training split.")
    train_off_topic: int = Field(description="Negatives in the training split.")
    heldout_on_topic: int = Field(description="Positives held out.")
    heldout_off_topic: int = Field(description="Negatives held out.")
    seed: int = Field(description="Seed of the split.")
    heldout_fraction: float = Field(description="Share of each class held out.")

    @property
    def reconciles(self) -> bool:
        """True when read = kept + dropped and kept = train + held out."""
        kept = self.positives + sum(self.negatives.values())
        read = self.pairs_read + sum(self.negatives_read.values())
        split = (
            self.train_on_topic + self.train_off_topic + self.heldout_on_topic
            + self.heldout_off_topic
        )  # fmt: skip
        return read == kept + sum(self.dropped.values()) and kept == split

    def to_text(self) -> str:
        """A few lines for a terminal."""
        neg = ", ".join(f"{k} {v}" for k, v in sorted(self.negatives.items()))
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()) if v) or "none"
        return "\n".join(
            [
                f"{self.gate} gate: {self.positives} on-topic, "
                f"{sum(self.negatives.values())} off-topic ({neg}); dropped: {dropped}",
                f"train {self.train_on_topic} on / {self.train_off_topic} off; held out "
                f"{self.heldout_on_topic} on / {self.heldout_off_topic} off "
                f"({'reconciles' if self.reconciles else 'DOES NOT RECONCILE'})",
            ]
        )


NegativeInput = str | QAPair | tuple[str, str]
PairInput = QAPair | tuple[str, str]


def _as_pair(item: PairInput, what: str, i: int) -> QAPair:
    if isinstance(item, QAPair):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        try:
            return QAPair(question=item[0], answer=item[1])
        except ValidationError:
            pass
    raise UsageError(f"{what} {i} must be a QAPair or a (question, answer) tuple, got {item!r}")


class DiscriminatorData:
    """A discriminator's labelled examples, split into train and held out, with counts.

    Build it with :meth:`build`; write the JSONL with :meth:`write`.

    Attributes:
        gate: ``"question"`` or ``"answer"``.
        train: the training examples.
        heldout: the held-out examples (never trained on).
        counts: what was read, kept, dropped and split.
    """

    def __init__(
        self,
        gate: Gate,
        train: list[GateExample],
        heldout: list[GateExample],
        counts: DataCounts,
    ) -> None:
        self.gate = gate
        self.train = train
        self.heldout = heldout
        self.counts = counts

    def __repr__(self) -> str:
        return (
            f"DiscriminatorData(gate={self.gate!r}, train={len(self.train)}, "
            f"heldout={len(self.heldout)})"
        )

    @classmethod
    def build(
        cls,
        pairs: Iterable[PairInput],
        *,
        gate: Gate = "question",
        negatives: Iterable[NegativeInput] = (),
        bank: Sequence[str] = OFF_TOPIC_TRAINING_QUESTIONS,
        qa_model: ChatModel | GuardedChatModel | None = None,
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        seed: int = 0,
        concurrency: int | None = None,
        max_negatives_per_positive: float | None = DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
    ) -> DiscriminatorData:
        """Label, deduplicate and split the examples.

        Args:
            pairs: the on-topic QA pairs (``QAPair`` or ``(question, answer)``).
            gate: ``"question"`` (inputs: questions) or ``"answer"`` (question + answer).
            negatives: your own off-topic questions (strings), or off-topic
                ``(question, answer)`` pairs for the answer gate.
            bank: built-in off-topic questions (``()`` for none).
            qa_model: the QA model whose answers to the off-topic questions become the
                answer gate's negatives (asked with ``ask_many``); required for the answer
                gate when there are off-topic questions without answers.
            heldout_fraction: share of each class held out, 0 to 0.5. With 2 or more
                examples in a class at least one is held out (when the fraction is > 0).
            seed: seed of the split (same seed, same split), 0 to :data:`MAX_SEED`.
            concurrency: questions in flight when asking ``qa_model``.
            max_negatives_per_positive: most off-topic examples per on-topic one (at
                least 1; ``None``: no cap). Bank questions beyond it are left out, a
                seeded choice counted as ``dropped["capped"]``; your own ``negatives``
                are always kept. With the answer gate the left-out ones are not asked.

        Raises:
            UsageError: a bad argument, or the answer gate without ``qa_model``.
            DatasetError: no positives or no negatives left.
        """
        if gate not in ("question", "answer"):
            raise UsageError(f"gate must be 'question' or 'answer', got {gate!r}")
        _check_seed(seed)
        if max_negatives_per_positive is not None and (
            isinstance(max_negatives_per_positive, bool)
            or not isinstance(max_negatives_per_positive, (int, float))
            or not max_negatives_per_positive >= 1
        ):
            raise UsageError(
                "max_negatives_per_positive must be a number >= 1, or None for no cap; "
                f"got {max_negatives_per_positive!r}"
            )
        if (
            isinstance(heldout_fraction, bool)
            or not isinstance(heldout_fraction, (int, float))
            or not 0 <= heldout_fraction <= 0.5
        ):
            raise UsageError(f"heldout_fraction must be from 0 to 0.5, got {heldout_fraction!r}")
        if isinstance(pairs, (str, bytes, os.PathLike)):
            raise UsageError(
                "pairs must be QA pairs, not a path; read a file with "
                "finetune_qa.read_qa(path) and pass what it returns"
            )
        dropped: Counter[str] = Counter()
        positives: list[GateExample] = []
        seen: set[str] = set()
        n_pairs = 0
        for i, item in enumerate(pairs):
            n_pairs += 1
            pair = _as_pair(item, "pair", i)
            key = question_key(pair.question)
            if key in seen:
                dropped["duplicate_positive"] += 1
                continue
            seen.add(key)
            positives.append(
                GateExample(
                    question=pair.question.strip(),
                    answer=pair.answer.strip() if gate == "answer" else None,
                    on_topic=True,
                    source="pairs",
                )
            )

        read: Counter[str] = Counter()
        candidates: list[tuple[NegativeSource, str, str | None]] = []
        given: list[tuple[NegativeSource, NegativeInput]] = [("user", n) for n in negatives]
        given += [("bank", q) for q in bank]
        neg_keys: set[str] = set()
        for i, (source, given_item) in enumerate(given):
            read[source] += 1
            if isinstance(given_item, str):
                question, answer = given_item, None
                if not question.strip():
                    raise UsageError(f"negative {i} is blank; give an off-topic question")
            else:
                neg = _as_pair(given_item, "negative", i)
                question, answer = neg.question, neg.answer
            key = question_key(question)
            if key in seen:
                dropped["conflict"] += 1
                continue
            if key in neg_keys:
                dropped["duplicate_negative"] += 1
                continue
            neg_keys.add(key)
            candidates.append((source, question.strip(), answer))

        if max_negatives_per_positive is not None:
            candidates = _cap_bank(
                candidates, int(max_negatives_per_positive * len(positives)), seed, dropped
            )
        if gate == "answer":
            candidates = _answer_negatives(candidates, qa_model, concurrency, dropped)
        negs = [
            GateExample(
                question=q, answer=a if gate == "answer" else None, on_topic=False, source=src
            )
            for src, q, a in candidates
        ]
        if not positives:
            raise DatasetError("no on-topic QA pairs: a discriminator needs positives")
        if not negs:
            raise DatasetError(
                "no off-topic examples left: pass negatives= or keep the built-in bank"
            )
        train_on, held_on = _split(positives, heldout_fraction, seed)
        train_off, held_off = _split(negs, heldout_fraction, seed)
        counts = DataCounts(
            gate=gate,
            pairs_read=n_pairs,
            negatives_read={k: read.get(k, 0) for k in ("bank", "user")},
            positives=len(positives),
            negatives={k: sum(1 for e in negs if e.source == k) for k in ("bank", "user")},
            dropped={
                k: dropped.get(k, 0)
                for k in (
                    "duplicate_positive",
                    "duplicate_negative",
                    "conflict",
                    "capped",
                    "unanswered",
                )
            },
            train_on_topic=len(train_on),
            train_off_topic=len(train_off),
            heldout_on_topic=len(held_on),
            heldout_off_topic=len(held_off),
            seed=seed,
            heldout_fraction=float(heldout_fraction),
        )
        # interleave the classes deterministically so no batch is all one label
        train = sorted(train_on + train_off, key=lambda e: _rank(e, seed + 1))
        heldout = held_on + held_off
        return cls(gate, train, heldout, counts)

    def examples(self, split: Literal["train", "heldout"] = "train") -> list[TrainingExample]:
        """The chat examples of one split."""
        items = self.train if split == "train" else self.heldout
        return [e.training_example(self.gate) for e in items]

    def write(
        self, path: str | os.PathLike[str], split: Literal["train", "heldout"] = "train"
    ) -> int:
        """Write one split as chat JSONL, atomically; return the number of lines.

        Raises:
            InputFileError: the file cannot be written (the old file, if any, is kept).
        """
        lines = [ex.to_json() for ex in self.examples(split)]
        _write_atomic(Path(path), "".join(line + "\n" for line in lines).encode("utf-8"))
        return len(lines)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file next to ``path``, then rename it over ``path``.

    A reader never sees half a file, and a failed write leaves the old one in place.
    """
    atomic_write(
        path, data, problem="cannot write", hint="check that the folder exists and is writable"
    )


def _answer_negatives(
    candidates: list[tuple[NegativeSource, str, str | None]],
    qa_model: ChatModel | GuardedChatModel | None,
    concurrency: int | None,
    dropped: Counter[str],
) -> list[tuple[NegativeSource, str, str | None]]:
    """Fill in the QA model's answers to off-topic questions that have none."""
    todo = [i for i, (_, _, a) in enumerate(candidates) if a is None]
    if not todo:
        return candidates
    if qa_model is None:
        raise UsageError(
            f"the answer gate needs answers to {len(todo)} off-topic question(s): pass "
            "qa_model= (the QA model, whose fluent off-topic answers are what the gate "
            "must catch), or give negatives as (question, answer) pairs and bank=()"
        )
    items = qa_model.ask_many([candidates[i][1] for i in todo], concurrency=concurrency)
    answers: dict[int, str | None] = {}
    for i, item in zip(todo, items, strict=True):
        answers[i] = item.answer.text if item.answer is not None and item.answer.text else None
    out: list[tuple[NegativeSource, str, str | None]] = []
    for i, (src, q, a) in enumerate(candidates):
        if a is None:
            a = answers.get(i)
            if a is None:
                dropped["unanswered"] += 1
                continue
        out.append((src, q, a))
    return out


def _cap_bank(
    candidates: list[tuple[NegativeSource, str, str | None]],
    limit: int,
    seed: int,
    dropped: Counter[str],
) -> list[tuple[NegativeSource, str, str | None]]:
    """Keep at most ``limit`` negatives: all the user's, then a seeded choice of the bank's."""
    users = sum(1 for src, _, _ in candidates if src == "user")
    bank = [i for i, (src, _, _) in enumerate(candidates) if src == "bank"]
    room = max(0, limit - users)
    if len(bank) <= room:
        return candidates
    salt = seed.to_bytes(8, "little", signed=True)
    ranked = sorted(bank, key=lambda i: key_hash(question_key(candidates[i][1]), salt=salt))
    keep = set(ranked[:room])
    dropped["capped"] += len(bank) - room
    return [c for i, c in enumerate(candidates) if c[0] == "user" or i in keep]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def _rank(example: GateExample, seed: int) -> int:
    return key_hash(question_key(example.question), salt=seed.to_bytes(8, "little", signed=True))


def _split(
    items: list[GateExample], fraction: float, seed: int
) -> tuple[list[GateExample], list[GateExample]]:
    """Seeded split by question: the same question never lands on both sides."""
    n = len(items)
    k = round(n * fraction)
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    ranked = sorted(items, key=lambda e: _rank(e, seed))
    held = {id(e) for e in ranked[:k]}
    return [e for e in items if id(e) not in held], [e for e in items if id(e) in held]


# ============================================================================ verdicts


class Verdict(BaseModel):
    """A discriminator's decision on one input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate: Gate = Field(description="Which gate decided: 'question' or 'answer'.")
    on_topic: bool = Field(description="probability >= threshold.")
    probability: float = Field(ge=0.0, le=1.0, description="Probability that it is on topic.")
    threshold: float = Field(description="The threshold it was compared with.")
    label: str = Field(description="The label text the model replied with.")
    source: Literal["logprobs", "label"] = Field(
        description=(
            "Where the probability came from: the labels' log-probabilities, or the label "
            "text alone (1.0 or 0.0) when the provider gave none."
        )
    )


def _norm_label(token: str) -> str:
    return token.strip().casefold()


def probability_from_logprobs(
    logprobs: Sequence[dict[str, Any]] | None,
    *,
    on_label: str = ON_TOPIC_LABEL,
    off_label: str = OFF_TOPIC_LABEL,
) -> float | None:
    """Probability of the on-topic label from the first token's log-probabilities.

    ``exp(logprob)`` of each label is read from the first token's ``top_logprobs`` (and
    the token itself); tokens equal to a label after stripping white space and case
    folding add up (``"yes"``, ``" Yes"``). With both labels found the probability is
    normalised over the two; with one found, it is that label's own probability (or one
    minus it, for the off-topic label); with neither, None.

    Example:
        >>> import math
        >>> first = {"token": "yes", "logprob": math.log(0.6),
        ...          "top_logprobs": [{"token": "yes", "logprob": math.log(0.6)},
        ...                           {"token": "no", "logprob": math.log(0.2)}]}
        >>> round(probability_from_logprobs([first]), 3)
        0.75
    """
    if not logprobs:
        return None
    first = logprobs[0]
    entries = [first, *(first.get("top_logprobs") or [])]
    mass = {on_label: 0.0, off_label: 0.0}
    found: set[str] = set()
    tokens_seen: set[str] = set()
    for entry in entries:
        token, lp = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(lp, (int, float)) or token in tokens_seen:
            continue
        tokens_seen.add(token)  # the chosen token is listed again in top_logprobs
        for label in (on_label, off_label):
            if _norm_label(token) == _norm_label(label):
                mass[label] += math.exp(lp)
                found.add(label)
    p_on, p_off = mass[on_label], mass[off_label]
    if on_label in found and off_label in found:
        total = p_on + p_off
        return p_on / total if total > 0 else None
    if on_label in found:
        return min(1.0, p_on)
    if off_label in found:
        return max(0.0, 1.0 - p_off)
    return None


# ========================================================================= thresholds


class GateReport(BaseModel):
    """How well a gate separates on-topic from off-topic inputs at a threshold.

    The positive class is *on topic*: precision is the share of inputs let through that
    are on topic, recall the share of on-topic inputs let through. A ratio with a zero
    denominator is 0.0.
    """

    model_config = ConfigDict(extra="forbid")

    gate: Gate | None = Field(default=None, description="The gate, when known.")
    threshold: float = Field(description="Inputs with probability >= threshold pass.")
    on_topic: int = Field(description="On-topic inputs scored.")
    off_topic: int = Field(description="Off-topic inputs scored.")
    true_positives: int = Field(description="On-topic inputs let through.")
    false_negatives: int = Field(description="On-topic inputs stopped.")
    true_negatives: int = Field(description="Off-topic inputs stopped.")
    false_positives: int = Field(description="Off-topic inputs let through.")
    precision: float = Field(description="tp / (tp + fp).")
    recall: float = Field(description="tp / (tp + fn).")
    f1: float = Field(description="Harmonic mean of precision and recall.")
    accuracy: float = Field(description="(tp + tn) / all.")
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            f"Why the figures may not be trusted: a class with fewer than "
            f"{MIN_HELDOUT_PER_CLASS} inputs scored."
        ),
    )

    def to_text(self) -> str:
        """One line for a terminal, then one ``warning:`` line per warning."""
        line = (
            f"threshold {self.threshold:.3f}: precision {self.precision:.2f}, recall "
            f"{self.recall:.2f}, F1 {self.f1:.2f}, accuracy {self.accuracy:.2f} "
            f"(on-topic {self.true_positives}/{self.on_topic} passed, off-topic "
            f"{self.true_negatives}/{self.off_topic} stopped)"
        )
        return "\n".join([line, *(f"  warning: {w}" for w in self.warnings)])


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def gate_report(
    on_scores: Sequence[float],
    off_scores: Sequence[float],
    *,
    threshold: float,
    gate: Gate | None = None,
) -> GateReport:
    """Confusion counts and ratios of probabilities against ``threshold``.

    Args:
        on_scores: probabilities given to on-topic inputs.
        off_scores: probabilities given to off-topic inputs.
        threshold: inputs with probability >= threshold pass.
        gate: recorded in the report.

    A class with fewer than :data:`MIN_HELDOUT_PER_CLASS` scores gets a warning in the
    report's ``warnings``: its ratios (and a threshold chosen from them) rest on too few
    inputs to be trusted.
    """
    warnings = [
        f"only {n} {name} input{'s' if n != 1 else ''} scored (fewer than "
        f"{MIN_HELDOUT_PER_CLASS}): precision, recall and the threshold are unreliable; "
        "give more QA pairs (or, when training, a larger heldout_fraction)"
        for name, n in (("on-topic", len(on_scores)), ("off-topic", len(off_scores)))
        if n < MIN_HELDOUT_PER_CLASS
    ]
    tp = sum(1 for s in on_scores if s >= threshold)
    fp = sum(1 for s in off_scores if s >= threshold)
    fn = len(on_scores) - tp
    tn = len(off_scores) - fp
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return GateReport(
        gate=gate,
        threshold=threshold,
        on_topic=len(on_scores),
        off_topic=len(off_scores),
        true_positives=tp,
        false_negatives=fn,
        true_negatives=tn,
        false_positives=fp,
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=_ratio(tp + tn, len(on_scores) + len(off_scores)),
        warnings=warnings,
    )


def choose_threshold(
    on_scores: Sequence[float],
    off_scores: Sequence[float],
    *,
    target_precision: float | None = None,
) -> float:
    """The threshold that separates held-out on-topic from off-topic probabilities best.

    Candidates are the midpoints between neighbouring distinct scores (and 0.5 when
    every score is on one side). By default the candidate with the highest F1 of the
    on-topic class wins; ties go to the widest gap between scores, then to the higher
    threshold. With ``target_precision`` the lowest candidate whose precision reaches it
    wins (the most recall at that precision); if none does, the one with the highest
    precision (then F1).

    Args:
        on_scores: probabilities of held-out on-topic inputs.
        off_scores: probabilities of held-out off-topic inputs.
        target_precision: 0-1, or None to maximise F1.

    Raises:
        UsageError: no scores, or a bad ``target_precision``.
    """
    if target_precision is not None and (
        isinstance(target_precision, bool)
        or not isinstance(target_precision, (int, float))
        or not 0 < target_precision <= 1
    ):
        raise UsageError(f"target_precision must be in (0, 1] or None, got {target_precision!r}")
    if not on_scores and not off_scores:
        raise UsageError("choose_threshold needs held-out scores; got none")
    points = sorted(set(on_scores) | set(off_scores))
    cands: list[tuple[float, float]] = []  # (threshold, gap)
    for lo, hi in itertools.pairwise(points):
        cands.append(((lo + hi) / 2, hi - lo))
    if not cands:
        cands.append((0.5, 0.0))
    scored = [(t, gap, gate_report(on_scores, off_scores, threshold=t)) for t, gap in cands]
    if target_precision is not None:
        ok = [t for t, _, r in scored if r.precision >= target_precision and r.true_positives]
        if ok:
            return round(min(ok), 6)
        best = max(scored, key=lambda x: (x[2].precision, x[2].f1, x[0]))
        return round(best[0], 6)
    best = max(scored, key=lambda x: (round(x[2].f1, 9), x[1], x[0]))
    return round(best[0], 6)


# ======================================================================= discriminator


_MAX_SETTINGS_BYTES = 1024 * 1024  # a saved gate is about 2 KB


class DiscriminatorSettings(BaseModel):
    """What :meth:`Discriminator.save` writes: enough to load the discriminator again."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The fine-tuned classifier model.")
    gate: Gate = Field(description="'question' or 'answer'.")
    threshold: float = Field(ge=0.0, le=1.0, description="Probability from which input passes.")
    system_prompt: str = Field(description="System message it was trained with.")
    report: GateReport | None = Field(default=None, description="Held-out report, if trained.")
    counts: DataCounts | None = Field(default=None, description="Training data counts.")
    backend: str | None = Field(
        default=None,
        description=(
            "Registry name of the backend that serves the model ('openai', 'offline', "
            "'together', ...); Discriminator.load uses it when given no backend. None "
            "(files written before it was recorded): 'openai'."
        ),
    )

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> DiscriminatorSettings:
        """Read settings written by :meth:`Discriminator.save`.

        Raises:
            InputFileError: the file cannot be read or is not discriminator settings.
        """
        src = Path(path)
        try:
            with open_regular(src, kind="gate settings file") as f:
                raw = f.read(_MAX_SETTINGS_BYTES + 1)
        except OSError as exc:
            raise InputFileError(
                f"cannot read: {exc.strerror or exc}",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            ) from exc
        if len(raw) > _MAX_SETTINGS_BYTES:
            raise InputFileError(
                f"is over {_MAX_SETTINGS_BYTES // 1024} KiB: not gate settings",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            )
        try:
            return cls.model_validate(orjson.loads(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "the top level"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InputFileError(
                f"not discriminator settings: {where}: {err['msg']}{more}",
                path=src,
                hint="pass the JSON file `guard train` (Discriminator.save()) wrote",
            ) from exc
        except orjson.JSONDecodeError as exc:
            first = str(exc).splitlines()[0]
            raise InputFileError(
                f"not discriminator settings: {first}",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            ) from exc


class Discriminator:
    """A fine-tuned on-topic classifier for one gate.

    Train one with :meth:`train`, or load one by model name (or with :meth:`load`).

    Args:
        model: the fine-tuned classifier, e.g. ``"ft:gpt-4o-mini-2024-07-18:acme:question-gate:X"``.
        backend: a backend name or instance (``None``: ``"openai"``).
        gate: ``"question"`` or ``"answer"``.
        threshold: on-topic probability from which an input passes (0-1).
        system_prompt: the system message it was trained with.
        logprobs: ask for log-probabilities (switch off for providers without them; the
            label text then decides, with probability 1.0 or 0.0).
        concurrency: checks in flight at once in :meth:`check_many` by default.
        retries: retries per check (see :class:`~finetune_qa.chat.ChatModel`).
        report: the held-out report, when known.
        counts: the training data counts, when known.

    Raises:
        UsageError: a bad argument.
    """

    def __init__(
        self,
        model: str,
        *,
        backend: str | Backend | None = None,
        gate: Gate = "question",
        threshold: float = 0.5,
        system_prompt: str = DISCRIMINATOR_SYSTEM_PROMPT,
        logprobs: bool = True,
        concurrency: int = 8,
        retries: int = 3,
        report: GateReport | None = None,
        counts: DataCounts | None = None,
    ) -> None:
        if gate not in ("question", "answer"):
            raise UsageError(f"gate must be 'question' or 'answer', got {gate!r}")
        self.gate: Gate = gate
        self.threshold = _check_threshold(threshold)
        self.report = report
        self.counts = counts
        self.chat = ChatModel(
            model,
            backend=backend,
            system_prompt=system_prompt,
            stop=None,
            card=False,  # a gate is queried with its own prompt, whatever its card says
            temperature=0.0,
            max_tokens=1,
            logprobs=logprobs,
            top_logprobs=5 if logprobs else None,
            concurrency=concurrency,
            retries=retries,
        )

    @property
    def model(self) -> str:
        """The classifier model's name."""
        return self.chat.model

    def __repr__(self) -> str:
        return f"Discriminator({self.model!r}, gate={self.gate!r}, threshold={self.threshold!r})"

    # -------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        pairs: Iterable[PairInput],
        *,
        backend: str | Backend = "openai",
        model: str = DEFAULT_MODEL,
        gate: Gate = "question",
        qa_model: ChatModel | GuardedChatModel | None = None,
        negatives: Iterable[NegativeInput] = (),
        bank: Sequence[str] = OFF_TOPIC_TRAINING_QUESTIONS,
        seed: int = 0,
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        target_precision: float | None = None,
        workdir: str | os.PathLike[str] | None = None,
        n_epochs: int | Literal["auto"] = "auto",
        suffix: str | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        force_new: bool = False,
        concurrency: int = 8,
        timeout: float | None = None,
        max_negatives_per_positive: float | None = DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
        provider_options: Mapping[str, Any] | None = None,
    ) -> Discriminator:
        """Build the data, fine-tune a classifier, and choose its threshold on held-out data.

        Args:
            pairs: the on-topic QA pairs.
            backend: backend name or instance the job (and the checks) run on.
            model: base model to fine-tune.
            gate: ``"question"`` or ``"answer"``.
            qa_model: the QA model (answer gate: its answers to off-topic questions are
                the negatives).
            negatives: your own off-topic questions or ``(question, answer)`` pairs.
            bank: built-in off-topic questions.
            seed: seed of the split (and of the job), 0 to :data:`MAX_SEED`.
            heldout_fraction: share of each class held out to choose the threshold.
            target_precision: choose the threshold for this precision instead of the
                best F1 (see :func:`choose_threshold`).
            workdir: where the JSONL files (``<gate>-gate-train.jsonl``,
                ``<gate>-gate-heldout.jsonl``) are written; a temporary directory if None.
            n_epochs: epochs of the job.
            suffix: model name suffix (default ``"<gate>-gate"``).
            journal: the job journal (see :meth:`FineTuneJob.create`).
            force_new: start a new job even if the journal knows the same request.
            concurrency: checks (and QA model questions) in flight at once.
            timeout: seconds to wait for the job (None: no limit).
            max_negatives_per_positive: most off-topic examples per on-topic one (see
                :meth:`DiscriminatorData.build`).
            provider_options: the backend's own job settings (see
                :meth:`FineTuneJob.create`), e.g. the local backend's
                ``{"method": "full", "learning_rate": 1e-4}``.

        Returns:
            The trained discriminator, with its held-out :attr:`report` and :attr:`counts`.
            With fewer than :data:`MIN_HELDOUT_PER_CLASS` held-out inputs in a class, the
            report carries ``warnings`` (also logged): its figures rest on too few inputs.

        Raises:
            UsageError: a bad argument.
            DatasetError: too few examples for a fine-tuning job.
            BackendError: the provider failed (after retries), or a held-out check did.
            JobError: the job failed, was cancelled or timed out.
        """
        data = DiscriminatorData.build(
            pairs,
            gate=gate,
            negatives=negatives,
            bank=bank,
            qa_model=qa_model,
            heldout_fraction=heldout_fraction,
            seed=seed,
            concurrency=concurrency,
            max_negatives_per_positive=max_negatives_per_positive,
        )
        if len(data.train) < MIN_TRAINING_EXAMPLES:
            capped = data.counts.dropped.get("capped", 0)
            raise DatasetError(
                f"only {len(data.train)} training examples for the {gate} gate; a job needs "
                f"at least {MIN_TRAINING_EXAMPLES}: give more QA pairs"
                + (
                    f" ({capped} bank questions were left out to keep at most "
                    f"{max_negatives_per_positive:g} off-topic examples per QA pair)"
                    if capped
                    else " or negatives"
                )
            )
        with tempfile.TemporaryDirectory(prefix="finetune-qa-gate-") as tmp:
            folder = Path(workdir) if workdir is not None else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            train_path = folder / f"{gate}-gate-train.jsonl"
            data.write(train_path, "train")
            held_path = None
            if data.heldout:
                held_path = folder / f"{gate}-gate-heldout.jsonl"
                data.write(held_path, "heldout")
            job = FineTuneJob.create(
                train_path,
                model=model,
                backend=backend,
                validation_file=held_path,
                n_epochs=n_epochs,
                suffix=suffix or f"{gate}-gate",
                seed=seed,
                system_prompt=DISCRIMINATOR_SYSTEM_PROMPT,
                journal=journal,
                force_new=force_new,
                provider_options=provider_options,
            )
        info = job.wait(timeout=timeout)
        assert info.fine_tuned_model is not None  # wait() returns succeeded jobs only
        disc = cls(
            info.fine_tuned_model,
            backend=job.backend,
            gate=gate,
            concurrency=concurrency,
            counts=data.counts,
        )
        if data.heldout:
            on = [e for e in data.heldout if e.on_topic]
            off = [e for e in data.heldout if not e.on_topic]
            on_scores = disc._scores([e.text(gate) for e in on])
            off_scores = disc._scores([e.text(gate) for e in off])
            if on_scores and off_scores:
                disc.threshold = choose_threshold(
                    on_scores, off_scores, target_precision=target_precision
                )
            disc.report = gate_report(on_scores, off_scores, threshold=disc.threshold, gate=gate)
            for warning in disc.report.warnings:
                logger.warning("%s gate %s: held-out report: %s", gate, disc.model, warning)
        else:
            logger.warning(
                "%s gate %s: nothing was held out, so the threshold stays %s and precision "
                "and recall are unknown",
                gate,
                disc.model,
                disc.threshold,
            )
        return disc

    # ---------------------------------------------------------------- persistence
    def settings(self) -> DiscriminatorSettings:
        """The small JSON-able settings :meth:`save` writes."""
        return DiscriminatorSettings(
            model=self.model,
            gate=self.gate,
            threshold=self.threshold,
            system_prompt=self.chat.system_prompt or "",
            report=self.report,
            counts=self.counts,
            backend=getattr(self.chat.backend, "name", None),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings as JSON, atomically; return the path.

        Raises:
            InputFileError: the file cannot be written (the old file, if any, is kept).
        """
        out = Path(path)
        data = orjson.dumps(self.settings().model_dump(mode="json"), option=orjson.OPT_INDENT_2)
        _write_atomic(out, data + b"\n")
        return out

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        **kwargs: Any,
    ) -> Discriminator:
        """Load a discriminator from settings written by :meth:`save`.

        Args:
            path: the JSON file.
            backend: the backend serving the model, a name or an instance (``None``: the
                backend name the settings record, else ``"openai"``). An instance is
                what an offline gate needs: a new ``"offline"`` backend built by name
                starts empty and does not know the model; pass the ``OfflineBackend``
                that trained it (the CLI keeps its offline state between commands).
            **kwargs: other :class:`Discriminator` options (``concurrency``, ...).

        Raises:
            InputFileError: the file cannot be read or is not discriminator settings.
            UnknownBackendError: the recorded (or given) backend name is not registered.
        """
        settings = DiscriminatorSettings.read(path)
        if backend is None:
            backend = settings.backend or "openai"
        return cls(
            settings.model,
            backend=get_backend(backend),
            gate=settings.gate,
            threshold=settings.threshold,
            system_prompt=settings.system_prompt,
            report=settings.report,
            counts=settings.counts,
            **kwargs,
        )

    # ----------------------------------------------------------------------- checks
    def verdict(self, answer: Answer) -> Verdict:
        """The verdict of this gate from the classifier's reply.

        The probability comes from the log-probabilities (see
        :func:`probability_from_logprobs`) when present, else from the label text
        (1.0 for the on-topic label, 0.0 for anything else: it fails closed).
        """
        p = probability_from_logprobs(answer.logprobs)
        source: Literal["logprobs", "label"] = "logprobs"
        if p is None:
            source = "label"
            p = 1.0 if _norm_label(answer.text) == _norm_label(ON_TOPIC_LABEL) else 0.0
        p = min(1.0, max(0.0, p))
        return Verdict(
            gate=self.gate,
            on_topic=p >= self.threshold,
            probability=p,
            threshold=self.threshold,
            label=answer.text,
            source=source,
        )

    def input_for(self, question: str, answer: str | None = None) -> str:
        """The user message this gate sends for ``question`` (and ``answer``)."""
        return gate_input(self.gate, question, answer)

    def check(self, question: str, answer: str | None = None) -> Verdict:
        """Is ``question`` (with ``answer``, for the answer gate) on topic?

        Raises:
            UsageError: a blank question, or the answer gate without an answer.
            BackendError: the request failed after its retries.
        """
        return self.verdict(self.chat.ask(self.input_for(question, answer)))

    async def acheck(self, question: str, answer: str | None = None) -> Verdict:
        """Async twin of :meth:`check`."""
        return self.verdict(await self.chat.aask(self.input_for(question, answer)))

    def check_many(
        self,
        questions: Iterable[str],
        answers: Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
    ) -> list[Verdict]:
        """Check many inputs, ``concurrency`` at a time; verdict ``i`` is input ``i``.

        Args:
            questions: the questions.
            answers: their answers, one per question (required by the answer gate).
            concurrency: checks in flight at once (default: the discriminator's).

        Raises:
            UsageError: a blank question, or a missing answer for the answer gate.
            BackendError: a check failed after its retries (the first failure is raised;
                use :class:`GuardedChatModel` for per-question errors).
        """
        items = self.chat.ask_many(self._inputs(questions, answers), concurrency=concurrency)
        return [self._from_item(item) for item in items]

    async def acheck_many(
        self,
        questions: Iterable[str],
        answers: Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
    ) -> list[Verdict]:
        """Async twin of :meth:`check_many`."""
        inputs = self._inputs(questions, answers)
        items = await self.chat.aask_many(inputs, concurrency=concurrency)
        return [self._from_item(item) for item in items]

    def evaluate(
        self,
        on_topic: Iterable[str | PairInput],
        off_topic: Iterable[str | PairInput],
        *,
        threshold: float | None = None,
    ) -> GateReport:
        """Precision, recall, F1 and accuracy on labelled inputs (e.g. held-out sets).

        Args:
            on_topic: on-topic questions, or ``(question, answer)`` pairs / QA pairs for
                the answer gate.
            off_topic: off-topic ones, likewise.
            threshold: the threshold to judge at (default: the discriminator's).

        Raises:
            UsageError: a bad input (a string for the answer gate, a blank question).
            BackendError: a check failed after its retries.
        """
        t = self.threshold if threshold is None else _check_threshold(threshold)
        on_scores = self._scores([self._text_of(x) for x in on_topic])
        off_scores = self._scores([self._text_of(x) for x in off_topic])
        return gate_report(on_scores, off_scores, threshold=t, gate=self.gate)

    # -------------------------------------------------------------------- internals
    def _text_of(self, item: str | PairInput) -> str:
        if isinstance(item, str):
            return self.input_for(item)
        pair = _as_pair(item, "input", 0)
        return self.input_for(pair.question, pair.answer)

    def _inputs(self, questions: Iterable[str], answers: Iterable[str] | None) -> list[str]:
        if isinstance(questions, str):
            raise UsageError("check_many takes an iterable of questions, not one string")
        qs = list(questions)
        if answers is None:
            return [self.input_for(q) for q in qs]
        ans = list(answers)
        if len(ans) != len(qs):
            raise UsageError(f"got {len(qs)} questions but {len(ans)} answers; give one each")
        return [self.input_for(q, a) for q, a in zip(qs, ans, strict=True)]

    def _scores(self, inputs: list[str]) -> list[float]:
        items = self.chat.ask_many(inputs)
        return [self._from_item(item).probability for item in items]

    def _from_item(self, item: BatchItem) -> Verdict:
        if item.answer is None:
            # the gate's input is the question, or "Question: ...\nAnswer: ..."
            text = item.question.removeprefix("Question: ").split("\nAnswer: ")[0]
            short = textwrap.shorten(text, width=60, placeholder=" ...")
            if item.error_type in ("NotFoundError", "PermissionDeniedError"):
                todo = (
                    "this backend does not serve the gate's model: load the gate with the "
                    "backend that trained it (Discriminator.load(path, backend=...))"
                )
            elif item.error_type == "AuthenticationError":
                todo = "check the backend's API key"
            else:
                todo = "try again later, or raise retries= (GuardedChatModel.ask_many "
                todo += "reports failures per question instead of raising)"
            error = (item.error or "the request failed").rstrip(". ")
            raise BackendError(
                f"the {self.gate} gate ({self.model}) could not check {short!r} (input "
                f"{item.index}): {error}. To fix: {todo}"
            )
        return self.verdict(item.answer)


def _check_threshold(threshold: float) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        raise UsageError(f"threshold must be a probability from 0 to 1, got {threshold!r}")
    return float(threshold)


# ====================================================================== guarded model


class GuardedAnswer(Answer):
    """An :class:`~finetune_qa.chat.Answer` from a :class:`GuardedChatModel`, with the gates' say.

    ``text`` is the QA model's answer when it passed, else the refusal or the withheld
    reply (a complete reply: ``finish_reason`` ``"stop"``; ``guard`` says what happened).
    ``usage`` and ``latency`` add up every request made for the question (gates
    included); ``model`` is the QA model.
    """

    guard: GuardOutcome = Field(
        description="'passed', 'refused_question' (QA model not asked) or 'withheld_answer'."
    )
    question_verdict: Verdict | None = Field(
        default=None, description="The question gate's verdict, if there is a question gate."
    )
    answer_verdict: Verdict | None = Field(
        default=None, description="The answer gate's verdict, if the answer was checked."
    )
    original_text: str | None = Field(
        default=None, description="The QA model's answer when it was withheld."
    )


class _Pending:
    """One question's way through the gates in a batch."""

    def __init__(self, index: int, question: str) -> None:
        self.index = index
        self.question = question
        self.error: BatchItem | None = None
        self.question_verdict: Verdict | None = None
        self.answer: Answer | None = None
        self.answer_verdict: Verdict | None = None
        self.usage: list[Usage] = []
        self.latency = 0.0

    def record(self, answer: Answer) -> None:
        self.usage.append(answer.usage)
        self.latency += answer.latency


Runner = Callable[[ChatModel, list[str]], list[BatchItem]]
AsyncRunner = Callable[[ChatModel, list[str]], Awaitable[list[BatchItem]]]
Take = Callable[[_Pending, BatchItem], None]
StageWork = tuple[ChatModel, list[_Pending], list[str], Take]


class GuardedChatModel:
    """A :class:`~finetune_qa.chat.ChatModel` behind on-topic gates.

    :meth:`ask` checks the question with ``question_gate`` first (off topic: the refusal,
    and the QA model is not called), asks the QA model, then checks the answer with
    ``answer_gate`` (off topic: the withheld reply). It has ChatModel's call shape
    (``model``, ``backend``, ``stop``, ``ask``/``aask``/``ask_many``/``aask_many``,
    :class:`BatchItem` results holding :class:`GuardedAnswer` s), so batch code and
    evaluation suites run on it unchanged; per-call options (``history``, ``temperature``,
    ...) are the QA model's own settings (use ``ChatModel.with_options`` for others).

    Args:
        chat: the QA model.
        question_gate: a question-gate :class:`Discriminator`, or None.
        answer_gate: an answer-gate :class:`Discriminator`, or None.
        refusal: reply to an off-topic question; ``{topic}`` is filled in.
        withheld: reply instead of an off-topic answer; ``{topic}`` is filled in.
        topic: what the bot is about, for the default replies.
        concurrency: questions in flight at once in :meth:`ask_many` by default
            (default: the QA model's).

    Raises:
        UsageError: a gate of the wrong kind, or a blank reply.
    """

    def __init__(
        self,
        chat: ChatModel,
        *,
        question_gate: Discriminator | None,
        answer_gate: Discriminator | None = None,
        refusal: str = DEFAULT_REFUSAL,
        withheld: str = DEFAULT_WITHHELD,
        topic: str = DEFAULT_TOPIC,
        concurrency: int | None = None,
    ) -> None:
        if question_gate is not None and question_gate.gate != "question":
            raise UsageError(
                "question_gate must be a question-gate Discriminator, "
                f"got a {question_gate.gate} gate"
            )
        if answer_gate is not None and answer_gate.gate != "answer":
            raise UsageError(
                f"answer_gate must be an answer-gate Discriminator, got a {answer_gate.gate} gate"
            )
        for name, text in (("refusal", refusal), ("withheld", withheld), ("topic", topic)):
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{name} must be a non-empty string, got {text!r}")
        self.chat = chat
        self.question_gate = question_gate
        self.answer_gate = answer_gate
        self.refusal = refusal.replace("{topic}", topic)
        self.withheld = withheld.replace("{topic}", topic)
        self.concurrency = chat.concurrency if concurrency is None else concurrency

    @property
    def model(self) -> str:
        """The QA model's name."""
        return self.chat.model

    @property
    def backend(self) -> Backend:
        """The QA model's backend."""
        return self.chat.backend

    @property
    def stop(self) -> tuple[str, ...]:
        """The QA model's stop marker(s); refusals and withheld replies end as if stopped."""
        return self.chat.stop

    @property
    def system_prompt(self) -> str | None:
        """The QA model's system prompt."""
        return self.chat.system_prompt

    @property
    def refusal_texts(self) -> tuple[str, ...]:
        """The replies this model gives instead of an answer (refusal, withheld)."""
        return (self.refusal, self.withheld)

    def __repr__(self) -> str:
        return (
            f"GuardedChatModel({self.chat.model!r}, question_gate="
            f"{self.question_gate.model if self.question_gate else None!r}, answer_gate="
            f"{self.answer_gate.model if self.answer_gate else None!r})"
        )

    # ----------------------------------------------------------------- one question
    def ask(self, question: str) -> GuardedAnswer:
        """Ask one question through the gates.

        Raises:
            UsageError: a blank question.
            BackendError: a gate or the QA model failed after its retries.
        """
        item = self._one(question, lambda chat, xs: [_ask_one(chat, xs[0], i=0)])
        return item

    async def aask(self, question: str) -> GuardedAnswer:
        """Async twin of :meth:`ask`."""
        p = _Pending(0, _check_question(question))

        async def run(chat: ChatModel, inputs: list[str]) -> list[BatchItem]:
            return [BatchItem(index=0, question=inputs[0], answer=await chat.aask(inputs[0]))]

        await self._apipeline([p], run)
        return self._finish(p)

    def _one(self, question: str, run: Runner) -> GuardedAnswer:
        p = _Pending(0, _check_question(question))
        self._pipeline([p], run)
        return self._finish(p)

    # ---------------------------------------------------------------- many questions
    def ask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Ask many questions through the gates; item ``i`` is question ``i``.

        Each stage (question gate, QA model, answer gate) runs with bounded
        concurrency through the models' own ``ask_many``, one stage after the other for
        the whole batch. A question whose gate or QA request fails gets an item with
        ``error`` set; the others go on.

        Unlike :meth:`ChatModel.ask_many <finetune_qa.chat.ChatModel.ask_many>`, which
        calls ``on_result`` as each question finishes, this calls it only after the
        **last stage of the whole batch** has finished, once per item in question order:
        it cannot drive a live progress bar. For progress on a long list, ask in slices
        (e.g. 50 questions per call) and report after each.

        Args:
            questions: the questions.
            concurrency: requests in flight at once (default: the guarded model's).
            on_result: called with each item, in question order, after the whole batch
                is done (not as each question finishes).

        Raises:
            UsageError: a blank question or a bad ``concurrency``.
        """
        pending = [_Pending(i, q) for i, q in enumerate(_check_questions(questions))]
        limit = self.concurrency if concurrency is None else concurrency
        self._pipeline(pending, lambda chat, xs: chat.ask_many(xs, concurrency=limit))
        return self._items(pending, on_result)

    async def aask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Async twin of :meth:`ask_many`."""
        pending = [_Pending(i, q) for i, q in enumerate(_check_questions(questions))]
        limit = self.concurrency if concurrency is None else concurrency

        async def run(chat: ChatModel, inputs: list[str]) -> list[BatchItem]:
            return await chat.aask_many(inputs, concurrency=limit)

        await self._apipeline(pending, run)
        return self._items(pending, on_result)

    # -------------------------------------------------------------------- internals
    def _stages(self) -> list[Callable[[list[_Pending]], StageWork | None]]:
        return [self._question_stage, self._qa_stage, self._answer_stage]

    def _question_stage(self, pending: list[_Pending]) -> StageWork | None:
        gate = self.question_gate
        if gate is None:
            return None
        todo = [p for p in pending if p.error is None]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.question_verdict = gate.verdict(item.answer)

        return gate.chat, todo, [gate.input_for(p.question) for p in todo], take

    def _qa_stage(self, pending: list[_Pending]) -> StageWork:
        todo = [
            p
            for p in pending
            if p.error is None and (p.question_verdict is None or p.question_verdict.on_topic)
        ]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.answer = item.answer

        return self.chat, todo, [p.question for p in todo], take

    def _answer_stage(self, pending: list[_Pending]) -> StageWork | None:
        gate = self.answer_gate
        if gate is None:
            return None
        todo = [p for p in pending if p.error is None and p.answer is not None and p.answer.text]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.answer_verdict = gate.verdict(item.answer)

        inputs = [gate.input_for(p.question, p.answer.text) for p in todo if p.answer]
        return gate.chat, todo, inputs, take

    def _pipeline(self, pending: list[_Pending], run: Runner) -> None:
        for stage in self._stages():
            got = stage(pending)
            if got is None or not got[1]:
                continue
            chat, todo, inputs, take = got
            _apply(todo, run(chat, inputs), take)

    async def _apipeline(self, pending: list[_Pending], run: AsyncRunner) -> None:
        for stage in self._stages():
            got = stage(pending)
            if got is None or not got[1]:
                continue
            chat, todo, inputs, take = got
            _apply(todo, await run(chat, inputs), take)

    def _finish(self, p: _Pending) -> GuardedAnswer:
        """The answer of a question that went through without errors."""
        usage = Usage(
            prompt_tokens=sum(u.prompt_tokens for u in p.usage),
            completion_tokens=sum(u.completion_tokens for u in p.usage),
            total_tokens=sum(u.total_tokens for u in p.usage),
        )
        common: dict[str, Any] = {
            "question": p.question,
            "usage": usage,
            "latency": p.latency,
            "model": self.chat.model,
            "question_verdict": p.question_verdict,
            "answer_verdict": p.answer_verdict,
        }
        if p.answer is None:  # refused before the QA model was asked
            return GuardedAnswer(
                text=self.refusal,
                finish_reason="stop",
                request_id=None,
                stopped_at_marker=False,
                guard="refused_question",
                **common,
            )
        a = p.answer
        if p.answer_verdict is not None and not p.answer_verdict.on_topic:
            return GuardedAnswer(
                text=self.withheld,
                finish_reason="stop",
                request_id=a.request_id,
                stopped_at_marker=False,
                guard="withheld_answer",
                original_text=a.text,
                **common,
            )
        return GuardedAnswer(
            text=a.text,
            finish_reason=a.finish_reason,
            request_id=a.request_id,
            stopped_at_marker=a.stopped_at_marker,
            logprobs=a.logprobs,
            guard="passed",
            **common,
        )

    def _items(
        self, pending: list[_Pending], on_result: Callable[[BatchItem], None] | None
    ) -> list[BatchItem]:
        out: list[BatchItem] = []
        for p in pending:
            item = p.error or BatchItem(index=p.index, question=p.question, answer=self._finish(p))
            out.append(item)
            if on_result is not None:
                on_result(item)
        return out


def _apply(
    todo: list[_Pending], items: list[BatchItem], take: Callable[[_Pending, BatchItem], None]
) -> None:
    for p, item in zip(todo, items, strict=True):
        if item.answer is None:
            p.error = BatchItem(
                index=p.index, question=p.question, error=item.error, error_type=item.error_type
            )
        else:
            take(p, item)


def _ask_one(chat: ChatModel, text: str, *, i: int) -> BatchItem:
    # ask() raises: the one-question path wants the exception, not an error item
    return BatchItem(index=i, question=text, answer=chat.ask(text))
