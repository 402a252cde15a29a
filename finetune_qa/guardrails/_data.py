"""A discriminator's labelled examples: positives, negatives, the seeded split."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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

from finetune_qa.guardrails._bank import (
    NEAR_MISS_QUESTIONS,
    OFF_TOPIC_TRAINING_QUESTIONS,
    company_name,
    company_swaps,
)
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
    source: Literal["pairs", "rephrasing", "bank", "near_miss", "user"] = Field(
        description="Where it came from: the QA pairs, a rephrasing of one, the built-in "
        "bank, a near-miss (another company, a general question) or the user's negatives."
    )
    group: str | None = Field(
        default=None,
        description="The split key: every wording of one QA pair shares it, so a pair is "
        "held out whole (None: the question's own key).",
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

    rephrasings_read: int = Field(default=0, description="Rephrasings of the pairs given.")
    rephrasings: int = Field(default=0, description="Positives that are rephrasings.")
    heldout_pairs: int = Field(
        default=0, description="QA pairs held out whole (with every wording of each)."
    )
    heldout_rephrasings: int = Field(
        default=0, description="Held-out positives that are rephrasings."
    )

    @property
    def reconciles(self) -> bool:
        """True when read = kept + dropped and kept = train + held out."""
        kept = self.positives + sum(self.negatives.values())
        read = self.pairs_read + self.rephrasings_read + sum(self.negatives_read.values())
        split = (
            self.train_on_topic + self.train_off_topic + self.heldout_on_topic
            + self.heldout_off_topic
        )  # fmt: skip
        return read == kept + sum(self.dropped.values()) and kept == split

    def to_text(self) -> str:
        """A few lines for a terminal."""
        neg = ", ".join(f"{k} {v}" for k, v in sorted(self.negatives.items()))
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()) if v) or "none"
        with_r = f" ({self.rephrasings} rephrasings)" if self.rephrasings else ""
        return "\n".join(
            [
                f"{self.gate} gate: {self.positives} on-topic{with_r}, "
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
        rephrasings: Mapping[str, Sequence[str]] | None = None,
        near_misses: bool | None = None,
        company: str | None = None,
    ) -> DiscriminatorData:
        """Label, deduplicate and split the examples.

        Args:
            pairs: the on-topic QA pairs (``QAPair`` or ``(question, answer)``). Pairs
                with the same answer are wordings of one pair (e.g. an augmented training
                file read back): they are held out together.
            gate: ``"question"`` (inputs: questions) or ``"answer"`` (question + answer).
            negatives: your own off-topic questions (strings), or off-topic
                ``(question, answer)`` pairs for the answer gate.
            bank: built-in off-topic questions (``()`` for none).
            qa_model: the QA model whose answers to the off-topic questions become the
                answer gate's negatives (asked with ``ask_many``); required for the answer
                gate when there are off-topic questions without answers.
            heldout_fraction: share of each class held out, 0 to 0.5, by pair (every
                wording of a held-out pair is held out). With 2 or more pairs in a
                class at least one is held out (when the fraction is > 0).
            seed: seed of the split (same seed, same split), 0 to :data:`MAX_SEED`.
            concurrency: questions in flight when asking ``qa_model``.
            max_negatives_per_positive: most off-topic examples per on-topic one (at
                least 1; ``None``: no cap). Bank questions beyond it are left out, a
                seeded choice counted as ``dropped["capped"]``; your own ``negatives``
                are always kept. With the answer gate the left-out ones are not asked.
            rephrasings: more wordings of the pairs' questions (question -> its
                rephrasings, e.g. from :class:`~finetune_qa.rephrase.Rephraser`): more
                positives, each with its pair's answer, held out with their pair.
            near_misses: add near-miss negatives: :data:`NEAR_MISS_QUESTIONS` and the
                pairs' questions with another company's name (:func:`company_swaps`).
                ``None`` (default): when ``rephrasings`` are given.
            company: the name to swap (default: :func:`company_name` of the questions).

        Raises:
            UsageError: a bad argument, or the answer gate without ``qa_model``.
            DatasetError: no positives or no negatives left.
        """
        _check_build(gate, seed, max_negatives_per_positive, heldout_fraction, pairs)
        dropped: Counter[str] = Counter()
        positives, n_pairs, n_reph = _positives(pairs, gate, rephrasings or {}, dropped)
        if near_misses is None:
            near_misses = bool(rephrasings)
        near: list[str] = []
        if near_misses:
            name = company or company_name(e.question for e in positives)
            swapped = company_swaps(_pair_questions(positives), name) if name else []
            near = [*swapped, *NEAR_MISS_QUESTIONS]
        seen = {question_key(e.question) for e in positives}
        read, candidates = _negative_candidates(negatives, near, bank, seen, dropped)
        if max_negatives_per_positive is not None:
            limit = int(max_negatives_per_positive * len(positives))
            candidates = _cap_bank(candidates, limit, seed, dropped)
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
        sources = ("bank", "user", "near_miss") if near_misses else ("bank", "user")
        counts = DataCounts(
            gate=gate,
            pairs_read=n_pairs,
            negatives_read={k: read.get(k, 0) for k in sources},
            positives=len(positives),
            negatives={k: sum(1 for e in negs if e.source == k) for k in sources},
            dropped={k: dropped.get(k, 0) for k in _DROP_REASONS},
            train_on_topic=len(train_on),
            train_off_topic=len(train_off),
            heldout_on_topic=len(held_on),
            heldout_off_topic=len(held_off),
            seed=seed,
            heldout_fraction=float(heldout_fraction),
            rephrasings_read=n_reph,
            rephrasings=sum(1 for e in positives if e.source == "rephrasing"),
            heldout_pairs=len({_group(e) for e in held_on}),
            heldout_rephrasings=sum(1 for e in held_on if e.source == "rephrasing"),
        )
        # interleave the classes deterministically so no batch is all one label
        train = sorted(train_on + train_off, key=lambda e: _rank(e, seed + 1))
        return cls(gate, train, held_on + held_off, counts)

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
    """Keep at most ``limit`` negatives.

    All the user's, then a seeded choice of the near-misses, then of the bank's with the
    room left.
    """
    room = max(0, limit - sum(1 for src, _, _ in candidates if src == "user"))
    salt = seed.to_bytes(8, "little", signed=True)
    keep: set[int] = set()
    for source in ("near_miss", "bank"):
        mine = [i for i, (src, _, _) in enumerate(candidates) if src == source]
        ranked = sorted(mine, key=lambda i: key_hash(question_key(candidates[i][1]), salt=salt))
        keep.update(ranked[:room])
        dropped["capped"] += max(0, len(mine) - room)
        room = max(0, room - len(mine))
    return [c for i, c in enumerate(candidates) if c[0] == "user" or i in keep]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def _rank(example: GateExample, seed: int) -> int:
    return key_hash(question_key(example.question), salt=seed.to_bytes(8, "little", signed=True))


def _group(example: GateExample) -> str:
    return example.group or question_key(example.question)


def _split(
    items: list[GateExample], fraction: float, seed: int
) -> tuple[list[GateExample], list[GateExample]]:
    """Seeded split by group: no wording of one pair (no question) lands on both sides."""
    groups = sorted({_group(e) for e in items})
    n = len(groups)
    k = round(n * fraction)
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    salt = seed.to_bytes(8, "little", signed=True)
    held = set(sorted(groups, key=lambda g: key_hash(g, salt=salt))[:k])
    return [e for e in items if _group(e) not in held], [e for e in items if _group(e) in held]


_DROP_REASONS = ("duplicate_positive", "duplicate_negative", "conflict", "capped", "unanswered")


def _check_build(gate: object, seed: object, cap: object, fraction: object, pairs: object) -> None:
    if gate not in ("question", "answer"):
        raise UsageError(f"gate must be 'question' or 'answer', got {gate!r}")
    _check_seed(seed)
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap >= 1
    ):
        raise UsageError(
            f"max_negatives_per_positive must be a number >= 1, or None for no cap; got {cap!r}"
        )
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 <= fraction <= 0.5
    ):
        raise UsageError(f"heldout_fraction must be from 0 to 0.5, got {fraction!r}")
    if isinstance(pairs, (str, bytes, os.PathLike)):
        raise UsageError(
            "pairs must be QA pairs, not a path; read a file with "
            "finetune_qa.read_qa(path) and pass what it returns"
        )


def _positives(
    pairs: Iterable[PairInput],
    gate: Gate,
    rephrasings: Mapping[str, Sequence[str]],
    dropped: Counter[str],
) -> tuple[list[GateExample], int, int]:
    """The on-topic examples (pairs, then their rephrasings), and how many of each were read.

    Every wording of one pair shares its group: pairs with the same answer are one pair.
    """
    by_key = {question_key(q): list(texts) for q, texts in rephrasings.items()}
    positives: list[GateExample] = []
    seen: set[str] = set()
    groups: dict[str, str] = {}
    n_pairs = n_reph = 0
    for i, item in enumerate(pairs):
        n_pairs += 1
        pair = _as_pair(item, "pair", i)
        key = question_key(pair.question)
        group = groups.setdefault(pair.answer.strip(), key)
        wordings = [(pair.question, "pairs")]
        extra = by_key.pop(key, [])
        n_reph += len(extra)
        wordings += [(text, "rephrasing") for text in extra]
        for text, source in wordings:
            k = question_key(text)
            if not k or k in seen:
                dropped["duplicate_positive"] += 1
                continue
            seen.add(k)
            positives.append(
                GateExample(
                    question=text.strip(),
                    answer=pair.answer.strip() if gate == "answer" else None,
                    on_topic=True,
                    source=source,  # type: ignore[arg-type]
                    group=group,
                )
            )
    return positives, n_pairs, n_reph


def _pair_questions(positives: list[GateExample]) -> list[str]:
    return [e.question for e in positives]


def _negative_candidates(
    negatives: Iterable[NegativeInput],
    near: Sequence[str],
    bank: Sequence[str],
    seen: set[str],
    dropped: Counter[str],
) -> tuple[Counter[str], list[tuple[NegativeSource, str, str | None]]]:
    """The negatives read (by source) and those kept: no duplicates, none a QA question."""
    read: Counter[str] = Counter()
    candidates: list[tuple[NegativeSource, str, str | None]] = []
    given: list[tuple[NegativeSource, NegativeInput]] = [("user", n) for n in negatives]
    given += [("near_miss", q) for q in near]
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
    return read, candidates
