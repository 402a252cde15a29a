"""The fake API's resources as records: files, uploads, events, checkpoints, jobs, models.

These are the objects the offline state saves (see :mod:`._statefile`): their class names
are written into the saved state, so renaming one needs an alias there.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from finetune_qa._text import key_hash
from finetune_qa.backends._fake._answers import Answerer
from finetune_qa.catalog import ModelInfo

MAX_METRIC_EVENTS = 100
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class _Ids:
    """Deterministic OpenAI-looking ids: the same seed gives the same ids in the same order."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._n = 0

    def new(self, prefix: str, length: int = 24) -> str:
        self._n += 1
        digest = hashlib.blake2b(f"{self._seed}:{prefix}:{self._n}".encode(), digest_size=32)
        value = int.from_bytes(digest.digest(), "big")
        chars = []
        for _ in range(length):
            value, r = divmod(value, len(_ALNUM))
            chars.append(_ALNUM[r])
        return prefix + "".join(chars)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    return key_hash(":".join(str(p) for p in parts)) / 2**64


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": self.expires_at,
        }


@dataclass
class _Upload:
    id: str
    filename: str
    purpose: str
    size: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str = "pending"
    parts: dict[str, bytes] = field(default_factory=dict)
    file: _File | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": self.file.to_api() if self.file is not None else None,
        }


@dataclass
class _Event:
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.event",
            "created_at": self.created_at,
            "level": self.level,
            "message": self.message,
            "type": self.type,
            "data": self.data if self.data is not None else {},
        }


@dataclass
class _Checkpoint:
    id: str
    created_at: int
    name: str
    job_id: str
    step: int
    metrics: dict[str, float | None]

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job.checkpoint",
            "created_at": self.created_at,
            "fine_tuned_model_checkpoint": self.name,
            "fine_tuning_job_id": self.job_id,
            "step_number": self.step,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class _Invalid:
    """Why a job's files failed validation (becomes the job's ``error``)."""

    code: str
    message: str
    param: str


_Checked = tuple[int, int, list[tuple[str, str]]]
"""Valid examples, billed tokens per epoch, and the trained (question, answer) pairs."""


@dataclass
class _Plan:
    """What validating the files decided about training."""

    n_examples: int
    n_epochs: int
    batch_size: int
    lr_multiplier: float
    beta: float | None
    steps_per_epoch: int
    billed_tokens_per_epoch: int
    pairs: list[tuple[str, str]]
    stop_marker: str | None
    has_validation: bool

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.n_epochs

    @property
    def metric_every(self) -> int:
        return max(1, math.ceil(self.total_steps / MAX_METRIC_EVENTS))


@dataclass
class _Job:
    id: str
    short_id: str
    created_at: float
    model: str
    base: ModelInfo
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None
    method: Literal["supervised", "dpo"]
    requested: dict[str, Any]
    status: str = "validating_files"
    phase_started: float = 0.0
    step: int = 0
    run_base_step: int = 0
    plan: _Plan | None = None
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    checkpoints: list[_Checkpoint] = field(default_factory=list)
    answerer: Answerer | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    def model_name(self, org: str, *extra: str) -> str:
        """``ft:<base>:<org>:<suffix>:<short id>[:<extra>...]``, OpenAI's naming."""
        return ":".join(["ft", self.base.name, org, self.suffix or "", self.short_id, *extra])

    def to_api(self, organization: str, estimated_finish: int | None) -> dict[str, Any]:
        """The job as the API shows it."""
        hp = self.hyperparameters()
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": int(self.created_at),
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": {k: v for k, v in hp.items() if k != "beta"},
            "model": self.model,
            "organization_id": organization,
            "result_files": list(self.result_files),
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "estimated_finish": estimated_finish,
            "integrations": self.integrations,
            "metadata": self.metadata,
            "method": {"type": self.method, self.method: {"hyperparameters": hp}},
            "user_provided_suffix": self.suffix,
        }

    def hyperparameters(self) -> dict[str, Any]:
        """As requested ("auto" included) until validation, then the values used."""
        if self.plan is None:
            return dict(self.requested)
        p = self.plan
        hp: dict[str, Any] = {
            "batch_size": p.batch_size,
            "learning_rate_multiplier": p.lr_multiplier,
            "n_epochs": p.n_epochs,
        }
        if self.method == "dpo":
            hp["beta"] = p.beta
        return hp


@dataclass
class _Model:
    id: str
    created: int
    owned_by: str
    base: ModelInfo
    answerer: Answerer
    job_id: str

    def to_api(self) -> dict[str, Any]:
        shutdown = self.base.shutdown_date
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "shutdown_date": shutdown.isoformat() if shutdown else None,
        }


@dataclass
class _State:
    files: dict[str, _File] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    models: dict[str, _Model] = field(default_factory=dict)
    checkpoint_models: dict[str, str] = field(default_factory=dict)
    # creation order of every object ever made, for cursor pagination across deletions
    order: dict[str, int] = field(default_factory=dict)

    def remember(self, obj_id: str) -> None:
        self.order[obj_id] = len(self.order)
