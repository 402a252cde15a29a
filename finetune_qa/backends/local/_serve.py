"""The OpenAI chat API over a local model, for ``finetune-qa serve --model RUN_DIR``.

:class:`LocalChatAPI` answers ``GET /v1/models``, ``GET /v1/models/ID`` and ``POST
/v1/chat/completions`` (``stream: true`` included, as server-sent events in the API's chunk
format) with the same ``handle(...)`` shape as the offline fake API, so the server that
serves the offline API serves it too, and any OpenAI client can query the model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from finetune_qa.backends._fake import FakeResponse
from finetune_qa.backends.base import ChatRequest, ChatResponse
from finetune_qa.backends.local._backend import LocalBackend
from finetune_qa.exceptions import BackendError

__all__ = ["LocalChatAPI"]

_JSON = {"content-type": "application/json"}


def _error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> FakeResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return FakeResponse(status, dict(_JSON), json.dumps(body).encode())


class LocalChatAPI:
    """Chat completions from one local model, behind the offline API's ``handle`` shape.

    Args:
        backend: the local backend that loads and runs the model.
        model: the model to serve: ``local:JOB_ID``, a run directory or a model directory.
        name: the model id clients send (default: ``model`` as given).
        on_request: called with one line per request answered (method, path, status,
            tokens, seconds), e.g. to log it.
    """

    def __init__(
        self,
        backend: LocalBackend,
        model: str,
        *,
        name: str | None = None,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.name = name or model
        self.created = int(time.time())
        self.on_request = on_request

    def warm(self) -> None:
        """Load the model now, so the first request does not wait (and errors show at start)."""
        self.backend._loaded(self.model)

    def _model_record(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "local"}

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> FakeResponse:
        """Answer one HTTP request (paths with or without the ``/v1`` prefix)."""
        start = time.monotonic()
        method = method.upper()
        path = path[3:] if path.startswith("/v1/") else path
        resp = self._route(method, path, body)
        if self.on_request is not None:
            self.on_request(f"{method} /v1{path} {resp.status} {time.monotonic() - start:.2f}s")
        return resp

    def _route(self, method: str, path: str, body: bytes) -> FakeResponse:
        if method == "GET" and path == "/models":
            data = {"object": "list", "data": [self._model_record()]}
            return FakeResponse(200, dict(_JSON), json.dumps(data).encode())
        if method == "GET" and path.startswith("/models/"):
            if path[len("/models/") :] != self.name:
                return _error(404, f"The model '{path[8:]}' does not exist", code="model_not_found")
            return FakeResponse(200, dict(_JSON), json.dumps(self._model_record()).encode())
        if method == "POST" and path == "/chat/completions":
            return self._chat(body)
        return _error(404, f"{method} {path} is not served here (only models and chat)")

    def _chat(self, body: bytes) -> FakeResponse:
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return _error(400, "the body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "the body must be a JSON object")
        if payload.get("model") != self.name:
            return _error(
                404,
                f"The model '{payload.get('model')}' does not exist; this server serves "
                f"'{self.name}'",
                code="model_not_found",
                param="model",
            )
        stop = payload.get("stop")
        stream = bool(payload.get("stream"))
        try:
            request = ChatRequest(
                model=self.model,
                messages=payload.get("messages") or [],
                temperature=payload.get("temperature"),
                max_tokens=payload.get("max_completion_tokens") or payload.get("max_tokens"),
                stop=[stop] if isinstance(stop, str) else stop,
                seed=payload.get("seed"),
                logprobs=bool(payload.get("logprobs")),
                top_logprobs=payload.get("top_logprobs"),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            return _error(400, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
        if not request.messages:
            return _error(400, "messages must hold at least one message", param="messages")
        try:
            answer = self.backend.chat(request)
        except BackendError as exc:
            return _error(exc.status_code or 500, str(exc), code=exc.code)
        if stream:
            usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return self._stream(answer, usage)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer.content, "refusal": None},
            "finish_reason": answer.finish_reason,
            "logprobs": {"content": answer.logprobs} if answer.logprobs is not None else None,
        }
        data = {
            "id": answer.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [choice],
            "usage": answer.usage.model_dump(),
        }
        return FakeResponse(200, dict(_JSON), json.dumps(data).encode())

    def _stream(self, answer: ChatResponse, usage: bool) -> FakeResponse:
        base = {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.name,
        }
        chunks = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            },
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"content": answer.content}, "finish_reason": None}
                ],
            },
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}]},
        ]
        if usage:
            chunks.append({**base, "choices": [], "usage": answer.usage.model_dump()})
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        return FakeResponse(200, headers, text.encode())
