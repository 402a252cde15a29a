"""The parallel build: workers read byte ranges; this process merges their results in order."""

from __future__ import annotations

import os
from array import array
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING

import orjson

from finetune_qa._fs import AtomicFile, shrunk
from finetune_qa._pipeline import (
    Accounts,
    KeySet,
    Options,
    RangeResult,
    SourceArgs,
    run_range,
    unpack,
    worker_init,
)
from finetune_qa._procs import worker_pool
from finetune_qa.config import (
    EXAMPLES_PER_REASON,
)
from finetune_qa.exceptions import InputError
from finetune_qa.validation import Validator

if TYPE_CHECKING:
    from finetune_qa.dataset._builder import DatasetBuilder

__all__ = ["Merger", "without_suffix", "write_parallel"]

_RANGE_BYTES = 2 * 1024 * 1024  # a worker's share of a file, read at a time


class Merger:
    """Consumes workers' range results in order: dedupe, split, write, record tokens."""

    def __init__(
        self,
        builder: DatasetBuilder,
        acc: Accounts,
        opts: Options,
        train_f: AtomicFile | None,
        val_f: AtomicFile | None,
        validator: Validator | None,
        collect: array[int] | None = None,
    ) -> None:
        self.acc = acc
        self.dedupe = builder.dedupe
        self.threshold = opts.threshold
        self.sample = opts.sample
        self.suffix = opts.suffix
        self.train_f, self.val_f = train_f, val_f
        self.collect = collect
        self.validator = validator
        self.n_msgs = 3 if opts.system_prompt else 2
        self.labels = [s.source.path if s.source is not None else s.label for s in builder._sources]
        self.seen = KeySet()
        self.n_train = self.n_val = 0
        self.source_index = -1
        self.row_offset = 0

    def consume(self, source_index: int, res: RangeResult) -> None:
        if source_index != self.source_index:  # rows restart at 1 in every file
            self.source_index, self.row_offset = source_index, 0
        self.acc.merge(res.acc, self.row_offset)
        keys = unpack("Q", res.keys)
        splits = unpack("I", res.splits)
        ends = unpack("I", res.ends)
        counting = self.validator is not None and bool(res.totals)
        totals = unpack("I", res.totals) if counting else None
        assistant = unpack("I", res.assistant) if counting else None
        blob, dedupe, threshold = res.blob, self.dedupe, self.threshold
        new = self.seen.add
        train: list[bytes] = []
        val: list[bytes] = []
        t_tot: list[int] = []
        t_ast: list[int] = []
        start = 0
        collect, sample = self.collect, self.sample
        for i in range(len(keys)):
            end = ends[i]
            if dedupe and not new(keys[i]):
                if collect is None:
                    self._duplicate(res, i, blob[start:end])
                start = end
                continue
            if collect is not None:
                collect.append(splits[i])
            elif splits[i] < threshold and self.val_f is not None:
                val.append(blob[start:end])
                if sample:
                    train.append(blob[start:end])
                    if totals is not None and assistant is not None:
                        t_tot.append(totals[i])
                        t_ast.append(assistant[i])
            else:
                train.append(blob[start:end])
                if totals is not None and assistant is not None:
                    t_tot.append(totals[i])
                    t_ast.append(assistant[i])
            start = end
        if train and self.train_f is not None:
            self.train_f.write(b"".join(train))
            if self.validator is not None and t_tot:
                self.validator.record_batch(
                    self.n_train + 1, self.n_msgs, t_tot, t_ast, has_system=self.n_msgs == 3
                )
            self.n_train += len(train)
        if val and self.val_f is not None:
            self.val_f.write(b"".join(val))
            self.n_val += len(val)
        self.row_offset += res.rows

    def _duplicate(self, res: RangeResult, i: int, line: bytes) -> None:
        tally = self.acc.drops.get("duplicate_question")
        if tally is not None and len(tally.examples) >= EXAMPLES_PER_REASON:
            tally.count += 1
            return
        prov = unpack("i", res.prov)
        n = len(prov) // 3
        ln, row, item = prov[i], prov[n + i], prov[2 * n + i]
        msgs = orjson.loads(line)["messages"]
        self.acc.drop(
            "duplicate_question",
            1,
            (
                self.labels[self.source_index],
                ln or None,
                row + self.row_offset if row else None,
                None if item < 0 else item,
                msgs[-2]["content"],
                without_suffix(msgs[-1]["content"], self.suffix),
                None,
            ),
        )


def without_suffix(text: str, suffix: str) -> str:
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text


def write_parallel(
    builder: DatasetBuilder,
    acc: Accounts,
    opts: Options,
    train_f: AtomicFile | None,
    val_f: AtomicFile | None,
    validator: Validator | None,
    workers: int,
    collect: array[int] | None = None,
) -> tuple[int, int]:
    """Build with worker processes reading byte ranges of the sources.

    Workers screen, key, serialize and count their ranges; this process dedupes,
    splits and writes, consuming their results in input order. With ``collect``
    nothing is written: the split values of the kept pairs are appended to it.
    """
    pool = worker_pool(workers, initializer=worker_init, initargs=(opts.encoding,))
    pending: deque[tuple[int, Future[RangeResult]]] = deque()
    merge = Merger(builder, acc, opts, train_f, val_f, validator, collect)
    sizes = {s.source.path: _size(s.source.path) for s in builder._sources if s.source}
    try:
        for index, spec in enumerate(builder._sources):
            src = spec.source
            assert src is not None
            args: SourceArgs | None = None
            for rng in src.plan_ranges(_RANGE_BYTES):
                if args is None:  # the header has been read by now
                    args = SourceArgs(
                        src.path,
                        src.format,
                        src.question_column,
                        src.answer_column,
                        src.delimiter,
                        src.strict,
                        src.stop or "",  # as detected here: the workers detect nothing
                        src._columns,
                    )
                pending.append((index, pool.submit(run_range, (args, rng, opts))))
                while len(pending) > 4 * workers + 2:
                    i, fut = pending.popleft()
                    merge.consume(i, fut.result())
        while pending:
            i, fut = pending.popleft()
            merge.consume(i, fut.result())
    except InputError as exc:
        # a range cut short by a truncation reads as broken data: say what happened
        for path, size in sizes.items():
            if _size(path) < size:
                raise shrunk(path) from exc
        raise
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return merge.n_train, merge.n_val


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1
