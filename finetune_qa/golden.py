"""Golden sets: record how a model answers before it is retired, and score its replacement.

A fine-tune that a provider shuts down cannot be asked anything afterwards, so its
answers must be kept while it still serves. :func:`record_answers` asks a model the
questions of an :class:`~finetune_qa.evaluation.EvalSuite` (the training questions, their
rephrasings, the unrelated bank) and keeps every answer in a *golden set* file;
:func:`compare_to_golden` later asks another model (on any backend) the same questions
and scores its answers with the recorded ones as references.

The file is JSON Lines: a :class:`GoldenHeader` line (format, who was recorded and how),
then one :class:`GoldenAnswer` line per question. :meth:`GoldenSet.read` and
:meth:`GoldenSet.write` round-trip it byte for byte. Recording is resumable: answers are
saved (atomically) as they arrive, so running :func:`record_answers` again on the same
file asks only the questions it does not hold yet, among them those that failed.

Example:
    >>> from finetune_qa import ChatModel, EvalSuite, GoldenSet, record_answers
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "golden.jsonl")
    >>> suite = EvalSuite.from_pairs([("What is Acme?", "Acme makes anvils.")], unrelated=[
    ...     "What is Star Wars?"], builtin_unrelated=False)
    >>> report = record_answers(ChatModel.offline("gpt-4o-mini"), suite, path)
    >>> report.recorded, report.errors, GoldenSet.read(path).counts()
    (2, 0, {'verbatim': 1, 'variations': 0, 'unrelated': 1})
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._fs import atomic_write, open_regular
from finetune_qa._text import question_key
from finetune_qa.chat import Answer, BatchItem, ChatModel
from finetune_qa.config import EXAMPLES_PER_REASON
from finetune_qa.evaluation import (
    DEFAULT_EVAL_CONCURRENCY,
    DEFAULT_REFUSAL_PHRASES,
    EVAL_SETS,
    Answering,
    EvalCase,
    EvalResult,
    EvalSet,
    EvalSuite,
    JudgeScorer,
    Scorer,
    default_scorers,
    is_refusal,
)
from finetune_qa.evaluation._results import _summarize
from finetune_qa.exceptions import JSONLFormatError, RecordError, UsageError

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "GOLDEN_FORMAT",
    "OVERALL",
    "AnsweredAgreementScorer",
    "GoldenAnswer",
    "GoldenHeader",
    "GoldenSet",
    "RecordReport",
    "acompare_to_golden",
    "arecord_answers",
    "compare_to_golden",
    "golden_scorers",
    "record_answers",
]

GOLDEN_FORMAT = "finetune-qa-golden"
"""The ``format`` of a golden set's header line."""

DEFAULT_CHECKPOINT_EVERY = 25
""":func:`record_answers` saves the file after this many new answers (and at the end)."""

OVERALL = "overall"
"""The extra entry of :attr:`EvalResult.sets` that :func:`compare_to_golden` adds: all sets."""


class GoldenHeader(BaseModel):
    """The first line of a golden set: what was recorded, from whom, and how it was asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["finetune-qa-golden"] = Field(
        default="finetune-qa-golden", description="Always 'finetune-qa-golden': what the file is."
    )
    version: Literal[1] = Field(default=1, description="Format version.")
    model: str = Field(min_length=1, description="The model recorded.")
    backend: str = Field(description="The backend that served it.")
    system_prompt: str | None = Field(
        default=None,
        description="System message sent with every question ('': none; None: not known).",
    )
    stop: list[str] = Field(
        default_factory=list, description="The stop marker(s) it was asked with."
    )
    temperature: float | None = Field(default=None, description="Sampling temperature used.")
    suite: str | None = Field(default=None, description="The suite's name (its data file's name).")
    created_at: dt.datetime = Field(description="When the recording started (UTC).")


class GoldenAnswer(BaseModel):
    """One recorded question and the recorded model's answer to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="The suite's case id, e.g. 'verbatim-3f2a9c01be'.")
    set: EvalSet = Field(description="verbatim, variations or unrelated.")
    question: str = Field(min_length=1, description="The question asked.")
    source_question: str | None = Field(
        default=None, description="The training question it comes from (None: unrelated)."
    )
    answer: str = Field(description="The answer text (stop marker removed).")
    finish_reason: str = Field(description="Why the answer ended: 'stop', 'length', ...")
    model: str = Field(description="The model asked.")
    backend: str = Field(description="The backend's name.")
    recorded_at: dt.datetime = Field(description="When the answer came back (UTC).")


class GoldenSet(BaseModel):
    """A recorded golden set: the header and the answers, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: GoldenHeader = Field(description="The header line.")
    answers: list[GoldenAnswer] = Field(default_factory=list, description="One per question.")

    def counts(self) -> dict[str, int]:
        """Answers per set, e.g. ``{"verbatim": 24, "variations": 24, "unrelated": 65}``."""
        return {s: sum(1 for a in self.answers if a.set == s) for s in EVAL_SETS}

    def to_jsonl(self) -> str:
        """The file's text: the header line, then one line per answer."""
        lines = [self.header.model_dump_json(), *(a.model_dump_json() for a in self.answers)]
        return "".join(line + "\n" for line in lines)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_jsonl` to ``path`` atomically; return the path.

        Raises:
            InputFileError: the file cannot be written (an earlier one is left as it was).
        """
        out = Path(path)
        atomic_write(
            out,
            self.to_jsonl(),
            problem="cannot write the golden set",
            hint="check that the directory is writable",
        )
        return out

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> GoldenSet:
        """Load a golden set written by :meth:`write` (or :func:`record_answers`).

        Raises:
            InputFileError: the file is missing, unreadable or not UTF-8.
            JSONLFormatError: a line is not JSON.
            RecordError: the first line is not a golden header, another line is not an
                answer, or two answers share an id or a question.
        """
        with open_regular(path, kind="golden set file") as f:
            data = f.read()
        header: GoldenHeader | None = None
        answers: list[GoldenAnswer] = []
        ids: set[str] = set()
        keys: set[tuple[str, str]] = set()
        for line_no, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise JSONLFormatError(
                    f"not JSON ({exc})", path=str(path), line=line_no, hint="fix or remove the line"
                ) from None
            if header is None:
                header = _validated(GoldenHeader, obj, path, line_no, _HEADER_HINT)
                continue
            answer = _validated(GoldenAnswer, obj, path, line_no, _ANSWER_HINT)
            key = (answer.set, question_key(answer.question))
            if answer.id in ids or key in keys:
                raise RecordError(
                    f"the question {answer.question!r} ({answer.id}) is recorded twice",
                    path=str(path),
                    line=line_no,
                    hint="remove one of the two lines",
                )
            ids.add(answer.id)
            keys.add(key)
            answers.append(answer)
        if header is None:
            raise RecordError(
                "the file is empty: a golden set starts with its header line",
                path=str(path),
                hint=_HEADER_HINT,
            )
        return cls(header=header, answers=answers)

    def to_suite(self) -> EvalSuite:
        """An :class:`EvalSuite` of the recorded questions, the recorded answers as references.

        Every case has a reference, unrelated ones included, so the reference scorers
        compare the two models' answers on every set.
        """
        cases = [
            EvalCase(
                id=a.id,
                set=a.set,
                question=a.question,
                reference=a.answer,
                source_question=a.source_question,
            )
            for a in self.answers
        ]
        return EvalSuite(cases, name=f"golden set of {self.header.model}")


_M = TypeVar("_M", GoldenHeader, GoldenAnswer)

_HEADER_HINT = (
    "a golden set's first line is its header, e.g. "
    '{"format": "finetune-qa-golden", "version": 1, "model": ..., "created_at": ...}; '
    "record one with record_answers() or `finetune-qa record`"
)
_ANSWER_HINT = (
    "each line after the header needs id, set, question, source_question, answer, "
    "finish_reason, model, backend and recorded_at"
)


def _validated(
    cls: type[_M], obj: object, path: str | os.PathLike[str], line_no: int, hint: str
) -> _M:
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        what = "a golden set header" if cls is GoldenHeader else "a recorded answer"
        raise RecordError(
            f"not {what}: {where}: {err['msg']}", path=str(path), line=line_no, hint=hint
        ) from None


class RecordReport(BaseModel):
    """What :func:`record_answers` did: how many questions were asked, recorded and failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The golden set file.")
    model: str = Field(description="The model recorded.")
    backend: str = Field(description="The backend's name.")
    questions: int = Field(description="Questions in the suite.")
    already: int = Field(
        description="Of those, not asked: recorded before this run (or a repeat of another)."
    )
    asked: int = Field(description="Questions asked in this run.")
    recorded: int = Field(description="Answers recorded in this run.")
    errors: int = Field(description="Questions that failed in this run (asked again on resume).")
    error_examples: list[str] = Field(
        default_factory=list, description="The first few errors, one line each."
    )
    total: int = Field(description="Answers in the file now (earlier ones included).")

    @property
    def complete(self) -> bool:
        """True when every question of the suite is in the file."""
        return self.already + self.recorded == self.questions


def record_answers(
    chat: Answering,
    suite: EvalSuite | Iterable[EvalCase],
    path: str | os.PathLike[str],
    *,
    concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Callable[[int, int], None] | None = None,
) -> RecordReport:
    """Ask ``chat`` every question of ``suite`` and keep its answers in the golden set ``path``.

    When ``path`` already holds a golden set of the same model, the questions it holds
    (same set and question) are not asked again: an interrupted or partly failed
    recording resumes where it stopped. Answers are saved every ``checkpoint_every``
    answers and at the end (also when the run is interrupted), each time atomically. A
    question that fails (after the model's own retries) is counted in ``errors`` and left
    out of the file, so the next run asks it again.

    Args:
        chat: the model to record, asked as it serves (a
            :class:`~finetune_qa.chat.ChatModel` with the system prompt and stop marker it
            was trained with, or any :class:`~finetune_qa.evaluation.Answering`).
        suite: the questions (an :class:`~finetune_qa.evaluation.EvalSuite` or its cases).
        path: the golden set file, created or resumed.
        concurrency: questions in flight at once (None: the model's own default).
        checkpoint_every: save after this many new answers.
        progress: called with ``(done, total)`` as answers come back.

    Raises:
        UsageError: ``path`` holds a golden set of another model, or a bad argument.
        InputError: ``path`` exists but is not a golden set, or cannot be written.
    """
    rec = _Recording(chat, suite, path, checkpoint_every, progress)
    try:
        if rec.todo:
            chat.ask_many(rec.questions(), concurrency=concurrency, on_result=rec.on_result)
    finally:
        rec.close()
    return rec.report()


async def arecord_answers(
    chat: Answering,
    suite: EvalSuite | Iterable[EvalCase],
    path: str | os.PathLike[str],
    *,
    concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Callable[[int, int], None] | None = None,
) -> RecordReport:
    """Async twin of :func:`record_answers`, on the running event loop."""
    rec = _Recording(chat, suite, path, checkpoint_every, progress)
    try:
        if rec.todo:
            await chat.aask_many(rec.questions(), concurrency=concurrency, on_result=rec.on_result)
    finally:
        rec.close()
    return rec.report()


class _Recording:
    """One run of :func:`record_answers`: what to ask, the answers so far, the saving."""

    def __init__(
        self,
        chat: Answering,
        suite: EvalSuite | Iterable[EvalCase],
        path: str | os.PathLike[str],
        checkpoint_every: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
            raise UsageError(f"checkpoint_every must be a whole number, got {checkpoint_every!r}")
        if checkpoint_every < 1:
            raise UsageError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        self.chat = chat
        self.cases = list(suite.cases if isinstance(suite, EvalSuite) else suite)
        self.backend = str(chat.backend.name)
        self.out = Path(path)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        fresh = GoldenHeader(
            model=chat.model,
            backend=self.backend,
            system_prompt=(chat.system_prompt or "") if isinstance(chat, ChatModel) else None,
            stop=list(chat.stop),
            temperature=chat.temperature if isinstance(chat, ChatModel) else None,
            suite=suite.name if isinstance(suite, EvalSuite) else None,
            created_at=_now(),
        )
        if self.out.exists():
            self.golden = GoldenSet.read(self.out)
            _check_resumable(self.out, self.golden.header, fresh)
        else:
            self.golden = GoldenSet(header=fresh)
        done = {(a.set, question_key(a.question)) for a in self.golden.answers}
        self.todo: list[EvalCase] = []
        for case in self.cases:
            key = (case.set, question_key(case.question))
            if key not in done:  # recorded already, or twice in the cases given
                done.add(key)
                self.todo.append(case)
        self.new: dict[int, GoldenAnswer] = {}
        self.errors: list[str] = []
        self.unsaved = 0

    def questions(self) -> list[str]:
        return [c.question for c in self.todo]

    def on_result(self, item: BatchItem) -> None:
        if item.answer is None:
            self.errors.append(f"{item.question}: {item.error}")
        else:
            case = self.todo[item.index]
            self.new[item.index] = _golden_answer(case, item.answer, self.chat.model, self.backend)
            self.unsaved += 1
            if self.unsaved >= self.checkpoint_every:
                self.save()
        if self.progress is not None:
            self.progress(len(self.new) + len(self.errors), len(self.todo))

    def save(self) -> None:
        answers = [*self.golden.answers, *(self.new[i] for i in sorted(self.new))]
        GoldenSet(header=self.golden.header, answers=answers).write(self.out)
        self.unsaved = 0

    def close(self) -> None:
        """Save what is not saved yet (also when the run stops half-way)."""
        if self.unsaved or not self.out.exists():
            self.save()

    def report(self) -> RecordReport:
        return RecordReport(
            path=str(self.out),
            model=self.chat.model,
            backend=self.backend,
            questions=len(self.cases),
            already=len(self.cases) - len(self.todo),
            asked=len(self.todo),
            recorded=len(self.new),
            errors=len(self.errors),
            error_examples=self.errors[:EXAMPLES_PER_REASON],
            total=len(self.golden.answers) + len(self.new),
        )


def _check_resumable(path: Path, header: GoldenHeader, now: GoldenHeader) -> None:
    """Refuse to add answers asked another way to a recording (a mixed set compares badly)."""
    if header.model != now.model:
        raise UsageError(
            f"{path} holds the answers of {header.model}, not {now.model}; record each "
            "model in its own file"
        )
    for name in ("system_prompt", "stop", "temperature"):
        was, is_ = getattr(header, name), getattr(now, name)
        if was is not None and is_ is not None and was != is_:
            raise UsageError(
                f"{path} was recorded with {name} {was!r}, this run asks with {is_!r}; "
                "resume with the same settings, or record to another file"
            )


def _golden_answer(case: EvalCase, answer: Answer, model: str, backend: str) -> GoldenAnswer:
    return GoldenAnswer(
        id=case.id,
        set=case.set,
        question=case.question,
        source_question=case.source_question,
        answer=answer.text,
        finish_reason=answer.finish_reason,
        model=model,
        backend=backend,
        recorded_at=_now(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# ============================================================== scoring against a recording


@dataclass(frozen=True)
class AnsweredAgreementScorer:
    """1.0 when the model and the recording both answered or both refused, else 0.0.

    Refusals are told by :func:`~finetune_qa.evaluation.is_refusal`, as the ``answered``
    score does; the recorded answer is the case's reference (cases without one get None).
    Its mean on a set is how often the new model keeps the old one's answer-or-refuse
    behaviour.

    Args:
        refusal_texts: your bots' own refusal texts.
        phrases: generic refusal phrases.
        name: the score's name.
    """

    refusal_texts: tuple[str, ...] = ()
    phrases: tuple[str, ...] = DEFAULT_REFUSAL_PHRASES
    name: str = "agreement"

    def score(self, case: EvalCase, answer: Answer) -> float | None:
        """1.0 when ``answer`` and the reference agree on answering, 0.0 when they do not."""
        if case.reference is None:
            return None
        kw = {"refusal_texts": self.refusal_texts, "phrases": self.phrases}
        return float(is_refusal(answer.text, **kw) == is_refusal(case.reference, **kw))


def golden_scorers(*, refusal_texts: Sequence[str] = ()) -> list[Scorer]:
    """The scorers of :func:`compare_to_golden`: exact, contains, f1, rouge_l, answered, agreement.

    The built-in :func:`~finetune_qa.evaluation.default_scorers` (without the stop
    score: the recording is the reference, not the training data) and
    :class:`AnsweredAgreementScorer`.
    """
    texts = tuple(refusal_texts)
    return [*default_scorers(stop=None, refusal_texts=texts), AnsweredAgreementScorer(texts)]


def compare_to_golden(
    golden: GoldenSet | str | os.PathLike[str],
    chat: Answering,
    *,
    concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
    scorers: Sequence[Scorer] | None = None,
    judge: JudgeScorer | None = None,
    refusal_texts: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    label: str | None = None,
) -> EvalResult:
    """Ask ``chat`` the recorded questions and score its answers against the recorded ones.

    The result is an ordinary :class:`~finetune_qa.evaluation.EvalResult` (reports,
    :func:`~finetune_qa.evaluation.compare`) whose references are the recorded answers,
    scored by :func:`golden_scorers` (exact match, token F1, ROUGE-L, answered rate and
    answered-or-refused agreement), per set and, under :data:`OVERALL` in ``sets``, over
    every case. A model asked against its own recording at temperature 0 scores 1.0.

    Args:
        golden: the golden set, or its file.
        chat: the model to test (any backend), asked as it would serve.
        concurrency: questions in flight at once (see :meth:`EvalSuite.run`).
        scorers: other scorers instead of :func:`golden_scorers`.
        judge: an LLM judge grading each answer against the recorded one.
        refusal_texts: your bots' own refusal texts, for ``answered`` and ``agreement``.
        progress: called with ``(done, total)`` as requests complete.
        label: display name in reports (default: the model name).

    Raises:
        UsageError: the golden set has no answers.
        InputError: the file is missing or is not a golden set.
    """
    suite = _golden_suite(golden)
    result = suite.run(
        chat,
        concurrency=concurrency,
        scorers=scorers if scorers is not None else golden_scorers(refusal_texts=refusal_texts),
        judge=judge,
        progress=progress,
        label=label,
    )
    return _with_overall(result)


async def acompare_to_golden(
    golden: GoldenSet | str | os.PathLike[str],
    chat: Answering,
    *,
    concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
    scorers: Sequence[Scorer] | None = None,
    judge: JudgeScorer | None = None,
    refusal_texts: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    label: str | None = None,
) -> EvalResult:
    """Async twin of :func:`compare_to_golden`, on the running event loop."""
    suite = _golden_suite(golden)
    result = await suite.arun(
        chat,
        concurrency=concurrency,
        scorers=scorers if scorers is not None else golden_scorers(refusal_texts=refusal_texts),
        judge=judge,
        progress=progress,
        label=label,
    )
    return _with_overall(result)


def _golden_suite(golden: GoldenSet | str | os.PathLike[str]) -> EvalSuite:
    gs = golden if isinstance(golden, GoldenSet) else GoldenSet.read(golden)
    if not gs.answers:
        raise UsageError(f"the golden set of {gs.header.model} holds no answers; record some first")
    return gs.to_suite()


def _with_overall(result: EvalResult) -> EvalResult:
    """``result`` with an :data:`OVERALL` entry in ``sets``: every case, whatever its set."""
    overall = _summarize(result.cases, result.scorers)
    return result.model_copy(update={"sets": {**result.sets, OVERALL: overall}})
