"""The LLM judge: any chat model grades an answer against its reference, 1-5."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.chat import Answer, BatchItem, ChatModel
from finetune_qa.evaluation._banks import JUDGE_PROMPT
from finetune_qa.evaluation._scorers import EvalCase
from finetune_qa.exceptions import UsageError


class JudgeGrade(BaseModel):
    """The judge's verdict on one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "unparsed", "error"] = Field(
        description="ok; unparsed (the reply held no 1-5 score); error (the request failed)."
    )
    score: float | None = Field(default=None, description="The 1-5 score, when parsed.")
    reason: str | None = Field(default=None, description="The judge's reason, when given.")
    reply: str | None = Field(default=None, description="The judge's raw reply.")
    error: str | None = Field(default=None, description="The request's error, if it failed.")

    @property
    def normalized(self) -> float | None:
        """The score mapped to 0-1 (1 -> 0.0, 5 -> 1.0), or None."""
        return None if self.score is None else (self.score - 1.0) / 4.0


_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_SCORE_FIELD = re.compile(r"""["']?score["']?\s*[:=]\s*["']?([0-9](?:\.[0-9]+)?)""", re.I)


def _score_value(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and 1 <= value <= 5:
        return float(value)
    return None


def _parse_judge_reply(text: str) -> tuple[float, str | None] | None:
    """``(score, reason)`` from a judge's reply, however it is wrapped; None if absent."""
    body = _FENCE.sub(" ", text)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", body):
        try:
            obj, _ = decoder.raw_decode(body, match.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            score = _score_value(obj["score"])
            if score is not None:
                reason = obj.get("reason")
                return score, str(reason) if reason is not None else None
    found = _SCORE_FIELD.search(body)
    if found is not None:
        score = _score_value(found.group(1))
        if score is not None:
            return score, None
    bare = _score_value(body.strip().rstrip("."))
    return (bare, None) if bare is not None else None


def _task_model(chat: ChatModel, system_prompt: str, max_tokens: int | None) -> ChatModel:
    """``chat``'s model and settings with a task's system prompt and no stop marker."""
    return chat.with_options(
        system_prompt=system_prompt,
        stop=None,
        max_tokens=max_tokens,
        logprobs=False,
        top_logprobs=None,
        card=False,  # a task of its own: the model's training prompt does not apply
    )


class JudgeScorer:
    """An LLM judge: any chat model grades each answer against its reference, 1-5.

    The judge gets :data:`JUDGE_PROMPT` as its system prompt (the model's own system
    prompt and stop marker are not used) and the question, reference and candidate
    answer, and replies with JSON. A reply without a 1-5 score is counted as
    ``unparsed``, a failed request as ``error``; neither stops the run. The score is
    reported mapped to 0-1 (:attr:`JudgeGrade.normalized`), the raw 1-5 per case.

    Args:
        chat: the judge model (a capable base model, not the fine-tune under test).
        prompt: the system prompt (default :data:`JUDGE_PROMPT`).
        name: the score's name.
        max_tokens: cap on the judge's reply.

    Example:
        ```python
        judge = JudgeScorer(ChatModel("gpt-4o"))
        result = suite.run(bot, judge=judge)
        print(result.sets["variations"].scores["judge"])
        ```
    """

    def __init__(
        self,
        chat: ChatModel,
        *,
        prompt: str = JUDGE_PROMPT,
        name: str = "judge",
        max_tokens: int | None = 200,
    ) -> None:
        if not isinstance(chat, ChatModel):
            raise UsageError(f"JudgeScorer takes a ChatModel, got {type(chat).__name__}")
        self.name = name
        self.prompt = prompt
        self.chat = _task_model(chat, prompt, max_tokens)

    def __repr__(self) -> str:
        return f"JudgeScorer({self.chat.model!r})"

    @staticmethod
    def message(question: str, reference: str, candidate: str) -> str:
        """The user message sent for one grading."""
        return (
            f"<question>\n{question}\n</question>\n<reference>\n{reference}\n</reference>\n"
            f"<candidate>\n{candidate}\n</candidate>"
        )

    def grade(self, question: str, reference: str, candidate: str) -> JudgeGrade:
        """Grade one answer (one request)."""
        return self.grade_many([(question, reference, candidate)], concurrency=1)[0]

    def grade_many(
        self,
        items: Sequence[tuple[str, str, str]],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[JudgeGrade]:
        """Grade many ``(question, reference, candidate)`` triples, ``concurrency`` at a time."""
        messages = [self.message(*item) for item in items]
        batch = self.chat.ask_many(messages, concurrency=concurrency, on_result=on_result)
        return [_grade_of(b) for b in batch]

    async def agrade_many(
        self,
        items: Sequence[tuple[str, str, str]],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[JudgeGrade]:
        """Async twin of :meth:`grade_many`."""
        messages = [self.message(*item) for item in items]
        batch = await self.chat.aask_many(messages, concurrency=concurrency, on_result=on_result)
        return [_grade_of(b) for b in batch]

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """The normalized grade of one answer (one request); None without a reference."""
        if case.reference is None:
            return None
        return self.grade(case.question, case.reference, answer.text).normalized


def _grade_of(item: BatchItem) -> JudgeGrade:
    if item.answer is None:
        return JudgeGrade(status="error", error=item.error)
    reply = item.answer.text
    parsed = _parse_judge_reply(reply)
    if parsed is None:
        return JudgeGrade(status="unparsed", reply=reply)
    return JudgeGrade(status="ok", score=parsed[0], reason=parsed[1], reply=reply)
