"""What Together allows and what a job costs: model limits, example lengths, price estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.backends.base import JobRequest
from finetune_qa.exceptions import UsageError

__all__ = ["ModelLimits", "PriceEstimate", "catalogue_price", "check_lengths"]


class ModelLimits(BaseModel):
    """What Together allows when fine-tuning one model (``/fine-tunes/models/limits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The model the limits are for.")
    max_seq_length_sft: int = Field(description="Longest example (tokens) for SFT.")
    max_seq_length_dpo: int = Field(description="Longest example (tokens) for DPO.")
    max_num_epochs: int = Field(description="Most epochs.")
    max_num_checkpoints: int = Field(description="Most checkpoints saved during a job.")
    max_num_evals: int = Field(description="Most evaluation loops.")
    min_learning_rate: float = Field(description="Smallest learning rate.")
    max_learning_rate: float = Field(description="Largest learning rate.")
    lora_min_batch_size: int = Field(description="Smallest LoRA batch size.")
    lora_max_batch_size: int = Field(description="Largest LoRA batch size (SFT).")
    lora_max_batch_size_dpo: int = Field(description="Largest LoRA batch size (DPO).")
    lora_max_rank: int = Field(description="Largest LoRA rank.")
    lora_default_rank: int = Field(description="LoRA rank used when none is given.")
    supports_full_training: bool = Field(description="Whether full (non-LoRA) training exists.")
    full_min_batch_size: int | None = Field(
        default=None, description="Smallest full-training batch size, when offered."
    )
    full_max_batch_size: int | None = Field(
        default=None, description="Largest full-training batch size (SFT), when offered."
    )
    full_max_batch_size_dpo: int | None = Field(
        default=None, description="Largest full-training batch size (DPO), when offered."
    )
    min_max_seq_length: int | None = Field(
        default=None, description="Smallest max_seq_length a job may ask for, when given."
    )
    supports_tools: bool = Field(description="Whether tool-calling data can be trained.")
    supports_vision: bool = Field(description="Whether image inputs can be trained.")
    raw: dict[str, Any] = Field(default_factory=dict, description="Together's full record.")

    def max_seq_length(self, method: str) -> int:
        """The per-example token limit for ``method`` ("supervised" or "dpo")."""
        return self.max_seq_length_dpo if method == "dpo" else self.max_seq_length_sft

    def batch_size_range(self, method: str, *, lora: bool) -> tuple[int, int] | None:
        """The batch sizes allowed for ``method`` with LoRA or full training (None: unknown)."""
        if lora:
            top = self.lora_max_batch_size_dpo if method == "dpo" else self.lora_max_batch_size
            return self.lora_min_batch_size, top
        full_top = self.full_max_batch_size_dpo if method == "dpo" else self.full_max_batch_size
        if self.full_min_batch_size is None or full_top is None:
            return None
        return self.full_min_batch_size, full_top


class PriceEstimate(BaseModel):
    """What a job would cost, from Together's estimate endpoint or the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Base model priced.")
    source: Literal["together", "catalogue"] = Field(
        description="'together': Together's /fine-tunes/estimate-price; 'catalogue': "
        "catalogue price x estimated tokens."
    )
    available: bool = Field(description="Whether a price could be estimated.")
    estimated_total_usd: float | None = Field(default=None, description="Estimated price.")
    train_tokens: float | None = Field(default=None, description="Tokens to train (x epochs).")
    eval_tokens: float | None = Field(default=None, description="Tokens of evaluation.")
    allowed_to_proceed: bool | None = Field(
        default=None, description="Together: whether the account's credit covers the job."
    )
    user_limit_usd: float | None = Field(default=None, description="Together: credit limit.")
    reason: str | None = Field(default=None, description="Why no estimate, or how it was made.")


def check_lengths(path: Path, limit: int, model: str, method: str) -> None:
    """Refuse the first example longer than ``limit`` (tiktoken o200k_base estimate)."""
    import orjson

    from finetune_qa.tokens import TokenCounter

    counter = TokenCounter(encoding="o200k_base")
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # the validator reports it
            if not isinstance(obj, dict):
                continue
            if method == "dpo" or "preferred_output" in obj:
                inp: dict[str, Any] = obj["input"] if isinstance(obj.get("input"), dict) else {}
                msgs = list(inp.get("messages") or [])
                outs = [
                    o
                    for o in (obj.get("preferred_output"), obj.get("non_preferred_output"))
                    if isinstance(o, list)
                ]
                tokens = max(
                    (_count(counter, msgs + o) for o in outs), default=_count(counter, msgs)
                )
            else:
                tokens = _count(counter, obj.get("messages") or [])
            if tokens > limit:
                raise UsageError(
                    f"{path}:{n}: the example has about {tokens:,} tokens, over {model}'s "
                    f"limit of {limit:,} per example on Together AI (counted with tiktoken "
                    "o200k_base, an estimate: the model's own tokenizer differs). Shorten or "
                    "drop it, or pass a larger provider_options['max_seq_length'] if the "
                    "model allows one. Nothing was uploaded."
                )


def _count(counter: Any, messages: list[Any]) -> int:
    msgs = [m for m in messages if isinstance(m, dict)]
    return int(counter.count_messages(msgs))


def catalogue_price(request: JobRequest, path: Path, reason: str) -> PriceEstimate:
    """The catalogue's price for ``request``, for when Together cannot estimate (``reason``).

    The catalogue's price per 1M tokens times the validator's tiktoken estimate of the
    tokens in ``path``; unavailable when the catalogue has no price for the model.
    """
    from finetune_qa.catalog import default_catalog
    from finetune_qa.exceptions import UnknownModelError
    from finetune_qa.validation import validate_file

    try:
        info = default_catalog().get(request.model)
    except UnknownModelError:
        return PriceEstimate(
            model=request.model,
            source="catalogue",
            available=False,
            reason=f"Together could not estimate ({reason}) and the catalogue has no price",
        )
    epochs = request.n_epochs if request.n_epochs != "auto" else 1
    report = validate_file(path, model=info, n_epochs=epochs)
    price = info.training_price_per_1m
    return PriceEstimate(
        model=request.model,
        source="catalogue",
        available=price is not None,
        estimated_total_usd=report.cost.estimated_cost_usd,
        train_tokens=float(report.cost.billed_tokens_total),
        reason=(
            f"Together could not estimate ({reason}); catalogue price x tiktoken "
            f"{report.encoding} token estimate (the model's own tokenizer differs)"
        ),
    )
