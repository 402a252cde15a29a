"""TogetherBackend: the lifecycle on Together AI, over a client of the official ``together`` SDK.

The same dataset, validation, job code and :class:`~finetune_qa.chat.ChatModel` work on
Together AI by changing one argument (``backend="together"``). This module maps the
provider-neutral types of :mod:`finetune_qa.backends.base` onto Together's API:

* files go up through the SDK's own flow (a signed upload URL, a ``PUT`` of the bytes,
  then ``/files/{id}/preprocess``);
* ``JobRequest`` fields map onto ``/fine-tunes``: ``n_epochs`` (``"auto"``: Together's
  default of 1 epoch), ``batch_size`` (``"auto"``: ``"max"``), ``suffix``, ``seed``
  (``random_seed``), ``method="dpo"`` (``training_method`` dpo, ``beta`` as ``dpo_beta``),
  a wandb integration (the W&B key comes only from ``wandb_api_key=`` or ``WANDB_API_KEY``,
  never from the request, so it is never journalled); everything else Together offers
  (LoRA, learning rate, checkpoints, warm-up, ...) goes in ``provider_options``;
* ``learning_rate_multiplier`` is refused: Together takes an absolute learning rate, and a
  multiplier of an unknown base rate cannot be translated honestly. Pass
  ``provider_options={"learning_rate": 1e-5}`` instead (Together's default is 1e-5);
* statuses map onto OpenAI's names (``pending``/``queued`` -> queued; ``running``,
  ``compressing``, ``uploading`` -> running; ``completed`` -> succeeded; ``error`` and
  ``user_error`` -> failed; ``cancelled`` -> cancelled), the original kept in
  ``JobInfo.provider_status``. ``cancel_requested`` stays ``running`` (the job may still
  train, and bill) until Together reports ``cancelled``;
* Together's exceptions become :mod:`finetune_qa.exceptions` classes, with the status,
  request id, message and ``retry-after`` kept and anything key-like redacted.

Together jobs carry no metadata (``supports_metadata = False``), so
:class:`~finetune_qa.jobs.FineTuneJob` finds a job after a dropped connection by its
model, files, suffix and the hyperparameters Together echoes back
(:meth:`TogetherBackend.matches_request`) instead of by a token.

Requests that create something (file uploads, jobs) go through the client with the SDK's
own retries off: a resent ``POST /fine-tunes`` after a dropped connection would start a
second, billed job. :class:`~finetune_qa.jobs.FineTuneJob` retries them itself, after
looking for what the lost request may have created.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.backends._logscrub import protect_secrets
from finetune_qa.backends._loops import LoopClients
from finetune_qa.backends.base import (
    ChatRequest,
    ChatResponse,
    Checkpoint,
    FileInfo,
    JobEvent,
    JobInfo,
    JobRequest,
    JobStatus,
    Usage,
)
from finetune_qa.exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackendError,
    BadRequestError,
    ConfigError,
    ConflictError,
    FineTuneQAError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    UsageError,
    redact,
)

if TYPE_CHECKING:
    import together

__all__ = [
    "PROVIDER_OPTION_NAMES",
    "ModelLimits",
    "PriceEstimate",
    "TogetherBackend",
    "map_together_errors",
]

INSTALL_HINT = "pip install 'finetune-qa[together]'"
"""How to install the SDK this backend needs."""

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
# length) are checked against Together's limits in check_request.
_OPTION_SPECS: dict[str, tuple[str, Callable[[Any], bool] | None, str]] = {
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


def _check_option_values(options: Mapping[str, Any]) -> None:
    """Refuse option values of the wrong type or outside the range any model allows."""
    for name, value in options.items():
        spec = _OPTION_SPECS.get(name)
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


_STATUS: dict[str, JobStatus] = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "completed": "succeeded",
    "error": "failed",
    "user_error": "failed",
    "cancel_requested": "running",  # not over until Together says cancelled
    "cancelled": "cancelled",
}

_LEVELS = {
    "info": "info",
    "legacy_info": "info",
    "warning": "warn",
    "legacy_iwarning": "warn",
    "error": "error",
    "legacy_ierror": "error",
}

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

# Together keys: 64 hex digits (older accounts) or tgp_v1_... (newer ones).
_KEYLIKE = re.compile(r"tgp_v\d+_[A-Za-z0-9_\-]{8,}|\b[0-9a-f]{64}\b")


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


def _sdk() -> Any:
    try:
        import together
    except ImportError as exc:  # pragma: no cover - the test environment has the SDK
        raise ConfigError(
            f"the Together AI backend needs the together package: {INSTALL_HINT}"
        ) from exc
    return together


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and len(s) >= 8:
            text = text.replace(s, "[REDACTED]")
    return redact(_KEYLIKE.sub("[REDACTED]", text))


@contextlib.contextmanager
def map_together_errors(*secrets: str) -> Iterator[None]:
    """Translate ``together`` exceptions raised inside the block into finetune_qa's own.

    Status classes by code (5xx to ``InternalServerError``), ``retry-after`` kept on
    ``RateLimitError``, ``x-request-id`` as the request id, the original as ``__cause__``.
    ``secrets`` (the client's key) and anything key-like are removed from the message.
    The SDK's own argument checks (``ValueError``) become ``UsageError``.
    """
    sdk = _sdk()
    try:
        yield
    except FineTuneQAError:
        raise
    except sdk.APITimeoutError as exc:
        raise APITimeoutError(
            "Together AI did not answer in time; the request may still have been carried "
            "out. Retry, or raise the client's timeout."
        ) from exc
    except sdk.APIConnectionError as exc:
        cause = _scrub(str(exc.__cause__ or exc), secrets)
        raise APIConnectionError(
            f"could not reach Together AI ({cause}); the request may or may not have been "
            "carried out. Check the network and the base URL, then retry."
        ) from exc
    except sdk.APIStatusError as exc:
        status = int(exc.status_code)
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        code = err.get("code") if isinstance(err, dict) else None
        if code is None and isinstance(err, dict):
            code = err.get("type")
        param = err.get("param") if isinstance(err, dict) else None
        message = (err.get("message") if isinstance(err, dict) else None) or (
            body.get("error") if isinstance(body.get("error"), str) else None
        )
        message = _scrub(str(message or exc.message or exc), secrets)
        hint = {
            401: " Check the API key (TOGETHER_API_KEY); backend='offline' runs without one.",
            404: " Check the id or model name; see Together's list of fine-tunable models.",
            429: " Wait and retry; check the account's rate limits and credit.",
        }.get(status, "")
        cls: type[APIStatusError] = _STATUS_CLASSES.get(
            status, InternalServerError if status >= 500 else APIStatusError
        )
        headers = exc.response.headers
        kwargs: dict[str, Any] = {
            "status_code": status,
            "request_id": headers.get("x-request-id") or headers.get("request-id"),
            "code": str(code) if code is not None else None,
            "param": param if isinstance(param, str) else None,
        }
        text = f"{status} from Together AI: {_sentence(message)}{hint}"
        if cls is RateLimitError:
            raise RateLimitError(text, retry_after=_retry_after(headers), **kwargs) from exc
        raise cls(text, **kwargs) from exc
    except sdk.TogetherError as exc:
        raise BackendError(f"together client error: {_scrub(str(exc), secrets)}") from exc
    except ValueError as exc:  # the SDK checks arguments locally before sending
        raise UsageError(
            f"Together AI's SDK refused the request: {_scrub(str(exc), secrets)}"
        ) from exc


def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return dict(obj)
    return cast(dict[str, Any], obj.model_dump(mode="json", by_alias=True))


def _unix(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp())


def _n_evals(request: JobRequest) -> int:
    """Evaluations on the validation file: the option, else a few when there is a file.

    Together's default is none, so a validation file would be uploaded and never used;
    OpenAI reports validation loss during training, and a migrated job should too.
    """
    given = request.provider_options.get("n_evals")
    if given is not None:
        return int(given)
    return DEFAULT_VALIDATION_EVALS if request.validation_file else 0


def _job_info(obj: Any) -> JobInfo:
    raw = _dump(obj)
    status = str(raw.get("status") or "pending")
    mapped = _STATUS.get(status, "running")
    updated = _unix(raw.get("updated_at"))
    error_message = None
    if mapped == "failed":
        for e in reversed(raw.get("events") or []):
            if isinstance(e, dict) and (
                e.get("level") in ("error", "legacy_ierror")
                or e.get("type") in ("job_error", "job_user_error")
            ):
                error_message = e.get("message")
                break
    progress = raw.get("progress") or {}
    estimated = None
    if isinstance(progress, dict) and progress.get("estimate_available"):
        estimated = int(time.time()) + int(progress.get("seconds_remaining") or 0)
    return JobInfo(
        id=raw["id"],
        status=mapped,
        provider_status=status,
        model=raw.get("model") or "",
        fine_tuned_model=raw.get("model_output_name") if mapped == "succeeded" else None,
        training_file=raw.get("training_file") or "",
        validation_file=raw.get("validation_file") or None,
        created_at=_unix(raw.get("created_at")) or 0,
        finished_at=updated if mapped in ("succeeded", "failed", "cancelled") else None,
        trained_tokens=raw.get("token_count"),
        error_code=status if mapped == "failed" else None,
        error_message=error_message
        or (f"Together AI reports {status}" if mapped == "failed" else None),
        metadata={},
        estimated_finish=estimated,
        raw=raw,
    )


def _file_info(obj: Any) -> FileInfo:
    raw = _dump(obj)
    return FileInfo(
        id=raw["id"],
        filename=raw.get("filename") or "",
        bytes=int(raw.get("bytes") or 0),
        purpose=raw.get("purpose") or "fine-tune",
        created_at=_unix(raw.get("created_at")) or 0,
        status=raw.get("processing_status"),
    )


def _limits(obj: Any) -> ModelLimits:
    raw = _dump(obj)
    lora = raw.get("lora_training") or {}
    full: dict[str, Any] = raw.get("full_training") or {}
    return ModelLimits(
        model=raw.get("model_name") or "",
        max_seq_length_sft=raw["max_seq_length_sft"],
        max_seq_length_dpo=raw["max_seq_length_dpo"],
        max_num_epochs=raw["max_num_epochs"],
        max_num_checkpoints=raw["max_num_checkpoints"],
        max_num_evals=raw["max_num_evals"],
        min_learning_rate=raw["min_learning_rate"],
        max_learning_rate=raw["max_learning_rate"],
        lora_min_batch_size=lora["min_batch_size"],
        lora_max_batch_size=lora["max_batch_size"],
        lora_max_batch_size_dpo=lora["max_batch_size_dpo"],
        lora_max_rank=lora["max_rank"],
        lora_default_rank=lora["default_rank"],
        supports_full_training=bool(raw.get("supports_full_training")),
        full_min_batch_size=full.get("min_batch_size"),
        full_max_batch_size=full.get("max_batch_size"),
        full_max_batch_size_dpo=full.get("max_batch_size_dpo"),
        min_max_seq_length=raw.get("min_max_seq_length"),
        supports_tools=bool(raw.get("supports_tools")),
        supports_vision=bool(raw.get("supports_vision")),
        raw=raw,
    )


def _chat_kwargs(request: ChatRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
    for name in ("temperature", "max_tokens", "stop", "seed"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    if request.logprobs:
        # Together's logprobs is the number of alternatives per token (0-20)
        kwargs["logprobs"] = request.top_logprobs if request.top_logprobs is not None else 1
    return kwargs


def _alternatives(top: Any) -> list[dict[str, Any]]:
    """``{token: logprob}`` (Together's shape) as OpenAI's ``[{token, logprob}]``, best first."""
    if not isinstance(top, dict):
        return []
    pairs = [
        (str(t), float(v))
        for t, v in top.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    pairs.sort(key=lambda p: -p[1])
    return [{"token": t, "logprob": lp} for t, lp in pairs]


def _top_per_token(top: Any, n: int) -> list[list[dict[str, Any]]]:
    """Together's ``top_logprobs``, one ``{token: logprob}`` per generated token, mapped.

    The SDK types it as one mapping; the API sends a list of them. A lone mapping is read
    as the first token's alternatives.
    """
    if isinstance(top, list):
        per = [_alternatives(t) for t in top]
    elif isinstance(top, dict):
        per = [_alternatives(top)]
    else:
        per = []
    return [per[i] if i < len(per) else [] for i in range(n)]


def _chat_response(completion: Any, request_id: str | None = None) -> ChatResponse:
    choice = completion.choices[0]
    usage = completion.usage
    logprobs = None
    lp = getattr(choice, "logprobs", None)
    if lp is not None and lp.tokens is not None:
        values = lp.token_logprobs or []
        top = getattr(lp, "top_logprobs", None)
        if top is None:
            top = getattr(choice, "top_logprobs", None)
        alternatives = _top_per_token(top, len(lp.tokens))
        logprobs = [
            {
                "token": t,
                "logprob": values[i] if i < len(values) else None,
                "top_logprobs": alternatives[i],
            }
            for i, t in enumerate(lp.tokens)
        ]
    finish = choice.finish_reason or "stop"
    return ChatResponse(
        id=completion.id,
        model=completion.model,
        content=(choice.message.content if choice.message is not None else None) or "",
        finish_reason="stop" if finish == "eos" else finish,
        usage=Usage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )
        if usage is not None
        else Usage(),
        logprobs=logprobs,
        request_id=request_id or getattr(completion, "_request_id", None),
    )


def _event(job_id: str, index: int, obj: Any) -> JobEvent:
    raw = _dump(obj)
    data = {
        k: raw[k]
        for k in ("type", "step", "total_steps", "token_count", "param_count", "wandb_url")
        if raw.get(k) is not None
    }
    return JobEvent(
        id=f"{job_id}:event:{index}",
        created_at=_unix(raw.get("created_at")) or 0,
        level=_LEVELS.get(str(raw.get("level") or "info"), "info"),
        message=str(raw.get("message") or raw.get("type") or ""),
        type="message",
        data=data or None,
    )


class TogetherBackend(LoopClients["together.AsyncTogether"]):
    """The lifecycle on Together AI, through a ``together.Together`` client.

    Args:
        client: a configured ``together.Together``; built from ``api_key`` or
            ``TOGETHER_API_KEY`` when omitted.
        async_client: the matching ``together.AsyncTogether`` for :meth:`achat`; when
            omitted, one is made per event loop for a client built here, else the sync
            client runs in a worker thread.
        api_key: key for a client built here (else ``TOGETHER_API_KEY``).
        base_url: base URL for a client built here.
        max_retries: retries of a client built here (the SDK's own backoff).
        wandb_api_key: Weights & Biases key for jobs with a wandb integration (else
            ``WANDB_API_KEY``); sent to Together with the job, never recorded.

    Raises:
        ConfigError: the ``together`` package is missing, or no client was given and no
            API key can be found.

    Example:
        ```python
        from finetune_qa import FineTuneJob
        from finetune_qa.backends import TogetherBackend

        job = FineTuneJob.create(
            "train.jsonl",
            model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            backend=TogetherBackend(),  # TOGETHER_API_KEY from the environment
            provider_options={"lora": True, "learning_rate": 2e-5},
        )
        ```
    """

    name = "together"
    supports_metadata = False
    """Together jobs carry no metadata: jobs are found again by :meth:`matches_request`."""
    validation_provider = "together"
    """Training files are validated with Together's format rules (``validate_file(provider=)``)."""
    provider_option_names: frozenset[str] = PROVIDER_OPTION_NAMES
    """The keys ``JobRequest.provider_options`` may hold."""

    def __init__(
        self,
        client: together.Together | None = None,
        *,
        async_client: together.AsyncTogether | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        wandb_api_key: str | None = None,
    ) -> None:
        sdk = _sdk()
        if client is None:
            key = api_key or os.environ.get("TOGETHER_API_KEY")
            if not key:
                raise ConfigError(
                    "no Together AI API key: pass api_key=, set TOGETHER_API_KEY, or pass a "
                    "configured together.Together client; backend='offline' (CLI: --backend "
                    "offline) runs the whole lifecycle without one"
                )
            client = sdk.Together(api_key=key, base_url=base_url, max_retries=max_retries)
            if async_client is None:

                def make_async() -> together.AsyncTogether:
                    return cast(
                        "together.AsyncTogether",
                        sdk.AsyncTogether(api_key=key, base_url=base_url, max_retries=max_retries),
                    )

                self._async_factory = make_async
        self.client = client
        self._init_loop_clients(async_client)
        self._wandb_api_key = wandb_api_key
        # the SDK logs request options (the W&B key among them) at DEBUG
        protect_secrets(
            str(getattr(client, "api_key", "") or ""),
            wandb_api_key,
            loggers=("together",),
        )
        self._limits_cache: dict[str, tuple[ModelLimits, Any]] = {}

    def __repr__(self) -> str:
        return f"TogetherBackend(base_url={str(self.client.base_url)!r})"

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return map_together_errors(str(getattr(self.client, "api_key", "") or ""))

    def _writer(self) -> Any:
        """The client with the SDK's retries off, for requests that create something.

        The SDK resends a request after a dropped connection or a timeout with no
        idempotency Together honours, so a resent ``POST /fine-tunes`` could start a second
        (billed) job; :class:`~finetune_qa.jobs.FineTuneJob` retries instead, after
        looking for what the lost request may have created.
        """
        with_options = getattr(self.client, "with_options", None)
        return with_options(max_retries=0) if callable(with_options) else self.client

    # -- files
    def upload_file(self, data: bytes, *, filename: str, purpose: str = "fine-tune") -> FileInfo:
        """Upload ``data`` as ``filename`` through the SDK's signed-URL flow."""
        with tempfile.TemporaryDirectory(prefix="finetune-qa-") as tmp:
            path = Path(tmp) / _upload_name(filename)
            path.write_bytes(data)
            return self._upload(path, purpose)

    def upload_path(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str,
        purpose: str = "fine-tune",
        parallel: int = 4,
    ) -> FileInfo:
        """Upload a file from disk without reading it into memory.

        The SDK streams the file and switches to multi-part uploads itself above 5 GB;
        ``parallel`` is accepted for the protocol's sake (the SDK sends 4 parts at once).
        """
        del parallel
        with tempfile.TemporaryDirectory(prefix="finetune-qa-") as tmp:
            link = Path(tmp) / _upload_name(filename)
            try:
                link.symlink_to(Path(path).resolve())
            except OSError:
                link.write_bytes(Path(path).read_bytes())
            return self._upload(link, purpose)

    def _upload(self, path: Path, purpose: str) -> FileInfo:
        # check=False: finetune_qa's validator (with Together's rules) ran before this
        with self._errors():
            return _file_info(self._writer().files.upload(file=path, purpose=purpose, check=False))

    def list_files(self, *, purpose: str | None = None, limit: int = 100) -> list[FileInfo]:
        """Files, newest first (Together returns them all at once; ``limit`` cuts)."""
        with self._errors():
            files = [_file_info(f) for f in self.client.files.list().data]
        if purpose is not None:
            files = [f for f in files if f.purpose == purpose]
        files.sort(key=lambda f: f.created_at, reverse=True)
        return files[:limit]

    def file_content(self, file_id: str) -> bytes:
        """The raw bytes of a file."""
        with self._errors():
            return cast(bytes, self.client.files.content(file_id).read())

    # -- limits and prices
    def _sdk_limits(self, model: str) -> tuple[ModelLimits, Any]:
        cached = self._limits_cache.get(model)
        if cached is None:
            with self._errors():
                obj = self.client.fine_tuning.model_limits(model_name=model)
            cached = self._limits_cache[model] = (_limits(obj), obj)
        return cached

    def model_limits(self, model: str) -> ModelLimits:
        """Together's fine-tuning limits for ``model`` (sequence length, batch, epochs, ...).

        Raises:
            NotFoundError: Together does not fine-tune that model.
        """
        return self._sdk_limits(model)[0]

    def check_request(
        self,
        request: JobRequest,
        *,
        training_path: str | os.PathLike[str] | None = None,
        validation_path: str | os.PathLike[str] | None = None,
    ) -> ModelLimits:
        """Check ``request`` (and the files, when given) against Together's limits, before upload.

        Fetches the model's limits once (cached), then checks the hyperparameters and
        that no example is longer than the model's maximum sequence length. Token counts
        are tiktoken ``o200k_base`` estimates: Together models use their own tokenizers.

        Raises:
            UsageError: something Together would refuse; nothing was uploaded.
        """
        self._check_options(request)
        limits = self.model_limits(request.model)
        opts = request.provider_options
        bad: list[str] = []
        if request.n_epochs != "auto" and request.n_epochs > limits.max_num_epochs:
            bad.append(f"n_epochs {request.n_epochs} is over the maximum {limits.max_num_epochs}")
        lr = opts.get("learning_rate")
        if lr is not None and not limits.min_learning_rate <= lr <= limits.max_learning_rate:
            bad.append(
                f"learning_rate {lr:g} is outside {limits.min_learning_rate:g}-"
                f"{limits.max_learning_rate:g}"
            )
        n_ckpt = opts.get("n_checkpoints")
        if n_ckpt is not None and n_ckpt > limits.max_num_checkpoints:
            bad.append(f"n_checkpoints {n_ckpt} is over the maximum {limits.max_num_checkpoints}")
        n_evals = opts.get("n_evals")
        if n_evals is not None and n_evals > limits.max_num_evals:
            bad.append(f"n_evals {n_evals} is over the maximum {limits.max_num_evals}")
        rank = opts.get("lora_r")
        if rank is not None and rank > limits.lora_max_rank:
            bad.append(f"lora_r {rank} is over the maximum rank {limits.lora_max_rank}")
        seq = opts.get("max_seq_length")
        top_seq = limits.max_seq_length(request.method)
        low_seq = limits.min_max_seq_length or 1
        if seq is not None and not low_seq <= seq <= top_seq:
            bad.append(f"max_seq_length {seq} is outside {low_seq}-{top_seq} for {request.method}")
        full = opts.get("lora") is False
        if full and not limits.supports_full_training:
            bad.append("full training (lora=False) is not offered for this model")
        elif request.batch_size != "auto":
            span = limits.batch_size_range(request.method, lora=not full)
            if span is not None and not span[0] <= request.batch_size <= span[1]:
                bad.append(
                    f"batch_size {request.batch_size} is outside {span[0]}-{span[1]} for "
                    f"{'full training' if full else 'LoRA'}"
                )
        if bad:
            raise UsageError(
                f"Together AI would refuse this job on {request.model}: {'; '.join(bad)}. "
                "Nothing was uploaded."
            )
        limit = int(seq or top_seq)
        for p in (training_path, validation_path):
            if p is not None:
                _check_lengths(Path(p), limit, request.model, request.method)
        return limits

    def _check_options(self, request: JobRequest) -> None:
        unknown = sorted(set(request.provider_options) - PROVIDER_OPTION_NAMES)
        if unknown:
            raise UsageError(
                f"provider_options {unknown} are not Together AI options; allowed: "
                f"{', '.join(sorted(PROVIDER_OPTION_NAMES))}"
            )
        _check_option_values(request.provider_options)
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
            raise UsageError(
                "train_on_inputs is for supervised jobs only; drop it for method='dpo'"
            )

    def estimate_price(
        self,
        request: JobRequest,
        *,
        training_path: str | os.PathLike[str] | None = None,
    ) -> PriceEstimate:
        """Price a job with Together's ``/fine-tunes/estimate-price`` (files must be uploaded).

        When Together cannot estimate (e.g. the file is not validated yet) and
        ``training_path`` is given, the catalogue's price per 1M tokens is applied to a
        tiktoken ``o200k_base`` estimate of the tokens (not the model's own tokenizer).
        """
        kwargs: dict[str, Any] = {
            "training_file": request.training_file,
            "model": request.model,
            "n_epochs": request.n_epochs if request.n_epochs != "auto" else 1,
            "n_evals": _n_evals(request),
        }
        if request.validation_file:
            kwargs["validation_file"] = request.validation_file
        if request.method == "dpo":
            method: dict[str, Any] = {"method": "dpo"}
            if isinstance(request.beta, float | int):
                method["dpo_beta"] = request.beta
        else:
            method = {
                "method": "sft",
                "train_on_inputs": request.provider_options.get("train_on_inputs", "auto"),
            }
        kwargs["training_method"] = method
        training_type = self._training_type(request)
        if training_type is not None:
            kwargs["training_type"] = training_type
        with self._errors():
            est = _dump(self.client.fine_tuning.estimate_price(**kwargs))
        if est.get("estimation_available"):
            return PriceEstimate(
                model=request.model,
                source="together",
                available=True,
                estimated_total_usd=est.get("estimated_total_price"),
                train_tokens=est.get("estimated_train_token_count"),
                eval_tokens=est.get("estimated_eval_token_count"),
                allowed_to_proceed=est.get("allowed_to_proceed"),
                user_limit_usd=est.get("user_limit"),
            )
        reason = str(est.get("unavailable_reason") or "unavailable")
        if training_path is None:
            return PriceEstimate(
                model=request.model, source="together", available=False, reason=reason
            )
        return _catalogue_price(request, Path(training_path), reason)

    def _training_type(self, request: JobRequest) -> dict[str, Any] | None:
        """LoRA or full training as ``create`` asks for it (None: Together's default, LoRA)."""
        opts = request.provider_options
        if "lora" not in opts:
            return None
        if opts["lora"] is False:
            return {"type": "Full"}
        rank = opts.get("lora_r")
        if rank is None:
            rank = self.model_limits(request.model).lora_default_rank
        alpha = opts.get("lora_alpha")
        return {
            "type": "Lora",
            "lora_r": int(rank),
            "lora_alpha": int(alpha if alpha is not None else rank * 2),
            "lora_dropout": float(opts.get("lora_dropout") or 0.0),
            "lora_trainable_modules": opts.get("lora_trainable_modules") or "all-linear",
        }

    # -- jobs
    def _request_kwargs(self, request: JobRequest) -> dict[str, Any]:
        """The SDK arguments for ``request``, without the W&B key and the model limits."""
        self._check_options(request)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "training_file": request.training_file,
            "batch_size": request.batch_size if request.batch_size != "auto" else "max",
        }
        if request.validation_file:
            kwargs["validation_file"] = request.validation_file
            kwargs["n_evals"] = _n_evals(request)
        if request.n_epochs != "auto":
            kwargs["n_epochs"] = request.n_epochs
        if request.suffix is not None:
            kwargs["suffix"] = request.suffix
        if request.seed is not None:
            kwargs["random_seed"] = request.seed
        opts = dict(request.provider_options)
        if request.method == "dpo":
            kwargs["training_method"] = "dpo"
            if isinstance(request.beta, float | int):
                kwargs["dpo_beta"] = float(request.beta)
        else:
            kwargs["training_method"] = "sft"
            kwargs["train_on_inputs"] = opts.pop("train_on_inputs", "auto")
        for integ in request.integrations:
            if integ.get("type") != "wandb":
                raise UsageError("Together AI takes only the wandb integration")
            wb = integ.get("wandb") or {}
            kwargs["wandb_project_name"] = wb.get("project")
            for src, dst in (("name", "wandb_name"), ("entity", "wandb_entity")):
                if wb.get(src):
                    kwargs[dst] = wb[src]
        kwargs.update(opts)
        return kwargs

    def create_job(self, request: JobRequest) -> JobInfo:
        """Create a fine-tuning job (``/fine-tunes``); see the module docs for the mapping.

        The request is sent once (the SDK's retries are off for it): after a dropped
        connection the job may exist, and only :class:`~finetune_qa.jobs.FineTuneJob`,
        which looks for it first, should try again.
        """
        kwargs = self._request_kwargs(request)
        if request.integrations:
            key = self._wandb_api_key or os.environ.get("WANDB_API_KEY")
            if not key:
                raise UsageError(
                    "a wandb integration needs a Weights & Biases key: pass "
                    "TogetherBackend(wandb_api_key=...) or set WANDB_API_KEY"
                )
            protect_secrets(key, loggers=("together",))
            kwargs["wandb_api_key"] = key
        kwargs["model_limits"] = self._sdk_limits(request.model)[1]
        with map_together_errors(
            str(getattr(self.client, "api_key", "") or ""), str(kwargs.get("wandb_api_key") or "")
        ):
            return _job_info(self._writer().fine_tuning.create(**kwargs))

    def matches_request(self, job: JobInfo, request: JobRequest) -> bool:
        """Whether ``job`` could be the one ``request`` created, judged by what Together echoes.

        Together jobs carry no metadata, so after a lost answer the job is recognised by
        its settings: the epochs, evaluations, checkpoints, learning rate and schedule,
        seed, batch size (unless ``"max"``), training method (DPO beta, train_on_inputs
        unless ``"auto"``), LoRA or full training and its rank, alpha and dropout. A field
        Together did not echo is not compared, nor one it may resolve (``"max"``,
        ``"auto"``, the LoRA modules): a false mismatch would send the request again. The
        SDK's defaults count as sent. The model, files and
        suffix are compared by :class:`~finetune_qa.jobs.FineTuneJob` itself.
        """
        raw = job.raw
        sent = {
            "n_epochs": 1,
            "n_checkpoints": 1,
            "learning_rate": 1e-5,
            "warmup_ratio": 0.0,
            "max_grad_norm": 1.0,
            "weight_decay": 0.0,
            **self._request_kwargs(request),
            "n_evals": _n_evals(request),
        }
        pairs: list[tuple[Any, Any]] = [
            (sent[k], raw[k])
            for k in _ECHOED
            if k in sent and raw.get(k) is not None and raw.get(k) != ""
        ]
        if sent["batch_size"] != "max" and raw.get("batch_size") is not None:
            pairs.append((sent["batch_size"], raw["batch_size"]))
        method = raw.get("training_method")
        if isinstance(method, dict):
            for ours, theirs in (
                ("training_method", "method"),
                ("dpo_beta", "dpo_beta"),
                ("train_on_inputs", "train_on_inputs"),
                ("rpo_alpha", "rpo_alpha"),
                ("simpo_gamma", "simpo_gamma"),
            ):
                # "auto" may come back resolved: compare only what was asked for exactly
                if ours in sent and sent[ours] != "auto" and method.get(theirs) is not None:
                    pairs.append((sent[ours], method[theirs]))
        ttype = raw.get("training_type")
        wanted = self._training_type(request)
        if isinstance(ttype, dict) and wanted is not None:
            for k, v in wanted.items():
                echoed = ttype.get(k)
                # the module list may come back expanded from "all-linear"
                if echoed is not None and k != "lora_trainable_modules":
                    # Together spells the type "Lora" or "LoRA"
                    pairs.append((v.lower(), str(echoed).lower()) if k == "type" else (v, echoed))
        sched = raw.get("lr_scheduler")
        if (
            isinstance(sched, dict)
            and "lr_scheduler_type" in sent
            and sched.get("lr_scheduler_type") is not None
        ):
            pairs.append((sent["lr_scheduler_type"], sched["lr_scheduler_type"]))
        return all(_same_value(a, b) for a, b in pairs)

    def retrieve_job(self, job_id: str) -> JobInfo:
        """The job's current state."""
        with self._errors():
            return _job_info(self.client.fine_tuning.retrieve(job_id))

    def list_jobs(
        self, *, limit: int = 20, metadata: Mapping[str, str] | None = None
    ) -> list[JobInfo]:
        """Jobs, newest first.

        Raises:
            UsageError: ``metadata`` was given: Together jobs carry none, so they cannot be
                filtered by it.
        """
        if metadata:
            raise UsageError(
                "Together AI jobs carry no metadata, so list_jobs cannot filter by it; "
                "call list_jobs() without metadata= and filter the JobInfo list yourself"
            )
        with self._errors():
            jobs = [_job_info(j) for j in self.client.fine_tuning.list().data]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    def cancel_job(self, job_id: str) -> JobInfo:
        """Ask Together to cancel the job.

        The job shows ``cancel_requested`` at once, mapped to ``running`` (it may still
        train) until Together reports ``cancelled``.
        """
        with self._errors():
            return _job_info(self.client.fine_tuning.cancel(job_id))

    def pause_job(self, job_id: str) -> JobInfo:
        """Together AI cannot pause jobs.

        Raises:
            UsageError: always.
        """
        raise UsageError(
            f"Together AI jobs cannot be paused ({job_id}); cancel it or let it finish"
        )

    def resume_job(self, job_id: str) -> JobInfo:
        """Together AI cannot pause, so nothing can be resumed.

        Raises:
            UsageError: always.
        """
        raise UsageError(
            f"Together AI jobs cannot be paused or resumed ({job_id}); cancel it or let it finish"
        )

    def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> Sequence[JobEvent]:
        """One page of events, newest first; ``after`` is an event id (older than it).

        Together returns a job's events oldest first and without ids; an event's id is
        its position in that list (``<job id>:event:<n>``), stable as events are added.
        Its Together type, step and totals are in ``data``.
        """
        with self._errors():
            rows = list(self.client.fine_tuning.list_events(job_id).data)
        events = [_event(job_id, i, e) for i, e in enumerate(rows)]
        end = len(events)
        if after is not None:
            try:
                end = int(after.rsplit(":", 1)[1])
            except (IndexError, ValueError):
                raise UsageError(f"{after!r} is not an event id of this backend") from None
        page = events[:end][::-1]
        return page[:limit]

    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Checkpoints, newest first; the final one included."""
        with self._errors():
            rows = [_dump(c) for c in self.client.fine_tuning.list_checkpoints(job_id).data]
        out = [
            Checkpoint(
                id=f"{job_id}:{c['step']}:{c.get('checkpoint') or c.get('checkpoint_type')}",
                created_at=_unix(c.get("created_at")) or 0,
                fine_tuned_model_checkpoint=c.get("object_name") or f"{job_id}:{c['step']}",
                step_number=int(c["step"]),
                metrics={"checkpoint_type": c.get("checkpoint_type"), "path": c.get("path")},
            )
            for c in rows
        ]
        out.sort(key=lambda c: (c.step_number, c.created_at), reverse=True)
        return out

    def training_metrics(self, job_id: str) -> list[dict[str, float | None]]:
        """Per-step metrics from ``/fine-tunes/{id}/metrics``, oldest first.

        Each row has ``step``, ``train_loss`` and ``valid_loss`` (None when that row does
        not hold it), read from Together's ``train/global_step``, ``train/loss``,
        ``eval/loss`` (and ``eval/global_step``).
        """
        with self._errors():
            rows = self.client.fine_tuning.list_metrics(job_id).metrics or []
        out: list[dict[str, float | None]] = []
        for r in rows:
            step = r.get("train/global_step", r.get("eval/global_step", r.get("global_step")))
            if step is None:
                continue
            out.append(
                {
                    "step": float(step),
                    "train_loss": r.get("train/loss"),
                    "valid_loss": r.get("eval/loss"),
                }
            )
        return out

    # -- chat
    def chat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion (Together's chat API is OpenAI-compatible)."""
        with self._errors():
            raw = self.client.chat.completions.with_raw_response.create(**_chat_kwargs(request))
            completion = raw.parse()
        return _chat_response(completion, raw.headers.get("x-request-id"))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """One chat completion on the async client (or the sync one in a thread)."""
        client = self._async_client()
        if client is None:
            return await asyncio.to_thread(self.chat, request)
        with self._errors():
            raw = await client.chat.completions.with_raw_response.create(**_chat_kwargs(request))
            completion = await raw.parse()
        return _chat_response(completion, raw.headers.get("x-request-id"))


_ECHOED = (
    "n_epochs",
    "n_evals",
    "n_checkpoints",
    "random_seed",
    "learning_rate",
    "warmup_ratio",
    "max_grad_norm",
    "weight_decay",
    "max_seq_length",
    "gradient_accumulation_steps",
    "packing",
    "wandb_project_name",
)
"""Job fields Together echoes back as they were sent (compared by ``matches_request``)."""


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return bool(a == b)


def _upload_name(filename: str) -> str:
    name = Path(filename).name or "data.jsonl"
    return name if name.endswith((".jsonl", ".parquet", ".csv")) else name + ".jsonl"


def _check_lengths(path: Path, limit: int, model: str, method: str) -> None:
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


def _catalogue_price(request: JobRequest, path: Path, reason: str) -> PriceEstimate:
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
