"""A stateful respx fake of Together AI's API, shared by the Together and migration tests.

The fake replays the request and response shapes of Together's API as the ``together``
SDK 3.x sends and parses them (fixtures in ``backends/together_api/``): the three-step
upload (``POST /v1/files`` answered with a 302 to a signed URL, ``PUT`` of the bytes,
``POST /v1/files/{id}/preprocess``), ``/v1/fine-tunes`` (model limits, price estimate,
create, retrieve, list, cancel, events, checkpoints, metrics) and chat completions.

Use it inside ``respx.mock``::

    with respx.mock(assert_all_called=False) as router:
        api = FakeTogether(router)
        backend = make_backend()  # a TogetherBackend whose SDK clients respx intercepts

(:func:`fake_together` does both.) Every request the SDK sends is recorded on
``api.router.calls``, so a test can assert that nothing reached Together.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import respx
import together

from finetune_qa.backends import TogetherBackend

API = "https://api.together.ai"
UPLOADS = "https://together-uploads.s3.amazonaws.com"
KEY = "tgp_v1_" + "k3y" * 12
WANDB_KEY = "wandb-secret-" + "w" * 28
LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
MODELS = (LLAMA, "Qwen/Qwen3-8B", "meta-llama/Llama-3.3-70B-Instruct-Reference")
"""Models the fake fine-tunes (the last is not in finetune_qa's catalogue)."""
FIXTURES = Path(__file__).parent / "backends" / "together_api"
STAGES = ["pending", "queued", "running", "compressing", "uploading", "completed"]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


class FakeTogether:
    """A small stateful Together AI: files, fine-tunes that advance one stage per retrieve, chat."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.now = int(time.time())  # jobs are matched against the journal's wall-clock time
        self.files: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.frozen: set[str] = set()  # jobs that do not advance on retrieve
        self.create_bodies: list[dict[str, Any]] = []
        self.drop_next_create = False
        self.failing_lists = 0  # GET /v1/fine-tunes answers 503 this many more times
        self.chat_bodies: list[dict[str, Any]] = []
        self.router = router
        r = router
        r.post(f"{API}/v1/files").mock(side_effect=self._files_post)
        r.put(url__regex=rf"{UPLOADS}/put/(?P<fid>[^/?]+)").mock(side_effect=self._put)
        r.post(url__regex=rf"{API}/v1/files/(?P<fid>[^/]+)/preprocess").mock(
            side_effect=self._preprocess
        )
        r.get(url__regex=rf"{API}/v1/files/(?P<fid>[^/]+)/content").mock(side_effect=self._content)
        r.get(f"{API}/v1/files").mock(side_effect=self._files_list)
        r.get(f"{API}/v1/fine-tunes/models/limits").mock(side_effect=self._limits)
        self.estimate = r.post(f"{API}/v1/fine-tunes/estimate-price").mock(
            side_effect=self._estimate
        )
        self.create_route = r.post(f"{API}/v1/fine-tunes").mock(side_effect=self._create)
        r.get(f"{API}/v1/fine-tunes").mock(side_effect=self._list)
        r.post(url__regex=rf"{API}/v1/fine-tunes/(?P<jid>ft-[^/]+)/cancel").mock(
            side_effect=self._cancel
        )
        r.get(url__regex=rf"{API}/v1/fine-tunes/(?P<jid>ft-[^/]+)/events").mock(
            side_effect=self._events
        )
        r.get(url__regex=rf"{API}/v1/fine-tunes/(?P<jid>ft-[^/]+)/checkpoints").mock(
            return_value=httpx.Response(200, json=fixture("checkpoints"))
        )
        r.get(url__regex=rf"{API}/v1/fine-tunes/(?P<jid>ft-[^/]+)/metrics").mock(
            return_value=httpx.Response(200, json=fixture("metrics"))
        )
        r.get(url__regex=rf"{API}/v1/fine-tunes/(?P<jid>ft-[^/]+)$").mock(
            side_effect=self._retrieve
        )
        r.post(f"{API}/v1/chat/completions").mock(side_effect=self._chat)

    def tick(self) -> int:
        self.now += 30
        return self.now

    # -- files
    def _files_post(self, request: httpx.Request) -> httpx.Response:
        fields = dict(re.findall(rb'name="(\w+)"\r\n\r\n(.*?)\r\n--', request.content, re.S))
        fid = f"file-{len(self.files) + 1:08d}-0000-0000-0000-000000000000"
        record = fixture("file")
        record.update(
            id=fid,
            filename=fields[b"file_name"].decode(),
            purpose=fields[b"purpose"].decode(),
            created_at=self.tick(),
            processing_status="PENDING",
        )
        self.files[fid] = record
        return httpx.Response(
            302, headers={"Location": f"{UPLOADS}/put/{fid}?sig=abc", "X-Together-File-Id": fid}
        )

    def _put(self, request: httpx.Request, fid: str) -> httpx.Response:
        self.blobs[fid] = request.read()
        return httpx.Response(200)

    def _preprocess(self, request: httpx.Request, fid: str) -> httpx.Response:
        rec = self.files[fid]
        data = self.blobs[fid]
        rec.update(bytes=len(data), processing_status="COMPLETED")
        rec["validation_report"]["nlines"] = data.count(b"\n")
        return httpx.Response(200, json=rec)

    def _files_list(self, request: httpx.Request) -> httpx.Response:
        done = [f for f in self.files.values() if f["processing_status"] == "COMPLETED"]
        return httpx.Response(200, json={"data": done})

    def _content(self, request: httpx.Request, fid: str) -> httpx.Response:
        return httpx.Response(200, content=self.blobs[fid])

    # -- fine-tunes
    def _limits(self, request: httpx.Request) -> httpx.Response:
        model = request.url.params["model_name"]
        if model not in MODELS:
            return httpx.Response(404, json=fixture("errors")["404"])
        limits = fixture("model_limits")
        limits["model_name"] = model
        return httpx.Response(200, json=limits)

    def _estimate(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        est = fixture("estimate_price")
        if body["training_file"] not in self.files:
            return httpx.Response(200, json=est["unavailable"])
        tokens = self.blobs[body["training_file"]].count(b" ") * body.get("n_epochs", 1)
        out = est["available"]
        out.update(estimated_train_token_count=tokens, estimated_total_price=tokens * 0.48e-6)
        return httpx.Response(200, json=out)

    def _truncated(self, job: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in job.items() if k != "events"}
        return out

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.create_bodies.append(body)
        if body["model"] not in MODELS:
            return httpx.Response(404, json=fixture("errors")["404"])
        jid = f"ft-{len(self.jobs) + 1:08d}-0000-0000-0000-000000000000"
        job = fixture("job")
        # Together echoes the settings it was sent (never the W&B key), resolving "max"
        job.update({k: v for k, v in body.items() if k not in ("wandb_key", "hf_api_token")})
        if job.get("batch_size") == "max":
            job["batch_size"] = fixture("model_limits")["lora_training"]["max_batch_size"]
        t = self.tick()
        suffix = body.get("suffix")
        job.update(
            id=jid,
            model=body["model"],
            training_file=body["training_file"],
            validation_file=body.get("validation_file") or "",
            suffix=suffix,
            n_epochs=body["n_epochs"],
            created_at=iso(t),
            updated_at=iso(t),
            model_output_name=f"acme/{body['model'].split('/')[-1]}-{suffix or 'ft'}-{jid[3:11]}",
        )
        self.jobs[jid] = job
        self.events[jid] = []
        self._add_events(jid, "queued")
        if self.drop_next_create:  # the job exists, but the answer never arrives
            self.drop_next_create = False
            raise httpx.ConnectError("connection reset by peer", request=request)
        return httpx.Response(200, json=self._truncated(job))

    def _add_events(self, jid: str, stage: str) -> None:
        for e in fixture("events").get(stage, []):
            self.events[jid].append({**e, "created_at": iso(self.tick())})

    def _retrieve(self, request: httpx.Request, jid: str) -> httpx.Response:
        job = self.jobs.get(jid)
        if job is None:
            return httpx.Response(404, json={"error": {"message": f"job {jid} not found"}})
        if jid in self.frozen:
            pass
        elif job["status"] == "cancel_requested":  # Together takes a moment to stop a job
            job["status"] = "cancelled"
            job["updated_at"] = iso(self.tick())
        elif job["status"] in STAGES[:-1]:
            job["status"] = STAGES[STAGES.index(job["status"]) + 1]
            job["updated_at"] = iso(self.tick())
            self._add_events(jid, job["status"])
            if job["status"] == "completed":
                job["token_count"] = 4096
        return httpx.Response(200, json={**job, "events": self.events[jid]})

    def _list(self, request: httpx.Request) -> httpx.Response:
        if self.failing_lists > 0:
            self.failing_lists -= 1
            return httpx.Response(503, json={"error": {"message": "service unavailable"}})
        return httpx.Response(200, json={"data": [self._truncated(j) for j in self.jobs.values()]})

    def _cancel(self, request: httpx.Request, jid: str) -> httpx.Response:
        job = self.jobs[jid]
        job["status"] = "cancel_requested"  # cancelled on the next retrieve
        return httpx.Response(200, json=self._truncated(job))

    def _events(self, request: httpx.Request, jid: str) -> httpx.Response:
        return httpx.Response(200, json={"data": self.events[jid]})

    # -- chat
    def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.chat_bodies.append(body)
        question = body["messages"][-1]["content"]
        answer = "I do not know."
        for fid, blob in self.blobs.items():
            for line in blob.decode().splitlines():
                msgs = json.loads(line).get("messages", [])
                if any(m["role"] == "user" and m["content"] == question for m in msgs):
                    answer = msgs[-1]["content"]
            del fid
        for stop in body.get("stop") or []:
            answer = answer.split(stop)[0]
        out = fixture("chat_completion")
        out["model"] = body["model"]
        out["choices"][0]["message"]["content"] = answer
        if "logprobs" in body:
            words = answer.split()
            out["choices"][0]["logprobs"] = {
                "tokens": words,
                "token_logprobs": [-0.1] * len(words),
                "token_ids": list(range(len(words))),
            }
            if body["logprobs"] > 1:  # Together: one {token: logprob} per generated token
                out["choices"][0]["logprobs"]["top_logprobs"] = [
                    dict([(w, -0.1), ("maybe", -2.5), ("no", -3.0)][: body["logprobs"]])
                    for w in words
                ]
        out["usage"] = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        return httpx.Response(200, json=out, headers={"x-request-id": "req-chat-1"})


def make_backend(**kwargs: Any) -> TogetherBackend:
    client = together.Together(api_key=KEY, base_url=API, max_retries=0)
    aclient = together.AsyncTogether(api_key=KEY, base_url=API, max_retries=0)
    return virtual_clock(TogetherBackend(client=client, async_client=aclient, **kwargs))


def virtual_clock(backend: TogetherBackend) -> TogetherBackend:
    """Give ``backend`` a clock whose ``sleep`` moves time on without waiting.

    Both halves of :class:`~finetune_qa.backends.base.HasClock` are needed: with ``sleep``
    alone the backend is no ``HasClock``, and polling and retries wait on the real clock.
    """
    skipped = [0.0]

    def sleep(seconds: float) -> None:
        skipped[0] += max(0.0, seconds)

    backend.sleep = sleep  # type: ignore[attr-defined]
    backend.monotonic = lambda: time.monotonic() + skipped[0]  # type: ignore[attr-defined]
    return backend


@contextmanager
def fake_together() -> Iterator[FakeTogether]:
    """A :class:`FakeTogether` on a fresh respx router, active for the ``with`` block."""
    with respx.mock(assert_all_called=False) as router:
        yield FakeTogether(router)
