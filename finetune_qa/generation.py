r"""QA pairs generated from Markdown pages: clean, chunk by tokens, ask a model, parse, dedupe.

This is the step before the seed workflow's CSV: a website's Markdown pages go in, and
question/answer pairs come out, in the seed layout (one row per chunk, a numbered list of
questions and a numbered list of answers) or as JSONL, each pair keeping where it came
from (file, heading path, line range).

1. **Load and clean** (:func:`load_markdown`, :func:`iter_pages`, :func:`clean_markdown`):
   front matter (YAML ``---`` or TOML ``+++``; its ``title`` is kept), HTML comments and
   tags, ``<script>``/``<style>`` blocks, images, fenced code blocks (all of them: pairs
   about code are rarely what a website chatbot needs, and a model copies code badly),
   link-only lines and lists (menus), breadcrumbs, "Skip to content" / "Edit this page"
   style lines, footers (``©``, "All rights reserved", "Powered by"), link definitions,
   thematic breaks and admonition markers (``!!! note``, ``:::tip``, ``> [!NOTE]``; their
   text is kept) are removed; links keep their text; tables are kept as text, one
   ``Header: value; ...`` line per row; headings are kept as structure. Every removal is
   counted by kind (:data:`REMOVED_KINDS`), and every skipped page or section is counted
   with its reason (:data:`SKIP_REASONS`). Indented code blocks are not detected (their
   text is kept as a paragraph).
2. **Chunk** (:func:`chunk_page`): whole sections are packed into chunks of at most
   ``max_chunk_tokens`` tokens (800 by default, no overlap); a section too large is split
   between blocks, a block too large between sentences, and only a sentence too large
   between words.
3. **Generate** (:class:`QAGenerator`): each chunk is sent with :func:`build_prompt`, which
   asks for N pairs as a ``Questions:`` list then an ``Answers:`` list, both numbered;
   replies are parsed by :func:`parse_reply`, which accepts other numbering styles,
   chatter before and after the lists and a ``Q:``/``A:`` layout, matches numbered items
   by number and never pairs unnumbered lists of different lengths; every malformed
   reply is reported with its chunk and reason (:data:`REPLY_ISSUE_REASONS`). Questions
   repeated across chunks are dropped (counted).

Reading fails loudly for files that are not Markdown text: a missing or unreadable path,
a directory without Markdown, an empty file, bytes that are not UTF-8, a NUL byte, a
binary file, a line over 1 MiB, or front matter never closed raise an
:class:`~finetune_qa.exceptions.InputFileError` (or, for the front matter, a
:class:`~finetune_qa.exceptions.RecordError`) naming the file and the line. A file named
explicitly must also hold some text; files found in a folder that hold none (empty, only
front matter, only navigation, or ``draft: true``) are skipped and counted instead.

Example:
    >>> from finetune_qa.generation import clean_markdown, parse_reply
    >>> page = clean_markdown("---\ntitle: Pricing\n---\n[Home](/) > Pricing\n\n"
    ...                       "## Pro plan\n\nThe Pro plan costs $8 per month.\n")
    >>> page.title, [b.text for b in page.blocks]
    ('Pricing', ['Pro plan', 'The Pro plan costs $8 per month.'])
    >>> page.removed
    {'breadcrumb': 1, 'front_matter': 1}
    >>> parsed = parse_reply("Sure!\nQuestions:\n1. What does Pro cost?\nAnswers:\n1. $8 a month.")
    >>> parsed.pairs, [issue[0] for issue in parsed.issues]
    ([('What does Pro cost?', '$8 a month.')], ['extra_text'])
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import atomic_write
from finetune_qa._text import SENTENCE_BREAK, question_key
from finetune_qa.chat import BatchItem, ChatModel
from finetune_qa.config import EXAMPLES_PER_REASON
from finetune_qa.data import Provenance, QAPair
from finetune_qa.exceptions import (
    InputError,
    InputFileError,
    RecordError,
    UnknownModelError,
    UsageError,
)
from finetune_qa.tokens import TokenCounter

__all__ = [
    "DEFAULT_MAX_CHUNK_TOKENS",
    "DEFAULT_PAIRS_PER_CHUNK",
    "GENERATION_MARKER",
    "GENERATION_SYSTEM_PROMPT",
    "MAX_LINE_BYTES",
    "REMOVED_KINDS",
    "REPLY_ISSUE_REASONS",
    "SKIP_REASONS",
    "Block",
    "Chunk",
    "GeneratedPair",
    "GenerationReport",
    "GenerationResult",
    "MarkdownPage",
    "PageIssue",
    "ParsedReply",
    "QAGenerator",
    "ReplyIssue",
    "build_prompt",
    "chunk_page",
    "clean_markdown",
    "iter_pages",
    "load_markdown",
    "parse_reply",
]

DEFAULT_PAIRS_PER_CHUNK = 5
"""Question/answer pairs asked for per chunk."""

DEFAULT_MAX_CHUNK_TOKENS = 800
"""Largest chunk of page text sent in one request, in tokens of the model's encoding."""

MAX_LINE_BYTES = 1024 * 1024
"""A line longer than this (1 MiB) is embedded data, not prose: the file is refused."""

GENERATION_MARKER = "question/answer pairs for a website chatbot from the excerpt below"
"""The phrase every generation prompt holds; the offline backend's base models recognise it."""

GENERATION_SYSTEM_PROMPT = (
    "You write question/answer pairs for training a chatbot that answers questions about a "
    "website. You use only facts stated in the text you are given."
)
"""System message of the generation requests (replaces the chat model's own)."""

REMOVED_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "front_matter": "YAML (---) or TOML (+++) front matter at the top of the page",
        "html_comment": "an HTML comment, <!-- ... -->",
        "html": "a line of raw HTML tags with no text",
        "script_or_style": "a <script> or <style> block",
        "code_block": "a fenced code block (``` or ~~~)",
        "image": "an image, ![alt](src)",
        "link_definition": "a link reference definition, [ref]: url",
        "nav_links": "a line or list item made only of links (a menu)",
        "nav_text": "a navigation line: Skip to content, Edit this page, Next, On this page, ...",
        "breadcrumb": "a breadcrumb trail, Home > Docs > Page",
        "footer": "a footer line: ©, Copyright, All rights reserved, Powered by",
        "admonition_marker": "the marker line of an admonition (!!! note, :::tip, > [!NOTE]); "
        "its text is kept",
        "thematic_break": "a horizontal rule (---, ***)",
        "table_separator": "the |---|---| line under a table header",
    }
)
"""Every kind of noise :func:`clean_markdown` removes, with what it is."""

SKIP_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "empty": "the file is empty or blank (skipped when found in a folder)",
        "front_matter_only": "the file holds front matter and nothing else",
        "no_text": "nothing is left once the navigation and other noise are removed",
        "draft": "the front matter says draft: true",
        "empty_section": "a heading with no text under it (its content was all noise)",
    }
)
"""Every reason a page or section is skipped, with what it means."""

REPLY_ISSUE_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "request_failed": "the request for the chunk failed after its retries; the chunk gave "
        "no pairs",
        "truncated": "the reply was cut off by the token limit; its last pair, possibly "
        "incomplete, was dropped",
        "no_pairs": "the reply holds no questions and answers in a known layout (a refusal, "
        "or free text)",
        "missing_answers": "the reply lists questions but no answers; its questions were dropped",
        "unbalanced_lists": "the question and answer lists differ in length and are not "
        "numbered, so which answer goes with which question is unknown; the reply was dropped",
        "unmatched_question": "a numbered question has no answer with the same number; it "
        "was dropped",
        "unmatched_answer": "a numbered answer has no question with the same number; it was "
        "dropped",
        "empty_item": "a question or an answer is empty; the pair was dropped",
        "extra_text": "text before, between or after the lists was ignored (the pairs were kept)",
    }
)
"""Every reason :func:`parse_reply` reports a reply as malformed, with what it means."""

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


# ----------------------------------------------------------------------------- models


class Block(BaseModel):
    """One block of a cleaned page: a heading, a paragraph, a list or a table."""

    model_config = _STRICT

    kind: Literal["heading", "paragraph", "list", "table"] = Field(description="What it is.")
    text: str = Field(
        description="Cleaned text: heading text without #, list items as '- item' lines, "
        "table rows as 'Header: value; ...' lines."
    )
    level: int = Field(default=0, ge=0, le=6, description="Heading level 1-6; 0 for others.")
    headings: tuple[str, ...] = Field(
        default=(), description="Heading path above the block (including itself for a heading)."
    )
    start_line: int = Field(ge=1, description="First line in the file, 1-based.")
    end_line: int = Field(ge=1, description="Last line in the file, 1-based.")

    def render(self) -> str:
        """The block as Markdown (headings with their #)."""
        if self.kind == "heading":
            return f"{'#' * self.level} {self.text}"
        return self.text


class PageIssue(BaseModel):
    """A page or section that was skipped, with where and why."""

    model_config = _STRICT

    reason: str = Field(description="Machine key, one of SKIP_REASONS.")
    message: str = Field(description="One human sentence: what and why.")
    file: str = Field(description="The Markdown file.")
    line: int | None = Field(default=None, description="1-based line, when one is concerned.")

    def render(self) -> str:
        """Short ``file:line: message`` form."""
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}: {self.message}"


class MarkdownPage(BaseModel):
    """A Markdown page, cleaned: its title, its blocks and what cleaning removed."""

    model_config = _STRICT

    path: str = Field(description="The file, as given.")
    title: str = Field(description="Front matter title, else the first # heading, else the name.")
    blocks: list[Block] = Field(description="The kept blocks, in page order.")
    removed: dict[str, int] = Field(
        default_factory=dict, description="Noise removed, by kind (REMOVED_KINDS)."
    )
    skipped_sections: list[PageIssue] = Field(
        default_factory=list, description="Sections skipped because nothing was left in them."
    )
    draft: bool = Field(default=False, description="The front matter says draft: true.")
    front_matter_only: bool = Field(
        default=False, description="The page holds front matter and nothing else."
    )

    @property
    def text(self) -> str:
        """The cleaned page as Markdown, blocks separated by blank lines."""
        return _render(self.blocks)


class Chunk(BaseModel):
    """A piece of one page sent in one generation request, with where it came from."""

    model_config = _STRICT

    index: int = Field(ge=0, description="Position among the chunks of the run, 0-based.")
    file: str = Field(description="The Markdown file.")
    title: str = Field(description="The page title.")
    headings: tuple[str, ...] = Field(
        description="Heading path the whole chunk sits under, e.g. ('Pricing', 'Pro plan')."
    )
    start_line: int = Field(ge=1, description="First line of the chunk in the file.")
    end_line: int = Field(ge=1, description="Last line of the chunk in the file.")
    text: str = Field(description="The chunk's cleaned Markdown.")
    tokens: int = Field(ge=0, description="Tokens of ``text``.")

    @property
    def heading(self) -> str:
        """The heading path as text, ``"Pricing > Pro plan"`` (``""`` for none)."""
        return " > ".join(self.headings)

    def render(self) -> str:
        """Short ``file:start-end (heading)`` form for reports."""
        where = f"{self.file}:{self.start_line}-{self.end_line}"
        return f"{where} ({self.heading})" if self.headings else where


class GeneratedPair(BaseModel):
    """A generated question and answer, with the chunk it was generated from."""

    model_config = _STRICT

    question: str = Field(min_length=1, description="The question, on one line.")
    answer: str = Field(min_length=1, description="The answer, on one line.")
    file: str = Field(description="The Markdown file.")
    title: str = Field(description="The page title.")
    heading: str = Field(description="Heading path of the chunk, 'Pricing > Pro plan'.")
    start_line: int = Field(ge=1, description="First line of the chunk in the file.")
    end_line: int = Field(ge=1, description="Last line of the chunk in the file.")
    chunk: int = Field(ge=0, description="Index of the chunk in the run.")

    def to_qa_pair(self) -> QAPair:
        """The pair as a :class:`~finetune_qa.data.QAPair` (source: the file and first line)."""
        return QAPair(
            question=self.question,
            answer=self.answer,
            source=Provenance(file=self.file, line=self.start_line),
        )


class ReplyIssue(BaseModel):
    """A malformed reply (or a failed request), with its chunk and reason."""

    model_config = _STRICT

    reason: str = Field(description="Machine key, one of REPLY_ISSUE_REASONS.")
    message: str = Field(description="One human sentence.")
    chunk: int = Field(ge=0, description="Index of the chunk.")
    where: str = Field(description="The chunk as 'file:start-end (heading)'.")
    dropped: int = Field(default=0, ge=0, description="Pairs (or items) this issue dropped.")

    def render(self) -> str:
        """Short ``where: reason: message`` form."""
        return f"{self.where}: {self.reason}: {self.message}"


class GenerationReport(BaseModel):
    """What a generation run read, skipped, asked, parsed, dropped and kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The model asked.")
    pages_found: int = Field(
        description="Markdown files found (named, or matched in a folder): pages_read plus "
        "every page skipped."
    )
    pages_read: int = Field(
        description="Pages that held text and were chunked and sent (pages_found minus "
        "pages_skipped)."
    )
    pages_skipped: dict[str, int] = Field(
        description="Pages found but not sent, by reason (SKIP_REASONS)."
    )
    sections_skipped: int = Field(description="Sections skipped (empty_section).")
    removed: dict[str, int] = Field(description="Noise removed from all pages, by kind.")
    chunks: int = Field(description="Chunks sent (one request each).")
    requests_failed: int = Field(description="Requests that failed after their retries.")
    replies_malformed: int = Field(
        description="Replies with at least one issue other than extra_text (failures included)."
    )
    reply_issues: dict[str, int] = Field(description="Issues found in replies, by reason.")
    pairs_dropped: dict[str, int] = Field(description="Pairs (or items) dropped, by reason.")
    pairs_parsed: int = Field(description="Pairs parsed from the replies.")
    duplicates_dropped: int = Field(description="Pairs whose question an earlier chunk had.")
    pairs_kept: int = Field(description="Pairs in the result.")
    prompt_tokens: int = Field(description="Prompt tokens of the successful requests.")
    completion_tokens: int = Field(description="Completion tokens of the successful requests.")
    examples: list[str] = Field(
        description=f"Up to {EXAMPLES_PER_REASON} rendered examples per skip or issue reason."
    )

    def to_json(self) -> str:
        """The report as indented JSON."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()

    def to_text(self) -> str:
        """The report for people, a few lines."""

        def counts(d: Mapping[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"

        skipped = sum(self.pages_skipped.values())
        lines = [
            f"Generated {self.pairs_kept} QA pairs from {self.pages_read} pages "
            f"({self.chunks} chunks) with {self.model}",
            f"  pages: {self.pages_found} found, {self.pages_read} read, {skipped} skipped"
            + (f" ({counts(self.pages_skipped)})" if skipped else "")
            + f"; empty sections skipped: {self.sections_skipped}",
            f"  noise removed: {counts(self.removed)}",
            f"  replies: {self.chunks}, malformed: {self.replies_malformed}"
            + (f" ({counts(self.reply_issues)})" if self.reply_issues else "")
            + f", requests failed: {self.requests_failed}",
            f"  pairs parsed: {self.pairs_parsed}, duplicates dropped: "
            f"{self.duplicates_dropped}, kept: {self.pairs_kept}",
            f"  tokens: {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion",
        ]
        if self.pairs_dropped:
            lines.insert(5, f"  pairs dropped: {counts(self.pairs_dropped)}")
        if self.examples:
            lines.append("  examples:")
            lines.extend(f"    {e}" for e in self.examples)
        return "\n".join(lines)


class GenerationResult(BaseModel):
    """The pairs of a generation run, the chunks they came from, and the report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs: list[GeneratedPair] = Field(description="The kept pairs, in chunk order.")
    chunks: list[Chunk] = Field(description="Every chunk sent.")
    issues: list[ReplyIssue] = Field(description="Every reply issue, in chunk order.")
    skipped: list[PageIssue] = Field(description="Every skipped page and section.")
    report: GenerationReport = Field(description="The counts.")

    def qa_pairs(self) -> list[QAPair]:
        """The pairs as :class:`~finetune_qa.data.QAPair` objects."""
        return [p.to_qa_pair() for p in self.pairs]

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the pairs in the seed CSV layout, atomically; return the path.

        One row per chunk with pairs: a ``questions`` cell and an ``answers`` cell holding
        numbered lists (``1. ...``), then ``file``, ``heading`` and ``lines`` cells, which
        the readers ignore. ``QASource(path)`` reads the same pairs back.
        """
        by_chunk: dict[int, list[GeneratedPair]] = {}
        for pair in self.pairs:
            by_chunk.setdefault(pair.chunk, []).append(pair)

        def write(f: _TextFile) -> None:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["questions", "answers", "file", "heading", "lines"])
            for index in sorted(by_chunk):
                pairs = by_chunk[index]
                first = pairs[0]
                writer.writerow(
                    [
                        "\n".join(f"{i}. {_one_line(p.question)}" for i, p in enumerate(pairs, 1)),
                        "\n".join(f"{i}. {_one_line(p.answer)}" for i, p in enumerate(pairs, 1)),
                        first.file,
                        first.heading,
                        f"{first.start_line}-{first.end_line}",
                    ]
                )

        return _atomic_write(Path(path), write)

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write one JSON object per pair, atomically; return the path.

        Each line holds ``question`` and ``answer`` (what ``read_qa`` reads) and the
        provenance: ``file``, ``title``, ``heading``, ``start_line``, ``end_line``, ``chunk``.
        """

        def write(f: _TextFile) -> None:
            for pair in self.pairs:
                f.write(orjson.dumps(pair.model_dump()).decode())
                f.write("\n")

        return _atomic_write(Path(path), write)


# ------------------------------------------------------------------------ reading


class _TextFile:
    """The part of a text file the writers use (keeps mypy happy with csv.writer)."""

    def __init__(self, raw: object) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        return self._raw.write(text)  # type: ignore[attr-defined, no-any-return]


def _atomic_write(path: Path, write: Callable[[_TextFile], None]) -> Path:
    """Write text through a unique temporary file next to ``path``, then rename it into place.

    Missing parent folders are created; on any error the temporary file is removed and
    ``path`` is left as it was (see :func:`finetune_qa._fs.atomic_write`).
    """
    if path.is_dir():
        raise InputFileError(
            "cannot be written (it is a directory)",
            path=path,
            hint="choose a writable file path (its folder is created if missing)",
        )

    def emit(raw: IO[bytes]) -> None:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            write(_TextFile(text))
            text.flush()
        finally:
            text.detach()  # the binary file is closed by atomic_write, not by the wrapper

    atomic_write(
        path,
        emit,
        problem="cannot be written",
        hint="choose a writable file path (its folder is created if missing)",
    )
    return path


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
    name = str(path)
    if path.is_dir():
        raise InputFileError(
            "is a directory, not a file", path=name, hint="pass it to iter_pages() instead"
        )
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputFileError(
            "no such file", path=name, hint="check the path and the working directory"
        ) from exc
    except PermissionError as exc:
        raise InputFileError(
            "cannot be read: permission denied", path=name, hint="check the file's permissions"
        ) from exc
    except OSError as exc:
        raise InputFileError(
            f"cannot be read: {exc.strerror or exc}", path=name, hint="check the path"
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


# ----------------------------------------------------------------------- cleaning

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_SEP = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_ADMONITION = re.compile(r"^ {0,3}(?:!!!|\?\?\?\+?)[ \t]*[\w-]*(?:[ \t]+\"(.*)\")?[ \t]*$")
_COLON_FENCE = re.compile(r"^ {0,3}:::+[ \t]*[\w-]*(?:[ \t]+(.*))?$")
_GH_ALERT = re.compile(r"^\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*", re.IGNORECASE)
_LINK_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S+")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?")
_FRONT_KEY = re.compile(r"^\s*(title|draft)\s*[:=]\s*(.*?)\s*$", re.IGNORECASE)
_SCRIPT_OPEN = re.compile(r"<(script|style)\b", re.IGNORECASE)

_IMAGE = re.compile(r"!\[[^\]]*\](?:\((?:[^()]|\([^)]*\))*\)|\[[^\]]*\])")
_EMPTY_LINK = re.compile(r"\[\s*\]\((?:[^()]|\([^)]*\))*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<(?:mailto:)?((?:https?://|[^@\s<>]+@)[^>\s]+)>")
_HTML_LINK = re.compile(r"<a\b[^>]*>.*?</a\s*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_COMMENT_INLINE = re.compile(r"<!--.*?-->")
_HEADING_ID = re.compile(r"\s*\{#[^}]*\}\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_EM_UNDER = re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(.+?)~~")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_SPACES = re.compile(r"\s+")
_ARROWS = "←→«»‹›⟵⟶↑"
_NAV_SEPARATORS = re.compile(r"[\s|·•/>»›,;:–—\-" + _ARROWS + r"]+")
_CRUMB_SPLIT = re.compile(r"\s+(?:>|/|»|›|→|\\)\s+")

_NAV_TEXT = frozenset(
    """
    skip to content|skip to main content|skip to navigation|jump to content|edit this page|
    edit on github|edit page|improve this page|suggest an edit|back to top|scroll to top|
    top|table of contents|contents|on this page|in this article|menu|main menu|navigation|
    toggle navigation|toggle menu|search|search docs|search the docs|previous|next|
    previous page|next page|prev|share|share this page|print|print this page|
    was this page helpful|was this helpful|yes no|read more|learn more|subscribe|sign in|
    log in|sign up|copy|copied|home
    """.replace("\n", "").split("|")
)
_NAV_PREFIX = re.compile(
    r"^(?:edit this page|edit on github|last updated|last modified|updated on|"
    r"previous:|next:|prev:)",
    re.IGNORECASE,
)
_FOOTER = re.compile(
    r"^(?:©|\(c\)\s|copyright\b|powered by\b|built with\b.*\b(?:hugo|jekyll|mkdocs|"
    r"docusaurus|gatsby|astro)\b)|all rights reserved",
    re.IGNORECASE,
)


def _inline(text: str) -> tuple[str, int]:
    """Inline Markdown and HTML to plain text; also return the number of images removed."""
    text = _COMMENT_INLINE.sub("", text)
    text, images = _IMAGE.subn("", text)
    text = _EMPTY_LINK.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    if "<" in text:
        text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
        text = _TAG.sub("", text)
    if "`" in text:
        text = _CODE_SPAN.sub(lambda m: m[2].strip(), text)
    if "*" in text or "_" in text:
        text = _STRONG.sub(r"\2", text)
        text = _EM_STAR.sub(r"\1", text)
        text = _EM_UNDER.sub(r"\1", text)
    if "~~" in text:
        text = _STRIKE.sub(r"\1", text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    if "&" in text:
        text = html.unescape(text)
    return _SPACES.sub(" ", text).strip(), images


def _noise_kind(raw: str, clean: str) -> str | None:
    """The kind of navigation noise a line is (REMOVED_KINDS), or None for text."""
    links = len(_LINK.findall(raw)) + len(_REF_LINK.findall(raw)) + len(_HTML_LINK.findall(raw))
    if links:
        rest = _LINK.sub("", _REF_LINK.sub("", _EMPTY_LINK.sub("", _IMAGE.sub("", raw))))
        rest = _HTML_LINK.sub("", rest)
        rest = _TAG.sub("", rest)
        if not _NAV_SEPARATORS.sub("", rest):
            return "nav_links"
    key = clean.strip(_ARROWS + " .!?:").casefold()
    if key in _NAV_TEXT or _NAV_PREFIX.match(clean):
        return "nav_text"
    if _FOOTER.search(clean):
        return "footer"
    parts = _CRUMB_SPLIT.split(clean)
    if (
        len(parts) >= 2
        and (links or parts[0].casefold() == "home")
        and all(0 < len(p.split()) <= 5 and not p.endswith(".") for p in parts)
    ):
        return "breadcrumb"
    return None


def _cells(line: str) -> list[str]:
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", text)]


@dataclass
class _Cleaner:
    """One pass over a page's lines, building blocks (see :func:`clean_markdown`)."""

    path: str
    blocks: list[Block] = field(default_factory=list)
    removed: Counter[str] = field(default_factory=Counter)
    stack: list[tuple[int, str]] = field(default_factory=list)
    para: list[str] = field(default_factory=list)
    para_kind: Literal["paragraph", "list"] = "paragraph"
    para_start: int = 0
    para_end: int = 0
    first_heading: str | None = None

    def headings(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.stack)

    def flush(self) -> None:
        if self.para:
            text = "\n".join(self.para) if self.para_kind == "list" else " ".join(self.para)
            self.blocks.append(
                Block(
                    kind=self.para_kind,
                    text=text,
                    headings=self.headings(),
                    start_line=self.para_start,
                    end_line=self.para_end,
                )
            )
        self.para = []
        self.para_kind = "paragraph"

    def heading(self, level: int, raw: str, line: int, end: int | None = None) -> None:
        self.flush()
        text, images = _inline(_HEADING_ID.sub("", raw))
        self.removed["image"] += images
        if not text:
            return
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        if self.first_heading is None and level == 1:
            self.first_heading = text
        self.blocks.append(
            Block(
                kind="heading",
                text=text,
                level=level,
                headings=self.headings(),
                start_line=line,
                end_line=end or line,
            )
        )

    def text_line(self, raw: str, line: int) -> None:
        """A line of prose or a list item (blockquote markers already removed)."""
        m = _LIST_ITEM.match(raw)
        body = m[1] if m else raw
        clean, images = _inline(body)
        self.removed["image"] += images
        kind = _noise_kind(body, clean)
        if kind is not None:
            self.removed[kind] += 1
            if m is None:
                self.flush()  # a menu line ends the paragraph around it
            return
        if not clean:
            if images:
                return
            if raw.strip():
                self.removed["html"] += 1
            return
        if m is not None:
            if self.para and self.para_kind != "list":
                self.flush()
            if not self.para:
                self.para_kind = "list"
                self.para_start = line
            self.para.append(f"- {clean}")
        elif self.para and self.para_kind == "list" and raw[:1] in " \t":
            self.para[-1] += f" {clean}"  # an indented continuation of the item above
        else:
            if self.para and self.para_kind == "list":
                self.flush()
            if not self.para:
                self.para_start = line
            self.para.append(clean)
        self.para_end = line

    def table(self, lines: list[str], start: int) -> int:
        """Consume a table starting at ``lines[start]`` (header); return the next index."""
        self.flush()
        header = [_inline(c)[0] for c in _cells(lines[start])]
        self.removed["table_separator"] += 1
        rows: list[str] = []
        i = start + 2
        while i < len(lines) and "|" in lines[i] and lines[i].strip():
            cells = [_inline(c)[0] for c in _cells(lines[i])]
            parts = []
            for k, cell in enumerate(cells):
                if not cell:
                    continue
                name = header[k] if k < len(header) else ""
                parts.append(f"{name}: {cell}" if name else cell)
            if parts:
                rows.append("; ".join(parts) + ("" if parts[-1].endswith(".") else "."))
            i += 1
        if rows:
            self.blocks.append(
                Block(
                    kind="table",
                    text="\n".join(rows),
                    headings=self.headings(),
                    start_line=start + 1,
                    end_line=i,
                )
            )
        return i


def clean_markdown(text: str | Sequence[str], *, path: str = "<text>") -> MarkdownPage:
    """Clean Markdown held in memory (a string, or its lines); see the module docs.

    Args:
        text: the page's Markdown.
        path: the name the page goes by in provenance and messages.

    Raises:
        RecordError: the front matter is never closed.
    """
    lines = text.removeprefix("\ufeff").splitlines() if isinstance(text, str) else list(text)
    c = _Cleaner(path)
    title: str | None = None
    draft = False
    i = 0
    n = len(lines)
    while i < n and not lines[i].strip():
        i += 1
    if i < n and lines[i].strip() in ("---", "+++"):
        delimiter = lines[i].strip()
        closers = ("---", "...") if delimiter == "---" else ("+++",)
        close = next((k for k in range(i + 1, n) if lines[k].strip() in closers), None)
        if close is None:
            raise RecordError(
                f"the front matter opened with {delimiter!r} on line {i + 1} is never closed",
                path=path,
                line=i + 1,
                hint=f"add a {delimiter!r} line after the front matter, or remove the opening "
                "one if it is a horizontal rule (use *** for that)",
            )
        for k in range(i + 1, close):
            m = _FRONT_KEY.match(lines[k])
            if m is None:
                continue
            value = m[2].strip().strip("\"'").strip()
            if m[1].lower() == "title" and value:
                title = value
            elif m[1].lower() == "draft":
                draft = value.lower() in ("true", "yes", "on")
        c.removed["front_matter"] += 1
        i = close + 1
    front_end = i

    while i < n:
        raw = lines[i]
        line = i + 1
        stripped = raw.strip()

        if not stripped:
            c.flush()
            i += 1
            continue
        fence = _FENCE.match(raw)
        if fence is not None:
            c.flush()
            mark = fence[1]
            i += 1
            while i < n and not (
                lines[i].strip().startswith(mark[0] * len(mark))
                and set(lines[i].strip()) == {mark[0]}
            ):
                i += 1
            c.removed["code_block"] += 1
            i += 1
            continue
        if "<!--" in raw and "-->" not in raw[raw.index("<!--") :]:
            before = raw[: raw.index("<!--")]
            k = i + 1
            while k < n and "-->" not in lines[k]:
                k += 1
            after = lines[k][lines[k].index("-->") + 3 :] if k < n else ""
            c.removed["html_comment"] += 1
            if before.strip():
                c.text_line(before, line)
            if after.strip():
                c.text_line(after, k + 1)
            i = k + 1
            continue
        if "<!--" in raw:
            c.removed["html_comment"] += raw.count("<!--")
            raw = _COMMENT_INLINE.sub("", raw)
            if not raw.strip():
                i += 1
                continue
        script = _SCRIPT_OPEN.search(raw)
        if script is not None:
            c.flush()
            closing = f"</{script[1].lower()}"
            k = i
            while k < n and closing not in lines[k].lower():
                k += 1
            c.removed["script_or_style"] += 1
            i = k + 1
            continue
        atx = _ATX.match(raw)
        if atx is not None:
            if atx[2]:
                c.heading(len(atx[1]), atx[2], line)
            i += 1
            continue
        setext = _SETEXT.match(raw)
        if setext is not None and c.para and c.para_kind == "paragraph" and len(c.para) == 1:
            text_ = c.para.pop()
            c.heading(1 if setext[1][0] == "=" else 2, text_, c.para_start, line)
            i += 1
            continue
        if _HR.match(raw):
            c.flush()
            c.removed["thematic_break"] += 1
            i += 1
            continue
        if "|" in raw and i + 1 < n and "|" in lines[i + 1] and _TABLE_SEP.match(lines[i + 1]):
            i = c.table(lines, i)
            continue
        if _LINK_DEF.match(raw):
            c.removed["link_definition"] += 1
            i += 1
            continue
        if _ADMONITION.match(raw) or _COLON_FENCE.match(raw):
            c.flush()
            c.removed["admonition_marker"] += 1
            i += 1
            continue
        if _QUOTE.match(raw):
            while _QUOTE.match(raw):
                raw = _QUOTE.sub("", raw, count=1)
            if _GH_ALERT.match(raw.strip()):
                c.flush()
                c.removed["admonition_marker"] += 1
                raw = _GH_ALERT.sub("", raw.strip())
                if not raw.strip():
                    i += 1
                    continue
            if not raw.strip():
                c.flush()
                i += 1
                continue
        c.text_line(raw, line)
        i += 1
    c.flush()

    blocks, skipped = _drop_empty_sections(c.blocks, path)
    removed = {k: v for k, v in sorted(c.removed.items()) if v}
    only_front = bool(c.removed["front_matter"]) and all(not s.strip() for s in lines[front_end:])
    return MarkdownPage(
        path=path,
        title=title or c.first_heading or (Path(path).stem if path != "<text>" else ""),
        blocks=blocks,
        removed=removed,
        skipped_sections=skipped,
        draft=draft,
        front_matter_only=only_front,
    )


def _drop_empty_sections(blocks: list[Block], path: str) -> tuple[list[Block], list[PageIssue]]:
    """Remove headings with no text under them (before the next heading of their level)."""
    keep: list[Block] = []
    skipped: list[PageIssue] = []
    for k, block in enumerate(blocks):
        if block.kind == "heading":
            has_text = False
            for later in blocks[k + 1 :]:
                if later.kind == "heading" and later.level <= block.level:
                    break
                if later.kind != "heading":
                    has_text = True
                    break
            if not has_text:
                if any(b.kind != "heading" for b in blocks):
                    skipped.append(
                        PageIssue(
                            reason="empty_section",
                            message=f"the section {block.text!r} has no text once cleaned",
                            file=path,
                            line=block.start_line,
                        )
                    )
                continue
        keep.append(block)
    return keep, skipped


def _render(blocks: Sequence[Block]) -> str:
    return "\n\n".join(b.render() for b in blocks)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------- chunking


def _split_block(block: Block, max_tokens: int, counter: TokenCounter) -> list[Block]:
    """Pieces of ``block`` of at most ``max_tokens`` each, cut between lines or sentences."""
    if counter.count(block.render()) <= max_tokens:
        return [block]
    units: list[str] = []
    for part in block.text.split("\n") if block.kind in ("list", "table") else [block.text]:
        for sentence in SENTENCE_BREAK.split(part):
            if counter.count(sentence) <= max_tokens:
                units.append(sentence)
            else:
                units.extend(_split_words(sentence, max_tokens, counter))
    joiner = "\n" if block.kind in ("list", "table") else " "
    pieces: list[Block] = []
    current: list[str] = []
    for unit in units:
        if current and counter.count(joiner.join([*current, unit])) > max_tokens:
            pieces.append(block.model_copy(update={"text": joiner.join(current)}))
            current = []
        current.append(unit)
    if current:
        pieces.append(block.model_copy(update={"text": joiner.join(current)}))
    return pieces


def _split_words(text: str, max_tokens: int, counter: TokenCounter) -> list[str]:
    """Cut a sentence too long for one chunk between words (or tokens, for one huge word)."""
    out: list[str] = []
    current: list[str] = []
    for word in text.split(" "):
        if counter.count(word) > max_tokens:
            if current:
                out.append(" ".join(current))
                current = []
            tokens = counter.encoding.encode_ordinary(word)
            step = max(1, max_tokens - 2)
            for k in range(0, len(tokens), step):
                out.append(counter.encoding.decode(tokens[k : k + step]))
            continue
        if current and counter.count(" ".join([*current, word])) > max_tokens:
            out.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        out.append(" ".join(current))
    return out


def _common_headings(blocks: Sequence[Block]) -> tuple[str, ...]:
    paths = [b.headings for b in blocks]
    common = paths[0]
    for p in paths[1:]:
        k = 0
        while k < len(common) and k < len(p) and common[k] == p[k]:
            k += 1
        common = common[:k]
    return common


def chunk_page(
    page: MarkdownPage,
    *,
    max_tokens: int = DEFAULT_MAX_CHUNK_TOKENS,
    counter: TokenCounter | None = None,
    first_index: int = 0,
) -> list[Chunk]:
    """Split a page into chunks of at most ``max_tokens`` tokens, along its structure.

    Whole sections (a heading and what follows it up to the next heading) are packed
    together while they fit; a section that does not fit is cut between blocks, a block
    between sentences (list and table blocks between lines first), and a sentence only
    when it alone is too long, between words. A chunk never ends with a heading whose
    text went to the next chunk: the heading moves with its text. No overlap.

    Args:
        page: a cleaned page.
        max_tokens: the most tokens of a chunk's ``text`` (at least 16).
        counter: counts the tokens (default: the default model's encoding).
        first_index: the ``index`` of the first chunk.

    Returns:
        The chunks, in page order; none for a page without text.

    Raises:
        UsageError: ``max_tokens`` is below 16.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 16:
        raise UsageError(f"max_tokens must be a whole number >= 16, got {max_tokens!r}")
    counter = counter or TokenCounter()
    sections: list[list[Block]] = []
    for block in page.blocks:
        pieces = _split_block(block, max_tokens, counter)
        if block.kind == "heading" or not sections:
            sections.append([])
        sections[-1].extend(pieces)

    # Aim at equal chunks: a page of 1.1 chunks' worth gives two halves, not a full chunk
    # and a scrap. A chunk closes once it reaches the target; it never exceeds max_tokens.
    total = counter.count(_render(page.blocks))
    target = -(-total // -(-total // max_tokens)) if total else max_tokens
    groups: list[list[Block]] = []
    current: list[Block] = []

    def fits(blocks: list[Block]) -> bool:
        return counter.count(_render(blocks)) <= max_tokens

    def full(blocks: list[Block]) -> bool:
        return any(b.kind != "heading" for b in blocks) and (
            counter.count(_render(blocks)) >= target
        )

    def flush() -> list[Block]:
        carry: list[Block] = []
        while current and current[-1].kind == "heading":
            carry.insert(0, current.pop())
        if current:
            groups.append(list(current))
        return carry

    for section in sections:
        if not full(current) and fits([*current, *section]):
            current.extend(section)
            continue
        current = flush()
        if fits([*current, *section]):
            current.extend(section)
            continue
        for piece in section:
            if full(current) or not fits([*current, piece]):
                current = flush()
                if not fits([*current, piece]):
                    current = []
            current.append(piece)
    flush()

    chunks = []
    for k, group in enumerate(groups):
        text = _render(group)
        content = [b for b in group if b.kind != "heading"]
        chunks.append(
            Chunk(
                index=first_index + k,
                file=page.path,
                title=page.title,
                headings=_common_headings(content),
                start_line=min(b.start_line for b in group),
                end_line=max(b.end_line for b in group),
                text=text,
                tokens=counter.count(text),
            )
        )
    return chunks


# ------------------------------------------------------------------ prompt, parse


def build_prompt(chunk: Chunk, pairs: int = DEFAULT_PAIRS_PER_CHUNK) -> str:
    """The user message that asks for ``pairs`` QA pairs about ``chunk``.

    The reply format asked for is the seed layout's: a ``Questions:`` line, the questions
    numbered ``1.``, ``2.``, ..., an ``Answers:`` line, and the answers numbered the same.
    """
    return (
        f"Write {pairs} {GENERATION_MARKER}.\n"
        "\n"
        "Rules:\n"
        "- Ask what a visitor of the website would ask. The excerpt alone must answer each "
        "question.\n"
        "- Answer each question in one to three complete sentences, using only facts stated "
        "in the excerpt. Repeat the subject instead of writing 'it' or 'the excerpt'.\n"
        "- Every question must be different. If the excerpt does not hold "
        f"{pairs} distinct facts, write fewer pairs; never invent facts.\n"
        "- Write each question and each answer on a single line.\n"
        "\n"
        "Reply in exactly this format, with nothing before or after it: the line "
        "'Questions:', the questions numbered 1., 2., ..., the line 'Answers:', and the "
        "answers numbered the same way, answer k answering question k.\n"
        "\n"
        "Questions:\n"
        "1. <first question>\n"
        "2. <second question>\n"
        "Answers:\n"
        "1. <answer to the first question>\n"
        "2. <answer to the second question>\n"
        "\n"
        f"Page: {chunk.title}\n"
        f"Section: {chunk.heading or chunk.title}\n"
        "<excerpt>\n"
        f"{chunk.text}\n"
        "</excerpt>"
    )


@dataclass(frozen=True)
class ParsedReply:
    """What :func:`parse_reply` found.

    Attributes:
        pairs: the usable ``(question, answer)`` pairs, in reply order.
        issues: ``(reason, message, dropped)`` for each problem (see REPLY_ISSUE_REASONS).
    """

    pairs: list[tuple[str, str]]
    issues: list[tuple[str, str, int]]


_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(questions?|answers?)[ \t]*(?:\*\*|__)?[ \t]*:?"
    r"[ \t]*(?:\*\*|__)?[ \t]*$",
    re.IGNORECASE,
)
_NUMBERED = re.compile(
    r"^[ \t]*(?:[-*•][ \t]+)?(?:\*\*|__)?[ \t]*(?:(?:q(?:uestion)?|a(?:nswer)?)[ \t]*)?"
    r"(?:\((\d{1,4})\)|(\d{1,4})[ \t]*[.):\]])(?!\d)[ \t]*(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+(.*)$")
_QA_LINE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]+)?(?:\*\*|__)?[ \t]*(q(?:uestion)?|a(?:nswer)?)[ \t]*(\d{1,4})?"
    r"[ \t]*[:.)][ \t]*(?:\*\*|__)?[ \t]*(.*)$",
    re.IGNORECASE,
)
_LEAD_LABEL = re.compile(r"^(?:q(?:uestion)?|a(?:nswer)?)[ \t]*\d{0,4}[ \t]*:[ \t]*", re.IGNORECASE)
_TRIM = re.compile(r"^(?:\*\*|__)|(?:\*\*|__)$")


def _item_text(text: str) -> str:
    text = _LEAD_LABEL.sub("", text.strip())
    text = _TRIM.sub("", text.strip()).strip()
    return _one_line(text)


def _list_items(lines: list[str]) -> tuple[list[tuple[int | None, str]], bool]:
    """Items of a list section and whether text around them was ignored.

    A line that starts a numbered or bulleted item starts an item; a line without a
    marker continues the item above it, unless a blank line came first (then it is
    chatter). Lines before the first item are chatter.
    """
    items: list[tuple[int | None, str]] = []
    extra = False
    blank = False
    for raw in lines:
        if not raw.strip() or raw.strip() in ("```", "---"):
            blank = True
            continue
        m = _NUMBERED.match(raw)
        if m is not None:
            number = int(m[1] or m[2])
            items.append((number, _item_text(m[3])))
        elif (b := _BULLET.match(raw)) is not None:
            items.append((None, _item_text(b[1])))
        elif items and not blank:
            last_number, text = items[-1]
            items[-1] = (last_number, _one_line(f"{text} {raw.strip()}"))
        else:
            extra = True
        blank = False
    return items, extra


def _match(
    questions: list[tuple[int | None, str]],
    answers: list[tuple[int | None, str]],
) -> ParsedReply:
    pairs: list[tuple[str, str]] = []
    issues: list[tuple[str, str, int]] = []
    qn = [n for n, _ in questions]
    an = [n for n, _ in answers]
    numbered = (
        None not in qn and None not in an and len(set(qn)) == len(qn) and len(set(an)) == len(an)
    )
    if numbered and set(qn) != set(an):
        by_number = {n: text for n, text in answers}
        for n, q in questions:
            a = by_number.get(n)
            if a is None:
                issues.append(("unmatched_question", f"question {n} has no answer numbered {n}", 1))
            else:
                pairs.append((q, a))
        for n in sorted(set(an) - set(qn), key=lambda v: v or 0):
            issues.append(("unmatched_answer", f"answer {n} has no question numbered {n}", 1))
    elif numbered:
        by_number = {n: text for n, text in answers}
        pairs = [(q, by_number[n]) for n, q in questions]
    elif len(questions) == len(answers):
        pairs = [(q, a) for (_, q), (_, a) in zip(questions, answers, strict=True)]
    else:
        return ParsedReply(
            [],
            [
                (
                    "unbalanced_lists",
                    f"{len(questions)} questions but {len(answers)} answers, not numbered "
                    "uniquely, so they cannot be matched",
                    max(len(questions), len(answers)),
                )
            ],
        )
    kept = []
    empty = 0
    for q, a in pairs:
        if q and a:
            kept.append((q, a))
        else:
            empty += 1
    if empty:
        issues.append(("empty_item", f"{empty} pair(s) with an empty question or answer", empty))
    return ParsedReply(kept, issues)


def parse_reply(text: str) -> ParsedReply:
    r"""Parse a model's reply into ``(question, answer)`` pairs, reporting what is wrong.

    The expected layout is :func:`build_prompt`'s: a ``Questions:`` line and a numbered
    list, an ``Answers:`` line and a numbered list. Also accepted: headers in bold or as
    Markdown headings, numbers written ``1.``, ``1)``, ``(1)``, ``Q1:``, ``**1.**``,
    bulleted items, items over several lines, chatter before, between and after the lists
    (reported as ``extra_text``), and replies that alternate ``Q:`` and ``A:`` lines.

    Numbered lists are matched by number (an item whose number the other list lacks is
    reported and dropped); unnumbered lists only when they have the same length, else
    the whole reply is dropped (``unbalanced_lists``): pairing by position would put
    answers under the wrong questions.

    Args:
        text: the reply.

    Returns:
        The pairs and the issues (reasons from :data:`REPLY_ISSUE_REASONS`).

    Example:
        >>> reply = "Questions:\n1) Is there a free plan?\n2) Who makes it?\nAnswers:\n1) Yes."
        >>> parsed = parse_reply(reply)
        >>> parsed.pairs
        [('Is there a free plan?', 'Yes.')]
        >>> parsed.issues
        [('unmatched_question', 'question 2 has no answer numbered 2', 1)]
    """
    lines = text.replace("\r\n", "\n").split("\n")
    q_at = a_at = None
    for k, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            continue
        word = m[1].lower()
        if word.startswith("q") and q_at is None:
            q_at = k
        elif word.startswith("a") and a_at is None and q_at is not None:
            a_at = k
    if q_at is not None and a_at is not None:
        before = any(s.strip() and s.strip() != "```" for s in lines[:q_at])
        questions, extra_q = _list_items(lines[q_at + 1 : a_at])
        answers, extra_a = _list_items(lines[a_at + 1 :])
        if not questions and not answers:
            return ParsedReply([], [("no_pairs", "the Questions: and Answers: lists are empty", 0)])
        if not answers:
            return ParsedReply(
                [],
                [("missing_answers", "the Answers: list is empty", len(questions))],
            )
        parsed = _match(questions, answers)
        if before or extra_q or extra_a:
            parsed.issues.insert(0, ("extra_text", "text around the lists was ignored", 0))
        return parsed
    if q_at is not None:
        questions, _ = _list_items(lines[q_at + 1 :])
        if questions:
            return ParsedReply(
                [],
                [("missing_answers", "there is no Answers: list", len(questions))],
            )
    return _parse_alternating(lines)


def _parse_alternating(lines: list[str]) -> ParsedReply:
    """``Q: ...`` / ``A: ...`` lines in turn (numbers optional)."""
    pairs: list[tuple[str, str]] = []
    issues: list[tuple[str, str, int]] = []
    question: str | None = None
    answer: str | None = None
    extra = False
    seen = False
    unanswered = 0

    def close() -> None:
        nonlocal question, answer, unanswered
        if question is not None:
            if answer:
                if question:
                    pairs.append((question, answer))
                else:
                    issues.append(("empty_item", "a question is empty", 1))
            elif answer is None:
                unanswered += 1
            else:
                issues.append(("empty_item", "an answer is empty", 1))
        question = answer = None

    last: Literal["q", "a", ""] = ""
    for raw in lines:
        if not raw.strip():
            last = "" if last == "a" else last
            continue
        m = _QA_LINE.match(raw)
        if m is not None:
            seen = True
            if m[1][0].lower() == "q":
                close()
                question = _item_text(m[3])
                last = "q"
            else:
                if question is None:
                    issues.append(("unmatched_answer", "an answer follows no question", 1))
                    last = ""
                    continue
                answer = _item_text(m[3])
                last = "a"
            continue
        if last == "q" and question is not None:
            question = _one_line(f"{question} {raw.strip()}")
        elif last == "a" and answer is not None:
            answer = _one_line(f"{answer} {raw.strip()}")
        else:
            extra = True
    close()
    if not seen or (not pairs and not unanswered and not issues):
        return ParsedReply([], [("no_pairs", "no Questions:/Answers: lists or Q:/A: lines", 0)])
    if unanswered:
        reason = "missing_answers" if not pairs else "unmatched_question"
        issues.append((reason, f"{unanswered} question(s) have no answer", unanswered))
    if extra:
        issues.insert(0, ("extra_text", "text around the pairs was ignored", 0))
    return ParsedReply(pairs, issues)


# ---------------------------------------------------------------------- generator


@dataclass
class _Work:
    """What a run sends, read before the first request."""

    pages: list[MarkdownPage] = field(default_factory=list)
    skipped: list[PageIssue] = field(default_factory=list)
    removed: Counter[str] = field(default_factory=Counter)
    chunks: list[Chunk] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


class QAGenerator:
    """Generates QA pairs from Markdown pages with a chat model.

    The chat model is used with the generator's own system prompt and no stop sequence
    (a copy is made; the model given is not changed). Requests run ``concurrency`` at a
    time through :meth:`~finetune_qa.chat.ChatModel.ask_many` (:meth:`generate`) or
    :meth:`~finetune_qa.chat.ChatModel.aask_many` (:meth:`agenerate`, its async twin for
    a running event loop); a failed request is reported for its chunk and the others go on.

    Args:
        chat: the model that writes the pairs, e.g. ``ChatModel("gpt-4o-mini")``, or
            ``ChatModel.offline("gpt-4o-mini")`` to run with no key.
        pairs_per_chunk: pairs asked for per chunk (1-50).
        max_chunk_tokens: the most tokens of page text per request (at least 16).
        concurrency: requests in flight at once.
        glob: pattern for the Markdown files of a folder.
        system_prompt: the system message of the requests (``None``: none).
        counter: counts chunk tokens (default: the chat model's encoding, else the
            default model's).
        max_tokens: cap on each reply's tokens (``None``: the provider's limit); a reply
            cut by it is reported as ``truncated``.

    Raises:
        UsageError: an argument is out of range.

    Example:
        ```python
        generator = QAGenerator(ChatModel.offline("gpt-4o-mini"), pairs_per_chunk=5)
        result = generator.generate(["site/"])
        result.write_csv("qa.csv")
        print(result.report.to_text())
        ```
    """

    def __init__(
        self,
        chat: ChatModel,
        *,
        pairs_per_chunk: int = DEFAULT_PAIRS_PER_CHUNK,
        max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS,
        concurrency: int = 8,
        glob: str = "**/*.md",
        system_prompt: str | None = GENERATION_SYSTEM_PROMPT,
        counter: TokenCounter | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(chat, ChatModel):
            raise UsageError(f"chat must be a ChatModel, got {type(chat).__name__}")
        checks = (
            ("pairs_per_chunk", pairs_per_chunk, 1, 50),
            ("max_chunk_tokens", max_chunk_tokens, 16, None),
            ("concurrency", concurrency, 1, None),
        )
        for name, value, low, high in checks:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                span = f"{low}-{high}" if high is not None else f">= {low}"
                raise UsageError(f"{name} must be a whole number {span}, got {value!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise UsageError(f"max_tokens must be a whole number >= 1 or None, got {max_tokens!r}")
        self.chat = chat.with_options(
            system_prompt=system_prompt or None,
            stop=None,
            max_tokens=chat.max_tokens if max_tokens is None else max_tokens,
            card=False,  # a task of its own: the model's training prompt does not apply
        )
        self.pairs_per_chunk = pairs_per_chunk
        self.max_chunk_tokens = max_chunk_tokens
        self.concurrency = concurrency
        self.glob = glob
        if counter is None:
            try:
                counter = TokenCounter(chat.model)
            except UnknownModelError:
                counter = TokenCounter()
        self.counter = counter

    def __repr__(self) -> str:
        return (
            f"QAGenerator({self.chat.model!r}, pairs_per_chunk={self.pairs_per_chunk}, "
            f"max_chunk_tokens={self.max_chunk_tokens})"
        )

    def chunks(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        on_skip: Callable[[PageIssue], None] | None = None,
    ) -> list[Chunk]:
        """The chunks :meth:`generate` would send, without sending anything.

        Raises:
            InputError: as :func:`iter_pages`.
        """
        chunks: list[Chunk] = []
        for page in iter_pages(paths, glob=self.glob, on_skip=on_skip):
            chunks.extend(
                chunk_page(
                    page,
                    max_tokens=self.max_chunk_tokens,
                    counter=self.counter,
                    first_index=len(chunks),
                )
            )
        return chunks

    def generate(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
    ) -> GenerationResult:
        """Read, clean and chunk the pages, ask for pairs per chunk, parse and dedupe.

        Every file is read and checked before the first request, so a bad file costs
        nothing. This call blocks; in a running event loop (a Jupyter notebook, an async
        app) use ``await generator.agenerate(paths)``.

        Args:
            paths: Markdown files and folders (searched with ``glob``).

        Returns:
            The pairs, chunks, issues and report.

        Raises:
            InputError: a path cannot be read as Markdown (see :func:`iter_pages`), or no
                page holds any text.
            UsageError: called from a running event loop (use :meth:`agenerate` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                "QAGenerator.generate() blocks, so it cannot be called from a running event "
                "loop (a notebook, an async app); use `await generator.agenerate(paths)` there"
            )
        work = self._prepare(paths)
        items = self.chat.ask_many(work.prompts, concurrency=self.concurrency)
        return self._collect(work, items)

    async def agenerate(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
    ) -> GenerationResult:
        """Async twin of :meth:`generate`, for a running event loop (Jupyter, async apps).

        The pages are read and checked first (a bad file costs nothing), then the chunks
        are sent ``concurrency`` at a time through
        :meth:`~finetune_qa.chat.ChatModel.aask_many`.

        Example:
            ```python
            result = await QAGenerator(ChatModel.offline("gpt-4o-mini")).agenerate("site/")
            ```

        Raises:
            InputError: as :meth:`generate`.
        """
        work = self._prepare(paths)
        items = await self.chat.aask_many(work.prompts, concurrency=self.concurrency)
        return self._collect(work, items)

    def _prepare(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> _Work:
        """Read, clean and chunk every page, and build the prompts (no request yet)."""
        work = _Work()
        for page in iter_pages(paths, glob=self.glob, on_skip=work.skipped.append):
            work.pages.append(page)
            work.removed.update(page.removed)
        if not work.pages:
            first = next((s for s in work.skipped if s.reason != "empty_section"), None)
            raise InputError(
                "no page holds any text to generate from"
                + (f"; first skipped: {first.render()}" if first else ""),
                path=first.file if first else None,
                line=first.line if first else None,
                hint="pass pages with text; navigation, code and front matter are removed",
            )
        for page in work.pages:
            work.chunks.extend(
                chunk_page(
                    page,
                    max_tokens=self.max_chunk_tokens,
                    counter=self.counter,
                    first_index=len(work.chunks),
                )
            )
        work.prompts = [build_prompt(c, self.pairs_per_chunk) for c in work.chunks]
        return work

    def _collect(self, work: _Work, items: list[BatchItem]) -> GenerationResult:
        pages, chunks, skipped, removed = work.pages, work.chunks, work.skipped, work.removed
        issues: list[ReplyIssue] = []
        pairs: list[GeneratedPair] = []
        seen: set[str] = set()
        parsed_total = duplicates = 0
        prompt_tokens = completion_tokens = 0
        malformed = failed = 0
        examples: list[str] = []
        per_reason: Counter[str] = Counter()
        dup_examples = 0
        for chunk, item in zip(chunks, items, strict=True):
            where = chunk.render()
            if item.answer is None:
                failed += 1
                malformed += 1
                issues.append(
                    ReplyIssue(
                        reason="request_failed",
                        message=item.error or "the request failed",
                        chunk=chunk.index,
                        where=where,
                    )
                )
                continue
            answer = item.answer
            prompt_tokens += answer.usage.prompt_tokens
            completion_tokens += answer.usage.completion_tokens
            parsed = parse_reply(answer.text)
            found = list(parsed.issues)
            got = list(parsed.pairs)
            if answer.finish_reason == "length" and got:
                got.pop()
                found.append(
                    ("truncated", "the reply hit the token limit; its last pair was dropped", 1)
                )
            if any(reason != "extra_text" for reason, _, _ in found):
                malformed += 1
            for reason, message, lost in found:
                issues.append(
                    ReplyIssue(
                        reason=reason,
                        message=message,
                        chunk=chunk.index,
                        where=where,
                        dropped=lost,
                    )
                )
            parsed_total += len(got)
            for question, text in got:
                key = question_key(question)
                if key in seen:
                    duplicates += 1
                    if dup_examples < EXAMPLES_PER_REASON:
                        dup_examples += 1
                        examples.append(f"{where}: duplicate_question: {question!r}")
                    continue
                seen.add(key)
                pairs.append(
                    GeneratedPair(
                        question=question,
                        answer=text,
                        file=chunk.file,
                        title=chunk.title,
                        heading=chunk.heading,
                        start_line=chunk.start_line,
                        end_line=chunk.end_line,
                        chunk=chunk.index,
                    )
                )
        reply_issues: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        for issue in issues:
            reply_issues[issue.reason] += 1
            if issue.dropped:
                dropped[issue.reason] += issue.dropped
            if per_reason[issue.reason] < EXAMPLES_PER_REASON:
                per_reason[issue.reason] += 1
                examples.append(issue.render())
        page_skips: Counter[str] = Counter()
        sections = 0
        for skip in skipped:
            if skip.reason == "empty_section":
                sections += 1
            else:
                page_skips[skip.reason] += 1
            if per_reason[skip.reason] < EXAMPLES_PER_REASON:
                per_reason[skip.reason] += 1
                examples.append(f"{skip.render()} ({skip.reason})")
        report = GenerationReport(
            model=self.chat.model,
            pages_found=len(pages) + sum(page_skips.values()),
            pages_read=len(pages),
            pages_skipped=dict(sorted(page_skips.items())),
            sections_skipped=sections,
            removed=dict(sorted(removed.items())),
            chunks=len(chunks),
            requests_failed=failed,
            replies_malformed=malformed,
            reply_issues=dict(sorted(reply_issues.items())),
            pairs_dropped=dict(sorted(dropped.items())),
            pairs_parsed=parsed_total,
            duplicates_dropped=duplicates,
            pairs_kept=len(pairs),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            examples=examples,
        )
        return GenerationResult(
            pairs=pairs, chunks=chunks, issues=issues, skipped=skipped, report=report
        )
