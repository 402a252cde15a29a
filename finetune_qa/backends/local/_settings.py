"""Local training settings: what the user may set, and the automatic choice per device.

The job arguments every backend takes (epochs, batch size, learning-rate multiplier,
seed, suffix, validation file) keep their meaning; what only a local run has (method,
LoRA shape, max length, packing, precision, device, ...) lives in :class:`LocalSettings`,
passed as ``provider_options``. ``None`` means "choose for the device": settings are picked
per device from what was measured, never one fixed recipe (see ``bench/bench_local_train.py``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BASE_LEARNING_RATE",
    "PROVIDER_OPTION_NAMES",
    "DeviceInfo",
    "LocalSettings",
    "Resolved",
    "resolve",
]

BASE_LEARNING_RATE = {"lora": 2e-4, "full": 2e-5}
"""The learning rate a multiplier of 1 means, per method (the common LoRA / full defaults)."""


class LocalSettings(BaseModel):
    """Settings of a local fine-tune beyond the common job arguments (``None``: automatic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["lora", "full"] = Field(
        default="lora", description="LoRA adapters (default) or full fine-tuning."
    )
    lora_r: int = Field(default=16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int | None = Field(
        default=None, ge=1, description="LoRA alpha (default: twice the rank)."
    )
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        default="all-linear", description="Modules that get adapters."
    )
    lora_train_embeddings: bool = Field(
        default=False,
        description="Also train embeddings and output head in full (new vocab, tiny models).",
    )
    learning_rate: float | None = Field(
        default=None, gt=0, description="Absolute learning rate; overrides the multiplier."
    )
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1, description="Warm-up fraction.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    max_length: int | None = Field(
        default=None, ge=8, description="Longest example in tokens (default: the longest seen)."
    )
    packing: bool | None = Field(
        default=None, description="Pack examples padding-free (default: on GPU with fast kernels)."
    )
    gradient_checkpointing: bool | None = Field(
        default=None, description="Trade compute for memory (default: on GPU for models >= 1B)."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="Training precision (default: bf16 where the GPU has it)."
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="Where to train (default: a GPU when there is one)."
    )
    chat_template: str | None = Field(
        default=None, description="A Jinja chat template for a model that has none."
    )
    n_checkpoints: int = Field(default=3, ge=0, le=100, description="Checkpoints kept.")
    launcher: Literal["auto", "python", "accelerate"] = Field(
        default="auto",
        description="auto: `accelerate launch` with an accelerate config or > 1 GPU, else Python.",
    )


PROVIDER_OPTION_NAMES: frozenset[str] = frozenset(LocalSettings.model_fields)
"""The ``provider_options`` keys the local backend takes."""


class DeviceInfo(BaseModel):
    """What the training process found to run on."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cpu", "cuda", "mps"]
    count: int = 1
    name: str = "cpu"
    memory_bytes: int | None = None
    bf16: bool = False
    fast_kernels: bool = False
    """A padding-free attention kernel is available (flash-attention)."""


class Resolved(BaseModel):
    """Settings with every automatic choice made, as recorded in the run directory."""

    model_config = ConfigDict(frozen=True)

    method: Literal["lora", "full"]
    n_epochs: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    max_length: int
    packing: bool
    padding_free: bool
    group_by_length: bool
    gradient_checkpointing: bool
    precision: Literal["fp32", "bf16", "fp16"]
    device: Literal["cpu", "cuda", "mps"]
    seed: int
    reasons: dict[str, str] = Field(default_factory=dict)


def resolve(
    settings: LocalSettings,
    *,
    device: DeviceInfo,
    n_examples: int,
    longest: int,
    mean_length: float,
    n_params: int,
    n_epochs: int | Literal["auto"],
    batch_size: int | Literal["auto"],
    learning_rate_multiplier: float | Literal["auto"],
    seed: int | None,
    model_max_length: int | None,
) -> Resolved:
    """Make every automatic choice for this device and data, with the reason for each."""
    from finetune_qa.validation import default_epochs

    why: dict[str, Any] = {}
    epochs = default_epochs(n_examples) if n_epochs == "auto" else n_epochs
    if n_epochs == "auto":
        why["n_epochs"] = "OpenAI's default for this many examples"
    limit = model_max_length or 4096
    max_length = settings.max_length or min(limit, max(16, longest))
    if settings.max_length is None:
        why["max_length"] = f"the longest example ({longest} tokens), within the model's {limit}"
    if settings.learning_rate is not None:
        lr = settings.learning_rate
    else:
        mult = 1.0 if learning_rate_multiplier == "auto" else learning_rate_multiplier
        lr = BASE_LEARNING_RATE[settings.method] * mult
    gpu = device.kind != "cpu"
    if batch_size != "auto":
        batch, accum = batch_size, 1
    elif gpu and device.memory_bytes:
        # activations grow with tokens per batch; keep well inside memory, in powers of two
        budget_tokens = max(1024, int(device.memory_bytes / max(n_params, 1) * 2048))
        batch = 1 << max(0, min(6, int(math.log2(max(1, budget_tokens // max(1, longest))))))
        accum = 1
        why["batch_size"] = f"{batch} per device from {device.memory_bytes >> 30} GiB of memory"
    else:
        # measured on CPU: dynamic padding at 8 is as fast as any larger batch per token,
        # and small QA sets need the steps
        batch, accum = 8, 1
        why["batch_size"] = "8: fastest per token on CPU, measured"
    batch = max(1, min(batch, n_examples))
    if settings.packing is not None:
        packing = settings.packing
    else:
        packing = gpu and device.fast_kernels
        why["packing"] = (
            "padding-free packing: a flash-attention kernel is available"
            if packing
            else "off: without a padding-free attention kernel it is slower (1.6x on CPU, measured)"
        )
    if settings.precision != "auto":
        precision = settings.precision
    elif device.kind == "cuda" and device.bf16:
        precision = "bf16"
    elif device.kind == "cuda":
        precision = "fp16"
    else:
        precision = "fp32"
    if settings.gradient_checkpointing is not None:
        checkpointing = settings.gradient_checkpointing
    else:
        checkpointing = gpu and n_params >= 1_000_000_000
    return Resolved(
        method=settings.method,
        n_epochs=epochs,
        batch_size=batch,
        gradient_accumulation_steps=accum,
        learning_rate=lr,
        max_length=max_length,
        packing=packing,
        padding_free=packing,
        group_by_length=gpu and not packing and mean_length < longest / 2,
        gradient_checkpointing=checkpointing,
        precision=precision,
        device=device.kind,
        seed=seed if seed is not None else 42,
        reasons={k: str(v) for k, v in why.items()},
    )
