"""The fake API itself: :class:`FakeOpenAI`, its routes and their handlers.

A request is matched against the route table and handed to the handler of its resource
(files, uploads, jobs, models, chat); the other modules of this package hold what the
handlers build on.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

from finetune_qa._limits import FILES_API_LIMIT
from finetune_qa._version import __version__
from finetune_qa.backends._fake._answers import (
    Answerer,
)
from finetune_qa.backends._fake._chat import (
    _chat_request,
    _ChatOptions,
    _completion,
    _EventStream,
    _reply,
)
from finetune_qa.backends._fake._clock import JobDurations, VirtualClock
from finetune_qa.backends._fake._engine import _epoch_date, _JobEngine
from finetune_qa.backends._fake._http import (
    FakeResponse,
    RecordedRequest,
    _ApiError,
    _bad,
    _check_auth,
    _dumps,
    _Fault,
    _fault_response,
    _field,
    _maybe_json,
    _model_not_found,
    _not_found,
    _page,
    _Request,
    _strip_v1,
)
from finetune_qa.backends._fake._params import (
    _check_integrations,
    _check_metadata,
    _hyperparameters,
    _method_of,
    _snapshot_time,
)
from finetune_qa.backends._fake._records import _File, _Ids, _Job, _State, _unit, _Upload
from finetune_qa.backends._fake._statefile import read_state, save_state
from finetune_qa.backends._fake._wordvectors import require as require_word_vectors
from finetune_qa.backends._fake._wordvectors import words_from_environment
from finetune_qa.catalog import ModelCatalog, ModelInfo, base_model_name, default_catalog
from finetune_qa.exceptions import UsageError
from finetune_qa.tokens import TokenCounter

__all__ = ["FakeOpenAI"]

MAX_FILE_BYTES = FILES_API_LIMIT
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024
UPLOAD_TTL_SECONDS = 3600
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})


_Handler = Callable[..., Any]

# The route table is the router: one line per endpoint, read top to bottom, kept whole
# on purpose (the one long literal of this package).
_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/files", "_files_create"),
    ("GET", "/files", "_files_list"),
    ("GET", "/files/{file_id}", "_files_retrieve"),
    ("DELETE", "/files/{file_id}", "_files_delete"),
    ("GET", "/files/{file_id}/content", "_files_content"),
    ("POST", "/uploads", "_uploads_create"),
    ("POST", "/uploads/{upload_id}/parts", "_uploads_add_part"),
    ("POST", "/uploads/{upload_id}/complete", "_uploads_complete"),
    ("POST", "/uploads/{upload_id}/cancel", "_uploads_cancel"),
    ("POST", "/fine_tuning/jobs", "_jobs_create"),
    ("GET", "/fine_tuning/jobs", "_jobs_list"),
    ("GET", "/fine_tuning/jobs/{job_id}", "_jobs_retrieve"),
    ("POST", "/fine_tuning/jobs/{job_id}/cancel", "_jobs_cancel"),
    ("POST", "/fine_tuning/jobs/{job_id}/pause", "_jobs_pause"),
    ("POST", "/fine_tuning/jobs/{job_id}/resume", "_jobs_resume"),
    ("GET", "/fine_tuning/jobs/{job_id}/events", "_jobs_events"),
    ("GET", "/fine_tuning/jobs/{job_id}/checkpoints", "_jobs_checkpoints"),
    ("GET", "/models", "_models_list"),
    ("GET", "/models/{model}", "_models_retrieve"),
    ("DELETE", "/models/{model}", "_models_delete"),
    ("POST", "/chat/completions", "_chat_create"),
)
"""Method, path template and handler of every route the fake serves."""

_COMPILED = tuple(
    (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", tmpl) + "$"), name)
    for method, tmpl, name in _ROUTES
)


class FakeOpenAI:
    """An in-process, stateful, deterministic OpenAI API for the fine-tuning life cycle.

    Args:
        seed: seeds every id and every simulated loss; the same seed and the same
            requests give the same responses. Without one, each new fake draws its own
            (kept in its saved state), so two fakes never hand out the same file, job or
            model ids; pass one where a test needs the same ids on every run.
        organization: owner of fine-tuned models and part of their names.
        clock: the virtual clock (a new one starting 2026-01-01 by default).
        durations: how long job phases take in virtual seconds.
        advance_per_request: virtual seconds added to the clock on every request, so
            a client that polls without sleeping still sees jobs progress.
        catalog: the model catalogue deciding which models exist and are fine-tunable.
        word_knowledge: fine-tunes know what words mean, as a fine-tuned pretrained model
            does: a question worded unlike every trained one still finds its fact (see
            :mod:`finetune_qa.backends._fake._wordvectors`; needs the ``offline-words``
            extra). ``None`` (the default) reads ``$FINETUNE_QA_OFFLINE_WORDS`` (``1``
            turns it on). A model keeps what it was trained with.

    Example:
        >>> fake = FakeOpenAI()
        >>> r = fake.handle("GET", "/v1/models", {}, {"authorization": "Bearer x"}, b"")
        >>> r.status, r.json()["object"]
        (200, 'list')
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        organization: str = "org-offline",
        clock: VirtualClock | None = None,
        durations: JobDurations | None = None,
        advance_per_request: float = 0.0,
        catalog: ModelCatalog | None = None,
        word_knowledge: bool | None = None,
    ) -> None:
        if advance_per_request < 0:
            raise UsageError("advance_per_request cannot be negative")
        self.seed = secrets.randbits(63) if seed is None else seed
        self.instance_id = uuid.uuid4().hex[:12]  # names this API's state in journals
        self.organization = organization
        self.clock = clock or VirtualClock()
        self.durations = durations or JobDurations()
        self.advance_per_request = advance_per_request
        self.catalog = catalog or default_catalog()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._ids = _Ids(self.seed)
        self._state = _State()
        self._engine = _JobEngine(self._state, self._ids, self.durations, organization)
        self._faults: list[_Fault] = []
        self._n_requests = 0
        self._counters: dict[str, TokenCounter] = {}
        if word_knowledge is None:
            word_knowledge = words_from_environment()
        self.word_knowledge = word_knowledge

    @property
    def word_knowledge(self) -> bool:
        """Whether the models fine-tuned from now on know what words mean (see ``__init__``)."""
        return self._engine.word_knowledge

    @word_knowledge.setter
    def word_knowledge(self, on: bool) -> None:
        if on:
            require_word_vectors()
        self._engine.word_knowledge = bool(on)

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_counters"] = {}  # tokenizers are rebuilt on demand
        state["requests"] = []
        state["_saved_by"] = __version__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved_by = state.pop("_saved_by", None)
        if saved_by != __version__:
            # its classes may have changed shape: fail now, not halfway through a request
            raise UsageError(
                f"the offline API's state was saved by finetune_qa {saved_by or 'before 0.1.0'}, "
                f"this is {__version__}"
            )
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the whole state (files, jobs, models, clock) to ``path`` as JSON, owner-only.

        The CLI keeps the offline API here between commands. The format cannot run code
        when it is read (see :mod:`finetune_qa.backends._fake._statefile`).
        """
        save_state(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FakeOpenAI:
        """Read a state written by :meth:`save`.

        Only a regular file owned by this user and writable by no one else is read; an
        old pickled state is refused, never unpickled.

        Raises:
            InputFileError: the file is not a regular file, is another user's or writable
                by others, is a pickle, or is not a saved offline API.
            UsageError: the state was saved by another version of finetune_qa.
        """
        return read_state(path, cls)

    # ------------------------------------------------------------------ public helpers
    def inject(
        self,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        drop: bool = False,
        latency: float = 0.0,
        times: int | None = 1,
        after_effect: bool = False,
        timeout: bool = False,
    ) -> None:
        """Make the next requests to ``route`` fail, drop, time out or lag.

        Args:
            route: ``"METHOD /path"`` with fnmatch wildcards (``"GET /fine_tuning/jobs/*"``);
                without a method every method matches. A leading ``/v1`` is ignored.
            status: answer with this HTTP error (429 and 5xx are what OpenAI sends).
            retry_after: seconds for the ``retry-after`` and ``retry-after-ms`` headers.
            drop: close the connection without an answer (the client sees a connection error).
            latency: real seconds the transport waits before answering.
            times: how many matching requests are affected (None: all of them).
            after_effect: process the request first (the job *is* created), then fail:
                the server did it but the client never heard back.
            timeout: no answer in time: the in-process transports raise the HTTP
                library's ``ReadTimeout`` (openai's ``APITimeoutError``); the HTTP server
                hangs up, as for ``drop``.
        """
        method, _, pattern = route.strip().rpartition(" ")
        fault = _Fault(
            method=(method.strip().upper() or "*"),
            pattern=_strip_v1(pattern),
            status=status,
            retry_after=retry_after,
            drop=drop,
            latency=latency,
            remaining=times,
            after_effect=after_effect,
            timeout=timeout,
        )
        fault.check()
        with self._lock:
            self._faults.append(fault)

    def reset_faults(self) -> None:
        """Forget every injected fault that has not fired yet."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many injected faults are still waiting to fire (``times=None`` ones always are)."""
        with self._lock:
            return len(self._faults)

    def run_job(self, job_id: str, *, max_seconds: float = 365 * 86400.0) -> str:
        """Advance the virtual clock until the job ends; return its final status.

        Raises:
            UsageError: no such job, the job is paused, or it would take longer than
                ``max_seconds`` of virtual time.
        """
        with self._lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                raise UsageError(f"no fine-tuning job {job_id!r} in this fake")
            deadline = self.clock.now() + max_seconds
            while True:
                self._tick(self.clock.now())
                if job.terminal:
                    return job.status
                if job.status == "paused":
                    raise UsageError(f"job {job_id} is paused; resume it before running it")
                nxt = self._engine.next_change(job)
                assert nxt is not None
                if nxt > deadline:
                    raise UsageError(f"job {job_id} would not end within {max_seconds} s")
                self.clock.advance(max(0.0, nxt - self.clock.now()))

    def fail_job(
        self,
        job_id: str,
        *,
        message: str = "The job failed due to an internal error.",
        code: str = "internal_error",
    ) -> None:
        """Fail a running (or queued, validating) job now, as an OpenAI outage would."""
        with self._lock:
            now = self.clock.now()
            self._tick(now)
            job = self._state.jobs.get(job_id)
            if job is None:
                raise UsageError(f"no fine-tuning job {job_id!r} in this fake")
            if job.terminal:
                raise UsageError(f"job {job_id} has already ended ({job.status})")
            self._engine.fail(job, now, code, message)

    # ---------------------------------------------------------------------- handle
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> FakeResponse:
        """Answer one HTTP request.

        Args:
            method: ``GET``, ``POST``, ``DELETE``.
            path: the URL path, with or without the ``/v1`` prefix.
            query: query parameters (repeated keys such as ``metadata[k]`` are plain keys).
            headers: request headers (names are matched case-insensitively).
            body: the raw request body.

        Returns:
            The response; ``stream_error`` is set when the connection should drop.
        """
        method = method.upper()
        path = _strip_v1(path)
        q = {str(k): str(v) for k, v in (query or {}).items()}
        h = {k.lower(): v for k, v in (headers or {}).items()}
        with self._lock:
            self._n_requests += 1
            rid = f"req_{self._n_requests}"
            self.requests.append(RecordedRequest(method, path, q, _maybe_json(h, body)))
            fault = self._take_fault(method, path)
            if fault is not None and not fault.after_effect and fault.fails:
                return _fault_response(fault, rid)
            response = self._dispatch(_Request(method, path, q, h, body), rid)
            if fault is not None:
                if fault.fails:
                    return _fault_response(fault, rid)
                response.latency = fault.latency
            return response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _dispatch(self, req: _Request, rid: str) -> FakeResponse:
        headers = {"x-request-id": rid, "content-type": "application/json"}
        try:
            if self.advance_per_request:
                self.clock.advance(self.advance_per_request)
            _check_auth(req.headers)
            self._tick(self.clock.now())
            for method, pattern, name in _COMPILED:
                m = pattern.match(req.path)
                if m is not None and method == req.method:
                    handler = cast(_Handler, getattr(self, name))
                    result = handler(req, **m.groupdict())
                    break
            else:
                raise _not_found(f"Invalid URL ({req.method} /v1{req.path})")
        except _ApiError as err:
            return FakeResponse(err.status, {**headers, **err.headers}, err.body())
        except Exception as exc:  # a bug in the fake: say so instead of hanging a client
            bug = _ApiError(
                500, f"offline backend error: {type(exc).__name__}: {exc}", type="server_error"
            )
            return FakeResponse(500, headers, bug.body())
        if isinstance(result, _EventStream):
            headers["content-type"] = "text/event-stream; charset=utf-8"
            return FakeResponse(200, headers, bytes(result))
        if isinstance(result, bytes):
            headers["content-type"] = "application/octet-stream"
            return FakeResponse(200, headers, result)
        return FakeResponse(200, headers, _dumps(result))

    def _tick(self, now: float) -> None:
        for job in self._state.jobs.values():
            if not job.terminal:
                self._engine.advance(job, now)
        for up in self._state.uploads.values():
            if up.status == "pending" and now >= up.expires_at:
                up.status = "expired"
        expired = [
            f.id
            for f in self._state.files.values()
            if f.expires_at is not None and now >= f.expires_at
        ]
        for fid in expired:
            del self._state.files[fid]

    # ----------------------------------------------------------------------- helpers
    def _now(self) -> int:
        return int(self.clock.now())

    def _new_file(self, filename: str, purpose: str, data: bytes, expires_at: int | None) -> _File:
        f = _File(self._ids.new("file-"), filename, purpose, data, self._now(), expires_at)
        self._state.files[f.id] = f
        self._state.remember(f.id)
        return f

    def _file(self, file_id: str) -> _File:
        f = self._state.files.get(file_id)
        if f is None:
            raise _not_found(f"No such File object: {file_id}", "id")
        return f

    def _job(self, job_id: str) -> _Job:
        job = self._state.jobs.get(job_id)
        if job is None:
            raise _not_found(f"Could not find fine-tuning job: {job_id}", "fine_tuning_job_id")
        return job

    def _counter(self, model: str) -> TokenCounter:
        base = base_model_name(model)
        counter = self._counters.get(base)
        if counter is None:
            counter = self._counters[base] = TokenCounter(self.catalog.get(base))
        return counter

    def _job_api(self, job: _Job) -> dict[str, Any]:
        nxt = self._engine.next_change(job) if job.status == "running" else None
        return job.to_api(self.organization, int(nxt) if nxt is not None else None)

    # ------------------------------------------------------------------------ files
    def _files_create(self, req: _Request) -> dict[str, Any]:
        form = req.form()
        purpose = _field(form, "purpose")
        if purpose is None:
            raise _bad("Missing required parameter: 'purpose'.", "purpose")
        if purpose not in FILE_PURPOSES:
            raise _bad(f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'", "purpose")
        filename, data = form.get("file", (None, b""))
        if filename is None:
            raise _bad("Missing required parameter: 'file' (a file part with a name).", "file")
        if len(data) > MAX_FILE_BYTES:
            raise _bad(
                f"File is too large: {len(data):,} bytes; the Files API accepts up to 512 MB. "
                "Use the Uploads API for larger files.",
                "file",
            )
        if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
            raise _bad(
                f"Invalid file format for Fine-Tuning API. Must be .jsonl (got {filename!r}).",
                "file",
            )
        expires_at = None
        anchor = _field(form, "expires_after[anchor]")
        seconds = _field(form, "expires_after[seconds]")
        if anchor is not None or seconds is not None:
            if anchor != "created_at" or seconds is None or not seconds.isdigit():
                raise _bad("expires_after needs anchor 'created_at' and seconds.", "expires_after")
            if not 3600 <= int(seconds) <= 2_592_000:
                raise _bad("expires_after.seconds must be 3600-2592000.", "expires_after")
            expires_at = self._now() + int(seconds)
        return self._new_file(filename, purpose, data, expires_at).to_api()

    def _files_list(self, req: _Request) -> dict[str, Any]:
        order = req.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _bad("Invalid 'order': must be 'asc' or 'desc'.", "order")
        purpose = req.query.get("purpose")
        files = [f for f in self._state.files.values() if purpose in (None, f.purpose)]
        files.sort(key=lambda f: self._state.order[f.id], reverse=order == "desc")
        return _page(
            [f.to_api() for f in files],
            req,
            self._state.order,
            default_limit=10_000,
            max_limit=10_000,
            descending=order == "desc",
            ends=True,
        )

    def _files_retrieve(self, req: _Request, file_id: str) -> dict[str, Any]:
        return self._file(file_id).to_api()

    def _files_delete(self, req: _Request, file_id: str) -> dict[str, Any]:
        self._file(file_id)
        del self._state.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def _files_content(self, req: _Request, file_id: str) -> bytes:
        return self._file(file_id).data

    # ---------------------------------------------------------------------- uploads
    def _upload(self, upload_id: str, *, pending: bool = True) -> _Upload:
        up = self._state.uploads.get(upload_id)
        if up is None:
            raise _not_found(f"No such Upload object: {upload_id}", "upload_id")
        if pending and up.status != "pending":
            raise _bad(f"Upload {upload_id} is {up.status}, not pending.", "upload_id")
        return up

    def _uploads_create(self, req: _Request) -> dict[str, Any]:
        body = req.json()
        for name in ("bytes", "filename", "mime_type", "purpose"):
            if name not in body:
                raise _bad(f"Missing required parameter: '{name}'.", name)
        size, purpose = body["bytes"], body["purpose"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad("'bytes' must be a non-negative integer.", "bytes")
        if size > MAX_UPLOAD_BYTES:
            raise _bad("An Upload can hold at most 8 GB.", "bytes")
        if purpose not in FILE_PURPOSES:
            raise _bad(f"'{purpose}' is not a valid purpose.", "purpose")
        now = self._now()
        up = _Upload(
            self._ids.new("upload_"),
            str(body["filename"]),
            purpose,
            size,
            str(body["mime_type"]),
            now,
            now + UPLOAD_TTL_SECONDS,
        )
        self._state.uploads[up.id] = up
        return up.to_api()

    def _uploads_add_part(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        part = req.form().get("data")
        if part is None:
            raise _bad("Missing required parameter: 'data'.", "data")
        if len(part[1]) > MAX_PART_BYTES:
            raise _bad("A Part can hold at most 64 MB.", "data")
        part_id = self._ids.new("part_")
        up.parts[part_id] = part[1]
        return {
            "id": part_id,
            "object": "upload.part",
            "created_at": self._now(),
            "upload_id": up.id,
        }

    def _uploads_complete(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        body = req.json()
        part_ids = body.get("part_ids")
        if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
            raise _bad("'part_ids' must be a list of Part ids.", "part_ids")
        unknown = [p for p in part_ids if p not in up.parts]
        if unknown:
            raise _bad(f"Part {unknown[0]} does not belong to upload {up.id}.", "part_ids")
        total = sum(len(up.parts[p]) for p in part_ids)
        if total != up.size:
            raise _bad(
                f"The number of bytes uploaded ({total}) does not match the number "
                f"declared when the Upload was created ({up.size}).",
                "bytes",
            )
        md5 = body.get("md5")
        if md5 is not None:
            digest = hashlib.md5(usedforsecurity=False)
            for p in part_ids:  # part by part: no second copy of the whole file to hash
                digest.update(up.parts[p])
            if digest.hexdigest() != md5:
                raise _bad("The md5 checksum does not match the uploaded bytes.", "md5")
        data = b"".join(up.parts[p] for p in part_ids)
        up.parts.clear()  # the file holds the bytes now
        up.file = self._new_file(up.filename, up.purpose, data, None)
        up.status = "completed"
        return up.to_api()

    def _uploads_cancel(self, req: _Request, upload_id: str) -> dict[str, Any]:
        up = self._upload(upload_id)
        up.status = "cancelled"
        return up.to_api()

    # ------------------------------------------------------------------------- jobs
    def _jobs_create(self, req: _Request) -> dict[str, Any]:
        body = req.json()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("Missing required parameter: 'model'.", "model")
        method = _method_of(body)
        info = self._trainable(model, method)
        training = body.get("training_file")
        if not isinstance(training, str):
            raise _bad("Missing required parameter: 'training_file'.", "training_file")
        self._check_training_file(training, "training_file")
        validation = body.get("validation_file")
        if validation is not None:
            if not isinstance(validation, str):
                raise _bad("'validation_file' must be a file id.", "validation_file")
            self._check_training_file(validation, "validation_file")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
            raise _bad("'suffix' must be a string of 1 to 64 characters.", "suffix")
        seed = body.get("seed")
        if seed is None:
            seed = int(_unit(self.seed, "job-seed", len(self._state.jobs)) * 2_147_483_647)
        elif not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
            raise _bad("'seed' must be an integer between 0 and 2147483647.", "seed")
        metadata = _check_metadata(body.get("metadata"))
        integrations = _check_integrations(body.get("integrations"))
        requested = _hyperparameters(body, method)
        job_id = self._ids.new("ftjob-")
        job = _Job(
            id=job_id,
            short_id=self._ids.new("", 8),
            created_at=self.clock.now(),
            model=info.name if not model.startswith("ft:") else model,
            base=info,
            training_file=training,
            validation_file=validation,
            suffix=suffix,
            seed=seed,
            metadata=metadata,
            integrations=integrations,
            method=method,
            requested=requested,
        )
        self._state.jobs[job.id] = job
        self._state.remember(job.id)
        self._engine.start(job)
        return self._job_api(job)

    def _trainable(self, model: str, method: str) -> ModelInfo:
        try:
            info = self.catalog.get(model)
        except UsageError:
            raise _bad(
                f"Model {model} is not available for fine-tuning or does not exist.",
                "model",
                "model_not_available",
            ) from None
        if method not in info.methods:
            raise _bad(
                f"Model {info.name} does not support the '{method}' fine-tuning method "
                f"(supported: {', '.join(info.methods)}).",
                "method",
            )
        today = _epoch_date(self.clock.now())
        if info.fine_tuning_ends is not None and today > info.fine_tuning_ends:
            raise _bad(
                f"Fine-tuning {info.name} ended on {info.fine_tuning_ends.isoformat()}.",
                "model",
                "model_not_available",
            )
        return info

    def _check_training_file(self, file_id: str, param: str) -> None:
        f = self._state.files.get(file_id)
        if f is None:
            raise _bad(f"invalid {param}: {file_id}", param)
        if f.purpose != "fine-tune":
            raise _bad(
                f"File {file_id} has purpose '{f.purpose}'; upload fine-tuning data with "
                "purpose 'fine-tune'.",
                param,
            )

    def _jobs_list(self, req: _Request) -> dict[str, Any]:
        wanted = {k[9:-1]: v for k, v in req.query.items() if re.fullmatch(r"metadata\[.+\]", k)}
        null_only = req.query.get("metadata") == "null"
        jobs = []
        for job in self._state.jobs.values():
            if null_only and job.metadata:
                continue
            meta = job.metadata or {}
            if all(meta.get(k) == v for k, v in wanted.items()):
                jobs.append(job)
        jobs.sort(key=lambda j: self._state.order[j.id], reverse=True)
        return _page(
            [self._job_api(j) for j in jobs],
            req,
            self._state.order,
            default_limit=20,
            max_limit=100,
        )

    def _jobs_retrieve(self, req: _Request, job_id: str) -> dict[str, Any]:
        return self._job_api(self._job(job_id))

    def _jobs_cancel(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.terminal:
            raise _bad(f"Job {job_id} has already finished with status {job.status}.", None)
        self._engine.cancel(job, self.clock.now())
        return self._job_api(job)

    def _jobs_pause(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.status != "running":
            raise _bad(f"Job {job_id} is {job.status}; only a running job can be paused.")
        self._engine.pause(job, self.clock.now())
        return self._job_api(job)

    def _jobs_resume(self, req: _Request, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.status != "paused":
            raise _bad(f"Job {job_id} is {job.status}; only a paused job can be resumed.")
        self._engine.resume(job, self.clock.now())
        return self._job_api(job)

    def _jobs_events(self, req: _Request, job_id: str) -> dict[str, Any]:
        events = [e.to_api() for e in reversed(self._job(job_id).events)]
        return _page(events, req, self._state.order, default_limit=20, max_limit=100)

    def _jobs_checkpoints(self, req: _Request, job_id: str) -> dict[str, Any]:
        ckpts = [c.to_api() for c in reversed(self._job(job_id).checkpoints)]
        return _page(ckpts, req, self._state.order, default_limit=10, max_limit=100, ends=True)

    # ----------------------------------------------------------------------- models
    def _base_models(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for info in self.catalog:
            created = _snapshot_time(info.name)
            shutdown = info.shutdown_date.isoformat() if info.shutdown_date else None
            for name in (info.name, *info.aliases):
                out[name] = {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "system",
                    "shutdown_date": shutdown,
                }
        return out

    def _models_list(self, req: _Request) -> dict[str, Any]:
        data = list(self._base_models().values())
        data += [m.to_api() for m in self._state.models.values()]
        return {"object": "list", "data": data}

    def _models_retrieve(self, req: _Request, model: str) -> dict[str, Any]:
        ft = self._state.models.get(model)
        if ft is not None:
            return ft.to_api()
        base = self._base_models().get(model)
        if base is None:
            raise _model_not_found(model)
        return base

    def _models_delete(self, req: _Request, model: str) -> dict[str, Any]:
        if model in self._state.models:
            del self._state.models[model]
            return {"id": model, "object": "model", "deleted": True}
        if model in self._base_models():
            raise _ApiError(
                403,
                f"You have insufficient permissions to delete {model}: only fine-tuned "
                "models owned by your organization can be deleted.",
                code="insufficient_permissions",
            )
        raise _model_not_found(model)

    # ------------------------------------------------------------------------- chat
    def _chat_target(self, model: str) -> tuple[str, ModelInfo, Answerer | None]:
        """The served name, base model and (for fine-tunes) the answerer of ``model``."""
        ft = self._state.models.get(model)
        if ft is not None:
            return model, ft.base, ft.answerer
        job_id = self._state.checkpoint_models.get(model)
        if job_id is not None:
            job = self._state.jobs[job_id]
            return model, job.base, self._engine.answerer(job)
        if model in self._base_models():
            info = self.catalog.get(model)
            return info.name, info, None
        raise _model_not_found(model)

    def _chat_create(self, req: _Request) -> dict[str, Any] | _EventStream:
        body = req.json()
        model, messages = _chat_request(body)
        served, info, answerer = self._chat_target(model)
        opts = _ChatOptions.parse(body)
        ans = _reply(answerer, messages, opts)
        completion_id = self._ids.new("chatcmpl-", 29)
        counter = self._counter(info.name)
        return _completion(completion_id, self._now(), served, ans, messages, opts, counter)
