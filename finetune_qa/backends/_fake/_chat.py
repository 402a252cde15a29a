"""Chat completions: request options, cutting at stop strings, log probabilities, SSE streams."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from finetune_qa._text import key_hash, last_user_text
from finetune_qa.backends._fake._answers import Answer, Answerer, generic_answer
from finetune_qa.backends._fake._http import _bad, _dumps
from finetune_qa.backends._fake._params import _is_int, _is_num
from finetune_qa.backends._fake._records import _unit
from finetune_qa.backends._fake._tasks import answer_task
from finetune_qa.tokens import TokenCounter


@dataclass(frozen=True)
class _ChatOptions:
    temperature: float
    seed: int | None
    stop: tuple[str, ...]
    max_tokens: int | None
    logprobs: bool
    top_logprobs: int

    stream: bool = False
    include_usage: bool = False

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> _ChatOptions:
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _bad("'stream' must be a boolean.", "stream")
        stream_options = body.get("stream_options")
        if stream_options is not None and (not stream or not isinstance(stream_options, dict)):
            raise _bad("'stream_options' is only allowed with 'stream': true.", "stream_options")
        n = body.get("n")
        if n not in (None, 1):
            raise _bad("The offline backend answers with one choice only (n=1).", "n")
        temperature = body.get("temperature")
        if temperature is None:
            temperature = 1.0
        if not _is_num(temperature) or not 0 <= temperature <= 2:
            raise _bad("'temperature' must be a number from 0 to 2.", "temperature")
        stop = body.get("stop")
        stops: tuple[str, ...]
        if stop is None:
            stops = ()
        elif isinstance(stop, str):
            stops = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
            stops = tuple(stop)
        else:
            raise _bad("'stop' must be a string or a list of up to 4 strings.", "stop")
        max_tokens = body.get("max_completion_tokens")
        name = "max_completion_tokens"
        if max_tokens is None:
            max_tokens, name = body.get("max_tokens"), "max_tokens"
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            raise _bad(f"'{name}' must be a positive integer.", name)
        logprobs = bool(body.get("logprobs"))
        top = body.get("top_logprobs")
        if top is not None:
            if not _is_int(top) or not 0 <= top <= 20:
                raise _bad("'top_logprobs' must be an integer from 0 to 20.", "top_logprobs")
            if not logprobs:
                raise _bad("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs")
        seed = body.get("seed")
        return cls(
            temperature=float(temperature),
            seed=seed if _is_int(seed) else None,
            stop=stops,
            max_tokens=max_tokens,
            logprobs=logprobs,
            top_logprobs=top or 0,
            stream=bool(stream),
            include_usage=bool((stream_options or {}).get("include_usage")),
        )


class _EventStream(bytes):
    """A handler's result sent as server-sent events (``text/event-stream``)."""


def _event_stream(completion: dict[str, Any], include_usage: bool) -> _EventStream:
    """A chat completion as the API streams it: role, content pieces, finish, usage, [DONE].

    Content arrives word by word (with its spacing); with ``logprobs`` it arrives in one
    piece carrying them. With ``include_usage`` a last chunk has no choices and the usage.
    """
    choice = completion["choices"][0]
    text: str = choice["message"]["content"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        body = {
            **base,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
        }
        return b"data: " + _dumps(body) + b"\n\n"

    parts = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if choice["logprobs"] is not None:
        parts.append(chunk({"content": text}, logprobs=choice["logprobs"]))
    else:
        parts.extend(chunk({"content": piece}) for piece in re.findall(r"\s*\S+\s*", text))
    parts.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        usage = {**base, "choices": [], "usage": completion["usage"]}
        parts.append(b"data: " + _dumps(usage) + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return _EventStream(b"".join(parts))


def _generate(
    full: str, stops: tuple[str, ...], max_tokens: int | None, counter: TokenCounter
) -> tuple[str, Literal["stop", "length"], list[int]]:
    """Cut ``full`` where a model would stop: the first stop string, or ``max_tokens``."""
    cut = len(full)
    for s in stops:
        i = full.find(s) if s else -1
        if 0 <= i < cut:
            cut = i
    text = full[:cut]
    ids = counter.encoding.encode_ordinary(text)
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        return counter.encoding.decode(ids), "length", ids
    return text, "stop", ids


_MIN_LOGPROB = -9999.0  # what OpenAI reports for a token with (numerically) no chance


def _ln(p: float) -> float:
    return math.log(p) if p > 0 else _MIN_LOGPROB


def _token_entry(raw: bytes, logprob: float) -> dict[str, Any]:
    return {"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": logprob}


def _label_tops(enc: Any, ans: Answer) -> dict[int, float]:
    """First token of each label -> log probability (labels sharing a token add up)."""
    mass: dict[int, float] = {}
    for label, p in ans.probabilities:
        ids = enc.encode_ordinary(label)
        if ids:
            mass[ids[0]] = mass.get(ids[0], 0.0) + p
    return {tid: _ln(p) for tid, p in mass.items()}


def _logprobs(counter: TokenCounter, ids: list[int], ans: Answer, top: int) -> list[dict[str, Any]]:
    """Deterministic per-token log probabilities: confident on trained answers, less elsewhere.

    A classifier's label (kind ``label``) gets the log of its probability on its first
    token, and its top alternatives are the other labels with theirs, so a client can
    read calibrated class probabilities off ``top_logprobs``; the label's later tokens
    are near-certain.
    """
    enc = counter.encoding
    spread = {"exact": 0.01, "neighbour": 0.2}.get(ans.kind, 1.5)
    offset = 0.0 if ans.kind in ("exact", "neighbour") else 0.3
    labels = _label_tops(enc, ans) if ans.kind == "label" else {}
    out = []
    for k, tid in enumerate(ids):
        raw = enc.decode_single_token_bytes(tid)
        if labels:
            lp = labels.get(tid, _MIN_LOGPROB) if k == 0 else -1e-4 * (1 + _unit(ans.text, k))
            entry = _token_entry(raw, lp)
            tops = [dict(entry)]
            if k == 0:
                others = sorted((v, t) for t, v in labels.items() if t != tid)
                tops += [_token_entry(enc.decode_single_token_bytes(t), v) for v, t in others[::-1]]
            floor = min(e["logprob"] for e in tops)
            lp = min(lp, floor)  # filler alternatives rank below every label
        else:
            lp = -(offset + spread * _unit(ans.kind, ans.text, k))
            entry = _token_entry(raw, lp)
            tops = [dict(entry)]
        seen = {bytes(e["bytes"]) for e in tops}
        alt = tid
        while len(tops) < top:
            alt += 1
            try:
                alt_raw = enc.decode_single_token_bytes(alt)
            except KeyError:
                if alt > tid + 1000:
                    break
                continue
            if alt_raw in seen:
                continue
            tops.append(
                {
                    "token": alt_raw.decode("utf-8", "replace"),
                    "bytes": list(alt_raw),
                    "logprob": lp - 1.5 - len(tops) - _unit(alt, k),
                }
            )
        out.append({**entry, "top_logprobs": tops[:top]})
    return out


def _chat_request(body: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The model and messages of a chat request, checked as OpenAI checks them."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("Missing required parameter: 'model'.", "model")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise _bad("'messages' must be a non-empty list of messages.", "messages")
    return model, messages


def _reply(answerer: Answerer | None, messages: list[dict[str, Any]], opts: _ChatOptions) -> Answer:
    """What the model says: a fine-tune's answerer, else a task's reply or the generic one.

    At temperature 0 the reply is always the same; above it, it varies with the seed and
    the messages.
    """
    question = last_user_text(messages)
    variant = 0
    if opts.temperature > 0:
        key = orjson.dumps([opts.seed, messages], option=orjson.OPT_SORT_KEYS)
        variant = key_hash(key.decode("utf-8"))
    if answerer is not None:
        return answerer.answer(question, variant=variant)
    task = answer_task(messages, variant)
    if task is not None:
        return Answer(task, "task")
    return Answer(generic_answer(question, variant=variant), "generic")


def _completion(
    completion_id: str,
    created: int,
    served: str,
    ans: Answer,
    messages: list[dict[str, Any]],
    opts: _ChatOptions,
    counter: TokenCounter,
) -> dict[str, Any] | _EventStream:
    """The chat completion object (or its event stream) for the answer ``ans``."""
    text, finish, ids = _generate(ans.text, opts.stop, opts.max_tokens, counter)
    prompt_tokens = counter.count_messages(messages)
    logprobs = None
    if opts.logprobs:
        logprobs = {
            "content": _logprobs(counter, ids, ans, opts.top_logprobs),
            "refusal": None,
        }
    completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": served,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": logprobs,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(ids),
            "total_tokens": prompt_tokens + len(ids),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_offline",
    }
    if opts.stream:
        return _event_stream(completion, opts.include_usage)
    return completion
