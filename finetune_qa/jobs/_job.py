"""FineTuneJob: create a job (checks, uploads, creation), follow it, hand over the model."""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import functools
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._limits import MULTIPART_THRESHOLD
from finetune_qa._retry import ATTEMPTS, RetryPolicy
from finetune_qa.backends import (
    Backend,
    Checkpoint,
    JobEvent,
    JobInfo,
    JobRequest,
    get_backend,
)
from finetune_qa.backends.base import (
    ReportsTrainingMetrics,
    backend_clock,
    backend_sleep,
    endpoint,
    validation_provider,
)
from finetune_qa.backends.base import poll_interval as _poll_interval
from finetune_qa.catalog import ModelCatalog, default_catalog
from finetune_qa.config import DEFAULT_MODEL
from finetune_qa.exceptions import (
    JobCancelled,
    JobFailed,
    JobTimeout,
    UsageError,
    ValidationFailed,
)
from finetune_qa.jobs import _preflight as preflight
from finetune_qa.jobs._journal import (
    DataFile,
    Journal,
    ModelCard,
    card_metadata,
    file_record,
    model_card,
    models_index,
    now,
)
from finetune_qa.jobs._preflight import TOKEN_KEY
from finetune_qa.jobs._runner import Runner
from finetune_qa.validation import validate_file

if TYPE_CHECKING:
    from finetune_qa.chat import ChatModel

__all__ = ["FineTuneJob", "MetricPoint"]

T = TypeVar("T")

_SETTINGS = (
    "method",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "beta",
    "suffix",
    "seed",
    "provider_options",
)
"""The request's fields a model card keeps (as requested, when set)."""


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
# Events per page: a first poll reads whole pages; later polls start small (see new_events).
_FULL_PAGE = 100
_FIRST_PAGE = 10


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
        retries: int = ATTEMPTS,
    ) -> None:
        self.id = info.id
        self.info = info
        self.backend = backend
        self.journal = journal
        self.system_prompt = system_prompt
        self.stop = stop
        self._sleep = sleep or backend_sleep(backend)
        self._clock = clock or backend_clock(backend)
        self._policy = RetryPolicy(attempts=retries)
        self._seen: set[str] = set()
        self._delivered: list[JobEvent] = []

    def _retried(self, fn: Callable[[], T]) -> T:
        """``fn()`` (a request that creates nothing), retried by the one policy."""
        return self._policy.call(fn, sleep=self._sleep)

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
        retries: int = ATTEMPTS,
        force_new: bool = False,
        upload_threshold: int = MULTIPART_THRESHOLD,
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
            retries: tries of each request (the first included) after a rate limit (never
                a quota error), a 5xx or a dropped connection; also for the job's polls.
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
        path = Path(training_file)
        vpath = Path(validation_file) if validation_file is not None else None
        preflight.check_files(path, vpath)
        user_meta, options = preflight.check_options(be, metadata, provider_options)
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
        detected_stop = _check_before_upload(
            be, probe, path, vpath, catalog or default_catalog(), today, stop, validate
        )
        sys_prompt = (
            system_prompt if system_prompt is not None else preflight.first_system_prompt(path)
        )
        runner = Runner(
            be,
            jr,
            retries,
            force_new=force_new,
            part_threshold=upload_threshold,
            parallel=upload_parallel,
        )
        info = _submit(runner, probe, user_meta, path, vpath, sys_prompt, detected_stop, split)
        job = cls(
            info,
            backend=be,
            journal=jr,
            system_prompt=sys_prompt,
            stop=detected_stop,
            retries=retries,
        )
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
        info = RetryPolicy().call(lambda: be.retrieve_job(job_id), sleep=backend_sleep(be))
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
        index = models_index()
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
            endpoint=str(last.get("backend") or endpoint(self.backend)),
            system_prompt=self.system_prompt,
            stop=self.stop,
            training_file=files["training_file"],
            validation_file=files["validation_file"],
            split=last.get("split"),
            settings=dict(last.get("hyperparameters") or {}),
            trained_at=now(),
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
        """Events not delivered yet by this object, oldest first.

        Once some events are known, a poll asks for a small first page (a poll usually
        brings a few new events), and pages on at full size only while every event is new.
        """
        fresh: list[JobEvent] = []
        after: str | None = None
        limit = _FIRST_PAGE if self._seen else _FULL_PAGE
        while True:
            page = list(self.backend.list_events(self.id, after=after, limit=limit))
            stop = False
            for e in page:  # newest first
                if e.id in self._seen:
                    stop = True
                    break
                fresh.append(e)
            if stop or len(page) < limit:
                break
            after = page[-1].id
            limit = _FULL_PAGE
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
            poll_interval = _poll_interval(self.backend)
            max_poll_interval = min(max_poll_interval, poll_interval * 12)
        interval = poll_interval
        last_status: str | None = None
        while True:
            self._retried(self.refresh)
            fresh: list[JobEvent] = self._retried(self.new_events)
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
        be = self.backend
        if isinstance(be, ReportsTrainingMetrics):
            rows: list[dict[str, Any]] = self._retried(lambda: be.training_metrics(self.id))
            by_step: dict[int, dict[str, Any]] = {}
            for row in rows:
                merged = by_step.setdefault(int(row["step"]), {})
                merged.update(
                    {k: v for k, v in row.items() if v is not None and k in _METRIC_FIELDS}
                )
            if by_step:
                return [MetricPoint(step=step, **vals) for step, vals in sorted(by_step.items())]
        for fid in self.info.result_files:
            content = self._retried(functools.partial(self.backend.file_content, fid))
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
        return self._retried(lambda: self.backend.list_checkpoints(self.id))

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


def _validated_stop(
    backend: Backend,
    path: Path,
    vpath: Path | None,
    model: str,
    catalog: ModelCatalog,
    stop: str | None,
    today: dt.date,
) -> str | None:
    """Validate the data files, refusing them on errors; the stop marker given or found.

    A model the catalogue does not know is checked against the default's limits, with
    the format rules of the provider the backend talks to.

    Raises:
        ValidationFailed: a file has format errors (nothing was sent).
    """
    report = validate_file(
        path,
        model=model if model in catalog else DEFAULT_MODEL,
        validation_path=vpath,
        stop=stop,
        today=today,
        provider=validation_provider(backend),
    )
    if not report.ok:
        raise ValidationFailed(report)
    return stop or report.stop_marker


def _check_before_upload(
    backend: Backend,
    probe: JobRequest,
    path: Path,
    vpath: Path | None,
    catalog: ModelCatalog,
    today: dt.date | None,
    stop: str | None,
    validate: bool,
) -> str | None:
    """Every check of a request before anything is uploaded; the stop marker to record.

    Raises:
        UsageError: a setting is out of range, or the provider would refuse it.
        ValidationFailed: a file has format errors.
    """
    # a backend with its own clock (the offline one) judges dates by that clock
    today = today or preflight.job_today(backend)
    # hosted trainers stop at 50 epochs; a backend may allow more (the local one does)
    preflight.check_request(probe, catalog, today, max_epochs=preflight.epoch_limit(backend))
    detected_stop = (
        _validated_stop(backend, path, vpath, probe.model, catalog, stop, today)
        if validate
        else stop
    )
    # the provider's own limits (hyperparameters, example length), before any upload
    preflight.provider_check(backend, probe, training_path=path, validation_path=vpath)
    return detected_stop


def _submit(
    runner: Runner,
    probe: JobRequest,
    user_meta: Mapping[str, str],
    path: Path,
    vpath: Path | None,
    sys_prompt: str | None,
    stop: str | None,
    split: str | None,
) -> JobInfo:
    """Upload the files and create the job (each once), and journal its settings.

    One process at a time reads the journal, uploads, creates and records: two runs of
    the same request at once would each find nothing and each upload and create.
    """
    be, jr = runner.backend, runner.journal
    with jr.lock():
        train_id = runner.upload(path)
        val_id = runner.upload(vpath) if vpath else None
        request = probe.model_copy(
            update={
                "training_file": train_id,
                "validation_file": val_id,
                "metadata": {**user_meta, **card_metadata(be, user_meta, sys_prompt, stop)},
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
                "stop": stop,
                # what the model card needs once the job succeeds
                "backend_name": be.name,
                "base_model": probe.model,
                "training_file": file_record(path, train_id),
                "validation_file": file_record(vpath, val_id) if vpath else None,
                "split": split,
                "hyperparameters": {
                    k: v
                    for k, v in request.model_dump(mode="json").items()
                    if k in _SETTINGS and v not in (None, {}, [])
                },
            }
        )
    return info
