"""Rephrasings of a suite's questions: the cache that keeps them, the parser of replies."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from finetune_qa._text import question_key
from finetune_qa.chat import ChatModel
from finetune_qa.evaluation._files import _lines, _write_atomic
from finetune_qa.evaluation._judge import _FENCE, _task_model
from finetune_qa.evaluation._metrics import is_refusal


def _load_cache(path: str | os.PathLike[str]) -> dict[tuple[str, str], list[str]]:
    """The variations cache; a missing file is empty, unreadable lines are skipped."""
    out: dict[tuple[str, str], list[str]] = {}
    if not Path(path).exists():
        return out
    for _, raw in _lines(path):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a damaged line costs one request, nothing more
        if not isinstance(obj, dict):
            continue
        model, question, texts = obj.get("model"), obj.get("question"), obj.get("paraphrases")
        if (
            isinstance(model, str)
            and isinstance(question, str)
            and isinstance(texts, list)
            and all(isinstance(t, str) for t in texts)
        ):
            out[(model, question_key(question))] = list(texts)
    return out


def _save_cache(path: str | os.PathLike[str], entries: Mapping[tuple[str, str], list[str]]) -> None:
    lines = [
        orjson.dumps({"model": m, "question": q, "paraphrases": texts}).decode() + "\n"
        for (m, q), texts in sorted(entries.items())
    ]
    _write_atomic(path, "".join(lines))


def _parse_paraphrases(reply: str, question: str) -> list[str]:
    """Rephrasings from a reply: a numbered list, a JSON array, or plain question lines.

    Without numbering only lines that end in ``?`` count, so the chatter around a list
    ("Sure! Here you go.", "Hope this helps!") and a refusal are not taken for questions;
    refusals are left out of a numbered list or an array too.
    """
    from finetune_qa.readers import strip_numbering

    text = _FENCE.sub("", reply).strip()
    items: list[str] = []
    if text.startswith("["):
        with contextlib.suppress(ValueError):
            loaded = json.loads(text)
            if isinstance(loaded, list):
                items = [str(x) for x in loaded if isinstance(x, str)]
    if not items:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        parsed = [strip_numbering(ln) for ln in lines]
        numbered = [t for t, n in parsed if n is not None]
        items = numbered or [t for t, _ in parsed if t.strip().strip('"').endswith("?")]
    out: list[str] = []
    seen = {question_key(question)}
    for item in items:
        clean = item.strip().strip('"').strip()
        key = question_key(clean)
        if key and key not in seen and not is_refusal(clean):
            seen.add(key)
            out.append(clean)
    return out


def _rephrase(
    chat: ChatModel,
    questions: Sequence[str],
    n: int,
    *,
    cache: str | os.PathLike[str] | None,
    concurrency: int | None,
    prompt: str,
    max_tokens: int | None,
) -> tuple[dict[str, list[str]], list[str]]:
    """``n`` rephrasings per question (by its key), from the cache or asked; and the failures."""
    stored = _load_cache(cache) if cache is not None else {}
    found: dict[str, list[str]] = {}
    todo: list[str] = []
    for question in questions:
        hit = stored.get((chat.model, question_key(question)))
        if hit is not None and len(hit) >= n:
            found[question_key(question)] = hit[:n]
        else:
            todo.append(question)
    errors: list[str] = []
    if not todo:
        return found, errors
    task = _task_model(chat, prompt, max_tokens)
    messages = [f"Rephrasings wanted: {n}\nQuestion: {q}" for q in todo]
    for question, item in zip(todo, task.ask_many(messages, concurrency=concurrency), strict=True):
        if item.answer is None:
            errors.append(f"{question}: {item.error}")
            continue
        texts = _parse_paraphrases(item.answer.text, question)
        if not texts:
            reply = " ".join(item.answer.text.split())
            shown = reply if len(reply) <= 120 else reply[:119] + "…"
            errors.append(f"{question}: no rephrasing in the reply {shown!r}")
            continue
        found[question_key(question)] = texts[:n]
        stored[(chat.model, question_key(question))] = texts
    if cache is not None:
        _save_cache(cache, stored)
    return found, errors
