"""The two CSV layouts: seed rows (lists in cells) and one pair per row."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import chain
from typing import IO, TYPE_CHECKING, Literal

from finetune_qa._fs import MAX_LINE_BYTES, capped_line, capped_lines, open_regular, read_range
from finetune_qa._text import plural
from finetune_qa.exceptions import CSVFormatError, InputFileError, UnbalancedListsError, UsageError
from finetune_qa.readers._base import _SourceBase
from finetune_qa.readers._lists import _SEED_CHANGES, _parse_list
from finetune_qa.readers._types import (
    _COLUMN_HINT,
    _NO_CHANGE,
    _WHITESPACE,
    RawPair,
    ReadIssue,
    _shorten,
)

if TYPE_CHECKING:
    from _csv import Reader as _CSVReader

# Seed cells hold whole lists of long answers, and csv's default 128 KiB cell limit rejects
# legitimate rows. 16 MiB is far above any real cell yet still stops an unclosed quote from
# swallowing a whole file into one field. The limit is process-wide, so only ever raise it.
_FIELD_LIMIT = 16 * 1024 * 1024
if csv.field_size_limit() < _FIELD_LIMIT:
    csv.field_size_limit(_FIELD_LIMIT)
_DEFAULT_COLUMNS = {
    "seed_csv": ("questions", "answers"),
    "pairs_csv": ("question", "answer"),
    "pairs_jsonl": ("question", "answer"),
}


class _CSVReading(_SourceBase):
    """Reading a CSV source: header and columns, records, and the pairs of either layout."""

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
            lines = map(bytes.decode, read_range(f, start, end, self.path))
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
            f"the row has {plural(len(record), 'cell')}, so its "
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
                        f"the row has {plural(nq, 'question')} but {plural(na, 'answer')}",
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
                f"the row has {plural(max(nq, na), have[:-1])} but no {lack}, so the row "
                f"was skipped; fill in the {lack} cell or remove the row"
            )
        else:
            message = (
                f"the row has {plural(nq, 'question')} but {plural(na, 'answer')}, so the "
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
