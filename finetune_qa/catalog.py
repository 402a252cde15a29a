"""The model catalogue, as data: encodings, per-example token limits, prices and end dates.

The figures live in ``catalog.json`` beside this module (with the date they were read
and their sources); this module only loads and queries them. A model the catalogue
does not know raises :class:`~finetune_qa.exceptions.UnknownModelError`, or can be
described explicitly with a :class:`ModelInfo` passed wherever a model name is taken.

Example:
    >>> from finetune_qa import get_model_info
    >>> info = get_model_info("ft:gpt-4o-mini-2024-07-18:acme::abc123")
    >>> info.name, info.encoding, info.max_tokens_per_example
    ('gpt-4o-mini-2024-07-18', 'o200k_base', 65536)
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._fs import open_regular
from finetune_qa.config import RETIREMENT_WARNING_DAYS
from finetune_qa.exceptions import InputFileError, RecordError, UnknownModelError, UsageError

__all__ = ["ModelCatalog", "ModelInfo", "base_model_name", "default_catalog", "get_model_info"]


class ModelInfo(BaseModel):
    """What the library needs to know about one fine-tunable base model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Canonical model name (a dated snapshot where one exists).")
    aliases: tuple[str, ...] = Field(default=(), description="Other names that mean this model.")
    provider: str = Field(default="openai", description="Who trains and serves it.")
    encoding: str = Field(description="tiktoken encoding name, e.g. 'o200k_base'.")
    tokenizer_exact: bool = Field(
        default=True,
        description=(
            "True when ``encoding`` is the model's own tokenizer, so counts are exact; False "
            "for models with their own tokenizers (Together's Llama, Qwen, Mistral), whose "
            "counts and prices are tiktoken estimates."
        ),
    )
    max_tokens_per_example: int = Field(
        gt=0, description="Training-example token limit; longer examples are truncated."
    )
    training_price_per_1m: float | None = Field(
        default=None, ge=0, description="USD per 1M trained tokens (tokens x epochs)."
    )
    input_price_per_1m: float | None = Field(
        default=None, ge=0, description="USD per 1M input tokens when querying the fine-tune."
    )
    output_price_per_1m: float | None = Field(
        default=None, ge=0, description="USD per 1M output tokens when querying the fine-tune."
    )
    methods: tuple[str, ...] = Field(
        default=("supervised",), description="Fine-tuning methods offered: supervised, dpo, ..."
    )
    fine_tuning_ends: dt.date | None = Field(
        default=None, description="Last day new fine-tuning jobs can be created, if announced."
    )
    shutdown_date: dt.date | None = Field(
        default=None,
        description="Day the base model and its fine-tunes stop serving, if announced.",
    )

    def warnings_on(
        self, today: dt.date, *, within_days: int = RETIREMENT_WARNING_DAYS
    ) -> list[str]:
        """Say whether fine-tuning or serving of this model ends soon (or has ended).

        Args:
            today: the date to judge from.
            within_days: how far ahead an end date counts as "soon".

        Returns:
            Human-readable warnings, empty when nothing ends within ``within_days``.
        """
        out: list[str] = []
        horizon = today + dt.timedelta(days=within_days)
        if self.shutdown_date is not None and self.shutdown_date <= today:
            out.append(
                f"{self.name} was shut down on {self.shutdown_date.isoformat()}: it and its "
                "fine-tunes no longer serve. Choose another base model or provider."
            )
            return out
        if self.fine_tuning_ends is not None:
            if self.fine_tuning_ends < today:
                out.append(
                    f"new fine-tuning jobs on {self.name} ended on "
                    f"{self.fine_tuning_ends.isoformat()}: a job would be rejected."
                )
            elif self.fine_tuning_ends <= horizon:
                days = (self.fine_tuning_ends - today).days
                out.append(
                    f"new fine-tuning jobs on {self.name} end on "
                    f"{self.fine_tuning_ends.isoformat()} ({days} days from {today.isoformat()})."
                )
        if self.shutdown_date is not None and self.shutdown_date <= horizon:
            days = (self.shutdown_date - today).days
            out.append(
                f"{self.name} and its fine-tunes stop serving on "
                f"{self.shutdown_date.isoformat()} ({days} days from {today.isoformat()}); "
                "plan evaluation and a move to another provider before then."
            )
        return out


def base_model_name(model: str) -> str:
    """The base model of a fine-tuned model name; other names are returned unchanged.

    ``ft:gpt-4o-mini-2024-07-18:acme:support:abc123`` -> ``gpt-4o-mini-2024-07-18``.
    Checkpoint names (``ft:...:ckpt-step-88``) resolve the same way.

    Raises:
        UsageError: ``model`` starts with ``ft:`` but names no base model.
    """
    name = model.strip()
    if name.startswith("ft:"):
        parts = name.split(":")
        if len(parts) < 2 or not parts[1]:
            raise UsageError(
                f"cannot read the base model from {model!r}: a fine-tuned model name looks like "
                "'ft:<base-model>:<org>:<suffix>:<id>'."
            )
        return parts[1]
    return name


class ModelCatalog:
    """A set of :class:`ModelInfo`, looked up by name, alias or fine-tuned name.

    Args:
        models: the entries; later entries replace earlier ones with the same name.
        as_of: the date the figures were read, if known.
    """

    def __init__(self, models: Iterable[ModelInfo], *, as_of: dt.date | None = None) -> None:
        self.as_of = as_of
        self._by_name: dict[str, ModelInfo] = {}
        self._alias: dict[str, str] = {}
        for info in models:
            self.register(info)

    @classmethod
    def from_json(cls, path: str | Path) -> ModelCatalog:
        """Load a catalogue from a JSON file shaped like the packaged ``catalog.json``."""
        p = Path(path)
        hint = "fix the file; it must look like finetune_qa/catalog.json"
        text = _read_text(p)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(
                f"the catalogue is not valid JSON ({exc.msg}, column {exc.colno})",
                path=p,
                line=exc.lineno,
                hint=hint,
            ) from exc
        if not isinstance(raw, dict):
            raise RecordError(
                f"the catalogue must be a JSON object, got {type(raw).__name__}", path=p, hint=hint
            )
        try:
            return cls._from_raw(raw)
        except UsageError as exc:
            raise RecordError(str(exc), path=p, hint=hint) from exc
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()
            detail = "; ".join(first[:3]) if first else type(exc).__name__
            raise RecordError(f"a model entry is malformed: {detail}", path=p, hint=hint) from exc

    @classmethod
    def _from_raw(cls, raw: dict[str, object]) -> ModelCatalog:
        models = raw.get("models")
        if not isinstance(models, list):
            raise UsageError("a catalogue file needs a 'models' list")
        as_of = raw.get("as_of")
        return cls(
            (ModelInfo.model_validate(m) for m in models),
            as_of=dt.date.fromisoformat(as_of) if isinstance(as_of, str) else None,
        )

    def register(self, info: ModelInfo) -> None:
        """Add or replace one model."""
        self._by_name[info.name] = info
        for alias in info.aliases:
            self._alias[alias] = info.name

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(sorted(self._by_name.values(), key=lambda m: m.name))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        try:
            self.get(model)
        except UsageError:
            return False
        return True

    def get(self, model: str | ModelInfo) -> ModelInfo:
        """Look a model up by name, alias, or fine-tuned name (``ft:<base>:...``).

        Args:
            model: a name, or a :class:`ModelInfo`, which is returned as it is.

        Raises:
            UnknownModelError: the name matches no entry; the error lists close matches.
        """
        if isinstance(model, ModelInfo):
            return model
        base = base_model_name(model)
        found = self._by_name.get(base)
        if found is None and base in self._alias:
            found = self._by_name[self._alias[base]]
        if found is None:
            names = sorted([*self._by_name, *self._alias])
            raise UnknownModelError(model, difflib.get_close_matches(base, names, n=3))
        return found


@functools.lru_cache(maxsize=1)
def default_catalog() -> ModelCatalog:
    """The catalogue shipped with the package (``finetune_qa/catalog.json``)."""
    text = resources.files("finetune_qa").joinpath("catalog.json").read_text(encoding="utf-8")
    return ModelCatalog._from_raw(json.loads(text))


def get_model_info(model: str | ModelInfo, *, catalog: ModelCatalog | None = None) -> ModelInfo:
    """Look a model up in ``catalog`` (default: the packaged one). See :meth:`ModelCatalog.get`."""
    return (catalog or default_catalog()).get(model)


def _read_text(path: Path) -> str:
    """The catalogue file's text; a pipe, a directory or a file that is not UTF-8 is refused."""
    hint = "pass an existing UTF-8 JSON file"
    with open_regular(
        path,
        kind="JSON file",
        directory_hint=hint,
        pipe_hint="save the catalogue to a file and pass that",
        missing_hint=hint,
    ) as f:
        try:
            data = f.read()
        except OSError as exc:
            raise InputFileError(
                f"cannot read the catalogue ({exc.strerror})", path=path, hint=hint
            ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError("the catalogue is not UTF-8 text", path=path, hint=hint) from exc
