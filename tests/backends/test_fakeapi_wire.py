"""Transport adapters of the offline backend: async clients, latency, HTTP families, a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import anyio
import openai
import pytest

from finetune_qa import QAPair, TrainingExample
from finetune_qa.backends import _wire
from finetune_qa.backends._fake import FakeOpenAI
from finetune_qa.backends._wire import http_family, mock_transport, openai_client, serve

STOP = "**STOP**"
PAIRS = [
    (f"What does the plan number {i} include?", f"Plan {i} includes {i} anvils a month.")
    for i in range(12)
]
TRAIN = (
    "\n".join(
        TrainingExample.from_qa(QAPair(question=q, answer=a), stop=STOP).to_json() for q, a in PAIRS
    )
    + "\n"
).encode()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_importing_the_backend_imports_no_http_library() -> None:
    code = (
        "import sys, finetune_qa.backends._wire, finetune_qa.backends._fake; "
        "print(sorted(m for m in ('httpx', 'httpx2', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_http_family_follows_the_installed_openai() -> None:
    major = int(openai.__version__.split(".")[0])
    assert http_family().__name__ == ("httpx2" if major >= 3 else "httpx")


def test_mock_transport_builds_responses_of_the_requested_family() -> None:
    import httpx  # installed with respx (a dev dependency)

    fake = FakeOpenAI()
    with httpx.Client(
        transport=mock_transport(fake, family="httpx"), base_url="https://x.invalid"
    ) as http:
        r = http.get("/v1/models/gpt-4o-mini", headers={"Authorization": "Bearer k"})
        assert isinstance(r, httpx.Response) and r.status_code == 200
        assert r.json()["id"] == "gpt-4o-mini" and r.headers["x-request-id"] == "req_1"
        r = http.get(
            "/v1/fine_tuning/jobs",
            params={"metadata[team]": "a", "limit": "5"},
            headers={"Authorization": "Bearer k"},
        )
        assert r.json() == {"object": "list", "data": [], "has_more": False}
        assert fake.requests[-1].query == {"metadata[team]": "a", "limit": "5"}
        fake.inject("GET /models", drop=True)
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/v1/models", headers={"Authorization": "Bearer k"})


@pytest.mark.anyio
async def test_async_client_lifecycle() -> None:
    fake = FakeOpenAI(seed=1)
    client = openai_client(fake, async_=True, max_retries=0, _strict_response_validation=True)
    async with client:
        f = await client.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune")
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
        assert job.status == "validating_files"
        statuses = []
        while job.status not in ("succeeded", "failed"):
            fake.clock.sleep(15)
            job = await client.fine_tuning.jobs.retrieve(job.id)
            statuses.append(job.status)
        assert job.status == "succeeded" and "running" in statuses
        events = [e async for e in client.fine_tuning.jobs.list_events(job.id, limit=25)]
        assert events[0].message == "The job has successfully completed"
        assert events[-1].message.startswith("Created fine-tuning job")
        assert job.fine_tuned_model is not None
        reply = await client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[{"role": "user", "content": PAIRS[5][0]}],
            stop=STOP,
            temperature=0,
        )
        assert reply.choices[0].message.content == PAIRS[5][1] + " "
        fake.inject("POST /chat/completions", drop=True)
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )


class _Waits:
    """Stands in for ``_wire``'s ``asyncio`` / ``time``: counts the latency waits in flight.

    Overlap is measured by counting, not by elapsed time, which a busy machine stretches.
    An async wait holds until ``gather`` waits are in flight at once (a transport that
    blocked the event loop would never get there), then waits the latency for real.
    """

    def __init__(self, gather: int = 0) -> None:
        self.gather, self.now, self.peak = gather, 0, 0
        self.waited: list[float] = []
        self._all_in = asyncio.Event()

    def _enter(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self.now >= self.gather:
            self._all_in.set()

    async def async_sleep(self, seconds: float) -> None:
        self._enter(seconds)
        try:
            await asyncio.wait_for(self._all_in.wait(), timeout=30)
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1

    def sleep(self, seconds: float) -> None:
        self._enter(seconds)
        try:
            time.sleep(seconds)
        finally:
            self.now -= 1


@pytest.mark.anyio
async def test_async_latency_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _Waits(gather=20)
    monkeypatch.setattr(_wire, "asyncio", SimpleNamespace(sleep=waits.async_sleep))
    fake = FakeOpenAI()
    client = openai_client(fake, async_=True, max_retries=0)
    async with client:
        answers: list[str | None] = []

        async def ask(i: int) -> None:
            r = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"What is topic {i}?"}],
                temperature=0,
            )
            answers.append(r.choices[0].message.content)

        fake.inject("POST /chat/completions", latency=0.05, times=None)
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(ask, i)
    assert len(answers) == 20 and all(answers)
    # all 20 waited their latency at once: the async transport never blocks the loop
    assert waits.peak == 20 and waits.waited == [0.05] * 20


def test_sync_latency_is_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _Waits()
    monkeypatch.setattr(_wire, "time", SimpleNamespace(sleep=waits.sleep, monotonic=time.monotonic))
    fake = FakeOpenAI()
    fake.inject("GET /models", latency=0.05)
    with openai_client(fake, max_retries=0) as client:
        start = time.perf_counter()
        client.models.list()
        assert time.perf_counter() - start >= 0.05 and waits.waited == [0.05]
        client.models.list()  # the fault was used up: no wait (counted, not timed)
        assert waits.waited == [0.05]


def test_http_server_serves_any_openai_client() -> None:
    fake = FakeOpenAI()
    server = serve(fake, port=0, speedup=600.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as client:
            f = client.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune")
            assert f.bytes == len(TRAIN)
            assert client.files.content(f.id).content == TRAIN
            job = client.fine_tuning.jobs.create(
                model="gpt-4o-mini", training_file=f.id, suffix="srv"
            )
            assert job.status == "validating_files" and fake.clock.realtime
            # the clock follows real time x600: validation (10 s) is over within ~20 ms
            deadline = time.monotonic() + 5
            while client.fine_tuning.jobs.retrieve(job.id).status == "validating_files":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "What is Star Wars?"}],
                temperature=0,
            )
            assert (reply.choices[0].message.content or "").startswith("Here is a general answer")
            with pytest.raises(openai.NotFoundError):
                client.fine_tuning.jobs.retrieve("ftjob-missing")
            fake.inject("GET /models", drop=True)
            with pytest.raises(openai.APIConnectionError):
                client.models.list()
            assert any(m.id == "gpt-4o-mini" for m in client.models.list())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        fake.clock.freeze()


def test_chat_completions_stream_as_server_sent_events() -> None:
    """Issue #13, finding 9: clients that stream by default work against the offline API."""
    client = openai_client(FakeOpenAI(), max_retries=0)
    messages = [{"role": "user", "content": "What is Star Wars?"}]
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # without stream_options there is no usage chunk; stream_options alone is refused
    plain = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, temperature=0, stream=True
        )
    )
    assert all(c.usage is None for c in plain)
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream_options={"include_usage": True}
        )


def test_serve_streams_to_the_official_client_over_http() -> None:
    server = serve(FakeOpenAI(), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hello there?"}],
            stream=True,
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert "".join(pieces).strip()
    finally:
        server.shutdown()
        server.server_close()


def test_serve_logs_one_line_per_request() -> None:
    """Issue #13, finding 9: `serve` says what it answered, one line per request."""
    lines: list[str] = []
    server = serve(FakeOpenAI(), port=0, request_log=lines.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        client.models.list()
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
    finally:
        server.shutdown()
        server.server_close()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /v1/models 200",
        "GET /v1/models/no-such-model 404",
    ]
    assert all(line.endswith("s") for line in lines)


def test_the_serve_command_logs_requests_unless_quiet() -> None:
    import re

    for quiet in (False, True):
        argv = [sys.executable, "-m", "finetune_qa", "serve", "--port", "0"] + (
            ["-q"] if quiet else []
        )
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            url = re.search(r"http://\S+/v1", proc.stderr.readline())
            assert url is not None
            openai.OpenAI(base_url=url.group(0), api_key="x", max_retries=0).models.list()
        finally:
            proc.terminate()
            _, rest = proc.communicate(timeout=30)
        assert ("GET /v1/models 200" in rest) is not quiet
