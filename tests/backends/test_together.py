"""TogetherBackend against a stateful respx fake of Together AI's API, offline.

The fake (``tests/together_fake.py``, shared with the migration tests) replays the request
and response shapes of Together's API as the ``together`` SDK 3.x sends and parses them.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import together
from together_fake import (
    API,
    KEY,
    LLAMA,
    WANDB_KEY,
    FakeTogether,
    fake_together,
    fixture,
    iso,
    make_backend,
    virtual_clock,
)

from finetune_qa import ChatModel, DatasetBuilder, FineTuneJob, sample_csv
from finetune_qa import exceptions as exc
from finetune_qa.backends import (
    Backend,
    ChatRequest,
    JobRequest,
    OfflineBackend,
    TogetherBackend,
    get_backend,
)
from finetune_qa.backends.base import HasClock
from finetune_qa.backends.together import PROVIDER_OPTION_NAMES
from finetune_qa.jobs import Journal


@pytest.fixture
def api() -> Iterator[FakeTogether]:
    with fake_together() as fake:
        yield fake


@pytest.fixture
def backend(api: FakeTogether) -> TogetherBackend:
    return make_backend()


@pytest.fixture
def train(tmp_path: Path) -> Path:
    out = tmp_path / "train.jsonl"
    DatasetBuilder().add_source(sample_csv()).build(out)
    return out


def first_qa(path: Path) -> tuple[str, str]:
    msgs = json.loads(path.read_text(encoding="utf-8").splitlines()[0])["messages"]
    return msgs[1]["content"], msgs[2]["content"]


# --------------------------------------------------------------------------- end to end


def test_csv_to_answer_on_together(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    job = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl", suffix="lumen"
    )
    assert job.status == "queued" and job.info.provider_status == "pending"
    statuses: list[str] = []
    info = job.wait(poll_interval=0, on_status=lambda i: statuses.append(i.provider_status))
    # a new status is reported when the mapped one changes (compressing, uploading: running)
    assert info.status == "succeeded" and statuses == ["queued", "running", "completed"]
    assert api.jobs[job.id]["status"] == "completed"
    assert job.fine_tuned_model == api.jobs[job.id]["model_output_name"]
    # the upload went through all three steps, with the bytes intact
    [fid] = api.files
    assert api.blobs[fid] == train.read_bytes()
    assert api.files[fid]["filename"].startswith("train-") and info.training_file == fid
    # the job request carried Together's field names
    [body] = api.create_bodies
    assert body["model"] == LLAMA and body["training_file"] == fid
    assert body["suffix"] == "lumen" and body["batch_size"] == "max"
    assert body["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    assert "metadata" not in body and "finetune_qa_token" not in json.dumps(body)
    question, answer = first_qa(train)
    bot = job.chat_model()
    reply = bot.ask(question)
    assert reply.text and answer.startswith(reply.text.strip())
    sent = api.chat_bodies[-1]
    assert sent["model"] == job.fine_tuned_model and sent["stop"] == [job.stop]
    assert sent["messages"][0] == {"role": "system", "content": job.system_prompt}


def run(backend: Backend, model: str, workdir: Path) -> dict[str, Any]:
    """The same script for every backend: build, train, wait, ask."""
    workdir.mkdir()
    train = workdir / "train.jsonl"
    DatasetBuilder().add_source(sample_csv()).build(train)
    job = FineTuneJob.create(train, model=model, backend=backend, journal=workdir / "j.jsonl")
    info = job.wait(poll_interval=1.0)
    question, _ = first_qa(train)
    reply = job.chat_model().ask(question)
    return {
        "status": info.status,
        "has_model": bool(job.fine_tuned_model),
        "events_in_order": [e.created_at for e in job.events()]
        == sorted(e.created_at for e in job.events()),
        "has_events": bool(job.events()),
        "answered": bool(reply.text.strip()),
        "stop": job.stop,
    }


def test_the_same_script_runs_offline_and_on_together(api: FakeTogether, tmp_path: Path) -> None:
    offline = run(OfflineBackend(max_retries=0), "gpt-4o-mini", tmp_path / "offline")
    on_together = run(make_backend(), LLAMA, tmp_path / "together")
    assert offline == on_together
    assert offline["status"] == "succeeded" and offline["answered"]


def test_registered_by_name_and_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(exc.ConfigError) as info:
        get_backend("together")
    assert "TOGETHER_API_KEY" in str(info.value) and "offline" in str(info.value)
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    backend = get_backend("together", max_retries=0)
    assert isinstance(backend, TogetherBackend) and backend.client.max_retries == 0
    assert KEY not in repr(backend)
    assert isinstance(backend, Backend) and backend.supports_metadata is False


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("together_status", "ours"),
    [
        ("pending", "queued"),
        ("queued", "queued"),
        ("running", "running"),
        ("compressing", "running"),
        ("uploading", "running"),
        ("completed", "succeeded"),
        ("error", "failed"),
        ("user_error", "failed"),
        ("cancel_requested", "running"),  # it may still train until Together says cancelled
        ("cancelled", "cancelled"),
    ],
)
def test_status_mapping(
    api: FakeTogether, backend: TogetherBackend, together_status: str, ours: str
) -> None:
    job = fixture("job")
    job.update(id="ft-status", status=together_status, model_output_name="acme/m-x")
    api.jobs["ft-status"] = job
    api.events["ft-status"] = []
    api.frozen.add("ft-status")
    info = backend.retrieve_job("ft-status")
    assert (info.status, info.provider_status) == (ours, together_status)
    assert info.raw["id"] == "ft-status" and info.raw["status"] == together_status
    assert info.done == (ours in ("succeeded", "failed", "cancelled"))
    assert (info.fine_tuned_model is not None) == (ours == "succeeded")


def test_a_failed_job_raises_job_failed_with_the_reason(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
    api.jobs[job.id]["status"] = "error"
    api.frozen.add(job.id)
    api._add_events(job.id, "error")
    with pytest.raises(exc.JobFailed) as info:
        job.wait(poll_interval=0)
    assert "CUDA out of memory" in str(info.value) and info.value.code == "error"


def test_cancel_and_no_pause(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
    with pytest.raises(exc.UsageError, match="cannot be paused"):
        job.pause()
    with pytest.raises(exc.UsageError, match="cancel it or let it finish"):
        job.resume()
    info = job.cancel()
    assert (info.status, info.provider_status) == ("running", "cancel_requested")
    assert not info.done
    statuses: list[tuple[str, str]] = []
    with pytest.raises(exc.JobCancelled):
        job.wait(
            poll_interval=0, on_status=lambda i: statuses.append((i.status, i.provider_status))
        )
    assert statuses[-1] == ("cancelled", "cancelled") and job.info.done


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, exc.AuthenticationError),
        (404, exc.NotFoundError),
        (429, exc.RateLimitError),
        (500, exc.InternalServerError),
    ],
)
def test_error_responses_are_mapped(status: int, cls: type[exc.APIStatusError]) -> None:
    body = copy.deepcopy(fixture("errors")[str(status)])
    # a provider that echoes the key back must not leak it through our messages
    body["error"]["message"] += f" (key {KEY}, also Bearer {KEY})"
    headers = {"x-request-id": f"req-{status}", "retry-after": "7"}
    with respx.mock() as router:
        router.get(url__regex=rf"{API}/v1/fine-tunes/.*").mock(
            return_value=httpx.Response(status, json=body, headers=headers)
        )
        with pytest.raises(cls) as info:
            make_backend().retrieve_job("ft-x")
    err = info.value
    assert err.status_code == status and err.request_id == f"req-{status}"
    assert isinstance(err.__cause__, together.APIStatusError)
    assert KEY not in str(err) and "k3yk3y" not in str(err) and "[REDACTED]" in str(err)
    assert str(status) in str(err) and "Together AI" in str(err)
    if status == 429:
        assert isinstance(err, exc.RateLimitError) and err.retry_after == 7.0
    if status == 401:
        assert err.code == "invalid_api_key" and "TOGETHER_API_KEY" in str(err)
    if status == 404:
        assert err.param == "model"


def test_connection_errors_are_mapped() -> None:
    with respx.mock() as router:
        router.get(f"{API}/v1/fine-tunes").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(exc.APIConnectionError) as info:
            make_backend().list_jobs()
        router.get(f"{API}/v1/files").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(exc.APITimeoutError):
            make_backend().list_files()
    assert "may or may not have been carried out" in str(info.value)


def test_no_key_in_any_exception_text(api: FakeTogether, train: Path, tmp_path: Path) -> None:
    backend = make_backend(wandb_api_key=WANDB_KEY)
    messages: list[str] = []
    api.create_route.mock(
        return_value=httpx.Response(
            400, json={"error": {"message": f"bad wandb key {WANDB_KEY}", "type": "x"}}
        )
    )
    for call in (
        lambda: FineTuneJob.create(
            train,
            model=LLAMA,
            backend=backend,
            journal=tmp_path / "j.jsonl",
            integrations=[{"type": "wandb", "wandb": {"project": "qa"}}],
        ),
        lambda: backend.retrieve_job("ft-missing"),
        lambda: backend.model_limits("meta-llama/Nope"),
    ):
        with pytest.raises(exc.FineTuneQAError) as info:
            call()
        messages.append(str(info.value))
    assert len(messages) == 3, messages
    assert messages[0].startswith("400 from Together AI: bad wandb key [REDACTED]")
    for m in messages:
        assert KEY not in m and WANDB_KEY not in m
    # the W&B key went to Together with the job, and nowhere on disk
    sent = json.loads(api.create_route.calls[-1].request.content)
    assert sent["wandb_key"] == WANDB_KEY and sent["wandb_project_name"] == "qa"
    assert WANDB_KEY not in (tmp_path / "j.jsonl").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- lists, events


def test_list_jobs_newest_first_with_limit(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    fid = backend.upload_file(train.read_bytes(), filename="t.jsonl").id
    ids = [
        backend.create_job(JobRequest(model=LLAMA, training_file=fid, suffix=f"s{i}")).id
        for i in range(3)
    ]
    jobs = backend.list_jobs()
    assert [j.id for j in jobs] == ids[::-1]
    assert [j.id for j in backend.list_jobs(limit=2)] == ids[:0:-1]
    with pytest.raises(exc.UsageError, match="cannot filter by it"):
        backend.list_jobs(metadata={"k": "v"})  # Together jobs have no metadata
    files = backend.list_files(purpose="fine-tune")
    assert [f.id for f in files] == [fid] and files[0].bytes == train.stat().st_size
    assert backend.file_content(fid) == train.read_bytes()


def test_events_pages_and_order(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
    job.wait(poll_interval=0)
    every = list(backend.list_events(job.id))
    total = len(api.events[job.id])
    assert len(every) == total and every[0].message == "Job finished at 2026-11-25 10:20:00"
    page = list(backend.list_events(job.id, limit=3))
    older = list(backend.list_events(job.id, after=page[-1].id, limit=100))
    assert [e.id for e in page + older] == [e.id for e in every]
    ckpt = next(e for e in every if e.data and e.data.get("type") == "checkpoint_save")
    assert ckpt.data == {"type": "checkpoint_save", "step": 4, "total_steps": 4}
    # FineTuneJob delivers each once, oldest first
    events = job.events()
    assert events[0].message == "Fine tune request created" and len(events) == total
    assert all(e.level == "info" for e in events)


def test_checkpoints_and_metrics(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
    ckpts = job.checkpoints()
    assert [c.step_number for c in ckpts] == [4, 2]
    assert (
        ckpts[0].fine_tuned_model_checkpoint
        == "acme/Meta-Llama-3.1-8B-Instruct-Reference-lumen-final"
    )
    assert ckpts[1].fine_tuned_model_checkpoint == f"{job.id}:2"
    points = job.metrics()
    assert [p.step for p in points] == [1, 2, 3, 4]
    assert points[1].train_loss == 1.4 and points[1].valid_loss == 1.6
    assert points[-1].train_loss is not None and points[-1].train_loss < points[0].train_loss


# --------------------------------------------------------------------------- request mapping


def test_hyperparameters_and_provider_options_are_sent(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    FineTuneJob.create(
        train,
        model=LLAMA,
        backend=backend,
        journal=tmp_path / "j.jsonl",
        n_epochs=3,
        batch_size=16,
        seed=7,
        suffix="qa-v2",
        provider_options={
            "lora": True,
            "lora_r": 16,
            "learning_rate": 2e-5,
            "n_checkpoints": 2,
            "warmup_ratio": 0.1,
        },
    )
    [body] = api.create_bodies
    assert body["n_epochs"] == 3 and body["batch_size"] == 16 and body["random_seed"] == 7
    assert (
        body["learning_rate"] == 2e-5 and body["n_checkpoints"] == 2 and body["warmup_ratio"] == 0.1
    )
    assert body["training_type"] == {
        "type": "Lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "lora_trainable_modules": "all-linear",
    }
    assert body["suffix"] == "qa-v2"
    estimate = json.loads(api.estimate.calls[-1].request.content)
    assert estimate["n_epochs"] == 3 and estimate["model"] == LLAMA


@pytest.mark.parametrize(("options", "expected"), [({}, 5), ({"n_evals": 2}, 2)])
def test_a_validation_file_is_evaluated(
    api: FakeTogether,
    backend: TogetherBackend,
    train: Path,
    tmp_path: Path,
    options: dict[str, Any],
    expected: int,
) -> None:
    """Together evaluates nothing by default; a validation file given must be used."""
    FineTuneJob.create(
        train,
        model=LLAMA,
        backend=backend,
        validation_file=train,
        journal=tmp_path / "j.jsonl",
        provider_options=options,
    )
    [body] = api.create_bodies
    assert body["validation_file"] and body["n_evals"] == expected
    estimate = json.loads(api.estimate.calls[-1].request.content)
    assert estimate["n_evals"] == expected


def test_dpo_request(api: FakeTogether, backend: TogetherBackend, train: Path) -> None:
    fid = backend.upload_file(train.read_bytes(), filename="t.jsonl").id
    backend.create_job(JobRequest(model=LLAMA, training_file=fid, method="dpo", beta=0.2))
    body = api.create_bodies[-1]
    assert body["training_method"]["method"] == "dpo" and body["training_method"]["dpo_beta"] == 0.2
    assert "train_on_inputs" not in body["training_method"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"provider_options": {"lora_rank": 8}}, "lora_r"),  # names the allowed keys
        ({"learning_rate_multiplier": 2.0}, "absolute learning rate"),
        ({"suffix": "s" * 41}, "at most 40"),
        ({"metadata": {"team": "qa"}}, "no metadata"),
        ({"n_epochs": 21}, "n_epochs 21 is over the maximum 20"),
        ({"batch_size": 64}, "batch_size 64 is outside 8-32"),
        ({"provider_options": {"learning_rate": 2.0}}, "learning_rate 2 is outside"),
        ({"provider_options": {"lora_r": 128}}, "over the maximum rank 64"),
        # the wrong type names the option, the type wanted and the values allowed
        ({"provider_options": {"learning_rate": "2e-5"}}, r"'learning_rate'\] must be a number"),
        ({"provider_options": {"n_checkpoints": "3"}}, r"'n_checkpoints'\] must be an int .1 to"),
        ({"provider_options": {"n_checkpoints": 2.0}}, "must be an int"),
        ({"provider_options": {"lora": "yes"}}, r"'lora'\] must be a bool \(True or False\)"),
        ({"provider_options": {"lora_r": True}}, "must be an int"),
        ({"provider_options": {"train_on_inputs": "maybe"}}, "True, False or 'auto'"),
        (
            {"provider_options": {"warmup_ratio": 1.5}},
            "warmup_ratio'] is 1.5; Together AI allows 0 to 1",
        ),
        ({"provider_options": {"learning_rate": float("nan")}}, "must be a number"),
        ({"provider_options": {"lr_scheduler_type": "step"}}, "'linear' or 'cosine'"),
        ({"provider_options": {"n_evals": 101}}, "n_evals 101 is over the maximum 100"),
        # max_seq_length within the model's limits, not in place of them
        (
            {"provider_options": {"max_seq_length": 10**6}},
            "max_seq_length 1000000 is outside 1024-131072",
        ),
        (
            {"provider_options": {"max_seq_length": 512}},
            "max_seq_length 512 is outside 1024-131072",
        ),
        # full training has its own batch sizes (8-24 here), LoRA 8-32
        (
            {"batch_size": 32, "provider_options": {"lora": False}},
            "batch_size 32 is outside 8-24 for full training",
        ),
    ],
)
def test_refused_before_anything_is_uploaded(
    api: FakeTogether,
    backend: TogetherBackend,
    train: Path,
    tmp_path: Path,
    kwargs: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(exc.UsageError, match=match):
        FineTuneJob.create(
            train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl", **kwargs
        )
    assert api.files == {} and api.jobs == {}


def test_openai_backend_takes_no_provider_options(train: Path, tmp_path: Path) -> None:
    with pytest.raises(exc.UsageError, match="takes none"):
        FineTuneJob.create(
            train,
            model="gpt-4o-mini",
            backend=OfflineBackend(),
            journal=tmp_path / "j.jsonl",
            provider_options={"lora": True},
        )
    assert "lora" in PROVIDER_OPTION_NAMES


def test_limits_check_refuses_a_too_long_example(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    limits = backend.model_limits(LLAMA)
    assert (limits.max_seq_length_sft, limits.lora_max_batch_size, limits.supports_tools) == (
        131072,
        32,
        True,
    )
    lines = train.read_text(encoding="utf-8").splitlines()
    long = json.loads(lines[2])
    long["messages"][2]["content"] = "word " * 1500
    lines[2] = json.dumps(long)
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(exc.UsageError) as info:
        FineTuneJob.create(
            train,
            model=LLAMA,
            backend=backend,
            journal=tmp_path / "j.jsonl",
            provider_options={"max_seq_length": 1024},
        )
    text = str(info.value)
    assert f"{train}:3:" in text and "1,024" in text and "o200k_base" in text
    assert api.files == {}


def test_unknown_model_limits_is_not_found(api: FakeTogether, backend: TogetherBackend) -> None:
    with pytest.raises(exc.NotFoundError) as info:
        backend.model_limits("meta-llama/Nope")
    assert info.value.param == "model" and "supported models" in str(info.value)


def test_price_estimate(api: FakeTogether, backend: TogetherBackend, train: Path) -> None:
    fid = backend.upload_file(train.read_bytes(), filename="t.jsonl").id
    est = backend.estimate_price(JobRequest(model=LLAMA, training_file=fid, n_epochs=2))
    words = train.read_bytes().count(b" ")
    assert est.source == "together" and est.available and est.allowed_to_proceed is True
    assert est.train_tokens == words * 2 and est.estimated_total_usd == pytest.approx(
        words * 2 * 0.48e-6
    )
    sent = json.loads(api.estimate.calls[-1].request.content)
    assert (
        sent["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
        and sent["n_epochs"] == 2
    )
    # Together cannot estimate: the catalogue's price on a tiktoken estimate, said so
    fallback = backend.estimate_price(
        JobRequest(model=LLAMA, training_file="file-unknown", n_epochs=2), training_path=train
    )
    assert fallback.source == "catalogue" and fallback.available
    assert fallback.train_tokens and fallback.estimated_total_usd == pytest.approx(
        fallback.train_tokens * 0.48 / 1e6
    )
    assert "train_file_not_validated" in (fallback.reason or "") and "tiktoken" in (
        fallback.reason or ""
    )
    unavailable = backend.estimate_price(JobRequest(model=LLAMA, training_file="file-unknown"))
    assert not unavailable.available and unavailable.reason == "train_file_not_validated"


# --------------------------------------------------------------------------- idempotency


def test_a_dropped_create_is_reconciled_to_one_job(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    api.drop_next_create = True
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=journal, suffix="lumen")
    assert len(api.jobs) == 1 and job.id in api.jobs
    assert api.create_route.call_count == 1  # found by model, files and suffix, not re-created
    intent = journal.find(op="job", state="intent")[-1]
    assert intent["created_after"] <= dt.datetime.now(dt.timezone.utc).timestamp()
    [created] = journal.find(op="job", state="created")
    assert created["job_id"] == job.id
    # running the script again attaches to the same job
    again = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=journal, suffix="lumen")
    assert again.id == job.id and len(api.jobs) == 1


def test_reconciliation_skips_jobs_claimed_by_the_journal(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    first = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=journal, suffix="x")
    api.drop_next_create = True
    second = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=journal, suffix="x", force_new=True
    )
    assert second.id != first.id and len(api.jobs) == 2
    assert api.create_route.call_count == 2


def test_reconciliation_ignores_older_jobs_with_the_same_request(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "other.jsonl", suffix="y"
    )
    old = next(iter(api.jobs.values()))
    old["created_at"] = iso(api.now - 3600)  # made an hour ago by someone else
    job = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl", suffix="y"
    )
    assert job.id != old["id"] and len(api.jobs) == 2


# --------------------------------------------------------------------------- chat


def test_chat_maps_request_and_response(api: FakeTogether, backend: TogetherBackend) -> None:
    resp = backend.chat(
        ChatRequest(
            model="acme/m",
            messages=[{"role": "user", "content": "Hi?"}],
            temperature=0.0,
            max_tokens=50,
            stop=["**STOP**"],
            seed=3,
            logprobs=True,
            top_logprobs=2,
        )
    )
    body = api.chat_bodies[-1]
    assert body == {
        "model": "acme/m",
        "messages": [{"role": "user", "content": "Hi?"}],
        "temperature": 0.0,
        "max_tokens": 50,
        "stop": ["**STOP**"],
        "seed": 3,
        "logprobs": 2,
    }
    assert resp.content == "I do not know." and resp.finish_reason == "stop"  # eos -> stop
    assert resp.usage.total_tokens == 25 and resp.logprobs is not None
    assert [t["token"] for t in resp.logprobs] == ["I", "do", "not", "know."]
    assert resp.request_id == "req-chat-1"  # the x-request-id header
    # Together's {token: logprob} alternatives, as OpenAI's list, best first
    assert resp.logprobs[0]["top_logprobs"] == [
        {"token": "I", "logprob": -0.1},
        {"token": "maybe", "logprob": -2.5},
    ]
    assert [len(t["top_logprobs"]) for t in resp.logprobs] == [2, 2, 2, 2]


def test_guardrail_probability_reads_together_alternatives(
    api: FakeTogether, backend: TogetherBackend
) -> None:
    from finetune_qa.guardrails import probability_from_logprobs

    req = ChatRequest(
        model="acme/m",
        messages=[{"role": "user", "content": "Hi?"}],
        logprobs=True,
        top_logprobs=3,
    )
    resp = backend.chat(req)
    # "I" (-0.1) against "maybe" (-2.5), found only among the alternatives
    p = probability_from_logprobs(resp.logprobs, on_label="I", off_label="maybe")
    want = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5))
    assert p == pytest.approx(want)
    asynced = asyncio.run(backend.achat(req))
    assert asynced.request_id == "req-chat-1" and asynced.logprobs == resp.logprobs


def test_async_chat_through_chat_model(api: FakeTogether, backend: TogetherBackend) -> None:
    bot = ChatModel("acme/m", backend=backend)
    answers = asyncio.run(bot.aask_many(["a?", "b?", "c?"]))
    assert len(answers) == 3 and len(api.chat_bodies) == 3


def test_async_clients_are_made_per_event_loop(
    api: FakeTogether, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    backend = TogetherBackend(base_url=API, max_retries=0)
    assert backend.async_per_loop
    req = ChatRequest(model="acme/m", messages=[{"role": "user", "content": "x?"}])
    for _ in range(2):  # a second asyncio.run() gets a fresh client
        assert asyncio.run(backend.achat(req)).content == "I do not know."


# --------------------------------------------------------------------------- review fixes


def _posts(api: FakeTogether, path: str) -> int:
    return sum(
        1 for c in api.router.calls if c.request.method == "POST" and c.request.url.path == path
    )


def _lists(api: FakeTogether) -> int:
    return sum(
        1
        for c in api.router.calls
        if c.request.method == "GET" and c.request.url.path == "/v1/fine-tunes"
    )


def test_the_test_backend_waits_on_a_virtual_clock(backend: TogetherBackend) -> None:
    """Polls and retries in these tests skip their waits instead of sleeping (issue #11)."""
    assert isinstance(backend, HasClock)
    before, real = backend.monotonic(), time.monotonic()
    backend.sleep(3600)
    assert backend.monotonic() - before >= 3600 and time.monotonic() - real < 60


def test_sdk_retries_never_resend_a_create(api: FakeTogether, train: Path, tmp_path: Path) -> None:
    """A backend built with the SDK's default retries (2): one POST, one job, one file."""
    backend = TogetherBackend(api_key=KEY, base_url=API)  # max_retries=2, as a user builds it
    assert backend.client.max_retries == 2
    virtual_clock(backend)  # finetune_qa's own waits
    api.drop_next_create = True  # the job is made, the answer lost
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=tmp_path / "j.jsonl")
    assert list(api.jobs) == [job.id]
    assert _posts(api, "/v1/fine-tunes") == 1
    assert _posts(api, "/v1/files") == 1 and len(api.files) == 1
    # called directly, the backend sends a create once and reports the lost answer
    api.drop_next_create = True
    fid = next(iter(api.files))
    with pytest.raises(exc.APIConnectionError):
        backend.create_job(JobRequest(model=LLAMA, training_file=fid, suffix="direct"))
    assert _posts(api, "/v1/fine-tunes") == 2 and len(api.jobs) == 2
    # reads keep the SDK's retries
    assert backend.client.max_retries == 2


def test_another_run_with_other_settings_gets_its_own_job(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    """Two journals, within CLOCK_SKEW, different epochs: B never adopts A's job."""
    a = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "a.jsonl", n_epochs=1
    )
    lists_before = _lists(api)
    b = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "b.jsonl", n_epochs=3
    )
    assert a.id != b.id and api.jobs[b.id]["n_epochs"] == 3
    assert _lists(api) == lists_before, "a new intent sends its create without a look-up"
    # B's create answer is lost: the look-up finds B's job, not A's (other epochs)
    api.drop_next_create = True
    c = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "c.jsonl", n_epochs=2
    )
    assert c.id not in (a.id, b.id) and api.jobs[c.id]["n_epochs"] == 2
    assert len(api.jobs) == 3 and _posts(api, "/v1/fine-tunes") == 3


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"n_epochs": 1}, {"n_epochs": 3}),
        ({"batch_size": 8}, {"batch_size": 16}),
        ({"seed": 1}, {"seed": 2}),
        (
            {"provider_options": {"learning_rate": 1e-5}},
            {"provider_options": {"learning_rate": 2e-5}},
        ),
        ({"provider_options": {"lora": True}}, {"provider_options": {"lora": False}}),
        (
            {"provider_options": {"lora": True, "lora_r": 8}},
            {"provider_options": {"lora": True, "lora_r": 16}},
        ),
        ({"provider_options": {"n_checkpoints": 1}}, {"provider_options": {"n_checkpoints": 3}}),
    ],
)
def test_a_lost_create_is_matched_by_the_settings_together_echoes(
    api: FakeTogether,
    backend: TogetherBackend,
    train: Path,
    tmp_path: Path,
    first: dict[str, Any],
    second: dict[str, Any],
) -> None:
    a = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "a.jsonl", **first
    )
    api.drop_next_create = True
    b = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "b.jsonl", **second
    )
    assert b.id != a.id and len(api.jobs) == 2 and _posts(api, "/v1/fine-tunes") == 2
    ra, rb = (
        JobRequest(model=LLAMA, training_file=api.jobs[a.id]["training_file"], **kw)
        for kw in (first, second)
    )
    assert backend.matches_request(a.info, ra) and not backend.matches_request(a.info, rb)
    assert backend.matches_request(b.info, rb)


def test_two_runs_with_the_same_request_are_not_guessed_between(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    a = FineTuneJob.create(
        train, model=LLAMA, backend=backend, journal=tmp_path / "a.jsonl", n_epochs=2
    )
    api.drop_next_create = True
    with pytest.raises(exc.BackendError) as info:
        FineTuneJob.create(
            train, model=LLAMA, backend=backend, journal=tmp_path / "b.jsonl", n_epochs=2
        )
    [b_id] = [j for j in api.jobs if j != a.id]
    text = str(info.value)
    assert info.value.code == "ambiguous_job"
    assert a.id in text and b_id in text and "FineTuneJob.attach" in text and "b.jsonl" in text
    assert _posts(api, "/v1/fine-tunes") == 2, "nothing more was sent"


def test_a_failed_look_up_after_a_lost_create_raises_instead_of_posting_again(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "j.jsonl"
    api.drop_next_create = True
    api.failing_lists = 100
    with pytest.raises(exc.InternalServerError) as info:
        FineTuneJob.create(train, model=LLAMA, backend=backend, journal=journal)
    assert "503 from Together AI" in str(info.value) and "re-run" in str(info.value).lower()
    assert str(journal) in str(info.value)
    assert _posts(api, "/v1/fine-tunes") == 1 and len(api.jobs) == 1
    api.failing_lists = 0
    job = FineTuneJob.create(train, model=LLAMA, backend=backend, journal=journal)
    assert list(api.jobs) == [job.id] and _posts(api, "/v1/fine-tunes") == 1


def test_together_rules_validate_a_model_outside_the_catalogue(
    api: FakeTogether, backend: TogetherBackend, tmp_path: Path
) -> None:
    """5 examples are too few for OpenAI, enough for Together."""
    five = tmp_path / "five.jsonl"
    five.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}?"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                }
            )
            + "\n"
            for i in range(5)
        )
    )
    model = "meta-llama/Llama-3.3-70B-Instruct-Reference"
    job = FineTuneJob.create(five, model=model, backend=backend, journal=tmp_path / "j.jsonl")
    assert job.info.model == model
    assert backend.validation_provider == "together"
    # the same file is refused on OpenAI, whose rules need 10
    with pytest.raises(exc.ValidationFailed, match="too_few_examples"):
        FineTuneJob.create(
            five, model="gpt-4o-mini", backend=OfflineBackend(), journal=tmp_path / "o.jsonl"
        )
    # and Together's own rules apply: roles must alternate
    twice = tmp_path / "twice.jsonl"
    twice.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "a?"},
                    {"role": "user", "content": "b?"},
                    {"role": "assistant", "content": "c"},
                ]
            }
        )
        + "\n"
    )
    with pytest.raises(exc.ValidationFailed):
        FineTuneJob.create(twice, model=model, backend=backend, journal=tmp_path / "j.jsonl")


def test_the_wandb_and_api_keys_stay_out_of_debug_logs(
    api: FakeTogether, train: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = make_backend(wandb_api_key=WANDB_KEY)
    FineTuneJob.create(
        train,
        model=LLAMA,
        backend=backend,
        journal=tmp_path / "j.jsonl",
        integrations=[{"type": "wandb", "wandb": {"project": "qa"}}],
    )
    sent = [
        json.loads(c.request.content)
        for c in api.router.calls
        if c.request.url.path == "/v1/fine-tunes"
    ]
    assert sent[-1]["wandb_key"] == WANDB_KEY  # Together did get it
    assert "Request options" in caplog.text and "[REDACTED]" in caplog.text  # the path was logged
    assert WANDB_KEY not in caplog.text and KEY not in caplog.text
    # installed once, however many backends are built
    make_backend(wandb_api_key=WANDB_KEY)
    base = logging.getLogger("together._base_client")
    assert sum(type(f).__name__ == "SecretsFilter" for f in base.filters) == 1


def test_price_estimate_sends_the_training_type(
    api: FakeTogether, backend: TogetherBackend, train: Path
) -> None:
    fid = backend.upload_file(train.read_bytes(), filename="t.jsonl").id

    def sent(**options: Any) -> dict[str, Any]:
        backend.estimate_price(JobRequest(model=LLAMA, training_file=fid, provider_options=options))
        return dict(json.loads(api.estimate.calls[-1].request.content))

    assert sent(lora=False)["training_type"] == {"type": "Full"}
    assert sent(lora=True, lora_r=16)["training_type"] == {
        "type": "Lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "lora_trainable_modules": "all-linear",
    }
    assert sent(lora=True)["training_type"]["lora_r"] == 64  # the model's default rank
    assert "training_type" not in sent()  # Together's default (LoRA), as create sends it


def test_option_specs_cover_every_option() -> None:
    from finetune_qa.backends.together._options import OPTION_SPECS

    assert set(OPTION_SPECS) == PROVIDER_OPTION_NAMES


def test_full_training_batch_size_within_its_limits_is_sent(
    api: FakeTogether, backend: TogetherBackend, train: Path, tmp_path: Path
) -> None:
    FineTuneJob.create(
        train,
        model=LLAMA,
        backend=backend,
        journal=tmp_path / "j.jsonl",
        batch_size=24,
        provider_options={"lora": False, "max_seq_length": 4096},
    )
    [body] = api.create_bodies
    assert body["batch_size"] == 24 and body["training_type"] == {"type": "Full"}
    assert body["max_seq_length"] == 4096
