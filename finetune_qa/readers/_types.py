"""The readers' vocabulary: the pair tuple, read issues, the reasons, shared messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias

from finetune_qa.data import Provenance

RawPair: TypeAlias = tuple[str, str, int | None, int | None, int | None, tuple[str, ...]]
"""``(question, answer, line, row, item, changes)``: the fast form :meth:`QASource.iter_raw` yields.

``line`` is the 1-based physical line where the record starts; ``row`` the 1-based data
row (CSV rows after the header, or JSONL records counting non-blank lines); ``item`` the
1-based position in the row's list (seed layout only; the item's number when the lists
are matched by number); ``changes`` the reasons the reader altered the pair (one of the
shared tuples built from :data:`CHANGE_REASONS`), ``()`` if none.
"""

SourceFormat = Literal["auto", "seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl"]
"""The layouts :class:`QASource` reads; ``"auto"`` detects one from the file."""

ISSUE_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "missing_cell": "a CSV row has fewer cells than the header, so a required cell is absent",
        "empty_question": "the question is empty (after stripping white space and list markers)",
        "empty_answer": "the answer is empty (after stripping white space and list markers)",
        "unbalanced_row": "a seed row's question and answer lists differ in length (or one is "
        "empty) and cannot be matched by number, so the whole row is skipped",
        "unmatched_question": "a numbered question has no answer with the same number",
        "unmatched_answer": "a numbered answer has no question with the same number",
        "multi_turn": "a chat example has more than one user or assistant message",
        "no_user_or_assistant": "a chat example lacks a user or an assistant message",
        "non_text_content": "a chat message's content is not a string",
    }
)
"""Every :attr:`ReadIssue.reason` the readers emit, with what it means."""

CHANGE_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "numbering_stripped": "a list marker (1., 2), Q:, A:, -, ...) was removed",
        "continuation_joined": "lines without a number were joined to the numbered item above",
        "whitespace_stripped": "white space around the question or answer was removed",
        "stop_marker_removed": "the stop marker was removed from the end of the answer",
    }
)
"""Every change reason that can appear in a :data:`RawPair`, with what it means."""


# The ``changes`` of a pair are shared tuples, so the hot path allocates nothing for them.
_NO_CHANGE: tuple[str, ...] = ()
_WHITESPACE: tuple[str, ...] = ("whitespace_stripped",)
_STOP_REMOVED: tuple[str, ...] = ("stop_marker_removed",)
_WHITESPACE_STOP: tuple[str, ...] = ("whitespace_stripped", "stop_marker_removed")

_COLUMN_HINT = "CLI: --question-column/--answer-column"
_UTF8_HINT = (
    "save the file as UTF-8 (in Excel: 'CSV UTF-8'), or convert it, "
    "e.g. `iconv -f cp1252 -t utf-8 OLD > NEW`"
)
_UTF16_HINT = (
    "save the file as UTF-8 (in Excel: 'CSV UTF-8'), or convert it, "
    "e.g. `iconv -f utf-16 -t utf-8 OLD > NEW`"
)


@dataclass(frozen=True, slots=True)
class ReadIssue:
    """Candidate pairs a reader could not use, with where they are and why.

    Readers yield these in the stream instead of raising, and go on with the next record.

    Attributes:
        reason: machine key, one of :data:`ISSUE_REASONS`.
        message: one human sentence: what is wrong and what to do.
        file: the source file, as given.
        line: 1-based physical line where the record starts.
        row: 1-based data row (CSV) or record (JSONL).
        item: 1-based item in the row's list (seed layout), when one item is concerned.
        question: the question text involved, if any (for report examples).
        answer: the answer text involved, if any.
        count: how many candidate pairs this issue drops.
    """

    reason: str
    message: str
    file: str | None
    line: int | None
    row: int | None = None
    item: int | None = None
    question: str | None = None
    answer: str | None = None
    count: int = 1

    def render(self) -> str:
        """Short ``file:line (row R, item I): message`` form for reports and logs."""
        where = Provenance.model_construct(
            file=self.file, line=self.line, row=self.row, item=self.item
        ).render()
        return f"{where}: {self.message}"


def _json_type(value: object) -> str:
    """JSON's name for a parsed value's type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
