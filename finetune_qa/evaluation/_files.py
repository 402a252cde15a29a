"""Reading the files a suite is built from and writing reports, through :mod:`finetune_qa._fs`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa.exceptions import InputFileError


def _read(path: str | os.PathLike[str], *, kind: str = "file") -> bytes:
    """The bytes of a regular file (:func:`~finetune_qa._fs.open_regular`: no pipes)."""
    with open_regular(path, kind=kind) as f:
        try:
            return f.read()
        except OSError as exc:
            raise InputFileError(
                f"cannot be read: {exc.strerror or exc}",
                path=os.fspath(path),
                hint="check the file",
            ) from exc


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a file with their 1-based numbers; errors name the file."""
    data = _read(path)
    for i, raw in enumerate(data.splitlines(), 1):
        if raw.strip():
            yield i, raw


def read_questions(path: str | os.PathLike[str]) -> list[str]:
    """Questions from a text file: one per line; blank lines and ``#`` comments skipped.

    Raises:
        InputFileError: the file is missing, unreadable or not UTF-8.
    """
    out: list[str] = []
    for line_no, raw in _lines(path):
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            raise InputFileError(
                "not UTF-8 text", path=str(path), line=line_no, hint="save the file as UTF-8"
            ) from None
        if text and not text.startswith("#"):
            out.append(text)
    return out


def _write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    out = Path(path)
    atomic_write(
        out,
        text,
        problem="cannot write",
        hint="check that the directory exists and is writable",
    )
    return out
