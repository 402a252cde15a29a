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
   retries); the retries here look for the job first, and when that look-up fails the
   error is raised rather than risking a second job;
4. :meth:`FineTuneJob.wait` / :meth:`FineTuneJob.follow` poll with backoff and deliver
   every event once, in chronological order (the API lists them newest first).

:meth:`FineTuneJob.attach` picks a job up again by id, from any process.

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

import base64
import binascii
import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import file_lock
from finetune_qa._text import scrub_url
from finetune_qa.backends import (
    Backend,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    get_backend,
)
from finetune_qa.catalog import ModelCatalog, default_catalog
from finetune_qa.config import DEFAULT_MODEL, cache_dir
from finetune_qa.config import today as config_today
from finetune_qa.exceptions import (
    APIConnectionError,
    BackendError,
    InputFileError,
    InternalServerError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    RateLimitError,
    UnknownModelError,
    UsageError,
    ValidationFailed,
)
from finetune_qa.validation import validate_file

if TYPE_CHECKING:
    from finetune_qa.chat import ChatModel

__all__ = ["DataFile", "FineTuneJob", "Journal", "MetricPoint", "ModelCard", "model_card"]

logger = logging.getLogger(__name__)

TOKEN_KEY = "finetune_qa_token"
"""Metadata key that carries a job's idempotency token."""

CARD_KEYS = ("finetune_qa_system_prompt", "finetune_qa_stop")
"""Metadata keys that carry the training system prompt and stop marker, where there is room.

A system prompt longer than a metadata value (512 characters) is carried as
``sha256:<hex>`` instead, so a card read from the provider can still be checked."""

_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RETRYABLE = (APIConnectionError, RateLimitError, InternalServerError)
CLOCK_SKEW = 60
"""Seconds a provider's clock may lag ours when a job is matched by its creation time."""
FILES_API_LIMIT = 512 * 1024 * 1024
"""Largest file the Files API takes; bigger ones need the Uploads API."""
T = TypeVar("T")


class MetricPoint(BaseModel):
    """Training metrics at one step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(description="Training step.")
    train_loss: float | None = Field(default=None, description="Training loss.")
    train_accuracy: float | None = Field(default=None, description="Training token accuracy.")
    valid_loss: float | None = Field(default=None, description="Validation loss.")
    valid_mean_token_accuracy: float | None = Field(
        default=None, description="Validation token accuracy."
    )


_METRIC_FIELDS = frozenset(MetricPoint.model_fields) - {"step"}


class DataFile(BaseModel):
    """A data file a model was trained (or validated) on, by content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The path given when the job was created.")
    sha256: str = Field(description="SHA-256 of the file's bytes.")
    bytes: int = Field(description="Size in bytes.")
    file_id: str | None = Field(default=None, description="The provider's file id.")


class ModelCard(BaseModel):
    """How a fine-tuned model was trained: what to query it with, and what it learnt from.

    Recorded when its job succeeds, in the job's journal and in the machine's index of
    models (``<cache dir>/models.jsonl``), for every backend; found again by model name
    with :func:`model_card` or :meth:`FineTuneJob.card`. :class:`~finetune_qa.chat.ChatModel`,
    ``ask``, ``eval`` and ``guard`` query a model with its card's system prompt and stop
    marker unless told otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The fine-tuned model's name.")
    job_id: str = Field(description="The job that trained it.")
    base_model: str = Field(description="The model it was fine-tuned from.")
    backend: str = Field(description="Backend name: openai, offline, together, local, ...")
    endpoint: str = Field(
        description="Which provider account or server (the journal's backend label; no key)."
    )
    system_prompt: str | None = Field(description="System message of the training examples.")
    stop: str | None = Field(description="Stop marker the training answers end with.")
    training_file: DataFile | None = Field(description="The training data.")
    validation_file: DataFile | None = Field(default=None, description="The validation data.")
    split: str | None = Field(
        default=None, description="How training and validation data were split, in words."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Method and hyperparameters as requested (epochs, batch size, ...).",
    )
    trained_at: str | None = Field(default=None, description="When the success was recorded.")

    def describe(self) -> str:
        """One line: the model, its base, and the prompt and marker to query it with."""
        return (
            f"{self.model}: fine-tuned from {self.base_model} on {self.backend} (job "
            f"{self.job_id}); system prompt {self.system_prompt!r}, stop marker {self.stop!r}"
        )


def _models_index() -> Journal:
    """This machine's index of model cards, beside the default journal."""
    return Journal(cache_dir() / "models.jsonl")


def model_card(
    model: str,
    *,
    journal: Journal | str | os.PathLike[str] | None = None,
    backend: Backend | None = None,
    ask_provider: bool = False,
) -> ModelCard | None:
    """The card of a fine-tuned model, or None when no record of its training is found.

    Looks in ``journal`` (when given) and in this machine's index of models; with
    ``backend``, only at models trained through the same provider account or server
    (the same name elsewhere is another model). The latest record wins. With
    ``ask_provider`` (and ``backend``), a model with no local record is looked up among
    the provider's latest 100 jobs: a job created by ``FineTuneJob`` carries its system
    prompt and stop marker in its metadata where the provider keeps metadata (OpenAI and
    the offline backend do; the card then has no file hashes or settings).

    Example:
        ```python
        card = model_card("ft:gpt-4o-mini-2024-07-18:acme::abc123")
        if card is not None:
            print(card.system_prompt, card.stop)
        ```
    """
    label = _backend_label(backend) if backend is not None else None
    sources = [_models_index()]
    if journal is not None:
        sources.insert(0, journal if isinstance(journal, Journal) else Journal(journal))
    found: ModelCard | None = None
    for jr in sources:
        for rec in jr.find(op="model", state="card", model=model):
            if label is not None and rec.get("endpoint") != label:
                continue
            data = {k: v for k, v in rec.items() if k in ModelCard.model_fields}
            try:
                found = ModelCard.model_validate(data)
            except ValueError:
                continue  # a record from another version: skip it rather than fail a query
        if found is not None:
            return found
    if ask_provider and backend is not None:
        return _card_from_provider(model, backend)
    return None


def _card_metadata(
    backend: Backend, user_meta: Mapping[str, str], system_prompt: str | None, stop: str | None
) -> dict[str, str]:
    """The card's prompt and marker as job metadata, where the provider keeps metadata.

    Only when the user's pairs leave room: 16 at most, one of them the token.
    """
    if not getattr(backend, "supports_metadata", True) or len(user_meta) + 1 + 2 > 16:
        return {}
    out: dict[str, str] = {}
    if system_prompt is not None:
        out[CARD_KEYS[0]] = (
            system_prompt
            if len(system_prompt) <= 512
            else "sha256:" + hashlib.sha256(system_prompt.encode("utf-8")).hexdigest()
        )
    if stop is not None and len(stop) <= 512:
        out[CARD_KEYS[1]] = stop
    return out


def _card_from_provider(model: str, backend: Backend) -> ModelCard | None:
    """A card from the provider's record of the job that made ``model`` (its metadata)."""
    try:
        jobs = backend.list_jobs(limit=100)
    except BackendError:
        return None
    job = next((j for j in jobs if j.fine_tuned_model == model and j.status == "succeeded"), None)
    if job is None or not any(k in job.metadata for k in CARD_KEYS):
        return None
    prompt = job.metadata.get(CARD_KEYS[0])
    if prompt is not None and prompt.startswith("sha256:"):
        return None  # too long to carry: the prompt itself is not known here
    return ModelCard(
        model=model,
        job_id=job.id,
        base_model=job.model,
        backend=backend.name,
        endpoint=_backend_label(backend),
        system_prompt=prompt,
        stop=job.metadata.get(CARD_KEYS[1]),
        training_file=None,
        validation_file=None,
        settings={},
    )


def _file_record(path: Path, file_id: str | None) -> dict[str, Any]:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return {
        "path": str(path),
        "sha256": sha.hexdigest(),
        "bytes": path.stat().st_size,
        "file_id": file_id,
    }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Journal:
    """An append-only record of uploads and jobs, written before each call returns.

    Each line is one JSON object; the file is created owner-only (0600) and every
    record is flushed and fsync'ed. It holds ids, hashes, model names and a backend
    label — never an API key.

    Args:
        path: the journal file (default ``<cache dir>/journal.jsonl``).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "journal.jsonl"
        self._lock = threading.Lock()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on this journal file (``flock``), across processes.

        Held around a read-decide-write sequence (find a job, else create and record it)
        so that two processes sharing the journal never both decide to create. The file
        is only ever appended to, never replaced, so the lock is on the file itself (it
        is created, owner-only, when missing).
        """
        return file_lock(self.path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record durably."""
        line = orjson.dumps({"at": _now(), **record}) + b"\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise InputFileError(
                    f"cannot open the journal ({exc.strerror})",
                    path=self.path,
                    hint="pass a writable file path as journal=, or remove what is in the way",
                ) from exc
            try:
                size = os.fstat(fd).st_size
                # a torn last line (a killed process) must not swallow this record
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (a torn last line from a crash is skipped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InputFileError(
                f"cannot read the journal ({exc.strerror})",
                path=self.path,
                hint="pass a readable journal file, or remove what is in the way",
            ) from exc
        out = []
        for n, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                logger.warning(
                    "%s:%d: skipped a damaged journal line (a process killed mid-write)",
                    self.path,
                    n,
                )
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal ``match``, oldest first."""
        return [r for r in self.records() if all(r.get(k) == v for k, v in match.items())]


def _backend_label(backend: Backend) -> str:
    """Which provider (and account endpoint) a record belongs to; never a key."""
    fake = getattr(backend, "fake", None)
    if fake is not None:
        return f"offline:{getattr(fake, 'instance_id', f'{id(fake):x}')}"
    client = getattr(backend, "client", None)
    base = getattr(client, "base_url", None)
    return f"{backend.name}:{scrub_url(str(base))}" if base is not None else backend.name


def _check_request(
    req: JobRequest, catalog: ModelCatalog, today: dt.date, *, max_epochs: int = 50
) -> None:
    def bad(message: str) -> UsageError:
        return UsageError(message)

    if req.n_epochs != "auto" and not 1 <= req.n_epochs <= max_epochs:
        raise bad(f"n_epochs must be 'auto' or 1-{max_epochs}, got {req.n_epochs}")
    if req.batch_size != "auto" and not 1 <= req.batch_size <= 256:
        raise bad(f"batch_size must be 'auto' or 1-256, got {req.batch_size}")
    if req.learning_rate_multiplier != "auto" and not req.learning_rate_multiplier > 0:
        raise bad(
            f"learning_rate_multiplier must be 'auto' or > 0, got {req.learning_rate_multiplier}"
        )
    if req.beta is not None:
        if req.method != "dpo":
            raise bad("beta is a DPO hyperparameter; pass method='dpo' or drop beta")
        if req.beta != "auto" and not 0 < req.beta <= 2:
            raise bad(f"beta must be 'auto' or in (0, 2], got {req.beta}")
    if req.suffix is not None and not _SUFFIX.match(req.suffix):
        raise bad(
            f"suffix {req.suffix!r} must be 1-64 letters, digits, '-' or '_' "
            "(it becomes part of the model name)"
        )
    if req.seed is not None and not 0 <= req.seed <= 2_147_483_647:
        raise bad(f"seed must be 0-2147483647, got {req.seed}")
    if len(req.metadata) > 16:
        raise bad(f"metadata holds at most 16 pairs (finetune_qa uses 1), got {len(req.metadata)}")
    for k, v in req.metadata.items():
        if len(k) > 64 or len(v) > 512:
            raise bad(f"metadata key {k[:20]!r}...: keys are at most 64 and values 512 characters")
    for integ in req.integrations:
        if (
            integ.get("type") != "wandb"
            or not isinstance(integ.get("wandb"), dict)
            or not integ["wandb"].get("project")
        ):
            raise bad("integrations take [{'type': 'wandb', 'wandb': {'project': '...'}}]")
    try:
        info = catalog.get(req.model)
    except UnknownModelError:
        return  # a model the catalogue does not know: the provider will judge
    if req.method not in info.methods:
        raise bad(
            f"{info.name} does not offer method {req.method!r}; it offers {', '.join(info.methods)}"
        )
    if info.fine_tuning_ends is not None and info.fine_tuning_ends < today:
        raise bad(
            f"new fine-tuning jobs on {info.name} ended on {info.fine_tuning_ends.isoformat()}; "
            "choose another base model or provider (see `finetune-qa models`)"
        )


def _parse_results(data: bytes) -> list[MetricPoint]:
    text = data
    if not data.lstrip().startswith(b"step"):
        try:
            text = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return []
    rows = csv.DictReader(io.StringIO(text.decode("utf-8", "replace")))

    def num(v: str | None) -> float | None:
        if v is None or not v.strip():
            return None
        try:
            return float(v)
        except ValueError:
            return None

    out = []
    for row in rows:
        step = num(row.get("step"))
        if step is None:
            continue
        out.append(
            MetricPoint(
                step=int(step),
                train_loss=num(row.get("train_loss")),
                train_accuracy=num(row.get("train_accuracy")),
                valid_loss=num(row.get("valid_loss")),
                valid_mean_token_accuracy=num(row.get("valid_mean_token_accuracy")),
            )
        )
    return out


class FineTuneJob:
    """A fine-tuning job: create it (idempotently), follow it, and hand over the model.

    Build one with :meth:`create` or :meth:`attach`, not the constructor.

    Attributes:
        id: the provider's job id.
        backend: the backend it runs on.
        info: the job as last retrieved.
        system_prompt: the system prompt the training data used (for :meth:`chat_model`).
        stop: the stop marker the training answers end with.
    """

    def __init__(
        self,
        info: JobInfo,
        *,
        backend: Backend,
        journal: Journal | None = None,
        system_prompt: str | None = None,
        stop: str | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.id = info.id
        self.info = info
        self.backend = backend
        self.journal = journal
        self.system_prompt = system_prompt
        self.stop = stop
        self._sleep = sleep or getattr(backend, "sleep", None) or time.sleep
        self._clock = clock or getattr(backend, "monotonic", None) or time.monotonic
        self._seen: set[str] = set()
        self._delivered: list[JobEvent] = []

    def __repr__(self) -> str:
        return (
            f"FineTuneJob(id={self.id!r}, status={self.info.status!r}, model={self.info.model!r})"
        )

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        training_file: str | os.PathLike[str],
        *,
        model: str,
        backend: str | Backend = "openai",
        validation_file: str | os.PathLike[str] | None = None,
        method: Literal["supervised", "dpo"] = "supervised",
        n_epochs: int | Literal["auto"] = "auto",
        batch_size: int | Literal["auto"] = "auto",
        learning_rate_multiplier: float | Literal["auto"] = "auto",
        beta: float | Literal["auto"] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: Mapping[str, str] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        provider_options: Mapping[str, Any] | None = None,
        system_prompt: str | None = None,
        stop: str | None = None,
        split: str | None = None,
        validate: bool = True,
        journal: Journal | str | os.PathLike[str] | None = None,
        retries: int = 4,
        force_new: bool = False,
        upload_threshold: int = 100 * 1024 * 1024,
        upload_parallel: int = 4,
        catalog: ModelCatalog | None = None,
        today: dt.date | None = None,
    ) -> FineTuneJob:
        """Check, upload and start a job; safe to call again after any failure.

        Args:
            training_file: the training JSONL.
            model: base model (or a fine-tune to continue from).
            backend: backend name or instance ("openai", "offline", ...).
            validation_file: a validation JSONL.
            method: "supervised" or "dpo".
            n_epochs: 1-50 or "auto" (a backend may allow more: the local one takes up to
                1000).
            batch_size: 1-256 or "auto".
            learning_rate_multiplier: > 0 or "auto".
            beta: DPO only, (0, 2] or "auto".
            suffix: up to 64 of ``[A-Za-z0-9_-]``, shown in the model name.
            seed: 0-2147483647.
            metadata: up to 15 pairs (one is used for the idempotency token).
            integrations: e.g. ``[{"type": "wandb", "wandb": {"project": "qa"}}]``.
            provider_options: provider-specific options, e.g. Together's
                ``{"lora": True, "learning_rate": 2e-5}``; the backend's
                ``provider_option_names`` says which keys it takes.
            system_prompt: the system prompt of the data; detected from the file if None.
            stop: the stop marker of the answers; detected by the validator if None.
            split: how the training and validation data were split, in words, for the
                model's card (``finetune-qa train`` fills it in).
            validate: validate the file(s) first and refuse to upload on errors.
            journal: journal file or instance (default: the cache directory's).
            retries: attempts for rate limits, 5xx and dropped connections.
            force_new: start a new job even if the journal shows the same request (same
                files, model and settings) already made one; by default that job is
                returned instead, so re-running a script never pays twice.
            upload_threshold: files larger than this go through the Uploads API in parts
                (OpenAI's Files API takes up to 512 MB and is unreliable well before).
            upload_parallel: parts sent at once.
            catalog: catalogue for model checks.
            today: date for the model's end-date check.

        Raises:
            UsageError: a hyperparameter or option is out of range (nothing was sent).
            ValidationFailed: the file has format errors (nothing was sent).
            BackendError: the provider refused, or kept failing after ``retries``; or, after
                a request that got no answer, the look-up for what it made failed (re-run
                with the same journal) or found two candidate jobs (code ``ambiguous_job``:
                pick yours up with :meth:`attach`). Nothing is sent twice on a guess.
        """
        be = get_backend(backend)
        jr = journal if isinstance(journal, Journal) else Journal(journal)
        cat = catalog or default_catalog()
        path = Path(training_file)
        vpath = Path(validation_file) if validation_file is not None else None
        for p in [path] + ([vpath] if vpath else []):
            if not p.is_file():
                raise InputFileError(
                    "no such file" if not p.exists() else "is not a file",
                    path=p,
                    hint="pass the training JSONL that `finetune-qa build` wrote",
                )
        user_meta = dict(metadata or {})
        if TOKEN_KEY in user_meta:
            raise UsageError(f"metadata key {TOKEN_KEY!r} is reserved for finetune_qa")
        if user_meta and not getattr(be, "supports_metadata", True):
            raise UsageError(
                f"the {be.name} backend's jobs carry no metadata; drop metadata= "
                "(the journal keeps finetune_qa's own records)"
            )
        options = dict(provider_options or {})
        allowed: frozenset[str] = frozenset(getattr(be, "provider_option_names", frozenset()))
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise UsageError(
                f"provider_options {unknown} are not options of the {be.name} backend; "
                + (
                    f"it takes: {', '.join(sorted(allowed))}"
                    if allowed
                    else "it takes none (every setting has its own argument)"
                )
            )
        probe = JobRequest(
            model=model,
            training_file="file-pending",
            validation_file="file-pending" if vpath else None,
            method=method,
            n_epochs=n_epochs,
            batch_size=batch_size,
            learning_rate_multiplier=learning_rate_multiplier,
            beta=beta,
            suffix=suffix,
            seed=seed,
            metadata={**user_meta, TOKEN_KEY: "x" * 32},
            integrations=[dict(i) for i in integrations or []],
            provider_options=options,
        )
        if today is None:
            # a backend with its own clock (the offline one) judges dates by that clock
            clock = getattr(be, "monotonic", None)
            today = (
                dt.datetime.fromtimestamp(clock(), tz=dt.timezone.utc).date()
                if callable(clock)
                else config_today()
            )
        # hosted trainers stop at 50 epochs; a backend may allow more (the local one does)
        _check_request(probe, cat, today, max_epochs=int(getattr(be, "max_epochs", 50)))
        detected_stop = stop
        if validate:
            # a model the catalogue does not know is checked against the default's limits,
            # with the format rules of the provider the backend talks to
            report = validate_file(
                path,
                model=model if model in cat else DEFAULT_MODEL,
                validation_path=vpath,
                stop=stop,
                today=today,
                provider=getattr(be, "validation_provider", None),
            )
            if not report.ok:
                raise ValidationFailed(report)
            detected_stop = stop or report.stop_marker
        provider_check = getattr(be, "check_request", None)
        if callable(provider_check):
            # the provider's own limits (hyperparameters, example length), before any upload
            provider_check(probe, training_path=path, validation_path=vpath)
        sys_prompt = system_prompt if system_prompt is not None else _first_system_prompt(path)

        runner = _Runner(
            be,
            jr,
            retries,
            force_new=force_new,
            part_threshold=upload_threshold,
            parallel=upload_parallel,
        )
        # one process at a time reads the journal, uploads, creates and records: two runs
        # of the same request at once would each find nothing and each upload and create
        with jr.lock():
            train_id = runner.upload(path)
            val_id = runner.upload(vpath) if vpath else None
            request = probe.model_copy(
                update={
                    "training_file": train_id,
                    "validation_file": val_id,
                    "metadata": {
                        **user_meta,
                        **_card_metadata(be, user_meta, sys_prompt, detected_stop),
                    },
                }
            )
            info = runner.create(request)
            jr.append(
                {
                    "op": "job",
                    "state": "settings",
                    "backend": runner.label,
                    "job_id": info.id,
                    "system_prompt": sys_prompt,
                    "stop": detected_stop,
                    # what the model card needs once the job succeeds
                    "backend_name": be.name,
                    "base_model": model,
                    "training_file": _file_record(path, train_id),
                    "validation_file": _file_record(vpath, val_id) if vpath else None,
                    "split": split,
                    "hyperparameters": {
                        k: v
                        for k, v in request.model_dump(mode="json").items()
                        if k
                        in (
                            "method",
                            "n_epochs",
                            "batch_size",
                            "learning_rate_multiplier",
                            "beta",
                            "suffix",
                            "seed",
                            "provider_options",
                        )
                        and v not in (None, {}, [])
                    },
                }
            )
        job = cls(info, backend=be, journal=jr, system_prompt=sys_prompt, stop=detected_stop)
        job._record_card()  # a job found already done (a re-run) has its card too
        return job

    @classmethod
    def attach(
        cls,
        job_id: str,
        *,
        backend: str | Backend = "openai",
        journal: Journal | str | os.PathLike[str] | None = None,
    ) -> FineTuneJob:
        """Pick up an existing job by id (after a crash, from another process, from the CLI).

        The system prompt and stop marker recorded at creation come back from the journal.
        """
        be = get_backend(backend)
        jr = journal if isinstance(journal, Journal) else Journal(journal)
        info = _retry(lambda: be.retrieve_job(job_id), 4, getattr(be, "sleep", None) or time.sleep)
        settings = jr.find(op="job", state="settings", job_id=job_id)
        last = settings[-1] if settings else {}
        job = cls(
            info,
            backend=be,
            journal=jr,
            system_prompt=last.get("system_prompt"),
            stop=last.get("stop"),
        )
        job._record_card()
        return job

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        """The status as last retrieved."""
        return self.info.status

    @property
    def fine_tuned_model(self) -> str | None:
        """The model name once the job succeeded, else None."""
        return self.info.fine_tuned_model

    def refresh(self) -> JobInfo:
        """Retrieve the job again."""
        self.info = self.backend.retrieve_job(self.id)
        return self.info

    def cancel(self) -> JobInfo:
        """Cancel the job."""
        self.info = self.backend.cancel_job(self.id)
        self._note_status()
        return self.info

    def pause(self) -> JobInfo:
        """Pause the job."""
        self.info = self.backend.pause_job(self.id)
        self._note_status()
        return self.info

    def resume(self) -> JobInfo:
        """Resume a paused job."""
        self.info = self.backend.resume_job(self.id)
        self._note_status()
        return self.info

    def _note_status(self) -> None:
        if self.journal is not None:
            self.journal.append(
                {
                    "op": "job",
                    "state": "status",
                    "job_id": self.id,
                    "status": self.info.status,
                    "fine_tuned_model": self.info.fine_tuned_model,
                }
            )
            self._record_card()

    def _record_card(self) -> None:
        """Once the job has succeeded: its model's card, in the journal and the index."""
        name = self.info.fine_tuned_model
        if self.journal is None or self.info.status != "succeeded" or not name:
            return
        if self.journal.find(op="model", state="card", job_id=self.id, model=name):
            return
        if not self.journal.find(op="job", state="settings", job_id=self.id):
            return  # not created through this journal: what it was trained with is unknown
        card = self._build_card(name)
        record = {"op": "model", "state": "card", **card.model_dump(mode="json")}
        self.journal.append(record)
        index = _models_index()
        if index.path.resolve() != self.journal.path.resolve():
            index.append(record)

    def _build_card(self, name: str) -> ModelCard:
        settings = (
            self.journal.find(op="job", state="settings", job_id=self.id) if self.journal else []
        )
        last = settings[-1] if settings else {}
        files = {
            key: DataFile.model_validate(last[key]) if isinstance(last.get(key), dict) else None
            for key in ("training_file", "validation_file")
        }
        return ModelCard(
            model=name,
            job_id=self.id,
            base_model=str(last.get("base_model") or self.info.model),
            backend=str(last.get("backend_name") or self.backend.name),
            endpoint=str(last.get("backend") or _backend_label(self.backend)),
            system_prompt=self.system_prompt,
            stop=self.stop,
            training_file=files["training_file"],
            validation_file=files["validation_file"],
            split=last.get("split"),
            settings=dict(last.get("hyperparameters") or {}),
            trained_at=_now(),
        )

    def card(self) -> ModelCard | None:
        """The card of the model this job made (None until it has succeeded)."""
        name = self.info.fine_tuned_model
        if self.info.status != "succeeded" or not name:
            return None
        if self.journal is not None:
            found = model_card(name, journal=self.journal)
            if found is not None and found.job_id == self.id:
                return found
        return self._build_card(name)

    # ------------------------------------------------------------------ events
    def new_events(self) -> list[JobEvent]:
        """Events not delivered yet by this object, oldest first."""
        fresh: list[JobEvent] = []
        after: str | None = None
        while True:
            page = list(self.backend.list_events(self.id, after=after, limit=100))
            stop = False
            for e in page:  # newest first
                if e.id in self._seen:
                    stop = True
                    break
                fresh.append(e)
            if stop or len(page) < 100:
                break
            after = page[-1].id
        fresh.reverse()
        for e in fresh:
            self._seen.add(e.id)
        self._delivered.extend(fresh)
        return fresh

    def events(self) -> list[JobEvent]:
        """Every event of the job so far, oldest first."""
        self.new_events()
        return list(self._delivered)

    def follow(
        self,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float = 60.0,
        timeout: float | None = None,
        on_status: Callable[[JobInfo], None] | None = None,
    ) -> Iterator[JobEvent]:
        """Yield each event once, oldest first, until the job ends.

        Polls with backoff: ``poll_interval`` (default: the backend's ``poll_interval``,
        else 5 s; 1 s for local jobs) grows by half after every quiet poll, up to
        ``max_poll_interval``, and drops back when something happens. Transient errors
        (rate limits, 5xx, dropped connections) are retried; the job id is never lost.

        Raises:
            JobTimeout: ``timeout`` seconds passed first (the job itself goes on).
            UsageError: a NaN or infinite interval or timeout (a NaN timeout never passes).
        """
        for name, value in (
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
            ("timeout", timeout),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{name} must be a finite number of seconds >= 0, got {value}")
        start = self._clock()
        if poll_interval is None:
            poll_interval = float(getattr(self.backend, "poll_interval", 5.0))
            max_poll_interval = min(max_poll_interval, poll_interval * 12)
        interval = poll_interval
        last_status: str | None = None
        while True:
            _retry(self.refresh, 6, self._sleep)
            fresh: list[JobEvent] = _retry(self.new_events, 6, self._sleep)
            if self.info.status != last_status:  # a new status is reported before its events
                last_status = self.info.status
                self._note_status()
                if on_status is not None:
                    on_status(self.info)
            yield from fresh
            if self.info.done:
                return
            waited = self._clock() - start
            if timeout is not None and waited >= timeout:
                raise JobTimeout(
                    f"job {self.id} is still {self.info.status} after {waited:.0f} s; it goes "
                    f"on: resume with FineTuneJob.attach({self.id!r}) "
                    f"or `finetune-qa status {self.id}`",
                    job_id=self.id,
                    waited=waited,
                    status=self.info.status,
                )
            interval = poll_interval if fresh else min(max_poll_interval, interval * 1.5)
            if timeout is not None:
                interval = min(interval, max(0.0, timeout - waited))
            self._sleep(interval)

    def wait(
        self,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float = 60.0,
        timeout: float | None = None,
        on_event: Callable[[JobEvent], None] | None = None,
        on_status: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Follow the job to its end; return it when it succeeded.

        Raises:
            JobFailed: the provider failed the job (its code, message and param are kept).
            JobCancelled: the job was cancelled.
            JobTimeout: ``timeout`` passed first.
        """
        for event in self.follow(
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            timeout=timeout,
            on_status=on_status,
        ):
            if on_event is not None:
                on_event(event)
        info = self.info
        if info.status == "failed":
            raise JobFailed(
                f"job {self.id} failed: {info.error_message or 'no reason given'}"
                + (
                    f" (code {info.error_code}, param {info.error_param})"
                    if info.error_code
                    else ""
                ),
                job_id=self.id,
                code=info.error_code,
                param=info.error_param,
            )
        if info.status == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled", job_id=self.id)
        return info

    # ------------------------------------------------------------------ results
    def metrics(self) -> list[MetricPoint]:
        """Per-step metrics: from the results file once the job is done, else from events.

        A backend with a metrics endpoint (``training_metrics(job_id)``, e.g. Together's)
        is asked first.
        """
        fetch = getattr(self.backend, "training_metrics", None)
        if callable(fetch):
            rows: list[dict[str, Any]] = _retry(lambda: fetch(self.id), 4, self._sleep)
            by_step: dict[int, dict[str, Any]] = {}
            for row in rows:
                merged = by_step.setdefault(int(row["step"]), {})
                merged.update(
                    {k: v for k, v in row.items() if v is not None and k in _METRIC_FIELDS}
                )
            if by_step:
                return [MetricPoint(step=step, **vals) for step, vals in sorted(by_step.items())]
        for fid in self.info.result_files:
            content = _retry(functools.partial(self.backend.file_content, fid), 4, self._sleep)
            parsed = _parse_results(content)
            if parsed:
                return parsed
        points: list[MetricPoint] = []
        for e in self.events():
            if e.type == "metrics" and e.data and "step" in e.data:
                d = e.data
                points.append(
                    MetricPoint(
                        step=int(d["step"]),
                        train_loss=d.get("train_loss"),
                        train_accuracy=d.get("train_mean_token_accuracy"),
                        valid_loss=d.get("valid_loss"),
                        valid_mean_token_accuracy=d.get("valid_mean_token_accuracy"),
                    )
                )
        return points

    def checkpoints(self) -> list[Checkpoint]:
        """Saved checkpoints, newest first."""
        result: list[Checkpoint] = _retry(
            lambda: self.backend.list_checkpoints(self.id), 4, self._sleep
        )
        return result

    def chat_model(self, **kwargs: Any) -> ChatModel:
        """A :class:`~finetune_qa.chat.ChatModel` for the fine-tuned model.

        It gets the training system prompt and stop marker, from the model's card (override
        any with ``kwargs``; a prompt or marker other than the card's is warned about).

        Raises:
            UsageError: the job has not succeeded (no model yet).
        """
        from finetune_qa.chat import ChatModel

        if not self.fine_tuned_model:
            raise UsageError(
                f"job {self.id} has no fine-tuned model yet (status {self.status}); "
                "call wait() first"
            )
        card = self.card()
        options: dict[str, Any] = (
            {"card": card}
            if card is not None
            else {"system_prompt": self.system_prompt, "stop": self.stop}
        )
        options.update(kwargs)
        return ChatModel(self.fine_tuned_model, backend=self.backend, **options)


def _first_system_prompt(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            first = f.readline()
        msgs = orjson.loads(first).get("messages") or []
        for m in msgs:
            if m.get("role") == "system" and isinstance(m.get("content"), str):
                return str(m["content"])
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None
    return None


def _same_suffix(job: JobInfo, suffix: str | None) -> bool:
    recorded = job.raw.get("suffix")
    if recorded is None and suffix:
        # a record without the field: the suffix is part of the output model's name
        return suffix in str(job.raw.get("model_output_name") or "")
    return (recorded or None) == (suffix or None)


def _ambiguous(exc: BaseException) -> bool:
    """Whether a failed request may have been carried out (no answer, or a 5xx)."""
    return isinstance(exc, APIConnectionError | InternalServerError)


def _with_hint(exc: BackendError, hint: str) -> None:
    """Add ``hint`` to the message of ``exc`` (its class and fields stay as they are)."""
    exc.args = (f"{exc} {hint}",)


def _retry(fn: Callable[[], T], attempts: int, sleep: Callable[[float], None]) -> T:
    delay = 1.0
    for attempt in range(attempts):
        try:
            return fn()
        except _RETRYABLE as exc:
            if attempt == attempts - 1:
                raise
            wait = exc.retry_after if isinstance(exc, RateLimitError) and exc.retry_after else delay
            sleep(wait)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


class _Runner:
    """Uploads and job creation with the journal and reconciliation."""

    def __init__(
        self,
        backend: Backend,
        journal: Journal,
        retries: int,
        *,
        force_new: bool = False,
        part_threshold: int = 100 * 1024 * 1024,
        parallel: int = 4,
    ) -> None:
        self.force_new = force_new
        self.part_threshold = part_threshold
        self.parallel = parallel
        self.backend = backend
        self.journal = journal
        self.retries = max(1, retries)
        self.label = _backend_label(backend)
        self.sleep: Callable[[float], None] = getattr(backend, "sleep", None) or time.sleep

    def upload(self, path: Path) -> str:
        sha = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        size = path.stat().st_size
        filename = f"{path.stem}-{digest[:16]}.jsonl"
        done = self.journal.find(op="upload", state="done", backend=self.label, sha256=digest)
        for rec in reversed(done):
            if self._exists(rec["file_id"]):
                return str(rec["file_id"])
        # an intent without its "done": an earlier run may have uploaded it unheard, so a
        # failed look-up must stop us; otherwise a failed look-up only risks a re-upload
        pending = self.journal.find(op="upload", state="intent", backend=self.label, sha256=digest)
        found = self._find_uploaded(filename, size, strict=bool(pending))
        if found is None:
            self.journal.append(
                {
                    "op": "upload",
                    "state": "intent",
                    "backend": self.label,
                    "sha256": digest,
                    "filename": filename,
                    "bytes": size,
                }
            )
            found = self._upload_once(path, size, filename).id
        self.journal.append(
            {
                "op": "upload",
                "state": "done",
                "backend": self.label,
                "sha256": digest,
                "filename": filename,
                "file_id": found,
            }
        )
        return found

    def _upload_once(self, path: Path, size: int, filename: str) -> FileInfo:
        delay = 1.0
        in_parts = getattr(self.backend, "upload_path", None)
        for attempt in range(self.retries):
            try:
                if size > self.part_threshold and callable(in_parts):
                    info: FileInfo = in_parts(path, filename=filename, parallel=self.parallel)
                    return info
                if size > FILES_API_LIMIT:
                    raise UsageError(
                        f"{path} is {size:,} bytes, over the Files API's 512 MB, and the "
                        f"{self.backend.name} backend has no multi-part upload"
                    )
                return self.backend.upload_file(path.read_bytes(), filename=filename)
            except _RETRYABLE as exc:
                # the upload may have landed although we heard nothing: look before retrying
                if _ambiguous(exc):
                    fid = self._find_uploaded(filename, size, strict=True)
                    if fid is not None:
                        return FileInfo(
                            id=fid, filename=filename, bytes=size, purpose="fine-tune", created_at=0
                        )
                if attempt == self.retries - 1:
                    raise
                wait = exc.retry_after if isinstance(exc, RateLimitError) else None
                self.sleep(wait or delay)
                delay = min(2 * delay, 30.0)
        raise AssertionError("unreachable")

    def _find_uploaded(self, filename: str, size: int, *, strict: bool) -> str | None:
        """The id of an uploaded file of this name and size, if any.

        With ``strict`` (an upload may have landed unheard), a failed look-up raises:
        uploading again could leave two copies, and nothing more is sent.
        """
        try:
            files = _retry(
                lambda: self.backend.list_files(purpose="fine-tune"), self.retries, self.sleep
            )
        except BackendError as exc:
            if strict:
                _with_hint(
                    exc,
                    f"Could not check whether {filename} was uploaded; nothing more was sent. "
                    f"Re-run with the same journal ({self.journal.path}) to reconcile.",
                )
                raise
            return None
        for f in files:
            if f.filename == filename and f.bytes == size:
                return f.id
        return None

    def _exists(self, file_id: str) -> bool:
        try:
            files = _retry(
                lambda: self.backend.list_files(purpose="fine-tune"), self.retries, self.sleep
            )
        except BackendError:
            return False
        return any(f.id == file_id for f in files)

    def create(self, request: JobRequest) -> JobInfo:
        key = hashlib.sha256(
            orjson.dumps(request.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        earlier = (
            [] if self.force_new else self.journal.find(op="job", backend=self.label, request=key)
        )
        done = [r for r in earlier if r.get("state") == "created"]
        if done:  # the same request already made a job: attach to it instead
            return _retry(
                lambda: self.backend.retrieve_job(done[-1]["job_id"]), self.retries, self.sleep
            )
        intents = [r for r in earlier if r.get("state") == "intent"]
        # the token follows from the request and the journal's place, so a run whose
        # journal was lost or damaged still finds the job an earlier run created there
        # (another workdir, or force_new: a job of its own)
        where = str(self.journal.path.resolve())
        token = (
            intents[-1]["token"]
            if intents
            else uuid.uuid4().hex
            if self.force_new
            else hashlib.sha256(f"{key}:{where}".encode()).hexdigest()[:32]
        )
        created_after = int(intents[-1].get("created_after") or 0) if intents else int(time.time())
        if not intents:
            self.journal.append(
                {
                    "op": "job",
                    "state": "intent",
                    "backend": self.label,
                    "request": key,
                    "token": token,
                    "model": request.model,
                    "training_file": request.training_file,
                    "created_after": created_after,
                }
            )
        sent = request.model_copy(update={"metadata": {**request.metadata, TOKEN_KEY: token}})

        def find() -> JobInfo | None:
            return self._find_job(token, request=request, created_after=created_after)

        # Look for an earlier job when one may exist: when resuming an intent (an earlier
        # run may have created it unheard), or after an attempt that may have been
        # carried out. On a backend without metadata a look-up for a new intent could
        # adopt another run's job.
        maybe_created = bool(intents)
        if not intents and not self.force_new and getattr(self.backend, "supports_metadata", True):
            # No record of this request, but the journal may have been lost or damaged:
            # the token is the request's own, so a job carrying it was made by an earlier
            # run of the same request. Best effort: a failed look-up does not stop a
            # first attempt (nothing was sent under this journal).
            try:
                adopted = find()
            except BackendError:
                adopted = None
            if adopted is not None:
                self._record(key, token, adopted, request)
                return adopted
        delay = 1.0
        for attempt in range(self.retries):
            if maybe_created:
                existing = find()
                if existing is not None:
                    info = existing
                    break
            try:
                info = self.backend.create_job(sent)
                break
            except _RETRYABLE as exc:
                maybe_created = maybe_created or _ambiguous(exc)
                if attempt == self.retries - 1:
                    if maybe_created:
                        existing = find()
                        if existing is not None:
                            info = existing
                            break
                        _with_hint(
                            exc,
                            "The job may have been created: re-run with the same journal "
                            f"({self.journal.path}) to reconcile before anything new is sent.",
                        )
                    raise
                self.sleep(
                    exc.retry_after
                    if isinstance(exc, RateLimitError) and exc.retry_after
                    else delay
                )
                delay = min(2 * delay, 30.0)
        self._record(key, token, info, request)
        return info

    def _record(self, key: str, token: str, info: JobInfo, request: JobRequest) -> None:
        self.journal.append(
            {
                "op": "job",
                "state": "created",
                "backend": self.label,
                "request": key,
                "token": token,
                "job_id": info.id,
                "model": request.model,
            }
        )

    def _lookup_failed(self, exc: BackendError) -> None:
        _with_hint(
            exc,
            "Could not check whether the job was created; nothing more was sent. Re-run "
            f"with the same journal ({self.journal.path}) to reconcile.",
        )

    def _find_job(self, token: str, *, request: JobRequest, created_after: int) -> JobInfo | None:
        """The job this intent created, if any; a failed look-up raises (nothing is sent)."""
        if not getattr(self.backend, "supports_metadata", True):
            return self._find_job_by_request(request, created_after)
        try:
            jobs = _retry(
                lambda: self.backend.list_jobs(limit=100, metadata={TOKEN_KEY: token}),
                self.retries,
                self.sleep,
            )
        except BackendError as exc:
            self._lookup_failed(exc)
            raise
        for j in jobs:
            if j.metadata.get(TOKEN_KEY) == token:
                return j
        return None

    def _find_job_by_request(self, request: JobRequest, created_after: int) -> JobInfo | None:
        """For backends whose jobs carry no metadata: the job this request made, if any.

        A job matches when its model, training and validation files and suffix are the
        request's, the backend's ``matches_request(job, request)`` (when it has one)
        finds the settings it echoes back equal, it was created no earlier than the
        intent was journalled (less ``CLOCK_SKEW`` seconds for the provider's clock) and
        no other journal record has claimed it.

        Raises:
            BackendError: the look-up failed, or more than one job matches (another
                process, with another journal, sent the same request at the same time).
        """
        try:
            jobs = _retry(lambda: self.backend.list_jobs(limit=100), self.retries, self.sleep)
        except BackendError as exc:
            self._lookup_failed(exc)
            raise
        same_settings = getattr(self.backend, "matches_request", None)
        claimed = {
            r.get("job_id")
            for r in self.journal.find(op="job", backend=self.label)
            if r.get("state") == "created"
        }
        matches = [
            j
            for j in jobs
            if j.model == request.model
            and j.training_file == request.training_file
            and (j.validation_file or None) == (request.validation_file or None)
            and _same_suffix(j, request.suffix)
            and j.created_at >= created_after - CLOCK_SKEW
            and j.id not in claimed
            and (not callable(same_settings) or same_settings(j, request))
        ]
        if len(matches) > 1:
            ids = ", ".join(j.id for j in sorted(matches, key=lambda j: j.created_at))
            raise BackendError(
                f"{len(matches)} {self.backend.name} jobs match this request ({ids}) and the "
                "backend's jobs carry no token to tell which one this run created; nothing "
                "more was sent. Check them (`finetune-qa status <id>`), cancel any you do not "
                "want, and pick yours up with FineTuneJob.attach(job_id, backend=..., "
                f"journal={str(self.journal.path)!r}).",
                code="ambiguous_job",
            )
        return matches[0] if matches else None
