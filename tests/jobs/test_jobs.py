from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from finetune_qa import DatasetBuilder, QAPair
from finetune_qa import exceptions as exc
from finetune_qa.backends import JobEvent, JobRequest, OfflineBackend, OpenAIBackend
from finetune_qa.jobs import TOKEN_KEY, FineTuneJob, Journal
from finetune_qa.testing import FakeOpenAI, openai_client

SYS = "You are a factual chatbot that answers questions about Acme."


def pairs(n: int = 24) -> list[QAPair]:
    return [
        QAPair(
            question=f"What does plan number {i} include?", answer=f"Plan {i} includes {i} anvils."
        )
        for i in range(n)
    ]


@pytest.fixture
def train(tmp_path: Path) -> Path:
    out = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs()).build(out)
    return out


def count(fake: FakeOpenAI, method: str, suffix: str) -> int:
    return sum(
        1 for r in fake.requests if r.method == method and r.path.rstrip("/").endswith(suffix)
    )


def test_create_wait_events_metrics_checkpoints(train: Path, tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl", suffix="acme"
    )
    assert job.status == "validating_files"
    statuses: list[str] = []
    seen: list[Any] = []
    info = job.wait(on_event=seen.append, on_status=lambda i: statuses.append(i.status))
    assert info.status == "succeeded"
    assert statuses == ["validating_files", "queued", "running", "succeeded"]
    assert job.fine_tuned_model and job.fine_tuned_model.startswith(
        "ft:gpt-4o-mini-2024-07-18:org-offline:acme:"
    )
    # every event once, chronological
    assert len({e.id for e in seen}) == len(seen) == len(job.events())
    assert [e.created_at for e in seen] == sorted(e.created_at for e in seen)
    assert seen[0].message.startswith("Created fine-tuning job")
    assert seen[-1].message == "The job has successfully completed"
    metrics = job.metrics()  # from the base64 results CSV
    assert metrics and metrics[0].step == 1 and metrics[-1].train_loss is not None
    assert metrics[-1].train_loss < metrics[0].train_loss
    assert 1 <= len(job.checkpoints()) <= 3
    assert (job.system_prompt, job.stop) == (SYS, "**STOP**")


def test_nothing_is_sent_before_the_request_is_valid(train: Path, tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"n_epochs": 0}, "n_epochs"),
        ({"batch_size": 300}, "batch_size"),
        ({"learning_rate_multiplier": 0}, "learning_rate_multiplier"),
        ({"beta": 0.5}, "DPO"),
        ({"suffix": "has spaces"}, "suffix"),
        ({"seed": -1}, "seed"),
        ({"metadata": {f"k{i}": "v" for i in range(16)}}, "metadata"),
        ({"metadata": {TOKEN_KEY: "x"}}, "reserved"),
        ({"integrations": [{"type": "slack"}]}, "wandb"),
        ({"model": "gpt-3.5-turbo", "today": dt.date(2026, 11, 25)}, "ended on 2026-10-23"),
        ({"model": "gpt-4.1-nano", "method": "dpo"}, "does not offer"),
    ]
    for kwargs, fragment in cases:
        opts: dict[str, Any] = {"model": "gpt-4o-mini", **kwargs}
        with pytest.raises(exc.UsageError, match=fragment):
            FineTuneJob.create(train, backend=backend, journal=tmp_path / "j.jsonl", **opts)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(train.read_text().splitlines()[0] + "\n")  # one example: too few
    with pytest.raises(exc.ValidationFailed, match="too_few_examples"):
        FineTuneJob.create(bad, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl")
    with pytest.raises(exc.InputFileError, match="no such file"):
        FineTuneJob.create(
            tmp_path / "nope.jsonl",
            model="gpt-4o-mini",
            backend=backend,
            journal=tmp_path / "j.jsonl",
        )
    assert backend.fake.requests == []


def test_same_content_is_uploaded_once_and_same_request_makes_one_job(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    j = tmp_path / "j.jsonl"
    a = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=j, suffix="one")
    b = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=j, suffix="two")
    again = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=j, suffix="one")
    fresh = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=j, suffix="one", force_new=True
    )
    assert count(backend.fake, "POST", "/files") == 1
    assert a.id != b.id and again.id == a.id and fresh.id not in (a.id, b.id)
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 3


FAULTS = [
    ("POST /files", {"status": 429, "retry_after": 0.5}),
    ("POST /files", {"status": 503}),
    ("POST /files", {"drop": True}),
    ("POST /files", {"drop": True, "after_effect": True}),
    ("POST /files", {"status": 500, "after_effect": True}),
    ("POST /fine_tuning/jobs", {"status": 429}),
    ("POST /fine_tuning/jobs", {"status": 502}),
    ("POST /fine_tuning/jobs", {"drop": True}),
    ("POST /fine_tuning/jobs", {"drop": True, "after_effect": True}),
    ("POST /fine_tuning/jobs", {"status": 503, "after_effect": True}),
    ("GET /fine_tuning/jobs/*", {"status": 429, "times": 3}),
    ("GET /fine_tuning/jobs/*", {"drop": True, "times": 2}),
    ("GET /fine_tuning/jobs/*/events", {"status": 503, "times": 2}),
    ("GET /fine_tuning/jobs/*/events", {"drop": True}),
    ("GET /files/*/content", {"status": 500}),
    ("GET /fine_tuning/jobs/*/checkpoints", {"drop": True}),
]


def _run(
    train: Path, journal: Path, fault: tuple[str, dict[str, Any]] | None
) -> tuple[OfflineBackend, FineTuneJob]:
    backend = OfflineBackend(max_retries=0, seed=0)
    if fault is not None:
        route, kwargs = fault
        backend.fake.inject(route, **kwargs)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=journal, suffix="acme", seed=7
    )
    job.wait()
    job.metrics()
    job.checkpoints()
    return backend, job


@pytest.mark.parametrize(
    "fault", FAULTS, ids=[f"{r}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for r, kw in FAULTS]
)
def test_faults_lose_nothing_and_duplicate_nothing(
    train: Path, tmp_path: Path, fault: tuple[str, dict[str, Any]]
) -> None:
    _clean_backend, clean = _run(train, tmp_path / "clean.jsonl", None)
    backend, job = _run(train, tmp_path / "faulty.jsonl", fault)
    jobs = backend.list_jobs()
    files = backend.list_files(purpose="fine-tune")
    assert len(jobs) == 1 and jobs[0].id == job.id, "exactly one job, and we know its id"
    assert len(files) == 1, "exactly one training file"
    assert job.info.status == clean.info.status == "succeeded"
    assert job.fine_tuned_model is not None
    assert [m.train_loss for m in job.metrics()] == [m.train_loss for m in clean.metrics()]
    assert len(job.events()) == len(clean.events())


def test_timeout_then_attach_resumes_in_a_new_process(train: Path, tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "j.jsonl"
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    first: list[str] = []
    with pytest.raises(exc.JobTimeout) as info:
        job.wait(timeout=40, on_event=lambda e: first.append(e.id))
    assert info.value.job_id == job.id and info.value.status in ("queued", "running")
    assert f"FineTuneJob.attach('{job.id}')" in str(info.value)
    # "a new process": nothing but the job id, the backend and the journal
    resumed = FineTuneJob.attach(job.id, backend=backend, journal=journal)
    assert (resumed.system_prompt, resumed.stop) == (SYS, "**STOP**")
    later: list[str] = []
    assert resumed.wait(on_event=lambda e: later.append(e.id)).status == "succeeded"
    assert set(first) <= set(later) and len(later) == len(set(later))


def test_killed_between_request_and_journal_entry(train: Path, tmp_path: Path) -> None:
    """The provider created the job, then the process died before recording it."""
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "j.jsonl"
    real_create = backend.create_job

    def create_then_die(request: JobRequest) -> Any:
        real_create(request)
        raise KeyboardInterrupt  # the kill

    backend.create_job = create_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    backend.create_job = real_create  # type: ignore[method-assign]
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert [j.id for j in backend.list_jobs()] == [job.id]
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1


def test_failed_job_raises_with_the_providers_reason(tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    train = tmp_path / "t.jsonl"
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs(12)).build(train)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl"
    )
    backend.fake.fail_job(job.id, message="Internal error, please retry", code="internal_error")
    with pytest.raises(exc.JobFailed, match="Internal error") as info:
        job.wait()
    assert info.value.code == "internal_error" and info.value.job_id == job.id


def test_cancel(train: Path, tmp_path: Path) -> None:
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl"
    )
    assert job.cancel().status == "cancelled"
    with pytest.raises(exc.JobCancelled):
        job.wait()


def test_journal_is_owner_only_and_holds_no_key(train: Path, tmp_path: Path) -> None:
    secret = "sk-proj-PLANTEDSECRET0123456789abcdef"
    fake = FakeOpenAI()
    backend = OpenAIBackend(openai_client(fake, max_retries=0, api_key=secret))
    journal = tmp_path / "j.jsonl"
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    fake.inject("GET /fine_tuning/jobs/*", status=401, times=None)
    with pytest.raises(exc.AuthenticationError) as info:
        job.refresh()
    assert secret not in str(info.value)
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
    text = journal.read_text()
    assert secret not in text and "sk-" not in text
    assert all(json.loads(line)["op"] in ("upload", "job") for line in text.splitlines())


def test_journal_skips_a_torn_last_line(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.append({"op": "job", "state": "created", "job_id": "a"})
    with open(j.path, "ab") as f:
        f.write(b'{"op": "job", "sta')  # the process died mid-write
    assert [r["job_id"] for r in j.find(op="job")] == ["a"]


def test_large_files_go_through_the_uploads_api_in_parallel_parts(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        train,
        model="gpt-4o-mini",
        backend=backend,
        journal=tmp_path / "j.jsonl",
        upload_threshold=1000,  # the small training file counts as "large" here
    )
    assert (
        count(backend.fake, "POST", "/uploads") == 1 and count(backend.fake, "POST", "/files") == 0
    )
    assert count(backend.fake, "POST", "/complete") == 1
    files = backend.list_files(purpose="fine-tune")
    assert len(files) == 1 and backend.file_content(files[0].id) == train.read_bytes()
    assert job.wait().status == "succeeded"


def test_upload_path_parts_are_ordered_and_checked(tmp_path: Path) -> None:
    import os as _os

    backend = OfflineBackend(max_retries=0)
    path = tmp_path / "big.jsonl"
    path.write_bytes(_os.urandom(250_000))
    f = backend.upload_path(path, filename="big.jsonl", part_size=64_000, parallel=3)
    assert backend.file_content(f.id) == path.read_bytes() and f.bytes == 250_000
    assert count(backend.fake, "POST", "/parts") == 4
    with pytest.raises(exc.UsageError, match="part_size"):
        backend.upload_path(path, filename="big.jsonl", part_size=0)


def test_intent_records_creation_time_and_metadata_backends_keep_tokens(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = Journal(tmp_path / "j.jsonl")
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    [intent] = journal.find(op="job", state="intent")
    assert isinstance(intent["created_after"], int) and intent["created_after"] > 0
    assert job.info.metadata[TOKEN_KEY] == intent["token"]  # found by token, not by request
    with pytest.raises(exc.UsageError, match="takes none"):
        FineTuneJob.create(
            train,
            model="gpt-4o-mini",
            backend=backend,
            journal=journal,
            provider_options={"lora": True},
        )


# --- creating requests are sent once; look-ups only when a job may exist; failed look-ups stop


def test_default_sdk_retries_never_resend_a_creating_request(train: Path, tmp_path: Path) -> None:
    """OfflineBackend() as a user builds it (the openai client's max_retries=2)."""
    backend = OfflineBackend()
    assert backend.client.max_retries == 2
    backend.fake.inject("POST /files", drop=True, after_effect=True)
    backend.fake.inject("POST /fine_tuning/jobs", drop=True, after_effect=True)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl"
    )
    assert [j.id for j in backend.list_jobs()] == [job.id]
    assert len(backend.list_files(purpose="fine-tune")) == 1
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1
    assert count(backend.fake, "POST", "/files") == 1
    # reads still get the SDK's retries: a dropped poll is resent by the client
    backend.fake.inject("GET /fine_tuning/jobs/*", status=503)
    backend.client._sleep_for_retry = lambda **kw: None  # type: ignore[attr-defined,method-assign]
    assert backend.retrieve_job(job.id).id == job.id and backend.fake.pending_faults() == 0


def test_a_new_intent_looks_its_token_up_once_then_sends(train: Path, tmp_path: Path) -> None:
    # issue #12: a lost or damaged journal must not start a second job, so even a new
    # intent asks the provider for a job carrying its (request-derived) token first
    backend = OfflineBackend(max_retries=0)
    FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl")
    assert count(backend.fake, "GET", "/fine_tuning/jobs") == 1
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1


def test_a_look_up_that_fails_once_after_a_lost_create_is_retried(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    backend.fake.inject("POST /fine_tuning/jobs", drop=True, after_effect=True)
    backend.fake.inject("GET /fine_tuning/jobs", status=500)
    job = FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl"
    )
    assert backend.fake.pending_faults() == 0
    assert [j.id for j in backend.list_jobs()] == [job.id]
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1


@pytest.mark.parametrize("lookup_fault", [{"status": 503}, {"drop": True}, {"status": 429}])
def test_a_failed_look_up_after_a_lost_create_raises_and_a_rerun_reconciles(
    train: Path, tmp_path: Path, lookup_fault: dict[str, Any]
) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "j.jsonl"
    backend.fake.inject("POST /fine_tuning/jobs", status=502, after_effect=True)
    backend.fake.inject("GET /fine_tuning/jobs", times=None, **lookup_fault)
    with pytest.raises(exc.BackendError) as info:
        FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert "Re-run with the same journal" in str(info.value) and str(journal) in str(info.value)
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1, "no second POST"
    backend.fake.reset_faults()
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert [j.id for j in backend.list_jobs()] == [job.id]
    assert count(backend.fake, "POST", "/fine_tuning/jobs") == 1


def test_a_failed_look_up_after_a_lost_upload_raises_and_a_rerun_reconciles(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "j.jsonl"
    backend.fake.inject("POST /files", drop=True, after_effect=True)
    backend.fake.inject("GET /files", status=503, times=None)
    with pytest.raises(exc.InternalServerError, match="was uploaded; nothing more was sent"):
        FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert count(backend.fake, "POST", "/files") == 1
    backend.fake.reset_faults()
    FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    assert len(backend.list_files(purpose="fine-tune")) == 1
    assert count(backend.fake, "POST", "/files") == 1


def test_a_lasting_create_failure_with_no_answer_says_how_to_reconcile(
    train: Path, tmp_path: Path
) -> None:
    backend = OfflineBackend(max_retries=0)
    journal = tmp_path / "j.jsonl"
    backend.fake.inject("POST /fine_tuning/jobs", drop=True, times=None)
    with pytest.raises(exc.APIConnectionError) as info:
        FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal, retries=2)
    assert "may have been created" in str(info.value) and str(journal) in str(info.value)
    # looked for the token before the first send (issue #12) and before each resend
    assert count(backend.fake, "GET", "/fine_tuning/jobs") == 3


class _EventLog(OfflineBackend):
    """An offline backend whose job's events are a list the test grows; it records each page."""

    log: list[JobEvent]
    pages: list[int]

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> list[JobEvent]:
        newest_first = self.log[::-1]
        start = 0 if after is None else [e.id for e in newest_first].index(after) + 1
        self.pages.append(limit)
        return newest_first[start : start + limit]


def test_polls_read_small_pages_and_miss_no_event(train: Path, tmp_path: Path) -> None:
    backend = _EventLog(max_retries=0)
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j")

    def grow(n: int) -> None:
        start = len(backend.log)
        backend.log += [
            JobEvent(id=f"ev-{i}", created_at=i, level="info", message=f"event {i}")
            for i in range(start, start + n)
        ]

    backend.log, backend.pages = [], []
    grow(250)  # the first poll reads whole pages
    assert [e.id for e in job.new_events()] == [f"ev-{i}" for i in range(250)]
    assert backend.pages == [100, 100, 100]
    for burst in (0, 3, 10, 11, 257):  # later polls start with a small page
        backend.pages.clear()
        before = len(backend.log)
        grow(burst)
        assert [e.id for e in job.new_events()] == [
            f"ev-{i}" for i in range(before, len(backend.log))
        ]
        assert backend.pages[0] == 10 and all(p == 100 for p in backend.pages[1:])
    assert len(job.events()) == len(backend.log) == 531  # each once, oldest first
