"""QAGenerator: pages read and chunked, prompts sent, replies parsed, pairs deduped."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from finetune_qa._text import question_key
from finetune_qa.chat import BatchItem, ChatModel
from finetune_qa.config import EXAMPLES_PER_REASON
from finetune_qa.exceptions import InputError, UnknownModelError, UsageError
from finetune_qa.generation._chunks import chunk_page
from finetune_qa.generation._coverage import (
    CoverageReport,
    FactSentence,
    coverage,
    fact_sentences,
)
from finetune_qa.generation._models import (
    DEFAULT_MAX_CHUNK_TOKENS,
    DEFAULT_PAIRS_PER_CHUNK,
    GENERATION_SYSTEM_PROMPT,
    Chunk,
    MarkdownPage,
    PageIssue,
)
from finetune_qa.generation._pages import iter_pages
from finetune_qa.generation._prompt import build_prompt, parse_reply
from finetune_qa.generation._result import (
    GeneratedPair,
    GenerationReport,
    GenerationResult,
    ReplyIssue,
)
from finetune_qa.tokens import TokenCounter

_MAX_PAIRS = 50
"""The most pairs one request asks for (the top of pairs_per_chunk's range)."""


@dataclass
class _Work:
    """What a run sends, read before the first request."""

    pages: list[MarkdownPage] = field(default_factory=list)
    skipped: list[PageIssue] = field(default_factory=list)
    removed: Counter[str] = field(default_factory=Counter)
    chunks: list[Chunk] = field(default_factory=list)
    facts: list[list[FactSentence]] = field(default_factory=list)  # per chunk
    prompts: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What the replies gave so far: kept pairs, issues and the counts of the report."""

    pairs: list[GeneratedPair] = field(default_factory=list)
    issues: list[ReplyIssue] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)
    parsed: int = 0
    duplicates: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    malformed: int = 0
    failed: int = 0
    followups: int = 0


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
        cover_facts: after the replies, send one more request per chunk whose
            fact-bearing sentences no pair covers yet, asking a pair for each of them
            (``False``: none; the coverage report still lists them).

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
        cover_facts: bool = True,
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
        self.cover_facts = bool(cover_facts)
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
        run = _Run()
        items = self.chat.ask_many(work.prompts, concurrency=self.concurrency)
        self._collect(run, work.chunks, items)
        again = self._followups(work, run)
        if again:
            prompts = [build_prompt(c, len(f)) for c, f in again]
            items = self.chat.ask_many(prompts, concurrency=self.concurrency)
            self._collect(run, [c for c, _ in again], items, followup=True)
        return self._result(work, run)

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
        run = _Run()
        items = await self.chat.aask_many(work.prompts, concurrency=self.concurrency)
        self._collect(run, work.chunks, items)
        again = self._followups(work, run)
        if again:
            prompts = [build_prompt(c, len(f)) for c, f in again]
            items = await self.chat.aask_many(prompts, concurrency=self.concurrency)
            self._collect(run, [c for c, _ in again], items, followup=True)
        return self._result(work, run)

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
            chunks = chunk_page(
                page,
                max_tokens=self.max_chunk_tokens,
                counter=self.counter,
                first_index=len(work.chunks),
            )
            work.chunks.extend(chunks)
            work.facts.extend(fact_sentences(page, chunks))
        # pairs_per_chunk is a floor: a chunk stating more facts is asked for one pair each
        work.prompts = [
            build_prompt(c, min(_MAX_PAIRS, max(self.pairs_per_chunk, len(f))))
            for c, f in zip(work.chunks, work.facts, strict=True)
        ]
        return work

    def _collect(
        self, run: _Run, chunks: list[Chunk], items: list[BatchItem], *, followup: bool = False
    ) -> None:
        """Parse the replies for ``chunks`` into ``run``: pairs kept, duplicates, issues."""
        for chunk, item in zip(chunks, items, strict=True):
            run.followups += followup
            where = chunk.render()
            if item.answer is None:
                run.failed += 1
                run.malformed += 1
                message = item.error or "the request failed"
                run.issues.append(
                    ReplyIssue(
                        reason="request_failed", message=message, chunk=chunk.index, where=where
                    )
                )
                continue
            answer = item.answer
            run.prompt_tokens += answer.usage.prompt_tokens
            run.completion_tokens += answer.usage.completion_tokens
            parsed = parse_reply(answer.text)
            found = list(parsed.issues)
            got = list(parsed.pairs)
            if answer.finish_reason == "length" and got:
                got.pop()
                found.append(
                    ("truncated", "the reply hit the token limit; its last pair was dropped", 1)
                )
            if any(reason != "extra_text" for reason, _, _ in found):
                run.malformed += 1
            run.issues.extend(
                ReplyIssue(reason=r, message=m, chunk=chunk.index, where=where, dropped=lost)
                for r, m, lost in found
            )
            run.parsed += len(got)
            for question, text in got:
                self._keep(run, chunk, question, text)

    @staticmethod
    def _keep(run: _Run, chunk: Chunk, question: str, answer: str) -> None:
        """Keep a pair unless an earlier one asked the same question."""
        key = question_key(question)
        if key in run.seen:
            run.duplicates += 1
            if run.duplicates <= EXAMPLES_PER_REASON:
                run.examples.append(f"{chunk.render()}: duplicate_question: {question!r}")
            return
        run.seen.add(key)
        run.pairs.append(
            GeneratedPair(
                question=question,
                answer=answer,
                file=chunk.file,
                title=chunk.title,
                heading=chunk.heading,
                start_line=chunk.start_line,
                end_line=chunk.end_line,
                chunk=chunk.index,
            )
        )

    def _coverage(self, work: _Work, run: _Run) -> CoverageReport:
        facts = [f for per_chunk in work.facts for f in per_chunk]
        return coverage(facts, ((p.file, p.question, p.answer) for p in run.pairs))

    def _followups(self, work: _Work, run: _Run) -> list[tuple[Chunk, list[FactSentence]]]:
        """A request per chunk whose fact-bearing sentences no pair covers yet, when asked."""
        if not self.cover_facts:
            return []
        missing: dict[int, list[FactSentence]] = {}
        for fact in self._coverage(work, run).uncovered:
            missing.setdefault(fact.chunk, []).append(fact)
        again = []
        for index, facts in sorted(missing.items()):
            chunk = work.chunks[index]
            text = "\n\n".join(f.text for f in facts[:_MAX_PAIRS])
            piece = chunk.model_copy(update={"text": text, "tokens": self.counter.count(text)})
            again.append((piece, facts[:_MAX_PAIRS]))
        return again

    def _result(self, work: _Work, run: _Run) -> GenerationResult:
        """The result and its report, once every reply is in."""
        examples = list(run.examples)
        per_reason: Counter[str] = Counter()
        reply_issues: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        for issue in run.issues:
            reply_issues[issue.reason] += 1
            if issue.dropped:
                dropped[issue.reason] += issue.dropped
            if per_reason[issue.reason] < EXAMPLES_PER_REASON:
                per_reason[issue.reason] += 1
                examples.append(issue.render())
        page_skips: Counter[str] = Counter()
        sections = 0
        for skip in work.skipped:
            if skip.reason == "empty_section":
                sections += 1
            else:
                page_skips[skip.reason] += 1
            if per_reason[skip.reason] < EXAMPLES_PER_REASON:
                per_reason[skip.reason] += 1
                examples.append(f"{skip.render()} ({skip.reason})")
        report = GenerationReport(
            model=self.chat.model,
            pages_found=len(work.pages) + sum(page_skips.values()),
            pages_read=len(work.pages),
            pages_skipped=dict(sorted(page_skips.items())),
            sections_skipped=sections,
            removed=dict(sorted(work.removed.items())),
            chunks=len(work.chunks),
            followup_requests=run.followups,
            requests_failed=run.failed,
            replies_malformed=run.malformed,
            reply_issues=dict(sorted(reply_issues.items())),
            pairs_dropped=dict(sorted(dropped.items())),
            pairs_parsed=run.parsed,
            duplicates_dropped=run.duplicates,
            pairs_kept=len(run.pairs),
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            coverage=self._coverage(work, run),
            examples=examples,
        )
        return GenerationResult(
            pairs=sorted(run.pairs, key=lambda pair: pair.chunk),  # follow-ups join their chunk
            chunks=work.chunks,
            issues=run.issues,
            skipped=work.skipped,
            report=report,
        )
