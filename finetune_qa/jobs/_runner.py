"""Idempotent uploads and job creation: journal the intent, look before any retry.

A file is uploaded once per content (its SHA-256 is in its name and in the journal);
a job is created with an idempotency token in its metadata, journalled *before* the
request. When a request gets no answer the retries look for what it made first (by
token, or on a backend without metadata by its model, files and settings) and raise
rather than guess when that look-up fails. Retries follow the one policy,
:mod:`finetune_qa._retry`, waiting on the backend's clock.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson

from finetune_qa._limits import FILES_API_LIMIT, MULTIPART_THRESHOLD
from finetune_qa._retry import RetryPolicy
from finetune_qa.backends.base import (
    Backend,
    FileInfo,
    JobInfo,
    JobRequest,
    MatchesRequests,
    UploadsPaths,
    backend_sleep,
    endpoint,
    supports_metadata,
)
from finetune_qa.exceptions import BackendError, UsageError
from finetune_qa.jobs._journal import Journal
from finetune_qa.jobs._preflight import TOKEN_KEY

__all__ = ["CLOCK_SKEW", "Runner"]

CLOCK_SKEW = 60
"""Seconds a provider's clock may lag ours when a job is matched by its creation time."""

T = TypeVar("T")


class Runner:
    """Uploads and job creation with the journal and reconciliation.

    Args:
        backend: where to upload and create.
        journal: the journal that records intents and results.
        retries: tries of each request, the first included.
        force_new: create a new job even when the journal shows the same request made one.
        part_threshold: files larger than this are uploaded in parts, where the backend can.
        parallel: parts sent at once.
    """

    def __init__(
        self,
        backend: Backend,
        journal: Journal,
        retries: int,
        *,
        force_new: bool = False,
        part_threshold: int = MULTIPART_THRESHOLD,
        parallel: int = 4,
    ) -> None:
        self.force_new = force_new
        self.part_threshold = part_threshold
        self.parallel = parallel
        self.backend = backend
        self.journal = journal
        self.policy = RetryPolicy(attempts=max(1, retries))
        self.label = endpoint(backend)
        self.sleep: Callable[[float], None] = backend_sleep(backend)

    def _call(self, fn: Callable[[], T]) -> T:
        """``fn()`` (a request that creates nothing), retried by the policy."""
        return self.policy.call(fn, sleep=self.sleep)

    # ------------------------------------------------------------------ uploads
    def upload(self, path: Path) -> str:
        """The provider's id of ``path``'s content: an earlier upload's, else a new one."""
        sha = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
        size = path.stat().st_size
        filename = f"{path.stem}-{digest[:16]}.jsonl"
        done = self.journal.find(op="upload", state="done", backend=self.label, sha256=digest)
        for rec in reversed(done):
            if self._exists(rec["file_id"]):
                return str(rec["file_id"])
        # an intent without its "done": an earlier run may have uploaded it unheard, so a
        # failed look-up must stop us; otherwise a failed look-up only risks a re-upload
        pending = self.journal.find(op="upload", state="intent", backend=self.label, sha256=digest)
        found = self._find_uploaded(filename, size, strict=bool(pending))
        if found is None:
            self.journal.append(
                {
                    "op": "upload",
                    "state": "intent",
                    "backend": self.label,
                    "sha256": digest,
                    "filename": filename,
                    "bytes": size,
                }
            )
            found = self._upload_once(path, size, filename).id
        self.journal.append(
            {
                "op": "upload",
                "state": "done",
                "backend": self.label,
                "sha256": digest,
                "filename": filename,
                "file_id": found,
            }
        )
        return found

    def _upload_once(self, path: Path, size: int, filename: str) -> FileInfo:
        be = self.backend

        def send() -> FileInfo:
            if size > self.part_threshold and isinstance(be, UploadsPaths):
                return be.upload_path(path, filename=filename, parallel=self.parallel)
            if size > FILES_API_LIMIT:
                raise UsageError(
                    f"{path} is {size:,} bytes, over the Files API's 512 MB, and the "
                    f"{be.name} backend has no multi-part upload"
                )
            return be.upload_file(path.read_bytes(), filename=filename)

        def landed() -> FileInfo | None:
            # the upload may have landed although we heard nothing: look before retrying
            fid = self._find_uploaded(filename, size, strict=True)
            if fid is None:
                return None
            return FileInfo(
                id=fid, filename=filename, bytes=size, purpose="fine-tune", created_at=0
            )

        return self.policy.call(send, sleep=self.sleep, lookup=landed)

    def _find_uploaded(self, filename: str, size: int, *, strict: bool) -> str | None:
        """The id of an uploaded file of this name and size, if any.

        With ``strict`` (an upload may have landed unheard), a failed look-up raises:
        uploading again could leave two copies, and nothing more is sent.
        """
        try:
            files = self._call(lambda: self.backend.list_files(purpose="fine-tune"))
        except BackendError as exc:
            if strict:
                _with_hint(
                    exc,
                    f"Could not check whether {filename} was uploaded; nothing more was sent. "
                    f"Re-run with the same journal ({self.journal.path}) to reconcile.",
                )
                raise
            return None
        for f in files:
            if f.filename == filename and f.bytes == size:
                return f.id
        return None

    def _exists(self, file_id: str) -> bool:
        try:
            files = self._call(lambda: self.backend.list_files(purpose="fine-tune"))
        except BackendError:
            return False
        return any(f.id == file_id for f in files)

    # ------------------------------------------------------------------ jobs
    def create(self, request: JobRequest) -> JobInfo:
        """The job ``request`` makes: one an earlier run made, else a new one (journalled)."""
        key = hashlib.sha256(
            orjson.dumps(request.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        earlier = (
            [] if self.force_new else self.journal.find(op="job", backend=self.label, request=key)
        )
        done = [r for r in earlier if r.get("state") == "created"]
        if done:  # the same request already made a job: attach to it instead
            return self._call(lambda: self.backend.retrieve_job(done[-1]["job_id"]))
        intents = [r for r in earlier if r.get("state") == "intent"]
        token, created_after = self._intent(key, request, intents[-1] if intents else None)
        sent = request.model_copy(update={"metadata": {**request.metadata, TOKEN_KEY: token}})

        def find() -> JobInfo | None:
            return self._find_job(token, request=request, created_after=created_after)

        # On a backend without metadata a look-up for a new intent could adopt another
        # run's job: only look first when resuming an intent (maybe_done below).
        if not intents and not self.force_new and supports_metadata(self.backend):
            # No record of this request, but the journal may have been lost or damaged:
            # the token is the request's own, so a job carrying it was made by an earlier
            # run of the same request. Best effort: a failed look-up does not stop a
            # first attempt (nothing was sent under this journal).
            try:
                adopted = find()
            except BackendError:
                adopted = None
            if adopted is not None:
                self._record(key, token, adopted, request)
                return adopted
        info = self.policy.call(
            lambda: self.backend.create_job(sent),
            sleep=self.sleep,
            lookup=find,
            # resuming an intent: an earlier run may have created it unheard
            maybe_done=bool(intents),
            unsettled_hint="The job may have been created: re-run with the same journal "
            f"({self.journal.path}) to reconcile before anything new is sent.",
        )
        self._record(key, token, info, request)
        return info

    def _intent(
        self, key: str, request: JobRequest, intent: dict[str, object] | None
    ) -> tuple[str, int]:
        """The token and start time of this request's intent, journalled when new."""
        if intent is not None:
            return str(intent["token"]), int(str(intent.get("created_after") or 0))
        # the token follows from the request and the journal's place, so a run whose
        # journal was lost or damaged still finds the job an earlier run created there
        # (another workdir, or force_new: a job of its own)
        where = str(self.journal.path.resolve())
        token = (
            uuid.uuid4().hex
            if self.force_new
            else hashlib.sha256(f"{key}:{where}".encode()).hexdigest()[:32]
        )
        created_after = int(time.time())
        self.journal.append(
            {
                "op": "job",
                "state": "intent",
                "backend": self.label,
                "request": key,
                "token": token,
                "model": request.model,
                "training_file": request.training_file,
                "created_after": created_after,
            }
        )
        return token, created_after

    def _record(self, key: str, token: str, info: JobInfo, request: JobRequest) -> None:
        self.journal.append(
            {
                "op": "job",
                "state": "created",
                "backend": self.label,
                "request": key,
                "token": token,
                "job_id": info.id,
                "model": request.model,
            }
        )

    def _lookup_failed(self, exc: BackendError) -> None:
        _with_hint(
            exc,
            "Could not check whether the job was created; nothing more was sent. Re-run "
            f"with the same journal ({self.journal.path}) to reconcile.",
        )

    def _find_job(self, token: str, *, request: JobRequest, created_after: int) -> JobInfo | None:
        """The job this intent created, if any; a failed look-up raises (nothing is sent)."""
        if not supports_metadata(self.backend):
            return self._find_job_by_request(request, created_after)
        try:
            jobs = self._call(
                lambda: self.backend.list_jobs(limit=100, metadata={TOKEN_KEY: token})
            )
        except BackendError as exc:
            self._lookup_failed(exc)
            raise
        for j in jobs:
            if j.metadata.get(TOKEN_KEY) == token:
                return j
        return None

    def _find_job_by_request(self, request: JobRequest, created_after: int) -> JobInfo | None:
        """For backends whose jobs carry no metadata: the job this request made, if any.

        A job matches when its model, training and validation files and suffix are the
        request's, the backend's ``matches_request(job, request)`` (when it has one)
        finds the settings it echoes back equal, it was created no earlier than the
        intent was journalled (less ``CLOCK_SKEW`` seconds for the provider's clock) and
        no other journal record has claimed it.

        Raises:
            BackendError: the look-up failed, or more than one job matches (another
                process, with another journal, sent the same request at the same time).
        """
        try:
            jobs = self._call(lambda: self.backend.list_jobs(limit=100))
        except BackendError as exc:
            self._lookup_failed(exc)
            raise
        be = self.backend
        claimed = {
            r.get("job_id")
            for r in self.journal.find(op="job", backend=self.label)
            if r.get("state") == "created"
        }
        matches = [
            j
            for j in jobs
            if j.model == request.model
            and j.training_file == request.training_file
            and (j.validation_file or None) == (request.validation_file or None)
            and _same_suffix(j, request.suffix)
            and j.created_at >= created_after - CLOCK_SKEW
            and j.id not in claimed
            and (not isinstance(be, MatchesRequests) or be.matches_request(j, request))
        ]
        if len(matches) > 1:
            ids = ", ".join(j.id for j in sorted(matches, key=lambda j: j.created_at))
            raise BackendError(
                f"{len(matches)} {self.backend.name} jobs match this request ({ids}) and the "
                "backend's jobs carry no token to tell which one this run created; nothing "
                "more was sent. Check them (`finetune-qa status <id>`), cancel any you do not "
                "want, and pick yours up with FineTuneJob.attach(job_id, backend=..., "
                f"journal={str(self.journal.path)!r}).",
                code="ambiguous_job",
            )
        return matches[0] if matches else None


def _same_suffix(job: JobInfo, suffix: str | None) -> bool:
    recorded = job.raw.get("suffix")
    if recorded is None and suffix:
        # a record without the field: the suffix is part of the output model's name
        return suffix in str(job.raw.get("model_output_name") or "")
    return (recorded or None) == (suffix or None)


def _with_hint(exc: BackendError, hint: str) -> None:
    """Add ``hint`` to the message of ``exc`` (its class and fields stay as they are)."""
    exc.args = (f"{exc} {hint}",)
