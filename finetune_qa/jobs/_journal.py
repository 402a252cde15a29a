"""The journal: an append-only, durable record of uploads, jobs and model cards.

Every upload and job creation is journalled *before* its request is sent (the intent)
and after (what it made), so a re-run after any failure finds what an earlier run made
instead of making it twice. A job that succeeds has its model's card recorded here and
in this machine's index of models (``<cache dir>/models.jsonl``), found again by model
name with :func:`model_card`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import file_lock
from finetune_qa.backends.base import Backend, endpoint, supports_metadata
from finetune_qa.config import cache_dir
from finetune_qa.exceptions import BackendError, InputFileError

__all__ = [
    "CARD_KEYS",
    "DataFile",
    "Journal",
    "ModelCard",
    "card_from_provider",
    "card_metadata",
    "file_record",
    "model_card",
    "models_index",
    "now",
]

logger = logging.getLogger("finetune_qa.jobs")

CARD_KEYS = ("finetune_qa_system_prompt", "finetune_qa_stop")
"""Metadata keys that carry the training system prompt and stop marker, where there is room.

A system prompt longer than a metadata value (512 characters) is carried as
``sha256:<hex>`` instead, so a card read from the provider can still be checked."""


class DataFile(BaseModel):
    """A data file a model was trained (or validated) on, by content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The path given when the job was created.")
    sha256: str = Field(description="SHA-256 of the file's bytes.")
    bytes: int = Field(description="Size in bytes.")
    file_id: str | None = Field(default=None, description="The provider's file id.")


class ModelCard(BaseModel):
    """How a fine-tuned model was trained: what to query it with, and what it learnt from.

    Recorded when its job succeeds, in the job's journal and in the machine's index of
    models (``<cache dir>/models.jsonl``), for every backend; found again by model name
    with :func:`model_card` or :meth:`FineTuneJob.card`. :class:`~finetune_qa.chat.ChatModel`,
    ``ask``, ``eval`` and ``guard`` query a model with its card's system prompt and stop
    marker unless told otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The fine-tuned model's name.")
    job_id: str = Field(description="The job that trained it.")
    base_model: str = Field(description="The model it was fine-tuned from.")
    backend: str = Field(description="Backend name: openai, offline, together, local, ...")
    endpoint: str = Field(
        description="Which provider account or server (the journal's backend label; no key)."
    )
    system_prompt: str | None = Field(description="System message of the training examples.")
    stop: str | None = Field(description="Stop marker the training answers end with.")
    training_file: DataFile | None = Field(description="The training data.")
    validation_file: DataFile | None = Field(default=None, description="The validation data.")
    split: str | None = Field(
        default=None, description="How training and validation data were split, in words."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Method and hyperparameters as requested (epochs, batch size, ...).",
    )
    trained_at: str | None = Field(default=None, description="When the success was recorded.")

    def describe(self) -> str:
        """One line: the model, its base, and the prompt and marker to query it with."""
        return (
            f"{self.model}: fine-tuned from {self.base_model} on {self.backend} (job "
            f"{self.job_id}); system prompt {self.system_prompt!r}, stop marker {self.stop!r}"
        )


def models_index() -> Journal:
    """This machine's index of model cards, beside the default journal."""
    return Journal(cache_dir() / "models.jsonl")


def model_card(
    model: str,
    *,
    journal: Journal | str | os.PathLike[str] | None = None,
    backend: Backend | None = None,
    ask_provider: bool = False,
) -> ModelCard | None:
    """The card of a fine-tuned model, or None when no record of its training is found.

    Looks in ``journal`` (when given) and in this machine's index of models; with
    ``backend``, only at models trained through the same provider account or server
    (the same name elsewhere is another model). The latest record wins. With
    ``ask_provider`` (and ``backend``), a model with no local record is looked up among
    the provider's latest 100 jobs: a job created by ``FineTuneJob`` carries its system
    prompt and stop marker in its metadata where the provider keeps metadata (OpenAI and
    the offline backend do; the card then has no file hashes or settings).

    Example:
        ```python
        card = model_card("ft:gpt-4o-mini-2024-07-18:acme::abc123")
        if card is not None:
            print(card.system_prompt, card.stop)
        ```
    """
    label = endpoint(backend) if backend is not None else None
    sources = [models_index()]
    if journal is not None:
        sources.insert(0, journal if isinstance(journal, Journal) else Journal(journal))
    found: ModelCard | None = None
    for jr in sources:
        for rec in jr.find(op="model", state="card", model=model):
            if label is not None and rec.get("endpoint") != label:
                continue
            data = {k: v for k, v in rec.items() if k in ModelCard.model_fields}
            try:
                found = ModelCard.model_validate(data)
            except ValueError:
                continue  # a record from another version: skip it rather than fail a query
        if found is not None:
            return found
    if ask_provider and backend is not None:
        return card_from_provider(model, backend)
    return None


def card_metadata(
    backend: Backend, user_meta: Mapping[str, str], system_prompt: str | None, stop: str | None
) -> dict[str, str]:
    """The card's prompt and marker as job metadata, where the provider keeps metadata.

    Only when the user's pairs leave room: 16 at most, one of them the token.
    """
    if not supports_metadata(backend) or len(user_meta) + 1 + 2 > 16:
        return {}
    out: dict[str, str] = {}
    if system_prompt is not None:
        out[CARD_KEYS[0]] = (
            system_prompt
            if len(system_prompt) <= 512
            else "sha256:" + hashlib.sha256(system_prompt.encode("utf-8")).hexdigest()
        )
    if stop is not None and len(stop) <= 512:
        out[CARD_KEYS[1]] = stop
    return out


def card_from_provider(model: str, backend: Backend) -> ModelCard | None:
    """A card from the provider's record of the job that made ``model`` (its metadata)."""
    try:
        jobs = backend.list_jobs(limit=100)
    except BackendError:
        return None
    job = next((j for j in jobs if j.fine_tuned_model == model and j.status == "succeeded"), None)
    if job is None or not any(k in job.metadata for k in CARD_KEYS):
        return None
    prompt = job.metadata.get(CARD_KEYS[0])
    if prompt is not None and prompt.startswith("sha256:"):
        return None  # too long to carry: the prompt itself is not known here
    return ModelCard(
        model=model,
        job_id=job.id,
        base_model=job.model,
        backend=backend.name,
        endpoint=endpoint(backend),
        system_prompt=prompt,
        stop=job.metadata.get(CARD_KEYS[1]),
        training_file=None,
        validation_file=None,
        settings={},
    )


def file_record(path: Path, file_id: str | None) -> dict[str, Any]:
    """What a model card keeps of a data file: path, SHA-256, size and provider id."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return {
        "path": str(path),
        "sha256": sha.hexdigest(),
        "bytes": path.stat().st_size,
        "file_id": file_id,
    }


def now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Journal:
    """An append-only record of uploads and jobs, written before each call returns.

    Each line is one JSON object; the file is created owner-only (0600) and every
    record is flushed and fsync'ed. It holds ids, hashes, model names and a backend
    label — never an API key.

    Args:
        path: the journal file (default ``<cache dir>/journal.jsonl``).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "journal.jsonl"
        self._lock = threading.Lock()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on this journal file (``flock``), across processes.

        Held around a read-decide-write sequence (find a job, else create and record it)
        so that two processes sharing the journal never both decide to create. The file
        is only ever appended to, never replaced, so the lock is on the file itself (it
        is created, owner-only, when missing).
        """
        return file_lock(self.path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record durably."""
        line = orjson.dumps({"at": now(), **record}) + b"\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise InputFileError(
                    f"cannot open the journal ({exc.strerror})",
                    path=self.path,
                    hint="pass a writable file path as journal=, or remove what is in the way",
                ) from exc
            try:
                size = os.fstat(fd).st_size
                # a torn last line (a killed process) must not swallow this record
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (a torn last line from a crash is skipped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InputFileError(
                f"cannot read the journal ({exc.strerror})",
                path=self.path,
                hint="pass a readable journal file, or remove what is in the way",
            ) from exc
        out = []
        for n, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                logger.warning(
                    "%s:%d: skipped a damaged journal line (a process killed mid-write)",
                    self.path,
                    n,
                )
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def find(self, **match: Any) -> list[dict[str, Any]]:
        """Records whose fields equal ``match``, oldest first."""
        return [r for r in self.records() if all(r.get(k) == v for k, v in match.items())]
