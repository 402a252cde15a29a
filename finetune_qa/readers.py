"""QA sources -> streams of question/answer pairs, with where each pair came from.

Four layouts are read, chosen by ``format=`` or detected from the file:

* ``seed_csv``: the seed workflow's layout. Each row has a ``questions`` cell and an
  ``answers`` cell holding newline-separated lists (one item per line); the i-th
  question goes with the i-th answer. List markers are stripped (:func:`strip_numbering`);
  when both lists are numbered the items are matched by number, so a gap in one list
  cannot shift every answer after it onto the wrong question.
* ``pairs_csv``: one pair per row, columns ``question`` and ``answer``.
* ``pairs_jsonl``: one ``{"question": ..., "answer": ...}`` object per line.
* ``chat_jsonl``: existing chat fine-tuning data, ``{"messages": [...]}`` per line;
  single-turn examples are read back into pairs.

Everything streams: a file is read line by line, in constant memory, however large.
Files are decoded as UTF-8 (a leading byte-order mark is dropped; CRLF and LF both work).

What goes wrong is told apart in two ways. A file that cannot be read as its format at
all (missing, not UTF-8, broken quoting, not JSON, ...) raises an
:class:`~finetune_qa.exceptions.InputError` naming the file and line. A file that is
readable but holds some pairs that cannot be used (an unbalanced row, an empty answer,
a multi-turn chat) yields a :class:`ReadIssue` for them and goes on; its ``count`` says
how many candidate pairs were dropped, so pairs read plus dropped add up.

Problems found while detecting the layout (missing file, directory, empty file, missing
or duplicate columns in the header) are raised by the :class:`QASource` constructor;
every other error is raised by the iterator when it reaches the bad line.

Example:
    >>> from finetune_qa.readers import QASource, strip_numbering
    >>> strip_numbering("12) How do I reset my password?")
    ('How do I reset my password?', 12)
    >>> source = QASource("faq.csv")  # doctest: +SKIP
    >>> source.format  # doctest: +SKIP
    'seed_csv'
    >>> for pair in source.pairs():  # doctest: +SKIP
    ...     print(pair.source.render(), pair.question)
    faq.csv:2 (row 1, item 1) What is Acme?
    >>> [issue.reason for issue in source.issues]  # doctest: +SKIP
    ['unbalanced_row']
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, TypeAlias

import orjson

from finetune_qa._fs import MAX_LINE_BYTES, capped_line, capped_lines, open_regular, shrunk
from finetune_qa.data import Provenance, QAPair
from finetune_qa.exceptions import (
    CSVFormatError,
    InputFileError,
    JSONLFormatError,
    RecordError,
    UnbalancedListsError,
    UsageError,
)

if TYPE_CHECKING:
    from _csv import Reader as _CSVReader

__all__ = [
    "CHANGE_REASONS",
    "ISSUE_REASONS",
    "QASource",
    "RawPair",
    "ReadIssue",
    "SourceFormat",
    "detect_stop_marker",
    "read_qa",
    "strip_numbering",
]

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
_F_STRIPPED = 1
_F_JOINED = 2
_SEED_CHANGES: tuple[tuple[str, ...], ...] = (
    _NO_CHANGE,
    ("numbering_stripped",),
    ("continuation_joined",),
    ("numbering_stripped", "continuation_joined"),
)
_WHITESPACE: tuple[str, ...] = ("whitespace_stripped",)
_STOP_REMOVED: tuple[str, ...] = ("stop_marker_removed",)
_WHITESPACE_STOP: tuple[str, ...] = ("whitespace_stripped", "stop_marker_removed")

# Seed cells hold whole lists of long answers, and csv's default 128 KiB cell limit rejects
# legitimate rows. 16 MiB is far above any real cell yet still stops an unclosed quote from
# swallowing a whole file into one field. The limit is process-wide, so only ever raise it.
_FIELD_LIMIT = 16 * 1024 * 1024
if csv.field_size_limit() < _FIELD_LIMIT:
    csv.field_size_limit(_FIELD_LIMIT)

_MARKER_RE = re.compile(
    r"""
    (?:
        ([0-9]{1,9})(?:\.(?![0-9])|\))      # 1.  1)  10.  12)   but not the decimal 2.5
      | \(([0-9]{1,9})\)                    # (3)
      | (?:question[ \t]*|answer[ \t]*|q|a)([0-9]{1,9})?[ \t]*(?::|\.(?!\S))
                                            # Q: A: Q. A. Q1: A1. Question: Answer 2:
      | [-*](?=\s)                          # - item   * item   (not -5, not *bold*)
      | \u2022                              # bullet character
    )\s*
    """,
    re.IGNORECASE | re.VERBOSE,
)
_MARKER_MATCH = _MARKER_RE.match
# Splits "\n" + cell at every line that starts with an ``N.`` or ``N)`` marker.
_SPLIT_NUMBERED = re.compile(r"\n[^\S\n]*([0-9]{1,9})(?:\.(?![0-9])|\))[^\S\n]*").split
_SMALL_INTS = {str(i): i for i in range(1, 1000)}
# The first characters a marker can start with: lines starting otherwise skip the regex.
_MARKER_START = frozenset("0123456789(qQaA-*\u2022")

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_FORMATS: tuple[str, ...] = ("auto", "seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl")
_JSONL_EXTENSIONS = frozenset({".jsonl", ".json", ".ndjson"})
_SNIFF_LINES = 200  # examples read up front for a chat file's system prompt and stop marker
_CLOSING = frozenset(".,;:!?)\"'’”»…")  # a last word ending in these is prose, not a marker
_DEFAULT_COLUMNS = {
    "seed_csv": ("questions", "answers"),
    "pairs_csv": ("question", "answer"),
    "pairs_jsonl": ("question", "answer"),
}
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
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        extra = []
        if self.row is not None:
            extra.append(f"row {self.row}")
        if self.item is not None:
            extra.append(f"item {self.item}")
        if extra:
            where += f" ({', '.join(extra)})"
        return f"{where}: {self.message}"


def strip_numbering(item: str) -> tuple[str, int | None]:
    """Remove one list marker from the start of an item.

    Markers: ``1.``, ``1)``, ``10.``, ``(3)``; ``Q:``, ``A:``, ``Question:``, ``Answer:``
    and ``Q1:`` / ``A1.`` / ``Question 2:`` (any case; a ``.`` after a letter or word
    must be followed by white space); and the bullets ``-`` and ``*`` (followed by white
    space) and ``•``. White space after the marker, and around the item, is removed.
    A number followed by ``.`` and a digit is a decimal, not a marker, and a number with
    no punctuation after it is text: ``"2.5 GB is the limit"`` and ``"3 days"`` stay.

    Args:
        item: one line of a list.

    Returns:
        The text without its marker, and the marker's number if it had one, else None.

    Example:
        >>> strip_numbering("10. What is Acme?")
        ('What is Acme?', 10)
        >>> strip_numbering("- 2.5 GB")
        ('2.5 GB', None)
    """
    text = item.strip()
    if text and text[0] in _MARKER_START:
        m = _MARKER_MATCH(text)
        if m is not None:
            group = m.lastindex
            return text[m.end() :], int(m[group]) if group else None
    return text, None


def _parse_list(cell: str) -> tuple[list[str], list[int] | None, list[int]]:
    """Split a seed cell into items: (texts, numbers or None if unnumbered, change flags).

    Blank lines are skipped. When the first item is numbered, the list is numbered: a
    line that does not start with a numbered marker continues the item above it (its text
    is kept as written, bullets included) and every item has a number. When the first
    item has another marker (``Q:``, ``A:``, a bullet), a line with no marker at all
    continues the item above it.
    """
    # Fast path for the usual cell, every line one ``N.`` / ``N)`` item: one regex split
    # in C. Anything else (blank lines, continuations, other markers) takes the loop below,
    # which gives the same result for these cells (a property test checks it).
    parts = _SPLIT_NUMBERED("\n" + cell)
    n = len(parts) >> 1
    if n and not parts[0] and n == cell.count("\n") + 1:
        small = _SMALL_INTS
        return (
            [text.strip() for text in parts[2::2]],
            [small.get(number) or int(number) for number in parts[1::2]],
            [_F_STRIPPED] * n,
        )
    return _parse_lines(cell)


def _parse_lines(cell: str) -> tuple[list[str], list[int] | None, list[int]]:
    """The general case of :func:`_parse_list`, line by line."""
    texts: list[str] = []
    flags: list[int] = []
    numbers: list[int] | None = None
    marked = False  # the first item had an unnumbered marker (Q:, A:, a bullet)
    match = _MARKER_MATCH
    starts = _MARKER_START
    for raw in cell.split("\n"):
        line = raw.strip()
        if not line:
            continue
        m = match(line) if line[0] in starts else None
        if marked and m is None:
            # in a marked list, a line without a marker continues the item above it
            texts[-1] = f"{texts[-1]}\n{line}" if texts[-1] else line
            flags[-1] |= _F_JOINED
            continue
        if numbers is not None:
            if m is not None:
                group = m.lastindex  # the number's group, None for an unnumbered marker
                if group:
                    numbers.append(int(m[group]))
                    texts.append(line[m.end() :])
                    flags.append(_F_STRIPPED)
                    continue
            previous = texts[-1]
            texts[-1] = f"{previous}\n{line}" if previous else line
            flags[-1] |= _F_JOINED
        elif m is None:
            texts.append(line)
            flags.append(0)
        else:
            group = m.lastindex
            if not texts:
                if group:
                    numbers = [int(m[group])]
                else:
                    marked = True
            texts.append(line[m.end() :])
            flags.append(_F_STRIPPED)
    return texts, numbers, flags


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class QASource:
    """A file of question/answer pairs in one of the supported layouts.

    The layout is detected (or checked) when the source is created, by reading the
    file's extension and its header or first non-blank line; the pairs are read lazily,
    streaming, each time :meth:`iter_raw` or :meth:`pairs` is iterated. Extra columns
    and extra JSON keys are ignored.

    Args:
        path: the file to read.
        format: the layout, or ``"auto"`` to detect it. By extension: ``.csv`` and
            ``.tsv`` are CSV, whose header decides between the seed layout (``questions``
            and ``answers`` columns, or the configured ones) and one pair per row
            (``question`` and ``answer``); ``.jsonl``, ``.json`` and ``.ndjson`` are
            JSONL, chat data if the first record has a ``messages`` key. Other files are
            JSONL if their first non-blank line starts with ``{``, else CSV. With custom
            column names, ``"auto"`` picks the seed layout when both are present; pass
            ``format="pairs_csv"`` for a pair-per-row file.
        question_column: column (CSV) or key (``pairs_jsonl``) holding the questions.
            Defaults to ``questions`` for ``seed_csv`` and ``question`` otherwise. CSV
            headers match ignoring case and surrounding white space; JSON keys exactly.
        answer_column: the same for answers (``answers`` / ``answer``).
        delimiter: CSV delimiter; None means ``,``, or a tab for a ``.tsv`` file.
        strict: seed layout only: raise :class:`~finetune_qa.exceptions.UnbalancedListsError`
            for a row whose unnumbered lists differ in length, instead of skipping the
            row and reporting an ``unbalanced_row`` issue. Ignored by other layouts.
        stop: chat_jsonl only: the stop marker (e.g. ``"**STOP**"``) to remove, with the
            white space before it, from the end of assistant answers. None (the default)
            detects it from the first examples (:attr:`stop` says what was found); ``""``
            removes nothing. Ignored by other layouts.

    Attributes:
        path: the path, as given.
        format: the resolved layout (never ``"auto"``).
        question_column: the question column or key in use (None for ``chat_jsonl``).
        answer_column: the answer column or key in use (None for ``chat_jsonl``).
        delimiter: the CSV delimiter in use.
        strict: as given.
        stop: chat_jsonl: the stop marker removed from answers, as given or detected (None:
            none). Other layouts: as given (``""`` becomes None).
        stop_detected: True when :attr:`stop` was detected rather than given.
        system_prompt: chat_jsonl: the system message the first examples share (None when
            they carry none, or when they differ; :attr:`system_prompt_varies` tells which).
            A build that is not given a system prompt keeps this one. Other layouts: None.
        system_prompt_varies: chat_jsonl: the first examples carry different system messages.
        issues: the issues of the latest :meth:`pairs` run without an ``on_issue`` callback.

    Raises:
        UsageError: an unknown ``format``, a bad ``delimiter``, or the same column
            for questions and answers.
        InputFileError: the file is missing, a directory, unreadable or empty, or its
            first line is not UTF-8.
        CSVFormatError: the CSV header lacks a required column, has it twice, or
            matches no layout; or its quoting is broken.
    """

    path: str
    format: Literal["seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl"]
    question_column: str | None
    answer_column: str | None
    delimiter: str
    strict: bool
    stop: str | None
    stop_detected: bool
    system_prompt: str | None
    system_prompt_varies: bool
    issues: list[ReadIssue]

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: SourceFormat = "auto",
        question_column: str | None = None,
        answer_column: str | None = None,
        delimiter: str | None = None,
        strict: bool = False,
        stop: str | None = None,
    ) -> None:
        if format not in _FORMATS:
            raise UsageError(
                f"unknown format {format!r}; use one of {', '.join(repr(f) for f in _FORMATS)}"
            )
        if delimiter is not None and (
            not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'
        ):
            raise UsageError(
                f"delimiter must be one character other than a quote or line break, "
                f"not {delimiter!r}"
            )
        if question_column is not None and question_column == answer_column:
            raise UsageError(
                f"question_column and answer_column are both {question_column!r}; "
                "name two different columns"
            )
        self.path = os.fspath(path)
        extension = os.path.splitext(self.path)[1].lower()
        self.delimiter = delimiter or ("\t" if extension == ".tsv" else ",")
        self.strict = strict
        self.stop = stop or None
        self.stop_detected = False
        self.system_prompt = None
        self.system_prompt_varies = False
        self.issues = []
        self.rows_read = 0
        self._range: tuple[int, int, int] | None = None
        self._columns: tuple[int, int] | None = None
        self._question_option = question_column
        self._answer_option = answer_column
        self.question_column = None
        self.answer_column = None
        self.format = self._detect(format, extension)
        if self.format == "chat_jsonl":
            self._sniff_chat(detect_stop=stop is None)

    def __repr__(self) -> str:
        return f"QASource({self.path!r}, format={self.format!r})"

    # -- public iteration -------------------------------------------------------------

    def iter_raw(self) -> Iterator[RawPair | ReadIssue]:
        """Stream the file's pairs as plain tuples, with issues in between.

        This is the fast path: no validation models are built. Each pair is a
        :data:`RawPair`; pairs that cannot be used come as :class:`ReadIssue` objects.
        The file is opened when iteration starts and closed when it ends.

        Yields:
            RawPair tuples and ReadIssue objects, in file order.

        Raises:
            InputError: when the iterator reaches a line that cannot be read (not
                UTF-8, broken quoting, not JSON, wrong record shape), or in strict mode
                an unbalanced row; the error names the file and line.
        """
        if self.format == "seed_csv":
            return self._iter_seed()
        if self.format == "pairs_csv":
            return self._iter_pairs_csv()
        if self.format == "pairs_jsonl":
            return self._iter_pairs_jsonl()
        return self._iter_chat_jsonl()

    def pairs(self, on_issue: Callable[[ReadIssue], None] | None = None) -> Iterator[QAPair]:
        """Stream the file's pairs as validated :class:`~finetune_qa.data.QAPair` objects.

        Args:
            on_issue: called with each :class:`ReadIssue`. If None, the issues are
                collected in :attr:`issues`, which is emptied when iteration starts.

        Yields:
            One QAPair per usable pair, its ``source`` saying file, line, row and item.

        Raises:
            InputError: as :meth:`iter_raw`.
        """
        if on_issue is None:
            self.issues = []
            on_issue = self.issues.append
        file = self.path
        for record in self.iter_raw():
            if isinstance(record, ReadIssue):
                on_issue(record)
                continue
            question, answer, line, row, item, _ = record
            yield QAPair(
                question=question,
                answer=answer,
                source=Provenance(file=file, line=line, row=row, item=item),
            )

    # -- detection --------------------------------------------------------------------

    def _detect(
        self, requested: str, extension: str
    ) -> Literal["seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl"]:
        with self._open() as f:
            if requested == "auto":
                if extension in (".csv", ".tsv"):
                    family = "csv"
                elif extension in _JSONL_EXTENSIONS:
                    family = "jsonl"
                else:
                    first = self._first_line(f)
                    family = "jsonl" if first.lstrip().startswith(b"{") else "csv"
                    f.seek(0)
            else:
                family = "csv" if requested.endswith("_csv") else "jsonl"

            if family == "csv":
                reader = self._csv_reader(f)
                header, line = self._read_header(reader)
                fmt = self._csv_format(requested, header, line)
                self._column_indexes(fmt, header, line)
                return fmt

            first = self._first_line(f)
        if requested == "auto":
            try:
                record = orjson.loads(first)
            except orjson.JSONDecodeError:
                record = None  # reported with its line number when the stream reaches it
            requested = (
                "chat_jsonl" if isinstance(record, dict) and "messages" in record else "pairs_jsonl"
            )
        if requested == "pairs_jsonl":
            self.question_column = self._question_option or "question"
            self.answer_column = self._answer_option or "answer"
            if self.question_column == self.answer_column:
                raise UsageError(
                    f"the question and answer keys are both {self.question_column!r}; "
                    "name two different keys with question_column=/answer_column="
                )
            return "pairs_jsonl"
        return "chat_jsonl"

    def _open(self) -> IO[bytes]:
        # non-blocking open + regular-file check: a FIFO must not hang or be read twice
        return open_regular(
            self.path,
            kind="file",
            directory_hint="pass the path of a .csv or .jsonl file inside it",
            pipe_hint="save the data to a .csv or .jsonl file and pass that",
            missing_hint="check the path and the working directory",
        )

    def _empty(self) -> InputFileError:
        return InputFileError(
            "is empty",
            path=self.path,
            hint="the file holds no data; check that it is the right file",
        )

    def _check_bom(self, first: bytes) -> bytes:
        """The first line without a UTF-8 BOM; a UTF-16/32 BOM is an error."""
        if first.startswith(_BOM):
            return first[3:]
        if first.startswith(_UTF16_BOMS):
            raise InputFileError(
                "is UTF-16 encoded, not UTF-8", path=self.path, line=1, hint=_UTF16_HINT
            )
        return first

    def _first_line(self, f: IO[bytes]) -> bytes:
        """The first non-blank line (BOM removed); the file is empty if there is none."""
        n = 1
        line = self._check_bom(capped_line(f, self.path, n))
        while not line.strip():
            n += 1
            line = capped_line(f, self.path, n)
            if not line:
                raise self._empty()
        return line

    def _sniff_chat(self, *, detect_stop: bool) -> None:
        """Read the settings the first examples carry: their system message, their marker."""
        prompts: set[str | None] = set()
        answers: list[str] = []
        with self._open() as f:
            for n, raw in enumerate(f):
                if n >= _SNIFF_LINES:
                    break
                try:
                    obj = orjson.loads(raw[3:] if n == 0 and raw.startswith(_BOM) else raw)
                except orjson.JSONDecodeError:
                    continue  # reported with its line number when the stream reaches it
                messages = obj.get("messages") if isinstance(obj, dict) else None
                if type(messages) is not list:
                    continue
                system: str | None = None
                said = [m for m in messages if isinstance(m, dict)]
                for m in said:
                    if m.get("role") in ("system", "developer") and type(m.get("content")) is str:
                        system = m["content"]
                        break
                prompts.add(system)
                replies = [m.get("content") for m in said if m.get("role") == "assistant"]
                if len(replies) == 1 and type(replies[0]) is str and replies[0].strip():
                    answers.append(replies[0].strip())
        if len(prompts) == 1:
            self.system_prompt = prompts.pop()
        elif prompts:
            self.system_prompt_varies = True
        if detect_stop:
            self.stop = detect_stop_marker(answers)
            self.stop_detected = self.stop is not None

    # -- CSV --------------------------------------------------------------------------

    def _csv_reader(self, f: IO[bytes]) -> _CSVReader:
        first = self._check_bom(capped_line(f, self.path, 1))
        # bytes.decode per physical line: a line that is not UTF-8 surfaces as
        # UnicodeDecodeError out of the reader, and reader.line_num + 1 is its number.
        # Lines are capped before they are decoded (a file with no line breaks).
        rest = capped_lines(f, self.path, first_line=2, limit=4 * MAX_LINE_BYTES)
        lines = map(bytes.decode, chain((first,), rest))
        return csv.reader(lines, delimiter=self.delimiter, strict=True)

    def _read_header(self, reader: _CSVReader) -> tuple[list[str], int]:
        """The first non-blank record and the line it starts on."""
        last = 0
        try:
            for record in reader:
                start = last + 1
                last = reader.line_num
                if any(cell.strip() for cell in record):
                    if any("\x00" in cell for cell in record):
                        raise self._nul_error(start)
                    return record, start
        except csv.Error as exc:
            raise self._csv_error(exc, reader.line_num, last + 1) from exc
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc, reader.line_num + 1) from exc
        raise self._empty()

    def _csv_format(
        self, requested: str, header: list[str], line: int
    ) -> Literal["seed_csv", "pairs_csv"]:
        if requested == "seed_csv":
            return "seed_csv"
        if requested == "pairs_csv":
            return "pairs_csv"
        names = {cell.strip().casefold() for cell in header}
        q, a = self._question_option, self._answer_option
        seed = {(q or "questions").strip().casefold(), (a or "answers").strip().casefold()}
        pairs = {(q or "question").strip().casefold(), (a or "answer").strip().casefold()}
        if seed <= names:
            return "seed_csv"
        if pairs <= names:
            return "pairs_csv"
        if seed & names:
            return "seed_csv"  # the missing column is reported by _column_indexes
        if pairs & names:
            return "pairs_csv"
        seed_names = "/".join(sorted(seed, reverse=True))
        pair_names = "/".join(sorted(pairs, reverse=True))
        raise CSVFormatError(
            f"the header has neither {seed_names} columns (seed layout, lists in cells) "
            f"nor {pair_names} columns (one pair per row); columns found: "
            f"{self._found(header)}",
            path=self.path,
            line=line,
            hint=self._header_hint(header)
            or "rename the columns, or pass format= and question_column=/answer_column= "
            f"({_COLUMN_HINT})",
        )

    def _column_indexes(self, fmt: str, header: list[str], line: int) -> tuple[int, int]:
        default_q, default_a = _DEFAULT_COLUMNS[fmt]
        self.question_column = self._question_option or default_q
        self.answer_column = self._answer_option or default_a
        names = [cell.strip().casefold() for cell in header]
        indexes = []
        for role, column in (("question", self.question_column), ("answer", self.answer_column)):
            wanted = column.strip().casefold()
            found = [i for i, name in enumerate(names) if name == wanted]
            if not found:
                raise CSVFormatError(
                    f"no {column!r} column for the {role}s (layout {fmt}); columns found: "
                    f"{self._found(header)}",
                    path=self.path,
                    line=line,
                    hint=self._header_hint(header)
                    or f"rename the {role} column to {column!r}, or pass the header's name as "
                    f"{role}_column= ({_COLUMN_HINT})",
                )
            if len(found) > 1:
                positions = ", ".join(str(i + 1) for i in found)
                raise CSVFormatError(
                    f"column {column!r} appears {len(found)} times (columns {positions})",
                    path=self.path,
                    line=line,
                    hint="rename or remove the extra columns so each name appears once",
                )
            indexes.append(found[0])
        if indexes[0] == indexes[1]:
            raise UsageError(
                f"the question and answer columns are the same column, {self.question_column!r}; "
                "name two different columns with question_column=/answer_column="
            )
        return indexes[0], indexes[1]

    def _found(self, header: list[str]) -> str:
        shown = ", ".join(repr(_shorten(cell.strip(), 40)) for cell in header[:12])
        return shown + (f" and {len(header) - 12} more" if len(header) > 12 else "")

    def _header_hint(self, header: list[str]) -> str | None:
        """A delimiter hint when the header is one cell that looks split by something else."""
        if len(header) != 1:
            return None
        for other, name in ((";", "';'"), ("\t", "'\\t'"), (",", "','"), ("|", "'|'")):
            if other != self.delimiter and other in header[0]:
                return (
                    f"the header is a single column containing {name}; if that is the "
                    f"file's delimiter, pass delimiter={name}"
                )
        return None

    def _start_csv(self, f: IO[bytes]) -> tuple[_CSVReader, int, int]:
        if self._range is not None:
            # a byte range of a parallel build: no header here, columns known
            start, end, first_line = self._range
            assert self._columns is not None
            f.seek(start)
            lines = map(bytes.decode, _until(f, start, end))
            ranged = _OffsetReader(
                csv.reader(lines, delimiter=self.delimiter, strict=True), first_line - 1
            )
            return ranged, self._columns[0], self._columns[1]  # type: ignore[return-value]
        reader = self._csv_reader(f)
        header, line = self._read_header(reader)
        qi, ai = self._column_indexes(self.format, header, line)
        return reader, qi, ai

    def _utf16_error(self) -> CSVFormatError | None:
        """The error for a file that is UTF-16 text without a byte-order mark, if it is one.

        Such a file fails on its NUL bytes or on the CR of an encoded CRLF; either message
        (a NUL byte, old Mac line endings) would send the user the wrong way.
        """
        try:
            with open_regular(self.path) as f:
                head = f.read(4096)
        except InputFileError:
            return None
        pairs = len(head) // 2
        if pairs < 4:
            return None
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if max(odd, even) * 10 < pairs * 7:
            return None
        order = "little-endian (UTF-16LE)" if odd > even else "big-endian (UTF-16BE)"
        return CSVFormatError(
            f"is UTF-16 {order} text without a byte-order mark, not UTF-8",
            path=self.path,
            line=1,
            hint="save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8 in > out`)",
        )

    def _csv_error(self, exc: csv.Error, current: int, start: int) -> CSVFormatError:
        text = str(exc)
        if "new-line character" in text:
            utf16 = self._utf16_error()
            if utf16 is not None:
                return utf16
        if "unexpected end of data" in text:
            return CSVFormatError(
                f"a quoted cell in the record starting on line {start} is never closed "
                "(the file ends inside it)",
                path=self.path,
                line=start,
                hint='close the quote; a quote inside quoted text must be doubled ("")',
            )
        if "field limit" in text:
            return CSVFormatError(
                f"a cell in the record starting on line {start} is larger than the "
                f"{csv.field_size_limit() // (1024 * 1024)} MiB limit (error at line {current})",
                path=self.path,
                line=start,
                hint="look for a quote that is never closed, or split the text into smaller cells",
            )
        if "NUL" in text:
            return self._nul_error(current)
        if "new-line character" in text:
            return CSVFormatError(
                "a carriage return (CR) inside an unquoted cell",
                path=self.path,
                line=current,
                hint="the file may use old Mac line endings; save it with LF or CRLF line "
                "endings, or quote cells that contain line breaks",
            )
        if "expected after" in text:
            return CSVFormatError(
                f"text follows a closing quote ({text})",
                path=self.path,
                line=current,
                hint='quote the whole cell and double every quote inside it ("like ""this"""), '
                "or remove the stray quote",
            )
        return CSVFormatError(
            f"the CSV cannot be parsed: {text}",
            path=self.path,
            line=current,
            hint="check the quoting on this line; cells with line breaks must be quoted",
        )

    def _nul_error(self, line: int) -> CSVFormatError:
        utf16 = self._utf16_error()
        if utf16 is not None:
            return utf16
        return CSVFormatError(
            "contains a NUL byte",
            path=self.path,
            line=line,
            hint="the file may be UTF-16 or binary; save it as UTF-8 CSV",
        )

    def _decode_error(self, exc: UnicodeDecodeError, line: int) -> InputFileError:
        bad = exc.object[exc.start : exc.start + 1].hex()
        return InputFileError(
            f"is not valid UTF-8 (byte 0x{bad} at byte {exc.start + 1} of the line)",
            path=self.path,
            line=line,
            hint=_UTF8_HINT,
        )

    def _missing_cell(
        self, record: list[str], qi: int, ai: int, start: int, row: int, seed: bool
    ) -> ReadIssue | None:
        if not any(cell.strip() for cell in record):
            return None  # a blank line: not a record
        have_q = len(record) > qi
        present = record[qi] if have_q else record[ai] if len(record) > ai else None
        missing = self.answer_column if have_q else self.question_column
        count = 1
        if seed and present is not None:
            count = max(1, len(_parse_list(present)[0]))
        return ReadIssue(
            "missing_cell",
            f"the row has {_plural(len(record), 'cell')}, so its "
            f"{missing!r} cell is missing and the row was skipped; check for a missing "
            "delimiter or a line break outside quotes",
            self.path,
            start,
            row,
            question=present.strip() or None if have_q and present is not None else None,
            answer=present.strip() or None if not have_q and present is not None else None,
            count=count,
        )

    def _csv_cells(self, *, seed: bool) -> Iterator[tuple[int, int, str, str] | ReadIssue]:
        """The question and answer cells of every CSV record: ``(line, row, q, a)``.

        Records missing a required cell come as issues; a NUL byte, broken quoting or
        bad bytes raise, naming the line.
        """
        with self._open() as f:
            reader, qi, ai = self._start_csv(f)
            need = max(qi, ai)
            last = reader.line_num
            row = 0
            try:
                for record in reader:
                    start = last + 1
                    last = reader.line_num
                    row += 1
                    if len(record) <= need:
                        issue = self._missing_cell(record, qi, ai, start, row, seed=seed)
                        if issue is not None:
                            yield issue
                        continue
                    question = record[qi]
                    answer = record[ai]
                    if "\x00" in question or "\x00" in answer:
                        raise self._nul_error(start)
                    yield start, row, question, answer
                self.rows_read = row
            except csv.Error as exc:
                raise self._csv_error(exc, reader.line_num, last + 1) from exc
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc, reader.line_num + 1) from exc

    def _iter_pairs_csv(self) -> Iterator[RawPair | ReadIssue]:
        for cells in self._csv_cells(seed=False):
            if isinstance(cells, ReadIssue):
                yield cells
                continue
            start, row, question, answer = cells
            q = question.strip()
            a = answer.strip()
            if q and a:
                changes = (
                    _WHITESPACE if len(q) != len(question) or len(a) != len(answer) else _NO_CHANGE
                )
                if "\r" in q:
                    q = q.replace("\r\n", "\n")
                if "\r" in a:
                    a = a.replace("\r\n", "\n")
                yield (q, a, start, row, None, changes)
            elif q:
                yield self._empty_issue("answer", start, row, None, q, a)
            elif a:
                yield self._empty_issue("question", start, row, None, q, a)
            # both blank: an empty row, not a candidate pair

    def _empty_issue(
        self, which: str, line: int, row: int, item: int | None, q: str, a: str
    ) -> ReadIssue:
        where = f"item {item}" if item is not None else "the row"
        return ReadIssue(
            f"empty_{which}",
            f"the {which} in {where} is empty, so the pair was skipped; write the {which} "
            f"or remove the {'item' if item is not None else 'row'}",
            self.path,
            line,
            row,
            item,
            question=q.replace("\r\n", "\n") or None,
            answer=a.replace("\r\n", "\n") or None,
        )

    def _iter_seed(self) -> Iterator[RawPair | ReadIssue]:
        strict = self.strict
        changes_for = _SEED_CHANGES
        parse = _parse_list
        for cells in self._csv_cells(seed=True):
            if isinstance(cells, ReadIssue):
                yield cells
                continue
            start, row, qcell, acell = cells
            qs, qn, qf = parse(qcell)
            answers, an, af = parse(acell)
            nq = len(qs)
            na = len(answers)
            if qn is not None and qn == an and len(qset := set(qn)) == nq and 0 not in qset:
                # the usual case: both lists numbered alike; pair by number
                for i in range(nq):
                    q = qs[i]
                    a = answers[i]
                    if q and a:
                        yield (q, a, start, row, qn[i], changes_for[qf[i] | af[i]])
                    else:
                        yield self._empty_issue(
                            "question" if not q else "answer", start, row, qn[i], q, a
                        )
            elif (
                qn is not None
                and an is not None
                and len(qset := set(qn)) == nq
                and 0 not in qset
                and len(aset := set(an)) == na
                and 0 not in aset
            ):
                yield from self._pair_by_number(qs, qn, qf, answers, an, af, start, row)
            elif nq == na:
                for i in range(nq):
                    q = qs[i]
                    a = answers[i]
                    if q and a:
                        yield (q, a, start, row, i + 1, changes_for[qf[i] | af[i]])
                    else:
                        yield self._empty_issue(
                            "question" if not q else "answer", start, row, i + 1, q, a
                        )
            else:
                if strict:
                    raise UnbalancedListsError(
                        f"the row has {_plural(nq, 'question')} but {_plural(na, 'answer')}",
                        path=self.path,
                        line=start,
                        hint="number the items of both lists (1., 2., ...) so they "
                        "can be matched, or make the lists the same length",
                    )
                yield self._unbalanced(qs, answers, start, row)

    def _pair_by_number(
        self,
        qs: list[str],
        qn: list[int],
        qf: list[int],
        answers: list[str],
        an: list[int],
        af: list[int],
        start: int,
        row: int,
    ) -> Iterator[RawPair | ReadIssue]:
        """Match two numbered lists with unique numbers; report numbers only one side has."""
        by_number = {n: j for j, n in enumerate(an)}
        used: set[int] = set()
        for i, n in enumerate(qn):
            j = by_number.get(n)
            q = qs[i]
            if j is None:
                yield ReadIssue(
                    "unmatched_question",
                    f"question {n} has no answer numbered {n}, so it was "
                    f"skipped; add answer {n} or fix the numbering",
                    self.path,
                    start,
                    row,
                    n,
                    question=q or None,
                )
                continue
            used.add(j)
            a = answers[j]
            if q and a:
                yield (q, a, start, row, n, _SEED_CHANGES[qf[i] | af[j]])
            else:
                yield self._empty_issue("question" if not q else "answer", start, row, n, q, a)
        for j, n in enumerate(an):
            if j not in used:
                yield ReadIssue(
                    "unmatched_answer",
                    f"answer {n} has no question numbered {n}, so it was "
                    f"skipped; add question {n} or fix the numbering",
                    self.path,
                    start,
                    row,
                    n,
                    answer=answers[j] or None,
                )

    def _unbalanced(self, qs: list[str], answers: list[str], start: int, row: int) -> ReadIssue:
        nq, na = len(qs), len(answers)
        if not nq or not na:
            have, lack = ("questions", "answers") if nq else ("answers", "questions")
            message = (
                f"the row has {_plural(max(nq, na), have[:-1])} but no {lack}, so the row "
                f"was skipped; fill in the {lack} cell or remove the row"
            )
        else:
            message = (
                f"the row has {_plural(nq, 'question')} but {_plural(na, 'answer')}, so the "
                "row was skipped because which answer belongs to which question is unknown; "
                "number the items of both lists (1., 2., ...) or make the lists the same length"
            )
        return ReadIssue(
            "unbalanced_row",
            message,
            self.path,
            start,
            row,
            question=qs[0] if qs else None,
            answer=answers[0] if answers else None,
            count=max(nq, na),
        )

    # -- JSONL ------------------------------------------------------------------------

    def _json_lines(self, f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        if self._range is not None:
            start, end, first_line = self._range
            f.seek(start)
            return enumerate(_until(f, start, end), first_line)
        first = self._check_bom(capped_line(f, self.path, 1))
        return enumerate(chain((first,), capped_lines(f, self.path, first_line=2)), 1)

    # -- byte ranges, for parallel builds -----------------------------------------------

    def plan_ranges(self, target_bytes: int) -> Iterator[tuple[int, int, int]]:
        """Split the file's records into byte ranges of about ``target_bytes`` each.

        Yields ``(start, end, first_line)`` per range, lazily, so work on the first ranges
        can begin while the rest of the file is scanned. Every range starts and ends on
        a record boundary: for CSV, a line break outside quotes (an even number of quote
        characters since the header, which holds for any file the strict CSV parser
        accepts; a file with broken quoting fails in the range that holds the break, at
        the same line as a sequential read). Use :meth:`iter_range` to read one range.
        """
        csv_format = self.format in ("seed_csv", "pairs_csv")
        with self._open() as f:
            size = os.fstat(f.fileno()).st_size
            if csv_format:
                reader, qi, ai = self._start_csv(f)
                self._columns = (qi, ai)
                pos = f.tell()
                line = reader.line_num + 1
            else:
                first = capped_line(f, self.path, 1)
                pos = 3 if first.startswith(_BOM) else 0
                line = 1
            f.seek(pos)
            while pos < size:
                block = f.read(target_bytes)
                if not block:  # truncated since it was opened: end, do not plan empty ranges
                    raise shrunk(self.path)
                end = pos + len(block)
                lines = block.count(b"\n")
                odd = block.count(b'"') & 1 if csv_format else 0
                if end < size and (odd or not block.endswith(b"\n")):
                    cap = 4 * MAX_LINE_BYTES if csv_format else MAX_LINE_BYTES
                    for rest in capped_lines(f, self.path, first_line=line + lines, limit=cap):
                        end += len(rest)
                        lines += 1
                        if csv_format:
                            odd ^= rest.count(b'"') & 1
                        if not odd:
                            break
                yield pos, end, line
                line += lines
                pos = end
                f.seek(pos)

    def iter_range(
        self, start: int, end: int, first_line: int, columns: tuple[int, int] | None = None
    ) -> Iterator[RawPair | ReadIssue]:
        """Like :meth:`iter_raw`, for one range from :meth:`plan_ranges`.

        Rows are numbered from 1 within the range (the caller adds the rows of the
        ranges before it); lines are the file's own. ``columns`` are the CSV column
        indexes the planning instance found (``self._columns`` there).
        """
        self._range = (start, end, first_line)
        if columns is not None:
            self._columns = columns
        return self.iter_raw()

    def _raise_json_error(self, exc: orjson.JSONDecodeError, raw: bytes, line: int) -> NoReturn:
        try:
            text = raw.decode()
        except UnicodeDecodeError as decode_exc:
            raise self._decode_error(decode_exc, line) from decode_exc
        where = (
            "at the end of the line"
            if exc.pos >= len(text.rstrip())
            else f"at column {exc.pos + 1}"
        )
        hint = "each line must be one JSON object; fix or remove this line"
        if "\r" in text.rstrip("\r\n"):
            raise JSONLFormatError(
                "the lines end with a lone carriage return (CR: old Mac line endings), so "
                "this line holds several records",
                path=self.path,
                line=line,
                hint="save the file with LF line endings (e.g. `tr '\\r' '\\n' < in > out`)",
            ) from exc
        if line == 1 and text.lstrip().startswith("["):
            hint = (
                "the file must be JSON Lines, one object per line; convert a JSON array "
                "with `jq -c '.[]' in.json > out.jsonl`"
            )
        raise JSONLFormatError(
            f"not valid JSON ({exc.msg}, {where})",
            path=self.path,
            line=line,
            hint=hint,
        ) from exc

    def _not_object(self, value: object, line: int) -> JSONLFormatError:
        return JSONLFormatError(
            f"the line is {_json_type(value)}, not a JSON object",
            path=self.path,
            line=line,
            hint="each line must be one JSON object; fix or remove this line",
        )

    def _json_objects(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(line, row, object)`` for every non-blank line; bad JSON or a non-object raises."""
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        with self._open() as f:
            row = 0
            for line, raw in self._json_lines(f):
                if not raw or raw.isspace():
                    continue
                row += 1
                try:
                    obj = loads(raw)
                except decode_error as exc:
                    self._raise_json_error(exc, raw, line)
                if type(obj) is not dict:
                    raise self._not_object(obj, line)
                yield line, row, obj
            self.rows_read = row

    def _iter_pairs_jsonl(self) -> Iterator[RawPair | ReadIssue]:
        qk = self.question_column or "question"
        ak = self.answer_column or "answer"
        for line, row, obj in self._json_objects():
            question = obj.get(qk)
            answer = obj.get(ak)
            if type(question) is not str or type(answer) is not str:
                raise self._record_error(obj, qk, ak, line)
            q = question.strip()
            a = answer.strip()
            if q and a:
                changes = (
                    _WHITESPACE if len(q) != len(question) or len(a) != len(answer) else _NO_CHANGE
                )
                yield (q, a, line, row, None, changes)
            elif q:
                yield self._empty_issue("answer", line, row, None, q, a)
            else:
                yield self._empty_issue("question", line, row, None, q, a)

    def _record_error(self, obj: dict[str, object], qk: str, ak: str, line: int) -> RecordError:
        hint = (
            f"each line needs string values for {qk!r} and {ak!r}; if the keys have other "
            f"names, pass question_column=/answer_column= ({_COLUMN_HINT})"
        )
        for key in (qk, ak):
            if key not in obj:
                keys = ", ".join(repr(_shorten(k, 30)) for k in list(obj)[:10]) or "none"
                return RecordError(
                    f"the object has no {key!r} key (keys found: {keys})",
                    path=self.path,
                    line=line,
                    hint=hint,
                )
            value = obj[key]
            if type(value) is not str:
                return RecordError(
                    f"{key!r} is {_json_type(value)}, not a string",
                    path=self.path,
                    line=line,
                    hint=hint,
                )
        raise AssertionError("unreachable: both values are strings")  # pragma: no cover

    def _not_single_turn(
        self,
        user: dict[str, object],
        assistant: dict[str, object],
        users: int,
        assistants: int,
        others: int,
        line: int,
        row: int,
    ) -> ReadIssue:
        content = user.get("content")
        question = content.strip() or None if isinstance(content, str) else None
        content = assistant.get("content")
        answer = content.strip() or None if isinstance(content, str) else None
        if not users or not assistants:
            lacking = "user" if not users else "assistant"
            return ReadIssue(
                "no_user_or_assistant",
                f"the example has no {lacking} message, so it holds no question/answer pair "
                "and was skipped",
                self.path,
                line,
                row,
                question=question,
                answer=answer,
            )
        counts = f"{_plural(users, 'user message')} and {_plural(assistants, 'assistant message')}"
        if others:
            counts += f" (and {_plural(others, 'message')} of other roles)"
        return ReadIssue(
            "multi_turn",
            f"the example has {counts}; only single-turn examples can be read as "
            "question/answer pairs, so it was skipped",
            self.path,
            line,
            row,
            question=question,
            answer=answer,
        )

    def _iter_chat_jsonl(self) -> Iterator[RawPair | ReadIssue]:
        stop = self.stop
        path = self.path
        for line, row, obj in self._json_objects():
            messages = obj.get("messages")
            if type(messages) is not list:
                what = (
                    "missing"
                    if messages is None and "messages" not in obj
                    else (f"{_json_type(messages)}, not a list")
                )
                raise RecordError(
                    f"'messages' is {what}",
                    path=path,
                    line=line,
                    hint='each line must be {"messages": [{"role": ..., "content": ...}, '
                    "...]}; fix or remove this line",
                )
            users = assistants = others = 0
            user: dict[str, object] = {}
            assistant: dict[str, object] = {}
            for number, message in enumerate(messages, 1):
                if type(message) is not dict:
                    raise RecordError(
                        f"message {number} is {_json_type(message)}, not an object",
                        path=path,
                        line=line,
                        hint='each message must be an object like {"role": "user", '
                        '"content": "..."}',
                    )
                role = message.get("role")
                if type(role) is not str:
                    problem = (
                        f"message {number} has no 'role'"
                        if role is None
                        else f"the 'role' of message {number} is {_json_type(role)}, not a string"
                    )
                    raise RecordError(
                        problem,
                        path=path,
                        line=line,
                        hint='give every message a "role": "system", "user" or "assistant"',
                    )
                if role == "user":
                    if not users:
                        user = message
                    users += 1
                elif role == "assistant":
                    if not assistants:
                        assistant = message
                    assistants += 1
                elif role not in ("system", "developer"):
                    others += 1
            if not users or not assistants or users > 1 or assistants > 1 or others:
                yield self._not_single_turn(user, assistant, users, assistants, others, line, row)
                continue
            question = user.get("content")
            answer = assistant.get("content")
            if type(question) is not str or type(answer) is not str:
                which, value = (
                    ("user", question) if type(question) is not str else ("assistant", answer)
                )
                yield ReadIssue(
                    "non_text_content",
                    f"the {which} message's content is {_json_type(value)}, not text, so "
                    "the example was skipped",
                    path,
                    line,
                    row,
                    question=question if type(question) is str else None,
                    answer=answer if type(answer) is str else None,
                )
                continue
            q = question.strip()
            a = answer.strip()
            stripped = len(q) != len(question) or len(a) != len(answer)
            removed = False
            if stop is not None and a.endswith(stop):
                a = a[: -len(stop)].rstrip()
                removed = True
            if q and a:
                if removed:
                    changes = _WHITESPACE_STOP if stripped else _STOP_REMOVED
                else:
                    changes = _WHITESPACE if stripped else _NO_CHANGE
                yield (q, a, line, row, None, changes)
            elif q:
                yield self._empty_issue("answer", line, row, None, q, a)
            else:
                yield self._empty_issue("question", line, row, None, q, a)


def detect_stop_marker(answers: list[str]) -> str | None:
    """The stop marker every answer ends with, or None.

    A marker is the last white-space-separated word of every answer, and either the
    default ``**STOP**`` or, with two answers or more, a word that ends in a symbol other
    than closing punctuation (``###``, ``<|end|>``, ``[END]``): a word every answer
    happens to end with (``month.``) is not taken for one.

    Example:
        >>> detect_stop_marker(["Free. ###", "Five euros. ###"])
        '###'
        >>> detect_stop_marker(["It costs €5 a month.", "It costs €48 a month."]) is None
        True
    """
    from finetune_qa.config import DEFAULT_STOP

    if not answers:
        return None
    words = answers[0].rsplit(None, 1)
    if len(words) != 2:
        return None
    marker = words[1]
    with_text = 0
    for answer in answers:
        if answer == marker:
            continue  # an answer that is only the marker (read as an empty answer)
        body = answer[: -len(marker)]
        if not answer.endswith(marker) or not body or not body[-1].isspace():
            return None
        with_text += 1
    if marker == DEFAULT_STOP and with_text:
        return marker
    last = marker[-1]
    if with_text >= 2 and not last.isalnum() and last not in _CLOSING:
        return marker
    return None


def read_qa(
    path: str | os.PathLike[str],
    *,
    format: SourceFormat = "auto",
    question_column: str | None = None,
    answer_column: str | None = None,
    delimiter: str | None = None,
    strict: bool = False,
    stop: str | None = None,
) -> Iterator[QAPair]:
    """Stream the pairs of a file in one call: ``QASource(path, ...).pairs()``.

    The issues (skipped rows, unmatched items, ...) are lost with this one-liner; create
    a :class:`QASource` and read its :attr:`~QASource.issues` (or pass ``on_issue=`` to
    :meth:`~QASource.pairs`) to see them.

    Args:
        path: the file to read.
        format: the layout, or ``"auto"``; see :class:`QASource`.
        question_column: column or key holding the questions; see :class:`QASource`.
        answer_column: column or key holding the answers.
        delimiter: CSV delimiter (default ``,``, or a tab for ``.tsv``).
        strict: seed layout: raise on an unbalanced row instead of skipping it.
        stop: chat_jsonl: stop marker to remove from the end of answers (None: detected;
            ``""``: none).

    Returns:
        An iterator of QAPair objects.

    Raises:
        InputError: as :class:`QASource` (at once) and :meth:`QASource.iter_raw`
            (while iterating).
    """
    return QASource(
        path,
        format=format,
        question_column=question_column,
        answer_column=answer_column,
        delimiter=delimiter,
        strict=strict,
        stop=stop,
    ).pairs()


def _until(f: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """The lines of ``f`` (positioned at ``start``) up to byte offset ``end``.

    A range is a few MiB: reading it at once and splitting in C is faster than a
    generator over the file's lines.
    """
    # BytesIO splits on b"\n" only, as iterating the file does (splitlines would also split
    # on a lone b"\r" and shift line numbers)
    data = f.read(end - start)
    if len(data) != end - start:
        raise shrunk(getattr(f, "name", None))
    return iter(io.BytesIO(data))


class _OffsetReader:
    """A csv reader over part of a file, with ``line_num`` counted from the file's start."""

    __slots__ = ("_offset", "_reader")

    def __init__(self, reader: _CSVReader, offset: int) -> None:
        self._reader = reader
        self._offset = offset

    def __iter__(self) -> _OffsetReader:
        return self

    def __next__(self) -> list[str]:
        return next(self._reader)

    @property
    def line_num(self) -> int:
        """Physical lines read so far, counted from the start of the file."""
        return self._reader.line_num + self._offset
