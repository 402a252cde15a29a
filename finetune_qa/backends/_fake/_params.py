"""Checks of a fine-tuning job's request body: method, hyperparameters, metadata, integrations.

Each check raises the error OpenAI answers (400, naming the parameter).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from finetune_qa._limits import MAX_BATCH_SIZE, MAX_EPOCHS
from finetune_qa.backends._fake._http import _bad

MAX_METADATA_PAIRS = 16


def _snapshot_time(name: str) -> int:
    m = re.search(r"(\d{4})-(\d{2})-(\d{2})$", name)
    if m is None:
        return 1_700_000_000
    day = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.timezone.utc)
    return int(day.timestamp())


def _method_of(body: Mapping[str, Any]) -> Literal["supervised", "dpo"]:
    method = body.get("method")
    if method is None:
        return "supervised"
    if not isinstance(method, dict):
        raise _bad("'method' must be an object like {'type': 'supervised'}.", "method")
    kind = method.get("type")
    if kind == "reinforcement":
        raise _bad("Reinforcement fine-tuning is not supported by the offline backend.", "method")
    if kind not in ("supervised", "dpo"):
        raise _bad("'method.type' must be 'supervised' or 'dpo'.", "method.type")
    return cast(Literal["supervised", "dpo"], kind)


def _hyperparameters(body: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The requested hyperparameters ("auto" where not given), range-checked like OpenAI."""
    source, prefix = body.get("hyperparameters"), "hyperparameters"
    m = body.get("method")
    if isinstance(m, dict) and isinstance(m.get(method), dict):
        inner = m[method].get("hyperparameters")
        if inner is not None:
            source, prefix = inner, f"method.{method}.hyperparameters"
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise _bad(f"'{prefix}' must be an object.", prefix)
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[Any], bool]] = {
        "n_epochs": lambda v: _is_int(v) and 1 <= v <= MAX_EPOCHS,
        "batch_size": lambda v: _is_int(v) and 1 <= v <= MAX_BATCH_SIZE,
        "learning_rate_multiplier": lambda v: _is_num(v) and v > 0,
    }
    if method == "dpo":
        checks["beta"] = lambda v: _is_num(v) and 0 < v <= 2
    ranges = {
        "n_epochs": f"an integer from 1 to {MAX_EPOCHS}",
        "batch_size": f"an integer from 1 to {MAX_BATCH_SIZE}",
        "learning_rate_multiplier": "a number greater than 0",
        "beta": "a number greater than 0 and at most 2",
    }
    for key, ok in checks.items():
        value = source.get(key, "auto")
        if value != "auto" and not ok(value):
            raise _bad(
                f"Invalid {prefix}.{key}: {value!r}; expected 'auto' or {ranges[key]}.",
                f"{prefix}.{key}",
            )
        out[key] = value
    unknown = set(source) - set(checks)
    if unknown:
        raise _bad(f"Unknown hyperparameter(s) {sorted(unknown)}.", prefix)
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_metadata(metadata: object) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad("'metadata' must be an object of string keys and values.", "metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise _bad(f"'metadata' can hold at most {MAX_METADATA_PAIRS} pairs.", "metadata")
    for k, v in metadata.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise _bad(
                "metadata keys are strings of at most 64 characters, values strings of at "
                "most 512.",
                "metadata",
            )
    return dict(metadata)


def _check_integrations(integrations: object) -> list[dict[str, Any]] | None:
    if integrations is None:
        return None
    if not isinstance(integrations, list):
        raise _bad("'integrations' must be a list.", "integrations")
    out = []
    for i, item in enumerate(integrations):
        if (
            not isinstance(item, dict)
            or item.get("type") != "wandb"
            or not isinstance(item.get("wandb"), dict)
            or not isinstance(item["wandb"].get("project"), str)
        ):
            raise _bad(
                f"integrations[{i}] must be {{'type': 'wandb', 'wandb': {{'project': ...}}}}.",
                "integrations",
            )
        out.append({"type": "wandb", "wandb": dict(item["wandb"])})
    return out
