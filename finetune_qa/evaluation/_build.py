"""Case ids and sampling: the pieces of building a suite that do not need the suite."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from finetune_qa._text import key_hash, question_key
from finetune_qa.data import QAPair
from finetune_qa.evaluation._metrics import _plain
from finetune_qa.exceptions import UsageError


def _sample(rows: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    if limit is None or limit >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def _limit_of(limit: int | Mapping[str, int] | None, set: str) -> int | None:
    value = limit.get(set) if isinstance(limit, Mapping) else limit
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"limit must be a whole number >= 0 (per set), got {value!r}")
    return value


def case_id(set: str, question: str) -> str:
    """The stable id of a case: its set and a short hash of the question's normal form.

    It depends on the question only (see :func:`~finetune_qa._text.question_key`), not on
    its position, so two runs on different data, limits or seeds pair the same question
    under the same id in :func:`compare`.

    Example:
        >>> case_id("verbatim", "What is Acme?") == case_id("verbatim", "  what is ACME ")
        True
    """
    return f"{set}-{key_hash(question_key(question)):016x}"[: len(set) + 1 + _ID_HEX]


_ID_HEX = 10  # 40 bits: a clash is unlikely below millions of questions, and resolved anyway


class _CaseIds:
    """Hands out :func:`case_id` ids, with ``-2``, ``-3`` ... on the rare hash clash."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken)

    def new(self, set: str, question: str) -> str:
        base = case_id(set, question)
        out, n = base, 1
        while out in self.taken:
            n += 1
            out = f"{base}-{n}"
        self.taken.add(out)
        return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pair(pair: QAPair | tuple[str, str]) -> tuple[str, str]:
    return (pair.question, pair.answer) if isinstance(pair, QAPair) else pair


def _verbatim_rows(
    pairs: Iterable[QAPair | tuple[str, str]], dropped: Counter[str]
) -> list[tuple[str, str]]:
    """``(question, answer)`` of the training pairs: blank and repeated questions dropped."""
    verbatim: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pair in pairs:
        q, a = _pair(pair)
        key = question_key(q)
        if not key:
            dropped["blank_question"] += 1
            continue
        if key in seen:
            dropped["duplicate_question"] += 1
            continue
        seen.add(key)
        verbatim.append((q.strip(), a))
    return verbatim


def _variation_rows(
    variations: Mapping[str, str | Sequence[str]] | Iterable[QAPair | tuple[str, str]] | None,
    verbatim: Sequence[tuple[str, str]],
    dropped: Counter[str],
) -> list[tuple[str, str, str | None]]:
    """``(rephrasing, answer, training question)`` rows, each linked to its training question."""
    answers = {question_key(q): a for q, a in verbatim}
    var_rows: list[tuple[str, str, str | None]] = []
    if isinstance(variations, Mapping):
        questions = {question_key(q): q for q, _ in verbatim}
        for source, texts in variations.items():
            key = question_key(source)
            if key not in answers:
                raise UsageError(
                    f"variations name the question {source!r}, which is not among the "
                    "pairs; key variations by a training question"
                )
            for text in [texts] if isinstance(texts, str) else texts:
                var_rows.append((text, answers[key], questions[key]))
    elif variations is not None:
        by_answer = {" ".join(_plain(a)): q for q, a in verbatim}
        for pair in variations:
            q, a = _pair(pair)
            var_rows.append((q, a, by_answer.get(" ".join(_plain(a)))))
    seen: set[str] = set()
    out: list[tuple[str, str, str | None]] = []
    for q, a, src in var_rows:
        key = question_key(q)
        reason = (
            "blank_variation"
            if not key
            else "variation_is_a_training_question"
            if key in answers
            else "duplicate_variation"
            if key in seen
            else None
        )
        if reason is not None:
            dropped[reason] += 1
            continue
        seen.add(key)
        out.append((q.strip(), a, src))
    return out


def _unrelated_rows(questions: Iterable[str], dropped: Counter[str]) -> list[str]:
    """The off-topic questions, blank and repeated ones dropped."""
    off: list[str] = []
    seen: set[str] = set()
    for q in questions:
        key = question_key(q)
        if not key or key in seen:
            dropped["duplicate_unrelated" if key else "blank_unrelated"] += 1
            continue
        seen.add(key)
        off.append(q.strip())
    return off
