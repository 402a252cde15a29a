"""Move a fine-tuning job to another provider: same data, checked again, equivalent settings.

OpenAI stops new fine-tuning jobs on 2027-01-06 and retires gpt-4o, gpt-4o-mini, gpt-4.1
and gpt-4.1-mini with their fine-tunes on 2027-01-14. :func:`plan_migration` reads a
job on the source backend (its training and validation files, base model, method,
hyperparameters and suffix), downloads the files, validates them for the target model,
suggests a target model (:data:`MODEL_MAP`) and maps the hyperparameters;
:func:`migrate` then starts the equivalent job on the target with
:meth:`FineTuneJob.create <finetune_qa.jobs.FineTuneJob.create>` — or, with
``dry_run=True``, only returns the plan. Given the target by name, a plan needs nothing
from it (not even its key). Given a backend instance with a ``check_request`` method
(Together's), the plan also checks the settings and the example lengths against the
target's own limits (for Together one read of ``/fine-tunes/models/limits``) and lists
what it would refuse in :attr:`MigrationPlan.problems`. Nothing is sent to the target
until :func:`migrate` runs without ``dry_run``.

How settings map:

* ``n_epochs`` is kept (the value the source job trained with; ``"auto"`` stays auto),
  unless ``n_epochs=`` is given (``--epochs``): OpenAI allows up to 50, Together
  fewer;
* ``batch_size`` and ``learning_rate_multiplier`` are kept between OpenAI-compatible
  backends. Other providers take an absolute learning rate and set their own batch
  limits per model, so there both are left to the target's default (``"auto"``) and
  the plan says so: a multiplier of OpenAI's hidden base rate does not transfer;
* the method (supervised or DPO, with ``beta``) and the suffix are kept; a suffix longer
  than the target allows (Together: 40 characters, OpenAI: 64) is cut, and the plan says so.

The job is created with a journal in ``workdir``, so running :func:`migrate` again with
the same arguments attaches to the job already started instead of paying twice.

Example:
    >>> import pathlib, tempfile
    >>> from finetune_qa import DatasetBuilder, FineTuneJob, sample_csv
    >>> from finetune_qa.backends import OfflineBackend
    >>> from finetune_qa.migration import plan_migration
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = DatasetBuilder().add_source(sample_csv()).build(d / "train.jsonl")
    >>> old = OfflineBackend()
    >>> job = FineTuneJob.create(d / "train.jsonl", model="gpt-4o-mini", backend=old,
    ...     journal=d / "journal.jsonl", suffix="lumen")
    >>> plan = plan_migration(job.wait().id, source=old, target="together", workdir=d / "move")
    >>> plan.target_model, plan.suffix, plan.ok
    ('meta-llama/Meta-Llama-3.1-8B-Instruct-Reference', 'lumen', True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import atomic_write
from finetune_qa._limits import MAX_EPOCHS, check_epochs
from finetune_qa.backends import Backend, JobInfo, JobRequest, get_backend
from finetune_qa.backends.together import MAX_SUFFIX as TOGETHER_MAX_SUFFIX
from finetune_qa.catalog import ModelCatalog, ModelInfo, base_model_name, default_catalog
from finetune_qa.config import DEFAULT_MODEL
from finetune_qa.exceptions import (
    BackendError,
    NotFoundError,
    UnknownModelError,
    UsageError,
    ValidationFailed,
)
from finetune_qa.jobs import FineTuneJob
from finetune_qa.jobs import _preflight as preflight
from finetune_qa.validation import ValidationReport, validate_file

__all__ = [
    "MODEL_MAP",
    "OPENAI_COMPATIBLE_BACKENDS",
    "HyperparameterChange",
    "MigratedFile",
    "MigrationPlan",
    "MigrationResult",
    "max_epochs",
    "migrate",
    "plan_migration",
    "suggest_model",
]

_LLAMA_8B = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
_LLAMA_70B = "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"
_QWEN_0_5B = "Qwen/Qwen2.5-0.5B-Instruct"
_QWEN_1_5B = "Qwen/Qwen2.5-1.5B-Instruct"
_QWEN_7B = "Qwen/Qwen2.5-7B-Instruct"

MODEL_MAP: dict[str, dict[str, str]] = {
    "together": {
        "gpt-4o-mini-2024-07-18": _LLAMA_8B,
        "gpt-4.1-mini-2025-04-14": _LLAMA_8B,
        "gpt-4.1-nano-2025-04-14": _LLAMA_8B,
        "gpt-3.5-turbo-0125": _LLAMA_8B,
        "gpt-4o-2024-08-06": _LLAMA_70B,
        "gpt-4.1-2025-04-14": _LLAMA_70B,
    },
    # trained on your own machine (backend="local"): open instruct models with chat templates,
    # sized so that a LoRA of the small ones fits one consumer GPU
    "local": {
        "gpt-4o-mini-2024-07-18": _QWEN_1_5B,
        "gpt-4.1-mini-2025-04-14": _QWEN_1_5B,
        "gpt-4.1-nano-2025-04-14": _QWEN_0_5B,
        "gpt-3.5-turbo-0125": _QWEN_1_5B,
        "gpt-4o-2024-08-06": _QWEN_7B,
        "gpt-4.1-2025-04-14": _QWEN_7B,
    },
}
"""Suggested target base model, by target backend and the source's (canonical) base model.

On Together the small OpenAI models map to Llama 3.1 8B Instruct, the large ones to Llama
3.1 70B Instruct (Together's ``-Reference`` fine-tuning names); on the local backend to
Qwen2.5 1.5B / 7B Instruct (0.5B for nano), Hugging Face ids it downloads once. A
suggestion, not a promise of equal quality: evaluate the new fine-tune against your
current one before switching.
OpenAI-compatible targets (:data:`OPENAI_COMPATIBLE_BACKENDS`) keep the same base model.
Pass ``model=`` to choose another.
"""

OPENAI_COMPATIBLE_BACKENDS: frozenset[str] = frozenset({"openai", "offline"})
"""Backends that take OpenAI's model names and hyperparameters (multipliers) as they are."""

_SUFFIX_LIMITS: dict[str, int] = {"together": TOGETHER_MAX_SUFFIX}
"""Longest model-name suffix per target backend, where shorter than OpenAI's 64."""

DEFAULT_WORKDIR = Path("finetune-qa-migrate")
"""Where downloaded files and the journal go by default (``<this>/<job id>``)."""


class MigratedFile(BaseModel):
    """A file read from the source job, and where it was saved."""

    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(description="File id on the source backend.")
    path: str = Field(description="Where it was saved locally (uploaded from here).")
    bytes: int = Field(description="Size in bytes.")
    examples: int | None = Field(description="Examples without format errors.")


class HyperparameterChange(BaseModel):
    """One hyperparameter: what the source job used and what the target job gets."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="n_epochs, batch_size, learning_rate_multiplier or beta.")
    source: int | float | str | None = Field(description="The source job's value.")
    target: int | float | str | None = Field(description="The value sent to the target.")
    note: str = Field(description="Why (kept, left to the target's default, ...).")


class MigrationPlan(BaseModel):
    """Everything a migration will do, checked before anything is sent to the target."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(description="The source job.")
    source_backend: str = Field(description="Backend the source job ran on.")
    target_backend: str = Field(description="Backend the new job will run on.")
    source_status: str = Field(description="The source job's status.")
    source_model: str = Field(description="The source job's base model.")
    source_fine_tuned_model: str | None = Field(description="The source job's model, if any.")
    target_model: str = Field(description="Base model of the new job.")
    model_choice: Literal["given", "suggested", "same"] = Field(
        description="Whether the target model was given, suggested by MODEL_MAP, or kept."
    )
    method: Literal["supervised", "dpo"] = Field(description="Training method.")
    suffix: str | None = Field(
        description="Suffix of the model name, kept from the source (cut to the target's limit)."
    )
    training_file: MigratedFile = Field(description="Training data to upload.")
    validation_file: MigratedFile | None = Field(description="Validation data to upload.")
    hyperparameters: list[HyperparameterChange] = Field(description="How settings map.")
    validation: ValidationReport = Field(description="The files checked for the target model.")
    estimated_cost_usd: float | None = Field(
        description="Training cost from the catalogue's price, when it has one."
    )
    billed_tokens: int = Field(description="Billed training tokens (tokens x epochs).")
    problems: list[str] = Field(
        default_factory=list,
        description="What the target would refuse (its own limits), each with what to do.",
    )
    notes: list[str] = Field(description="Things to know before starting.")

    @property
    def ok(self) -> bool:
        """True when the files have no format errors for the target and it refuses nothing."""
        return self.validation.ok and not self.problems

    def target_value(self, name: str) -> Any:
        """The value the target job gets for hyperparameter ``name`` (``"auto"`` if unset)."""
        return next((h.target for h in self.hyperparameters if h.name == name), "auto")

    def to_json(self) -> str:
        """The plan as indented JSON (``ok`` included)."""
        data = self.model_dump(mode="json")
        data["ok"] = self.ok
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")

    def to_text(self) -> str:
        """A plain-text rendering: files, validation, model mapping, settings and cost."""
        how = {
            "given": "given",
            "suggested": f"suggested for {self.source_model}; choose another with model=",
            "same": "same base model",
        }[self.model_choice]
        out = [
            f"Migration plan: {self.job_id} ({self.source_backend}) -> {self.target_backend}",
            f"  source job: {self.source_status}, {self.source_model}"
            + (f" -> {self.source_fine_tuned_model}" if self.source_fine_tuned_model else ""),
            f"  target model: {self.target_model} ({how})",
            f"  method: {self.method}; suffix: {self.suffix or '-'}",
            "Files to upload",
        ]
        for label, f in (("training", self.training_file), ("validation", self.validation_file)):
            if f is not None:
                n = f"{f.examples:,} examples, " if f.examples is not None else ""
                out.append(f"  {label}: {f.source_id} -> {f.path} ({n}{f.bytes:,} bytes)")
        v = self.validation
        out.append(
            f"Validation for {v.model}: {'ok' if v.ok else 'FAILED'}, "
            f"{_plural(v.error_count, 'error')}, {_plural(v.warning_count, 'warning')}"
        )
        out += [f"  - {i.render()}" for i in [*v.errors, *v.warnings][:6]]
        out += [f"  - {w}" for w in v.model_warnings]
        out.append("Hyperparameters")
        for h in self.hyperparameters:
            out.append(f"  {h.name}: {h.source} -> {h.target} ({h.note})")
        if self.problems:
            out.append(f"Target limits: FAILED, {_plural(len(self.problems), 'problem')}")
            out += [f"  - {p}" for p in self.problems]
        if self.estimated_cost_usd is not None:
            digits = 2 if self.estimated_cost_usd >= 0.01 else 4  # small test sets cost cents
            cost = f"about ${self.estimated_cost_usd:,.{digits}f}"
        else:
            cost = f"unknown (the catalogue has no training price for {self.target_model})"
        out.append(f"Estimated cost: {self.billed_tokens:,} billed tokens, {cost}")
        if self.notes:
            out.append("Notes")
            out += [f"  - {n}" for n in self.notes]
        return "\n".join(out) + "\n"


class MigrationResult(BaseModel):
    """What :func:`migrate` did: the plan, and the job it started (none on a dry run)."""

    model_config = ConfigDict(extra="forbid")

    plan: MigrationPlan = Field(description="The plan that was carried out.")
    dry_run: bool = Field(description="True when nothing was sent to the target.")
    job: JobInfo | None = Field(description="The new job as last retrieved (None on a dry run).")
    journal: str | None = Field(description="Journal of the new job (for FineTuneJob.attach).")

    def to_json(self) -> str:
        """The result as indented JSON."""
        data = self.model_dump(mode="json", exclude={"job": {"raw"}})
        data["plan"]["ok"] = self.plan.ok
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")

    def to_text(self) -> str:
        """The plan, then what happened."""
        text = self.plan.to_text()
        if self.job is None:
            return text + "Dry run: nothing was sent to the target.\n"
        model = f", model {self.job.fine_tuned_model}" if self.job.fine_tuned_model else ""
        return text + (
            f"Started {self.job.id} on {self.plan.target_backend}: {self.job.status}{model}\n"
        )


def suggest_model(
    source_model: str, target_backend: str, *, catalog: ModelCatalog | None = None
) -> str | None:
    """The suggested target base model for a source model, or None when there is none.

    Args:
        source_model: the source job's base model (or a fine-tuned name).
        target_backend: the target backend's name.
        catalog: catalogue used to resolve aliases (default: the packaged one).

    Example:
        >>> suggest_model("gpt-4o-mini", "together")
        'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference'
        >>> suggest_model("ft:gpt-4.1-2025-04-14:acme::x1", "together")
        'meta-llama/Meta-Llama-3.1-70B-Instruct-Reference'
    """
    canonical = _canonical(source_model, catalog or default_catalog())
    if target_backend in OPENAI_COMPATIBLE_BACKENDS:
        return canonical
    return MODEL_MAP.get(target_backend, {}).get(canonical)


def _canonical(model: str, catalog: ModelCatalog) -> str:
    try:
        return catalog.get(model).name
    except UnknownModelError:
        return base_model_name(model)


def _backend_name(backend: str | Backend) -> str:
    return backend if isinstance(backend, str) else str(backend.name)


def _source_settings(info: JobInfo) -> tuple[str, dict[str, Any]]:
    """The source job's method and hyperparameters (OpenAI's ``method`` first, then legacy)."""
    raw = info.raw
    method = raw.get("method")
    if not isinstance(method, dict):
        method = {}
    kind = str(method.get("type") or "supervised")
    section = method.get(kind)
    hp = section.get("hyperparameters") if isinstance(section, dict) else None
    if not isinstance(hp, dict):
        hp = raw.get("hyperparameters")
    return kind, dict(hp) if isinstance(hp, dict) else {}


def _suffix(info: JobInfo) -> str | None:
    given = info.raw.get("user_provided_suffix") or info.raw.get("suffix")
    if isinstance(given, str) and given:
        return given
    name = info.fine_tuned_model or ""
    parts = name.split(":")
    # ft:<base>:<org>:<suffix>:<id>
    if name.startswith("ft:") and len(parts) == 5 and parts[3]:
        return parts[3]
    return None


def _map_hyperparameters(
    hp: dict[str, Any],
    kind: str,
    compatible: bool,
    target_backend: str,
    n_epochs: int | Literal["auto"] | None = None,
) -> list[HyperparameterChange]:
    def value(key: str) -> Any:
        v = hp.get(key)
        return "auto" if v is None else v

    epochs = value("n_epochs")
    if n_epochs is not None:
        out = [HyperparameterChange(name="n_epochs", source=epochs, target=n_epochs, note="given")]
    else:
        out = [
            HyperparameterChange(
                name="n_epochs",
                source=epochs,
                target=epochs,
                note="kept" if epochs != "auto" else "kept as auto",
            )
        ]
    for key, why in (
        ("batch_size", f"{target_backend} sets its own batch limits per model"),
        (
            "learning_rate_multiplier",
            f"not transferable: {target_backend} takes an absolute learning rate, and the "
            "multiplier scales OpenAI's unpublished base rate",
        ),
    ):
        src = value(key)
        if compatible or src == "auto":
            out.append(HyperparameterChange(name=key, source=src, target=src, note="kept"))
        else:
            out.append(
                HyperparameterChange(
                    name=key, source=src, target="auto", note=f"target's default; {why}"
                )
            )
    if kind == "dpo":
        out.append(
            HyperparameterChange(
                name="beta", source=value("beta"), target=value("beta"), note="kept"
            )
        )
    return out


def _download(backend: Backend, file_id: str, path: Path, *, job_id: str, what: str) -> None:
    try:
        data = backend.file_content(file_id)
    except NotFoundError as exc:
        raise NotFoundError(
            f"the {what} file {file_id} of {job_id} is no longer on {backend.name} ({exc}); "
            "rebuild the data with `finetune-qa build` and start the job with `finetune-qa train`",
            status_code=exc.status_code,
            request_id=exc.request_id,
        ) from exc
    atomic_write(path, data, hint="choose a writable workdir")


def _check_epochs(n_epochs: object, most: int = MAX_EPOCHS) -> None:
    problem = check_epochs(n_epochs, most=most)
    if problem is not None:
        raise UsageError(f"n_{problem}")  # the argument here is named n_epochs


def max_epochs(backend: str | Backend) -> int:
    """The most epochs a backend's jobs take: 50 as on OpenAI, unless it says otherwise."""
    return preflight.epoch_limit(backend)


def _target_problems(
    backend: Backend, request: JobRequest, train: Path, val: Path | None
) -> tuple[list[str], str | None]:
    """What the target's own ``check_request`` refuses, as plan problems; or a note."""
    try:
        preflight.provider_check(backend, request, training_path=train, validation_path=val)
    except UsageError as exc:
        return [f"{exc} {_advice(backend, request)}"], None
    except NotFoundError as exc:
        return [
            f"{backend.name} does not fine-tune {request.model} ({exc}): choose another base "
            "model with model= (`--model` on the command line)"
        ], None
    except BackendError as exc:
        return [], (
            f"{backend.name}'s limits for {request.model} could not be read ({exc}); they are "
            "checked again before the job is started"
        )
    return [], None


def _advice(backend: Backend, request: JobRequest) -> str:
    """What to do about a refused setting: the epochs to pass, when that is the trouble."""
    top = (
        preflight.provider_epoch_limit(backend, request.model)
        if request.n_epochs != "auto"
        else None
    )
    if top is not None and request.n_epochs != "auto" and request.n_epochs > top:
        return (
            f"Pass n_epochs={top} or fewer (`--epochs {top}` on the command line) to migrate "
            "this job."
        )
    return (
        "Change what it names: n_epochs= (`--epochs`), model= (`--model`), or the data "
        "(rebuild it with `finetune-qa build`)."
    )


def _target_info(model: str, target_backend: str, catalog: ModelCatalog) -> str | ModelInfo:
    """The model to validate and price with: the catalogue's, or the default's limits unpriced."""
    if model in catalog:
        return model
    default = catalog.get(DEFAULT_MODEL)
    fields: dict[str, Any] = {
        "name": model,
        "provider": target_backend,
        "encoding": default.encoding,
        "max_tokens_per_example": default.max_tokens_per_example,
        "methods": ("supervised", "dpo"),
    }
    if "tokenizer_exact" in ModelInfo.model_fields:  # counts are a tiktoken estimate here
        fields["tokenizer_exact"] = False
    return ModelInfo(**fields)


def plan_migration(
    job_id: str,
    *,
    source: str | Backend = "openai",
    target: str | Backend,
    model: str | None = None,
    n_epochs: int | Literal["auto"] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    catalog: ModelCatalog | None = None,
) -> MigrationPlan:
    """Read a job on ``source`` and plan the equivalent job on ``target``; sends nothing there.

    The job's files are downloaded into ``workdir`` (``train.jsonl``, ``validation.jsonl``)
    and validated for the target model: with a model the catalogue does not know, against
    the default model's token limit, with no price. When ``target`` is a backend instance
    with a ``check_request`` method (Together's), the settings and example lengths are
    also checked against its limits: what it would refuse is in ``plan.problems`` (and
    ``plan.ok`` is False), with what to do.

    Args:
        job_id: the source job.
        source: backend (name or instance) the job ran on.
        target: backend (name or instance) to move to; a name is not built (no key needed)
            and its own limits are not checked.
        model: target base model; by default :func:`suggest_model`'s suggestion.
        n_epochs: epochs for the new job (1-50, local 1-1000, or ``"auto"``); by default
            the source's.
        workdir: where the files go (default ``finetune-qa-migrate/<job_id>``).
        catalog: catalogue for model lookups and prices.

    Returns:
        The :class:`MigrationPlan`; check ``plan.ok`` before starting.

    Raises:
        UsageError: no suggested model for this target (pass ``model=``), the job's
            method cannot be migrated, or ``n_epochs`` is out of range.
        BackendError: the source backend failed (``NotFoundError`` for a missing job or file).
    """
    _check_epochs(n_epochs, max_epochs(target))
    cat = catalog or default_catalog()
    src = get_backend(source)
    target_name = _backend_name(target)
    info = src.retrieve_job(job_id)
    kind, hp = _source_settings(info)
    if kind not in ("supervised", "dpo"):
        raise UsageError(
            f"{job_id} used the {kind!r} method; only supervised and dpo jobs can be migrated"
        )
    source_model = _canonical(info.model, cat)
    target_model, choice = _target_model(info.model, source_model, model, target_name, cat)
    compatible = target_name in OPENAI_COMPATIBLE_BACKENDS
    hyper = _map_hyperparameters(hp, kind, compatible, target_name, n_epochs)
    wd = Path(workdir) if workdir is not None else DEFAULT_WORKDIR / job_id
    train_path, val_path = _download_data(src, info, wd, job_id)
    epochs = hyper[0].target
    report = validate_file(
        train_path,
        model=_target_info(target_model, target_name, cat),
        validation_path=val_path,
        # priced for OpenAI's 1-50; beyond (the local backend's 1000) the default is priced
        n_epochs=epochs if isinstance(epochs, int) and epochs <= MAX_EPOCHS else None,
        catalog=cat,
    )
    notes: list[str] = []
    suffix = _fitted_suffix(_suffix(info), target_name, notes)
    problems = _target_checks(
        target, target_model, kind, hyper, suffix, train_path, val_path, notes
    )
    notes += _advice_notes(info, hp, compatible, report, target_model, target_name)

    def migrated(file_id: str, path: Path, examples: int | None) -> MigratedFile:
        return MigratedFile(
            source_id=file_id, path=str(path), bytes=path.stat().st_size, examples=examples
        )

    return MigrationPlan(
        job_id=job_id,
        source_backend=str(src.name),
        target_backend=target_name,
        source_status=info.status,
        source_model=source_model,
        source_fine_tuned_model=info.fine_tuned_model,
        target_model=target_model,
        model_choice=choice,  # type: ignore[arg-type]
        method=kind,  # type: ignore[arg-type]
        suffix=suffix,
        training_file=migrated(info.training_file, train_path, report.examples),
        validation_file=(
            migrated(info.validation_file, val_path, report.validation_examples)
            if info.validation_file and val_path is not None
            else None
        ),
        hyperparameters=hyper,
        validation=report,
        estimated_cost_usd=report.cost.estimated_cost_usd,
        billed_tokens=report.cost.billed_tokens_total,
        problems=problems,
        notes=notes,
    )


def _target_model(
    model_of_job: str, source_model: str, model: str | None, target_name: str, cat: ModelCatalog
) -> tuple[str, str]:
    """The target base model and how it was chosen: given, the same, or suggested."""
    if model is not None:
        return model, "given"
    suggested = suggest_model(model_of_job, target_name, catalog=cat)
    if suggested is None:
        raise UsageError(
            f"no suggested {target_name} model for {source_model}; pass model= "
            "(`--model` on the command line) with the base model to fine-tune"
        )
    return suggested, "same" if target_name in OPENAI_COMPATIBLE_BACKENDS else "suggested"


def _download_data(src: Backend, info: JobInfo, wd: Path, job_id: str) -> tuple[Path, Path | None]:
    """The job's training (and validation) file, downloaded into ``wd``."""
    train_path = wd / "train.jsonl"
    _download(src, info.training_file, train_path, job_id=job_id, what="training")
    val_path: Path | None = None
    if info.validation_file:
        val_path = wd / "validation.jsonl"
        _download(src, info.validation_file, val_path, job_id=job_id, what="validation")
    return train_path, val_path


def _fitted_suffix(suffix: str | None, target_name: str, notes: list[str]) -> str | None:
    """The suffix, cut to the target's limit (with a note saying so)."""
    limit = _SUFFIX_LIMITS.get(target_name)
    if suffix is None or limit is None or len(suffix) <= limit:
        return suffix
    cut = suffix[:limit].rstrip("-_.") or None
    notes.append(
        f"the suffix {suffix!r} is {len(suffix)} characters; {target_name} takes at most "
        f"{limit}, so the new job gets {cut!r}"
    )
    return cut


def _target_checks(
    target: str | Backend,
    target_model: str,
    kind: str,
    hyper: list[HyperparameterChange],
    suffix: str | None,
    train_path: Path,
    val_path: Path | None,
    notes: list[str],
) -> list[str]:
    """What the target backend (an instance) refuses, as problems; a note for a name."""
    target_name = _backend_name(target)
    if isinstance(target, str):
        if target_name not in OPENAI_COMPATIBLE_BACKENDS:
            notes.append(
                f"{target_name}'s own limits (epochs, batch size, example length) were not "
                "checked: they are checked before the job is started (pass the backend "
                "itself, not its name, to check them in the plan)"
            )
        return []
    value = {h.name: h.target for h in hyper}
    probe = JobRequest.model_validate(
        {
            "model": target_model,
            "training_file": "file-pending",
            "validation_file": "file-pending" if val_path is not None else None,
            "method": kind,
            "n_epochs": value["n_epochs"],
            "batch_size": value["batch_size"],
            "learning_rate_multiplier": value["learning_rate_multiplier"],
            "beta": value.get("beta"),
            "suffix": suffix,
        }
    )
    problems, note = _target_problems(target, probe, train_path, val_path)
    if note:
        notes.append(note)
    return problems


def _advice_notes(
    info: JobInfo,
    hp: Mapping[str, Any],
    compatible: bool,
    report: ValidationReport,
    target_model: str,
    target_name: str,
) -> list[str]:
    """What the plan's reader should know: the source's status, tokenizers, the rate."""
    notes: list[str] = []
    if info.status != "succeeded":
        notes.append(f"the source job {info.status}: its data is moved all the same")
    if not compatible:
        notes.append(
            f"token counts use {report.encoding} (OpenAI's tokenizer); "
            f"{target_model}'s own tokenizer gives somewhat different counts"
        )
    if hp.get("learning_rate_multiplier") not in (None, "auto") and not compatible:
        notes.append(
            f"the source job used learning_rate_multiplier={hp['learning_rate_multiplier']}; "
            f"to tune the rate on {target_name}, set its absolute learning rate through the "
            "backend's provider options, starting from its documented default"
        )
    notes.append(
        "evaluate the new model against the source fine-tune on the same questions before "
        "switching traffic"
    )
    return notes


def migrate(
    job_id: str,
    *,
    source: str | Backend = "openai",
    target: str | Backend,
    model: str | None = None,
    n_epochs: int | Literal["auto"] | None = None,
    dry_run: bool = False,
    workdir: str | os.PathLike[str] | None = None,
    wait: bool = False,
    timeout: float | None = None,
    catalog: ModelCatalog | None = None,
    provider_options: Mapping[str, Any] | None = None,
) -> MigrationResult:
    """Start the equivalent of a source job on the target backend (or, with ``dry_run``, plan it).

    Args:
        job_id: the source job.
        source: backend (name or instance) the job ran on.
        target: backend (name or instance) to move to.
        model: target base model; by default :func:`suggest_model`'s suggestion.
        n_epochs: epochs for the new job (1-50, local 1-1000, or ``"auto"``); by default
            the source's.
        dry_run: only plan: download and validate, send nothing to the target.
        workdir: where the files and the new job's journal go (default
            ``finetune-qa-migrate/<job_id>``); the same workdir makes a second run
            attach to the job the first one started.
        wait: follow the new job until it ends.
        timeout: with ``wait``, stop waiting after this many seconds (the job goes on).
        catalog: catalogue for model lookups and prices.
        provider_options: the target's own job settings (see :meth:`FineTuneJob.create`),
            e.g. the local backend's ``{"method": "lora", "lora_r": 16}``.

    Returns:
        The :class:`MigrationResult`.

    Raises:
        ValidationFailed: the files have format errors for the target (nothing was sent).
        UsageError: see :func:`plan_migration`; or a setting the target refuses
            (``plan.problems``; nothing was sent).
        BackendError: either backend failed.
        JobFailed: with ``wait``, the new job failed.
    """
    wd = Path(workdir) if workdir is not None else DEFAULT_WORKDIR / job_id
    plan = plan_migration(
        job_id,
        source=source,
        target=target,
        model=model,
        n_epochs=n_epochs,
        workdir=wd,
        catalog=catalog,
    )
    if dry_run:
        return MigrationResult(plan=plan, dry_run=True, job=None, journal=None)
    if not plan.validation.ok:
        raise ValidationFailed(plan.validation)
    if plan.problems:
        raise UsageError(" ".join(plan.problems) + " Nothing was sent to the target.")
    be = get_backend(target)
    journal = wd / "journal.jsonl"
    metadata = (
        {"migrated_from": job_id} if plan.target_backend in OPENAI_COMPATIBLE_BACKENDS else None
    )
    job = FineTuneJob.create(
        plan.training_file.path,
        model=plan.target_model,
        backend=be,
        validation_file=plan.validation_file.path if plan.validation_file else None,
        method=plan.method,
        n_epochs=plan.target_value("n_epochs"),
        batch_size=plan.target_value("batch_size"),
        learning_rate_multiplier=plan.target_value("learning_rate_multiplier"),
        beta=plan.target_value("beta") if plan.method == "dpo" else None,
        suffix=plan.suffix,
        metadata=metadata,
        stop=plan.validation.stop_marker,
        validate=False,  # the plan validated the files for the target model
        journal=journal,
        catalog=catalog,
        provider_options=provider_options,
    )
    if wait:
        job.wait(timeout=timeout)
    return MigrationResult(plan=plan, dry_run=False, job=job.info, journal=str(journal))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
