"""DatasetBuilder: QA sources in, chat fine-tuning JSONL out, with every drop accounted for.

The builder streams: sources -> normalize -> filters -> dedupe -> split -> write. Memory
does not grow with the number of pairs beyond about 16 bytes a distinct question (dedupe)
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

from finetune_qa.dataset._builder import DatasetBuilder, Filter
from finetune_qa.dataset._report import (
    CHANGES,
    REASONS,
    AugmentReport,
    BuildReport,
    ReasonCount,
    ReasonExample,
)

__all__ = [
    "CHANGES",
    "REASONS",
    "AugmentReport",
    "BuildReport",
    "DatasetBuilder",
    "Filter",
    "ReasonCount",
    "ReasonExample",
]
