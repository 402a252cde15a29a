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
4. **Cover every fact** (:func:`fact_sentences`, :class:`CoverageReport`): the sentences
   of a chunk that state a fact (a number, price, duration, date, name, place, rule or
   step) are found first; ``pairs_per_chunk`` is a floor, so a chunk stating 8 facts is
   asked for 8 pairs, and after the replies one more request per chunk asks for the
   sentences no pair covers yet. The report's ``coverage`` counts the fact-bearing
   sentences and lists those still uncovered with file and line.

The package's private modules follow these steps: ``_pages`` (reading), ``_cleaning``,
``_chunks``, ``_prompt`` (the prompt and the reply parser), ``_coverage``, ``_result``
(the result, the report and the writers), ``_generator`` (:class:`QAGenerator`) and
``_models`` (constants, pages, blocks and chunks).

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

from finetune_qa.generation._chunks import chunk_page
from finetune_qa.generation._cleaning import clean_markdown
from finetune_qa.generation._coverage import (
    CoverageReport,
    FactSentence,
    fact_sentences,
    is_fact_bearing,
)
from finetune_qa.generation._generator import QAGenerator
from finetune_qa.generation._models import (
    DEFAULT_MAX_CHUNK_TOKENS,
    DEFAULT_PAIRS_PER_CHUNK,
    GENERATION_MARKER,
    GENERATION_SYSTEM_PROMPT,
    MAX_LINE_BYTES,
    REMOVED_KINDS,
    REPLY_ISSUE_REASONS,
    SKIP_REASONS,
    Block,
    Chunk,
    MarkdownPage,
    PageIssue,
)
from finetune_qa.generation._pages import iter_pages, load_markdown
from finetune_qa.generation._prompt import ParsedReply, build_prompt, parse_reply
from finetune_qa.generation._result import (
    GeneratedPair,
    GenerationReport,
    GenerationResult,
    ReplyIssue,
)

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
    "CoverageReport",
    "FactSentence",
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
    "fact_sentences",
    "is_fact_bearing",
    "iter_pages",
    "load_markdown",
    "parse_reply",
]
