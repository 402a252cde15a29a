"""A ChatModel behind a question gate and an answer gate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic import Field

from finetune_qa.backends.base import Backend, Usage
from finetune_qa.chat import Answer, BatchItem, ChatModel, _check_question, _check_questions
from finetune_qa.exceptions import UsageError
from finetune_qa.guardrails._common import (
    DEFAULT_REFUSAL,
    DEFAULT_TOPIC,
    DEFAULT_WITHHELD,
    GuardOutcome,
)
from finetune_qa.guardrails._discriminator import (
    Discriminator,
)
from finetune_qa.guardrails._verdicts import (
    Verdict,
)


class GuardedAnswer(Answer):
    """An :class:`~finetune_qa.chat.Answer` from a :class:`GuardedChatModel`, with the gates' say.

    ``text`` is the QA model's answer when it passed, else the refusal or the withheld
    reply (a complete reply: ``finish_reason`` ``"stop"``; ``guard`` says what happened).
    ``usage`` and ``latency`` add up every request made for the question (gates
    included); ``model`` is the QA model.
    """

    guard: GuardOutcome = Field(
        description="'passed', 'refused_question' (QA model not asked) or 'withheld_answer'."
    )
    question_verdict: Verdict | None = Field(
        default=None, description="The question gate's verdict, if there is a question gate."
    )
    answer_verdict: Verdict | None = Field(
        default=None, description="The answer gate's verdict, if the answer was checked."
    )
    original_text: str | None = Field(
        default=None, description="The QA model's answer when it was withheld."
    )


class _Pending:
    """One question's way through the gates in a batch."""

    def __init__(self, index: int, question: str) -> None:
        self.index = index
        self.question = question
        self.error: BatchItem | None = None
        self.question_verdict: Verdict | None = None
        self.answer: Answer | None = None
        self.answer_verdict: Verdict | None = None
        self.usage: list[Usage] = []
        self.latency = 0.0

    def record(self, answer: Answer) -> None:
        self.usage.append(answer.usage)
        self.latency += answer.latency


Runner = Callable[[ChatModel, list[str]], list[BatchItem]]
AsyncRunner = Callable[[ChatModel, list[str]], Awaitable[list[BatchItem]]]
Take = Callable[[_Pending, BatchItem], None]
StageWork = tuple[ChatModel, list[_Pending], list[str], Take]


class GuardedChatModel:
    """A :class:`~finetune_qa.chat.ChatModel` behind on-topic gates.

    :meth:`ask` checks the question with ``question_gate`` first (off topic: the refusal,
    and the QA model is not called), asks the QA model, then checks the answer with
    ``answer_gate`` (off topic: the withheld reply). It has ChatModel's call shape
    (``model``, ``backend``, ``stop``, ``ask``/``aask``/``ask_many``/``aask_many``,
    :class:`BatchItem` results holding :class:`GuardedAnswer` s), so batch code and
    evaluation suites run on it unchanged; per-call options (``history``, ``temperature``,
    ...) are the QA model's own settings (use ``ChatModel.with_options`` for others).

    Args:
        chat: the QA model.
        question_gate: a question-gate :class:`Discriminator`, or None.
        answer_gate: an answer-gate :class:`Discriminator`, or None.
        refusal: reply to an off-topic question; ``{topic}`` is filled in.
        withheld: reply instead of an off-topic answer; ``{topic}`` is filled in.
        topic: what the bot is about, for the default replies.
        concurrency: questions in flight at once in :meth:`ask_many` by default
            (default: the QA model's).

    Raises:
        UsageError: a gate of the wrong kind, or a blank reply.
    """

    def __init__(
        self,
        chat: ChatModel,
        *,
        question_gate: Discriminator | None,
        answer_gate: Discriminator | None = None,
        refusal: str = DEFAULT_REFUSAL,
        withheld: str = DEFAULT_WITHHELD,
        topic: str = DEFAULT_TOPIC,
        concurrency: int | None = None,
    ) -> None:
        if question_gate is not None and question_gate.gate != "question":
            raise UsageError(
                "question_gate must be a question-gate Discriminator, "
                f"got a {question_gate.gate} gate"
            )
        if answer_gate is not None and answer_gate.gate != "answer":
            raise UsageError(
                f"answer_gate must be an answer-gate Discriminator, got a {answer_gate.gate} gate"
            )
        for name, text in (("refusal", refusal), ("withheld", withheld), ("topic", topic)):
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{name} must be a non-empty string, got {text!r}")
        self.chat = chat
        self.question_gate = question_gate
        self.answer_gate = answer_gate
        self.refusal = refusal.replace("{topic}", topic)
        self.withheld = withheld.replace("{topic}", topic)
        self.concurrency = chat.concurrency if concurrency is None else concurrency

    @property
    def model(self) -> str:
        """The QA model's name."""
        return self.chat.model

    @property
    def backend(self) -> Backend:
        """The QA model's backend."""
        return self.chat.backend

    @property
    def stop(self) -> tuple[str, ...]:
        """The QA model's stop marker(s); refusals and withheld replies end as if stopped."""
        return self.chat.stop

    @property
    def system_prompt(self) -> str | None:
        """The QA model's system prompt."""
        return self.chat.system_prompt

    @property
    def refusal_texts(self) -> tuple[str, ...]:
        """The replies this model gives instead of an answer (refusal, withheld)."""
        return (self.refusal, self.withheld)

    def __repr__(self) -> str:
        return (
            f"GuardedChatModel({self.chat.model!r}, question_gate="
            f"{self.question_gate.model if self.question_gate else None!r}, answer_gate="
            f"{self.answer_gate.model if self.answer_gate else None!r})"
        )

    # ----------------------------------------------------------------- one question
    def ask(self, question: str) -> GuardedAnswer:
        """Ask one question through the gates.

        Raises:
            UsageError: a blank question.
            BackendError: a gate or the QA model failed after its retries.
        """
        item = self._one(question, lambda chat, xs: [_ask_one(chat, xs[0], i=0)])
        return item

    async def aask(self, question: str) -> GuardedAnswer:
        """Async twin of :meth:`ask`."""
        p = _Pending(0, _check_question(question))

        async def run(chat: ChatModel, inputs: list[str]) -> list[BatchItem]:
            return [BatchItem(index=0, question=inputs[0], answer=await chat.aask(inputs[0]))]

        await self._apipeline([p], run)
        return self._finish(p)

    def _one(self, question: str, run: Runner) -> GuardedAnswer:
        p = _Pending(0, _check_question(question))
        self._pipeline([p], run)
        return self._finish(p)

    # ---------------------------------------------------------------- many questions
    def ask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Ask many questions through the gates; item ``i`` is question ``i``.

        Each stage (question gate, QA model, answer gate) runs with bounded
        concurrency through the models' own ``ask_many``, one stage after the other for
        the whole batch. A question whose gate or QA request fails gets an item with
        ``error`` set; the others go on.

        Unlike :meth:`ChatModel.ask_many <finetune_qa.chat.ChatModel.ask_many>`, which
        calls ``on_result`` as each question finishes, this calls it only after the
        **last stage of the whole batch** has finished, once per item in question order:
        it cannot drive a live progress bar. For progress on a long list, ask in slices
        (e.g. 50 questions per call) and report after each.

        Args:
            questions: the questions.
            concurrency: requests in flight at once (default: the guarded model's).
            on_result: called with each item, in question order, after the whole batch
                is done (not as each question finishes).

        Raises:
            UsageError: a blank question or a bad ``concurrency``.
        """
        pending = [_Pending(i, q) for i, q in enumerate(_check_questions(questions))]
        limit = self.concurrency if concurrency is None else concurrency
        self._pipeline(pending, lambda chat, xs: chat.ask_many(xs, concurrency=limit))
        return self._items(pending, on_result)

    async def aask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Async twin of :meth:`ask_many`."""
        pending = [_Pending(i, q) for i, q in enumerate(_check_questions(questions))]
        limit = self.concurrency if concurrency is None else concurrency

        async def run(chat: ChatModel, inputs: list[str]) -> list[BatchItem]:
            return await chat.aask_many(inputs, concurrency=limit)

        await self._apipeline(pending, run)
        return self._items(pending, on_result)

    # -------------------------------------------------------------------- internals
    def _stages(self) -> list[Callable[[list[_Pending]], StageWork | None]]:
        return [self._question_stage, self._qa_stage, self._answer_stage]

    def _question_stage(self, pending: list[_Pending]) -> StageWork | None:
        gate = self.question_gate
        if gate is None:
            return None
        todo = [p for p in pending if p.error is None]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.question_verdict = gate.verdict(item.answer)

        return gate.chat, todo, [gate.input_for(p.question) for p in todo], take

    def _qa_stage(self, pending: list[_Pending]) -> StageWork:
        todo = [
            p
            for p in pending
            if p.error is None and (p.question_verdict is None or p.question_verdict.on_topic)
        ]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.answer = item.answer

        return self.chat, todo, [p.question for p in todo], take

    def _answer_stage(self, pending: list[_Pending]) -> StageWork | None:
        gate = self.answer_gate
        if gate is None:
            return None
        todo = [p for p in pending if p.error is None and p.answer is not None and p.answer.text]

        def take(p: _Pending, item: BatchItem) -> None:
            assert item.answer is not None
            p.record(item.answer)
            p.answer_verdict = gate.verdict(item.answer)

        inputs = [gate.input_for(p.question, p.answer.text) for p in todo if p.answer]
        return gate.chat, todo, inputs, take

    def _pipeline(self, pending: list[_Pending], run: Runner) -> None:
        for stage in self._stages():
            got = stage(pending)
            if got is None or not got[1]:
                continue
            chat, todo, inputs, take = got
            _apply(todo, run(chat, inputs), take)

    async def _apipeline(self, pending: list[_Pending], run: AsyncRunner) -> None:
        for stage in self._stages():
            got = stage(pending)
            if got is None or not got[1]:
                continue
            chat, todo, inputs, take = got
            _apply(todo, await run(chat, inputs), take)

    def _finish(self, p: _Pending) -> GuardedAnswer:
        """The answer of a question that went through without errors."""
        usage = Usage(
            prompt_tokens=sum(u.prompt_tokens for u in p.usage),
            completion_tokens=sum(u.completion_tokens for u in p.usage),
            total_tokens=sum(u.total_tokens for u in p.usage),
        )
        common: dict[str, Any] = {
            "question": p.question,
            "usage": usage,
            "latency": p.latency,
            "model": self.chat.model,
            "question_verdict": p.question_verdict,
            "answer_verdict": p.answer_verdict,
        }
        if p.answer is None:  # refused before the QA model was asked
            return GuardedAnswer(
                text=self.refusal,
                finish_reason="stop",
                request_id=None,
                stopped_at_marker=False,
                guard="refused_question",
                **common,
            )
        a = p.answer
        if p.answer_verdict is not None and not p.answer_verdict.on_topic:
            return GuardedAnswer(
                text=self.withheld,
                finish_reason="stop",
                request_id=a.request_id,
                stopped_at_marker=False,
                guard="withheld_answer",
                original_text=a.text,
                **common,
            )
        return GuardedAnswer(
            text=a.text,
            finish_reason=a.finish_reason,
            request_id=a.request_id,
            stopped_at_marker=a.stopped_at_marker,
            logprobs=a.logprobs,
            guard="passed",
            **common,
        )

    def _items(
        self, pending: list[_Pending], on_result: Callable[[BatchItem], None] | None
    ) -> list[BatchItem]:
        out: list[BatchItem] = []
        for p in pending:
            item = p.error or BatchItem(index=p.index, question=p.question, answer=self._finish(p))
            out.append(item)
            if on_result is not None:
                on_result(item)
        return out


def _apply(
    todo: list[_Pending], items: list[BatchItem], take: Callable[[_Pending, BatchItem], None]
) -> None:
    for p, item in zip(todo, items, strict=True):
        if item.answer is None:
            p.error = BatchItem(
                index=p.index, question=p.question, error=item.error, error_type=item.error_type
            )
        else:
            take(p, item)


def _ask_one(chat: ChatModel, text: str, *, i: int) -> BatchItem:
    # ask() raises: the one-question path wants the exception, not an error item
    return BatchItem(index=i, question=text, answer=chat.ask(text))
