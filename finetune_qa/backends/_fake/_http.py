"""HTTP plumbing of the fake API: responses, requests, multipart bodies, pages, errors, faults.

Nothing here imports an HTTP library: a request is its method, path, query, headers and
body, and a :class:`FakeResponse` is what the transport adapters in
:mod:`finetune_qa.backends._wire` turn into HTTP.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from finetune_qa.exceptions import UsageError

__all__ = ["FakeResponse", "RecordedRequest"]


@dataclass
class FakeResponse:
    """What :meth:`FakeOpenAI.handle` returns; the transport adapters turn it into HTTP.

    Attributes:
        status: HTTP status code (0 when ``stream_error`` is set).
        headers: response headers, lower-case names.
        body: the body (JSON, or raw bytes for file contents).
        stream_error: set when the connection should drop instead of answering.
        latency: real seconds the adapter waits before answering (injected faults).
        timeout: with ``stream_error``, the client should see its read time out (the
            in-process transports raise the HTTP library's ``ReadTimeout``).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    stream_error: str | None = None
    latency: float = 0.0
    timeout: bool = False

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RecordedRequest(NamedTuple):
    """One request seen by the fake, for assertions: ``fake.requests[-1].path``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any


class _ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return _dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _bad(message: str, param: str | None = None, code: str | None = None) -> _ApiError:
    return _ApiError(400, message, param=param, code=code)


def _not_found(message: str, param: str | None = None, code: str | None = None) -> _ApiError:
    return _ApiError(404, message, param=param, code=code)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except RecursionError as exc:
            raise _bad(
                "We could not parse the JSON body of your request (nested too deep)."
            ) from exc
        except ValueError as exc:
            raise _bad(f"We could not parse the JSON body of your request ({exc}).") from exc
        if not isinstance(data, dict):
            raise _bad("The request body must be a JSON object.")
        return data

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        ctype = self.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise _bad(f"Expected a multipart/form-data body, got {ctype or 'none'!r}.")
        return _parse_multipart(ctype, self.body)

    def int_query(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _bad(f"Invalid '{name}': expected an integer, got {raw!r}.", name) from None
        if not low <= value <= high:
            raise _bad(f"Invalid '{name}': must be between {low} and {high}.", name)
        return value


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(rb"content-disposition:[^\r\n]*", re.IGNORECASE)
_PARAM = re.compile(rb'\b(name|filename)="((?:[^"\\]|\\.)*)"')


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, bytes)`` of every part (stdlib only; ``cgi`` is gone in 3.13).

    Split on the boundary with bytes operations: the email parser this replaced took
    seconds on a 64 MiB upload part.
    """
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise _bad("Malformed multipart/form-data body: no boundary.")
    delimiter = b"--" + m.group(1).encode("latin-1")
    out: dict[str, tuple[str | None, bytes]] = {}
    start = body.find(delimiter)
    if start < 0:
        raise _bad("Malformed multipart/form-data body.")
    # one slice (one copy) per payload: parts can be 64 MiB
    while True:
        nxt = body.find(delimiter, start + len(delimiter))
        if nxt < 0:
            break
        part_start = start + len(delimiter)
        head_end = body.find(b"\r\n\r\n", part_start, nxt)
        if head_end < 0:
            raise _bad("Malformed multipart/form-data body: a part has no headers.")
        start = nxt
        disposition = _DISPOSITION.search(body, part_start, head_end)
        if disposition is None:
            continue
        params = {
            k.decode(): v.decode("utf-8", "replace")
            for k, v in _PARAM.findall(disposition.group(0))
        }
        name = params.get("name")
        if name is None:
            continue
        end = nxt - 2 if body[nxt - 2 : nxt] == b"\r\n" else nxt
        out[name] = (params.get("filename"), body[head_end + 4 : end])
    if not out and start == body.find(delimiter):
        raise _bad("Malformed multipart/form-data body.")
    return out


def _field(form: Mapping[str, tuple[str | None, bytes]], name: str) -> str | None:
    value = form.get(name)
    return value[1].decode("utf-8") if value is not None else None


def _page(
    items: list[dict[str, Any]],
    req: _Request,
    order: Mapping[str, int],
    *,
    default_limit: int,
    max_limit: int,
    descending: bool = True,
    ends: bool = False,
) -> dict[str, Any]:
    """One cursor page as OpenAI serves it (``after`` = id of the previous page's last item)."""
    limit = req.int_query("limit", default_limit, low=1, high=max_limit)
    after = req.query.get("after")
    if after:
        pos = order.get(after)
        if pos is None:
            raise _bad(f"Invalid 'after': no object with id {after!r}.", "after")
        items = [i for i in items if (order[i["id"]] < pos if descending else order[i["id"]] > pos)]
    data = items[:limit]
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": len(items) > limit}
    if ends:
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    return page


def _strip_v1(path: str) -> str:
    path = "/" + path.lstrip("/")
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:] or "/"
    return path.rstrip("/") or "/"


def _maybe_json(headers: Mapping[str, str], body: bytes) -> Any:
    if body and headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return None
    return None


def _check_auth(headers: Mapping[str, str]) -> None:
    auth = headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )


@dataclass
class _Fault:
    method: str
    pattern: str
    status: int | None
    retry_after: float | None
    drop: bool
    latency: float
    remaining: int | None
    after_effect: bool
    timeout: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.pattern)

    @property
    def fails(self) -> bool:
        return bool(self.status or self.drop or self.timeout)

    def check(self) -> None:
        """Raise UsageError when the fault asks for something a request cannot do."""
        status, times = self.status, self.remaining
        if status is not None and not 400 <= status <= 599:
            raise UsageError(f"inject status must be an HTTP error (400-599), got {status}")
        if times is not None and times < 1:
            raise UsageError(f"times must be at least 1 (or None for always), got {times}")
        if self.latency < 0:
            raise UsageError("latency cannot be negative")
        kinds = [
            name
            for name, on in (
                ("status", status is not None),
                ("drop", self.drop),
                ("timeout", self.timeout),
            )
            if on
        ]
        if len(kinds) > 1:
            raise UsageError(
                f"inject takes one way to fail a request, got {' and '.join(kinds)}: "
                "inject them separately (each fires on its own request)"
            )
        if self.retry_after is not None and status is None:
            raise UsageError("retry_after goes with an error status (429 or 5xx); pass status= too")
        if self.after_effect and not kinds:
            raise UsageError(
                "after_effect needs a failure to follow the work: pass status=, drop=True or "
                "timeout=True"
            )


_FAULT_TEXT = {
    429: ("Rate limit reached for requests (injected by the offline backend).", "requests"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    ),
    502: ("Bad gateway.", "server_error"),
    503: ("The server is overloaded or not ready yet.", "server_error"),
    504: ("Gateway timeout.", "server_error"),
}


def _fault_response(fault: _Fault, rid: str) -> FakeResponse:
    headers = {"x-request-id": rid, "content-type": "application/json"}
    if fault.timeout:
        return FakeResponse(
            0,
            headers,
            b"",
            stream_error="The read operation timed out (injected by the offline backend).",
            latency=fault.latency,
            timeout=True,
        )
    if fault.drop:
        return FakeResponse(
            0,
            headers,
            b"",
            stream_error="Server disconnected without sending a response.",
            latency=fault.latency,
        )
    status = fault.status or 500
    message, kind = _FAULT_TEXT.get(
        status, (f"Injected HTTP {status} from the offline backend.", "invalid_request_error")
    )
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
        headers["retry-after-ms"] = f"{fault.retry_after * 1000:g}"
    code = "rate_limit_exceeded" if status == 429 else None
    err = _ApiError(status, message, type=kind, code=code)
    return FakeResponse(status, headers, err.body(), latency=fault.latency)


def _model_not_found(model: str) -> _ApiError:
    return _not_found(
        f"The model `{model}` does not exist or you do not have access to it.",
        "model",
        "model_not_found",
    )
