"""Results of a run (per case, per set), comparisons of two runs, and their reports' rows."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._text import question_key
from finetune_qa.evaluation._banks import EvalSet, _ordered_scores, _ordered_sets
from finetune_qa.evaluation._files import _write_atomic
from finetune_qa.evaluation._judge import JudgeGrade
from finetune_qa.evaluation._render import _html, _markdown, _notes, _Row
from finetune_qa.evaluation._scorers import Answering


class CaseResult(BaseModel):
    """One case's outcome: the answer (or the error) and its scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The case id.")
    set: EvalSet = Field(description="The case's set.")
    question: str = Field(description="The question asked.")
    reference: str | None = Field(description="The expected answer, if any.")
    source_question: str | None = Field(description="The training question it comes from.")
    output: str | None = Field(default=None, description="The answer text (None on error).")
    finish_reason: str | None = Field(default=None, description="Why the answer ended.")
    latency: float | None = Field(default=None, description="Seconds the answer took.")
    error: str | None = Field(default=None, description="One line, when the question failed.")
    error_type: str | None = Field(default=None, description="The error's class name.")
    scores: dict[str, float | None] = Field(
        default_factory=dict, description="Score per scorer (None: does not apply)."
    )
    judge: JudgeGrade | None = Field(default=None, description="The judge's verdict, if judged.")

    @property
    def ok(self) -> bool:
        """True when the question was answered (no error)."""
        return self.error is None


class SetSummary(BaseModel):
    """Aggregates of one set: counts, mean scores, latency, judge trouble."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(description="Cases in the set.")
    errors: int = Field(description="Cases whose question failed.")
    scores: dict[str, float | None] = Field(
        description="Mean of each scorer over the answered cases it applies to (None: none)."
    )
    latency_mean: float | None = Field(default=None, description="Mean seconds per answer.")
    latency_p95: float | None = Field(default=None, description="95th percentile seconds.")
    judge_unparsed: int = Field(default=0, description="Judge replies without a 1-5 score.")
    judge_errors: int = Field(default=0, description="Judge requests that failed.")

    @property
    def answered_rate(self) -> float | None:
        """Share of answers that answered (the ``answered`` score).

        With the default scorers: stated a fact of their reference where there is one
        (:class:`GroundedScorer`), were no refusal where there is none.
        """
        return self.scores.get("answered")


class RunSummary(BaseModel):
    """Who was evaluated and the per-set aggregates: an :class:`EvalResult` without its rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(description="Display name (the model name unless given).")
    model: str = Field(description="The model asked.")
    backend: str = Field(description="The backend's name.")
    seconds: float = Field(description="Wall-clock seconds of the run.")
    n: int = Field(description="Cases run.")
    errors: int = Field(description="Cases whose question failed.")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Questions left out while building the suite, per reason.",
    )
    sets: dict[str, SetSummary] = Field(description="Aggregates per set, in report order.")
    set_names: dict[str, str] = Field(
        default_factory=dict,
        description="What each set is, e.g. 'training questions' (by set; default its key).",
    )

    def set_name(self, set: str) -> str:
        """What ``set`` is called in reports (its key when unnamed)."""
        return self.set_names.get(set) or set


class EvalResult(BaseModel):
    """The outcome of :meth:`EvalSuite.run`: per-set aggregates and per-case rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(description="Display name (the model name unless given).")
    model: str = Field(description="The model asked.")
    backend: str = Field(description="The backend's name.")
    started_at: str = Field(description="When the run started (ISO 8601, UTC).")
    seconds: float = Field(description="Wall-clock seconds of the run, judge included.")
    concurrency: int | None = Field(
        description="Questions in flight at once (None: the model's own, unknown)."
    )
    n: int = Field(description="Cases run.")
    errors: int = Field(description="Cases whose question failed.")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Questions left out while building the suite, per reason (EvalSuite.dropped).",
    )
    scorers: list[str] = Field(description="Scorer names, in column order.")
    sets: dict[str, SetSummary] = Field(description="Aggregates per set, in report order.")
    set_names: dict[str, str] = Field(
        default_factory=dict,
        description="What each set is: 'training questions', 'rephrasings', a file's name, "
        "'off-topic questions' (by set; default its key).",
    )
    cases: list[CaseResult] = Field(description="One row per case, in suite order.")

    @classmethod
    def from_json(cls, text: str | bytes) -> EvalResult:
        """Load a result saved with :meth:`to_json`."""
        return cls.model_validate_json(text)

    def score(self, set: str, scorer: str) -> float | None:
        """The mean ``scorer`` score on ``set`` (None when it does not apply or no such set)."""
        summary = self.sets.get(set)
        return None if summary is None else summary.scores.get(scorer)

    def count(self, set: str, scorer: str) -> int:
        """How many answered cases of ``set`` scored 1.0 on ``scorer`` (e.g. refused ones)."""
        return sum(1 for c in self.cases if c.set == set and c.scores.get(scorer) == 1.0)

    def set_name(self, set: str) -> str:
        """What ``set`` is called in reports, e.g. ``"training questions"`` (else its key)."""
        return self.set_names.get(set) or set

    @property
    def off_topic_answer_rate(self) -> float | None:
        """Share of unrelated questions answered rather than refused (lower is better)."""
        return self.score("unrelated", "answered")

    def summary(self) -> RunSummary:
        """The aggregates without the per-case rows."""
        return RunSummary(
            label=self.label,
            model=self.model,
            backend=self.backend,
            seconds=self.seconds,
            n=self.n,
            errors=self.errors,
            dropped=self.dropped,
            sets=self.sets,
            set_names=self.set_names,
        )

    def compare(self, other: EvalResult, *, labels: tuple[str, str] | None = None) -> Comparison:
        """This result (a) side by side with ``other`` (b); see :func:`compare`."""
        return compare(self, other, labels=labels)

    # -- reports ------------------------------------------------------------------------
    def to_json(self, *, indent: int | None = 2) -> str:
        """The whole result as JSON (:meth:`from_json` reads it back)."""
        return self.model_dump_json(indent=indent)

    def to_markdown(self, *, cases: bool = True) -> str:
        """A Markdown report: a summary table per set, then (``cases``) one row per case."""
        runs = [self.summary()]
        return _markdown(
            f"Evaluation of {self.label}", runs, _rows_of(self), cases, _notes(runs, None)
        )

    def to_html(self) -> str:
        """One self-contained HTML page: summary, bar chart and per-case rows."""
        runs = [self.summary()]
        return _html(f"Evaluation of {self.label}", runs, _rows_of(self), _notes(runs, None))

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_json())

    def write_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_markdown` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_markdown())

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_html())


class ScoreDelta(BaseModel):
    """One set's score of one scorer for two runs, and the change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    set: str = Field(description="The set.")
    scorer: str = Field(description="The scorer.")
    a: float | None = Field(description="Run a's mean (None: does not apply).")
    b: float | None = Field(description="Run b's mean (None: does not apply).")
    delta: float | None = Field(description="b - a, when both exist.")


class CaseComparison(BaseModel):
    """One case of the two runs: both answers, or the one of the run that has the case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The case id.")
    only_in: Literal["a", "b"] | None = Field(
        default=None, description="The run that has this case, when only one has it."
    )
    set: str = Field(description="The case's set.")
    question: str = Field(description="The question.")
    reference: str | None = Field(description="The expected answer, if any.")
    output_a: str | None = Field(description="Run a's answer (None: error or not run).")
    output_b: str | None = Field(description="Run b's answer (None: error or not run).")
    error_a: str | None = Field(default=None, description="Run a's error, if any.")
    error_b: str | None = Field(default=None, description="Run b's error, if any.")
    scores_a: dict[str, float | None] = Field(default_factory=dict, description="Run a's scores.")
    scores_b: dict[str, float | None] = Field(default_factory=dict, description="Run b's scores.")


class Comparison(BaseModel):
    """Two runs side by side: per set and scorer a, b and the delta; per case both answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: RunSummary = Field(description="The first run (e.g. the base model).")
    b: RunSummary = Field(description="The second run (e.g. the fine-tune).")
    deltas: list[ScoreDelta] = Field(
        description=(
            "One row per set and scorer: the means over the matched cases (each run's "
            "own means when every case is matched)."
        )
    )
    matched: int = Field(description="Cases both runs have (same id and question).")
    only_a: int = Field(description="Cases only run a has.")
    only_b: int = Field(description="Cases only run b has.")
    cases: list[CaseComparison] = Field(
        description="One row per case: the matched ones in a's order, then a's, then b's own."
    )

    @classmethod
    def from_json(cls, text: str | bytes) -> Comparison:
        """Load a comparison saved with :meth:`to_json`."""
        return cls.model_validate_json(text)

    def delta(self, set: str, scorer: str) -> ScoreDelta | None:
        """The row for ``set`` and ``scorer``, if there is one."""
        return next((d for d in self.deltas if d.set == set and d.scorer == scorer), None)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The whole comparison as JSON."""
        return self.model_dump_json(indent=indent)

    def _title(self) -> str:
        return f"Comparison: {self.a.label} vs {self.b.label}"

    def to_markdown(self, *, cases: bool = True) -> str:
        """A Markdown report: both runs per set and scorer, then (``cases``) both answers."""
        runs = [self.a, self.b]
        return _markdown(self._title(), runs, _rows_of(self), cases, _notes(runs, self))

    def to_html(self) -> str:
        """One self-contained HTML page: summaries side by side, bar chart, per-case rows."""
        runs = [self.a, self.b]
        return _html(self._title(), runs, _rows_of(self), _notes(runs, self))

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_json())

    def write_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_markdown` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_markdown())

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` atomically; return the path."""
        return _write_atomic(path, self.to_html())


def default_label(chat: Answering) -> str:
    """What a run of ``chat`` is called in reports: its model, and the gates guarding it.

    Example:
        >>> from finetune_qa import ChatModel
        >>> default_label(ChatModel.offline("gpt-4o-mini"))
        'gpt-4o-mini'
    """
    gates = [
        name for name in ("question", "answer") if getattr(chat, f"{name}_gate", None) is not None
    ]
    if not gates:
        return chat.model
    return f"{chat.model} (guarded: {' + '.join(gates)} gate{'s' if len(gates) > 1 else ''})"


def compare(a: EvalResult, b: EvalResult, *, labels: tuple[str, str] | None = None) -> Comparison:
    """Put two results side by side; cases are matched by id (and question).

    Each side keeps its run's label (the model, and the gates guarding it), or takes the
    one given in ``labels``; two sides that would still read the same are told apart
    with ``(a)`` and ``(b)``, so no report has two columns of one name.

    Case ids come from the question (:func:`case_id`), so runs on different data, limits
    or seeds still pair the same question. A case only one run has is kept, marked with
    :attr:`CaseComparison.only_in`, and counted in :attr:`Comparison.only_a` /
    :attr:`Comparison.only_b`; an id both have for *different* questions (ids of a suite
    you built yourself) is not paired either.

    Args:
        a: the first run (e.g. the base model, or before a change).
        b: the second run (e.g. the fine-tune, or after).
        labels: names for the two sides in the reports, e.g. ``("plain", "guarded")``.

    Returns:
        Per set and scorer ``a``, ``b`` and ``delta = b - a``; per case both answers.
        When every case is matched these are the runs' own means; otherwise they are
        the means over the matched cases only, so the delta compares the same questions
        (each run's own means stay in its :class:`EvalResult`).
    """
    by_id = {c.id: c for c in b.cases}
    pairs: list[tuple[CaseResult, CaseResult]] = []
    only_a: list[CaseComparison] = []
    for ca in a.cases:
        cb = by_id.get(ca.id)
        if cb is not None and question_key(cb.question) == question_key(ca.question):
            del by_id[ca.id]
            pairs.append((ca, cb))
        else:
            only_a.append(_case_pair(ca, None))
    only_b = [_case_pair(None, cb) for cb in by_id.values()]
    sets_a, sets_b = a.sets, b.sets
    if only_a or only_b:  # compare the same questions, not two different populations
        names = list(dict.fromkeys([*a.sets, *b.sets]))
        sets_a = {
            n: _summarize([ca for ca, _ in pairs if ca.set == n], a.scorers)
            for n in names
            if any(ca.set == n for ca, _ in pairs)
        }
        sets_b = {
            n: _summarize([cb for _, cb in pairs if cb.set == n], b.scorers)
            for n in names
            if any(cb.set == n for _, cb in pairs)
        }
    deltas: list[ScoreDelta] = []
    for name in _ordered_sets([*sets_a, *sets_b]):
        sa, sb = sets_a.get(name), sets_b.get(name)
        scorers = _ordered_scores([*(sa.scores if sa else {}), *(sb.scores if sb else {})])
        for scorer in scorers:
            va = sa.scores.get(scorer) if sa else None
            vb = sb.scores.get(scorer) if sb else None
            if va is None and vb is None:
                continue
            delta = vb - va if va is not None and vb is not None else None
            deltas.append(ScoreDelta(set=name, scorer=scorer, a=va, b=vb, delta=delta))
    both = [_case_pair(ca, cb) for ca, cb in pairs]
    label_a, label_b = labels if labels is not None else (a.label, b.label)
    if label_a == label_b:
        label_a, label_b = f"{label_a} (a)", f"{label_b} (b)"
    return Comparison(
        a=a.summary().model_copy(update={"label": label_a}),
        b=b.summary().model_copy(update={"label": label_b}),
        deltas=deltas,
        matched=len(both),
        only_a=len(only_a),
        only_b=len(only_b),
        cases=[*both, *only_a, *only_b],
    )


def _case_pair(ca: CaseResult | None, cb: CaseResult | None) -> CaseComparison:
    x = ca or cb
    assert x is not None
    return CaseComparison(
        id=x.id,
        only_in=None if ca and cb else "a" if ca else "b",
        set=x.set,
        question=x.question,
        reference=x.reference,
        output_a=ca.output if ca else None,
        output_b=cb.output if cb else None,
        error_a=ca.error if ca else None,
        error_b=cb.error if cb else None,
        scores_a=dict(ca.scores) if ca else {},
        scores_b=dict(cb.scores) if cb else {},
    )


def _summarize(rows: Sequence[CaseResult], names: Sequence[str]) -> SetSummary:
    ok = [r for r in rows if r.ok]
    scores: dict[str, float | None] = {}
    for name in names:
        values = [v for r in ok if (v := r.scores.get(name)) is not None]
        scores[name] = sum(values) / len(values) if values else None
    latencies = sorted(r.latency for r in ok if r.latency is not None)
    p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None
    grades = [r.judge for r in rows if r.judge is not None]
    return SetSummary(
        n=len(rows),
        errors=len(rows) - len(ok),
        scores={k: v for k, v in scores.items() if v is not None or _applies(rows, k)},
        latency_mean=sum(latencies) / len(latencies) if latencies else None,
        latency_p95=p95,
        judge_unparsed=sum(1 for g in grades if g.status == "unparsed"),
        judge_errors=sum(1 for g in grades if g.status == "error"),
    )


def _applies(rows: Sequence[CaseResult], name: str) -> bool:
    """True when some answered row has the score (so a None mean means no values)."""
    return any(r.scores.get(name) is not None for r in rows)


def _rows_of(source: EvalResult | Comparison) -> list[_Row]:
    if isinstance(source, EvalResult):
        return [
            _Row(c.id, c.set, c.question, c.reference, (c.output,), (c.error,), (c.scores,))
            for c in source.cases
        ]
    return [
        _Row(
            c.id,
            c.set,
            c.question,
            c.reference,
            (c.output_a, c.output_b),
            (c.error_a, c.error_b),
            (c.scores_a, c.scores_b),
            (c.only_in == "b", c.only_in == "a"),
        )
        for c in source.cases
    ]
