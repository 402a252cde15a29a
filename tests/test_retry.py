"""The one retry policy, proven rule by rule at each call site: jobs, uploads and chat.

Each site runs on the offline backend with failures scripted in front of the one
request under test (job creation, the file upload, the chat completion); every wait
goes through the backend's virtual clock and is recorded, so nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from finetune_qa import ChatModel, DatasetBuilder, FineTuneJob, sample_csv
from finetune_qa._retry import ATTEMPTS, MAX_WAIT, RetryPolicy, is_quota_error
from finetune_qa.backends import OfflineBackend
from finetune_qa.backends.base import ChatRequest, ChatResponse, FileInfo, JobInfo, JobRequest
from finetune_qa.exceptions import (
    APIConnectionError,
    BackendError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)

SITES = {"jobs": "create_job", "uploads": "upload_file", "chat": "chat"}
"""Each call site and the backend request it retries."""


class Scripted(OfflineBackend):
    """The offline backend with scripted failures in front of chosen requests.

    ``faults[op]`` are raised, one per call, before ``op`` reaches the fake API; the
    waits asked of its clock are kept in ``slept``.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.faults: dict[str, list[BackendError]] = {op: [] for op in SITES.values()}
        self.calls: Counter[str] = Counter()
        self.slept: list[float] = []

    def _next(self, op: str) -> None:
        self.calls[op] += 1
        if self.faults[op]:
            raise self.faults[op].pop(0)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)

    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        self._next("upload_file")
        return super().upload_file(data, filename=filename, purpose=purpose)

    def create_job(self, request: JobRequest) -> JobInfo:
        self._next("create_job")
        return super().create_job(request)

    def chat(self, request: ChatRequest) -> ChatResponse:
        self._next("chat")
        return super().chat(request)


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("retry") / "train.jsonl"
    DatasetBuilder().add_source(sample_csv()).build(path)
    return path


def run(site: str, backend: Scripted, train: Path, tmp_path: Path) -> Any:
    """The call site's public call: create a job (jobs, uploads) or ask (chat)."""
    if site == "chat":
        return ChatModel("gpt-4o-mini", backend=backend, card=False).ask("Is there a dark mode?")
    return FineTuneJob.create(
        train, model="gpt-4o-mini", backend=backend, journal=tmp_path / "journal.jsonl"
    )


def rate_limit(retry_after: float | None = None, code: str | None = None) -> RateLimitError:
    return RateLimitError("429: slow down", retry_after=retry_after, status_code=429, code=code)


@pytest.mark.parametrize("site", SITES)
def test_retry_after_zero_retries_at_once(site: str, train: Path, tmp_path: Path) -> None:
    backend = Scripted()
    backend.faults[SITES[site]].append(rate_limit(retry_after=0.0))
    run(site, backend, train, tmp_path)
    assert backend.calls[SITES[site]] == 2
    assert backend.slept[:1] == [0.0]  # not the 1 s backoff: the provider said "now"


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("code", ["insufficient_quota", "billing_hard_limit_reached"])
def test_a_quota_error_is_never_retried(site: str, code: str, train: Path, tmp_path: Path) -> None:
    backend = Scripted()
    backend.faults[SITES[site]].append(rate_limit(retry_after=1.0, code=code))
    with pytest.raises(RateLimitError) as info:
        run(site, backend, train, tmp_path)
    assert info.value.code == code
    assert backend.calls[SITES[site]] == 1 and backend.slept == []


@pytest.mark.parametrize("site", SITES)
def test_attempts_are_capped(site: str, train: Path, tmp_path: Path) -> None:
    backend = Scripted()
    backend.faults[SITES[site]].extend(rate_limit() for _ in range(ATTEMPTS + 3))
    with pytest.raises(RateLimitError):
        run(site, backend, train, tmp_path)
    assert backend.calls[SITES[site]] == ATTEMPTS  # the one cap, at every site
    assert len(backend.slept) == ATTEMPTS - 1


@pytest.mark.parametrize("site", SITES)
def test_waits_are_capped(site: str, train: Path, tmp_path: Path) -> None:
    backend = Scripted()
    backend.faults[SITES[site]].append(rate_limit(retry_after=3600.0))
    run(site, backend, train, tmp_path)
    assert backend.calls[SITES[site]] == 2 and backend.slept[:1] == [MAX_WAIT]


@pytest.mark.parametrize("site", SITES)
def test_backoff_is_exponential_with_jitter_below_its_nominal_wait(
    site: str, train: Path, tmp_path: Path
) -> None:
    backend = Scripted()
    backend.faults[SITES[site]].extend([rate_limit(), rate_limit(), rate_limit()])
    run(site, backend, train, tmp_path)
    waits = backend.slept[:3]
    assert len(waits) == 3
    for wait, nominal in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert 0.75 * nominal <= wait <= nominal


@pytest.mark.parametrize(
    ("site", "route"), [("jobs", "POST /fine_tuning/jobs"), ("uploads", "POST /files")]
)
@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}])
def test_a_lost_create_is_looked_up_before_it_is_sent_again(
    site: str, route: str, fault: dict[str, Any], train: Path, tmp_path: Path
) -> None:
    backend = Scripted()
    # the provider makes the job (the file), then the answer is lost
    backend.fake.inject(route, after_effect=True, **fault)
    job = run(site, backend, train, tmp_path)
    assert backend.calls[SITES[site]] == 1  # found, not sent again
    assert len(backend.list_jobs(limit=100)) == 1
    assert len(backend.list_files(purpose="fine-tune")) == 1
    assert job.wait().status == "succeeded"


def test_chat_is_sent_again_after_a_lost_answer(train: Path, tmp_path: Path) -> None:
    """The chat site's side of the same rule: a completion creates nothing to look up."""
    backend = Scripted()
    backend.faults["chat"].append(APIConnectionError("no answer"))
    answer = run("chat", backend, train, tmp_path)
    assert answer.finish_reason == "stop" and backend.calls["chat"] == 2


# ------------------------------------------------------------------ the policy itself
def test_lookup_runs_before_a_resend_and_before_giving_up() -> None:
    order: list[str] = []
    found: list[str | None] = [None, "job-1"]

    def send() -> str:
        order.append("send")
        raise InternalServerError("502", status_code=502)

    def lookup() -> str | None:
        order.append("lookup")
        return found.pop(0)

    policy = RetryPolicy(attempts=2)
    assert policy.call(send, sleep=lambda s: None, lookup=lookup) == "job-1"
    # the second try failed too, and was the last: the look-up before giving up found it
    assert order == ["send", "lookup", "send", "lookup"]


def test_giving_up_after_a_lost_answer_says_so() -> None:
    def send() -> str:
        raise APIConnectionError("no answer")

    policy = RetryPolicy(attempts=2)
    with pytest.raises(APIConnectionError, match="re-run to reconcile"):
        policy.call(
            send, sleep=lambda s: None, lookup=lambda: None, unsettled_hint="re-run to reconcile"
        )


def test_an_earlier_runs_request_is_looked_up_first() -> None:
    policy = RetryPolicy()
    sent: list[int] = []
    assert (
        policy.call(
            lambda: sent.append(1), sleep=lambda s: None, lookup=lambda: "x", maybe_done=True
        )
        == "x"
    )
    assert sent == []


def test_errors_that_are_not_transient_are_raised_at_once() -> None:
    calls: list[int] = []

    def send() -> None:
        calls.append(1)
        raise BadRequestError("400", status_code=400)

    with pytest.raises(BadRequestError):
        RetryPolicy().call(send, sleep=lambda s: None)
    assert calls == [1]
    assert is_quota_error(rate_limit(code="insufficient_quota"))
    assert not is_quota_error(rate_limit(code="rate_limit_exceeded"))


def test_the_async_form_awaits_an_async_sleep() -> None:
    waited: list[float] = []
    tries: list[int] = []

    async def asleep(seconds: float) -> None:
        waited.append(seconds)

    async def send() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise rate_limit(retry_after=0.0 if len(tries) == 1 else None)
        return "ok"

    policy = RetryPolicy(rng=random.Random(0))
    assert asyncio.run(policy.acall(send, sleep=asleep)) == "ok"
    assert waited[0] == 0.0 and 1.5 <= waited[1] <= 2.0
