"""The local backend's state on disk: uploaded files and one directory per job (a "run").

```
ROOT/
  files/FILE_ID.jsonl  files/FILE_ID.json     uploaded bytes and their FileInfo
  jobs/JOB_ID/
    job.json          the request, settings and data paths (written once, at creation)
    status.json       status, pid, progress, error (rewritten atomically)
    events.jsonl      one JobEvent per line, appended by the training process
    results.csv       step, train_loss, train_accuracy, valid_loss, valid_mean_token_accuracy
    checkpoints.jsonl one line per checkpoint saved
    cancel            present once a cancel was asked for
    train.log         the training process's output
    model/            the final LoRA adapter or full model, with its tokenizer
    checkpoints/      the trainer's checkpoint-STEP directories
```

Everything is plain JSON (nothing executable), written through :mod:`finetune_qa._fs`, so
any process (the CLI, a script, the trainer itself) reads the same truth, across restarts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

from finetune_qa._fs import atomic_write

__all__ = ["RESULTS_COLUMNS", "Run", "Store", "new_id"]

RESULTS_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
)
"""The results CSV columns, as OpenAI's results file has them."""


def new_id(prefix: str) -> str:
    """A fresh id such as ``ftjob-local-3f9c0a1b2c4d5e6f``."""
    return f"{prefix}-{secrets.token_hex(8)}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    out = []
    for line in raw.splitlines():
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line being appended right now
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


class Run:
    """One job's directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name

    # --- written once
    @property
    def job(self) -> dict[str, Any]:
        """The creation record (``{}`` while it is being written)."""
        return _read_json(self.path / "job.json") or {}

    def write_job(self, record: dict[str, Any]) -> None:
        """Write the creation record."""
        atomic_write(self.path / "job.json", orjson.dumps(record, option=orjson.OPT_INDENT_2))

    # --- status
    @property
    def status(self) -> dict[str, Any]:
        """The last status written (``{}`` before the first)."""
        return _read_json(self.path / "status.json") or {}

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the status file, atomically; returns the new status."""
        status = {**self.status, **fields, "updated_at": time.time()}
        atomic_write(self.path / "status.json", orjson.dumps(status, option=orjson.OPT_INDENT_2))
        return status

    # --- appended
    def events(self) -> list[dict[str, Any]]:
        """Events, oldest first."""
        return _read_lines(self.path / "events.jsonl")

    def add_event(
        self, message: str, *, level: str = "info", type: str = "message", data: Any = None
    ) -> None:
        """Append one event (ids increase; one ``write`` so readers see whole lines)."""
        n = len(self.events()) + 1
        record = {
            "id": f"ftevent-{self.id}-{n:06d}",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": type,
            "data": data,
        }
        with open(self.path / "events.jsonl", "ab") as fh:
            fh.write(orjson.dumps(record) + b"\n")

    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints saved, oldest first, whose directories still exist."""
        return [c for c in _read_lines(self.path / "checkpoints.jsonl") if Path(c["path"]).is_dir()]

    def add_checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        """Record a checkpoint directory the trainer saved."""
        record = {
            "step": step,
            "path": str(path),
            "created_at": int(time.time()),
            "metrics": metrics,
        }
        with open(self.path / "checkpoints.jsonl", "ab") as fh:
            fh.write(orjson.dumps(record) + b"\n")

    def add_result(self, row: dict[str, Any]) -> None:
        """Append a row to the results CSV (header written first)."""
        path = self.path / "results.csv"
        new = not path.exists()
        cells = [_cell(row.get(c)) for c in RESULTS_COLUMNS]
        with open(path, "a", encoding="utf-8") as fh:
            if new:
                fh.write(",".join(RESULTS_COLUMNS) + "\n")
            fh.write(",".join(cells) + "\n")

    def results(self) -> bytes:
        """The results CSV (header only before the first step)."""
        try:
            return (self.path / "results.csv").read_bytes()
        except OSError:
            return (",".join(RESULTS_COLUMNS) + "\n").encode()

    # --- control
    def request_cancel(self) -> None:
        """Ask the trainer to stop (it checks between steps)."""
        (self.path / "cancel").touch()

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel was asked for."""
        return (self.path / "cancel").exists()

    @property
    def model_dir(self) -> Path:
        """Where the final adapter or model is saved."""
        return self.path / "model"

    @property
    def log_path(self) -> Path:
        """The training process's output."""
        return self.path / "train.log"

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the training log."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text("utf-8", "replace").strip().splitlines()
            return "\n".join(text[-lines:])
        return ""


class Store:
    """The backend's root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def files(self) -> Path:
        """Uploaded files."""
        return self.root / "files"

    @property
    def jobs(self) -> Path:
        """Run directories."""
        return self.root / "jobs"

    def run(self, job_id: str) -> Run | None:
        """The run of ``job_id``, or None when there is none."""
        if not job_id or "/" in job_id or job_id.startswith(".") or os.sep in job_id:
            return None
        path = self.jobs / job_id
        return Run(path) if (path / "job.json").is_file() else None

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        if not self.jobs.is_dir():
            return []
        runs = [Run(p) for p in self.jobs.iterdir() if (p / "job.json").is_file()]
        return sorted(runs, key=lambda r: (r.job.get("created_at", 0), r.id), reverse=True)

    def new_run(self) -> Run:
        """A new, empty run directory."""
        self.jobs.mkdir(parents=True, exist_ok=True)
        while True:
            path = self.jobs / new_id("ftjob-local")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return Run(path)
