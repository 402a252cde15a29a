"""What a suite runs on (:class:`Answering`), its cases, and the scorers of one answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.backends import Backend
from finetune_qa.chat import Answer, BatchItem
from finetune_qa.config import DEFAULT_STOP
from finetune_qa.evaluation._banks import DEFAULT_REFUSAL_PHRASES, EvalSet
from finetune_qa.evaluation._metrics import (
    _markers,
    exact_match,
    is_refusal,
    normalized_contains,
    rouge_l,
    token_f1,
)


class EvalCase(BaseModel):
    """One question of a suite: which set, what to ask, what the answer should be."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(
        min_length=1,
        description="Unique in the suite; built from the set and the question "
        "(case_id), e.g. 'verbatim-3f2a9c01be'.",
    )
    set: EvalSet = Field(description="verbatim, variations or unrelated.")
    question: str = Field(min_length=1, description="The question asked.")
    reference: str | None = Field(
        default=None, description="The expected answer (None for unrelated questions)."
    )
    source_question: str | None = Field(
        default=None,
        description="The training question this case comes from (None for unrelated ones).",
    )


class Answering(Protocol):
    """What a suite runs on: a :class:`~finetune_qa.chat.ChatModel`, or anything shaped like one.

    :class:`~finetune_qa.guardrails.GuardedChatModel` is one; so is your own wrapper
    (a cache, a router, a RAG pipeline) if it offers these.
    """

    @property
    def model(self) -> str:
        """The model name the report shows."""
        ...

    @property
    def backend(self) -> Backend:
        """The backend answering (its ``name`` goes into the report)."""
        ...

    @property
    def stop(self) -> tuple[str, ...]:
        """The stop marker(s) the answers are judged against."""
        ...

    def ask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Answer ``questions``, item ``i`` for question ``i``, errors per item."""
        ...

    async def aask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Async twin of :meth:`ask_many`."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Scores one answer to one case; ``None`` when it does not apply (e.g. no reference).

    Any object with a ``name`` and this ``score`` method is a scorer. Scores are in 0-1,
    so per-set means and charts compare.

    Example:
        ```python
        class Short:
            name = "short"

            def score(self, case: EvalCase, answer: Answer) -> float | None:
                return float(len(answer.text) <= 200)

        suite.run(bot, scorers=[*default_scorers(), Short()])
        ```
    """

    @property
    def name(self) -> str:
        """The score's column name in results and reports."""
        ...

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """The score of ``answer`` for ``case``, or None when it does not apply."""
        ...


@dataclass(frozen=True)
class ReferenceScorer:
    """A scorer from a function ``(output, reference) -> float``, for cases with a reference.

    Args:
        name: the score's name.
        fn: the scoring function, e.g. :func:`token_f1`.
    """

    name: str
    fn: Callable[[str, str], float]

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """``fn(answer.text, case.reference)``, or None for a case without a reference."""
        if case.reference is None:
            return None
        return float(self.fn(answer.text, case.reference))


@dataclass(frozen=True)
class StopScorer:
    """Whether the model wrote its stop marker (``Answer.stopped_at_marker``), on every case.

    The score means something only for answers generated *without* the stop sequence sent
    to the API (an API that is sent ``stop`` reports ``finish_reason == "stop"`` for a
    natural end too). :meth:`EvalSuite.run` asks a :class:`~finetune_qa.chat.ChatModel`,
    or a wrapper holding one as ``.chat`` (a
    :class:`~finetune_qa.guardrails.GuardedChatModel`), that way: it cuts the answer at
    the marker itself and sets ``stopped_at_marker`` to whether the marker was there. A
    reply a guard gave instead of the model's (a refusal, a withheld answer) gets None.

    Args:
        markers: the stop marker(s) the model was trained to end with.
        name: the score's name.
    """

    markers: tuple[str, ...] = (DEFAULT_STOP,)
    name: str = "stop"

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """1.0 when the model ended its answer with the marker, 0.0 when it did not."""
        if getattr(answer, "guard", "passed") != "passed":
            return None  # the guard's own reply: the model did not write it
        return float(answer.stopped_at_marker)


@dataclass(frozen=True)
class AnsweredScorer:
    """1.0 when the model answered, 0.0 when it refused (:func:`is_refusal`), on every case.

    On the ``unrelated`` set its mean is the off-topic answer rate: high for a plain
    fine-tune, low for a well-guarded one.

    Args:
        refusal_texts: your bot's own refusal texts (e.g. a guarded model's).
        phrases: generic refusal phrases.
        name: the score's name.
    """

    refusal_texts: tuple[str, ...] = ()
    phrases: tuple[str, ...] = DEFAULT_REFUSAL_PHRASES
    name: str = "answered"

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """0.0 for a refusal, else 1.0."""
        refused = is_refusal(answer.text, refusal_texts=self.refusal_texts, phrases=self.phrases)
        return 0.0 if refused else 1.0


def default_scorers(
    *,
    stop: str | Sequence[str] | None = DEFAULT_STOP,
    refusal_texts: Sequence[str] = (),
) -> list[Scorer]:
    """The built-in scorers: exact, contains, f1, rouge_l, stop, answered.

    Args:
        stop: the stop marker(s) the model was trained with (``None``: no stop scorer; see
            :class:`StopScorer` for what it needs).
        refusal_texts: your bot's own refusal texts, for ``answered``.
    """
    markers = _markers(stop)
    scorers: list[Scorer] = [
        ReferenceScorer("exact", exact_match),
        ReferenceScorer("contains", lambda o, r: normalized_contains(o, r, stop=markers)),
        ReferenceScorer("f1", token_f1),
        ReferenceScorer("rouge_l", rouge_l),
    ]
    if markers:
        scorers.append(StopScorer(markers))
    scorers.append(AnsweredScorer(tuple(refusal_texts)))
    return scorers
