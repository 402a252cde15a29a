"""Instruction following for the offline backend's base models.

A real base model follows the instructions it is given: write QA pairs from a page,
rephrase a question, grade an answer. The offline backend's base models recognise the
prompts this library sends for those tasks and carry them out deterministically, so
the whole chain (Markdown -> QA pairs -> dataset -> job -> evaluation -> guardrails)
runs without a key. Any other prompt gets the generic answer.

Each task lives in its own module and exposes ``answer(messages, variant)``, which
returns the reply text, or ``None`` when the prompt is not its task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from finetune_qa.backends._fake._fake_eval import answer as _answer_eval
from finetune_qa.backends._fake._fake_generate import answer as _answer_generate
from finetune_qa.backends._fake._fake_rephrase import answer as _answer_rephrase

__all__ = ["answer_task"]

TaskHandler = Callable[[Sequence[Mapping[str, Any]], int], "str | None"]

_HANDLERS: tuple[TaskHandler, ...] = (_answer_generate, _answer_eval, _answer_rephrase)


def answer_task(messages: Sequence[Mapping[str, Any]], variant: int = 0) -> str | None:
    """The reply of a base model to one of the library's task prompts, or None."""
    for handler in _HANDLERS:
        reply = handler(messages, variant)
        if reply is not None:
            return reply
    return None
