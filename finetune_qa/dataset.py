"""DatasetBuilder: QA sources in, chat fine-tuning JSONL out, with every drop accounted for.

The builder streams: sources -> normalize -> filters -> dedupe -> split -> write. Memory
does not grow with the number of pairs beyond 8 bytes a distinct question (for dedupe)
and a few examples per drop reason. Files are written atomically: either the whole
train (and validation) file appears, or nothing does.

The :class:`BuildReport` it returns reconciles: ``read == kept + dropped``, with every
dropped pair under a reason, every changed pair counted under what changed, and a few
examples of each with where they came from.

Example:
    >>> import tempfile, pathlib
    >>> from finetune_qa import DatasetBuilder, QAPair
    >>> prices = ["Free."] * 2 + [f"It costs ${i} a month." for i in range(2, 12)]
    >>> pairs = [QAPair(question=f"What is plan {i}?", answer=p) for i, p in enumerate(prices)]
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
    >>> report = DatasetBuilder().add_pairs(pairs).build(out)
    >>> report.read, report.kept, report.reconciles
    (12, 10, True)
    >>> sorted(report.dropped_by_reason)
    ['answer_too_short']
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Self

from finetune_qa._text import question_key
from finetune_qa.catalog import ModelCatalog, ModelInfo, default_catalog
from finetune_qa.config import (
    DEFAULT_MIN_ANSWER_LENGTH,
    DEFAULT_MIN_QUESTION_LENGTH,
    DEFAULT_SEED,
    DEFAULT_STOP,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_VALIDATION_FRACTION,
    EXAMPLES_PER_REASON,
)
from finetune_qa.data import Provenance, QAPair, TrainingExample
from finetune_qa.exceptions import DatasetError, InputFileError, UsageError
from finetune_qa.readers import QASource, ReadIssue, SourceFormat
from finetune_qa.tokens import (
    TOKENS_PER_EXAMPLE,
    TOKENS_PER_MESSAGE,
    BatchCounter,
    encoding_name_for_model,
)
from finetune_qa.validation import ValidationReport, Validator

__all__ = ["BuildReport", "DatasetBuilder", "ReasonCount", "ReasonExample"]

REASONS: dict[str, str] = {
    # from the readers
    "unbalanced_row": "the row's question and answer lists differ in length and are not numbered",
    "unmatched_question": "a numbered question with no answer of the same number",
    "unmatched_answer": "a numbered answer with no question of the same number",
    "missing_cell": "the row has no cell for a required column",
    "empty_question": "the question is empty",
    "empty_answer": "the answer is empty",
    "multi_turn": "a multi-turn chat example cannot be reduced to one pair",
    "no_user_or_assistant": "a chat example without a user or an assistant message",
    "non_text_content": "a chat message whose content is not text",
    # from the builder
    "question_too_short": "the question is shorter than the minimum length",
    "answer_too_short": "the answer is shorter than the minimum length",
    "duplicate_question": "the same question (ignoring case, spacing and punctuation) came earlier",
}
"""Why a pair can be dropped; custom filters add their own names."""

CHANGES: dict[str, str] = {
    "numbering_stripped": "a list marker such as '1.', '10)', 'Q:' or '-' was removed",
    "continuation_joined": "a continuation line was joined to its item",
    "whitespace_stripped": "white space around the text was removed",
    "stop_marker_removed": "the stop marker was removed from an existing answer",
    "unicode_normalized": "the text was put in Unicode NFC form",
    "whitespace_normalized": "runs of spaces or tabs were collapsed to one space",
}
"""What the readers and the builder may change in a pair (it is kept, and counted)."""

_SPACES = re.compile(r"[ \t\u00a0]{2,}|[\t\u00a0]")
_CH_UNICODE = "unicode_normalized"
_CH_SPACES = "whitespace_normalized"
_BATCH = 4096
_PROCESS_THRESHOLD_BYTES = 16 * 1024 * 1024


class ReasonExample(BaseModel):
    """One example of a drop or change, with where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="file:line (row, item).")
    question: str | None = Field(default=None, description="The question, shortened.")
    answer: str | None = Field(default=None, description="The answer, shortened.")
    detail: str | None = Field(default=None, description="What exactly happened.")


class ReasonCount(BaseModel):
    """How many pairs one reason covers, and a few examples."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(description="Number of pairs.")
    description: str = Field(description="What the reason means.")
    examples: list[ReasonExample] = Field(description="The first few pairs it applied to.")


class BuildReport(BaseModel):
    """What a build read, kept, dropped (by reason) and changed, and where it wrote."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(description="Inputs, in the order read, with their format.")
    read: int = Field(description="Candidate pairs read (kept + dropped).")
    kept: int = Field(description="Pairs written (train + validation).")
    train: int = Field(description="Examples in the training file.")
    validation: int = Field(description="Examples in the validation file.")
    dropped: int = Field(description="Pairs not written.")
    dropped_by_reason: dict[str, ReasonCount] = Field(description="Drops by reason.")
    changed_by_reason: dict[str, ReasonCount] = Field(description="Changes by kind.")
    output: str | None = Field(description="Training JSONL written.")
    validation_output: str | None = Field(description="Validation JSONL written, if any.")
    system_prompt: str | None = Field(description="System message of every example.")
    stop: str | None = Field(description="Stop marker appended to every answer.")
    validation_fraction: float = Field(description="Share of questions sent to validation.")
    seed: int = Field(description="Seed of the split.")
    token_report: ValidationReport | None = Field(
        default=None, description="Token figures and cost of the training file, when asked for."
    )

    @property
    def reconciles(self) -> bool:
        """True when read == kept + dropped and the drops add up by reason."""
        return self.read == self.kept + self.dropped and self.dropped == sum(
            r.count for r in self.dropped_by_reason.values()
        )

    def to_json(self) -> str:
        """The report as indented JSON."""
        data = self.model_dump(mode="json")
        data["reconciles"] = self.reconciles
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")

    def to_text(self) -> str:
        """A plain-text rendering."""
        return self._render(markdown=False)

    def to_markdown(self) -> str:
        """A Markdown rendering."""
        return self._render(markdown=True)

    def _render(self, *, markdown: bool) -> str:
        h = "## " if markdown else ""
        b = "- " if markdown else "  "
        out = [f"{'# ' if markdown else ''}Build report", ""]
        for s in self.sources:
            out.append(f"{b}source: {s}")
        out.append(
            f"{b}read {self.read:,} pairs = kept {self.kept:,} + dropped {self.dropped:,}"
            f" ({'reconciles' if self.reconciles else 'DOES NOT RECONCILE'})"
        )
        out.append(f"{b}train: {self.train:,} -> {self.output}")
        if self.validation_output:
            out.append(f"{b}validation: {self.validation:,} -> {self.validation_output}")
        for title, table in (
            ("Dropped", self.dropped_by_reason),
            ("Changed", self.changed_by_reason),
        ):
            if not table:
                continue
            out.append("")
            out.append(f"{h}{title}")
            for reason, rc in table.items():
                out.append(f"{b}{reason}: {rc.count:,} ({rc.description})")
                for ex in rc.examples:
                    parts = [ex.source]
                    if ex.detail:
                        parts.append(ex.detail)
                    if ex.question is not None:
                        parts.append(f"Q: {ex.question!r}")
                    if ex.answer is not None:
                        parts.append(f"A: {ex.answer!r}")
                    out.append(f"{b}    " + " | ".join(parts))
        text = "\n".join(out) + "\n"
        if self.token_report is not None:
            text += "\n" + (
                self.token_report.to_markdown() if markdown else self.token_report.to_text()
            )
        return text


def _short(text: str | None, n: int = 80) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class _Tally:
    count: int = 0
    examples: list[ReasonExample] = field(default_factory=list)

    def add(
        self,
        n: int,
        source: str,
        question: str | None = None,
        answer: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.count += n
        if len(self.examples) < EXAMPLES_PER_REASON:
            self.examples.append(
                ReasonExample(
                    source=source, question=_short(question), answer=_short(answer), detail=detail
                )
            )


class _Accounts:
    """Running totals of a build: pairs read, drops by reason, changes by reason tuple."""

    def __init__(self) -> None:
        self.read = 0
        self.drops: dict[str, _Tally] = {}
        self.change_counts: dict[tuple[str, ...], int] = {}
        self.change_examples: dict[str, list[ReasonExample]] = {}
        self.change_examples_full: set[tuple[str, ...]] = set()

    def drop(
        self,
        reason: str,
        n: int,
        source: str,
        question: str | None,
        answer: str | None,
        detail: str | None,
    ) -> None:
        t = self.drops.get(reason)
        if t is None:
            t = self.drops[reason] = _Tally()
        t.add(n, source, question, answer, detail)

    def change_example(
        self, kinds: tuple[str, ...], source: str, question: str, answer: str
    ) -> None:
        full = True
        for k in kinds:
            lst = self.change_examples.setdefault(k, [])
            if len(lst) < EXAMPLES_PER_REASON:
                lst.append(
                    ReasonExample(source=source, question=_short(question), answer=_short(answer))
                )
            full = full and len(lst) >= EXAMPLES_PER_REASON
        if full:
            self.change_examples_full.add(kinds)

    def changes(self) -> dict[str, _Tally]:
        out: dict[str, _Tally] = {}
        for kinds, n in self.change_counts.items():
            for k in kinds:
                t = out.get(k)
                if t is None:
                    t = out[k] = _Tally(examples=self.change_examples.get(k, []))
                t.count += n
        return out


Filter = Callable[[QAPair], "bool | str"]
"""A custom filter: return True to keep the pair, False (or a reason string) to drop it."""


@dataclass
class _SourceSpec:
    source: QASource | None
    pairs: Iterable[QAPair] | None
    label: str
    label_file: str | None = None


def _render_where(file: str | None, line: int | None, row: int | None, item: int | None) -> str:
    return Provenance.model_construct(file=file, line=line, row=row, item=item).render()


class DatasetBuilder:
    """Builds chat fine-tuning JSONL from QA sources; fluent, streaming, and accountable.

    Args:
        system_prompt: system message of every example (``None`` or ``""``: none).
        stop: marker appended to every answer after one space (``None`` or ``""``: none).
        min_question_length: shortest question kept, in characters.
        min_answer_length: shortest answer kept, in characters.
        dedupe: drop later pairs whose question matches an earlier one.
        normalize: put text in Unicode NFC form and collapse runs of spaces and tabs.
        validation_fraction: share of distinct questions for the validation file.
        seed: seed of the split.

    Example:
        ```python
        report = (
            DatasetBuilder(system_prompt="You answer questions about Acme.")
            .add_source("qa.csv")
            .split(0.1, seed=7)
            .build("train.jsonl", validation_output="val.jsonl", model="gpt-4o-mini")
        )
        print(report.to_text())
        ```
    """

    def __init__(
        self,
        *,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        stop: str | None = DEFAULT_STOP,
        min_question_length: int = DEFAULT_MIN_QUESTION_LENGTH,
        min_answer_length: int = DEFAULT_MIN_ANSWER_LENGTH,
        dedupe: bool = True,
        normalize: bool = True,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        seed: int = DEFAULT_SEED,
    ) -> None:
        self._sources: list[_SourceSpec] = []
        self._filters: list[tuple[str, Filter]] = []
        self.system_prompt = system_prompt or None
        self.stop = stop or None
        self.min_lengths(question=min_question_length, answer=min_answer_length)
        self.dedupe = dedupe
        self.normalize = normalize
        self.split(validation_fraction, seed=seed)

    # ------------------------------------------------------------------ fluent setup
    def add_source(
        self,
        path: str | os.PathLike[str],
        *,
        format: SourceFormat = "auto",
        question_column: str | None = None,
        answer_column: str | None = None,
        delimiter: str | None = None,
        strict: bool = False,
        stop: str | None = None,
    ) -> Self:
        """Add a file of QA pairs (seed CSV layout, pair-per-row CSV, pairs JSONL, chat JSONL).

        The options are those of :class:`~finetune_qa.readers.QASource`; the format is
        detected from the extension and the header when ``format="auto"``.
        """
        src = QASource(
            path,
            format=format,
            question_column=question_column,
            answer_column=answer_column,
            delimiter=delimiter,
            strict=strict,
            stop=stop,
        )
        self._sources.append(_SourceSpec(src, None, f"{src.path} ({src.format})"))
        return self

    def add_pairs(self, pairs: Iterable[QAPair], *, label: str = "<pairs>") -> Self:
        """Add pairs already in memory (or any iterable, consumed once at build time)."""
        self._sources.append(_SourceSpec(None, pairs, label))
        return self

    def with_system_prompt(self, text: str | None) -> Self:
        """Set the system message (``None``: examples without one)."""
        self.system_prompt = text or None
        return self

    def with_stop(self, marker: str | None) -> Self:
        """Set the stop marker appended to answers (``None``: none)."""
        self.stop = marker or None
        return self

    def min_lengths(self, *, question: int | None = None, answer: int | None = None) -> Self:
        """Set the shortest question and answer kept, in characters (0 keeps everything)."""
        for name, value in (("question", question), ("answer", answer)):
            if value is not None and (type(value) is not int or value < 0):
                raise UsageError(f"min {name} length must be a whole number >= 0, got {value!r}")
        if question is not None:
            self.min_question_length = question
        if answer is not None:
            self.min_answer_length = answer
        return self

    def filter(self, fn: Filter, *, name: str | None = None) -> Self:
        """Add a custom filter; pairs it rejects are counted under ``name`` (or its reason).

        ``fn`` gets each :class:`QAPair` that passed the built-in filters and returns True to
        keep it, False to drop it under ``name``, or a string to drop it under that reason.
        """
        label = name or str(getattr(fn, "__name__", "custom_filter"))
        self._filters.append((label, fn))
        return self

    def split(self, validation_fraction: float, *, seed: int = DEFAULT_SEED) -> Self:
        """Send about ``validation_fraction`` of the distinct questions to the validation file.

        Each question's side is decided by a seeded hash of its normalized form, so a
        question and its duplicates always land on the same side, whatever the input
        order, and the same seed gives the same split.
        """
        if not isinstance(validation_fraction, (int, float)) or not 0 <= validation_fraction < 1:
            raise UsageError(
                f"validation_fraction must be at least 0 and below 1, got {validation_fraction!r}"
            )
        self.validation_fraction = float(validation_fraction)
        self.seed = seed
        return self

    # ------------------------------------------------------------------ streaming core
    def _iter_kept(self, acc: _Accounts) -> Iterator[tuple[str, str, bool]]:
        """Yield (question, answer, is_validation) for every kept pair; account for the rest.

        This loop runs once per pair of a possibly huge input, so it is written for speed:
        changes are counted per distinct tuple of reasons and expanded in the report.
        """
        min_q, min_a = self.min_question_length, self.min_answer_length
        normalize, dedupe = self.normalize, self.dedupe
        seen: set[int] = set()
        seed_crc = zlib.crc32(self.seed.to_bytes(8, "little", signed=True))
        threshold = int(self.validation_fraction * (1 << 32))
        filters = self._filters
        crc32 = zlib.crc32
        ch_counts = acc.change_counts
        ch_full = acc.change_examples_full
        drop = acc.drop
        for spec in self._sources:
            for item in self._raw(spec):
                if type(item) is not tuple:
                    assert isinstance(item, ReadIssue)
                    acc.read += item.count
                    drop(
                        item.reason,
                        item.count,
                        _render_where(item.file, item.line, item.row, item.item),
                        item.question,
                        item.answer,
                        item.message,
                    )
                    continue
                acc.read += 1
                q, a, line, row, idx, changed = item
                if changed:
                    ch_counts[changed] = ch_counts.get(changed, 0) + 1
                    if changed not in ch_full:
                        acc.change_example(
                            changed, _render_where(spec.label_file, line, row, idx), q, a
                        )
                if normalize:
                    q2, a2 = _normalize(q), _normalize(a)
                    if q2 is not q or a2 is not a:
                        kinds = tuple(sorted(_what_changed(q, q2) | _what_changed(a, a2)))
                        ch_counts[kinds] = ch_counts.get(kinds, 0) + 1
                        if kinds not in ch_full:
                            acc.change_example(
                                kinds, _render_where(spec.label_file, line, row, idx), q, a
                            )
                        q, a = q2, a2
                if len(q) < min_q:
                    drop(
                        "question_too_short",
                        1,
                        _render_where(spec.label_file, line, row, idx),
                        q,
                        a,
                        f"{len(q)} < {min_q} characters",
                    )
                    continue
                if len(a) < min_a:
                    drop(
                        "answer_too_short",
                        1,
                        _render_where(spec.label_file, line, row, idx),
                        q,
                        a,
                        f"{len(a)} < {min_a} characters",
                    )
                    continue
                if filters:
                    pair = QAPair(
                        question=q,
                        answer=a,
                        source=Provenance(file=spec.label_file, line=line, row=row, item=idx),
                    )
                    rejected = None
                    for fname, fn in filters:
                        verdict = fn(pair)
                        if verdict is True:
                            continue
                        rejected = verdict if isinstance(verdict, str) and verdict else fname
                        break
                    if rejected is not None:
                        drop(
                            rejected, 1, _render_where(spec.label_file, line, row, idx), q, a, None
                        )
                        continue
                key = question_key(q)
                if dedupe:
                    # Python's string hash: 64 bits, fixed within the process, and already
                    # computed for set membership; 8 bytes a distinct question.
                    h = hash(key)
                    if h in seen:
                        drop(
                            "duplicate_question",
                            1,
                            _render_where(spec.label_file, line, row, idx),
                            q,
                            a,
                            None,
                        )
                        continue
                    seen.add(h)
                # The side depends only on the question and the seed: duplicates (and the
                # same question in a later run) land on the same side.
                yield q, a, threshold > 0 and crc32(key.encode("utf-8"), seed_crc) < threshold

    def _raw(
        self, spec: _SourceSpec
    ) -> Iterator[tuple[str, str, int | None, int | None, int | None, tuple[str, ...]] | ReadIssue]:
        if spec.source is not None:
            spec.label_file = spec.source.path
            yield from spec.source.iter_raw()
            return
        spec.label_file = spec.label
        assert spec.pairs is not None
        for p in spec.pairs:
            if not isinstance(p, QAPair):
                raise UsageError(f"add_pairs() takes QAPair objects, got {type(p).__name__}")
            s = p.source
            if s is None:
                yield (p.question, p.answer, None, None, None, ())
            else:
                yield (p.question, p.answer, s.line, s.row, s.item, ())

    def iter_examples(self) -> Iterator[TrainingExample]:
        """Stream the kept pairs as :class:`TrainingExample` (train and validation alike)."""
        for q, a, _is_val in self._iter_kept(_Accounts()):
            yield TrainingExample.from_qa(
                QAPair(question=q, answer=a), system_prompt=self.system_prompt, stop=self.stop
            )

    # ------------------------------------------------------------------ build
    def build(
        self,
        output: str | os.PathLike[str],
        *,
        validation_output: str | os.PathLike[str] | None = None,
        model: str | ModelInfo | None = None,
        catalog: ModelCatalog | None = None,
        processes: int | None = None,
    ) -> BuildReport:
        """Read every source and write the training (and validation) JSONL atomically.

        Args:
            output: path of the training JSONL.
            validation_output: path of the validation JSONL; required when the
                validation fraction is above 0.
            model: when given, count the training file's tokens in the same pass and put
                a :class:`ValidationReport` (distributions, limit, cost) in the report.
            catalog: catalogue to resolve ``model`` in.
            processes: token-counting worker processes (None: automatic by input size).

        Returns:
            The :class:`BuildReport`.

        Raises:
            InputError: a source is unreadable or malformed (nothing is written).
            DatasetError: no pair survived (nothing is written; the report is attached).
        """
        if not self._sources:
            raise UsageError("no sources: call add_source() or add_pairs() before build()")
        if self.validation_fraction > 0 and validation_output is None:
            raise UsageError(
                "validation_fraction is above 0 but no validation_output path was given"
            )
        out_path = Path(output)
        val_path = Path(validation_output) if validation_output is not None else None
        if val_path is not None and val_path.resolve() == out_path.resolve():
            raise UsageError("output and validation_output are the same file")
        acc = _Accounts()
        n_train = n_val = 0
        validator: Validator | None = None
        counter: BatchCounter | None = None
        if model is not None:
            cat = catalog or default_catalog()
            info = cat.get(model)
            validator = Validator(model=model, catalog=cat, stop=self.stop, path=str(out_path))
            counter = BatchCounter(
                encoding_name_for_model(info), processes=self._auto_processes(processes)
            )
        suffix = f" {self.stop}" if self.stop else ""
        dumps = orjson.dumps
        # Each line is assembled from pre-encoded pieces; a test checks it equals
        # TrainingExample.from_qa(...).to_json() byte for byte.
        head = b'{"messages":['
        if self.system_prompt:
            head += dumps({"role": "system", "content": self.system_prompt}) + b","
        head += b'{"role":"user","content":'
        mid = b'},{"role":"assistant","content":'
        tail = b"}]}"
        n_msgs = 3 if self.system_prompt else 2
        with _AtomicFile(out_path) as train_f, _AtomicFile(val_path) as val_f:
            assert train_f is not None
            try:
                fixed = 0
                if counter is not None:
                    rc = counter.count_now(
                        ["user", "assistant", "system", self.system_prompt or ""]
                    )
                    fixed = TOKENS_PER_EXAMPLE + 2 * TOKENS_PER_MESSAGE + rc[0] + rc[1]
                    if self.system_prompt:
                        fixed += TOKENS_PER_MESSAGE + rc[2] + rc[3]
                buf: list[bytes] = []
                vbuf: list[bytes] = []
                texts: list[str] = []
                first_line = 1
                for q, a, is_val in self._iter_kept(acc):
                    answer = a + suffix
                    line = b"".join((head, dumps(q), mid, dumps(answer), tail))
                    if is_val and val_f is not None:
                        n_val += 1
                        vbuf.append(line)
                        if len(vbuf) >= _BATCH:
                            vbuf.append(b"")
                            val_f.write(b"\n".join(vbuf))
                            vbuf = []
                        continue
                    n_train += 1
                    buf.append(line)
                    if counter is not None:
                        texts.append(q)
                        texts.append(answer)
                    if len(buf) >= _BATCH:
                        buf.append(b"")
                        train_f.write(b"\n".join(buf))
                        buf = []
                        if counter is not None:
                            self._count(
                                counter, texts, first_line, fixed, n_msgs, validator, flush=False
                            )
                            texts, first_line = [], n_train + 1
                if buf:
                    buf.append(b"")
                    train_f.write(b"\n".join(buf))
                if vbuf and val_f is not None:
                    vbuf.append(b"")
                    val_f.write(b"\n".join(vbuf))
                if counter is not None:
                    self._count(counter, texts, first_line, fixed, n_msgs, validator, flush=True)
            finally:
                if counter is not None:
                    counter.close()
            report = self._report(acc, n_train, n_val, out_path, val_path)
            if n_train + n_val == 0:
                # raising inside the with-block removes the temporary files
                raise DatasetError(
                    f"no pair survived: {self._drop_summary(acc.drops)}. Nothing was written; "
                    "check the column names and the minimum lengths.",
                    report=report,
                )
        if validator is not None:
            report.token_report = validator.finish()
        return report

    @staticmethod
    def _count(
        counter: BatchCounter,
        texts: list[str],
        first_line: int,
        fixed: int,
        n_msgs: int,
        validator: Validator | None,
        *,
        flush: bool,
    ) -> None:
        assert validator is not None
        results = list(counter.put(texts, first_line)) if texts else []
        if flush:
            results.extend(counter.drain())
        record = validator.record_counts
        for meta, counts in results:
            assert isinstance(meta, int)
            for i in range(len(counts) // 2):
                a = counts[2 * i + 1]
                record(meta + i, n_msgs, fixed + counts[2 * i] + a, a)

    def _auto_processes(self, processes: int | None) -> int:
        if processes is not None:
            return processes
        size = 0
        for spec in self._sources:
            if spec.source is None:
                continue
            with contextlib.suppress(OSError):
                size += os.path.getsize(spec.source.path)
        return (os.cpu_count() or 1) if size >= _PROCESS_THRESHOLD_BYTES else 0

    @staticmethod
    def _drop_summary(drops: dict[str, _Tally]) -> str:
        if not drops:
            return "the sources held no pairs"
        return ", ".join(
            f"{k} {v.count:,}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1].count)
        )

    def _report(
        self, acc: _Accounts, n_train: int, n_val: int, out_path: Path, val_path: Path | None
    ) -> BuildReport:
        def table(
            d: dict[str, _Tally], names: dict[str, str], default: str
        ) -> dict[str, ReasonCount]:
            return {
                k: ReasonCount(
                    count=v.count, description=names.get(k, default), examples=v.examples
                )
                for k, v in sorted(d.items(), key=lambda kv: (-kv[1].count, kv[0]))
            }

        dropped = sum(t.count for t in acc.drops.values())
        return BuildReport(
            sources=[s.label for s in self._sources],
            read=acc.read,
            kept=n_train + n_val,
            train=n_train,
            validation=n_val,
            dropped=dropped,
            dropped_by_reason=table(acc.drops, REASONS, "rejected by a custom filter"),
            changed_by_reason=table(acc.changes(), CHANGES, "changed"),
            output=str(out_path),
            validation_output=str(val_path) if val_path is not None else None,
            system_prompt=self.system_prompt,
            stop=self.stop,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
        )


def _normalize(text: str) -> str:
    """NFC form and single spaces; returns ``text`` itself (same object) when unchanged."""
    out = text
    if not out.isascii() and not unicodedata.is_normalized("NFC", out):
        out = unicodedata.normalize("NFC", out)
    if "  " in out or "\t" in out or "\u00a0" in out:
        collapsed = _SPACES.sub(" ", out)
        if collapsed != out:
            out = collapsed
    return out


def _what_changed(before: str, after: str) -> set[str]:
    if before is after:
        return set()
    kinds = set()
    if not before.isascii() and not unicodedata.is_normalized("NFC", before):
        kinds.add(_CH_UNICODE)
    if _SPACES.search(before):
        kinds.add(_CH_SPACES)
    return kinds


class _AtomicFile:
    """Write to a temporary file beside ``path``; move it into place only on success."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._f: IO[bytes] | None = None
        self._tmp: str | None = None

    def __enter__(self) -> _AtomicFile | None:
        if self.path is None:
            return None
        if self.path.is_dir():
            raise InputFileError(
                "is a directory",
                path=self.path,
                hint="give a file name for the output, e.g. train.jsonl",
            )
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=parent
            )
        except OSError as exc:
            raise InputFileError(
                f"cannot write here ({exc.strerror})",
                path=self.path,
                hint="choose a writable directory",
            ) from exc
        self._f = os.fdopen(fd, "wb", buffering=1 << 20)
        return self

    def write(self, data: bytes) -> None:
        assert self._f is not None
        self._f.write(data)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._f is None or self._tmp is None or self.path is None:
            return
        self._f.close()
        if exc_type is None:
            os.chmod(self._tmp, 0o644 & ~_umask())
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(OSError):
                os.remove(self._tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
