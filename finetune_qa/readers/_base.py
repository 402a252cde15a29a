"""What every layout's reader shares: the source's state, opening the file, common errors."""

from __future__ import annotations

from typing import IO, Literal

from finetune_qa._fs import capped_line, open_regular
from finetune_qa._text import UTF8_BOM, UTF16_BOMS
from finetune_qa.exceptions import InputFileError
from finetune_qa.readers._types import _UTF8_HINT, _UTF16_HINT, ReadIssue


class _SourceBase:
    """The state of a :class:`~finetune_qa.readers.QASource` and the helpers all its readers use."""

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
    rows_read: int
    # a byte range of a parallel build (start, end, first line), and the CSV columns found
    _range: tuple[int, int, int] | None
    _columns: tuple[int, int] | None
    _question_option: str | None
    _answer_option: str | None

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
        if first.startswith(UTF8_BOM):
            return first[3:]
        if first.startswith(UTF16_BOMS):
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

    def _decode_error(self, exc: UnicodeDecodeError, line: int) -> InputFileError:
        bad = exc.object[exc.start : exc.start + 1].hex()
        return InputFileError(
            f"is not valid UTF-8 (byte 0x{bad} at byte {exc.start + 1} of the line)",
            path=self.path,
            line=line,
            hint=_UTF8_HINT,
        )

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
