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


PAGE_SUFFIXES = (".md", ".markdown", ".mdx", ".txt", ".html", ".htm", ".rst")
"""The files :func:`read_pages` reads from a folder."""


def read_pages(path: str | os.PathLike[str]) -> dict[str, str]:
    """Source pages' texts by name: a folder's pages (recursively) or one file.

    A folder's pages (:data:`PAGE_SUFFIXES`) are named by their path inside it
    (``"team/about.md"``), one file by its name.

    Raises:
        InputFileError: the path is missing, holds no page, or a page is unreadable or
            not UTF-8.
    """
    root = Path(path)
    if not root.is_dir():
        return {root.name: _text(root)}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputFileError(
            "holds no pages",
            path=str(root),
            hint=f"give a folder of pages ({', '.join(PAGE_SUFFIXES)}) or one page",
        )
    return {p.relative_to(root).as_posix(): _text(p) for p in files}


def _text(path: Path) -> str:
    try:
        return _read(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"not UTF-8 text (byte {exc.start})", path=str(path), hint="save the file as UTF-8"
        ) from None
