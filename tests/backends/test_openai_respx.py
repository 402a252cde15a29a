"""The same lifecycle code against a client a user builds for OpenAI, with respx as the service.

openai 3.x sends through httpx2, which respx cannot see; a user can still hand openai a
legacy ``httpx.Client`` (openai's documented escape hatch), and respx intercepts that. The
responses below replay the shapes of OpenAI's API reference, written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import respx

from finetune_qa import DatasetBuilder, FineTuneJob, QAPair
from finetune_qa import exceptions as exc
from finetune_qa.backends import OpenAIBackend

BASE = "https://api.openai.com/v1"
KEY = "sk-proj-RESPXPLANTEDKEY0123456789"
SYS = "You are a factual chatbot that answers questions about Acme."


def client() -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=BASE, max_retries=0, http_client=httpx.Client())


def job_json(status: str, **extra: Any) -> dict[str, Any]:
    base = {
        "object": "fine_tuning.job",
        "id": "ftjob-abc123",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1767225600,
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": "org-123",
        "result_files": [],
        "status": status,
        "validation_file": None,
        "training_file": "file-train",
        "hyperparameters": {
            "n_epochs": "auto",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
        },
        "trained_tokens": None,
        "error": None,
        "seed": 7,
        "estimated_finish": None,
        "integrations": [],
        "metadata": None,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}},
    }
    base.update(extra)
    return base


def test_the_seed_story_against_a_user_built_openai_client(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    pairs = [
        QAPair(question=f"What does plan {i} include?", answer=f"Plan {i} includes {i} anvils.")
        for i in range(12)
    ]
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs).build(train)
    polls = iter(["validating_files", "queued", "running", "succeeded"])
    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get("/files").mock(
            return_value=httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
        )
        upload = api.post("/files").mock(
            return_value=httpx.Response(
                200,
                json={
                    "object": "file",
                    "id": "file-train",
                    "bytes": train.stat().st_size,
                    "created_at": 1767225600,
                    "filename": "train.jsonl",
                    "purpose": "fine-tune",
                    "status": "processed",
                },
            )
        )
        # a new job's token is looked up first (a lost journal must not start a second job)
        api.get("/fine_tuning/jobs").mock(
            return_value=httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
        )
        create = api.post("/fine_tuning/jobs").mock(
            return_value=httpx.Response(200, json=job_json("validating_files"))
        )

        def retrieve(request: httpx.Request) -> httpx.Response:
            status = next(polls)
            done = (
                {
                    "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:org::abc123",
                    "finished_at": 1767226000,
                }
                if status == "succeeded"
                else {}
            )
            return httpx.Response(200, json=job_json(status, **done))

        api.get("/fine_tuning/jobs/ftjob-abc123").mock(side_effect=retrieve)
        api.get("/fine_tuning/jobs/ftjob-abc123/events").mock(
            return_value=httpx.Response(
                200,
                json={
                    "object": "list",
                    "has_more": False,
                    "data": [  # newest first, as the API lists them
                        {
                            "object": "fine_tuning.job.event",
                            "id": "ftevent-3",
                            "created_at": 1767226000,
                            "level": "info",
                            "message": "The job has successfully completed",
                            "type": "message",
                        },
                        {
                            "object": "fine_tuning.job.event",
                            "id": "ftevent-2",
                            "created_at": 1767225900,
                            "level": "info",
                            "message": "Step 1/1: training loss=0.50",
                            "type": "metrics",
                            "data": {"step": 1, "train_loss": 0.5, "total_steps": 1},
                        },
                        {
                            "object": "fine_tuning.job.event",
                            "id": "ftevent-1",
                            "created_at": 1767225600,
                            "level": "info",
                            "message": "Created fine-tuning job: ftjob-abc123",
                            "type": "message",
                        },
                    ],
                },
            )
        )
        chat = api.post("/chat/completions").mock(
            return_value=httpx.Response(
                200,
                json={
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1767226100,
                    "model": "ft:gpt-4o-mini-2024-07-18:org::abc123",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "message": {
                                "role": "assistant",
                                "content": "Plan 3 includes 3 anvils. ",
                                "refusal": None,
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38},
                },
            )
        )

        backend = OpenAIBackend(client())
        job = FineTuneJob.create(
            train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl", seed=7
        )
        messages = []
        job._sleep = lambda s: None  # no real waiting between polls in a test
        info = job.wait(on_event=lambda e: messages.append(e.message))
        answer = job.chat_model().ask("What does plan 3 include?")

    assert (
        info.status == "succeeded"
        and job.fine_tuned_model == "ft:gpt-4o-mini-2024-07-18:org::abc123"
    )
    assert messages[0].startswith("Created") and messages[-1].startswith("The job has successfully")
    assert answer.text == "Plan 3 includes 3 anvils."
    sent = json.loads(create.calls.last.request.content)
    assert sent["method"]["type"] == "supervised" and sent["seed"] == 7
    assert sent["metadata"]["finetune_qa_token"]  # the idempotency token travels with the job
    chat_body = json.loads(chat.calls.last.request.content)
    assert chat_body["stop"] == ["**STOP**"] and chat_body["messages"][0] == {
        "role": "system",
        "content": SYS,
    }
    assert upload.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in (tmp_path / "j.jsonl").read_text()


ERRORS = [
    (
        400,
        {
            "message": "Invalid 'n_epochs'",
            "type": "invalid_request_error",
            "param": "n_epochs",
            "code": None,
        },
        exc.BadRequestError,
    ),
    (
        401,
        {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
        exc.AuthenticationError,
    ),
    (
        404,
        {
            "message": "Could not find fine-tuning job ftjob-x",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        exc.NotFoundError,
    ),
    (
        429,
        {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
        exc.RateLimitError,
    ),
    (
        500,
        {"message": "The server had an error", "type": "server_error", "param": None, "code": None},
        exc.InternalServerError,
    ),
]


@pytest.mark.parametrize(("status", "error", "cls"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_error_paths_map_to_our_exceptions(
    status: int, error: dict[str, Any], cls: type[exc.APIStatusError]
) -> None:
    with respx.mock(base_url=BASE) as api:
        api.get("/fine_tuning/jobs/ftjob-x").mock(
            return_value=httpx.Response(
                status,
                json={"error": error},
                headers={"x-request-id": "req_xyz", "retry-after": "3"},
            )
        )
        with pytest.raises(cls) as info:
            OpenAIBackend(client()).retrieve_job("ftjob-x")
    e = info.value
    assert type(e) is cls and e.status_code == status and e.request_id == "req_xyz"
    assert e.param == error["param"] and e.code == error["code"]
    assert KEY not in str(e) and KEY not in repr(e.args)
    if cls is exc.RateLimitError:
        assert isinstance(e, exc.RateLimitError) and e.retry_after == 3.0


def test_connection_errors_and_timeouts() -> None:
    with respx.mock(base_url=BASE) as api:
        api.get("/fine_tuning/jobs/ftjob-x").mock(
            side_effect=httpx.ConnectError("connection refused")
        )
        with pytest.raises(exc.APIConnectionError):
            OpenAIBackend(client()).retrieve_job("ftjob-x")
        api.get("/fine_tuning/jobs/ftjob-y").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(exc.APITimeoutError):
            OpenAIBackend(client()).retrieve_job("ftjob-y")


def test_azure_openai_client_works_unchanged() -> None:
    azure_base = "https://acme.openai.azure.com/openai"
    azure = openai.AzureOpenAI(
        api_key=KEY,
        azure_endpoint="https://acme.openai.azure.com",
        api_version="2024-10-21",
        max_retries=0,
        http_client=httpx.Client(),
    )
    with respx.mock(base_url=azure_base) as api:
        route = api.get("/fine_tuning/jobs/ftjob-abc123").mock(
            return_value=httpx.Response(200, json=job_json("running"))
        )
        info = OpenAIBackend(azure).retrieve_job("ftjob-abc123")
    assert info.status == "running" and info.id == "ftjob-abc123"
    request = route.calls.last.request
    assert request.url.params["api-version"] == "2024-10-21" and request.headers["api-key"] == KEY


def test_a_lost_create_is_sent_once_with_the_clients_default_retries(tmp_path: Path) -> None:
    """openai's default max_retries=2 would resend POST /fine_tuning/jobs; the backend does not."""
    train = tmp_path / "train.jsonl"
    pairs = [
        QAPair(question=f"What does plan {i} include?", answer=f"Plan {i} includes {i} anvils.")
        for i in range(12)
    ]
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs).build(train)
    made: list[dict[str, Any]] = []

    def create_then_drop(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        made.append(job_json("validating_files", metadata=body["metadata"]))
        raise httpx.ConnectError("connection reset by peer", request=request)  # the job exists

    with respx.mock(base_url=BASE, assert_all_called=True) as api:
        api.get("/files").mock(
            return_value=httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
        )
        api.post("/files").mock(
            return_value=httpx.Response(
                200,
                json={
                    "object": "file",
                    "id": "file-train",
                    "bytes": train.stat().st_size,
                    "created_at": 1767225600,
                    "filename": "train.jsonl",
                    "purpose": "fine-tune",
                    "status": "processed",
                },
            )
        )
        create = api.post("/fine_tuning/jobs").mock(side_effect=create_then_drop)
        listed = api.get("/fine_tuning/jobs").mock(
            side_effect=lambda request: httpx.Response(
                200, json={"object": "list", "data": made, "has_more": False}
            )
        )
        user_client = openai.OpenAI(
            api_key=KEY, base_url=BASE, http_client=httpx.Client()
        )  # max_retries=2
        assert user_client.max_retries == 2
        backend = OpenAIBackend(user_client)
        backend.sleep = lambda s: None  # type: ignore[attr-defined]  # finetune_qa's own waits
        job = FineTuneJob.create(
            train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "j.jsonl"
        )
    assert create.call_count == 1 and len(made) == 1 and job.id == made[0]["id"]
    assert listed.call_count == 2  # asked for its token before the send, then found by it
    assert (
        listed.calls.last.request.url.params["metadata[finetune_qa_token]"]
        == made[0]["metadata"]["finetune_qa_token"]
    )
