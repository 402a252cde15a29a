"""OpenAIBackend: the lifecycle over any client of the official ``openai`` package.

Pass the client you already configured — ``openai.OpenAI``, ``openai.AzureOpenAI``,
or one pointed at an OpenAI-compatible server with ``base_url`` (vLLM, Ollama, ...) —
and the backend calls only its typed methods, so proxies, retries, TLS and custom
HTTP clients stay yours. It works with openai 2.x (httpx) and 3.x (httpx2); no HTTP
library types appear in this module's signatures.

Errors from the client are translated into :mod:`finetune_qa.exceptions` (with the
request id, status, code and param kept, and anything key-like redacted).

Requests that finetune_qa retries itself with its one policy (:mod:`finetune_qa._retry`)
go through a copy of the client with the SDK's retries off
(``client.with_options(max_retries=0)``): those that create something (file uploads,
the Uploads API, fine-tuning jobs), which the SDK would resend after a dropped
connection or a timeout with no idempotency key (a resent ``POST /fine_tuning/jobs``
can start a second, billed job; :class:`~finetune_qa.jobs.FineTuneJob` retries them
after looking for what the lost request may have created), and chat completions
(:class:`~finetune_qa.chat.ChatModel` retries them, honouring ``Retry-After`` and never
retrying a quota error). Everything else keeps the client's own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, cast

from finetune_qa.backends._errors import retry_after, sentence, status_error_class
from finetune_qa.backends._logscrub import protect_secrets
from finetune_qa.backends._loops import LoopClients
from finetune_qa.backends.base import (
    BackendDefaults,
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    JobStatus,
    ServedModel,
    Usage,
)
from finetune_qa.exceptions import (
    APIConnectionError,
    APITimeoutError,
    BackendError,
    RateLimitError,
)

if TYPE_CHECKING:
    import openai

__all__ = ["DEFAULT_PART_SIZE", "MAX_PART_SIZE", "OpenAIBackend", "map_openai_errors"]

MAX_PART_SIZE = 64 * 1024 * 1024
"""Largest part the Uploads API accepts."""
DEFAULT_PART_SIZE = MAX_PART_SIZE
"""Part size used for large uploads."""

_KNOWN_STATUSES = {
    "validating_files",
    "queued",
    "running",
    "paused",
    "succeeded",
    "failed",
    "cancelled",
}


@contextlib.contextmanager
def map_openai_errors() -> Iterator[None]:
    """Translate ``openai`` exceptions raised inside the block into finetune_qa's own.

    The most specific class wins (``APITimeoutError`` before ``APIConnectionError``;
    status classes by code, 5xx to ``InternalServerError``), and the original is kept as
    ``__cause__``.
    """
    import openai

    try:
        yield
    except openai.APITimeoutError as exc:
        raise APITimeoutError(
            "the provider did not answer in time; the request may still have been carried "
            "out. Retry, or raise the client's timeout."
        ) from exc
    except openai.APIConnectionError as exc:
        raise APIConnectionError(
            f"could not reach the provider ({exc.__cause__ or exc}); the request may or may "
            "not have been carried out. Check the network and the base URL, then retry."
        ) from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        code = err.get("code") if isinstance(err, dict) else None
        param = err.get("param") if isinstance(err, dict) else None
        message = (err.get("message") if isinstance(err, dict) else None) or str(exc)
        hint = {
            401: " Check the API key (OPENAI_API_KEY); backend='offline' runs without one.",
            404: " Check the id; a model a job has just created can take minutes to appear.",
            429: " Wait and retry; check the account's rate limits and quota.",
        }.get(status, "")
        cls = status_error_class(status)
        kwargs: dict[str, Any] = {
            "status_code": status,
            "request_id": exc.request_id,
            "code": code if isinstance(code, str) else None,
            "param": param if isinstance(param, str) else None,
        }
        text = f"{status} from the provider: {sentence(message)}{hint}"
        if cls is RateLimitError:
            raise RateLimitError(
                text, retry_after=retry_after(exc.response.headers), **kwargs
            ) from exc
        raise cls(text, **kwargs) from exc
    except openai.OpenAIError as exc:
        raise BackendError(f"openai client error: {exc}") from exc


def _job_info(job: Any) -> JobInfo:
    raw = job.model_dump(mode="json") if hasattr(job, "model_dump") else dict(job)
    status = raw.get("status") or "queued"
    err = raw.get("error") or {}
    return JobInfo(
        id=raw["id"],
        status=cast(JobStatus, status if status in _KNOWN_STATUSES else "running"),
        provider_status=status,
        model=raw.get("model") or "",
        fine_tuned_model=raw.get("fine_tuned_model"),
        training_file=raw.get("training_file") or "",
        validation_file=raw.get("validation_file"),
        created_at=raw.get("created_at") or 0,
        finished_at=raw.get("finished_at"),
        trained_tokens=raw.get("trained_tokens"),
        result_files=list(raw.get("result_files") or []),
        error_code=err.get("code") if isinstance(err, dict) else None,
        error_message=err.get("message") if isinstance(err, dict) else None,
        error_param=err.get("param") if isinstance(err, dict) else None,
        metadata=dict(raw.get("metadata") or {}),
        estimated_finish=raw.get("estimated_finish"),
        raw=raw,
    )


def _file_info(f: Any) -> FileInfo:
    return FileInfo(
        id=f.id,
        filename=f.filename,
        bytes=f.bytes,
        purpose=f.purpose,
        created_at=f.created_at,
        status=getattr(f, "status", None),
    )


def _served_model(m: Any) -> ServedModel:
    raw = m.model_dump(mode="json") if hasattr(m, "model_dump") else dict(m)
    shutdown: dt.date | None = None
    with contextlib.suppress(TypeError, ValueError):  # an extra field: read it if it is a date
        shutdown = dt.date.fromisoformat(str(raw.get("shutdown_date"))[:10])
    model_id = str(raw["id"])
    return ServedModel(
        id=model_id,
        created_at=raw.get("created") or 0,
        owned_by=raw.get("owned_by"),
        fine_tuned=model_id.startswith("ft:"),
        shutdown_date=shutdown,
        raw=raw,
    )


def _chat_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
    for name in ("temperature", "max_tokens", "stop", "seed", "top_logprobs"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    if request.logprobs:
        kwargs["logprobs"] = True
    return kwargs


def _chat_response(completion: Any) -> ChatResponse:
    choice = completion.choices[0]
    usage = completion.usage
    logprobs = None
    if getattr(choice, "logprobs", None) is not None and choice.logprobs.content is not None:
        logprobs = [t.model_dump(mode="json") for t in choice.logprobs.content]
    return ChatResponse(
        id=completion.id,
        model=completion.model,
        content=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        usage=Usage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )
        if usage is not None
        else Usage(),
        logprobs=logprobs,
        request_id=getattr(completion, "_request_id", None),
    )


class OpenAIBackend(BackendDefaults, LoopClients["openai.AsyncOpenAI"]):
    """The lifecycle over an ``openai`` client: OpenAI, Azure OpenAI or a compatible server.

    Args:
        client: a configured ``openai.OpenAI`` (or ``AzureOpenAI``); built from the
            environment when omitted.
        async_client: the matching ``openai.AsyncOpenAI``, used by :meth:`achat`; when
            omitted, one is derived from a client this backend built itself, otherwise
            the sync client runs in a worker thread.
        api_key: key for a client built here (else ``OPENAI_API_KEY``).
        base_url: base URL for a client built here (an OpenAI-compatible server).
        max_retries: retries of a client built here (the client's own backoff).

    Raises:
        ConfigError: no client was given and no API key can be found.

    Example:
        ```python
        import openai
        from finetune_qa.backends import OpenAIBackend

        backend = OpenAIBackend(openai.AzureOpenAI(api_version="2024-10-21"))
        ```
    """

    name = "openai"
    supports_metadata = True
    """Jobs carry metadata, so a job is found again by its idempotency token."""
    provider_option_names: frozenset[str] = frozenset()
    """No provider-specific options: every setting has a common ``JobRequest`` field."""
    validation_provider = "openai"
    """Training files are validated with OpenAI's format rules (``validate_file(provider=)``)."""
    _once: tuple[openai.OpenAI, openai.OpenAI] | None = None

    def __init__(
        self,
        client: openai.OpenAI | None = None,
        *,
        async_client: openai.AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
    ) -> None:
        import openai

        self.client = client = self._init_sdk_clients(
            client,
            async_client,
            key=api_key or os.environ.get("OPENAI_API_KEY"),
            missing_key="no OpenAI API key: pass api_key=, set OPENAI_API_KEY, or pass a "
            "configured openai client; backend='offline' (CLI: --backend offline) runs the "
            "whole lifecycle without one",
            make_sync=lambda key: openai.OpenAI(
                api_key=key, base_url=base_url, max_retries=max_retries
            ),
            make_async=lambda key: openai.AsyncOpenAI(
                api_key=key, base_url=base_url, max_retries=max_retries
            ),
        )
        protect_secrets(str(getattr(client, "api_key", "") or ""), loggers=("openai",))

    def __repr__(self) -> str:
        from finetune_qa._text import scrub_url

        return f"OpenAIBackend(base_url={scrub_url(str(self.client.base_url))!r})"

    @property
    def endpoint(self) -> str:
        """Which server (and so account) this backend talks to: its name and base URL."""
        from finetune_qa._text import scrub_url

        return f"{self.name}:{scrub_url(str(self.client.base_url))}"

    def _writer(self) -> openai.OpenAI:
        """The client with the SDK's retries off, for requests finetune_qa retries itself."""
        made = self._once
        if made is not None and made[0] is self.client:
            return made[1]
        with_options = getattr(self.client, "with_options", None)
        once = with_options(max_retries=0) if callable(with_options) else self.client
        self._once = (self.client, once)  # one copy per client, not one per request
        return once

    # -- files
    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        """Upload ``data`` through the Files API (up to 512 MB)."""
        with map_openai_errors():
            return _file_info(self._writer().files.create(file=(filename, data), purpose=purpose))  # type: ignore[arg-type]

    def upload_path(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str,
        purpose: str = "fine-tune",
        part_size: int = DEFAULT_PART_SIZE,
        parallel: int = 4,
    ) -> FileInfo:
        """Upload a large file through the Uploads API, ``parallel`` parts at a time.

        Parts (at most 64 MiB each, as OpenAI allows) are read from disk one after the
        other, and at most ``parallel`` are held and sent at once, so memory holds about
        ``parallel`` parts, never the whole file.
        The upload is completed with the parts in order and the file's MD5.
        This thread reads and hashes while the parts are sent.

        Raises:
            UsageError: ``part_size`` is outside 1 byte-64 MiB, or ``parallel`` < 1.
        """
        from finetune_qa.exceptions import UsageError

        if not 0 < part_size <= MAX_PART_SIZE:
            raise UsageError(f"part_size must be 1 to {MAX_PART_SIZE} bytes, got {part_size}")
        if parallel < 1:
            raise UsageError(f"parallel must be at least 1, got {parallel}")
        size = os.path.getsize(path)
        writer = self._writer()
        with map_openai_errors():
            upload = writer.uploads.create(
                bytes=size,
                filename=filename,
                mime_type="text/jsonl",
                purpose=purpose,  # type: ignore[arg-type]
            )

        def send(data: bytes) -> str:
            with map_openai_errors():
                return writer.uploads.parts.create(upload.id, data=data).id

        # This thread reads and hashes the parts in order while up to ``parallel`` of
        # them are in flight, so hashing overlaps the network and memory stays bounded.
        md5 = hashlib.md5(usedforsecurity=False)
        futures: list[Future[str]] = []
        with ThreadPoolExecutor(max_workers=parallel) as pool, open(path, "rb") as f:
            for offset in range(0, size, part_size) if size else [0]:
                pending = [fut for fut in futures if not fut.done()]
                if len(pending) >= parallel:
                    wait(pending, return_when=FIRST_COMPLETED)
                data = f.read(min(part_size, size - offset))
                md5.update(data)
                futures.append(pool.submit(send, data))
                del data
            part_ids = [fut.result() for fut in futures]
        with map_openai_errors():
            done = writer.uploads.complete(upload.id, part_ids=part_ids, md5=md5.hexdigest())
        if done.file is None:
            raise BackendError(f"upload {upload.id} completed without a file")
        return _file_info(done.file)

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        """Files, newest first (one page of up to ``limit``)."""
        with map_openai_errors():
            kwargs: dict[str, Any] = {"limit": limit, "order": "desc"}
            if purpose is not None:
                kwargs["purpose"] = purpose
            return [_file_info(f) for f in self.client.files.list(**kwargs).data]

    def file_content(self, file_id: str) -> bytes:
        """The raw bytes of a file."""
        with map_openai_errors():
            return self.client.files.content(file_id).read()

    # -- jobs
    def create_job(self, request: JobRequest) -> JobInfo:
        """Create a fine-tuning job with ``method`` carrying the hyperparameters."""
        hyper: dict[str, Any] = {
            "n_epochs": request.n_epochs,
            "batch_size": request.batch_size,
            "learning_rate_multiplier": request.learning_rate_multiplier,
        }
        if request.method == "dpo" and request.beta is not None:
            hyper["beta"] = request.beta
        kwargs: dict[str, Any] = {
            "model": request.model,
            "training_file": request.training_file,
            "method": {"type": request.method, request.method: {"hyperparameters": hyper}},
        }
        for name in ("validation_file", "suffix", "seed"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value
        if request.metadata:
            kwargs["metadata"] = dict(request.metadata)
        if request.integrations:
            kwargs["integrations"] = list(request.integrations)
        with map_openai_errors():
            return _job_info(self._writer().fine_tuning.jobs.create(**kwargs))

    def retrieve_job(self, job_id: str) -> JobInfo:
        """The job's current state."""
        with map_openai_errors():
            return _job_info(self.client.fine_tuning.jobs.retrieve(job_id))

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        """One page of jobs, newest first, optionally filtered by metadata."""
        kwargs: dict[str, Any] = {"limit": limit}
        if metadata:
            kwargs["metadata"] = dict(metadata)
        with map_openai_errors():
            return [_job_info(j) for j in self.client.fine_tuning.jobs.list(**kwargs).data]

    def cancel_job(self, job_id: str) -> JobInfo:
        """Cancel the job."""
        with map_openai_errors():
            return _job_info(self.client.fine_tuning.jobs.cancel(job_id))

    def pause_job(self, job_id: str) -> JobInfo:
        """Pause the job."""
        with map_openai_errors():
            return _job_info(self.client.fine_tuning.jobs.pause(job_id))

    def resume_job(self, job_id: str) -> JobInfo:
        """Resume the job."""
        with map_openai_errors():
            return _job_info(self.client.fine_tuning.jobs.resume(job_id))

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        """One page of events, newest first."""
        kwargs: dict[str, Any] = {"limit": limit}
        if after is not None:
            kwargs["after"] = after
        with map_openai_errors():
            page = self.client.fine_tuning.jobs.list_events(job_id, **kwargs)
            return [JobEvent.model_validate(e.model_dump(mode="json")) for e in page.data]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints, newest first."""
        with map_openai_errors():
            page = self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100)
            return [Checkpoint.model_validate(c.model_dump(mode="json")) for c in page.data]

    # -- models
    def list_models(self) -> list[ServedModel]:
        """Every model the account can query (``GET /models``): base models and fine-tunes.

        A model whose name starts with ``ft:`` is marked ``fine_tuned``. This is the
        optional :class:`~finetune_qa.backends.base.ListsModels` capability.
        """
        with map_openai_errors():
            return [_served_model(m) for m in self.client.models.list()]

    # -- chat
    def chat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion."""
        with map_openai_errors():
            return _chat_response(self._writer().chat.completions.create(**_chat_kwargs(request)))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion on the async client (or the sync one in a thread)."""
        client = self._async_client()
        if client is None:
            return await asyncio.to_thread(self.chat, request)
        once = client.with_options(max_retries=0)  # ChatModel retries by its own policy
        with map_openai_errors():
            completion = await once.chat.completions.create(**_chat_kwargs(request))
        return _chat_response(completion)
