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
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL_STATUSES",
    "Backend",
    "ChatRequest",
    "ChatResponse",
    "Checkpoint",
    "FileInfo",
    "JobEvent",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "ListsModels",
    "ServedModel",
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

    Optional attributes, read with ``getattr`` (the defaults in brackets):

    * ``supports_metadata`` (True): False when its jobs carry no metadata;
      :class:`~finetune_qa.jobs.FineTuneJob` then finds a job after a dropped connection
      by its model, files and suffix instead of by an idempotency token, and asks
      ``matches_request(job, request)`` (if defined) whether the job's echoed settings
      are the request's;
    * ``provider_option_names`` (none): the keys it accepts in
      ``JobRequest.provider_options``;
    * ``validation_provider`` ("openai"): whose data rules the validator applies before
      upload ("together" for Together AI);
    * ``check_request(request, training_path=..., validation_path=...)``: a check before
      anything is uploaded (limits, options), raising ``UsageError``.

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
