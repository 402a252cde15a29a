"""How a suite asks: without the stop marker (cut here instead), counting progress."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from finetune_qa.chat import Answer, BatchItem, ChatModel
from finetune_qa.evaluation._scorers import Answering, Scorer
from finetune_qa.exceptions import UsageError


class _MarkerProbe(ChatModel):
    """A copy of a ChatModel that does not send its stop marker and cuts at it itself.

    The API, sent ``stop``, removes the marker and reports ``finish_reason == "stop"``
    whether the model wrote the marker or just ended; unsent, the marker stays in the text,
    so this copy can tell. ``stopped_at_marker`` of its answers says whether it was there.
    """

    def __init__(self, chat: ChatModel) -> None:
        super().__init__(
            chat.model,
            backend=chat.backend,
            system_prompt=chat.system_prompt,
            stop=None,
            temperature=chat.temperature,
            max_tokens=chat.max_tokens,
            seed=chat.seed,
            logprobs=chat.logprobs,
            top_logprobs=chat.top_logprobs,
            retries=chat.retries,
            not_found_retries=chat.not_found_retries,
            backoff=chat.backoff,
            sleep=getattr(chat, "_sleep", None),
            concurrency=chat.concurrency,
            card=False,  # a probe of ``chat``, marker unsent on purpose: nothing to warn about
        )
        self.card = chat.card
        self.markers = chat.stop

    def _cut(self, answer: Answer) -> Answer:
        text = answer.text
        cut = min((i for i in (text.find(m) for m in self.markers) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut].strip()
        return answer.model_copy(update={"text": text, "stopped_at_marker": cut >= 0})

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """:meth:`ChatModel.ask`, the marker unsent, cut here."""
        return self._cut(super().ask(question, **kwargs))

    async def aask(self, question: str, **kwargs: Any) -> Answer:
        """:meth:`ChatModel.aask`, the marker unsent, cut here."""
        return self._cut(await super().aask(question, **kwargs))


def _probing(chat: Answering) -> Answering | None:
    """``chat`` asking through a :class:`_MarkerProbe`, or None when that is not possible.

    Possible for a ChatModel with a stop marker, and for a wrapper holding one as
    ``.chat`` (a GuardedChatModel): a shallow copy of the wrapper with the probe inside.
    """
    if isinstance(chat, ChatModel):
        return _MarkerProbe(chat) if chat.stop else None
    inner = getattr(chat, "chat", None)
    if isinstance(inner, ChatModel) and inner.stop:
        wrapper = copy.copy(chat)
        wrapper.chat = _MarkerProbe(inner)  # type: ignore[attr-defined]
        return wrapper
    return None


class _Progress:
    """Counts completed requests and reports ``(done, total)``; usable as ``on_result``."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def __call__(self, item: BatchItem) -> None:
        self.skip()

    def skip(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _own_concurrency(chat: Answering) -> int | None:
    value = getattr(chat, "concurrency", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _checked(scorer: Scorer, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UsageError(f"scorer {scorer.name!r} returned {value!r}; return a number or None")
    return float(value)
