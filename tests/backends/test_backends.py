from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

import finetune_qa
from finetune_qa import ChatModel, FineTuneJob, Journal
from finetune_qa import exceptions as exc
from finetune_qa.backends import (
    Backend,
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    LocalBackend,
    OfflineBackend,
    OpenAIBackend,
    available_backends,
    base,
    get_backend,
    register_backend,
)
from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.data import QAPair, TrainingExample
from finetune_qa.testing import FakeOpenAI, openai_client


def training_bytes(n: int = 12) -> bytes:
    lines = [
        TrainingExample.from_qa(
            QAPair(question=f"What does plan {i} include?", answer=f"Plan {i} includes {i} seats."),
            system_prompt="You answer questions about Acme.",
        ).to_json()
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune_qa.backends as backends_mod

    monkeypatch.setattr(backends_mod, "_registry", dict(backends_mod._registry))
    assert {"offline", "openai"} <= set(available_backends())
    backend = get_backend("offline")
    assert isinstance(backend, OfflineBackend) and isinstance(backend, Backend)
    assert get_backend(backend) is backend
    with pytest.raises(exc.UnknownBackendError, match=r"unknown backend 'nope'.*offline"):
        get_backend("nope")
    with pytest.raises(exc.UsageError, match="already registered"):
        register_backend("offline", OfflineBackend)
    register_backend("offline-too", OfflineBackend)
    assert isinstance(get_backend("offline-too", seed=3), OfflineBackend)


def test_openai_backend_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(exc.ConfigError, match=r"OPENAI_API_KEY.*offline"):
        OpenAIBackend()


def test_lifecycle_through_the_public_backend_methods() -> None:
    backend = OfflineBackend(max_retries=0)
    f = backend.upload_file(training_bytes(), filename="train.jsonl")
    assert (
        f.bytes == len(training_bytes()) and backend.list_files(purpose="fine-tune")[0].id == f.id
    )
    job = backend.create_job(
        JobRequest(model="gpt-4o-mini", training_file=f.id, suffix="acme", metadata={"k": "v"})
    )
    assert job.status == "validating_files" and not job.done
    assert [j.id for j in backend.list_jobs(metadata={"k": "v"})] == [job.id]
    while not job.done:
        backend.sleep(15)
        job = backend.retrieve_job(job.id)
    assert (
        job.status == "succeeded"
        and job.fine_tuned_model
        and job.fine_tuned_model.startswith("ft:gpt-4o-mini")
    )
    events = backend.list_events(job.id, limit=5)
    assert len(events) == 5 and events[0].created_at >= events[-1].created_at  # newest first
    assert backend.list_checkpoints(job.id)
    answer = backend.chat(
        ChatRequest(
            model=job.fine_tuned_model,
            messages=[
                {"role": "system", "content": "You answer questions about Acme."},
                {"role": "user", "content": "What does plan 3 include?"},
            ],
            stop=["**STOP**"],
            temperature=0,
        )
    )
    assert answer.content.strip() == "Plan 3 includes 3 seats." and answer.finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    asynced = asyncio.run(
        backend.achat(
            ChatRequest(
                model=job.fine_tuned_model,
                messages=[{"role": "user", "content": "What does plan 3 include?"}],
                stop=["**STOP**"],
            )
        )
    )
    assert asynced.content.strip() == "Plan 3 includes 3 seats."


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, exc.BadRequestError),
        (401, exc.AuthenticationError),
        (403, exc.PermissionDeniedError),
        (404, exc.NotFoundError),
        (409, exc.ConflictError),
        (422, exc.UnprocessableEntityError),
        (429, exc.RateLimitError),
        (500, exc.InternalServerError),
        (502, exc.InternalServerError),
        (503, exc.InternalServerError),
    ],
)
def test_every_status_maps_to_its_exception(status: int, cls: type[exc.APIStatusError]) -> None:
    fake = FakeOpenAI()
    backend = OpenAIBackend(openai_client(fake, max_retries=0))
    fake.inject("GET /fine_tuning/jobs", status=status, retry_after=2.5 if status == 429 else None)
    with pytest.raises(cls) as info:
        backend.list_jobs()
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.request_id and info.value.request_id.startswith("req_")
    assert isinstance(info.value.__cause__, Exception)
    if status == 429:
        assert isinstance(info.value, exc.RateLimitError) and info.value.retry_after == 2.5


def test_connection_errors_map_and_keep_the_cause() -> None:
    import openai

    fake = FakeOpenAI()
    backend = OpenAIBackend(openai_client(fake, max_retries=0))
    fake.inject("GET /files", drop=True)
    with pytest.raises(
        exc.APIConnectionError, match="may or may not have been carried out"
    ) as info:
        backend.list_files()
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


def test_bad_request_keeps_param_and_code() -> None:
    backend = OfflineBackend(max_retries=0)
    with pytest.raises(exc.BadRequestError) as info:
        backend.create_job(JobRequest(model="gpt-4o-mini", training_file="file-missing"))
    assert info.value.param == "training_file"


def test_keys_never_reach_exception_text() -> None:
    fake = FakeOpenAI()
    secret = "sk-proj-THISISASECRETKEY1234567890"
    client = openai_client(fake, max_retries=0, api_key=secret)
    backend = OpenAIBackend(client)
    fake.inject("POST /chat/completions", status=401)
    with pytest.raises(exc.AuthenticationError) as info:
        backend.chat(ChatRequest(model="nope", messages=[{"role": "user", "content": secret}]))
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert (
        exc.redact(f"Incorrect API key provided: {secret}")
        == "Incorrect API key provided: [REDACTED]"
    )


def test_retries_use_the_clients_own_backoff() -> None:
    fake = FakeOpenAI()
    backend = OpenAIBackend(openai_client(fake, max_retries=2))
    fake.inject("GET /fine_tuning/jobs", status=503, retry_after=0.01, times=2)
    assert backend.list_jobs() == []
    assert sum(1 for r in fake.requests if r.path.endswith("/fine_tuning/jobs")) == 3


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ({"status": 503, "drop": True}, "status and drop"),
        ({"status": 503, "timeout": True}, "status and timeout"),
        ({"drop": True, "timeout": True}, "drop and timeout"),
        ({"status": 500, "drop": True, "timeout": True}, "status and drop and timeout"),
        ({"retry_after": 3}, "retry_after goes with an error status"),
        ({"after_effect": True}, "after_effect needs a failure"),
        ({"after_effect": True, "latency": 0.01}, "after_effect needs a failure"),
    ],
)
def test_inject_refuses_conflicting_faults(fault: dict[str, object], match: str) -> None:
    fake = FakeOpenAI()
    with pytest.raises(exc.UsageError, match=match):
        fake.inject("POST /fine_tuning/jobs", **fault)  # type: ignore[arg-type]
    assert fake.pending_faults() == 0
    fake.inject("POST /fine_tuning/jobs")  # a pass-through fault is fine
    fake.inject("GET /files", status=429, retry_after=2)
    assert fake.pending_faults() == 2


def test_creating_requests_go_through_a_client_without_retries() -> None:
    """Reads keep the client's retries; uploads and job creation are sent once."""
    backend = OfflineBackend()  # the openai client's default max_retries=2
    backend.client._sleep_for_retry = lambda **kw: None  # type: ignore[attr-defined,method-assign]
    backend.fake.inject("POST /files", drop=True, after_effect=True)
    with pytest.raises(exc.APIConnectionError):
        backend.upload_file(training_bytes(), filename="train.jsonl")
    assert len(backend.list_files()) == 1  # sent once: one file, though the answer was lost
    fid = backend.list_files()[0].id
    backend.fake.inject("POST /fine_tuning/jobs", status=502, after_effect=True)
    with pytest.raises(exc.InternalServerError):
        backend.create_job(JobRequest(model="gpt-4o-mini", training_file=fid))
    assert len(backend.list_jobs()) == 1
    backend.fake.inject("GET /fine_tuning/jobs", status=502)  # a read: the client retries it
    assert len(backend.list_jobs()) == 1 and backend.fake.pending_faults() == 0


def test_the_openai_loggers_redact_the_clients_key(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    secret = "sk-proj-LOGPLANTED0123456789abcdef"
    backend = OpenAIBackend(openai_client(FakeOpenAI(), max_retries=0, api_key=secret))
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "openai._base_client"):
        logging.getLogger(name).debug("Request options: %s", {"headers": {"x-key": secret}})
    backend.list_files()  # the SDK's own DEBUG lines pass through the filter too
    assert "Request options" in caplog.text and "[REDACTED]" in caplog.text
    assert secret not in caplog.text
    OpenAIBackend(openai_client(FakeOpenAI(), max_retries=0, api_key=secret))
    filters = logging.getLogger("openai._base_client").filters
    assert sum(type(f).__name__ == "SecretsFilter" for f in filters) == 1  # installed once


def test_chat_goes_through_a_client_without_retries() -> None:
    """ChatModel retries chat by the one policy, so the SDK's retries are off for it."""
    backend = OfflineBackend()  # the openai client's default max_retries=2
    backend.fake.inject("POST /chat/completions", status=500)
    request = ChatRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi?"}])
    with pytest.raises(exc.InternalServerError):
        backend.chat(request)
    assert sum(1 for r in backend.fake.requests if r.path.endswith("/chat/completions")) == 1
    backend.fake.inject("POST /chat/completions", status=500)
    with pytest.raises(exc.InternalServerError):
        asyncio.run(backend.achat(request))
    assert sum(1 for r in backend.fake.requests if r.path.endswith("/chat/completions")) == 2


# ------------------------------------------------------------------ declared capabilities
_GETATTR_ON_A_BACKEND = re.compile(r"getattr\(\s*(?:[\w.]*\.)?(?:be|backend|_backend)\s*,")


def test_no_module_reads_a_backend_with_getattr() -> None:
    """Every capability the code uses is declared on the protocol or a capability protocol."""
    root = Path(finetune_qa.__file__).parent
    found = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _GETATTR_ON_A_BACKEND.search(line)
    ]
    assert found == []
    assert _GETATTR_ON_A_BACKEND.search('x = getattr(self.backend, "sleep", None)')
    assert _GETATTR_ON_A_BACKEND.search('getattr(be, "supports_metadata", True)')


class Minimal:
    """A third party's backend: only what the Backend protocol requires, nothing optional.

    It serves from an offline fake, whose jobs move on when their state is read (the
    fake's clock stands for the provider's time passing).
    """

    name = "minimal"

    def __init__(self) -> None:
        self._inner = OfflineBackend(max_retries=0)

    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        return self._inner.upload_file(data, filename=filename, purpose=purpose)

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        return self._inner.list_files(purpose=purpose, limit=limit)

    def file_content(self, file_id: str) -> bytes:
        return self._inner.file_content(file_id)

    def create_job(self, request: JobRequest) -> JobInfo:
        return self._inner.create_job(request)

    def retrieve_job(self, job_id: str) -> JobInfo:
        self._inner.fake.clock.sleep(30.0)
        return self._inner.retrieve_job(job_id)

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        return self._inner.list_jobs(limit=limit, metadata=metadata)

    def cancel_job(self, job_id: str) -> JobInfo:
        return self._inner.cancel_job(job_id)

    def pause_job(self, job_id: str) -> JobInfo:
        return self._inner.pause_job(job_id)

    def resume_job(self, job_id: str) -> JobInfo:
        return self._inner.resume_job(job_id)

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        return self._inner.list_events(job_id, after=after, limit=limit)

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        return self._inner.list_checkpoints(job_id)

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self._inner.chat(request)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return await self._inner.achat(request)


_CAPABILITIES = (
    base.HasClock,
    base.DeclaresMetadata,
    base.DeclaresProviderOptions,
    base.DeclaresValidationRules,
    base.DeclaresMaxEpochs,
    base.DeclaresPollInterval,
    base.ChecksRequests,
    base.MatchesRequests,
    base.UploadsPaths,
    base.ReportsTrainingMetrics,
    base.ReportsModelLimits,
    base.MakesLoopClients,
    base.ListsModels,
    base.HasEndpoint,
)


def test_a_backend_with_only_the_required_protocol_runs_the_whole_lifecycle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import finetune_qa.backends as backends_mod

    monkeypatch.setattr(backends_mod, "_registry", dict(backends_mod._registry))
    register_backend("minimal", Minimal)  # as an entry point's factory is registered
    backend = get_backend("minimal")
    assert isinstance(backend, Backend)
    assert not any(isinstance(backend, cap) for cap in _CAPABILITIES)
    train = tmp_path / "train.jsonl"
    train.write_bytes(training_bytes())
    journal = tmp_path / "journal.jsonl"
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert job.wait(poll_interval=0).status == "succeeded" and job.fine_tuned_model
    assert job.metrics() and job.card() is not None
    again = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert again.id == job.id  # found in the journal, under the backend's name
    assert {r.get("backend") for r in Journal(journal).records() if "backend" in r} == {"minimal"}
    bot = ChatModel(job.fine_tuned_model, backend=backend)
    assert bot.ask("What does plan 3 include?").finish_reason == "stop"
    assert all(item.ok for item in bot.ask_many(["What does plan 1 include?", "Plan 2?"]))


def test_the_built_in_backends_declare_their_capabilities(tmp_path: Path) -> None:
    offline = OfflineBackend()
    local = LocalBackend(root=tmp_path)
    for backend in (offline, local):
        assert isinstance(backend, base.HasClock | base.DeclaresMetadata | base.DeclaresMaxEpochs)
    assert isinstance(offline, base.UploadsPaths | base.MakesLoopClients | base.ListsModels)
    assert base.max_epochs(offline) == 50 and base.max_epochs(local) == LOCAL_MAX_EPOCHS
    assert base.poll_interval(offline) == 5.0 and base.poll_interval(local) == 1.0
    # only a backend with a clock of its own has one: the OpenAI backend's dates are real
    openai_backend = OpenAIBackend(openai_client(FakeOpenAI(), max_retries=0, api_key="sk-x"))
    assert not isinstance(openai_backend, base.HasClock)
    # journal labels as before: the name and base URL, or the fake's instance
    assert base.endpoint(openai_backend) == "openai:https://offline.finetune-qa.invalid/v1/"
    assert base.endpoint(offline) == f"offline:{offline.fake.instance_id}"
    assert base.endpoint(local) == "local"
    assert base.supports_metadata(Minimal()) and base.provider_option_names(Minimal()) == set()
