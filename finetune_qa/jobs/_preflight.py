"""Checks before anything is sent: files, options, settings, dates and the provider's limits.

Shared by :meth:`FineTuneJob.create <finetune_qa.jobs.FineTuneJob.create>` and
:func:`~finetune_qa.migration.plan_migration`, so a job and a migration refuse the
same requests with the same words.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from finetune_qa._limits import MAX_BATCH_SIZE, MAX_EPOCHS
from finetune_qa.backends.base import (
    Backend,
    ChecksRequests,
    HasClock,
    JobRequest,
    ReportsModelLimits,
    provider_option_names,
    supports_metadata,
)
from finetune_qa.backends.base import max_epochs as declared_max_epochs
from finetune_qa.catalog import ModelCatalog
from finetune_qa.config import today as config_today
from finetune_qa.exceptions import BackendError, InputFileError, UnknownModelError, UsageError

__all__ = [
    "SUFFIX",
    "TOKEN_KEY",
    "check_files",
    "check_options",
    "check_request",
    "epoch_limit",
    "first_system_prompt",
    "job_today",
    "provider_check",
    "provider_epoch_limit",
]

TOKEN_KEY = "finetune_qa_token"
"""Metadata key that carries a job's idempotency token."""

SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a model-name suffix may be."""


def check_files(*paths: Path | None) -> None:
    """Refuse a data file that is missing or not a regular file (``None`` is skipped).

    Raises:
        InputFileError: a path is missing or is not a file.
    """
    for p in paths:
        if p is not None and not p.is_file():
            raise InputFileError(
                "no such file" if not p.exists() else "is not a file",
                path=p,
                hint="pass the training JSONL that `finetune-qa build` wrote",
            )


def check_options(
    backend: Backend,
    metadata: Mapping[str, str] | None,
    provider_options: Mapping[str, Any] | None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """The user's metadata and provider options, refused where the backend takes none.

    Raises:
        UsageError: the token's metadata key is used, metadata on a backend whose jobs
            carry none, or provider options the backend does not name.
    """
    user_meta = dict(metadata or {})
    if TOKEN_KEY in user_meta:
        raise UsageError(f"metadata key {TOKEN_KEY!r} is reserved for finetune_qa")
    if user_meta and not supports_metadata(backend):
        raise UsageError(
            f"the {backend.name} backend's jobs carry no metadata; drop metadata= "
            "(the journal keeps finetune_qa's own records)"
        )
    options = dict(provider_options or {})
    allowed = provider_option_names(backend)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(
            f"provider_options {unknown} are not options of the {backend.name} backend; "
            + (
                f"it takes: {', '.join(sorted(allowed))}"
                if allowed
                else "it takes none (every setting has its own argument)"
            )
        )
    return user_meta, options


def job_today(backend: Backend) -> dt.date:
    """Today, for end-date checks: by the backend's clock when it has one (offline's)."""
    if isinstance(backend, HasClock):
        return dt.datetime.fromtimestamp(backend.monotonic(), tz=dt.timezone.utc).date()
    return config_today()


def epoch_limit(backend: str | Backend) -> int:
    """The most epochs a backend's jobs take: 50 as on OpenAI, unless it says otherwise."""
    if isinstance(backend, str):
        if backend == "local":
            from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS

            return LOCAL_MAX_EPOCHS
        return MAX_EPOCHS
    return declared_max_epochs(backend)


def provider_check(
    backend: Backend,
    request: JobRequest,
    *,
    training_path: str | os.PathLike[str] | None,
    validation_path: str | os.PathLike[str] | None,
) -> None:
    """The provider's own check of ``request`` (:class:`ChecksRequests`), where it has one.

    Raises:
        UsageError: the provider would refuse a setting or an example.
        BackendError: the provider's limits could not be read.
    """
    if isinstance(backend, ChecksRequests):
        backend.check_request(request, training_path=training_path, validation_path=validation_path)


def provider_epoch_limit(backend: Backend, model: str) -> int | None:
    """The provider's most epochs for ``model`` (:class:`ReportsModelLimits`), if it says."""
    if not isinstance(backend, ReportsModelLimits):
        return None
    try:
        top: object = backend.model_limits(model).max_num_epochs
    except (BackendError, AttributeError):
        return None
    return top if isinstance(top, int) else None


def check_request(
    req: JobRequest, catalog: ModelCatalog, today: dt.date, *, max_epochs: int = MAX_EPOCHS
) -> None:
    """Refuse a request whose settings no provider takes, or whose model is retired.

    Raises:
        UsageError: a hyperparameter, the suffix, seed, metadata or integrations are out
            of range, or the catalogue's model does not offer the method or has stopped
            taking new jobs.
    """

    def bad(message: str) -> UsageError:
        return UsageError(message)

    if req.n_epochs != "auto" and not 1 <= req.n_epochs <= max_epochs:
        raise bad(f"n_epochs must be 'auto' or 1-{max_epochs}, got {req.n_epochs}")
    if req.batch_size != "auto" and not 1 <= req.batch_size <= MAX_BATCH_SIZE:
        raise bad(f"batch_size must be 'auto' or 1-{MAX_BATCH_SIZE}, got {req.batch_size}")
    if req.learning_rate_multiplier != "auto" and not req.learning_rate_multiplier > 0:
        raise bad(
            f"learning_rate_multiplier must be 'auto' or > 0, got {req.learning_rate_multiplier}"
        )
    if req.beta is not None:
        if req.method != "dpo":
            raise bad("beta is a DPO hyperparameter; pass method='dpo' or drop beta")
        if req.beta != "auto" and not 0 < req.beta <= 2:
            raise bad(f"beta must be 'auto' or in (0, 2], got {req.beta}")
    if req.suffix is not None and not SUFFIX.match(req.suffix):
        raise bad(
            f"suffix {req.suffix!r} must be 1-64 letters, digits, '-' or '_' "
            "(it becomes part of the model name)"
        )
    if req.seed is not None and not 0 <= req.seed <= 2_147_483_647:
        raise bad(f"seed must be 0-2147483647, got {req.seed}")
    if len(req.metadata) > 16:
        raise bad(f"metadata holds at most 16 pairs (finetune_qa uses 1), got {len(req.metadata)}")
    for k, v in req.metadata.items():
        if len(k) > 64 or len(v) > 512:
            raise bad(f"metadata key {k[:20]!r}...: keys are at most 64 and values 512 characters")
    for integ in req.integrations:
        if (
            integ.get("type") != "wandb"
            or not isinstance(integ.get("wandb"), dict)
            or not integ["wandb"].get("project")
        ):
            raise bad("integrations take [{'type': 'wandb', 'wandb': {'project': '...'}}]")
    try:
        info = catalog.get(req.model)
    except UnknownModelError:
        return  # a model the catalogue does not know: the provider will judge
    if req.method not in info.methods:
        raise bad(
            f"{info.name} does not offer method {req.method!r}; it offers {', '.join(info.methods)}"
        )
    if info.fine_tuning_ends is not None and info.fine_tuning_ends < today:
        raise bad(
            f"new fine-tuning jobs on {info.name} ended on {info.fine_tuning_ends.isoformat()}; "
            "choose another base model or provider (see `finetune-qa models`)"
        )


def first_system_prompt(path: Path) -> str | None:
    """The system message of the file's first example, if it has one."""
    try:
        with path.open("rb") as f:
            first = f.readline()
        msgs = orjson.loads(first).get("messages") or []
        for m in msgs:
            if m.get("role") == "system" and isinstance(m.get("content"), str):
                return str(m["content"])
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None
    return None
