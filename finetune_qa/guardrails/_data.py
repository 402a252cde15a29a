"""A discriminator's labelled examples: positives, negatives, the seeded split."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._fs import atomic_write
from finetune_qa._text import key_hash, question_key
from finetune_qa.chat import ChatModel
from finetune_qa.data import Message, QAPair, TrainingExample
from finetune_qa.exceptions import DatasetError, UsageError

if TYPE_CHECKING:
    from finetune_qa.guardrails._guarded import GuardedChatModel

from finetune_qa.guardrails._bank import OFF_TOPIC_TRAINING_QUESTIONS
from finetune_qa.guardrails._common import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
    DISCRIMINATOR_SYSTEM_PROMPT,
    MAX_SEED,
    OFF_TOPIC_LABEL,
    ON_TOPIC_LABEL,
    Gate,
    NegativeSource,
)


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
