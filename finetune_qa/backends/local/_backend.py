"""LocalBackend: fine-tune and serve open models on this machine, behind the Backend seam."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from finetune_qa._fs import atomic_write
from finetune_qa.backends.base import (
    TERMINAL_STATUSES,
    BackendDefaults,
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    Usage,
)
from finetune_qa.backends.local._deps import require
from finetune_qa.backends.local._settings import PROVIDER_OPTION_NAMES, LocalSettings
from finetune_qa.backends.local._store import Run, Store, new_id
from finetune_qa.config import cache_dir
from finetune_qa.exceptions import (
    BadRequestError,
    NotFoundError,
    UsageError,
)

if TYPE_CHECKING:
    from finetune_qa.backends.local._infer import Batcher, Generation, LoadedModel

__all__ = ["MAX_EPOCHS", "LocalBackend", "default_root"]

MAX_EPOCHS = 1000
"""The most epochs a local job takes (hosted trainers stop at 50)."""

ENV_ROOT = "FINETUNE_QA_LOCAL_DIR"
"""Environment variable naming the local backend's directory."""

_RESULTS_PREFIX = "file-results-"


def default_root() -> Path:
    """``$FINETUNE_QA_LOCAL_DIR``, else ``local/`` in finetune_qa's cache directory."""
    env = os.environ.get(ENV_ROOT)
    return Path(env).expanduser() if env else cache_dir() / "local"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


class LocalBackend(BackendDefaults):
    """Train open models with TRL/PEFT/accelerate and answer with them, on this machine.

    A job is a run directory (see :mod:`finetune_qa.backends.local._store`) and a training
    process, detached so that a script that exits, ``train --no-wait`` or a killed parent
    leave it running; every call reads the run directory, so ``attach``, ``wait``,
    ``cancel`` and ``jobs`` work from any process. Base models are Hugging Face causal-LM
    ids or local model directories with a chat template. Fine-tuned models are named
    ``local:JOB_ID`` (``local:JOB_ID:ckpt-step-N`` for a checkpoint); a model directory
    or run directory path works too.

    Needs ``pip install 'finetune-qa[local]'`` to train or answer; listing and reading
    jobs work without it.

    Args:
        root: where files and runs are kept (default :func:`default_root`).
        launcher: ``"auto"`` (``accelerate launch`` when an accelerate config exists or
            more than one GPU is visible, else plain Python), ``"python"`` or ``"accelerate"``.
        max_loaded: models kept in memory for chat.

    Example:
        >>> import tempfile
        >>> LocalBackend(root=tempfile.mkdtemp()).list_jobs()
        []
    """

    name = "local"
    supports_metadata = True
    provider_option_names = PROVIDER_OPTION_NAMES
    validation_provider = "openai"
    max_epochs = MAX_EPOCHS
    poll_interval = 1.0
    """Seconds between polls when following a job (its files are on this machine)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        launcher: str = "auto",
        max_loaded: int = 2,
    ) -> None:
        # absolute: the training process runs in its run directory, and other processes
        # (a later CLI command, a script elsewhere) must find the same runs
        self.root = (Path(root).expanduser() if root is not None else default_root()).absolute()
        self.store = Store(self.root)
        self.launcher = launcher
        self.max_loaded = max_loaded
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._models_lock = threading.Lock()
        self._batchers: dict[str, Batcher] = {}

    def __repr__(self) -> str:
        return f"LocalBackend(root={str(self.root)!r})"

    # ------------------------------------------------------------------ clock
    def monotonic(self) -> float:
        """Real time (local jobs run on the wall clock)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        time.sleep(seconds)

    # ------------------------------------------------------------------ checks
    def check_request(
        self,
        request: JobRequest,
        *,
        training_path: Path | None = None,
        validation_path: Path | None = None,
    ) -> None:
        """Check settings and the base model before anything is stored or started.

        Raises:
            UsageError: a bad option, or a model directory that is not one.
            ConfigError: the ``local`` extra is not installed.
        """
        settings = self.settings_of(request)
        if request.method != "supervised":
            raise UsageError("the local backend trains method='supervised' only")
        if settings.chat_template is None:
            self._check_model(request.model)
        require()

    @staticmethod
    def settings_of(request: JobRequest) -> LocalSettings:
        """The request's local settings (from ``provider_options``).

        Raises:
            UsageError: an option has a bad value.
        """
        try:
            return LocalSettings.model_validate(request.provider_options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"local option {where}: {first['msg']}") from None

    @staticmethod
    def _check_model(model: str) -> None:
        path = Path(model).expanduser()
        if path.is_dir():
            if (
                not (path / "config.json").is_file()
                and not (path / "adapter_config.json").is_file()
            ):
                raise UsageError(
                    f"{model} is not a model directory (no config.json); pass a Hugging Face "
                    "model directory or hub id"
                )
            has_template = (path / "chat_template.jinja").is_file() or b"chat_template" in (
                (path / "tokenizer_config.json").read_bytes()
                if (path / "tokenizer_config.json").is_file()
                else b""
            )
            if not has_template:
                raise UsageError(
                    f"the model {model} has no chat template, so chat examples cannot be "
                    "rendered for it; use an instruct/chat model, or pass one with "
                    "provider_options={'chat_template': '...'} (CLI: --chat-template FILE)"
                )
        elif path.exists():
            raise UsageError(f"{model} is not a directory; pass a model directory or hub id")
        elif model.startswith((".", "/", "~")):
            raise UsageError(f"no model directory at {model}; check the path")
        # anything else is a hub id: the training process loads it (or fails, saying why)

    # ------------------------------------------------------------------ files
    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        """Store ``data`` (content-addressed: the same bytes give the same file id)."""
        digest = hashlib.sha256(data).hexdigest()[:24]
        file_id = f"file-local-{digest}"
        body = self.store.files / f"{file_id}.jsonl"
        meta = self.store.files / f"{file_id}.json"
        info = FileInfo(
            id=file_id,
            filename=filename,
            bytes=len(data),
            purpose=purpose,
            created_at=int(time.time()),
            status="processed",
        )
        if not body.is_file() or body.stat().st_size != len(data):
            atomic_write(body, data, mode=0o600)
        if not meta.is_file():
            atomic_write(meta, info.model_dump_json(), mode=0o600)
        return FileInfo.model_validate_json(meta.read_bytes())

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        """Stored files, newest first."""
        if not self.store.files.is_dir():
            return []
        infos = []
        for meta in self.store.files.glob("file-local-*.json"):
            with contextlib.suppress(OSError, ValidationError):
                infos.append(FileInfo.model_validate_json(meta.read_bytes()))
        infos = [i for i in infos if purpose is None or i.purpose == purpose]
        infos.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return infos[:limit]

    def _file_path(self, file_id: str) -> Path:
        path = self.store.files / f"{file_id}.jsonl"
        if not file_id.startswith("file-local-") or "/" in file_id or not path.is_file():
            raise NotFoundError(f"no file {file_id!r} on the local backend", status_code=404)
        return path

    def _file_name(self, file_id: str) -> str | None:
        meta = self.store.files / f"{file_id}.json"
        try:
            return FileInfo.model_validate_json(meta.read_bytes()).filename
        except (OSError, ValidationError):
            return None

    def file_content(self, file_id: str) -> bytes:
        """A stored file's bytes, or a job's results CSV (``file-results-JOB``)."""
        if file_id.startswith(_RESULTS_PREFIX):
            run = self._run(file_id[len(_RESULTS_PREFIX) :])
            return run.results()
        return self._file_path(file_id).read_bytes()

    # ------------------------------------------------------------------ jobs
    def _run(self, job_id: str) -> Run:
        run = self.store.run(job_id)
        if run is None:
            raise NotFoundError(
                f"no local job {job_id!r} under {self.root}", status_code=404, code="job_not_found"
            )
        return run

    def create_job(self, request: JobRequest) -> JobInfo:
        """Store the job and start its training process; returns at once (status queued)."""
        settings = self.settings_of(request)
        if not (isinstance(request.n_epochs, str) or 1 <= request.n_epochs <= MAX_EPOCHS):
            raise BadRequestError(
                f"n_epochs must be 1-{MAX_EPOCHS} on the local backend",
                status_code=400,
                param="n_epochs",
            )
        train_path = self._file_path(request.training_file)
        val_path = self._file_path(request.validation_file) if request.validation_file else None
        run = self.store.new_run()
        now = int(time.time())
        model = request.model
        if Path(model).expanduser().is_dir():
            model = str(Path(model).expanduser().resolve())
        run.write_job(
            {
                "id": run.id,
                "created_at": now,
                "base_model": model,
                "request": request.model_dump(mode="json"),
                "settings": settings.model_dump(mode="json"),
                "training_path": str(train_path.resolve()),
                "training_filename": self._file_name(request.training_file),
                "validation_path": str(val_path.resolve()) if val_path else None,
                "validation_filename": (
                    self._file_name(request.validation_file) if request.validation_file else None
                ),
            }
        )
        run.update_status(status="queued", provider_status="queued")
        run.add_event(f"Created fine-tuning job: {run.id}")
        pid = self._launch(run, settings)
        run.update_status(launcher_pid=pid)
        return self._info(run)

    def _launch(self, run: Run, settings: LocalSettings) -> int:
        """Start the training process, detached (its own session); returns its pid."""
        import finetune_qa

        launcher = settings.launcher if settings.launcher != "auto" else self.launcher
        env = dict(os.environ)
        src = str(Path(finetune_qa.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "finetune_qa.backends.local._train",
            "--detach",
            launcher,
            str(run.path),
        ]
        proc = subprocess.run(
            cmd, env=env, cwd=run.path, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
        )
        out = proc.stdout.decode().strip()
        if proc.returncode != 0 or not out.isdigit():
            run.update_status(
                status="failed",
                error_code="launch_failed",
                error_message=f"the training process did not start: {proc.stderr.decode()[-500:]}",
                finished_at=int(time.time()),
            )
            return 0
        return int(out)

    def _info(self, run: Run) -> JobInfo:
        job, status = run.job, self._refresh_status(run)
        request = job.get("request", {})
        state = status.get("status", "queued")
        step, total = status.get("step") or 0, status.get("total_steps") or 0
        estimated = None
        started = status.get("started_at")
        if state == "running" and started and step and total:
            estimated = int(started + (time.time() - started) / step * total)
        results = (run.path / "results.csv").exists()
        return JobInfo(
            id=run.id,
            status=state,
            provider_status=status.get("provider_status", state),
            model=job.get("base_model", request.get("model", "")),
            fine_tuned_model=status.get("fine_tuned_model"),
            training_file=request.get("training_file", ""),
            validation_file=request.get("validation_file"),
            created_at=job.get("created_at", 0),
            finished_at=status.get("finished_at"),
            trained_tokens=status.get("trained_tokens"),
            result_files=[f"{_RESULTS_PREFIX}{run.id}"] if results else [],
            error_code=status.get("error_code"),
            error_message=status.get("error_message"),
            metadata=request.get("metadata") or {},
            estimated_finish=estimated,
            raw={"job": job, "status": status, "run_dir": str(run.path)},
        )

    def _refresh_status(self, run: Run) -> dict[str, Any]:
        """The status, with a training process that died unannounced turned into its ending."""
        status = run.status
        if status.get("status") in TERMINAL_STATUSES:
            return status
        pid = status.get("pid") or status.get("launcher_pid")
        if not pid:
            return status
        if _alive(int(pid)):
            return status
        time.sleep(0.05)  # the process may have written its last status as it exited
        status = run.status
        if status.get("status") in TERMINAL_STATUSES:
            return status
        if run.cancel_requested:
            run.add_event("Job cancelled")
            return run.update_status(status="cancelled", finished_at=int(time.time()))
        tail = run.log_tail(3)
        message = "the training process ended without a result (killed, or it crashed hard)" + (
            f"; the end of {run.log_path}: {tail}" if tail else f"; see {run.log_path}"
        )
        run.add_event(f"Job failed: {message}", level="error")
        return run.update_status(
            status="failed",
            error_code="process_died",
            error_message=message,
            finished_at=int(time.time()),
        )

    def retrieve_job(self, job_id: str) -> JobInfo:
        """The job as its run directory says now."""
        return self._info(self._run(job_id))

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        """Jobs, newest first, optionally only those whose metadata matches."""
        out = []
        for run in self.store.runs():
            meta = (run.job.get("request") or {}).get("metadata") or {}
            if metadata and any(meta.get(k) != v for k, v in metadata.items()):
                continue
            out.append(self._info(run))
            if len(out) >= limit:
                break
        return out

    def cancel_job(self, job_id: str) -> JobInfo:
        """Ask the training process to stop after its current step (SIGTERM to its group)."""
        run = self._run(job_id)
        if run.status.get("status") in TERMINAL_STATUSES:
            raise BadRequestError(
                f"job {job_id} has already ended ({run.status.get('status')})", status_code=400
            )
        run.request_cancel()
        pid = run.status.get("pid") or run.status.get("launcher_pid")
        if pid and _alive(int(pid)):
            with contextlib.suppress(OSError):
                # the whole session: the trainer, or accelerate's launcher and its workers
                os.killpg(os.getpgid(int(pid)), signal.SIGTERM)
            run.update_status(provider_status="cancelling")
        return self._info(run)

    def pause_job(self, job_id: str) -> JobInfo:
        """Not offered locally.

        Raises:
            UsageError: always (cancel and start again from a checkpoint instead).
        """
        raise UsageError("the local backend cannot pause a job; cancel it instead")

    def resume_job(self, job_id: str) -> JobInfo:
        """Not offered locally.

        Raises:
            UsageError: always.
        """
        raise UsageError("the local backend cannot pause or resume a job")

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        """One page of events, newest first; ``after`` is an event id (older than it)."""
        run = self._run(job_id)
        self._refresh_status(run)
        events = run.events()
        events.reverse()
        if after is not None:
            ids = [e["id"] for e in events]
            events = events[ids.index(after) + 1 :] if after in ids else []
        return [JobEvent.model_validate(e) for e in events[:limit]]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints saved by the trainer (the last ``n_checkpoints``), newest first."""
        run = self._run(job_id)
        out = [
            Checkpoint(
                id=f"ftckpt-{run.id}-{c['step']}",
                created_at=c["created_at"],
                fine_tuned_model_checkpoint=f"local:{run.id}:ckpt-step-{c['step']}",
                step_number=c["step"],
                metrics=c.get("metrics") or {},
            )
            for c in run.checkpoints()
        ]
        out.sort(key=lambda c: c.step_number, reverse=True)
        return out

    # ------------------------------------------------------------------ chat
    def model_path(self, model: str) -> Path | str:
        """Where ``model`` is loaded from: a directory, or a hub id as it is.

        Raises:
            NotFoundError: a ``local:`` name with no finished job or checkpoint behind it.
        """
        if model.startswith("local:"):
            job_id, _, ckpt = model[len("local:") :].partition(":")
            run = self.store.run(job_id)
            if run is None:
                raise NotFoundError(
                    f"the model {model} does not exist under {self.root}",
                    status_code=404,
                    code="model_not_found",
                )
            if ckpt:
                step = ckpt.removeprefix("ckpt-step-")
                for c in run.checkpoints():
                    if str(c["step"]) == step:
                        return Path(c["path"])
                raise NotFoundError(
                    f"no checkpoint {ckpt} in job {job_id}", status_code=404, code="model_not_found"
                )
            if (
                not (run.model_dir / "config.json").is_file()
                and not (run.model_dir / "adapter_config.json").is_file()
            ):
                raise NotFoundError(
                    f"the model {model} is not ready: job {job_id} is "
                    f"{run.status.get('status', 'queued')}",
                    status_code=404,
                    code="model_not_found",
                )
            return run.model_dir
        path = Path(model).expanduser()
        if path.is_dir():
            return path / "model" if (path / "job.json").is_file() else path
        return model

    def _loaded(self, model: str) -> LoadedModel:
        require()
        from finetune_qa.backends.local._infer import load_model

        with self._models_lock:
            if model in self._models:
                self._models.move_to_end(model)
                return self._models[model]
            source = self.model_path(model)
            try:
                loaded = load_model(Path(source), name=model)
            except (OSError, ValueError) as exc:
                raise NotFoundError(
                    f"cannot load the model {model}: {exc}",
                    status_code=404,
                    code="model_not_found",
                ) from exc
            self._models[model] = loaded
            while len(self._models) > self.max_loaded:
                evicted, _ = self._models.popitem(last=False)
                batcher = self._batchers.pop(evicted, None)
                if batcher is not None:
                    batcher.close()
            return loaded

    def _batcher(self, model: str) -> Batcher:
        from finetune_qa.backends.local._infer import Batcher

        loaded = self._loaded(model)
        with self._models_lock:
            batcher = self._batchers.get(model)
            if batcher is None or batcher.model is not loaded:
                batcher = self._batchers[model] = Batcher(loaded)
            return batcher

    @staticmethod
    def _settings(request: ChatRequest) -> dict[str, Any]:
        return {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": tuple(request.stop) if request.stop else None,
            "seed": request.seed,
            "logprobs": request.logprobs,
            "top_logprobs": request.top_logprobs,
        }

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer with the model in this process (batched with concurrent requests)."""
        future = self._batcher(request.model).submit(request.messages, **self._settings(request))
        try:
            gen = future.result()
        except (ValueError, TypeError) as exc:
            raise BadRequestError(
                f"the local model refused the request: {exc}", status_code=400
            ) from exc
        return self._response(request, gen)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """:meth:`chat` without blocking the event loop: concurrent calls share batches."""
        batcher = await asyncio.to_thread(self._batcher, request.model)
        future = batcher.submit(request.messages, **self._settings(request))
        try:
            gen = await asyncio.wrap_future(future)
        except (ValueError, TypeError) as exc:
            raise BadRequestError(
                f"the local model refused the request: {exc}", status_code=400
            ) from exc
        return self._response(request, gen)

    @staticmethod
    def _response(request: ChatRequest, gen: Generation) -> ChatResponse:
        return ChatResponse(
            id=new_id("chatcmpl-local"),
            model=request.model,
            content=gen.text,
            finish_reason=gen.finish_reason,
            usage=Usage(
                prompt_tokens=gen.prompt_tokens,
                completion_tokens=gen.completion_tokens,
                total_tokens=gen.prompt_tokens + gen.completion_tokens,
            ),
            logprobs=gen.logprobs,
        )
