"""Chunking: a cleaned page cut along its structure into pieces of at most N tokens."""

from __future__ import annotations

from collections.abc import Sequence

from finetune_qa._text import SENTENCE_BREAK
from finetune_qa.exceptions import UsageError
from finetune_qa.generation._models import (
    DEFAULT_MAX_CHUNK_TOKENS,
    Block,
    Chunk,
    MarkdownPage,
    _render,
)
from finetune_qa.tokens import TokenCounter


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


def _target(page: MarkdownPage, max_tokens: int, counter: TokenCounter) -> int:
    """The size chunks aim at: the page cut into equal parts of at most ``max_tokens``."""
    total = counter.count(_render(page.blocks))
    return -(-total // -(-total // max_tokens)) if total else max_tokens


def _pack(
    sections: list[list[Block]], target: int, max_tokens: int, counter: TokenCounter
) -> list[list[Block]]:
    """Pack sections into groups of blocks, each of at most ``max_tokens`` tokens."""
    # Aim at equal chunks: a page of 1.1 chunks' worth gives two halves, not a full chunk
    # and a scrap. A chunk closes once it reaches the target; it never exceeds max_tokens.
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

    return groups


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

    groups = _pack(sections, _target(page, max_tokens, counter), max_tokens, counter)

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
