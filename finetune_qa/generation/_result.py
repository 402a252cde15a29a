"""What a generation run returns: the pairs, the reply issues, the report, the writers."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import atomic_write
from finetune_qa.config import EXAMPLES_PER_REASON
from finetune_qa.data import Provenance, QAPair
from finetune_qa.exceptions import InputFileError
from finetune_qa.generation._coverage import CoverageReport
from finetune_qa.generation._models import _STRICT, Chunk, PageIssue, _one_line


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
    followup_requests: int = Field(
        default=0,
        description="Requests sent after the first replies, one per chunk whose fact-bearing "
        "sentences no pair covered yet, asking a pair for each.",
    )
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
    coverage: CoverageReport = Field(
        default_factory=CoverageReport,
        description="Fact-bearing sentences of the pages, how many the pairs cover, and the "
        "uncovered ones with file and line.",
    )
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
            f"  replies: {self.chunks + self.followup_requests}"
            + (f" ({self.followup_requests} follow-ups)" if self.followup_requests else "")
            + f", malformed: {self.replies_malformed}"
            + (f" ({counts(self.reply_issues)})" if self.reply_issues else "")
            + f", requests failed: {self.requests_failed}",
            f"  pairs parsed: {self.pairs_parsed}, duplicates dropped: "
            f"{self.duplicates_dropped}, kept: {self.pairs_kept}",
            f"  tokens: {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion",
        ]
        if self.pairs_dropped:
            lines.insert(5, f"  pairs dropped: {counts(self.pairs_dropped)}")
        lines.append(self.coverage.to_text())
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
