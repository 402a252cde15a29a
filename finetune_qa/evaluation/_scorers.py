"""What a suite runs on (:class:`Answering`), its cases, and the scorers of one answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.backends import Backend
from finetune_qa.chat import Answer, BatchItem
from finetune_qa.config import DEFAULT_STOP
from finetune_qa.evaluation._banks import DEFAULT_REFUSAL_PHRASES, EvalSet
from finetune_qa.evaluation._metrics import (
    GROUNDED_THRESHOLD,
    _markers,
    contains_fact,
    exact_match,
    is_refusal,
    normalized_contains,
    rouge_l,
    states_fact,
    states_page_fact,
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
    set: EvalSet = Field(
        description="verbatim, variations or unrelated; on_topic, rephrasing or off_topic "
        "for a knowledge file's questions."
    )
    question: str = Field(min_length=1, description="The question asked.")
    reference: str | None = Field(
        default=None, description="The expected answer (None for unrelated questions)."
    )
    source_question: str | None = Field(
        default=None,
        description="The training question this case comes from (None for unrelated ones).",
    )
    facts: tuple[str, ...] = Field(
        default=(),
        strict=False,
        description="Facts a right answer states, one of them at least (a knowledge file's).",
    )
    page: str | None = Field(
        default=None, description="The source page the facts come from, if known."
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
    """1.0 when the model did not refuse (:func:`is_refusal`), 0.0 when it did, on every case.

    Counts any reply that is not a refusal, filler included; the default ``answered`` of
    a suite is :class:`GroundedScorer`, which asks for a fact as well.

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


@dataclass(frozen=True)
class GroundedScorer:
    """Whether the model answered: stated a fact, rather than refused or wrote filler.

    A case with a reference (or facts) counts as answered (1.0) only when the answer is
    no refusal and states a fact of its reference or facts (:func:`states_fact`: the
    weighted content words and numbers of one of its sentences, the question's own words
    left out, at least ``threshold``), or of its source page when ``pages`` has it (any
    page when the case names none; :func:`states_page_fact`), or when the judge graded it
    3 of 5 or better (see :meth:`judged`). "Many people work at Lumenfield is a
    well-known topic." against "Lumenfield has 42 employees." is not an answer.

    A case without a reference (an off-topic question), or whose reference is itself a
    refusal, has no fact to state: there the score is 1.0 for any reply that is not a
    refusal, so on the ``unrelated`` set its mean is still the off-topic answer rate.

    Args:
        refusal_texts: your bot's own refusal texts (e.g. a guarded model's).
        phrases: generic refusal phrases.
        pages: the source pages' texts by name (e.g. ``{"about.md": "..."}``).
        threshold: share of a fact's weighted content the answer must state.
        name: the score's name.
    """

    refusal_texts: tuple[str, ...] = ()
    phrases: tuple[str, ...] = DEFAULT_REFUSAL_PHRASES
    pages: Mapping[str, str] = field(default_factory=dict, repr=False)
    threshold: float = GROUNDED_THRESHOLD
    name: str = "answered"

    def _refused(self, text: str) -> bool:
        return is_refusal(text, refusal_texts=self.refusal_texts, phrases=self.phrases)

    def _expects_fact(self, case: EvalCase) -> bool:
        return bool(case.facts) or (
            case.reference is not None and not self._refused(case.reference)
        )

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """1.0 when the answer states a fact (or, without one expected, is no refusal)."""
        if self._refused(answer.text):
            return 0.0
        if not self._expects_fact(case):
            return 1.0
        text, q = answer.text, case.question
        for reference in (case.reference, *case.facts):
            if reference and states_fact(text, reference, question=q, threshold=self.threshold):
                return 1.0
        pages = self.pages.get(case.page or "")
        sources = [pages] if pages is not None else list(self.pages.values())
        return float(states_page_fact(text, sources, question=q, threshold=self.threshold))

    def judged(self, case: EvalCase, answer: Answer, grade: float | None) -> float | None:
        """:meth:`score`, with a judge's grade (0-1) of 0.5 or more (3 of 5) counting as a fact."""
        value = self.score(case, answer)
        if value == 0.0 and grade is not None and grade >= 0.5 and not self._refused(answer.text):
            return 1.0
        return value


@dataclass(frozen=True)
class FactScorer:
    """Answered with the right fact: 1.0 when the answer contains one of the case's facts.

    Whole words, case and punctuation aside (:func:`contains_fact`); a refusal scores 0.0
    whatever it quotes. None for a case without facts (an off-topic question).

    Args:
        refusal_texts: your bot's own refusal texts.
        name: the score's name.
    """

    refusal_texts: tuple[str, ...] = ()
    name: str = "right_fact"

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """1.0 for an answer with one of ``case.facts``, 0.0 otherwise, None without facts."""
        if not case.facts:
            return None
        if is_refusal(answer.text, refusal_texts=self.refusal_texts):
            return 0.0
        return float(contains_fact(answer.text, case.facts))


@dataclass(frozen=True)
class RefusedScorer:
    """1.0 when the model (or its gate) refused (:func:`is_refusal`), on every case.

    On off-topic questions higher is better; on on-topic ones it counts the questions a
    gate wrongly turned away.

    Args:
        refusal_texts: your bot's own refusal texts (e.g. a guarded model's).
        phrases: generic refusal phrases.
        name: the score's name.
    """

    refusal_texts: tuple[str, ...] = ()
    phrases: tuple[str, ...] = DEFAULT_REFUSAL_PHRASES
    name: str = "refused"

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """1.0 for a refusal, else 0.0."""
        return float(
            is_refusal(answer.text, refusal_texts=self.refusal_texts, phrases=self.phrases)
        )


def default_scorers(
    *,
    stop: str | Sequence[str] | None = DEFAULT_STOP,
    refusal_texts: Sequence[str] = (),
    pages: Mapping[str, str] | None = None,
) -> list[Scorer]:
    """The built-in scorers: exact, contains, f1, rouge_l, stop, answered.

    ``answered`` is a :class:`GroundedScorer`: an answer must state a fact of its
    reference (or of ``pages``) to count, not just avoid refusing.

    Args:
        stop: the stop marker(s) the model was trained with (``None``: no stop scorer; see
            :class:`StopScorer` for what it needs).
        refusal_texts: your bot's own refusal texts, for ``answered``.
        pages: source pages' texts by name, for ``answered``.
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
    scorers.append(GroundedScorer(tuple(refusal_texts), pages=dict(pages or {})))
    return scorers


def knowledge_scorers(
    *,
    stop: str | Sequence[str] | None = DEFAULT_STOP,
    refusal_texts: Sequence[str] = (),
    pages: Mapping[str, str] | None = None,
) -> list[Scorer]:
    """The scorers of a knowledge file's suite: stop, answered, right_fact, refused.

    Per set (``on_topic``, ``rephrasing``, ``off_topic``): ``answered`` (a fact stated,
    :class:`GroundedScorer`), ``right_fact`` (one of the question's facts,
    :class:`FactScorer`) and ``refused`` (:class:`RefusedScorer`).

    Args:
        stop: as :func:`default_scorers`.
        refusal_texts: your bot's own refusal texts.
        pages: source pages' texts by name, for ``answered``.
    """
    texts = tuple(refusal_texts)
    scorers: list[Scorer] = []
    if _markers(stop):
        scorers.append(StopScorer(_markers(stop)))
    scorers += [
        GroundedScorer(texts, pages=dict(pages or {})),
        FactScorer(texts),
        RefusedScorer(texts),
    ]
    return scorers
