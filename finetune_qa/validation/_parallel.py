"""Validating files: one pass, or byte ranges checked by worker processes and merged in order."""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from finetune_qa._fs import numbered_lines, open_regular, plan_line_ranges, read_range
from finetune_qa._procs import auto_workers, worker_pool
from finetune_qa.catalog import ModelCatalog, ModelInfo
from finetune_qa.config import DEFAULT_MODEL
from finetune_qa.validation._report import ValidationReport
from finetune_qa.validation._validator import Validator

_PROCESS_THRESHOLD_BYTES = 16 * 1024 * 1024
_RANGE_BYTES = 2 * 1024 * 1024


def _line_ranges(path: Path, target: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first_line)`` ranges of about ``target`` bytes ending on line breaks."""
    with open_regular(path) as f:
        yield from plan_line_ranges(f, path, target)


def _validate_range(
    task: tuple[str, int, int, int, str | ModelInfo, str | None, str | None, int, dt.date, str],
) -> dict[str, Any]:
    path, start, end, first_line, model, encoding, stop, max_issues, today, provider = task
    v = Validator(
        model=model,
        encoding=encoding,
        stop=stop,
        path=path,
        max_issues_per_kind=max_issues,
        processes=0,
        today=today,
        provider=provider,
    )
    v._collect = []
    with open_regular(path) as f:
        lines = read_range(f, start, end, path)
        for n, raw in enumerate(lines, first_line):
            v.add_line(raw, n)
    return v._partial()


def _iter_lines(path: Path) -> Iterable[tuple[int, bytes]]:
    return numbered_lines(
        path,
        kind="JSONL file",
        directory_hint="pass the .jsonl file itself",
        pipe_hint="save the JSONL to a file and pass that",
    )


def validate_file(
    path: str | os.PathLike[str],
    *,
    model: str | ModelInfo = DEFAULT_MODEL,
    validation_path: str | os.PathLike[str] | None = None,
    stop: str | None = None,
    n_epochs: int | None = None,
    encoding: str | None = None,
    catalog: ModelCatalog | None = None,
    max_issues_per_kind: int = 20,
    processes: int | None = None,
    today: dt.date | None = None,
    provider: str | None = None,
) -> ValidationReport:
    """Validate a chat fine-tuning JSONL file (and optionally its validation file).

    The file is streamed once; memory does not grow with its length beyond the
    duplicate-detection memo (line numbers of the first 200,000 distinct examples and
    questions; repeats of later ones are not reported) and the kept issues.

    Args:
        path: the training JSONL.
        model: model name (``ft:`` names allowed) or :class:`ModelInfo`.
        validation_path: a validation JSONL to check and compare with the training file.
        stop: stop marker answers should end with (detected when None).
        n_epochs: epochs to price (OpenAI's default heuristic when None).
        encoding: override the model's encoding.
        catalog: catalogue to resolve ``model`` in.
        max_issues_per_kind: issues per kind that keep their line (all are counted).
        processes: worker processes (None: none for files under 16 MiB, one per CPU above).
            A big training file is split into byte ranges that workers check, count and
            tokenize; the report is the same as a single-process run.
        today: date for retirement warnings.
        provider: whose format rules apply: "openai", or "together" for what Together AI
            would reject (role order, weights, its preference format); the model's
            catalogue provider when None.

    Raises:
        InputFileError: the file is missing, a directory or unreadable.
        UnknownModelError: the model is not in the catalogue.
    """
    p = Path(path)
    vp = Path(validation_path) if validation_path is not None else None
    v = Validator(
        model=model,
        encoding=encoding,
        stop=stop,
        n_epochs=n_epochs,
        catalog=catalog,
        path=str(p),
        max_issues_per_kind=max_issues_per_kind,
        processes=auto_workers([p, *([vp] if vp else [])], processes, _PROCESS_THRESHOLD_BYTES),
        today=today,
        provider=provider,
    )
    try:
        workers = v._processes
        if workers and p.is_file() and p.stat().st_size >= _PROCESS_THRESHOLD_BYTES:
            # big file: workers check, count and tokenize byte ranges; this process
            # merges them in file order (duplicates and the stop marker need that order)
            _validate_parallel(v, p, workers)
        else:
            for n, raw in _iter_lines(p):
                v.add_line(raw, n)
        if vp is not None:
            v.start_validation_file(str(vp))
            for n, raw in _iter_lines(vp):
                v.add_line(raw, n)
        return v.finish()
    finally:
        v.close()


def _validate_parallel(v: Validator, path: Path, workers: int) -> None:
    v.close()
    v._processes = 0  # the validation file, if any, is counted here
    pending: deque[Future[dict[str, Any]]] = deque()
    with worker_pool(workers) as pool:
        try:
            for start, end, first_line in _line_ranges(path, _RANGE_BYTES):
                task = (
                    str(path),
                    start,
                    end,
                    first_line,
                    v.info,
                    v.encoding_name,
                    v.stop,
                    v.max_issues,
                    v.today,
                    v.provider,
                )
                pending.append(pool.submit(_validate_range, task))
                while len(pending) > 2 * workers + 1:
                    v._merge(pending.popleft().result())
            while pending:
                v._merge(pending.popleft().result())
        finally:
            for fut in pending:
                fut.cancel()
