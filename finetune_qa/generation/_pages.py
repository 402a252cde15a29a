"""Reading pages: bytes to checked UTF-8 lines, then cleaned; a folder's pages in order.

Files are opened through :func:`finetune_qa._fs.open_regular`, the one way the package
opens an input: a pipe, socket or device is refused rather than read (or waited on).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from finetune_qa._fs import open_regular
from finetune_qa.exceptions import InputFileError, UsageError
from finetune_qa.generation._cleaning import clean_markdown
from finetune_qa.generation._models import MAX_LINE_BYTES, MarkdownPage, PageIssue

_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"\x1f\x8b", "a gzip archive"),
)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _decode(path: str, data: bytes) -> list[str]:
    """The file's lines (without line endings), or an InputFileError naming the line."""
    if data.startswith(_UTF16_BOMS):
        raise InputFileError(
            "is UTF-16 encoded, not UTF-8",
            path=path,
            line=1,
            hint="save the page as UTF-8, e.g. `iconv -f utf-16 -t utf-8 OLD > NEW`",
        )
    for magic, kind in _BINARY_MAGIC:
        if data.startswith(magic):
            raise InputFileError(
                f"is {kind}, not Markdown text",
                path=path,
                line=1,
                hint="pass Markdown pages only, or narrow the folder's files with glob=",
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputFileError(
            f"contains a NUL byte (byte {nul + 1}), so it is binary, not Markdown text",
            path=path,
            line=data.count(b"\n", 0, nul) + 1,
            hint="remove the file from the input, or save it as UTF-8 text",
        )
    start = 0
    number = 1
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        if end - start > MAX_LINE_BYTES:
            raise InputFileError(
                f"line {number} is {(end - start) / 1024 / 1024:.1f} MiB long (the limit is "
                f"{MAX_LINE_BYTES // 1024 // 1024} MiB), which is embedded data, not prose",
                path=path,
                line=number,
                hint="remove the embedded data (a base64 image, minified HTML) or break the "
                "text into paragraphs",
            )
        start = end + 1
        number += 1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise InputFileError(
            f"is not valid UTF-8 (byte 0x{bad} at byte {exc.start + 1})",
            path=path,
            line=data.count(b"\n", 0, exc.start) + 1,
            hint="save the page as UTF-8, or convert it, e.g. `iconv -f cp1252 -t utf-8 OLD > NEW`",
        ) from exc
    text = text.removeprefix("\ufeff")
    return [line.removesuffix("\r") for line in text.split("\n")]


def _read_bytes(path: Path) -> bytes:
    with open_regular(
        path,
        directory_hint="pass it to iter_pages() instead",
        pipe_hint="save the page to a file and pass that",
        missing_hint="check the path and the working directory",
    ) as f:
        try:
            return f.read()
        except OSError as exc:
            raise InputFileError(
                f"cannot be read: {exc.strerror or exc}", path=str(path), hint="check the path"
            ) from exc


def load_markdown(path: str | os.PathLike[str]) -> MarkdownPage:
    """Read and clean one Markdown page; it must hold some text.

    Args:
        path: a UTF-8 Markdown file (a byte-order mark and CRLF line ends are fine).

    Returns:
        The cleaned page.

    Raises:
        InputFileError: the file is missing, a directory, unreadable, empty, not UTF-8,
            binary, has a NUL byte or a line over 1 MiB, or holds no text once cleaned
            (only front matter, only navigation); the message names the file and line.
        RecordError: the front matter is never closed.
    """
    page = _load(Path(path))
    issue = _page_issue(page)
    if issue is not None:
        raise InputFileError(
            issue.message.removeprefix("the page ").removeprefix("the file "),
            path=page.path,
            line=issue.line,
            hint="pass a page with text, or leave this one out",
        )
    return page


def _load(path: Path) -> MarkdownPage:
    name = str(path)
    data = _read_bytes(path)
    if not data.strip():
        return MarkdownPage(path=name, title=path.stem, blocks=[])
    return clean_markdown(_decode(name, data), path=name)


def _page_issue(page: MarkdownPage) -> PageIssue | None:
    """Why a page is skipped, or None when it has text."""
    if page.draft:
        return PageIssue(
            reason="draft",
            message="the page is a draft (draft: true in its front matter)",
            file=page.path,
            line=1,
        )
    if page.blocks and any(b.kind != "heading" for b in page.blocks):
        return None
    if page.front_matter_only:
        return PageIssue(
            reason="front_matter_only",
            message="the file holds front matter and no text after it",
            file=page.path,
            line=1,
        )
    if not page.removed:
        return PageIssue(
            reason="empty", message="the file is empty or blank", file=page.path, line=1
        )
    removed = ", ".join(f"{k} {v}" for k, v in sorted(page.removed.items()))
    return PageIssue(
        reason="no_text",
        message=f"the page holds no text once cleaned (removed: {removed})",
        file=page.path,
        line=1,
    )


def iter_pages(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    glob: str = "**/*.md",
    on_skip: Callable[[PageIssue], None] | None = None,
) -> Iterator[MarkdownPage]:
    """Read and clean Markdown pages from files and folders, in a stable order.

    A folder is searched with ``glob`` (sorted paths); a file is read whatever its name.
    A file given by name must hold text (else :func:`load_markdown`'s error); a file found
    in a folder that holds none (empty, only front matter, only noise, a draft) is
    skipped and passed to ``on_skip``. Every file is read before the first page is
    yielded, so a bad file stops the run before any request is made.

    Args:
        paths: files and folders.
        glob: pattern for the Markdown files of a folder.
        on_skip: called with each skipped page and each skipped section.

    Raises:
        InputFileError: a path is missing or unreadable, a folder holds no file matching
            ``glob``, or a file cannot be read as Markdown text (see :func:`load_markdown`).
        RecordError: a page's front matter is never closed.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise UsageError("no paths given; pass Markdown files or folders")
    if Path(glob).is_absolute() or ".." in Path(glob).parts:
        raise UsageError(
            f"glob {glob!r} reaches outside the folder; pass a pattern inside it, e.g. '**/*.md'"
        )
    pages: list[MarkdownPage] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob(glob) if p.is_file())
            if not found:
                raise InputFileError(
                    f"is a folder with no Markdown files matching {glob!r}",
                    path=str(path),
                    hint="check the folder, or pass glob= (CLI: --glob) for other names, "
                    "e.g. '**/*.markdown'",
                )
            pages.extend(_load(p) for p in found)
        else:
            pages.append(load_markdown(path))
    for page in pages:
        issue = _page_issue(page)
        if on_skip is not None:
            if issue is not None:
                on_skip(issue)
            for section in page.skipped_sections:
                on_skip(section)
        if issue is None:
            yield page
