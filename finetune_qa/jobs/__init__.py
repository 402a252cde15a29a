"""FineTuneJob: upload, create, follow, and resume a fine-tuning job without losing it.

A job is created from a training file (usually the one a ``DatasetBuilder`` wrote):

1. the request is checked before anything is sent (hyperparameter ranges, suffix,
   metadata, the model's end dates, and the file itself with the validator);
2. the file is uploaded once per content: its SHA-256 is in the file name and in a local
   journal, so a retry or a second run reuses the earlier upload;
3. the job is created with an idempotency token in its metadata, written to the
   journal *before* the request: if the connection drops after the provider created
   the job, or the process dies, the next attempt finds the job by its token (on a
   backend without metadata, by its model, files and settings) instead of starting a
   second (billed) one. Creating requests are sent once by the backends (no SDK
   retries); the retries here (the one policy of :mod:`finetune_qa._retry`) look for
   the job first, and when that look-up fails the error is raised rather than risking
   a second job;
4. :meth:`FineTuneJob.wait` / :meth:`FineTuneJob.follow` poll with backoff and deliver
   every event once, in chronological order (the API lists them newest first).

:meth:`FineTuneJob.attach` picks a job up again by id, from any process.

The package's modules are private: ``_journal`` (the journal and the model cards),
``_preflight`` (checks before anything is sent, shared with ``migrate``), ``_runner``
(idempotent uploads and creation) and ``_job`` (:class:`FineTuneJob`).

Example:
    >>> import tempfile, pathlib
    >>> from finetune_qa import DatasetBuilder, FineTuneJob, sample_csv
    >>> from finetune_qa.backends import OfflineBackend
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = DatasetBuilder().add_source(sample_csv()).build(out / "train.jsonl")
    >>> job = FineTuneJob.create(out / "train.jsonl", model="gpt-4o-mini",
    ...     backend=OfflineBackend(), journal=out / "journal.jsonl", suffix="lumen")
    >>> job.wait().status
    'succeeded'
    >>> job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:")
    True
"""

from __future__ import annotations

# the constants of the former jobs.py stay importable from here (``X as X``: re-exported)
from finetune_qa._limits import FILES_API_LIMIT as FILES_API_LIMIT
from finetune_qa.jobs._job import FineTuneJob, MetricPoint
from finetune_qa.jobs._journal import CARD_KEYS as CARD_KEYS
from finetune_qa.jobs._journal import DataFile, Journal, ModelCard, model_card
from finetune_qa.jobs._preflight import TOKEN_KEY as TOKEN_KEY
from finetune_qa.jobs._runner import CLOCK_SKEW as CLOCK_SKEW

__all__ = ["DataFile", "FineTuneJob", "Journal", "MetricPoint", "ModelCard", "model_card"]
