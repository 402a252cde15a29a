"""Wire a :class:`~finetune_qa.backends._fake.FakeOpenAI` to real clients.

Three ways in, all serving the same fake:

* :func:`mock_transport`: an in-process ``MockTransport`` of the HTTP library family the
  installed openai uses (``httpx2`` for openai 3.x, ``httpx`` for 2.x), sync or async;
* :func:`openai_client`: a real ``openai.OpenAI`` / ``openai.AsyncOpenAI`` built on that
  transport, so the SDK's own request building, pagination, errors and retries run;
* :func:`serve` / :func:`run_server`: a stdlib HTTP server under ``/v1`` that any OpenAI
  client (any language) can point at; its clock follows real time, sped up.

Neither ``httpx`` nor ``httpx2`` (nor openai, which imports one of them) is imported when
this module is; they are imported on first use.

Example:
    >>> from finetune_qa.backends._fake import FakeOpenAI
    >>> client = openai_client(FakeOpenAI(), max_retries=0)
    >>> client.models.retrieve("gpt-4o-mini").owned_by
    'system'
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, overload
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from finetune_qa.backends._fake import FakeOpenAI, FakeResponse
from finetune_qa.exceptions import UsageError

if TYPE_CHECKING:
    import openai

__all__ = [
    "OFFLINE_API_KEY",
    "OFFLINE_BASE_URL",
    "APIHandler",
    "Family",
    "http_family",
    "mock_transport",
    "openai_client",
    "run_server",
    "serve",
]

Family = Literal["auto", "httpx", "httpx2"]
"""Which HTTP library's classes to build: the one openai uses ("auto"), or a named one."""

OFFLINE_BASE_URL = "https://offline.finetune-qa.invalid/v1"
"""Base URL of clients wired to a fake (``.invalid`` never resolves, so nothing leaks)."""

OFFLINE_API_KEY = "sk-offline"
"""API key of clients wired to a fake (any non-empty key is accepted)."""


class APIHandler(Protocol):
    """Anything that answers HTTP requests the way :meth:`FakeOpenAI.handle` does.

    The offline fake API is one; the local backend's ``LocalChatAPI`` (one local model
    behind the chat completions API) is another, served by the same :func:`serve`.
    """

    def handle(
        self,
        method: str,
        path: str,
        query: Any = None,
        headers: Any = None,
        body: bytes = b"",
    ) -> FakeResponse:
        """Answer one request."""
        ...


def http_family(family: Family = "auto") -> ModuleType:
    """The HTTP library module to build transports with.

    Args:
        family: ``"auto"`` picks ``httpx2`` for openai 3.x and later, ``httpx`` before.

    Raises:
        UsageError: the named library is not installed.
    """
    name: str = family
    if family == "auto":
        import openai

        name = "httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(
            f"{name} is not installed; install it, or pass family='auto' to use the HTTP "
            "library of the installed openai."
        ) from exc


def _call(fake: FakeOpenAI, request: Any) -> FakeResponse:
    """Run a family ``Request`` (read already) through the fake."""
    url = request.url
    return fake.handle(
        request.method,
        url.path,
        dict(url.params.multi_items()),
        {k.lower(): v for k, v in request.headers.items()},
        request.content,
    )


def _to_response(fam: ModuleType, request: Any, resp: FakeResponse) -> Any:
    # Build the response with the request's own family: httpx2's MockTransport rejects
    # an httpx.Response (with a misleading "async handler" TypeError), and vice versa.
    if resp.timeout:
        raise fam.ReadTimeout(resp.stream_error or "timed out", request=request)
    if resp.stream_error is not None:
        raise fam.RemoteProtocolError(resp.stream_error, request=request)
    return fam.Response(resp.status, headers=resp.headers, content=resp.body)


def mock_transport(fake: FakeOpenAI, *, family: Family = "auto", async_: bool = False) -> Any:
    """A ``MockTransport`` whose handler is ``fake``.

    Args:
        fake: the fake API to serve.
        family: the HTTP library whose ``MockTransport`` to build (see :func:`http_family`).
        async_: build an async handler (for ``AsyncClient``), which waits injected
            latency with ``asyncio.sleep`` instead of blocking the event loop.

    Returns:
        ``httpx2.MockTransport`` or ``httpx.MockTransport``. Injected dropped connections
        raise the family's ``RemoteProtocolError``, which openai reports as
        ``APIConnectionError``; injected timeouts raise its ``ReadTimeout``, which openai
        reports as ``APITimeoutError``.
    """
    fam = http_family(family)

    if async_:

        async def ahandler(request: Any) -> Any:
            resp = _call(fake, request)
            if resp.latency:
                await asyncio.sleep(resp.latency)
            return _to_response(fam, request, resp)

        return fam.MockTransport(ahandler)

    def handler(request: Any) -> Any:
        resp = _call(fake, request)
        if resp.latency:
            time.sleep(resp.latency)
        return _to_response(fam, request, resp)

    return fam.MockTransport(handler)


@overload
def openai_client(
    fake: FakeOpenAI, *, async_: Literal[False] = False, max_retries: int = 2, **kwargs: Any
) -> openai.OpenAI: ...


@overload
def openai_client(
    fake: FakeOpenAI, *, async_: Literal[True], max_retries: int = 2, **kwargs: Any
) -> openai.AsyncOpenAI: ...


def openai_client(
    fake: FakeOpenAI, *, async_: bool = False, max_retries: int = 2, **kwargs: Any
) -> openai.OpenAI | openai.AsyncOpenAI:
    """A real openai client whose every request is answered by ``fake``, in process.

    Args:
        fake: the fake API.
        async_: return an ``openai.AsyncOpenAI`` instead of an ``openai.OpenAI``.
        max_retries: openai's retry count (tests usually want 0).
        **kwargs: more ``openai.OpenAI`` arguments, e.g. ``_strict_response_validation=True``
            or ``api_key`` / ``base_url`` overrides.

    Example:
        >>> client = openai_client(FakeOpenAI(), max_retries=0)
        >>> client.files.list().data
        []
    """
    import openai

    fam = http_family()
    kwargs.setdefault("api_key", OFFLINE_API_KEY)
    kwargs.setdefault("base_url", OFFLINE_BASE_URL)
    if async_:
        ahttp = fam.AsyncClient(transport=mock_transport(fake, async_=True))
        return openai.AsyncOpenAI(http_client=ahttp, max_retries=max_retries, **kwargs)
    http = fam.Client(transport=mock_transport(fake))
    return openai.OpenAI(http_client=http, max_retries=max_retries, **kwargs)


# ---------------------------------------------------------------------- HTTP server


MAX_BODY_BYTES = 256 * 1024 * 1024
"""Largest request body :func:`serve` reads (413 above it); OpenAI takes 512 MB files in
64 MB upload parts, so a bigger single request is not one a client would send."""

IDLE_TIMEOUT_SECONDS = 30.0
"""A connection that sends nothing for this long is closed (it holds a thread)."""

BACKLOG = 1024
"""Connections the listening socket queues while every thread is busy (stdlib: 5)."""


class _HTTPError(Exception):
    """A request the server answers itself, with ``status`` and an OpenAI-style error."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class _FakeHTTPHandler(BaseHTTPRequestHandler):
    """Serves one connection's requests from the class's ``fake``.

    Bounded: a connection idle for ``timeout`` seconds is closed, a body over
    ``max_body`` bytes is answered 413 without being read, and a malformed
    ``Content-Length`` or chunk size, or a body the fake cannot parse, is answered 400;
    no request ends in a traceback and a dropped connection.
    """

    fake: ClassVar[APIHandler]
    request_log: ClassVar[Callable[[str], None] | None] = None
    max_body: ClassVar[int] = MAX_BODY_BYTES
    timeout = IDLE_TIMEOUT_SECONDS
    protocol_version = "HTTP/1.1"

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                field = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(field or b"0", 16)
                except ValueError:
                    raise _HTTPError(400, f"malformed chunk size {field[:20]!r}") from None
                if size < 0:
                    raise _HTTPError(400, f"malformed chunk size {field[:20]!r}")
                if size == 0:
                    self.rfile.readline(1024)
                    return b"".join(chunks)
                total += size
                if total > self.max_body:
                    raise _HTTPError(413, f"the body is over {self.max_body:,} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        raw = (self.headers.get("content-length") or "0").strip()
        if not raw.isdigit() or not raw.isascii():
            raise _HTTPError(400, f"malformed Content-Length {raw[:20]!r}")
        length = int(raw)
        if length > self.max_body:
            raise _HTTPError(413, f"the body is {length:,} bytes, over {self.max_body:,}")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        log = type(self).request_log
        if log is not None:
            took = time.monotonic() - getattr(self, "_started", time.monotonic())
            log(f"{self.command} {urlsplit(self.path).path} {status} {took:.3f}s")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = orjson.dumps(
            {"error": {"message": message, "type": kind, "param": None, "code": None}}
        )
        self.close_connection = True  # the rest of the stream cannot be trusted
        self._send(status, {"content-type": "application/json"}, body)

    def _serve(self) -> None:
        self._started = time.monotonic()
        split = urlsplit(self.path)
        try:
            body = self._read_body()
            resp = self.fake.handle(
                self.command,
                unquote(split.path),
                dict(parse_qsl(split.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
        except _HTTPError as exc:
            self._error(exc.status, str(exc))
            return
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        except RecursionError:
            self._error(400, "the body is nested too deeply")
            return
        except Exception as exc:  # the fake's own bug: answer, do not drop the connection
            self._error(500, f"the offline API failed: {type(exc).__name__}")
            return
        if resp.latency:
            time.sleep(resp.latency)
        if resp.stream_error is not None:
            self.close_connection = True  # hang up without an answer
            return
        self._send(resp.status, resp.headers, resp.body)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the fake keeps its own request log (``fake.requests``)."""


class _Server(ThreadingHTTPServer):
    """A threading HTTP server with a real listen backlog and no tracebacks on stderr."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """Serve until ``shutdown()``, which then returns within ``poll_interval`` seconds.

        The standard library polls every 0.5 s, so each ``shutdown()`` waited up to half a
        second; a server embedded in a script or a test stops at once.
        """
        super().serve_forever(poll_interval)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return  # an idle or vanished client
        print(
            f"offline API: a connection from {client_address[0]} failed: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback name or address (only this machine can connect)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    fake: FakeOpenAI | APIHandler,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    realtime: bool = True,
    speedup: float = 60.0,
    max_body: int = MAX_BODY_BYTES,
    idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    request_log: Callable[[str], None] | None = None,
) -> ThreadingHTTPServer:
    """An HTTP server (not started) serving ``fake`` under ``/v1`` to any OpenAI client.

    Args:
        fake: the fake API (or another :class:`APIHandler`, e.g. a local model's).
        host: interface to bind.
        port: port to bind (0 picks a free one: read ``server.server_address[1]``).
        realtime: make the fake's clock follow real time from now on, so clients that
            poll with real sleeps see jobs progress.
        speedup: virtual seconds per real second when ``realtime`` (default 60: a
            one-minute phase takes one second).
        max_body: largest request body read; a larger one is answered 413.
        idle_timeout: seconds a connection may stay silent before it is closed.
        request_log: called with one line per request answered (method, path, status,
            seconds), e.g. to print it.

    Returns:
        A ``ThreadingHTTPServer``; call ``serve_forever()`` (in a thread, if needed),
        then ``shutdown()`` and ``server_close()``.

    Example:
        >>> import threading
        >>> server = serve(FakeOpenAI(), port=0)
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> # openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="x")
        >>> server.shutdown(); server.server_close()
    """
    if realtime and isinstance(fake, FakeOpenAI):
        fake.clock.run_realtime(speedup)
    handler = type(
        "FakeOpenAIHandler",
        (_FakeHTTPHandler,),
        {
            "fake": fake,
            "max_body": max_body,
            "timeout": idle_timeout,
            "request_log": staticmethod(request_log) if request_log else None,
        },
    )
    return _Server((host, port), handler)


def run_server(
    fake: FakeOpenAI | APIHandler | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    realtime: bool = True,
    speedup: float = 60.0,
    ready: Callable[[str], None] | None = None,
    request_log: Callable[[str], None] | None = None,
) -> None:
    """Serve a fake until interrupted (Ctrl-C); the blocking form of :func:`serve`.

    Args:
        fake: the fake to serve (a new ``FakeOpenAI()`` by default).
        host: interface to bind.
        port: port to bind.
        realtime: see :func:`serve`.
        speedup: see :func:`serve`.
        ready: called with the base URL once listening (default: print it to stderr).
        request_log: see :func:`serve`.
    """
    server = serve(
        fake or FakeOpenAI(),
        host,
        port,
        realtime=realtime,
        speedup=speedup,
        request_log=request_log,
    )
    if not is_loopback(host):
        print(
            f"warning: listening on {host}, not only this machine: anyone who can reach it "
            "can use this offline API (no key is checked); use --host 127.0.0.1 to keep it "
            "local",
            file=sys.stderr,
        )
    bound_host, bound_port = _address(server.server_address)
    url = f"http://{bound_host}:{bound_port}/v1"
    (ready or _announce)(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _address(address: Any) -> tuple[str, int]:
    host, port = address[0], address[1]
    return (host.decode() if isinstance(host, bytes) else str(host)), int(port)


def _announce(url: str) -> None:
    print(
        f"offline OpenAI API listening on {url} (use any api_key); Ctrl-C stops it",
        file=sys.stderr,
    )
