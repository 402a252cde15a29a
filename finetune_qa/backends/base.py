"""The backend seam: what the lifecycle needs from a trainer and server, and its data types.

A backend uploads files, runs fine-tuning jobs and answers chat requests. The
:class:`Backend` protocol is all that :class:`~finetune_qa.jobs.FineTuneJob` and
:class:`~finetune_qa.chat.ChatModel` use, so another provider plugs in by implementing
it and registering a factory with :func:`~finetune_qa.backends.register_backend`.

The types here are the provider-neutral shapes the library passes around; each keeps
the provider's own record in ``raw`` for anything they do not name.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._limits import MAX_EPOCHS

__all__ = [
    "DEFAULT_MAX_EPOCHS",
    "DEFAULT_POLL_INTERVAL",
    "TERMINAL_STATUSES",
    "Backend",
    "BackendDefaults",
    "ChatRequest",
    "ChatResponse",
    "Checkpoint",
    "ChecksRequests",
    "DeclaresMaxEpochs",
    "DeclaresMetadata",
    "DeclaresPollInterval",
    "DeclaresProviderOptions",
    "DeclaresValidationRules",
    "EpochLimits",
    "FileInfo",
    "HasClock",
    "HasEndpoint",
    "JobEvent",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "ListsModels",
    "MakesLoopClients",
    "MatchesRequests",
    "ReportsModelLimits",
    "ReportsTrainingMetrics",
    "ServedModel",
    "UploadsPaths",
    "Usage",
]

JobStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]
"""Job statuses, as OpenAI names them; other providers' statuses are mapped onto these."""

TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""Statuses a job never leaves."""

_LOOSE = ConfigDict(extra="ignore", frozen=True)


class FileInfo(BaseModel):
    """An uploaded file."""

    model_config = _LOOSE

    id: str = Field(description="Provider file id, e.g. 'file-abc123'.")
    filename: str = Field(description="Name given at upload.")
    bytes: int = Field(description="Size in bytes.")
    purpose: str = Field(description="What the file is for, e.g. 'fine-tune'.")
    created_at: int = Field(description="Unix time of the upload.")
    status: str | None = Field(default=None, description="Processing status, if reported.")


class JobRequest(BaseModel):
    """Everything needed to create a fine-tuning job, validated before any request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Base model (or a fine-tune to continue from).")
    training_file: str = Field(description="File id of the training JSONL.")
    validation_file: str | None = Field(
        default=None, description="File id of the validation JSONL."
    )
    method: Literal["supervised", "dpo"] = Field(
        default="supervised", description="Training method."
    )
    n_epochs: int | Literal["auto"] = Field(default="auto", description="Epochs, 1-50.")
    batch_size: int | Literal["auto"] = Field(default="auto", description="Batch size, 1-256.")
    learning_rate_multiplier: float | Literal["auto"] = Field(
        default="auto", description="Learning-rate multiplier, > 0."
    )
    beta: float | Literal["auto"] | None = Field(default=None, description="DPO beta, in (0, 2].")
    suffix: str | None = Field(default=None, description="Up to 64 characters in the model name.")
    seed: int | None = Field(default=None, description="Seed, 0-2147483647.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Up to 16 key/value pairs.")
    integrations: list[dict[str, Any]] = Field(
        default_factory=list, description="e.g. [{'type': 'wandb', 'wandb': {'project': 'x'}}]."
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Provider-specific options the common fields do not cover, e.g. Together's "
            "{'lora': True, 'lora_r': 16, 'learning_rate': 2e-5}; each backend names the keys "
            "it takes in its provider_option_names."
        ),
    )


class JobInfo(BaseModel):
    """A fine-tuning job as the provider last reported it."""

    model_config = _LOOSE

    id: str = Field(description="Provider job id.")
    status: JobStatus = Field(description="Status, mapped onto OpenAI's names.")
    provider_status: str = Field(description="The provider's own status string.")
    model: str = Field(description="Base model.")
    fine_tuned_model: str | None = Field(default=None, description="Set once the job succeeded.")
    training_file: str = Field(description="Training file id.")
    validation_file: str | None = Field(default=None, description="Validation file id.")
    created_at: int = Field(description="Unix time of creation.")
    finished_at: int | None = Field(default=None, description="Unix time the job ended.")
    trained_tokens: int | None = Field(default=None, description="Billed tokens, once known.")
    result_files: list[str] = Field(default_factory=list, description="Result file ids.")
    error_code: str | None = Field(default=None, description="Why it failed (provider code).")
    error_message: str | None = Field(default=None, description="Why it failed, in words.")
    error_param: str | None = Field(default=None, description="Which input was at fault.")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Metadata given at creation."
    )
    estimated_finish: int | None = Field(default=None, description="Provider's estimate, if any.")
    raw: dict[str, Any] = Field(default_factory=dict, description="The provider's full record.")

    @property
    def done(self) -> bool:
        """True once the job is succeeded, failed or cancelled."""
        return self.status in TERMINAL_STATUSES


class JobEvent(BaseModel):
    """One event of a job (a message, or metrics for a training step)."""

    model_config = _LOOSE

    id: str = Field(description="Event id.")
    created_at: int = Field(description="Unix time.")
    level: str = Field(description="info, warn or error.")
    message: str = Field(description="Human-readable text.")
    type: str = Field(default="message", description="'message' or 'metrics'.")
    data: dict[str, Any] | None = Field(default=None, description="Metrics, for metrics events.")


class Checkpoint(BaseModel):
    """A model checkpoint saved during training."""

    model_config = _LOOSE

    id: str = Field(description="Checkpoint id.")
    created_at: int = Field(description="Unix time.")
    fine_tuned_model_checkpoint: str = Field(description="Model name to query it by.")
    step_number: int = Field(description="Training step.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Metrics at that step.")


class ChatRequest(BaseModel):
    """One chat completion request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Model name.")
    messages: list[dict[str, Any]] = Field(description="Chat messages.")
    temperature: float | None = Field(default=None, description="0-2.")
    max_tokens: int | None = Field(default=None, description="Cap on generated tokens.")
    stop: list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    logprobs: bool = Field(default=False, description="Return token log-probabilities.")
    top_logprobs: int | None = Field(default=None, description="Alternatives per token, 0-20.")


class Usage(BaseModel):
    """Token usage of one request."""

    model_config = _LOOSE

    prompt_tokens: int = Field(default=0, description="Tokens in the request.")
    completion_tokens: int = Field(default=0, description="Tokens generated.")
    total_tokens: int = Field(default=0, description="Both.")


class ChatResponse(BaseModel):
    """A chat completion: the text and why it ended."""

    model_config = _LOOSE

    id: str = Field(description="Completion id.")
    model: str = Field(description="Model that answered.")
    content: str = Field(description="Generated text (stop sequences are never included).")
    finish_reason: str = Field(description="stop, length, content_filter, ...")
    usage: Usage = Field(default_factory=Usage, description="Token usage.")
    logprobs: list[dict[str, Any]] | None = Field(
        default=None, description="Per-token log-probabilities, when asked for."
    )
    request_id: str | None = Field(default=None, description="Provider request id.")


@runtime_checkable
class Backend(Protocol):
    """What a trainer/server must do for the lifecycle. Every method may raise ``BackendError``.

    Lists are returned newest first, as the providers' APIs do; ``FineTuneJob`` puts
    events in chronological order itself.
    """

    name: str
    """Registry name of the backend, e.g. 'openai'.

    Capabilities beyond these methods are optional, each declared by a protocol below
    and checked with ``isinstance`` (a backend without one gets the default in
    brackets): :class:`HasClock` (the real clock), :class:`DeclaresMetadata` (jobs carry
    metadata), :class:`DeclaresProviderOptions` (none), :class:`DeclaresValidationRules`
    (OpenAI's), :class:`DeclaresMaxEpochs` (50), :class:`DeclaresPollInterval` (5 s),
    :class:`ChecksRequests`, :class:`MatchesRequests`, :class:`UploadsPaths`,
    :class:`ReportsTrainingMetrics`, :class:`ReportsModelLimits`,
    :class:`MakesLoopClients`, :class:`ListsModels`, and :class:`HasEndpoint` (which
    account a journal record belongs to). :class:`BackendDefaults` gives a backend
    class the defaults to override.

    State-creating calls (uploads, job creation) must not be retried by the client
    underneath: FineTuneJob retries them itself, after looking for what a lost request
    may have created.
    """

    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        """Upload ``data`` as a file."""
        ...

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        """Files, newest first."""
        ...

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a file (results files included)."""
        ...

    def create_job(self, request: JobRequest) -> JobInfo:
        """Start a fine-tuning job."""
        ...

    def retrieve_job(self, job_id: str) -> JobInfo:
        """The job's current state."""
        ...

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        """Jobs, newest first, optionally only those whose metadata matches."""
        ...

    def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel a job."""
        ...

    def pause_job(self, job_id: str) -> JobInfo:
        """Pause a running job."""
        ...

    def resume_job(self, job_id: str) -> JobInfo:
        """Resume a paused job."""
        ...

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        """One page of events, newest first; ``after`` is an event id (older than it)."""
        ...

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints, newest first."""
        ...

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion."""
        ...

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion, asynchronously."""
        ...


class ServedModel(BaseModel):
    """A model the provider serves to this account, as its models API lists it."""

    model_config = _LOOSE

    id: str = Field(description="The name to query it by.")
    created_at: int = Field(description="Unix time the model was created.")
    owned_by: str | None = Field(default=None, description="Owner: 'system' or your org.")
    fine_tuned: bool = Field(description="True for a fine-tune this account made.")
    shutdown_date: dt.date | None = Field(
        default=None, description="Day it stops serving, when the provider says."
    )
    raw: dict[str, Any] = Field(default_factory=dict, description="The provider's full record.")


@runtime_checkable
class ListsModels(Protocol):
    """An optional capability: a backend with a models API that lists what it serves.

    Not part of :class:`Backend`: code that wants it checks
    ``isinstance(backend, ListsModels)`` and does without it otherwise (the
    :func:`~finetune_qa.shutdown.inventory` of fine-tunes then reads the jobs API only).
    :class:`~finetune_qa.backends.OpenAIBackend` (and so the offline backend) has it.
    """

    def list_models(self) -> list[ServedModel]:
        """Every model the account can query: base models and its fine-tunes."""
        ...


# ------------------------------------------------------------------ optional capabilities
DEFAULT_MAX_EPOCHS = MAX_EPOCHS
"""Epochs a backend takes unless it declares otherwise (``finetune_qa._limits.MAX_EPOCHS``)."""

DEFAULT_POLL_INTERVAL = 5.0
"""Seconds between polls of a job unless the backend declares otherwise."""


@runtime_checkable
class HasClock(Protocol):
    """A backend with a clock of its own: waits and timeouts are measured on it.

    The offline backend's is virtual (its jobs progress as it sleeps, nothing actually
    waits); retries, polling and date checks go through it.
    """

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this backend's clock."""
        ...

    def monotonic(self) -> float:
        """Seconds on this backend's clock (a Unix time for the offline backend's)."""
        ...


@runtime_checkable
class DeclaresMetadata(Protocol):
    """Whether the backend's jobs carry metadata (and so an idempotency token).

    When False, :class:`~finetune_qa.jobs.FineTuneJob` finds a job after a dropped
    connection by its model, files and suffix, and asks :class:`MatchesRequests` (if
    the backend has it) whether the job's echoed settings are the request's.
    """

    supports_metadata: bool


@runtime_checkable
class DeclaresProviderOptions(Protocol):
    """The keys a backend accepts in ``JobRequest.provider_options``."""

    provider_option_names: frozenset[str]


@runtime_checkable
class DeclaresValidationRules(Protocol):
    """Whose data rules the validator applies before upload ("together", "openai")."""

    validation_provider: str


@runtime_checkable
class DeclaresMaxEpochs(Protocol):
    """The most epochs the backend's jobs take (the local trainer takes more than 50)."""

    max_epochs: int


@runtime_checkable
class DeclaresPollInterval(Protocol):
    """Seconds between polls when following one of its jobs."""

    poll_interval: float


@runtime_checkable
class ChecksRequests(Protocol):
    """A check of a request against the provider's own limits, before anything is uploaded."""

    def check_request(
        self,
        request: JobRequest,
        *,
        training_path: str | os.PathLike[str] | None = None,
        validation_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Raise ``UsageError`` for a setting or example the provider would refuse."""
        ...


@runtime_checkable
class MatchesRequests(Protocol):
    """For jobs without metadata: whether a job's echoed settings are a request's."""

    def matches_request(self, job: JobInfo, request: JobRequest) -> bool:
        """True when ``job`` may have been made by ``request``."""
        ...


@runtime_checkable
class UploadsPaths(Protocol):
    """Uploads of a large file from disk, in parts, without reading it into memory."""

    def upload_path(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str,
        purpose: str = "fine-tune",
        parallel: int = 4,
    ) -> FileInfo:
        """Upload the file at ``path`` as ``filename``."""
        ...


@runtime_checkable
class ReportsTrainingMetrics(Protocol):
    """A metrics endpoint: per-step rows (``step`` and metric names to values)."""

    def training_metrics(self, job_id: str) -> list[dict[str, float | None]]:
        """The job's metrics, one row per step and source."""
        ...


@runtime_checkable
class EpochLimits(Protocol):
    """What :class:`ReportsModelLimits` gives back, at least."""

    max_num_epochs: int


@runtime_checkable
class ReportsModelLimits(Protocol):
    """The provider's limits for fine-tuning one model."""

    def model_limits(self, model: str) -> EpochLimits:
        """The limits for ``model``; ``NotFoundError`` when it is not fine-tunable."""
        ...


@runtime_checkable
class MakesLoopClients(Protocol):
    """A backend whose ``achat`` uses an async client made for the running event loop.

    ``ask_many`` then runs its questions as coroutines on a fresh loop (no thread per
    request) and closes that loop's client at the end.
    """

    @property
    def async_per_loop(self) -> bool:
        """True when ``achat`` uses a client made for the running event loop."""
        ...

    async def aclose_loop_client(self) -> None:
        """Close the async client made for the running event loop, if any."""
        ...


@runtime_checkable
class HasEndpoint(Protocol):
    """Which provider account or server the backend talks to, for journal records.

    A label such as ``"openai:https://api.openai.com/v1/"``; never a key. A backend
    without it is labelled with its name.
    """

    @property
    def endpoint(self) -> str:
        """The label of the account or server (no key, no credentials in the URL)."""
        ...


class BackendDefaults:
    """Defaults for the optional capabilities, for a backend class to inherit and override.

    A backend that inherits this has every declared attribute above with the value a
    backend without it gets. The clock is not among them: only a backend with a clock of
    its own is a :class:`HasClock` (dates are judged by it, so the real monotonic clock
    would not do).
    """

    supports_metadata: bool = True
    """Jobs carry metadata (an idempotency token finds them again)."""
    provider_option_names: frozenset[str] = frozenset()
    """No provider-specific options."""
    validation_provider: str = "openai"
    """Validated with OpenAI's format rules."""
    max_epochs: int = DEFAULT_MAX_EPOCHS
    """The most epochs a job takes."""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    """Seconds between polls when following a job."""


def backend_sleep(backend: object) -> Callable[[float], None]:
    """The backend's ``sleep`` (:class:`HasClock`), else :func:`time.sleep`."""
    return backend.sleep if isinstance(backend, HasClock) else time.sleep


def backend_clock(backend: object) -> Callable[[], float]:
    """The backend's ``monotonic`` (:class:`HasClock`), else :func:`time.monotonic`."""
    return backend.monotonic if isinstance(backend, HasClock) else time.monotonic


def supports_metadata(backend: object) -> bool:
    """Whether the backend's jobs carry metadata (True unless it declares otherwise)."""
    return backend.supports_metadata if isinstance(backend, DeclaresMetadata) else True


def provider_option_names(backend: object) -> frozenset[str]:
    """The keys the backend takes in ``JobRequest.provider_options`` (none by default)."""
    if isinstance(backend, DeclaresProviderOptions):
        return frozenset(backend.provider_option_names)
    return frozenset()


def validation_provider(backend: object) -> str | None:
    """Whose format rules to validate with (None: the validator's default, OpenAI's)."""
    return backend.validation_provider if isinstance(backend, DeclaresValidationRules) else None


def max_epochs(backend: object) -> int:
    """The most epochs the backend's jobs take (50 unless it declares otherwise)."""
    return int(backend.max_epochs) if isinstance(backend, DeclaresMaxEpochs) else DEFAULT_MAX_EPOCHS


def poll_interval(backend: object) -> float:
    """Seconds between polls of the backend's jobs (5 unless it declares otherwise)."""
    if isinstance(backend, DeclaresPollInterval):
        return float(backend.poll_interval)
    return DEFAULT_POLL_INTERVAL


def endpoint(backend: Backend) -> str:
    """Which provider account or server a record belongs to; never a key."""
    return backend.endpoint if isinstance(backend, HasEndpoint) else backend.name
