"""Together's fine-tuning options: their names, the values any model allows, request checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from finetune_qa.backends.base import JobRequest
from finetune_qa.exceptions import UsageError

__all__ = [
    "DEFAULT_VALIDATION_EVALS",
    "MAX_SUFFIX",
    "OPTION_SPECS",
    "PROVIDER_OPTION_NAMES",
    "check_option_values",
    "check_options",
    "request_evals",
]

MAX_SUFFIX = 40
"""Together's longest model-name suffix."""

DEFAULT_VALIDATION_EVALS = 5
"""Evaluations on the validation file when one is given and ``n_evals`` is not."""

PROVIDER_OPTION_NAMES: frozenset[str] = frozenset(
    {
        "lora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_trainable_modules",
        "learning_rate",
        "lr_scheduler_type",
        "min_lr_ratio",
        "scheduler_num_cycles",
        "warmup_ratio",
        "max_grad_norm",
        "weight_decay",
        "n_checkpoints",
        "n_evals",
        "max_seq_length",
        "packing",
        "gradient_accumulation_steps",
        "train_on_inputs",
        "dpo_normalize_logratios_by_length",
        "rpo_alpha",
        "simpo_gamma",
        "early_stopping_enabled",
        "early_stopping_patience",
        "early_stopping_min_delta",
        "early_stopping_warmup_evals",
        "wandb_base_url",
    }
)
"""Keys ``JobRequest.provider_options`` may hold for Together (``together`` SDK argument names).

The W&B key is deliberately not among them: it comes from ``TogetherBackend(wandb_api_key=)``
or ``WANDB_API_KEY`` so that it never lands in a request record or the journal.
"""


def _positive(v: Any) -> bool:
    return bool(v > 0)


def _non_negative(v: Any) -> bool:
    return bool(v >= 0)


def _at_least_one(v: Any) -> bool:
    return bool(v >= 1)


def _unit(v: Any) -> bool:
    return bool(0 <= v <= 1)


# option -> (kind, range check (None: any value of the kind), the values allowed).
# Ranges that depend on the model (learning rate, rank, checkpoints, evaluations, sequence
# length) are checked against Together's limits in TogetherBackend.check_request.
OPTION_SPECS: dict[str, tuple[str, Callable[[Any], bool] | None, str]] = {
    "lora": ("bool", None, "True or False"),
    "lora_r": ("int", _at_least_one, "1 to the model's lora_max_rank"),
    "lora_alpha": ("number", _positive, "above 0"),
    "lora_dropout": ("number", lambda v: 0 <= v < 1, "0 to below 1"),
    "lora_trainable_modules": ("str", bool, "'all-linear' or comma-separated module names"),
    "learning_rate": (
        "number",
        _non_negative,
        "the model's min_learning_rate to max_learning_rate",
    ),
    "lr_scheduler_type": ("str", lambda v: v in ("linear", "cosine"), "'linear' or 'cosine'"),
    "min_lr_ratio": ("number", _unit, "0 to 1"),
    "scheduler_num_cycles": ("number", _positive, "above 0"),
    "warmup_ratio": ("number", _unit, "0 to 1"),
    "max_grad_norm": ("number", _non_negative, "0 or more"),
    "weight_decay": ("number", _non_negative, "0 or more"),
    "n_checkpoints": ("int", _at_least_one, "1 to the model's max_num_checkpoints"),
    "n_evals": ("int", _non_negative, "0 to the model's max_num_evals"),
    "max_seq_length": (
        "int",
        _at_least_one,
        "the model's min_max_seq_length to its max_seq_length_sft (dpo)",
    ),
    "packing": ("bool", None, "True or False"),
    "gradient_accumulation_steps": ("int", _at_least_one, "1 or more"),
    "train_on_inputs": ("bool or 'auto'", None, "True, False or 'auto'"),
    "dpo_normalize_logratios_by_length": ("bool", None, "True or False"),
    "rpo_alpha": ("number", _non_negative, "0 or more"),
    "simpo_gamma": ("number", _non_negative, "0 or more"),
    "early_stopping_enabled": ("bool", None, "True or False"),
    "early_stopping_patience": ("int", _at_least_one, "1 or more"),
    "early_stopping_min_delta": ("number", _non_negative, "0 or more"),
    "early_stopping_warmup_evals": ("int", _non_negative, "0 or more"),
    "wandb_base_url": (
        "str",
        lambda v: v.startswith(("http://", "https://")),
        "an http(s) URL",
    ),
}


def _of_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "bool or 'auto'":
        return isinstance(value, bool) or value == "auto"
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "int":
        return isinstance(value, int)
    return math.isfinite(value)


def check_option_values(options: Mapping[str, Any]) -> None:
    """Refuse option values of the wrong type or outside the range any model allows."""
    for name, value in options.items():
        spec = OPTION_SPECS.get(name)
        if spec is None:
            continue
        kind, in_range, allowed = spec
        if not _of_kind(value, kind):
            raise UsageError(
                f"provider_options[{name!r}] must be {'an' if kind == 'int' else 'a'} {kind} "
                f"({allowed}), got {type(value).__name__} {value!r}"
            )
        if in_range is not None and not in_range(value):
            raise UsageError(
                f"provider_options[{name!r}] is {value!r}; Together AI allows {allowed}"
            )


def request_evals(request: JobRequest) -> int:
    """Evaluations on the validation file: the option, else a few when there is a file.

    Together's default is none, so a validation file would be uploaded and never used;
    OpenAI reports validation loss during training, and a migrated job should too.
    """
    given = request.provider_options.get("n_evals")
    if given is not None:
        return int(given)
    return DEFAULT_VALIDATION_EVALS if request.validation_file else 0


def check_options(request: JobRequest) -> None:
    """Refuse what Together refuses on any model, before the model's limits are fetched.

    Unknown option names, option values of the wrong type or range, a learning-rate
    multiplier, a suffix over :data:`MAX_SUFFIX` characters, ``train_on_inputs`` on DPO.

    Raises:
        UsageError: the request asks for something Together AI does not take.
    """
    unknown = sorted(set(request.provider_options) - PROVIDER_OPTION_NAMES)
    if unknown:
        raise UsageError(
            f"provider_options {unknown} are not Together AI options; allowed: "
            f"{', '.join(sorted(PROVIDER_OPTION_NAMES))}"
        )
    check_option_values(request.provider_options)
    if request.learning_rate_multiplier != "auto":
        raise UsageError(
            "Together AI takes an absolute learning rate, not a multiplier: drop "
            "learning_rate_multiplier and pass provider_options={'learning_rate': 1e-5} "
            "(Together's default is 1e-5)"
        )
    if request.suffix is not None and len(request.suffix) > MAX_SUFFIX:
        raise UsageError(
            f"suffix {request.suffix!r} is {len(request.suffix)} characters; Together AI "
            f"takes at most {MAX_SUFFIX}"
        )
    if request.method == "dpo" and "train_on_inputs" in request.provider_options:
        raise UsageError("train_on_inputs is for supervised jobs only; drop it for method='dpo'")
