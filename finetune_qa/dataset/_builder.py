"""DatasetBuilder: sources -> normalize -> filters -> dedupe -> augment -> split -> write."""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import orjson
from typing_extensions import Self

from finetune_qa._fs import AtomicFile, same_file
from finetune_qa._pipeline import (
    Accounts,
    KeySet,
    Options,
    line_parts,
    pair_key,
    screened,
)
from finetune_qa._procs import auto_workers
from finetune_qa._text import question_key
from finetune_qa.catalog import ModelCatalog, ModelInfo, default_catalog
from finetune_qa.config import (
    DEFAULT_MIN_ANSWER_LENGTH,
    DEFAULT_MIN_QUESTION_LENGTH,
    DEFAULT_SEED,
    DEFAULT_STOP,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_VALIDATION_FRACTION,
    DEFAULT_VALIDATION_SAMPLE,
)
from finetune_qa.data import Provenance, QAPair, TrainingExample
from finetune_qa.exceptions import DatasetError, UsageError
from finetune_qa.readers import (
    QASource,
    RawPair,
    ReadIssue,
    SourceFormat,
)
from finetune_qa.tokens import (
    TOKENS_PER_EXAMPLE,
    TOKENS_PER_MESSAGE,
    BatchCounter,
    encoding_name_for_model,
)
from finetune_qa.validation import Validator

if TYPE_CHECKING:
    from finetune_qa.chat import ChatModel
    from finetune_qa.rephrase import Rephraser

from finetune_qa.dataset._merge import write_parallel
from finetune_qa.dataset._report import (
    BuildReport,
    build_report,
    drop_summary,
    settings_note,
)

__all__ = ["DatasetBuilder", "Filter"]

_STRIPPED = ("whitespace_stripped",)
_BATCH = 4096
_REPHRASE_BATCH = 256  # questions sent to the writer at a time
_PROCESS_THRESHOLD_BYTES = 16 * 1024 * 1024
_OUTPUT_HINT = "give a file name for the output, e.g. train.jsonl"


class _Unset(enum.Enum):
    FROM_SOURCE = "from the source"

    def __repr__(self) -> str:
        return "<the chat source's own, else the default>"


_FROM_SOURCE = _Unset.FROM_SOURCE

Filter = Callable[[QAPair], "bool | str"]
"""A custom filter: return True to keep the pair, False (or a reason string) to drop it."""


@dataclass
class _SourceSpec:
    source: QASource | None
    pairs: Iterable[QAPair] | None
    label: str


def _render_where(file: str | None, line: int | None, row: int | None, item: int | None) -> str:
    return Provenance.model_construct(file=file, line=line, row=row, item=item).render()


class DatasetBuilder:
    """Builds chat fine-tuning JSONL from QA sources; fluent, streaming, and accountable.

    Args:
        system_prompt: system message of every example (``None`` or ``""``: none). When not
            given: the one a chat JSONL source carries (read back from training data, it
            stays what it was), else :data:`~finetune_qa.config.DEFAULT_SYSTEM_PROMPT`.
        stop: marker appended to every answer after one space (``None`` or ``""``: none).
            When not given: the marker a chat JSONL source's answers end with (removed
            when read, appended once when written), else ``**STOP**``.
        min_question_length: shortest question kept, in characters.
        min_answer_length: shortest answer kept, in characters.
        dedupe: drop later pairs whose question matches an earlier one.
        normalize: put text in Unicode NFC form and collapse runs of spaces and tabs.
        validation_fraction: share of distinct questions held out for the validation file
            (see :meth:`split`; :meth:`sample_validation` keeps every pair in training).
        seed: seed of the split.
        augment: rephrasings to add per kept question, each with the same answer (0:
            none); needs ``writer``. See :meth:`augment_with`.
        writer: the writer model (a :class:`~finetune_qa.chat.ChatModel`, e.g. a base
            model) or a :class:`~finetune_qa.rephrase.Rephraser`.
        rephrase_cache: the rephrasings cache (see :class:`~finetune_qa.rephrase.Rephraser`).

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
        system_prompt: str | _Unset | None = _FROM_SOURCE,
        stop: str | _Unset | None = _FROM_SOURCE,
        min_question_length: int = DEFAULT_MIN_QUESTION_LENGTH,
        min_answer_length: int = DEFAULT_MIN_ANSWER_LENGTH,
        dedupe: bool = True,
        normalize: bool = True,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
        seed: int = DEFAULT_SEED,
        augment: int = 0,
        writer: ChatModel | Rephraser | None = None,
        rephrase_cache: str | os.PathLike[str] | bool = True,
    ) -> None:
        self._rephraser: Rephraser | None = None
        self._aug: Counter[str] = Counter()
        if augment or writer is not None:
            self.augment_with(augment, writer=writer, cache=rephrase_cache)
        self._sources: list[_SourceSpec] = []
        self._filters: list[tuple[str, Filter]] = []
        self._prompt_set = system_prompt is not _FROM_SOURCE
        self._stop_set = stop is not _FROM_SOURCE
        self.system_prompt: str | None = (
            DEFAULT_SYSTEM_PROMPT if isinstance(system_prompt, _Unset) else system_prompt or None
        )
        self.stop: str | None = DEFAULT_STOP if isinstance(stop, _Unset) else _check_stop(stop)
        self.validation_mode: Literal["none", "holdout", "sample"] = "none"
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

    def augment_with(
        self,
        k: int,
        *,
        writer: ChatModel | Rephraser | None,
        cache: str | os.PathLike[str] | bool = True,
    ) -> Self:
        """Add ``k`` rephrasings of every kept question, each with the question's answer.

        A writer model rephrases (see :class:`~finetune_qa.rephrase.Rephraser`; its
        replies are cached, so building again asks nothing). The rephrasings of a question
        share its split value: all wordings of one pair land on the same side of any
        split. A rephrasing that repeats a kept question or an earlier rephrasing, or is
        under the minimum question length, is skipped and counted. The report's
        ``augmentation`` says how many were added, from which writer, and the cache hits.
        Large file builds then run in this process (the writer is asked in batches).

        Args:
            k: rephrasings per question, 0 (none) to 20.
            writer: a :class:`~finetune_qa.chat.ChatModel` (any backend's base model) or a
                :class:`~finetune_qa.rephrase.Rephraser` (whose own ``k`` is replaced).
            cache: the rephrasings cache file, ``True`` for the default one, ``False``
                for none (ignored when ``writer`` is a Rephraser).

        Raises:
            UsageError: a bad ``k``, or ``k`` above 0 without a writer.
        """
        from finetune_qa.rephrase import MAX_REPHRASINGS, Rephraser

        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_REPHRASINGS:
            raise UsageError(
                f"augment must be a whole number from 0 to {MAX_REPHRASINGS}, got {k!r}"
            )
        if k == 0:
            self._rephraser = None
            return self
        if writer is None:
            raise UsageError(
                f"augment={k} needs a writer model to rephrase the questions: pass writer="
                "ChatModel(<a base model>, backend=...) (offline: ChatModel.offline('gpt-4o-mini'))"
            )
        if isinstance(writer, Rephraser):
            writer.k = k
            self._rephraser = writer
        else:
            self._rephraser = Rephraser(writer, k=k, cache=cache)
        return self

    @property
    def augment(self) -> int:
        """Rephrasings added per kept question (0: no augmentation)."""
        return self._rephraser.k if self._rephraser is not None else 0

    def with_system_prompt(self, text: str | None) -> Self:
        """Set the system message (``None``: examples without one), over a source's own."""
        self.system_prompt = text or None
        self._prompt_set = True
        return self

    def with_stop(self, marker: str | None) -> Self:
        """Set the stop marker appended to answers (``None``: none), over a source's own."""
        self.stop = _check_stop(marker)
        self._stop_set = True
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
        """Hold ``validation_fraction`` of the distinct questions out of training.

        The validation file gets ``round(fraction * questions)`` of them, exactly (at most
        all but one): the questions whose seeded hash ranks lowest, so a question and its
        duplicates land on the same side whatever the input order, and the same seed and
        data give the same split. When that is less than one example no validation file
        is written and the report says so. A held-out question is not trained on: for a
        QA bot, which must know every fact, :meth:`sample_validation` is usually better.
        ``split(0)`` turns validation off.
        """
        self._check_fraction(validation_fraction, "validation_fraction", upper=1.0)
        self.validation_fraction = float(validation_fraction)
        self.validation_mode = "holdout" if validation_fraction > 0 else "none"
        self.seed = seed
        return self

    def sample_validation(
        self, fraction: float = DEFAULT_VALIDATION_SAMPLE, *, seed: int = DEFAULT_SEED
    ) -> Self:
        """Train on every pair, and repeat a sample of them in the validation file.

        A QA bot exists to know every fact of its source, so no pair is held out: the
        validation file holds copies of ``round(fraction * questions)`` training examples
        (at least one), chosen by the same seeded hash as :meth:`split`. Its loss then
        tracks how well the model has learnt what it must answer. For held-out questions
        that measure generalisation, evaluate rephrasings instead (``EvalSuite``).
        """
        self._check_fraction(fraction, "fraction", upper=1.0, include_upper=True)
        if fraction == 0:
            raise UsageError("a validation sample needs a fraction above 0; use split(0) for none")
        self.validation_fraction = float(fraction)
        self.validation_mode = "sample"
        self.seed = seed
        return self

    @staticmethod
    def _check_fraction(
        value: object, name: str, *, upper: float, include_upper: bool = False
    ) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            assert isinstance(value, (int, float))
            ok = 0 <= value <= upper if include_upper else 0 <= value < upper
        if not ok:
            below = f"at most {upper:g}" if include_upper else f"below {upper:g}"
            raise UsageError(f"{name} must be at least 0 and {below}, got {value!r}")

    # ------------------------------------------------------------------ streaming core
    def _options(
        self,
        encoding: str | None = None,
        *,
        settings: tuple[str | None, str | None] | None = None,
        cut: int = 0,
    ) -> Options:
        prompt, stop = settings if settings is not None else self.settings()[:2]
        return Options(
            normalize=self.normalize,
            min_question=self.min_question_length,
            min_answer=self.min_answer_length,
            seed=self.seed,
            validation_fraction=self.validation_fraction,
            system_prompt=prompt,
            suffix=f" {stop}" if stop else "",
            encoding=encoding,
            cut=cut,
            sample=self.validation_mode == "sample",
        )

    def settings(self) -> tuple[str | None, str | None, list[str]]:
        """The system prompt and stop marker a build writes, and notes on where they came from.

        A setting given to the builder wins; one not given comes from the first chat JSONL
        source (what its examples carry, none included), else the default. The notes say,
        for each chat source, whether its own settings were kept or replaced.
        """
        prompt, stop = self.system_prompt, self.stop
        chats = [
            s.source
            for s in self._sources
            if s.source is not None and s.source.format == "chat_jsonl"
        ]
        if chats:
            first = chats[0]
            if not self._prompt_set and not first.system_prompt_varies:
                prompt = first.system_prompt
            if not self._stop_set:
                stop = first.stop
        notes = [settings_note(src, prompt, stop) for src in chats]
        return prompt, stop, notes

    def _iter_kept(
        self, acc: Accounts, opts: Options, *, augment: bool = True
    ) -> Iterator[tuple[str, str, int, bool]]:
        """Yield (question, answer, split value, is a rephrasing) for every example.

        Without augmentation (or ``augment=False``: the split plan ranks pairs, not
        wordings) these are the kept pairs, in input order; with it, each kept pair is
        followed by its rephrasings, which share its split value.
        """
        pairs = self._iter_pairs(acc, opts)
        if not augment or self._rephraser is None:
            for q, a, v in pairs:
                yield q, a, v, False
            return
        yield from self._augmented(pairs, opts)

    def _augmented(
        self, pairs: Iterator[tuple[str, str, int]], opts: Options
    ) -> Iterator[tuple[str, str, int, bool]]:
        rephraser = self._rephraser
        assert rephraser is not None
        originals: set[int] = set()  # augmentation asks a writer: sizes stay moderate
        added: set[int] = set()
        while True:
            chunk = list(itertools.islice(pairs, _REPHRASE_BATCH))
            if not chunk:
                return
            for q, _a, _v in chunk:
                originals.add(pair_key(question_key(q), opts.salt)[0])
            rephrased = rephraser.rephrase_many(q for q, _a, _v in chunk)
            for (q, a, v), texts in zip(chunk, rephrased, strict=True):
                yield q, a, v, False
                self._aug["questions"] += 1
                for text in texts:
                    text = " ".join(text.split())
                    key = pair_key(question_key(text), opts.salt)[0]
                    if len(text) < self.min_question_length:
                        self._aug["too_short"] += 1
                    elif key in originals or key in added:
                        self._aug["duplicate"] += 1
                    else:
                        added.add(key)
                        yield text, a, v, True

    def _iter_pairs(self, acc: Accounts, opts: Options) -> Iterator[tuple[str, str, int]]:
        """Yield (question, answer, split value) for every kept pair, in input order."""
        seen = KeySet()
        salt, dedupe = opts.salt, self.dedupe
        filters = self._filters
        for spec in self._sources:
            label = spec.source.path if spec.source is not None else spec.label
            for q, a, line, row, idx in screened(self._raw(spec), acc, opts, label):
                if filters:
                    pair = QAPair(
                        question=q,
                        answer=a,
                        source=Provenance(file=label, line=line, row=row, item=idx),
                    )
                    rejected = None
                    for fname, fn in filters:
                        verdict = fn(pair)
                        if verdict is True:
                            continue
                        rejected = verdict if isinstance(verdict, str) and verdict else fname
                        break
                    if rejected is not None:
                        acc.drop(rejected, 1, (label, line, row, idx, q, a, None))
                        continue
                key, split_value = pair_key(question_key(q), salt)
                if dedupe and not seen.add(key):
                    acc.drop("duplicate_question", 1, (label, line, row, idx, q, a, None))
                    continue
                # The side depends only on the question's rank by this seeded hash:
                # duplicates land on the same side, whatever the input order.
                yield q, a, split_value

    def _raw(self, spec: _SourceSpec) -> Iterator[RawPair | ReadIssue]:
        if spec.source is not None:
            yield from spec.source.iter_raw()
            return
        assert spec.pairs is not None
        for p in spec.pairs:
            if not isinstance(p, QAPair):
                raise UsageError(f"add_pairs() takes QAPair objects, got {type(p).__name__}")
            q, a = p.question.strip(), p.answer.strip()
            changed = _STRIPPED if (len(q) != len(p.question) or len(a) != len(p.answer)) else ()
            s = p.source
            if s is None:
                yield (q, a, None, None, None, changed)
            else:
                yield (q, a, s.line, s.row, s.item, changed)

    def iter_examples(self) -> Iterator[TrainingExample]:
        """Stream the kept pairs as :class:`TrainingExample` (train and validation alike).

        With augmentation, each pair's rephrasings follow it.
        """
        prompt, stop, _ = self.settings()
        for q, a, _split_value, _added in self._iter_kept(Accounts(), self._options()):
            yield TrainingExample.from_qa(
                QAPair(question=q, answer=a), system_prompt=prompt, stop=stop
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
        require_training: bool = False,
    ) -> BuildReport:
        """Read every source and write the training (and validation) JSONL atomically.

        Large file sources (16 MiB and up, no custom filters) are read in byte ranges by
        worker processes, one per CPU; the output is the same as a sequential build. With
        a validation split the sources are read twice (in-memory pairs are kept in a list
        meanwhile): once to rank the questions, so the split is exact, once to write.

        Args:
            output: path of the training JSONL.
            validation_output: path of the validation JSONL; required when the
                validation fraction is above 0. It is not written (and the report's
                notes say why) when the split leaves it no example.
            model: when given, count the training file's tokens in the same pass and put
                a :class:`ValidationReport` (distributions, limit, cost) in the report.
            catalog: catalogue to resolve ``model`` in.
            processes: worker processes (None: automatic by input size; 0: none).
            require_training: fail (writing nothing) when every kept pair went to the
                validation file, instead of writing an empty training file.

        Returns:
            The :class:`BuildReport`.

        Raises:
            InputError: a source is unreadable or malformed (nothing is written).
            DatasetError: no pair survived, or (``require_training``) none is left for
                training (nothing is written; the report is attached).
        """
        out_path = Path(output)
        val_path = Path(validation_output) if validation_output is not None else None
        self._check_outputs(out_path, val_path)
        acc = Accounts()
        validator: Validator | None = None
        encoding: str | None = None
        prompt, stop, notes = self.settings()
        if model is not None:
            cat = catalog or default_catalog()
            encoding = encoding_name_for_model(cat.get(model))
            validator = Validator(model=model, catalog=cat, stop=stop, path=str(out_path))
        workers = self._auto_processes(processes)
        parallel = bool(
            workers
            and not self._filters
            and self._rephraser is None
            and all(s.source is not None for s in self._sources)
        )
        self._aug = Counter()
        cut = 0
        if self.validation_mode == "none" and val_path is not None:
            val_path = None
            notes.append("no validation file was written: no validation split was asked for")
        if val_path is not None:
            cut = self._rank_for_split(encoding, (prompt, stop), workers if parallel else 0, notes)
            if cut == 0:
                val_path = None
        opts = self._options(encoding, settings=(prompt, stop), cut=cut)
        with (
            AtomicFile(out_path, directory_hint=_OUTPUT_HINT) as train_f,
            (
                AtomicFile(val_path, directory_hint=_OUTPUT_HINT)
                if val_path is not None
                else nullcontext()
            ) as val_f,
        ):
            if parallel:
                n_train, n_val = write_parallel(self, acc, opts, train_f, val_f, validator, workers)
            else:
                n_train, n_val = self._write_sequential(
                    acc, opts, train_f, val_f, validator, workers
                )
            if val_f is not None and n_val == 0:
                # repeated questions tied at the cut: never leave an empty validation file
                val_f.discard()
                val_path = None
                notes.append(
                    "no validation file was written: every question at the split point "
                    "repeats one on the training side"
                )
            report = build_report(self, acc, n_train, n_val, out_path, val_path, opts, stop, notes)
            # raising inside the with-block removes the temporary files
            self._refuse_empty(report, acc, n_train, n_val, require_training=require_training)
        if validator is not None:
            report.token_report = validator.finish()
        return report

    def _check_outputs(self, out_path: Path, val_path: Path | None) -> None:
        """Refuse a build that cannot run: no sources, a missing or clashing output path."""
        if not self._sources:
            raise UsageError("no sources: call add_source() or add_pairs() before build()")
        if self.validation_fraction > 0 and val_path is None:
            raise UsageError(
                "validation_fraction is above 0 but no validation_output path was given"
            )
        if val_path is not None and val_path.resolve() == out_path.resolve():
            raise UsageError(
                f"the output and the validation output are one file ({out_path}): choose two paths"
            )
        for spec in self._sources:
            for target in (out_path, val_path):
                if spec.source is not None and target is not None:
                    _refuse_overwriting_input(Path(spec.source.path), target)

    def _rank_for_split(
        self,
        encoding: str | None,
        settings: tuple[str | None, str | None],
        workers: int,
        notes: list[str],
    ) -> int:
        """First read: rank the questions, so the split is exact; the cut (0: no split)."""
        for spec in self._sources:
            if spec.pairs is not None and not isinstance(spec.pairs, list):
                spec.pairs = list(spec.pairs)  # read twice: to rank, then to write
        cut, note = self._plan_split(self._options(encoding, settings=settings), workers)
        if note is not None:
            notes.append(note)
        return cut

    def _refuse_empty(
        self,
        report: BuildReport,
        acc: Accounts,
        n_train: int,
        n_val: int,
        *,
        require_training: bool,
    ) -> None:
        """DatasetError (the report attached) when nothing, or nothing to train on, is left."""
        if require_training and n_train == 0 and n_val > 0:
            raise DatasetError(
                f"no training example: all {n_val:,} kept pairs went to the validation "
                f"file (validation fraction {self.validation_fraction:g}). Nothing was "
                "written; lower the validation fraction.",
                report=report,
            )
        if n_train + n_val == 0:
            raise DatasetError(
                f"no pair survived: {drop_summary(acc.drops)}. Nothing was written; "
                "check the column names and the minimum lengths.",
                report=report,
            )

    def _write_sequential(
        self,
        acc: Accounts,
        opts: Options,
        train_f: AtomicFile,
        val_f: AtomicFile | None,
        validator: Validator | None,
        workers: int,
    ) -> tuple[int, int]:
        counter = (
            BatchCounter(opts.encoding, processes=workers) if opts.encoding is not None else None
        )
        prompt = opts.system_prompt
        head, mid, tail = line_parts(prompt)
        suffix, cut, sample = opts.suffix, opts.cut, opts.sample
        dumps = orjson.dumps
        n_train = n_val = 0
        try:
            fixed = 0
            if counter is not None:
                rc = counter.count_now(["user", "assistant", "system", prompt or ""])
                fixed = TOKENS_PER_EXAMPLE + 2 * TOKENS_PER_MESSAGE + rc[0] + rc[1]
                if prompt:
                    fixed += TOKENS_PER_MESSAGE + rc[2] + rc[3]
            buf: list[bytes] = []
            vbuf: list[bytes] = []
            texts: list[str] = []
            first_line = 1
            for q, a, split_value, added in self._iter_kept(acc, opts):
                answer = a + suffix
                line = b"".join((head, dumps(q), mid, dumps(answer), tail, b"\n"))
                if added:
                    self._aug["added"] += 1
                    side = "added_validation" if split_value < cut and val_f else "added_train"
                    self._aug[side] += 1
                    if side == "added_validation" and sample:
                        self._aug["added_train"] += 1
                if split_value < cut and val_f is not None:
                    n_val += 1
                    vbuf.append(line)
                    if len(vbuf) >= _BATCH:
                        val_f.write(b"".join(vbuf))
                        vbuf = []
                    if not sample:
                        continue
                n_train += 1
                buf.append(line)
                if counter is not None:
                    texts.append(q)
                    texts.append(answer)
                if len(buf) >= _BATCH:
                    train_f.write(b"".join(buf))
                    buf = []
                    if counter is not None:
                        self._count(
                            counter, texts, first_line, fixed, validator, prompt, flush=False
                        )
                        texts, first_line = [], n_train + 1
            if buf:
                train_f.write(b"".join(buf))
            if vbuf and val_f is not None:
                val_f.write(b"".join(vbuf))
            if counter is not None:
                self._count(counter, texts, first_line, fixed, validator, prompt, flush=True)
        finally:
            if counter is not None:
                counter.close()
        return n_train, n_val

    def _count(
        self,
        counter: BatchCounter,
        texts: list[str],
        first_line: int,
        fixed: int,
        validator: Validator | None,
        prompt: str | None,
        *,
        flush: bool,
    ) -> None:
        assert validator is not None
        results = list(counter.put(texts, first_line)) if texts else []
        if flush:
            results.extend(counter.drain())
        n_msgs = 3 if prompt else 2
        for meta, counts in results:
            assert isinstance(meta, int)
            questions, answers = counts[0::2], counts[1::2]
            totals = [fixed + q + a for q, a in zip(questions, answers, strict=True)]
            validator.record_batch(meta, n_msgs, totals, answers, has_system=bool(prompt))

    def _plan_split(self, opts: Options, workers: int) -> tuple[int, str | None]:
        """The exact cut of the split: split values below it go to validation; and a note.

        A first pass ranks the kept questions by their seeded hash; the validation side
        gets the ``round(fraction * n)`` lowest (all but one at most for a hold-out, at
        least one for a sample).
        """
        values: array[int] = array("I")
        if workers:
            write_parallel(self, Accounts(), opts, None, None, None, workers, collect=values)
        else:
            values.extend(v for _q, _a, v, _x in self._iter_kept(Accounts(), opts, augment=False))
        n = len(values)
        fraction = self.validation_fraction
        want = math.floor(fraction * n + 0.5)
        want = min(max(want, 1), n) if self.validation_mode == "sample" else min(want, n - 1)
        if want <= 0:
            if n == 0:
                return 0, None
            return 0, (
                f"no validation file was written: {fraction:.0%} of {n:,} question"
                f"{'s' if n != 1 else ''} is less than one example; every pair is trained on"
            )
        if want >= n:
            return 1 << 32, None
        # the (want+1)-th smallest value: the want smallest fall below it (memory ~ want)
        return heapq.nsmallest(want + 1, values)[want], None

    def _auto_processes(self, processes: int | None) -> int:
        paths = [s.source.path for s in self._sources if s.source is not None]
        return auto_workers(paths, processes, _PROCESS_THRESHOLD_BYTES)


def _check_stop(marker: str | None) -> str | None:
    """A stop marker, or None; a blank one (a space, a line break) would cut every answer."""
    if marker and not marker.strip():
        raise UsageError(
            f"the stop marker {marker!r} is blank: every answer would be cut at its first "
            "space or line break; pass a visible marker such as '**STOP**', or '' for none"
        )
    return marker or None


def _refuse_overwriting_input(source: Path, target: Path) -> None:
    """Raise when ``target`` is ``source`` (same path, symlink or hard link)."""
    if same_file(source, target):
        raise UsageError(
            f"{target} is also an input of this build; writing the output there would "
            "destroy the input: choose another output path"
        )
