"""A stateful, deterministic fake of the OpenAI REST API: the offline backend's server side.

:class:`FakeOpenAI` answers the endpoints a fine-tuned QA chatbot's life touches (files,
uploads, fine-tuning jobs with events and checkpoints, models, chat completions) with
objects shaped exactly like OpenAI's, so a *real* ``openai`` client, pointed at it
through :mod:`finetune_qa.backends._wire`, runs its production code path: multipart
encoding, cursor pagination, error mapping and retries.

It is framework-free: :meth:`FakeOpenAI.handle` takes a method, path, query, headers
and body, and returns a :class:`FakeResponse`. Nothing here imports an HTTP library.

Time is virtual. A :class:`VirtualClock` drives every status change and timestamp, and
nothing ever sleeps: a poller under test injects ``sleep=fake.clock.sleep``. On every
request the fake first brings every job up to date with the clock:

```
validating_files --(JobDurations.validating_files)--> queued --(queued)--> running
running --(seconds_per_step x steps, then finalizing)--> succeeded
validating_files --(bad training data)--> failed        any non-terminal --cancel--> cancelled
running --pause--> paused --resume--> queued --> running (from the paused step)
```

When a job leaves ``validating_files`` its files are checked with finetune_qa's own
:class:`~finetune_qa.validation.Validator`, as OpenAI checks them: a format error or
fewer than 10 examples fails the job with ``invalid_training_file`` (or
``invalid_validation_file``) and a message naming the line. Otherwise training is
planned with these choices (documented because OpenAI does not publish its own):

* ``n_epochs`` "auto": :func:`finetune_qa.validation.default_epochs` (OpenAI's heuristic);
* ``batch_size`` "auto": about 0.2% of the examples, ``max(1, min(256, round(n * 0.002)))``;
* ``learning_rate_multiplier`` "auto": 1.8; DPO ``beta`` "auto": 0.1;
* steps = ``ceil(n / batch_size) * n_epochs``; one metrics event every
  ``ceil(steps / 100)`` steps (and at the last step); one checkpoint per epoch, the last
  three kept; losses fall exponentially with deterministic noise seeded by the job;
* ``trained_tokens`` = the validator's billed tokens per epoch x epochs.

The fine-tuned model then answers like a fine-tune would (see
:mod:`finetune_qa.backends._answers`): trained questions verbatim, rephrasings with the
nearest trained answer, anything else with a fluent off-domain answer.

Not simulated: ``n > 1``, tools/function calling in chat,
reinforcement fine-tuning, checkpoint permissions, batches, embeddings, and the
Responses API. Unknown routes answer 404 in OpenAI's error shape.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast

import orjson

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa._text import key_hash
from finetune_qa._version import __version__
from finetune_qa.backends._fake._answers import (
    Answer,
    Answerer,
    detect_stop_marker,
    generic_answer,
    last_user_text,
    qa_of_example,
)
from finetune_qa.backends._tasks import answer_task
from finetune_qa.catalog import ModelCatalog, ModelInfo, base_model_name, default_catalog
from finetune_qa.exceptions import InputFileError, UsageError
from finetune_qa.tokens import TokenCounter
from finetune_qa.validation import ValidationIssue, Validator, default_epochs

__all__ = [
    "EPOCH_START",
    "FakeOpenAI",
    "FakeResponse",
    "JobDurations",
    "RecordedRequest",
    "VirtualClock",
]

EPOCH_START = 1_767_225_600
"""Where every :class:`VirtualClock` starts by default: 2026-01-01T00:00:00Z."""

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024
UPLOAD_TTL_SECONDS = 3600
MIN_EXAMPLES = 10
KEPT_CHECKPOINTS = 3
MAX_METRIC_EVENTS = 100
MAX_METADATA_PAIRS = 16
AUTO_LR_MULTIPLIER = 1.8
AUTO_BETA = 0.1
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# ================================================================== public small types


class VirtualClock:
    """Seconds since the Unix epoch, moved by hand (or with real time, sped up).

    Args:
        start: the first value of :meth:`now` (default 2026-01-01T00:00:00Z).

    Example:
        >>> clock = VirtualClock()
        >>> clock.sleep(30)  # returns at once; the clock is 30 s later
        >>> clock.now() - EPOCH_START
        30.0
    """

    def __init__(self, start: float = EPOCH_START) -> None:
        self._lock = threading.Lock()
        self._base = float(start)
        self._speedup = 0.0
        self._real0 = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _now(self) -> float:
        if self._speedup:
            return self._base + (time.monotonic() - self._real0) * self._speedup
        return self._base

    def now(self) -> float:
        """The current virtual time."""
        with self._lock:
            return self._now()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise UsageError(f"a clock cannot go backwards (advance by {seconds})")
        with self._lock:
            self._base += seconds
            return self._now()

    def sleep(self, seconds: float) -> None:
        """A drop-in for :func:`time.sleep` that only advances the clock."""
        self.advance(max(0.0, seconds))

    def run_realtime(self, speedup: float = 60.0) -> None:
        """From now on, advance by ``speedup`` virtual seconds per real second as well.

        Used by the HTTP server mode, where clients poll with real sleeps.
        """
        if not (math.isfinite(speedup) and speedup > 0):
            raise UsageError(f"speedup must be a positive finite number, got {speedup}")
        with self._lock:
            self._base = self._now()
            self._real0 = time.monotonic()
            self._speedup = speedup

    def freeze(self) -> None:
        """Stop following real time; the clock keeps its current value."""
        with self._lock:
            self._base = self._now()
            self._speedup = 0.0

    @property
    def realtime(self) -> bool:
        """True while the clock follows real time."""
        return bool(self._speedup)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now():.1f}, realtime={self.realtime})"


@dataclass(frozen=True)
class JobDurations:
    """How long a fine-tuning job spends in each phase, in virtual seconds.

    Attributes:
        validating_files: from creation to the files being checked.
        queued: waiting for capacity before training starts (also after a resume).
        seconds_per_step: one training step.
        finalizing: from the last step to ``succeeded`` (saving and evaluating the model).
    """

    validating_files: float = 10.0
    queued: float = 20.0
    seconds_per_step: float = 1.0
    finalizing: float = 5.0


@dataclass
class FakeResponse:
    """What :meth:`FakeOpenAI.handle` returns; the transport adapters turn it into HTTP.

    Attributes:
        status: HTTP status code (0 when ``stream_error`` is set).
        headers: response headers, lower-case names.
        body: the body (JSON, or raw bytes for file contents).
        stream_error: set when the connection should drop instead of answering.
        latency: real seconds the adapter waits before answering (injected faults).
        timeout: with ``stream_error``, the client should see its read time out (the
            in-process transports raise the HTTP library's ``ReadTimeout``).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    stream_error: str | None = None
    latency: float = 0.0
    timeout: bool = False

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RecordedRequest(NamedTuple):
    """One request seen by the fake, for assertions: ``fake.requests[-1].path``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any


# ======================================================================== plumbing


class _ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return _dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _bad(message: str, param: str | None = None, code: str | None = None) -> _ApiError:
    return _ApiError(400, message, param=param, code=code)


def _not_found(message: str, param: str | None = None, code: str | None = None) -> _ApiError:
    return _ApiError(404, message, param=param, code=code)


class _Ids:
    """Deterministic OpenAI-looking ids: the same seed gives the same ids in the same order."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._n = 0

    def new(self, prefix: str, length: int = 24) -> str:
        self._n += 1
        digest = hashlib.blake2b(f"{self._seed}:{prefix}:{self._n}".encode(), digest_size=32)
        value = int.from_bytes(digest.digest(), "big")
        chars = []
        for _ in range(length):
            value, r = divmod(value, len(_ALNUM))
            chars.append(_ALNUM[r])
        return prefix + "".join(chars)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    return key_hash(":".join(str(p) for p in parts)) / 2**64


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except RecursionError as exc:
            raise _bad(
                "We could not parse the JSON body of your request (nested too deep)."
            ) from exc
        except ValueError as exc:
            raise _bad(f"We could not parse the JSON body of your request ({exc}).") from exc
        if not isinstance(data, dict):
            raise _bad("The request body must be a JSON object.")
        return data

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        ctype = self.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise _bad(f"Expected a multipart/form-data body, got {ctype or 'none'!r}.")
        return _parse_multipart(ctype, self.body)

    def int_query(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _bad(f"Invalid '{name}': expected an integer, got {raw!r}.", name) from None
        if not low <= value <= high:
            raise _bad(f"Invalid '{name}': must be between {low} and {high}.", name)
        return value


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(rb"content-disposition:[^\r\n]*", re.IGNORECASE)
_PARAM = re.compile(rb'\b(name|filename)="((?:[^"\\]|\\.)*)"')


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, bytes)`` of every part (stdlib only; ``cgi`` is gone in 3.13).

    Split on the boundary with bytes operations: the email parser this replaced took
    seconds on a 64 MiB upload part.
    """
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise _bad("Malformed multipart/form-data body: no boundary.")
    delimiter = b"--" + m.group(1).encode("latin-1")
    out: dict[str, tuple[str | None, bytes]] = {}
    start = body.find(delimiter)
    if start < 0:
        raise _bad("Malformed multipart/form-data body.")
    # one slice (one copy) per payload: parts can be 64 MiB
    while True:
        nxt = body.find(delimiter, start + len(delimiter))
        if nxt < 0:
            break
        part_start = start + len(delimiter)
        head_end = body.find(b"\r\n\r\n", part_start, nxt)
        if head_end < 0:
            raise _bad("Malformed multipart/form-data body: a part has no headers.")
        start = nxt
        disposition = _DISPOSITION.search(body, part_start, head_end)
        if disposition is None:
            continue
        params = {
            k.decode(): v.decode("utf-8", "replace")
            for k, v in _PARAM.findall(disposition.group(0))
        }
        name = params.get("name")
        if name is None:
            continue
        end = nxt - 2 if body[nxt - 2 : nxt] == b"\r\n" else nxt
        out[name] = (params.get("filename"), body[head_end + 4 : end])
    if not out and start == body.find(delimiter):
        raise _bad("Malformed multipart/form-data body.")
    return out


def _field(form: Mapping[str, tuple[str | None, bytes]], name: str) -> str | None:
    value = form.get(name)
    return value[1].decode("utf-8") if value is not None else None


def _page(
    items: list[dict[str, Any]],
    req: _Request,
    order: Mapping[str, int],
    *,
    default_limit: int,
    max_limit: int,
    descending: bool = True,
    ends: bool = False,
) -> dict[str, Any]:
    """One cursor page as OpenAI serves it (``after`` = id of the previous page's last item)."""
    limit = req.int_query("limit", default_limit, low=1, high=max_limit)
    after = req.query.get("after")
    if after:
        pos = order.get(after)
        if pos is None:
            raise _bad(f"Invalid 'after': no object with id {after!r}.", "after")
        items = [i for i in items if (order[i["id"]] < pos if descending else order[i["id"]] > pos)]
    data = items[:limit]
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": len(items) > limit}
    if ends:
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    return page


# ============================================================== resource state objects


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": self.expires_at,
        }


@dataclass
class _Upload:
    id: str
    filename: str
    purpose: str
    size: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str = "pending"
    parts: dict[str, bytes] = field(default_factory=dict)
    file: _File | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": self.file.to_api() if self.file is not None else None,
        }


@dataclass
class _Event:
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.event",
            "created_at": self.created_at,
            "level": self.level,
            "message": self.message,
            "type": self.type,
            "data": self.data if self.data is not None else {},
        }


@dataclass
class _Checkpoint:
    id: str
    created_at: int
    name: str
    job_id: str
    step: int
    metrics: dict[str, float | None]

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.checkpoint",
            "created_at": self.created_at,
            "fine_tuned_model_checkpoint": self.name,
            "fine_tuning_job_id": self.job_id,
            "step_number": self.step,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class _Invalid:
    """Why a job's files failed validation (becomes the job's ``error``)."""

    code: str
    message: str
    param: str


_Checked = tuple[int, int, list[tuple[str, str]]]
"""Valid examples, billed tokens per epoch, and the trained (question, answer) pairs."""


@dataclass
class _Plan:
    """What validating the files decided about training."""

    n_examples: int
    n_epochs: int
    batch_size: int
    lr_multiplier: float
    beta: float | None
    steps_per_epoch: int
    billed_tokens_per_epoch: int
    pairs: list[tuple[str, str]]
    stop_marker: str | None
    has_validation: bool

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.n_epochs

    @property
    def metric_every(self) -> int:
        return max(1, math.ceil(self.total_steps / MAX_METRIC_EVENTS))


@dataclass
class _Job:
    id: str
    short_id: str
    created_at: float
    model: str
    base: ModelInfo
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None
    method: Literal["supervised", "dpo"]
    requested: dict[str, Any]
    status: str = "validating_files"
    phase_started: float = 0.0
    step: int = 0
    run_base_step: int = 0
    plan: _Plan | None = None
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    checkpoints: list[_Checkpoint] = field(default_factory=list)
    answerer: Answerer | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def model_name(self, org: str, *extra: str) -> str:
        """``ft:<base>:<org>:<suffix>:<short id>[:<extra>...]``, OpenAI's naming."""
        return ":".join(["ft", self.base.name, org, self.suffix or "", self.short_id, *extra])

    def hyperparameters(self) -> dict[str, Any]:
        """As requested ("auto" included) until validation, then the values used."""
        if self.plan is None:
            return dict(self.requested)
        p = self.plan
        hp: dict[str, Any] = {
            "batch_size": p.batch_size,
            "learning_rate_multiplier": p.lr_multiplier,
            "n_epochs": p.n_epochs,
        }
        if self.method == "dpo":
            hp["beta"] = p.beta
        return hp


@dataclass
class _Model:
    id: str
    created: int
    owned_by: str
    base: ModelInfo
    answerer: Answerer
    job_id: str

    def to_api(self) -> dict[str, Any]:
        shutdown = self.base.shutdown_date
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "shutdown_date": shutdown.isoformat() if shutdown else None,
        }


@dataclass
class _Fault:
    method: str
    pattern: str
    status: int | None
    retry_after: float | None
    drop: bool
    latency: float
    remaining: int | None
    after_effect: bool
    timeout: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.pattern)

    @property
    def fails(self) -> bool:
        return bool(self.status or self.drop or self.timeout)


@dataclass
class _State:
    files: dict[str, _File] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    models: dict[str, _Model] = field(default_factory=dict)
    checkpoint_models: dict[str, str] = field(default_factory=dict)
    # creation order of every object ever made, for cursor pagination across deletions
    order: dict[str, int] = field(default_factory=dict)

    def remember(self, obj_id: str) -> None:
        self.order[obj_id] = len(self.order)


# ==================================================================== job state machine


def _epoch_date(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).date()


class _JobEngine:
    """Moves jobs through their statuses as the virtual clock passes; writes their events."""

    def __init__(
        self,
        state: _State,
        ids: _Ids,
        durations: JobDurations,
        organization: str,
    ) -> None:
        self.state = state
        self.ids = ids
        self.d = durations
        self.org = organization

    # -- events
    def event(
        self,
        job: _Job,
        t: float,
        message: str,
        *,
        level: Literal["info", "warn", "error"] = "info",
        kind: Literal["message", "metrics"] = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        ev = _Event(self.ids.new("ftevent-"), int(t), level, message, kind, data)
        self.state.remember(ev.id)
        job.events.append(ev)

    # -- lifecycle
    def start(self, job: _Job) -> None:
        job.phase_started = job.created_at
        self.event(job, job.created_at, f"Created fine-tuning job: {job.id}")
        files = f"Validating training file: {job.training_file}"
        if job.validation_file:
            files += f" and validation file: {job.validation_file}"
        self.event(job, job.created_at, files)

    def next_change(self, job: _Job) -> float | None:
        """Virtual time of the job's next status change by itself, or None."""
        if job.status == "validating_files":
            return job.phase_started + self.d.validating_files
        if job.status == "queued":
            return job.phase_started + self.d.queued
        if job.status == "running" and job.plan is not None:
            left = job.plan.total_steps - job.run_base_step
            return job.phase_started + left * self.d.seconds_per_step + self.d.finalizing
        return None

    def advance(self, job: _Job, now: float) -> None:
        """Bring ``job`` up to date with ``now``."""
        while not job.terminal:
            if job.status == "validating_files":
                t = job.phase_started + self.d.validating_files
                if now < t:
                    return
                self._validate(job, t)
            elif job.status == "queued":
                t = job.phase_started + self.d.queued
                if now < t:
                    return
                job.status, job.phase_started, job.run_base_step = "running", t, job.step
                if job.step:
                    self.event(job, t, f"Fine-tuning job resumed from step {job.step}")
                else:
                    self.event(job, t, "Fine-tuning job started")
            elif job.status == "running":
                if not self._train(job, now):
                    return
            else:  # paused
                return

    def _train(self, job: _Job, now: float) -> bool:
        """Run the steps due by ``now``; True when the job finished."""
        plan = job.plan
        assert plan is not None
        per = self.d.seconds_per_step
        total = plan.total_steps
        if per > 0:
            due = job.run_base_step + int((now - job.phase_started) / per + 1e-9)
            reached = min(total, max(job.step, due))
        else:
            reached = total
        for step in _interesting_steps(job.step + 1, reached, plan):
            t = job.phase_started + (step - job.run_base_step) * per
            self._step(job, step, t)
        job.step = reached
        if reached < total:
            return False
        t_done = job.phase_started + (total - job.run_base_step) * per + self.d.finalizing
        if now < t_done:
            return False
        self._succeed(job, t_done)
        return True

    def _step(self, job: _Job, step: int, t: float) -> None:
        plan = job.plan
        assert plan is not None
        m = _metrics(job, step)
        total = plan.total_steps
        if step % plan.metric_every == 0 or step == total:
            msg = f"Step {step}/{total}: training loss={m['train_loss']:.3f}"
            data: dict[str, Any] = {
                "step": step,
                "train_loss": m["train_loss"],
                "total_steps": total,
                "train_mean_token_accuracy": m["train_mean_token_accuracy"],
            }
            if plan.has_validation:
                msg += f", validation loss={m['valid_loss']:.3f}"
                data["valid_loss"] = m["valid_loss"]
                data["valid_mean_token_accuracy"] = m["valid_mean_token_accuracy"]
            self.event(job, t, msg, kind="metrics", data=data)
        if step % plan.steps_per_epoch == 0:
            self._checkpoint(job, step, t, m)

    def _checkpoint(self, job: _Job, step: int, t: float, m: dict[str, float]) -> None:
        plan = job.plan
        assert plan is not None
        name = job.model_name(self.org, f"ckpt-step-{step}")
        metrics: dict[str, float | None] = {
            "step": float(step),
            "train_loss": m["train_loss"],
            "train_mean_token_accuracy": m["train_mean_token_accuracy"],
            "valid_loss": m["valid_loss"] if plan.has_validation else None,
            "valid_mean_token_accuracy": (
                m["valid_mean_token_accuracy"] if plan.has_validation else None
            ),
            "full_valid_loss": m["full_valid_loss"] if plan.has_validation else None,
            "full_valid_mean_token_accuracy": (
                m["full_valid_mean_token_accuracy"] if plan.has_validation else None
            ),
        }
        ckpt = _Checkpoint(self.ids.new("ftckpt_"), int(t), name, job.id, step, metrics)
        self.state.remember(ckpt.id)
        job.checkpoints.append(ckpt)
        self.state.checkpoint_models[name] = job.id
        while len(job.checkpoints) > KEPT_CHECKPOINTS:
            old = job.checkpoints.pop(0)
            self.state.checkpoint_models.pop(old.name, None)
        self.event(job, t, f"Checkpoint created at step {step} with Snapshot ID: {name}")

    def _succeed(self, job: _Job, t: float) -> None:
        plan = job.plan
        assert plan is not None
        name = job.model_name(self.org)
        results = _File(
            self.ids.new("file-"),
            "step_metrics.csv",
            "fine-tune-results",
            base64.b64encode(_results_csv(job).encode("utf-8")),
            int(t),
        )
        self.state.files[results.id] = results
        self.state.remember(results.id)
        answerer = self.answerer(job)
        self.state.models[name] = _Model(name, int(t), self.org, job.base, answerer, job.id)
        job.status = "succeeded"
        job.finished_at = int(t)
        job.fine_tuned_model = name
        job.trained_tokens = plan.billed_tokens_per_epoch * plan.n_epochs
        job.result_files = [results.id]
        self.event(job, t, f"New fine-tuned model created: {name}")
        self.event(job, t, "Usage policy evaluations completed, model is now enabled for sampling")
        self.event(job, t, "The job has successfully completed")

    def answerer(self, job: _Job) -> Answerer:
        """What the job's model (or one of its checkpoints) answers; built once per job."""
        if job.answerer is None:
            plan = job.plan
            assert plan is not None
            pairs = list(plan.pairs)
            parent = self.state.models.get(job.model)
            if parent is not None:  # continued fine-tuning: the new answers win
                pairs += parent.answerer.pairs
            job.answerer = Answerer(pairs, stop_marker=plan.stop_marker)
        return job.answerer

    def fail(self, job: _Job, t: float, code: str, message: str, param: str | None = None) -> None:
        job.status = "failed"
        job.finished_at = int(t)
        job.error = {"code": code, "message": message, "param": param}
        self.event(job, t, message, level="error")

    def cancel(self, job: _Job, now: float) -> None:
        job.status = "cancelled"
        self.event(job, now, "Fine-tuning job cancelled")

    def pause(self, job: _Job, now: float) -> None:
        job.status = "paused"
        job.phase_started = now
        self.event(job, now, f"Fine-tuning job paused at step {job.step}")

    def resume(self, job: _Job, now: float) -> None:
        job.status = "queued"
        job.phase_started = now
        self.event(job, now, "Fine-tuning job resumed, moving job to queued state")

    # -- validation
    def _validate(self, job: _Job, t: float) -> None:
        checked = self._check_files(job, t)
        if isinstance(checked, _Invalid):
            self.fail(job, t, checked.code, checked.message, checked.param)
            return
        job.plan = checked
        job.status = "queued"
        job.phase_started = t
        self.event(job, t, "Files validated, moving job to queued state")

    def _check_files(self, job: _Job, t: float) -> _Plan | _Invalid:
        train = self.state.files.get(job.training_file)
        if train is None:
            return _Invalid(
                "invalid_training_file",
                f"The job failed due to an invalid training file. File {job.training_file} "
                "was deleted before it could be validated.",
                "training_file",
            )
        valid: _File | None = None
        if job.validation_file is not None:
            valid = self.state.files.get(job.validation_file)
            if valid is None:
                return _Invalid(
                    "invalid_validation_file",
                    f"The job failed due to an invalid validation file. File "
                    f"{job.validation_file} was deleted before it could be validated.",
                    "validation_file",
                )
        if job.method == "dpo":
            checked = _check_preference_files(job, train, valid)
        else:
            checked = _check_chat_files(job, train, valid, _epoch_date(t))
        if isinstance(checked, _Invalid):
            return checked
        n, billed, pairs = checked
        req = job.requested
        n_epochs = req["n_epochs"] if isinstance(req["n_epochs"], int) else default_epochs(n)
        batch = req["batch_size"]
        if not isinstance(batch, int):
            batch = max(1, min(256, round(n * 0.002)))
        lr = req["learning_rate_multiplier"]
        beta: float | None = None
        if job.method == "dpo":
            beta = AUTO_BETA if req["beta"] == "auto" else float(req["beta"])
        return _Plan(
            n_examples=n,
            n_epochs=n_epochs,
            batch_size=batch,
            lr_multiplier=AUTO_LR_MULTIPLIER if lr == "auto" else float(lr),
            beta=beta,
            steps_per_epoch=math.ceil(n / batch),
            billed_tokens_per_epoch=billed,
            pairs=pairs,
            stop_marker=detect_stop_marker(a for _, a in pairs),
            has_validation=valid is not None,
        )


def _interesting_steps(first: int, last: int, plan: _Plan) -> Iterator[int]:
    """Steps in ``first..last`` that emit a metrics event or end an epoch, in order."""
    if last < first:
        return
    marks: set[int] = set()
    for every in (plan.metric_every, plan.steps_per_epoch):
        start = math.ceil(first / every) * every
        marks.update(range(start, last + 1, every))
    if last == plan.total_steps:
        marks.add(last)
    yield from sorted(marks)


def _metrics(job: _Job, step: int) -> dict[str, float]:
    """Deterministic, decreasing losses with a little noise, seeded by the job."""
    plan = job.plan
    assert plan is not None
    key = f"{job.seed}:{job.id}"
    start = 1.5 + 0.8 * _unit(key, "start")
    floor = 0.02 + 0.08 * _unit(key, "floor")
    progress = step / plan.total_steps
    noise = (_unit(key, step, "train") - 0.5) * 0.16
    train = floor + (start - floor) * math.exp(-4.0 * progress) * (1.0 + noise)
    vnoise = (_unit(key, step, "valid") - 0.5) * 0.16
    valid = train * (1.08 + vnoise) + 0.03
    full_valid = train * 1.08 + 0.03
    return {
        "train_loss": round(train, 5),
        "train_mean_token_accuracy": round(1.0 / (1.0 + train), 5),
        "valid_loss": round(valid, 5),
        "valid_mean_token_accuracy": round(1.0 / (1.0 + valid), 5),
        "full_valid_loss": round(full_valid, 5),
        "full_valid_mean_token_accuracy": round(1.0 / (1.0 + full_valid), 5),
    }


def _results_csv(job: _Job) -> str:
    plan = job.plan
    assert plan is not None
    out = io.StringIO()
    out.write("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n")
    for step in range(1, plan.total_steps + 1):
        m = _metrics(job, step)
        row = f"{step},{m['train_loss']:.5f},{m['train_mean_token_accuracy']:.5f},"
        if plan.has_validation:
            row += f"{m['valid_loss']:.5f},{m['valid_mean_token_accuracy']:.5f}"
        else:
            row += ","
        out.write(row + "\n")
    return out.getvalue()


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    return enumerate(io.BytesIO(data), 1)


def _first_error(errors: Iterable[ValidationIssue], file_label: str) -> ValidationIssue | None:
    mine = [e for e in errors if e.file == file_label]
    with_line = [e for e in mine if e.line is not None]
    return min(with_line, key=lambda e: e.line or 0) if with_line else (mine[0] if mine else None)


def _describe(issue: ValidationIssue, what: str) -> str:
    where = f"Line {issue.line}: " if issue.line is not None else ""
    msg = issue.message
    if issue.kind == "too_few_examples":
        msg = f"{msg}. Training needs at least {MIN_EXAMPLES} valid examples"
    elif issue.line is not None:
        msg = f"{issue.kind}: {msg}"
    return f"The job failed due to an invalid {what} file. {where}{msg}."


def _check_chat_files(
    job: _Job, train: _File, valid: _File | None, today: dt.date
) -> _Checked | _Invalid:
    """Validate chat JSONL with finetune_qa's Validator, as OpenAI validates it."""
    v = Validator(model=job.base, path=train.id, today=today)
    pairs: list[tuple[str, str]] = []
    try:
        for n, raw in _lines(train.data):
            v.add_line(raw, n)
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            pair = qa_of_example(obj) if isinstance(obj, dict) else None
            if pair is not None:
                pairs.append(pair)
        if valid is not None:
            v.start_validation_file(valid.id)
            for n, raw in _lines(valid.data):
                v.add_line(raw, n)
        report = v.finish()
    finally:
        v.close()
    issue = _first_error(report.errors, train.id)
    if issue is not None:
        return _Invalid("invalid_training_file", _describe(issue, "training"), "training_file")
    if valid is not None:
        issue = _first_error(report.errors, valid.id)
        if issue is not None:
            return _Invalid(
                "invalid_validation_file", _describe(issue, "validation"), "validation_file"
            )
    return report.examples, report.cost.billed_tokens_per_epoch, pairs


def _check_preference_files(job: _Job, train: _File, valid: _File | None) -> _Checked | _Invalid:
    """Validate DPO JSONL: ``input.messages`` plus one preferred and one non-preferred reply."""
    counter = TokenCounter(job.base)
    billed = 0
    pairs: list[tuple[str, str]] = []
    for label, f in (("training", train), ("validation", valid)):
        if f is None:
            continue
        n_ok = 0
        for n, raw in _lines(f.data):
            problem = None
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj, problem = None, "not valid JSON"
            if problem is None:
                problem = _preference_problem(obj)
            if problem is not None:
                msg = f"The job failed due to an invalid {label} file. Line {n}: {problem}."
                return _Invalid(f"invalid_{label}_file", msg, f"{label}_file")
            n_ok += 1
            if label == "training":
                inp = obj["input"]["messages"]
                for key in ("preferred_output", "non_preferred_output"):
                    billed += counter.count_messages([*inp, *obj[key]])
                pair = qa_of_example(obj)
                if pair is not None:
                    pairs.append(pair)
        if label == "training" and n_ok < MIN_EXAMPLES:
            msg = (
                f"The job failed due to an invalid training file. Training file has {n_ok} "
                f"example(s), but must have at least {MIN_EXAMPLES} examples."
            )
            return _Invalid("invalid_training_file", msg, "training_file")
    return len(pairs), billed, pairs


def _preference_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "each line must be a JSON object"
    inp = obj.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
        return "missing 'input.messages'"
    if not inp["messages"] or not any(
        isinstance(m, dict) and m.get("role") == "user" for m in inp["messages"]
    ):
        return "'input.messages' needs a user message"
    for key in ("preferred_output", "non_preferred_output"):
        out = obj.get(key)
        if (
            not isinstance(out, list)
            or len(out) != 1
            or not isinstance(out[0], dict)
            or out[0].get("role") != "assistant"
            or not isinstance(out[0].get("content"), str)
        ):
            return f"'{key}' must be a list with one assistant message"
    return None


# ============================================================================ the fake

_Handler = Callable[..., Any]

_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/files", "_files_create"),
    ("GET", "/files", "_files_list"),
    ("GET", "/files/{file_id}", "_files_retrieve"),
    ("DELETE", "/files/{file_id}", "_files_delete"),
    ("GET", "/files/{file_id}/content", "_files_content"),
    ("POST", "/uploads", "_uploads_create"),
    ("POST", "/uploads/{upload_id}/parts", "_uploads_add_part"),
    ("POST", "/uploads/{upload_id}/complete", "_uploads_complete"),
    ("POST", "/uploads/{upload_id}/cancel", "_uploads_cancel"),
    ("POST", "/fine_tuning/jobs", "_jobs_create"),
    ("GET", "/fine_tuning/jobs", "_jobs_list"),
    ("GET", "/fine_tuning/jobs/{job_id}", "_jobs_retrieve"),
    ("POST", "/fine_tuning/jobs/{job_id}/cancel", "_jobs_cancel"),
    ("POST", "/fine_tuning/jobs/{job_id}/pause", "_jobs_pause"),
    ("POST", "/fine_tuning/jobs/{job_id}/resume", "_jobs_resume"),
    ("GET", "/fine_tuning/jobs/{job_id}/events", "_jobs_events"),
    ("GET", "/fine_tuning/jobs/{job_id}/checkpoints", "_jobs_checkpoints"),
    ("GET", "/models", "_models_list"),
    ("GET", "/models/{model}", "_models_retrieve"),
    ("DELETE", "/models/{model}", "_models_delete"),
    ("POST", "/chat/completions", "_chat_create"),
)
"""Method, path template and handler of every route the fake serves."""

_COMPILED = tuple(
    (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", tmpl) + "$"), name)
    for method, tmpl, name in _ROUTES
)


class FakeOpenAI:
    """An in-process, stateful, deterministic OpenAI API for the fine-tuning life cycle.

    Args:
        seed: seeds every id and every simulated loss; the same seed and the same
            requests give the same responses.
        organization: owner of fine-tuned models and part of their names.
        clock: the virtual clock (a new one starting 2026-01-01 by default).
        durations: how long job phases take in virtual seconds.
        advance_per_request: virtual seconds added to the clock on every request, so
            a client that polls without sleeping still sees jobs progress.
        catalog: the model catalogue deciding which models exist and are fine-tunable.

    Example:
        >>> fake = FakeOpenAI()
        >>> r = fake.handle("GET", "/v1/models", {}, {"authorization": "Bearer x"}, b"")
        >>> r.status, r.json()["object"]
        (200, 'list')
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        organization: str = "org-offline",
        clock: VirtualClock | None = None,
        durations: JobDurations | None = None,
        advance_per_request: float = 0.0,
        catalog: ModelCatalog | None = None,
    ) -> None:
        if advance_per_request < 0:
            raise UsageError("advance_per_request cannot be negative")
        self.seed = seed
        self.instance_id = uuid.uuid4().hex[:12]  # names this API's state in journals
        self.organization = organization
        self.clock = clock or VirtualClock()
        self.durations = durations or JobDurations()
        self.advance_per_request = advance_per_request
        self.catalog = catalog or default_catalog()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._ids = _Ids(seed)
        self._state = _State()
        self._engine = _JobEngine(self._state, self._ids, self.durations, organization)
        self._faults: list[_Fault] = []
        self._n_requests = 0
        self._counters: dict[str, TokenCounter] = {}

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_counters"] = {}  # tokenizers are rebuilt on demand
        state["requests"] = []
        state["_saved_by"] = __version__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved_by = state.pop("_saved_by", None)
        if saved_by != __version__:
            # its classes may have changed shape: fail now, not halfway through a request
            raise UsageError(
                f"the offline API's state was saved by finetune_qa {saved_by or 'before 0.1.0'}, "
                f"this is {__version__}"
            )
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the whole state (files, jobs, models, clock) to ``path`` as JSON, owner-only.

        The CLI keeps the offline API here between commands. The format cannot run code
        when it is read (see :mod:`finetune_qa.backends._statefile`).
        """
        from finetune_qa.backends._statefile import FORMAT, encode

        data = b'{"format":"' + FORMAT.encode() + b'","state":' + encode(self) + b"}\n"
        atomic_write(
            path,
            data,
            mode=0o600,
            problem="cannot save the offline API's state",
            hint="point FINETUNE_QA_OFFLINE_STATE at a writable file",
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FakeOpenAI:
        """Read a state written by :meth:`save`.

        Only a regular file owned by this user and writable by no one else is read; an
        old pickled state is refused, never unpickled.

        Raises:
            InputFileError: the file is not a regular file, is another user's or writable
                by others, is a pickle, or is not a saved offline API.
            UsageError: the state was saved by another version of finetune_qa.
        """
        from finetune_qa.backends._statefile import FORMAT, decode, is_pickle

        where = os.fspath(path)
        delete = f"delete {where} to start again with an empty offline API"
        with open_regular(path, kind="state file") as f:
            st = os.fstat(f.fileno())
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise InputFileError(
                    f"is owned by another user (uid {st.st_uid}); it is not read",
                    path=where,
                    hint=delete + " (it may have been planted)",
                )
            if st.st_mode & 0o022:
                raise InputFileError(
                    f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                    "it is not read",
                    path=where,
                    hint=delete + " (it may have been tampered with)",
                )
            data = f.read()
        if is_pickle(data):
            raise InputFileError(
                "was saved by an older finetune_qa as a pickle, which is not read (reading "
                "one can run code)",
                path=where,
                hint=delete,
            )
        head = b'{"format":"' + FORMAT.encode() + b'","state":'
        if not data.startswith(head) or not data.rstrip().endswith(b"}"):
            raise InputFileError("does not hold a saved offline API", path=where, hint=delete)
        try:
            obj = decode(data[len(head) : data.rstrip().rindex(b"}")])
        except ValueError as exc:
            if isinstance(exc, UsageError):
                raise
            raise InputFileError(
                f"the offline API's state is damaged ({exc})", path=where, hint=delete
            ) from exc
        if not isinstance(obj, cls):
            raise InputFileError("does not hold a saved offline API", path=where, hint=delete)
        return obj

    # ------------------------------------------------------------------ public helpers
    def inject(
        self,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        drop: bool = False,
        latency: float = 0.0,
        times: int | None = 1,
        after_effect: bool = False,
        timeout: bool = False,
    ) -> None:
        """Make the next requests to ``route`` fail, drop, time out or lag.

        Args:
            route: ``"METHOD /path"`` with fnmatch wildcards (``"GET /fine_tuning/jobs/*"``);
                without a method every method matches. A leading ``/v1`` is ignored.
            status: answer with this HTTP error (429 and 5xx are what OpenAI sends).
            retry_after: seconds for the ``retry-after`` and ``retry-after-ms`` headers.
            drop: close the connection without an answer (the client sees a connection error).
            latency: real seconds the transport waits before answering.
            times: how many matching requests are affected (None: all of them).
            after_effect: process the request first (the job *is* created), then fail:
                the server did it but the client never heard back.
            timeout: no answer in time: the in-process transports raise the HTTP
                library's ``ReadTimeout`` (openai's ``APITimeoutError``); the HTTP server
                hangs up, as for ``drop``.
        """
        method, _, pattern = route.strip().rpartition(" ")
        if status is not None and not 400 <= status <= 599:
            raise UsageError(f"inject status must be an HTTP error (400-599), got {status}")
        if times is not None and times < 1:
            raise UsageError(f"times must be at least 1 (or None for always), got {times}")
        if latency < 0:
            raise UsageError("latency cannot be negative")
        kinds = [
            name
            for name, on in (("status", status is not None), ("drop", drop), ("timeout", timeout))
            if on
        ]
        if len(kinds) > 1:
            raise UsageError(
                f"inject takes one way to fail a request, got {' and '.join(kinds)}: "
                "inject them separately (each fires on its own request)"
            )
        if retry_after is not None and status is None:
            raise UsageError("retry_after goes with an error status (429 or 5xx); pass status= too")
        if after_effect and not kinds:
            raise UsageError(
                "after_effect needs a failure to follow the work: pass status=, drop=True or "
                "timeout=True"
            )
        fault = _Fault(
            method=(method.strip().upper() or "*"),
            pattern=_strip_v1(pattern),
            status=status,
            retry_after=retry_after,
            drop=drop,
            latency=latency,
            remaining=times,
            after_effect=after_effect,
            timeout=timeout,
        )
        with self._lock:
            self._faults.append(fault)

    def reset_faults(self) -> None:
        """Forget every injected fault that has not fired yet."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many injected faults are still waiting to fire (``times=None`` ones always are)."""
        with self._lock:
            return len(self._faults)

    def run_job(self, job_id: str, *, max_seconds: float = 365 * 86400.0) -> str:
        """Advance the virtual clock until the job ends; return its final status.

        Raises:
            UsageError: no such job, the job is paused, or it would take longer than
                ``max_seconds`` of virtual time.
        """
        with self._lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                raise UsageError(f"no fine-tuning job {job_id!r} in this fake")
            deadline = self.clock.now() + max_seconds
            while True:
                self._tick(self.clock.now())
                if job.terminal:
                    return job.status
                if job.status == "paused":
                    raise UsageError(f"job {job_id} is paused; resume it before running it")
                nxt = self._engine.next_change(job)
                assert nxt is not None
                if nxt > deadline:
                    raise UsageError(f"job {job_id} would not end within {max_seconds} s")
                self.clock.advance(max(0.0, nxt - self.clock.now()))

    def fail_job(
        self,
        job_id: str,
        *,
        message: str = "The job failed due to an internal error.",
        code: str = "internal_error",
    ) -> None:
        """Fail a running (or queued, validating) job now, as an OpenAI outage would."""
        with self._lock:
            now = self.clock.now()
            self._tick(now)
            job = self._state.jobs.get(job_id)
            if job is None:
                raise UsageError(f"no fine-tuning job {job_id!r} in this fake")
            if job.terminal:
                raise UsageError(f"job {job_id} has already ended ({job.status})")
            self._engine.fail(job, now, code, message)

    # ---------------------------------------------------------------------- handle
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> FakeResponse:
        """Answer one HTTP request.

        Args:
            method: ``GET``, ``POST``, ``DELETE``.
            path: the URL path, with or without the ``/v1`` prefix.
            query: query parameters (repeated keys such as ``metadata[k]`` are plain keys).
            headers: request headers (names are matched case-insensitively).
            body: the raw request body.

        Returns:
            The response; ``stream_error`` is set when the connection should drop.
        """
        method = method.upper()
        path = _strip_v1(path)
        q = {str(k): str(v) for k, v in (query or {}).items()}
        h = {k.lower(): v for k, v in (headers or {}).items()}
        with self._lock:
            self._n_requests += 1
            rid = f"req_{self._n_requests}"
            self.requests.append(RecordedRequest(method, path, q, _maybe_json(h, body)))
            fault = self._take_fault(method, path)
            if fault is not None and not fault.after_effect and fault.fails:
                return _fault_response(fault, rid)
            response = self._dispatch(_Request(method, path, q, h, body), rid)
            if fault is not None:
                if fault.fails:
                    return _fault_response(fault, rid)
                response.latency = fault.latency
            return response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _dispatch(self, req: _Request, rid: str) -> FakeResponse:
        headers = {"x-request-id": rid, "content-type": "application/json"}
        try:
            if self.advance_per_request:
                self.clock.advance(self.advance_per_request)
            _check_auth(req.headers)
            self._tick(self.clock.now())
            for method, pattern, name in _COMPILED:
                m = pattern.match(req.path)
                if m is not None and method == req.method:
                    handler = cast(_Handler, getattr(self, name))
                    result = handler(req, **m.groupdict())
                    break
            else:
                raise _not_found(f"Invalid URL ({req.method} /v1{req.path})")
        except _ApiError as err:
            return FakeResponse(err.status, {**headers, **err.headers}, err.body())
        except Exception as exc:  # a bug in the fake: say so instead of hanging a client
            bug = _ApiError(
                500, f"offline backend error: {type(exc).__name__}: {exc}", type="server_error"
            )
            return FakeResponse(500, headers, bug.body())
        if isinstance(result, _EventStream):
            headers["content-type"] = "text/event-stream; charset=utf-8"
            return FakeResponse(200, headers, bytes(result))
        if isinstance(result, bytes):
            headers["content-type"] = "application/octet-stream"
            return FakeResponse(200, headers, result)
        return FakeResponse(200, headers, _dumps(result))

    def _tick(self, now: float) -> None:
        for job in self._state.jobs.values():
            if not job.terminal:
                self._engine.advance(job, now)
        for up in self._state.uploads.values():
            if up.status == "pending" and now >= up.expires_at:
                up.status = "expired"
        expired = [
            f.id
            for f in self._state.files.values()
            if f.expires_at is not None and now >= f.expires_at
        ]
        for fid in expired:
            del self._state.files[fid]

    # ----------------------------------------------------------------------- helpers
    def _now(self) -> int:
        return int(self.clock.now())

    def _new_file(self, filename: str, purpose: str, data: bytes, expires_at: int | None) -> _File:
        f = _File(self._ids.new("file-"), filename, purpose, data, self._now(), expires_at)
        self._state.files[f.id] = f
        self._state.remember(f.id)
        return f

    def _file(self, file_id: str) -> _File:
        f = self._state.files.get(file_id)
        if f is None:
            raise _not_found(f"No such File object: {file_id}", "id")
        return f

    def _job(self, job_id: str) -> _Job:
        job = self._state.jobs.get(job_id)
        if job is None:
            raise _not_found(f"Could not find fine-tuning job: {job_id}", "fine_tuning_job_id")
        return job

    def _counter(self, model: str) -> TokenCounter:
        base = base_model_name(model)
        counter = self._counters.get(base)
        if counter is None:
            counter = self._counters[base] = TokenCounter(self.catalog.get(base))
        return counter

    def _job_api(self, job: _Job) -> dict[str, Any]:
        hp = job.hyperparameters()
        nxt = self._engine.next_change(job) if job.status == "running" else None
        return {
            "id": job.id,
            "object": "fine_tuning.job",
            "created_at": int(job.created_at),
            "error": job.error,
            "fine_tuned_model": job.fine_tuned_model,
            "finished_at": job.finished_at,
            "hyperparameters": {k: v for k, v in hp.items() if k != "beta"},
            "model": job.model,
            "organization_id": self.organization,
            "result_files": list(job.result_files),
            "seed": job.seed,
            "status": job.status,
            "trained_tokens": job.trained_tokens,
            "training_file": job.training_file,
            "validation_file": job.validation_file,
            "estimated_finish": int(nxt) if nxt is not None else None,
            "integrations": job.integrations,
            "metadata": job.metadata,
            "method": {"type": job.method, job.method: {"hyperparameters": hp}},
            "user_provided_suffix": job.suffix,
        }

    # ------------------------------------------------------------------------ files
    def _files_create(self, req: _Request) -> dict[str, Any]:
        form = req.form()
        purpose = _field(form, "purpose")
        if purpose is None:
            raise _bad("Missing required parameter: 'purpose'.", "purpose")
        if purpose not in FILE_PURPOSES:
            raise _bad(f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'", "purpose")
        filename, data = form.get("file", (None, b""))
        if filename is None:
            raise _bad("Missing required parameter: 'file' (a file part with a name).", "file")
        if len(data) > MAX_FILE_BYTES:
            raise _bad(
                f"File is too large: {len(data):,} bytes; the Files API accepts up to 512 MB. "
                "Use the Uploads API for larger files.",
                "file",
            )
        if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
            raise _bad(
                f"Invalid file format for Fine-Tuning API. Must be .jsonl (got {filename!r}).",
                "file",
            )
        expires_at = None
        anchor = _field(form, "expires_after[anchor]")
        seconds = _field(form, "expires_after[seconds]")
        if anchor is not None or seconds is not None:
            if anchor != "created_at" or seconds is None or not seconds.isdigit():
                raise _bad("expires_after needs anchor 'created_at' and seconds.", "expires_after")
            if not 3600 <= int(seconds) <= 2_592_000:
                raise _bad("expires_after.seconds must be 3600-2592000.", "expires_after")
            expires_at = self._now() + int(seconds)
        return self._new_file(filename, purpose, data, expires_at).to_api()

    def _files_list(self, req: _Request) -> dict[str, Any]:
        order = req.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _bad("Invalid 'order': must be 'asc' or 'desc'.", "order")
        purpose = req.query.get("purpose")
        files = [f for f in self._state.files.values() if purpose in (None, f.purpose)]
        files.sort(key=lambda f: self._state.order[f.id], reverse=order == "desc")
        return _page(
            [f.to_api() for f in files],
            req,
            self._state.order,
            default_limit=10_000,
            max_limit=10_000,
            descending=order == "desc",
            ends=True,
        )

    def _files_retrieve(self, req: _Request, file_id: str) -> dict[str, Any]:
        return self._file(file_id).to_api()

    def _files_delete(self, req: _Request, file_id: str) -> dict[str, Any]:
        self._file(file_id)
        del self._state.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def _files_content(self, req: _Request, file_id: str) -> bytes:
        return self._file(file_id).data

    # ---------------------------------------------------------------------- uploads
    def _upload(self, upload_id: str, *, pending: bool = True) -> _Upload:
        up = self._state.uploads.get(upload_id)
        if up is None:
            raise _not_found(f"No such Upload object: {upload_id}", "upload_id")
        if pending and up.status != "pending":
            raise _bad(f"Upload {upload_id} is {up.status}, not pending.", "upload_id")
        return up

    def _uploads_create(self, req: _Request) -> dict[str, Any]:
        body = req.json()
        for name in ("bytes", "filename", "mime_type", "purpose"):
            if name not in body:
                raise _bad(f"Missing required parameter: '{name}'.", name)
        size, purpose = body["bytes"], body["purpose"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad("'bytes' must be a non-negative integer.", "bytes")
        if size > MAX_UPLOAD_BYTES:
            raise _bad("An Upload can hold at most 8 GB.", "bytes")
        if purpose not in FILE_PURPOSES:
            raise _bad(f"'{purpose}' is not a valid purpose.", "purpose")
        now = self._now()
        up = _Upload(
            self._ids.new("upload_"),
            str(body["filename"]),
            purpose,
            size,
            str(body["mime_type"]),
            now,
            now + UPLOAD_TTL_SECONDS,
        )
        self._state.uploads[up.id] = up
        return up.to_api()

    def _uploads_add_part(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        part = req.form().get("data")
        if part is None:
            raise _bad("Missing required parameter: 'data'.", "data")
        if len(part[1]) > MAX_PART_BYTES:
            raise _bad("A Part can hold at most 64 MB.", "data")
        part_id = self._ids.new("part_")
        up.parts[part_id] = part[1]
        return {
            "id": part_id,
            "object": "upload.part",
            "created_at": self._now(),
            "upload_id": up.id,
        }

    def _uploads_complete(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        body = req.json()
        part_ids = body.get("part_ids")
        if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
            raise _bad("'part_ids' must be a list of Part ids.", "part_ids")
        unknown = [p for p in part_ids if p not in up.parts]
        if unknown:
            raise _bad(f"Part {unknown[0]} does not belong to upload {up.id}.", "part_ids")
        total = sum(len(up.parts[p]) for p in part_ids)
        if total != up.size:
            raise _bad(
                f"The number of bytes uploaded ({total}) does not match the number "
                f"declared when the Upload was created ({up.size}).",
                "bytes",
            )
        md5 = body.get("md5")
        if md5 is not None:
            digest = hashlib.md5(usedforsecurity=False)
            for p in part_ids:  # part by part: no second copy of the whole file to hash
                digest.update(up.parts[p])
            if digest.hexdigest() != md5:
                raise _bad("The md5 checksum does not match the uploaded bytes.", "md5")
        data = b"".join(up.parts[p] for p in part_ids)
        up.parts.clear()  # the file holds the bytes now
        up.file = self._new_file(up.filename, up.purpose, data, None)
        up.status = "completed"
        return up.to_api()

    def _uploads_cancel(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        up.status = "cancelled"
        return up.to_api()

    # ------------------------------------------------------------------------- jobs
    def _jobs_create(self, req: _Request) -> dict[str, Any]:
        body = req.json()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("Missing required parameter: 'model'.", "model")
        method = _method_of(body)
        info = self._trainable(model, method)
        training = body.get("training_file")
        if not isinstance(training, str):
            raise _bad("Missing required parameter: 'training_file'.", "training_file")
        self._check_training_file(training, "training_file")
        validation = body.get("validation_file")
        if validation is not None:
            if not isinstance(validation, str):
                raise _bad("'validation_file' must be a file id.", "validation_file")
            self._check_training_file(validation, "validation_file")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
            raise _bad("'suffix' must be a string of 1 to 64 characters.", "suffix")
        seed = body.get("seed")
        if seed is None:
            seed = int(_unit(self.seed, "job-seed", len(self._state.jobs)) * 2_147_483_647)
        elif not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
            raise _bad("'seed' must be an integer between 0 and 2147483647.", "seed")
        metadata = _check_metadata(body.get("metadata"))
        integrations = _check_integrations(body.get("integrations"))
        requested = _hyperparameters(body, method)
        job_id = self._ids.new("ftjob-")
        job = _Job(
            id=job_id,
            short_id=self._ids.new("", 8),
            created_at=self.clock.now(),
            model=info.name if not model.startswith("ft:") else model,
            base=info,
            training_file=training,
            validation_file=validation,
            suffix=suffix,
            seed=seed,
            metadata=metadata,
            integrations=integrations,
            method=method,
            requested=requested,
        )
        self._state.jobs[job.id] = job
        self._state.remember(job.id)
        self._engine.start(job)
        return self._job_api(job)

    def _trainable(self, model: str, method: str) -> ModelInfo:
        try:
            info = self.catalog.get(model)
        except UsageError:
            raise _bad(
                f"Model {model} is not available for fine-tuning or does not exist.",
                "model",
                "model_not_available",
            ) from None
        if method not in info.methods:
            raise _bad(
                f"Model {info.name} does not support the '{method}' fine-tuning method "
                f"(supported: {', '.join(info.methods)}).",
                "method",
            )
        today = _epoch_date(self.clock.now())
        if info.fine_tuning_ends is not None and today > info.fine_tuning_ends:
            raise _bad(
                f"Fine-tuning {info.name} ended on {info.fine_tuning_ends.isoformat()}.",
                "model",
                "model_not_available",
            )
        return info

    def _check_training_file(self, file_id: str, param: str) -> None:
        f = self._state.files.get(file_id)
        if f is None:
            raise _bad(f"invalid {param}: {file_id}", param)
        if f.purpose != "fine-tune":
            raise _bad(
                f"File {file_id} has purpose '{f.purpose}'; upload fine-tuning data with "
                "purpose 'fine-tune'.",
                param,
            )

    def _jobs_list(self, req: _Request) -> dict[str, Any]:
        wanted = {k[9:-1]: v for k, v in req.query.items() if re.fullmatch(r"metadata\[.+\]", k)}
        null_only = req.query.get("metadata") == "null"
        jobs = []
        for job in self._state.jobs.values():
            if null_only and job.metadata:
                continue
            meta = job.metadata or {}
            if all(meta.get(k) == v for k, v in wanted.items()):
                jobs.append(job)
        jobs.sort(key=lambda j: self._state.order[j.id], reverse=True)
        return _page(
            [self._job_api(j) for j in jobs],
            req,
            self._state.order,
            default_limit=20,
            max_limit=100,
        )

    def _jobs_retrieve(self, req: _Request, job_id: str) -> dict[str, Any]:
        return self._job_api(self._job(job_id))

    def _jobs_cancel(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.terminal:
            raise _bad(f"Job {job_id} has already finished with status {job.status}.", None)
        self._engine.cancel(job, self.clock.now())
        return self._job_api(job)

    def _jobs_pause(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.status != "running":
            raise _bad(f"Job {job_id} is {job.status}; only a running job can be paused.")
        self._engine.pause(job, self.clock.now())
        return self._job_api(job)

    def _jobs_resume(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.status != "paused":
            raise _bad(f"Job {job_id} is {job.status}; only a paused job can be resumed.")
        self._engine.resume(job, self.clock.now())
        return self._job_api(job)

    def _jobs_events(self, req: _Request, job_id: str) -> dict[str, Any]:
        events = [e.to_api() for e in reversed(self._job(job_id).events)]
        return _page(events, req, self._state.order, default_limit=20, max_limit=100)

    def _jobs_checkpoints(self, req: _Request, job_id: str) -> dict[str, Any]:
        ckpts = [c.to_api() for c in reversed(self._job(job_id).checkpoints)]
        return _page(ckpts, req, self._state.order, default_limit=10, max_limit=100, ends=True)

    # ----------------------------------------------------------------------- models
    def _base_models(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for info in self.catalog:
            created = _snapshot_time(info.name)
            shutdown = info.shutdown_date.isoformat() if info.shutdown_date else None
            for name in (info.name, *info.aliases):
                out[name] = {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "system",
                    "shutdown_date": shutdown,
                }
        return out

    def _models_list(self, req: _Request) -> dict[str, Any]:
        data = list(self._base_models().values())
        data += [m.to_api() for m in self._state.models.values()]
        return {"object": "list", "data": data}

    def _models_retrieve(self, req: _Request, model: str) -> dict[str, Any]:
        ft = self._state.models.get(model)
        if ft is not None:
            return ft.to_api()
        base = self._base_models().get(model)
        if base is None:
            raise _model_not_found(model)
        return base

    def _models_delete(self, req: _Request, model: str) -> dict[str, Any]:
        if model in self._state.models:
            del self._state.models[model]
            return {"id": model, "object": "model", "deleted": True}
        if model in self._base_models():
            raise _ApiError(
                403,
                f"You have insufficient permissions to delete {model}: only fine-tuned "
                "models owned by your organization can be deleted.",
                code="insufficient_permissions",
            )
        raise _model_not_found(model)

    # ------------------------------------------------------------------------- chat
    def _chat_target(self, model: str) -> tuple[str, ModelInfo, Answerer | None]:
        """The served name, base model and (for fine-tunes) the answerer of ``model``."""
        ft = self._state.models.get(model)
        if ft is not None:
            return model, ft.base, ft.answerer
        job_id = self._state.checkpoint_models.get(model)
        if job_id is not None:
            job = self._state.jobs[job_id]
            return model, job.base, self._engine.answerer(job)
        if model in self._base_models():
            info = self.catalog.get(model)
            return info.name, info, None
        raise _model_not_found(model)

    def _chat_create(self, req: _Request) -> dict[str, Any] | _EventStream:
        body = req.json()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("Missing required parameter: 'model'.", "model")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and "role" in m for m in messages)
        ):
            raise _bad("'messages' must be a non-empty list of messages.", "messages")
        served, info, answerer = self._chat_target(model)
        opts = _ChatOptions.parse(body)
        question = last_user_text(messages)
        variant = 0
        if opts.temperature > 0:
            key = orjson.dumps([opts.seed, messages], option=orjson.OPT_SORT_KEYS)
            variant = key_hash(key.decode("utf-8"))
        if answerer is not None:
            ans = answerer.answer(question, variant=variant)
        else:
            task = answer_task(messages, variant)
            ans = (
                Answer(task, "task")
                if task is not None
                else Answer(generic_answer(question, variant=variant), "generic")
            )
        counter = self._counter(info.name)
        text, finish, ids = _generate(ans.text, opts.stop, opts.max_tokens, counter)
        prompt_tokens = counter.count_messages(messages)
        logprobs = None
        if opts.logprobs:
            logprobs = {
                "content": _logprobs(counter, ids, ans, opts.top_logprobs),
                "refusal": None,
            }
        completion = {
            "id": self._ids.new("chatcmpl-", 29),
            "object": "chat.completion",
            "created": self._now(),
            "model": served,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(ids),
                "total_tokens": prompt_tokens + len(ids),
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_offline",
        }
        if opts.stream:
            return _event_stream(completion, opts.include_usage)
        return completion


# ======================================================================= route helpers


def _strip_v1(path: str) -> str:
    path = "/" + path.lstrip("/")
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:] or "/"
    return path.rstrip("/") or "/"


def _maybe_json(headers: Mapping[str, str], body: bytes) -> Any:
    if body and headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return None
    return None


def _check_auth(headers: Mapping[str, str]) -> None:
    auth = headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )


_FAULT_TEXT = {
    429: ("Rate limit reached for requests (injected by the offline backend).", "requests"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    ),
    502: ("Bad gateway.", "server_error"),
    503: ("The server is overloaded or not ready yet.", "server_error"),
    504: ("Gateway timeout.", "server_error"),
}


def _fault_response(fault: _Fault, rid: str) -> FakeResponse:
    headers = {"x-request-id": rid, "content-type": "application/json"}
    if fault.timeout:
        return FakeResponse(
            0,
            headers,
            b"",
            stream_error="The read operation timed out (injected by the offline backend).",
            latency=fault.latency,
            timeout=True,
        )
    if fault.drop:
        return FakeResponse(
            0,
            headers,
            b"",
            stream_error="Server disconnected without sending a response.",
            latency=fault.latency,
        )
    status = fault.status or 500
    message, kind = _FAULT_TEXT.get(
        status, (f"Injected HTTP {status} from the offline backend.", "invalid_request_error")
    )
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
        headers["retry-after-ms"] = f"{fault.retry_after * 1000:g}"
    code = "rate_limit_exceeded" if status == 429 else None
    err = _ApiError(status, message, type=kind, code=code)
    return FakeResponse(status, headers, err.body(), latency=fault.latency)


def _model_not_found(model: str) -> _ApiError:
    return _not_found(
        f"The model `{model}` does not exist or you do not have access to it.",
        "model",
        "model_not_found",
    )


def _snapshot_time(name: str) -> int:
    m = re.search(r"(\d{4})-(\d{2})-(\d{2})$", name)
    if m is None:
        return 1_700_000_000
    day = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.timezone.utc)
    return int(day.timestamp())


def _method_of(body: Mapping[str, Any]) -> Literal["supervised", "dpo"]:
    method = body.get("method")
    if method is None:
        return "supervised"
    if not isinstance(method, dict):
        raise _bad("'method' must be an object like {'type': 'supervised'}.", "method")
    kind = method.get("type")
    if kind == "reinforcement":
        raise _bad("Reinforcement fine-tuning is not supported by the offline backend.", "method")
    if kind not in ("supervised", "dpo"):
        raise _bad("'method.type' must be 'supervised' or 'dpo'.", "method.type")
    return cast(Literal["supervised", "dpo"], kind)


def _hyperparameters(body: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The requested hyperparameters ("auto" where not given), range-checked like OpenAI."""
    source, prefix = body.get("hyperparameters"), "hyperparameters"
    m = body.get("method")
    if isinstance(m, dict) and isinstance(m.get(method), dict):
        inner = m[method].get("hyperparameters")
        if inner is not None:
            source, prefix = inner, f"method.{method}.hyperparameters"
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise _bad(f"'{prefix}' must be an object.", prefix)
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[Any], bool]] = {
        "n_epochs": lambda v: _is_int(v) and 1 <= v <= 50,
        "batch_size": lambda v: _is_int(v) and 1 <= v <= 256,
        "learning_rate_multiplier": lambda v: _is_num(v) and v > 0,
    }
    if method == "dpo":
        checks["beta"] = lambda v: _is_num(v) and 0 < v <= 2
    ranges = {
        "n_epochs": "an integer from 1 to 50",
        "batch_size": "an integer from 1 to 256",
        "learning_rate_multiplier": "a number greater than 0",
        "beta": "a number greater than 0 and at most 2",
    }
    for key, ok in checks.items():
        value = source.get(key, "auto")
        if value != "auto" and not ok(value):
            raise _bad(
                f"Invalid {prefix}.{key}: {value!r}; expected 'auto' or {ranges[key]}.",
                f"{prefix}.{key}",
            )
        out[key] = value
    unknown = set(source) - set(checks)
    if unknown:
        raise _bad(f"Unknown hyperparameter(s) {sorted(unknown)}.", prefix)
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_metadata(metadata: object) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad("'metadata' must be an object of string keys and values.", "metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise _bad(f"'metadata' can hold at most {MAX_METADATA_PAIRS} pairs.", "metadata")
    for k, v in metadata.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise _bad(
                "metadata keys are strings of at most 64 characters, values strings of at "
                "most 512.",
                "metadata",
            )
    return dict(metadata)


def _check_integrations(integrations: object) -> list[dict[str, Any]] | None:
    if integrations is None:
        return None
    if not isinstance(integrations, list):
        raise _bad("'integrations' must be a list.", "integrations")
    out = []
    for i, item in enumerate(integrations):
        if (
            not isinstance(item, dict)
            or item.get("type") != "wandb"
            or not isinstance(item.get("wandb"), dict)
            or not isinstance(item["wandb"].get("project"), str)
        ):
            raise _bad(
                f"integrations[{i}] must be {{'type': 'wandb', 'wandb': {{'project': ...}}}}.",
                "integrations",
            )
        out.append({"type": "wandb", "wandb": dict(item["wandb"])})
    return out


@dataclass(frozen=True)
class _ChatOptions:
    temperature: float
    seed: int | None
    stop: tuple[str, ...]
    max_tokens: int | None
    logprobs: bool
    top_logprobs: int

    stream: bool = False
    include_usage: bool = False

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> _ChatOptions:
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _bad("'stream' must be a boolean.", "stream")
        stream_options = body.get("stream_options")
        if stream_options is not None and (not stream or not isinstance(stream_options, dict)):
            raise _bad("'stream_options' is only allowed with 'stream': true.", "stream_options")
        n = body.get("n")
        if n not in (None, 1):
            raise _bad("The offline backend answers with one choice only (n=1).", "n")
        temperature = body.get("temperature")
        if temperature is None:
            temperature = 1.0
        if not _is_num(temperature) or not 0 <= temperature <= 2:
            raise _bad("'temperature' must be a number from 0 to 2.", "temperature")
        stop = body.get("stop")
        stops: tuple[str, ...]
        if stop is None:
            stops = ()
        elif isinstance(stop, str):
            stops = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
            stops = tuple(stop)
        else:
            raise _bad("'stop' must be a string or a list of up to 4 strings.", "stop")
        max_tokens = body.get("max_completion_tokens")
        name = "max_completion_tokens"
        if max_tokens is None:
            max_tokens, name = body.get("max_tokens"), "max_tokens"
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            raise _bad(f"'{name}' must be a positive integer.", name)
        logprobs = bool(body.get("logprobs"))
        top = body.get("top_logprobs")
        if top is not None:
            if not _is_int(top) or not 0 <= top <= 20:
                raise _bad("'top_logprobs' must be an integer from 0 to 20.", "top_logprobs")
            if not logprobs:
                raise _bad("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs")
        seed = body.get("seed")
        return cls(
            temperature=float(temperature),
            seed=seed if _is_int(seed) else None,
            stop=stops,
            max_tokens=max_tokens,
            logprobs=logprobs,
            top_logprobs=top or 0,
            stream=bool(stream),
            include_usage=bool((stream_options or {}).get("include_usage")),
        )


class _EventStream(bytes):
    """A handler's result sent as server-sent events (``text/event-stream``)."""


def _event_stream(completion: dict[str, Any], include_usage: bool) -> _EventStream:
    """A chat completion as the API streams it: role, content pieces, finish, usage, [DONE].

    Content arrives word by word (with its spacing); with ``logprobs`` it arrives in one
    piece carrying them. With ``include_usage`` a last chunk has no choices and the usage.
    """
    choice = completion["choices"][0]
    text: str = choice["message"]["content"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        body = {
            **base,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
        }
        return b"data: " + _dumps(body) + b"\n\n"

    parts = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if choice["logprobs"] is not None:
        parts.append(chunk({"content": text}, logprobs=choice["logprobs"]))
    else:
        parts.extend(chunk({"content": piece}) for piece in re.findall(r"\s*\S+\s*", text))
    parts.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        usage = {**base, "choices": [], "usage": completion["usage"]}
        parts.append(b"data: " + _dumps(usage) + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return _EventStream(b"".join(parts))


def _generate(
    full: str, stops: tuple[str, ...], max_tokens: int | None, counter: TokenCounter
) -> tuple[str, Literal["stop", "length"], list[int]]:
    """Cut ``full`` where a model would stop: the first stop string, or ``max_tokens``."""
    cut = len(full)
    for s in stops:
        i = full.find(s) if s else -1
        if 0 <= i < cut:
            cut = i
    text = full[:cut]
    ids = counter.encoding.encode_ordinary(text)
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        return counter.encoding.decode(ids), "length", ids
    return text, "stop", ids


_MIN_LOGPROB = -9999.0  # what OpenAI reports for a token with (numerically) no chance


def _ln(p: float) -> float:
    return math.log(p) if p > 0 else _MIN_LOGPROB


def _token_entry(raw: bytes, logprob: float) -> dict[str, Any]:
    return {"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": logprob}


def _label_tops(enc: Any, ans: Answer) -> dict[int, float]:
    """First token of each label -> log probability (labels sharing a token add up)."""
    mass: dict[int, float] = {}
    for label, p in ans.probabilities:
        ids = enc.encode_ordinary(label)
        if ids:
            mass[ids[0]] = mass.get(ids[0], 0.0) + p
    return {tid: _ln(p) for tid, p in mass.items()}


def _logprobs(counter: TokenCounter, ids: list[int], ans: Answer, top: int) -> list[dict[str, Any]]:
    """Deterministic per-token log probabilities: confident on trained answers, less elsewhere.

    A classifier's label (kind ``label``) gets the log of its probability on its first
    token, and its top alternatives are the other labels with theirs, so a client can
    read calibrated class probabilities off ``top_logprobs``; the label's later tokens
    are near-certain.
    """
    enc = counter.encoding
    spread = {"exact": 0.01, "neighbour": 0.2}.get(ans.kind, 1.5)
    offset = 0.0 if ans.kind in ("exact", "neighbour") else 0.3
    labels = _label_tops(enc, ans) if ans.kind == "label" else {}
    out = []
    for k, tid in enumerate(ids):
        raw = enc.decode_single_token_bytes(tid)
        if labels:
            lp = labels.get(tid, _MIN_LOGPROB) if k == 0 else -1e-4 * (1 + _unit(ans.text, k))
            entry = _token_entry(raw, lp)
            tops = [dict(entry)]
            if k == 0:
                others = sorted((v, t) for t, v in labels.items() if t != tid)
                tops += [_token_entry(enc.decode_single_token_bytes(t), v) for v, t in others[::-1]]
            floor = min(e["logprob"] for e in tops)
            lp = min(lp, floor)  # filler alternatives rank below every label
        else:
            lp = -(offset + spread * _unit(ans.kind, ans.text, k))
            entry = _token_entry(raw, lp)
            tops = [dict(entry)]
        seen = {bytes(e["bytes"]) for e in tops}
        alt = tid
        while len(tops) < top:
            alt += 1
            try:
                alt_raw = enc.decode_single_token_bytes(alt)
            except KeyError:
                if alt > tid + 1000:
                    break
                continue
            if alt_raw in seen:
                continue
            tops.append(
                {
                    "token": alt_raw.decode("utf-8", "replace"),
                    "bytes": list(alt_raw),
                    "logprob": lp - 1.5 - len(tops) - _unit(alt, k),
                }
            )
        out.append({**entry, "top_logprobs": tops[:top]})
    return out
