"""Markdown cleaning: one pass over a page's lines, keeping headings, prose, lists, tables.

Navigation, code, front matter and HTML are removed and counted by kind
(:data:`~finetune_qa.generation.REMOVED_KINDS`); see the package docs for the full list.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from finetune_qa.exceptions import RecordError
from finetune_qa.generation._models import Block, MarkdownPage, PageIssue

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
    para_lines: list[int] = field(default_factory=list)  # the file line of each item of para
    para_start: int = 0
    para_end: int = 0
    first_heading: str | None = None

    def headings(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.stack)

    def flush(self) -> None:
        if self.para:
            text = "\n".join(self.para) if self.para_kind == "list" else " ".join(self.para)
            block = Block(
                kind=self.para_kind,
                text=text,
                headings=self.headings(),
                start_line=self.para_start,
                end_line=self.para_end,
            )
            starts, offset = [], 0
            for part, number in zip(self.para, self.para_lines, strict=True):
                starts.append((offset, number))
                offset += len(part) + 1
            block._starts = tuple(starts)
            self.blocks.append(block)
        self.para = []
        self.para_lines = []
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
            self.para_lines.append(line)
        elif self.para and self.para_kind == "list" and raw[:1] in " \t":
            self.para[-1] += f" {clean}"  # an indented continuation of the item above
        else:
            if self.para and self.para_kind == "list":
                self.flush()
            if not self.para:
                self.para_start = line
            self.para.append(clean)
            self.para_lines.append(line)
        self.para_end = line

    def table(self, lines: Sequence[str], start: int) -> int:
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


@dataclass(frozen=True)
class _FrontMatter:
    """What the front matter said, and the index of the first line after it."""

    title: str | None = None
    draft: bool = False
    end: int = 0
    found: bool = False


def _front_matter(lines: Sequence[str], path: str) -> _FrontMatter:
    """Read the YAML (``---``) or TOML (``+++``) front matter at the top of the page."""
    i = 0
    n = len(lines)
    while i < n and not lines[i].strip():
        i += 1
    if i >= n or lines[i].strip() not in ("---", "+++"):
        return _FrontMatter(end=i)
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
    title: str | None = None
    draft = False
    for k in range(i + 1, close):
        m = _FRONT_KEY.match(lines[k])
        if m is None:
            continue
        value = m[2].strip().strip("\"'").strip()
        if m[1].lower() == "title" and value:
            title = value
        elif m[1].lower() == "draft":
            draft = value.lower() in ("true", "yes", "on")
    return _FrontMatter(title=title, draft=draft, end=close + 1, found=True)


class _Pass(_Cleaner):
    """The line-by-line pass of :func:`clean_markdown`: each step consumes one construct."""

    def run(self, lines: Sequence[str], start: int) -> None:
        i = start
        while i < len(lines):
            i = self.step(lines, i)
        self.flush()

    def step(self, lines: Sequence[str], i: int) -> int:
        """Consume the construct starting at ``lines[i]``; return the next line's index."""
        raw = lines[i]
        if not raw.strip():
            self.flush()
            return i + 1
        if _FENCE.match(raw) is not None:
            return self.fence(lines, i)
        if "<!--" in raw and "-->" not in raw[raw.index("<!--") :]:
            return self.comment(lines, i)
        if "<!--" in raw:
            self.removed["html_comment"] += raw.count("<!--")
            raw = _COMMENT_INLINE.sub("", raw)
            if not raw.strip():
                return i + 1
        for handler in (self.script, self.heading_line, self.block_line):
            after = handler(lines, i, raw)
            if after is not None:
                return after
        self.quoted_or_text(raw, i + 1)
        return i + 1

    def fence(self, lines: Sequence[str], i: int) -> int:
        """A fenced code block, removed whole (an unclosed one runs to the end)."""
        self.flush()
        mark = _FENCE.match(lines[i])[1]  # type: ignore[index]
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(mark[0] * len(mark)) and set(lines[i].strip()) == {mark[0]}
        ):
            i += 1
        self.removed["code_block"] += 1
        return i + 1

    def comment(self, lines: Sequence[str], i: int) -> int:
        """An HTML comment over several lines; text before and after it is kept."""
        raw = lines[i]
        before = raw[: raw.index("<!--")]
        k = i + 1
        while k < len(lines) and "-->" not in lines[k]:
            k += 1
        after = lines[k][lines[k].index("-->") + 3 :] if k < len(lines) else ""
        self.removed["html_comment"] += 1
        if before.strip():
            self.text_line(before, i + 1)
        if after.strip():
            self.text_line(after, k + 1)
        return k + 1

    def script(self, lines: Sequence[str], i: int, raw: str) -> int | None:
        """A ``<script>`` or ``<style>`` block, removed up to its closing tag."""
        script = _SCRIPT_OPEN.search(raw)
        if script is None:
            return None
        self.flush()
        closing = f"</{script[1].lower()}"
        k = i
        while k < len(lines) and closing not in lines[k].lower():
            k += 1
        self.removed["script_or_style"] += 1
        return k + 1

    def heading_line(self, lines: Sequence[str], i: int, raw: str) -> int | None:
        """An ATX heading (``## Title``), or the underline of a setext one."""
        atx = _ATX.match(raw)
        if atx is not None:
            if atx[2]:
                self.heading(len(atx[1]), atx[2], i + 1)
            return i + 1
        setext = _SETEXT.match(raw)
        if (
            setext is not None
            and self.para
            and self.para_kind == "paragraph"
            and len(self.para) == 1
        ):
            text = self.para.pop()
            self.para_lines.pop()
            self.heading(1 if setext[1][0] == "=" else 2, text, self.para_start, i + 1)
            return i + 1
        return None

    def block_line(self, lines: Sequence[str], i: int, raw: str) -> int | None:
        """A thematic break, a table, a link definition or an admonition marker."""
        if _HR.match(raw):
            self.flush()
            self.removed["thematic_break"] += 1
            return i + 1
        if (
            "|" in raw
            and i + 1 < len(lines)
            and "|" in lines[i + 1]
            and _TABLE_SEP.match(lines[i + 1])
        ):
            return self.table(lines, i)
        if _LINK_DEF.match(raw):
            self.removed["link_definition"] += 1
            return i + 1
        if _ADMONITION.match(raw) or _COLON_FENCE.match(raw):
            self.flush()
            self.removed["admonition_marker"] += 1
            return i + 1
        return None

    def quoted_or_text(self, raw: str, line: int) -> None:
        """A line of text, its blockquote markers and GitHub alert marker removed."""
        if _QUOTE.match(raw):
            while _QUOTE.match(raw):
                raw = _QUOTE.sub("", raw, count=1)
            if _GH_ALERT.match(raw.strip()):
                self.flush()
                self.removed["admonition_marker"] += 1
                raw = _GH_ALERT.sub("", raw.strip())
                if not raw.strip():
                    return
            if not raw.strip():
                self.flush()
                return
        self.text_line(raw, line)


def clean_markdown(text: str | Sequence[str], *, path: str = "<text>") -> MarkdownPage:
    """Clean Markdown held in memory (a string, or its lines); see the package docs.

    Args:
        text: the page's Markdown.
        path: the name the page goes by in provenance and messages.

    Raises:
        RecordError: the front matter is never closed.
    """
    lines = text.removeprefix("\ufeff").splitlines() if isinstance(text, str) else list(text)
    front = _front_matter(lines, path)
    c = _Pass(path)
    if front.found:
        c.removed["front_matter"] += 1
    c.run(lines, front.end)
    blocks, skipped = _drop_empty_sections(c.blocks, path)
    removed = {k: v for k, v in sorted(c.removed.items()) if v}
    only_front = front.found and all(not s.strip() for s in lines[front.end :])
    return MarkdownPage(
        path=path,
        title=front.title or c.first_heading or (Path(path).stem if path != "<text>" else ""),
        blocks=blocks,
        removed=removed,
        skipped_sections=skipped,
        draft=front.draft,
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
