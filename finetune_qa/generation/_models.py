"""The generation package's constants and the models of pages and chunks.

A page is read into a :class:`MarkdownPage` of :class:`Block` objects, and cut into
:class:`Chunk` objects, one per request; the reasons a page is skipped, a piece of noise
removed or a reply found malformed are named here, each with what it means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

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
    # (offset in text, line in the file) where each source line of a paragraph or list
    # starts, so a sentence inside a joined paragraph can be traced to its own line
    _starts: tuple[tuple[int, int], ...] = PrivateAttr(default=())

    def line_of(self, offset: int) -> int:
        """The file line that holds the character at ``offset`` of :attr:`text`.

        Exact for blocks that :func:`~finetune_qa.generation.clean_markdown` made (each
        source line of a paragraph is remembered); else the block's first line.
        """
        line = self.start_line
        for start, number in self._starts:
            if start > offset:
                break
            line = number
        return line

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


def _render(blocks: Sequence[Block]) -> str:
    return "\n\n".join(b.render() for b in blocks)


def _one_line(text: str) -> str:
    return " ".join(text.split())
