"""Offline base-model behaviour for the library's evaluation prompts (see _tasks).

:mod:`finetune_qa.evaluation` sends two task prompts to a base model, each recognised
here by a distinctive phrase in its system message (the phrases are duplicated from
``evaluation.py``, because backends sit below it; a test keeps the copies equal):

* **paraphrase**: "rephrase test questions for a chatbot evaluation". The user message
  holds ``Rephrasings wanted: N`` and ``Question: ...``; the reply is a numbered list of
  N rephrasings (``1. ...``), one per line. They keep the question's content words and
  change its phrasing (an opening rewritten, a polite frame around it), chosen by a
  stable hash of the question, so a fine-tune's nearest-neighbour lookup still finds the
  question they came from, most of the time, as it would for a real model's rephrasings.
* **judge**: "grade answers for a chatbot evaluation". The user message holds
  ``<question>``, ``<reference>`` and ``<candidate>`` sections; the reply is one JSON
  object ``{"score": 1-5, "reason": "..."}``, the score ``1 + round(4 * F1)`` of the
  token overlap between candidate and reference (the SQuAD token F1 of
  ``evaluation.token_f1``, both built on :mod:`finetune_qa._text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from finetune_qa._text import answer_words, key_hash, last_user_text, overlap_f1, question_key

__all__ = ["JUDGE_TASK_PHRASE", "PARAPHRASE_TASK_PHRASE", "answer"]

PARAPHRASE_TASK_PHRASE = "rephrase test questions for a chatbot evaluation"
"""Identifies the paraphrase prompt; equal to ``evaluation.PARAPHRASE_TASK_PHRASE``."""

JUDGE_TASK_PHRASE = "grade answers for a chatbot evaluation"
"""Identifies the judge prompt; equal to ``evaluation.JUDGE_TASK_PHRASE``."""

_WANTED = re.compile(r"Rephrasings wanted:\s*([0-9]{1,3})", re.IGNORECASE)
_QUESTION = re.compile(r"Question:\s*(.+)", re.IGNORECASE | re.DOTALL)

# Openings rewritten into another way of asking the same thing: function words only, so
# the content words (what the fine-tune's lookup keys on) stay.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^how do i (.+)$", re.IGNORECASE), r"How can I \1"),
    (re.compile(r"^how can i (.+)$", re.IGNORECASE), r"How do I \1"),
    (re.compile(r"^is there (.+)$", re.IGNORECASE), r"Do you have \1"),
    (re.compile(r"^can i (.+)$", re.IGNORECASE), r"Could I \1"),
    (re.compile(r"^what is (.+)$", re.IGNORECASE), r"What exactly is \1"),
    (re.compile(r"^do you (.+)$", re.IGNORECASE), r"Do you happen to \1"),
    (re.compile(r"^how much does (.+) cost$", re.IGNORECASE), r"What is the price of \1"),
)

# A real rephrasing also swaps a word for a synonym now and then, which is what makes a
# fine-tune that memorised its questions miss some rephrasings.
_SYNONYMS = {
    "cost": "come to",
    "price": "cost",
    "prices": "rates",
    "make": "build",
    "makes": "builds",
    "cancel": "end",
    "subscription": "membership",
    "plan": "tier",
    "devices": "gadgets",
    "refund": "reimbursement",
    "support": "customer service",
    "invoice": "receipt",
    "data": "information",
    "encrypted": "secured",
    "yearly": "annually",
    "accept": "take",
    "downgrade": "switch to a cheaper plan",
    "notes": "documents",
    "reset": "recover",
    "page": "website",
}
_SYNONYM_RE = re.compile(r"\b(" + "|".join(sorted(_SYNONYMS, key=len, reverse=True)) + r")\b")

# Frames around the (possibly rewritten) question: {low} starts lower case, {cap} upper.
_TEMPLATES = (
    "Could you tell me {low}?",
    "{cap}, please?",
    "Can you explain {low}?",
    "I would like to know {low}.",
    "Quick question: {low}?",
    "{cap}? Thanks!",
)

_OPENERS = frozenset(
    """
    what how is are can could do does did which who where when why will would should may
    tell am was were has have
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def answer(messages: Sequence[Mapping[str, Any]], variant: int = 0) -> str | None:
    """The reply to an evaluation prompt, or None when ``messages`` is not one."""
    instructions = " ".join(
        str(m.get("content", ""))
        for m in messages
        if m.get("role") in ("system", "developer") and isinstance(m.get("content"), str)
    )
    if PARAPHRASE_TASK_PHRASE in instructions:
        return _paraphrase_reply(last_user_text(messages), variant)
    if JUDGE_TASK_PHRASE in instructions:
        return _judge_reply(last_user_text(messages))
    return None


# ----------------------------------------------------------------------------- paraphrase


def paraphrases(question: str, n: int, variant: int = 0) -> list[str]:
    """Up to ``n`` distinct rephrasings of ``question`` (fewer if the frames run out)."""
    core = " ".join(question.split()).rstrip(" ?!.")
    rewritten = core
    for pattern, repl in _REWRITES:
        if pattern.match(core):
            rewritten = pattern.sub(repl, core)
            break
    h = key_hash(question_key(question)) + variant
    seen = {question_key(question)}
    out: list[str] = []
    candidates = [rewritten, core] if (h >> 7) % 2 == 0 else [core, rewritten]
    for k in range(2 * len(_TEMPLATES)):
        base = candidates[(k // len(_TEMPLATES)) % 2]
        template = _TEMPLATES[(h + k) % len(_TEMPLATES)]
        if (h >> (11 + k)) % 3 == 0:  # about one rephrasing in three swaps a word
            base = _SYNONYM_RE.sub(lambda m: _SYNONYMS[m.group(1)], base, count=1)
        text = template.format(low=_lower_first(base), cap=base[:1].upper() + base[1:])
        key = question_key(text)
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) >= n:
            break
    return out


def _lower_first(text: str) -> str:
    first, _, rest = text.partition(" ")
    if first.casefold() in _OPENERS:
        first = first.lower()
    return f"{first} {rest}" if rest else first


def _paraphrase_reply(user: str, variant: int) -> str:
    wanted = _WANTED.search(user)
    found = _QUESTION.search(user)
    if found is None or not found.group(1).strip():
        return "Please give me a question to rephrase."
    n = max(1, min(int(wanted.group(1)), 20)) if wanted else 1
    items = paraphrases(found.group(1).strip(), n, variant)
    return "\n".join(f"{i}. {text}" for i, text in enumerate(items, 1))


# ---------------------------------------------------------------------------------- judge


def _section(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.rfind(f"</{tag}>")
    if start < 0 or end < start:
        return None
    return text[start + len(tag) + 2 : end].strip()


def _judge_reply(user: str) -> str:
    reference = _section(user, "reference")
    candidate = _section(user, "candidate")
    if reference is None or candidate is None:
        return "I need a reference answer and a candidate answer to grade."
    f1 = overlap_f1(answer_words(candidate), answer_words(reference))
    score = 1 + round(4 * f1)
    reason = f"Token overlap with the reference answer: F1 {f1:.2f}."
    return json.dumps({"score": score, "reason": reason})
