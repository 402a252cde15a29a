"""Case ids and sampling: the pieces of building a suite that do not need the suite."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from finetune_qa._text import key_hash, question_key
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
