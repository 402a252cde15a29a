"""Golden sets, offline: record a model's answers (resumable), then score another model
against the recording."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from finetune_qa import (
    Answer,
    AnsweredAgreementScorer,
    ChatModel,
    ChatRequest,
    ChatResponse,
    DatasetBuilder,
    EvalCase,
    EvalResult,
    EvalSuite,
    FineTuneJob,
    GoldenSet,
    OfflineBackend,
    RecordError,
    RecordReport,
    Usage,
    UsageError,
    acompare_to_golden,
    arecord_answers,
    compare_to_golden,
    record_answers,
    sample_csv,
)
from finetune_qa.golden import OVERALL


def _train(backend: OfflineBackend, tmp_path: Path, model: str, suffix: str) -> str:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        DatasetBuilder().add_source(sample_csv()).build(train)
    job = FineTuneJob.create(train, model=model, backend=backend, suffix=suffix)
    job.wait()
    assert job.fine_tuned_model is not None
    return job.fine_tuned_model


@pytest.fixture
def backend() -> OfflineBackend:
    return OfflineBackend()


@pytest.fixture
def suite() -> EvalSuite:
    """12 training questions, 12 unrelated ones, and two rephrasings."""
    base = EvalSuite.from_file(sample_csv(), limit={"verbatim": 12, "unrelated": 12})
    pairs = [(c.question, c.reference or "") for c in base.of_set("verbatim")]
    return EvalSuite.from_pairs(
        pairs,
        variations={pairs[0][0]: "Tell me what Lumen Notes is.", pairs[1][0]: "Who made it?"},
        unrelated=[c.question for c in base.of_set("unrelated")],
        builtin_unrelated=False,
        name="sample",
    )


# ------------------------------------------------------------------------- golden sets


def test_golden_set_round_trips_exactly(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "gold")
    path = tmp_path / "golden.jsonl"
    report = record_answers(ChatModel(ft, backend=backend), suite, path)
    assert (report.questions, report.asked, report.recorded, report.errors) == (26, 26, 26, 0)
    assert report.complete and report.total == 26
    text = path.read_text(encoding="utf-8")
    golden = GoldenSet.read(path)
    assert golden.to_jsonl() == text
    golden.write(tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_bytes() == path.read_bytes()
    assert golden.counts() == {"verbatim": 12, "variations": 2, "unrelated": 12}
    header, first = (json.loads(line) for line in text.splitlines()[:2])
    assert header["format"] == "finetune-qa-golden" and header["model"] == ft
    assert header["stop"] == ["**STOP**"] and header["suite"] == "sample"
    assert set(first) == {
        "id",
        "set",
        "question",
        "source_question",
        "answer",
        "finish_reason",
        "model",
        "backend",
        "recorded_at",
    }
    assert first["backend"] == "offline" and first["finish_reason"] == "stop"
    assert first["answer"] == suite.cases[0].reference  # a fine-tune knows its data
    assert dt.datetime.fromisoformat(first["recorded_at"].replace("Z", "+00:00")).tzinfo


def test_golden_set_read_errors(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match="not a golden set header"):
        GoldenSet.read(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(RecordError, match="empty"):
        GoldenSet.read(path)
    header = {"model": "m", "backend": "offline", "created_at": "2026-12-01T00:00:00Z"}
    line = {
        "id": "verbatim-1",
        "set": "verbatim",
        "question": "What?",
        "source_question": "What?",
        "answer": "That.",
        "finish_reason": "stop",
        "model": "m",
        "backend": "offline",
        "recorded_at": "2026-12-01T00:00:00Z",
    }
    twice = [header, line, {**line, "id": "verbatim-2"}]
    path.write_text("".join(json.dumps(o) + "\n" for o in twice), encoding="utf-8")
    with pytest.raises(RecordError, match="recorded twice") as info:
        GoldenSet.read(path)
    assert info.value.line == 3


class _Interrupted(BaseException):
    """Stands in for the process being stopped (Ctrl-C, a crash)."""


class _Recorder(OfflineBackend):
    """The offline backend, counting the questions it is asked; optionally stops after N."""

    def __init__(self, fake: Any, *, stop_after: int | None = None) -> None:
        super().__init__(fake)
        self.asked: list[str] = []
        self.stop_after = stop_after

    def _count(self, request: ChatRequest) -> None:
        if self.stop_after is not None and len(self.asked) >= self.stop_after:
            raise _Interrupted
        self.asked.append(str(request.messages[-1]["content"]))

    def chat(self, request: ChatRequest) -> ChatResponse:
        self._count(request)
        return super().chat(request)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self._count(request)
        return await super().achat(request)


def test_an_interrupted_recording_resumes_with_the_rest(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "resume")
    path = tmp_path / "golden.jsonl"
    first = _Recorder(backend.fake, stop_after=10)
    with pytest.raises(_Interrupted):
        record_answers(ChatModel(ft, backend=first), suite, path, concurrency=1, checkpoint_every=4)
    kept = GoldenSet.read(path)  # what was answered before the stop is on disk
    assert len(kept.answers) == 10
    assert [a.question for a in kept.answers] == first.asked

    second = _Recorder(backend.fake)
    report = record_answers(ChatModel(ft, backend=second), suite, path)
    assert (report.already, report.asked, report.recorded, report.total) == (10, 16, 16, 26)
    assert sorted(second.asked) == sorted(c.question for c in suite.cases[10:])
    assert not set(second.asked) & set(first.asked)
    again = _Recorder(backend.fake)
    done = record_answers(ChatModel(ft, backend=again), suite, path)
    assert again.asked == [] and done.asked == 0 and done.complete
    golden = GoldenSet.read(path)
    assert [a.question for a in golden.answers] == [c.question for c in suite.cases]
    assert golden.header == kept.header


def test_failed_questions_are_counted_and_asked_again(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "faults")
    path = tmp_path / "golden.jsonl"
    backend.fake.inject("POST /chat/completions", status=400, times=3)  # not retried
    report = record_answers(ChatModel(ft, backend=backend), suite, path)
    assert (report.asked, report.recorded, report.errors) == (26, 23, 3)
    assert not report.complete and len(report.error_examples) == 3
    assert "BadRequestError" in report.error_examples[0]
    assert len(GoldenSet.read(path).answers) == 23

    counting = _Recorder(backend.fake)
    report = record_answers(ChatModel(ft, backend=counting), suite, path)
    assert (report.already, report.asked, report.recorded, report.errors) == (23, 3, 3, 0)
    assert len(counting.asked) == 3 and report.complete


def test_recording_refuses_another_models_file(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    path = tmp_path / "golden.jsonl"
    record_answers(ChatModel("gpt-4o-mini", backend=backend), suite.of_set("unrelated"), path)
    with pytest.raises(UsageError, match="own file"):
        record_answers(ChatModel("gpt-4.1-mini", backend=backend), suite, path)
    with pytest.raises(UsageError, match="recorded with system_prompt"):
        record_answers(ChatModel("gpt-4o-mini", backend=backend, system_prompt=None), suite, path)
    with pytest.raises(UsageError, match="recorded with stop"):
        record_answers(ChatModel("gpt-4o-mini", backend=backend, stop="END"), suite, path)
    cases = [*suite.of_set("unrelated"), *suite.of_set("unrelated")]
    again = record_answers(ChatModel("gpt-4o-mini", backend=backend), cases, path)
    assert (again.questions, again.already, again.asked) == (24, 24, 0)
    twice = record_answers(ChatModel("gpt-4o-mini", backend=backend), cases, tmp_path / "b.jsonl")
    assert (twice.asked, twice.total) == (12, 12)  # a question given twice is asked once
    with pytest.raises(UsageError, match="checkpoint_every"):
        record_answers(ChatModel("gpt-4o-mini", backend=backend), suite, path, checkpoint_every=0)


# -------------------------------------------------------------------- scoring against it


def test_compare_to_golden_scores_per_set_and_overall(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "old")
    path = tmp_path / "golden.jsonl"
    record_answers(ChatModel(ft, backend=backend), suite, path)

    same = compare_to_golden(path, ChatModel(ft, backend=backend))
    assert list(same.sets) == ["verbatim", "variations", "unrelated", OVERALL]
    assert same.sets[OVERALL].n == 26
    for name in same.sets:
        for scorer in ("exact", "f1", "rouge_l", "agreement"):
            assert same.score(name, scorer) == 1.0, (name, scorer)
    assert same.scorers == ["exact", "contains", "f1", "rouge_l", "answered", "agreement"]

    base = compare_to_golden(GoldenSet.read(path), ChatModel("gpt-4o-mini", backend=backend))
    exact, f1 = base.score(OVERALL, "exact"), base.score(OVERALL, "f1")
    assert exact is not None and f1 is not None and exact < 0.5 and 0.0 < f1 < 0.9
    assert base.label == "gpt-4o-mini" and base.model == "gpt-4o-mini"

    comparison = base.compare(same)
    assert comparison.matched == 26 and comparison.delta(OVERALL, "exact") is not None
    html, md = comparison.to_html(), same.to_markdown()
    assert 'data-set="overall"' in html and html.count('<tr class="case"') == 26
    assert "## overall" in md
    overall = md.split("## overall", 1)[1]
    assert "| exact | 1.00 |" in overall and "Question" not in overall  # no empty case table


def test_agreement_scorer_compares_answering_with_refusing() -> None:
    scorer = AnsweredAgreementScorer()

    def answer(text: str) -> Answer:
        return Answer(
            question="q",
            text=text,
            finish_reason="stop",
            usage=Usage(),
            latency=0.0,
            model="m",
            request_id=None,
            stopped_at_marker=True,
        )

    def case(reference: str | None) -> EvalCase:
        return EvalCase(id="unrelated-1", set="unrelated", question="q", reference=reference)

    refusal = "I'm sorry, I can't help with that."
    assert scorer.score(case(refusal), answer("I cannot answer that.")) == 1.0
    assert scorer.score(case("Star Wars is a film."), answer("A space opera.")) == 1.0
    assert scorer.score(case(refusal), answer("Star Wars is a film.")) == 0.0
    assert scorer.score(case(None), answer("anything")) is None


def test_an_empty_golden_set_is_refused(backend: OfflineBackend, tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    record_answers(ChatModel("gpt-4o-mini", backend=backend), [], path)
    assert GoldenSet.read(path).answers == []
    with pytest.raises(UsageError, match="no answers"):
        compare_to_golden(path, ChatModel("gpt-4o-mini", backend=backend))


def test_async_twins_record_resume_and_compare(
    backend: OfflineBackend, tmp_path: Path, suite: EvalSuite
) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "async")
    path = tmp_path / "golden.jsonl"
    bot = ChatModel(ft, backend=backend)

    async def main() -> tuple[RecordReport, RecordReport, EvalResult]:
        first = await arecord_answers(bot, suite.of_set("verbatim"), path)
        rest = await arecord_answers(bot, suite, path, concurrency=4)
        return first, rest, await acompare_to_golden(path, bot)

    first, rest, result = asyncio.run(main())
    assert (first.recorded, rest.already, rest.recorded, rest.total) == (12, 12, 14, 26)
    assert result.score(OVERALL, "exact") == 1.0 and result.sets[OVERALL].n == 26
