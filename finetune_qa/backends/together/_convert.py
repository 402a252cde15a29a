"""Together's SDK objects as finetune_qa's types, and a chat request as the SDK's arguments.

Jobs (statuses mapped onto OpenAI's names), files, model limits, events and chat
completions (Together's ``{token: logprob}`` alternatives as OpenAI's list) become
:mod:`finetune_qa.backends.base` types.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, cast

from finetune_qa.backends.base import (
    ChatRequest,
    ChatResponse,
    FileInfo,
    JobEvent,
    JobInfo,
    JobStatus,
    Usage,
)
from finetune_qa.backends.together._limits import ModelLimits

__all__ = [
    "chat_kwargs",
    "chat_response",
    "dump",
    "file_info",
    "job_event",
    "job_info",
    "limits_of",
    "unix",
]

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


def dump(obj: Any) -> dict[str, Any]:
    """An SDK object (or a dict) as a plain JSON-ready dict, by its API field names."""
    if isinstance(obj, dict):
        return dict(obj)
    return cast(dict[str, Any], obj.model_dump(mode="json", by_alias=True))


def unix(value: Any) -> int | None:
    """Unix seconds from a number or an ISO 8601 time (naive: UTC); None when unreadable."""
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


def job_info(obj: Any) -> JobInfo:
    """A Together job as :class:`JobInfo`, its status mapped and the original kept."""
    raw = dump(obj)
    status = str(raw.get("status") or "pending")
    mapped = _STATUS.get(status, "running")
    updated = unix(raw.get("updated_at"))
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
        created_at=unix(raw.get("created_at")) or 0,
        finished_at=updated if mapped in ("succeeded", "failed", "cancelled") else None,
        trained_tokens=raw.get("token_count"),
        error_code=status if mapped == "failed" else None,
        error_message=error_message
        or (f"Together AI reports {status}" if mapped == "failed" else None),
        metadata={},
        estimated_finish=estimated,
        raw=raw,
    )


def file_info(obj: Any) -> FileInfo:
    """A Together file as :class:`FileInfo`."""
    raw = dump(obj)
    return FileInfo(
        id=raw["id"],
        filename=raw.get("filename") or "",
        bytes=int(raw.get("bytes") or 0),
        purpose=raw.get("purpose") or "fine-tune",
        created_at=unix(raw.get("created_at")) or 0,
        status=raw.get("processing_status"),
    )


def limits_of(obj: Any) -> ModelLimits:
    """Together's ``/fine-tunes/models/limits`` record as :class:`ModelLimits`."""
    raw = dump(obj)
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


def chat_kwargs(request: ChatRequest) -> dict[str, Any]:
    """The SDK's ``chat.completions.create`` arguments for ``request``."""
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


def chat_response(completion: Any, request_id: str | None = None) -> ChatResponse:
    """A Together chat completion as :class:`ChatResponse` (``eos`` read as ``stop``)."""
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


def job_event(job_id: str, index: int, obj: Any) -> JobEvent:
    """The ``index``-th event of a job (oldest first) as :class:`JobEvent`, ids by position."""
    raw = dump(obj)
    data = {
        k: raw[k]
        for k in ("type", "step", "total_steps", "token_count", "param_count", "wandb_url")
        if raw.get(k) is not None
    }
    return JobEvent(
        id=f"{job_id}:event:{index}",
        created_at=unix(raw.get("created_at")) or 0,
        level=_LEVELS.get(str(raw.get("level") or "info"), "info"),
        message=str(raw.get("message") or raw.get("type") or ""),
        type="message",
        data=data or None,
    )
