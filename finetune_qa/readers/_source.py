"""QASource: a QA file in one of the four layouts, detected, read as a stream of pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Literal

import orjson

from finetune_qa._fs import MAX_LINE_BYTES, capped_line, plan_line_ranges
from finetune_qa._text import UTF8_BOM
from finetune_qa.data import Provenance, QAPair
from finetune_qa.exceptions import UsageError
from finetune_qa.readers._csv import _CSVReading
from finetune_qa.readers._jsonl import _JSONLReading
from finetune_qa.readers._types import RawPair, ReadIssue, SourceFormat

_FORMATS: tuple[str, ...] = ("auto", "seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl")
_JSONL_EXTENSIONS = frozenset({".jsonl", ".json", ".ndjson"})


class QASource(_CSVReading, _JSONLReading):
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
        csv_format = self.format in ("seed_csv", "pairs_csv")
        with self._open() as f:
            if csv_format:
                reader, qi, ai = self._start_csv(f)
                self._columns = (qi, ai)
                pos = f.tell()
                line = reader.line_num + 1
            else:
                first = capped_line(f, self.path, 1)
                pos = 3 if first.startswith(UTF8_BOM) else 0
                line = 1
            yield from plan_line_ranges(
                f,
                self.path,
                target_bytes,
                start=pos,
                first_line=line,
                quoted=csv_format,
                limit=4 * MAX_LINE_BYTES if csv_format else MAX_LINE_BYTES,
            )

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
