"""Evaluation suites against offline models: scorers, variations, runs, judge, comparison, reports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from eval_helpers import Scripted

from finetune_qa import DatasetBuilder, FineTuneJob, OfflineBackend
from finetune_qa import evaluation as ev
from finetune_qa.backends import Usage
from finetune_qa.backends._fake import _fake_eval
from finetune_qa.backends._fake._answers import Answerer
from finetune_qa.chat import Answer, ChatModel
from finetune_qa.data import QAPair
from finetune_qa.evaluation import (
    EvalCase,
    EvalResult,
    EvalSuite,
    JudgeScorer,
    compare,
)
from finetune_qa.exceptions import InputFileError, JSONLFormatError, RecordError, UsageError
from finetune_qa.readers import read_qa
from finetune_qa.samples import sample_csv

SYS = "You are a factual chatbot that answers questions about Lumen Notes."
CHAT = "POST /chat/completions"
PAIRS = [(p.question, p.answer) for p in read_qa(sample_csv())]
TRAINED = [p for p in PAIRS if p[0] != "Price?"]  # the builder drops "Price?" (too short)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[OfflineBackend, ChatModel, ChatModel]:
    """One offline fine-tune on the bundled sample: (backend, fine-tune, base model)."""
    d = tmp_path_factory.mktemp("lab")
    DatasetBuilder(system_prompt=SYS).add_source(sample_csv()).build(d / "train.jsonl")
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        d / "train.jsonl", model="gpt-4o-mini", backend=backend, suffix="lumen"
    )
    job.wait()
    tuned = job.chat_model(retries=0)
    base = ChatModel("gpt-4o-mini", backend=backend, system_prompt=SYS, retries=0)
    return backend, tuned, base


@pytest.fixture
def backend(lab: tuple[OfflineBackend, ChatModel, ChatModel]) -> Iterator[OfflineBackend]:
    yield lab[0]
    lab[0].fake.reset_faults()


@pytest.fixture(scope="module")
def suite(
    lab: tuple[OfflineBackend, ChatModel, ChatModel], tmp_path_factory: pytest.TempPathFactory
) -> EvalSuite:
    cache = tmp_path_factory.mktemp("cache") / "variations.jsonl"
    return EvalSuite.from_file(sample_csv()).generate_variations(lab[2], 2, cache=cache)


@pytest.fixture(scope="module")
def results(
    lab: tuple[OfflineBackend, ChatModel, ChatModel], suite: EvalSuite
) -> tuple[EvalResult, EvalResult]:
    """(base result, fine-tune result), both judged by the base model."""
    _, tuned, base = lab
    judge = JudgeScorer(base)
    return suite.run(base, judge=judge), suite.run(tuned, judge=judge)


def _answer(text: str, finish: str = "stop") -> Answer:
    return Answer(
        question="q",
        text=text,
        finish_reason=finish,
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        latency=0.0,
        model="m",
        request_id=None,
        stopped_at_marker=finish == "stop",
    )


# ------------------------------------------------------------------------ offline task prompts


def test_fake_phrases_match_the_prompts() -> None:
    assert _fake_eval.PARAPHRASE_TASK_PHRASE == ev.PARAPHRASE_TASK_PHRASE
    assert _fake_eval.JUDGE_TASK_PHRASE == ev.JUDGE_TASK_PHRASE
    assert ev.PARAPHRASE_TASK_PHRASE in ev.PARAPHRASE_PROMPT
    assert ev.JUDGE_TASK_PHRASE in ev.JUDGE_PROMPT
    plain = [{"role": "system", "content": SYS}, {"role": "user", "content": "Question: hi"}]
    assert _fake_eval.answer(plain) is None


def test_fake_paraphrases_keep_content_so_a_fine_tune_finds_most() -> None:
    answerer = Answerer([(q, a + " **STOP**") for q, a in PAIRS])
    found = total = 0
    for question, _ in PAIRS:
        texts = _fake_eval.paraphrases(question, 3)
        assert len(texts) == 3 and len({t.casefold() for t in texts}) == 3
        assert question not in texts and texts == _fake_eval.paraphrases(
            question, 3
        )  # deterministic
        for text in texts:
            hit = answerer.answer(text)
            total += 1
            found += hit.kind == "neighbour" and hit.matched == question
    assert 0.7 <= found / total < 1.0  # most are found, some rephrasings are missed


# ------------------------------------------------------------------------------- suites


def test_from_pairs_builds_three_sets() -> None:
    suite = EvalSuite.from_pairs(
        [*PAIRS, ("what is lumen notes", "duplicate, dropped")],
        variations={"What is Lumen Notes?": ["Tell me about Lumen Notes", "What IS Lumen Notes?"]},
        unrelated=["Who won Wimbledon in 2019?", "What is Star Wars?"],
    )
    counts = suite.counts()
    # "What IS Lumen Notes?" is the training question itself, and Star Wars is already built in
    assert counts == {"verbatim": 25, "variations": 1, "unrelated": len(ev.UNRELATED_QUESTIONS) + 1}
    var = suite.of_set("variations")[0]
    assert (var.id, var.reference, var.source_question) == (
        ev.case_id("variations", "Tell me about Lumen Notes"),
        PAIRS[0][1],
        "What is Lumen Notes?",
    )
    assert suite.dropped == {
        "duplicate_question": 1,
        "duplicate_unrelated": 1,
        "variation_is_a_training_question": 1,
    }
    assert suite.cases[0] == EvalCase(
        id=ev.case_id("verbatim", PAIRS[0][0]),
        set="verbatim",
        question=PAIRS[0][0],
        reference=PAIRS[0][1],
        source_question=PAIRS[0][0],
    )
    assert all(c.reference is None and c.source_question is None for c in suite.of_set("unrelated"))
    assert len({c.id for c in suite}) == len(suite)

    # variations as (question, answer) pairs are linked to the training question by answer
    linked = EvalSuite.from_pairs(
        PAIRS, variations=[QAPair(question="Who builds Lumen Notes?", answer=PAIRS[1][1])]
    )
    assert linked.of_set("variations")[0].source_question == PAIRS[1][0]
    with pytest.raises(UsageError, match="not among the pairs"):
        EvalSuite.from_pairs(PAIRS, variations={"What is Acme?": "Acme?"})


def test_unrelated_bank_is_big_varied_and_off_topic() -> None:
    bank = ev.UNRELATED_QUESTIONS
    assert len(bank) >= 60 and "What is Star Wars?" in bank
    assert len({q.casefold() for q in bank}) == len(bank)
    answerer = Answerer([(q, a + " **STOP**") for q, a in PAIRS])
    assert all(answerer.answer(q).kind == "off_domain" for q in bank)


def test_limit_samples_each_set_reproducibly() -> None:
    a = EvalSuite.from_pairs(PAIRS, limit=5, seed=1)
    b = EvalSuite.from_pairs(PAIRS, limit=5, seed=1)
    c = EvalSuite.from_pairs(PAIRS, limit={"unrelated": 3}, seed=1)
    assert [x.question for x in a] == [x.question for x in b]
    assert a.counts() == {"verbatim": 5, "variations": 0, "unrelated": 5}
    assert c.counts() == {"verbatim": 25, "variations": 0, "unrelated": 3}
    order = [q for q, _ in PAIRS]
    picked = [order.index(x.question) for x in a.of_set("verbatim")]
    assert picked == sorted(picked)  # a sample keeps the original order
    assert [x.question for x in EvalSuite.from_pairs(PAIRS, limit=5, seed=2)] != [
        x.question for x in a
    ]
    with pytest.raises(UsageError, match="limit"):
        EvalSuite.from_pairs(PAIRS, limit=-1)


def test_suite_jsonl_round_trip_and_errors(tmp_path: Path, suite: EvalSuite) -> None:
    path = suite.to_jsonl(tmp_path / "suite.jsonl")
    back = EvalSuite.from_jsonl(path)
    assert back.cases == suite.cases
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "set", "question", "reference", "source_question"}

    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n", encoding="utf-8")
    with pytest.raises(JSONLFormatError, match=r"bad\.jsonl:2"):
        EvalSuite.from_jsonl(bad)
    bad.write_text('{"id": "x", "set": "other", "question": "q"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl:1: not an evaluation case: set"):
        EvalSuite.from_jsonl(bad)
    line = '{"id": "x", "set": "unrelated", "question": "q"}\n'
    bad.write_text(line * 2, encoding="utf-8")
    with pytest.raises(RecordError, match=r":2: the id 'x' appears twice"):
        EvalSuite.from_jsonl(bad)
    with pytest.raises(InputFileError, match="no such file"):
        EvalSuite.from_jsonl(tmp_path / "missing.jsonl")


def test_from_file_reads_training_jsonl_and_unrelated_text(tmp_path: Path) -> None:
    DatasetBuilder(system_prompt=SYS).add_source(sample_csv()).build(tmp_path / "train.jsonl")
    (tmp_path / "off.txt").write_text(
        "# mine\nWho is Batman?\n\nWhat is Star Wars?\n", encoding="utf-8"
    )
    suite = EvalSuite.from_file(
        tmp_path / "train.jsonl", unrelated=tmp_path / "off.txt", builtin_unrelated=False
    )
    assert [c.question for c in suite.of_set("unrelated")] == [
        "Who is Batman?",
        "What is Star Wars?",
    ]
    verbatim = suite.of_set("verbatim")
    assert verbatim and all(c.reference and "**STOP**" not in c.reference for c in verbatim)
    assert suite.name == "train.jsonl"


def test_generated_variations_are_cached(
    lab: tuple[OfflineBackend, ChatModel, ChatModel], tmp_path: Path
) -> None:
    backend, _, base = lab
    cache = tmp_path / "variations.jsonl"
    suite = EvalSuite.from_pairs(PAIRS[:6], unrelated=[], builtin_unrelated=False)
    before = len(backend.fake.requests)
    first = suite.generate_variations(base, 2, cache=cache)
    assert len(backend.fake.requests) - before == 6  # one request per question
    assert first.counts()["variations"] == 12 and not first.generation_errors
    for case in first.of_set("variations"):
        assert (
            case.source_question in dict(PAIRS)
            and case.reference == dict(PAIRS)[case.source_question]
        )
    lines = [json.loads(x) for x in cache.read_text(encoding="utf-8").splitlines()]
    assert {x["model"] for x in lines} == {"gpt-4o-mini"} and len(lines) == 6

    before = len(backend.fake.requests)
    again = suite.generate_variations(base, 2, cache=cache)
    assert len(backend.fake.requests) == before  # zero requests the second time
    assert again.cases == first.cases
    # asking for more than the cache holds asks again; fewer does not
    assert suite.generate_variations(base, 1, cache=cache).counts()["variations"] == 6
    assert len(backend.fake.requests) == before
    suite.generate_variations(base, 3, cache=cache)
    assert len(backend.fake.requests) == before + 6
    with pytest.raises(UsageError):
        suite.generate_variations(base, 0)


def test_generation_failures_are_listed_not_raised(
    backend: OfflineBackend, lab: tuple[OfflineBackend, ChatModel, ChatModel]
) -> None:
    suite = EvalSuite.from_pairs(PAIRS[:4], builtin_unrelated=False)
    backend.fake.inject(CHAT, status=400)
    out = suite.generate_variations(lab[2], 1, concurrency=1)
    assert len(out.generation_errors) == 1 and "BadRequestError" in out.generation_errors[0]
    assert out.counts()["variations"] == 3


# --------------------------------------------------------------------------------- runs


def test_fine_tune_knows_its_questions_not_its_limits(
    results: tuple[EvalResult, EvalResult], suite: EvalSuite
) -> None:
    base, tuned = results
    assert tuned.n == len(suite) and tuned.errors == 0 and tuned.backend == "offline"
    assert tuned.model.startswith("ft:gpt-4o-mini") and tuned.label == tuned.model
    v, var = tuned.score("verbatim", "exact"), tuned.score("variations", "exact")
    assert v is not None and var is not None
    assert v >= 0.9  # trained answers, verbatim (the one miss: "Price?" was too short to train)
    assert 0.6 <= var < v  # rephrasings: mostly found, not all
    assert tuned.off_topic_answer_rate == 1.0  # the seed's point: it answers "What is Star Wars?"
    assert tuned.score("unrelated", "exact") is None  # no reference there
    assert tuned.score("verbatim", "stop") == 1.0
    b = base.score("verbatim", "exact")
    assert b is not None and b < 0.1
    f1 = base.score("verbatim", "f1")
    assert f1 is not None and f1 < 0.3
    star = next(c for c in tuned.cases if c.question == "What is Star Wars?")
    assert (
        star.ok
        and star.output
        and star.output.startswith("Star Wars is")
        and star.scores["answered"] == 1.0
    )
    # the judge agrees with the token scores, and every reply parsed
    assert (tuned.score("verbatim", "judge") or 0) > 0.8 > (base.score("verbatim", "judge") or 1)
    assert all(s.judge_unparsed == 0 and s.judge_errors == 0 for s in tuned.sets.values())
    graded = [c.judge for c in tuned.cases if c.judge is not None]
    assert len(graded) == len(suite) - suite.counts()["unrelated"]
    assert all(g.score is not None and 1 <= g.score <= 5 for g in graded)


def test_summary_means_match_the_rows(results: tuple[EvalResult, EvalResult]) -> None:
    tuned = results[1]
    for name, summary in tuned.sets.items():
        rows = [c for c in tuned.cases if c.set == name]
        assert summary.n == len(rows)
        for scorer, mean in summary.scores.items():
            values = [c.scores[scorer] for c in rows if c.scores.get(scorer) is not None]
            assert mean == pytest.approx(sum(values) / len(values))  # type: ignore[arg-type]
        assert summary.latency_mean is not None and summary.latency_p95 is not None
        assert summary.latency_p95 >= min(c.latency for c in rows if c.latency is not None)
    assert tuned.sets["unrelated"].answered_rate == 1.0
    assert list(tuned.sets) == ["verbatim", "variations", "unrelated"]


def test_failed_questions_are_recorded_and_counted(
    backend: OfflineBackend, lab: tuple[OfflineBackend, ChatModel, ChatModel]
) -> None:
    suite = EvalSuite.from_pairs(TRAINED[:6], limit={"unrelated": 4})
    backend.fake.inject(CHAT, status=400, times=3)
    result = suite.run(lab[1], concurrency=1)
    failed = [c for c in result.cases if not c.ok]
    assert result.errors == 3 and len(failed) == 3
    assert all(
        c.error_type == "BadRequestError" and c.output is None and c.scores == {} for c in failed
    )
    assert sum(s.errors for s in result.sets.values()) == 3
    assert result.sets["verbatim"].errors == 3 and result.sets["verbatim"].n == 6
    # means are over the answered cases only
    assert result.score("verbatim", "exact") == 1.0


def test_unparseable_judge_replies_are_counted(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    _, tuned, _ = lab
    suite = EvalSuite.from_pairs(PAIRS[:3], builtin_unrelated=False)
    # a fine-tune does not follow the judge prompt: its replies hold no score
    result = suite.run(tuned, judge=JudgeScorer(tuned))
    assert result.sets["verbatim"].judge_unparsed == 3
    assert result.score("verbatim", "judge") is None and result.score("verbatim", "exact") == 1.0
    assert all(
        c.judge is not None and c.judge.status == "unparsed" and c.judge.reply for c in result.cases
    )


def test_custom_scorers_progress_and_async(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    class Short:
        name = "short"

        def score(self, case: EvalCase, answer: Answer) -> float | None:
            return float(len(answer.text) <= 60)

    suite = EvalSuite.from_pairs(PAIRS[:4], limit={"unrelated": 2})
    seen: list[tuple[int, int]] = []
    result = suite.run(
        lab[1],
        scorers=[Short(), ev.ReferenceScorer("f1", ev.token_f1)],
        progress=lambda d, t: seen.append((d, t)),
    )
    assert result.scorers == ["short", "f1"]
    assert (
        result.score("unrelated", "f1") is None and result.score("unrelated", "short") is not None
    )
    assert seen[-1] == (6, 6) and len(seen) == 6
    again = asyncio.run(
        suite.arun(lab[1], scorers=[Short(), ev.ReferenceScorer("f1", ev.token_f1)])
    )
    assert [c.output for c in again.cases] == [c.output for c in result.cases]

    class Broken:
        name = "broken"

        def score(self, case: EvalCase, answer: Answer) -> float | None:
            return float("nan")

    with pytest.raises(UsageError, match="broken"):
        suite.run(lab[1], scorers=[Broken()])
    with pytest.raises(UsageError, match="no cases"):
        EvalSuite([]).run(lab[1])


def test_a_guarded_models_refusal_counts_as_not_answered(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    suite = EvalSuite.from_pairs(PAIRS[:2], unrelated=["Who is Batman?"], builtin_unrelated=False)
    _, tuned, _ = lab
    text = "Batman is a well-known topic."  # what the fine-tune says, here declared a refusal
    result = suite.run(tuned, refusal_texts=[text])
    assert result.off_topic_answer_rate == 0.0 and result.score("verbatim", "answered") == 1.0


# --------------------------------------------------------------------------- comparison


def test_compare_deltas_and_cases(results: tuple[EvalResult, EvalResult]) -> None:
    base, tuned = results
    cmp = compare(base, tuned)
    assert (cmp.a.label, cmp.b.label) == (base.label, tuned.label)
    for d in cmp.deltas:
        assert d.a == base.score(d.set, d.scorer) and d.b == tuned.score(d.set, d.scorer)
        assert d.delta == pytest.approx(d.b - d.a)  # type: ignore[operator]
    exact = cmp.delta("verbatim", "exact")
    assert exact is not None and exact.delta is not None and exact.delta > 0.8
    assert cmp.delta("unrelated", "exact") is None
    assert len(cmp.cases) == base.n
    row = cmp.cases[0]
    assert row.output_a == base.cases[0].output and row.output_b == tuned.cases[0].output
    assert row.scores_b == tuned.cases[0].scores
    assert ev.Comparison.from_json(cmp.to_json()) == cmp
    assert base.compare(tuned) == cmp


def test_suite_compare_runs_both(lab: tuple[OfflineBackend, ChatModel, ChatModel]) -> None:
    _, tuned, base = lab
    suite = EvalSuite.from_pairs(PAIRS[:3], limit={"unrelated": 2})
    cmp = suite.compare(base, tuned, labels=("base", "fine-tuned"))
    assert (cmp.a.label, cmp.b.label) == ("base", "fine-tuned")
    assert cmp.delta("verbatim", "exact") == ev.ScoreDelta(
        set="verbatim", scorer="exact", a=0.0, b=1.0, delta=1.0
    )


# ------------------------------------------------------------------------------ reports

PLANTED = '<script>alert("pwned")</script> & <b>bold</b>'


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.title = ""
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.summary_heads: list[list[str]] = []
        self.case_rows: dict[str, int] = {}
        self.table_set: str | None = None
        self.table_class: str | None = None
        self.in_head_th = False
        self.text: list[str] = []
        self.svg = 0
        self.svg_rects = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.stack.append(tag)
        if tag == "script":
            self.scripts.append(a)
        elif tag == "link":
            self.links.append(a)
        elif tag == "svg":
            self.svg += 1
        elif tag == "rect" and self.svg:
            self.svg_rects += 1
        elif tag == "table":
            self.table_set, self.table_class = a.get("data-set"), a.get("class")
            if self.table_class == "summary":
                self.summary_heads.append([])
        elif tag == "tr" and a.get("class") == "case" and self.table_set:
            self.case_rows[self.table_set] = self.case_rows.get(self.table_set, 0) + 1
        elif tag == "th" and "thead" in self.stack and self.table_class == "summary":
            self.in_head_th = True

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop() != tag:
            pass
        if tag == "th":
            self.in_head_th = False

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "title" and "svg" not in self.stack:
            self.title += data
        if self.in_head_th:
            self.summary_heads[-1].append(data)
        self.text.append(data)


def _planted(base: EvalResult) -> EvalResult:
    cases = list(base.cases)
    cases[0] = cases[0].model_copy(update={"output": PLANTED})
    return base.model_copy(update={"cases": cases, "label": "base <model>"})


def test_html_report_structure(results: tuple[EvalResult, EvalResult], tmp_path: Path) -> None:
    base, tuned = results
    cmp = compare(_planted(base), tuned)
    path = cmp.write_html(tmp_path / "out" / "report.html")
    page_text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(page_text)
    page.close()
    assert page.title == f"Comparison: base <model> vs {tuned.label}"
    assert page.scripts == [] and page.links == []  # nothing to fetch, nothing to run
    assert (
        "http://" not in page_text.replace("http://www.w3.org/2000/svg", "")
        and "https://" not in page_text
    )
    assert len(page.summary_heads) == 3
    for head in page.summary_heads:
        assert "base <model>" in head and tuned.label in head and "Δ" in head
    counts = {name: s.n for name, s in tuned.sets.items()}
    assert page.case_rows == counts
    # the planted answer arrives as text, escaped in the source
    assert PLANTED in "".join(page.text)
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page_text
    assert "<script>" not in page_text
    assert page.svg == 1 and page.svg_rects > 10
    assert not list((tmp_path / "out").glob(".*tmp"))  # written atomically, nothing left over

    single = _Page()
    single.feed(tuned.to_html())
    assert single.title == f"Evaluation of {tuned.label}" and single.case_rows == counts
    assert all(tuned.label in h and "Δ" not in h for h in single.summary_heads)


def test_markdown_and_json_reports(results: tuple[EvalResult, EvalResult], tmp_path: Path) -> None:
    base, tuned = results
    md = compare(_planted(base), tuned).to_markdown()
    assert md.startswith("# Comparison: base &lt;model&gt; vs ")
    # sets are named by what they are: the QA file's own name, rephrasings, off-topic ones
    assert f"## {sample_csv().name}" in md and "## verbatim" not in md
    assert "## rephrasings" in md and "## off-topic questions" in md
    assert "| exact | 0.00 | 0.96 | +0.96 |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    rows = [line for line in md.splitlines() if line.startswith("| verbatim-")]
    assert len(rows) == tuned.sets["verbatim"].n
    short = tuned.to_markdown(cases=False)
    assert "| verbatim-1 |" not in short and "| answered | 1.00 |" in short
    assert (
        EvalResult.from_json(tuned.write_json(tmp_path / "r.json").read_text(encoding="utf-8"))
        == tuned
    )
    assert (
        tuned.write_markdown(tmp_path / "r.md").read_text(encoding="utf-8") == tuned.to_markdown()
    )
    with pytest.raises(InputFileError, match="cannot write"):
        tuned.write_html(tmp_path / "r.json" / "x.html")  # a file where a directory should be


def _png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw (still filtered) scanlines of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    assert len(raw) == stride * height
    rows = [raw[i * stride : (i + 1) * stride] for i in range(height)]
    assert all(r[0] <= 4 for r in rows)  # valid filter types
    return width, height, rows


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def test_html_report_renders_in_chromium(
    results: tuple[EvalResult, EvalResult], tmp_path: Path
) -> None:
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("FINETUNE_QA_REQUIRE_BROWSER"):
            pytest.fail(f"{message}; CI requires the browser render check")
        pytest.skip(f"{message}; the HTML render check did not run")
    page = compare(*results).write_html(tmp_path / "report.html")
    png = tmp_path / "shot.png"
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    subprocess.run(
        [*flags, f"--screenshot={png}", "--window-size=1200,1600", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # the DOM as the browser built it: both models in the summary, side by side
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    a, b = results
    assert a.model in dom and b.model in dom
    assert dom.count("<table") >= 2
    data = png.read_bytes()
    assert len(data) > 20_000
    width, height, rows = _png_rows(data)
    assert (width, height) == (1200, 1600)
    # one colour everywhere would leave a handful of distinct (filtered) scanlines and bytes
    assert len(set(rows)) > 200
    assert len(set(b"".join(rows[::20]))) > 64


# ------------------------------------------------------------------ review fixes (regressions)


def test_compare_pairs_the_same_question_not_the_same_position(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    tuned = lab[1]
    pairs = TRAINED[:4]
    old = EvalSuite.from_pairs(pairs, builtin_unrelated=False)
    new = EvalSuite.from_pairs([("What is new?", "New."), *pairs], builtin_unrelated=False)
    cmp = compare(old.run(tuned), new.run(tuned))
    assert (cmp.matched, cmp.only_a, cmp.only_b) == (4, 0, 1)
    for row in cmp.cases[:4]:
        assert row.only_in is None and row.output_a == row.output_b  # same model, same question
        assert row.output_a == dict(pairs)[row.question]
    extra = cmp.cases[-1]
    assert (extra.question, extra.only_in, extra.output_a) == ("What is new?", "b", None)
    md = cmp.to_markdown()
    # one model on both sides: the sides are still told apart
    assert f"4 cases matched (0 only in {tuned.model} (a), 1 only in {tuned.model} (b))" in md
    assert "*not in this run*" in md and "not in this run" in cmp.to_html()

    # different seeds: the ids that both samples hold name the same question
    a = EvalSuite.from_pairs(TRAINED, limit=6, seed=1, builtin_unrelated=False)
    b = EvalSuite.from_pairs(TRAINED, limit=6, seed=2, builtin_unrelated=False)
    qa, qb = {c.id: c.question for c in a}, {c.id: c.question for c in b}
    assert set(qa) & set(qb) and all(qa[i] == qb[i] for i in set(qa) & set(qb))

    # hand-made ids that collide on different questions are not paired
    ra = EvalSuite([EvalCase(id="x", set="unrelated", question="Who is Batman?")]).run(tuned)
    rb = EvalSuite([EvalCase(id="x", set="unrelated", question="Who is Robin?")]).run(tuned)
    assert (compare(ra, rb).matched, compare(ra, rb).only_a, compare(ra, rb).only_b) == (0, 1, 1)


def test_rejected_paraphrase_replies_are_generation_errors() -> None:
    refusal = "I am sorry, but I cannot rephrase that question."
    backend = Scripted({"What is Lumen Notes?": refusal, "Who makes": "Who builds Lumen Notes?"})
    chat = ChatModel("gpt-4o-mini", backend=backend, retries=0)  # type: ignore[arg-type]
    suite = EvalSuite.from_pairs(PAIRS[:2], builtin_unrelated=False).generate_variations(chat)
    assert [c.question for c in suite.of_set("variations")] == ["Who builds Lumen Notes?"]
    assert suite.generation_errors == [
        f"What is Lumen Notes?: no rephrasing in the reply {refusal!r}"
    ]


def test_stop_score_means_the_model_wrote_the_marker(
    results: tuple[EvalResult, EvalResult],
) -> None:
    base, tuned = results
    # the offline base model never learnt the marker; the fine-tune ends every answer with it
    for name in ("verbatim", "variations", "unrelated"):
        assert base.score(name, "stop") == 0.0 and tuned.score(name, "stop") == 1.0
    assert all(c.output and "**STOP**" not in c.output for c in tuned.cases)


def test_the_suite_asks_without_stop_and_cuts_itself() -> None:
    backend = Scripted({"marker": "Yes. **STOP** and then some", "plain": "Yes."})
    chat = ChatModel("m", backend=backend, retries=0)  # type: ignore[arg-type]
    suite = EvalSuite(
        [
            EvalCase(id="a", set="verbatim", question="marker?", reference="Yes."),
            EvalCase(id="b", set="verbatim", question="plain?", reference="Yes."),
        ]
    )
    result = suite.run(chat)
    assert all(r.stop is None for r in backend.requests)  # type: ignore[attr-defined]
    assert [(c.output, c.scores["stop"], c.scores["exact"]) for c in result.cases] == [
        ("Yes.", 1.0, 1.0),
        ("Yes.", 0.0, 1.0),
    ]
    again = asyncio.run(suite.arun(chat))
    assert [c.scores for c in again.cases] == [c.scores for c in result.cases]
    # no marker, no stop score; nor for an Answering the suite cannot ask without one
    assert "stop" not in suite.run(chat.with_options(stop=None)).scorers

    class Wrapper:  # an Answering that is no ChatModel and holds none
        def __init__(self, inner: ChatModel) -> None:
            self.model, self.backend, self.stop, self._inner = "w", inner.backend, inner.stop, inner

        def ask_many(self, questions, **kw):  # type: ignore[no-untyped-def]
            return self._inner.ask_many(questions, **kw)

        async def aask_many(self, questions, **kw):  # type: ignore[no-untyped-def]
            return await self._inner.aask_many(questions, **kw)

    assert "stop" not in suite.run(Wrapper(chat)).scorers


def test_a_judge_scorer_belongs_in_judge_not_scorers(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    _, tuned, base = lab
    suite = EvalSuite.from_pairs(PAIRS[:2], builtin_unrelated=False)
    before = len(lab[0].fake.requests)
    with pytest.raises(UsageError, match="as judge="):
        suite.run(tuned, scorers=[*ev.default_scorers(), JudgeScorer(base)])
    with pytest.raises(UsageError, match="as judge="):
        asyncio.run(suite.arun(tuned, scorers=[JudgeScorer(base)]))
    assert len(lab[0].fake.requests) == before  # refused before anything was sent


def test_dropped_questions_are_counted_and_reported(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    pairs = [*TRAINED[:5], ("  ", "blank"), (TRAINED[0][0].upper(), "again")]
    variations = [
        ("Who builds Lumen Notes?", TRAINED[1][1]),
        ("who builds lumen notes", TRAINED[1][1]),
        (TRAINED[2][0], TRAINED[2][1]),
        (" ", "blank"),
    ]
    unrelated = ["Who is Batman?", "What is Star Wars?", ""]
    suite = EvalSuite.from_pairs(
        pairs, variations=variations, unrelated=unrelated, limit={"unrelated": 10}
    )
    assert suite.dropped == {
        "blank_question": 1,
        "blank_unrelated": 1,
        "blank_variation": 1,
        "duplicate_question": 1,
        "duplicate_unrelated": 1,
        "duplicate_variation": 1,
        "over_limit": len(ev.UNRELATED_QUESTIONS) + 1 - 10,
        "variation_is_a_training_question": 1,
    }
    read = len(pairs) + len(variations) + len(unrelated) + len(ev.UNRELATED_QUESTIONS)
    assert read == len(suite) + sum(suite.dropped.values())
    result = suite.run(lab[1])
    assert result.dropped == suite.dropped and result.summary().dropped == suite.dropped
    assert "questions dropped while building the suite: blank_question 1" in result.to_markdown()
    assert "duplicate_variation 1" in result.to_html()
    assert EvalResult.from_json(result.to_json()).dropped == suite.dropped


def test_generated_rephrasings_that_repeat_a_question_are_counted() -> None:
    backend = Scripted({"Who makes": "1. Who makes Lumen Notes?\n2. WHAT is Lumen Notes?"})
    chat = ChatModel("m", backend=backend, retries=0)  # type: ignore[arg-type]
    suite = EvalSuite.from_pairs(PAIRS[:2], builtin_unrelated=False)
    out = suite.generate_variations(chat, 2)
    # "Who makes ..." is its own question (left out while parsing); "What is ..." is the other one
    assert out.dropped == {"variation_is_a_training_question": 1}


def test_concurrency_default_none_and_bad_values(
    lab: tuple[OfflineBackend, ChatModel, ChatModel],
) -> None:
    tuned = lab[1]
    suite = EvalSuite.from_pairs(PAIRS[:2], builtin_unrelated=False)
    assert suite.run(tuned).concurrency == ev.DEFAULT_EVAL_CONCURRENCY == 32
    assert suite.run(tuned, concurrency=None).concurrency == tuned.concurrency
    for bad in (0, True, 2.5):
        with pytest.raises(UsageError, match="concurrency"):
            suite.run(tuned, concurrency=bad)  # type: ignore[arg-type]


def test_a_guarded_model_is_asked_without_stop_and_its_refusals_get_no_stop_score(
    lab: tuple[OfflineBackend, ChatModel, ChatModel], tmp_path: Path
) -> None:
    from finetune_qa.guardrails import Discriminator, GuardedChatModel

    backend, tuned, _ = lab
    gate = Discriminator.train(
        list(read_qa(sample_csv())), backend=backend, journal=tmp_path / "j.jsonl"
    )
    guarded = GuardedChatModel(tuned, question_gate=gate)
    suite = EvalSuite.from_pairs(TRAINED[:4], limit={"unrelated": 6})
    result = suite.run(guarded)
    assert result.score("verbatim", "exact") == 1.0 and result.score("verbatim", "stop") == 1.0
    assert result.off_topic_answer_rate is not None and result.off_topic_answer_rate <= 0.2
    refused = [c for c in result.cases if c.output == guarded.refusal]
    assert refused and all(c.scores["stop"] is None for c in refused)
    assert guarded.chat is tuned and tuned.stop == ("**STOP**",)  # the caller's model untouched


def test_compare_scores_only_the_matched_questions_when_runs_differ() -> None:
    """A delta between two different sets of questions would measure the data, not the model."""
    from finetune_qa import case_id
    from finetune_qa.evaluation import CaseResult, EvalResult, SetSummary

    def run(label: str, rows: dict[str, float]) -> EvalResult:
        cases = [
            CaseResult(
                id=case_id("verbatim", q),
                set="verbatim",
                question=q,
                reference="r",
                source_question=q,
                output="o",
                finish_reason="stop",
                latency=0.1,
                scores={"exact": v},
            )
            for q, v in rows.items()
        ]
        mean = sum(rows.values()) / len(rows)
        return EvalResult(
            label=label,
            model=label,
            backend="offline",
            started_at="2026-11-25T00:00:00+00:00",
            seconds=1.0,
            concurrency=1,
            n=len(cases),
            errors=0,
            scorers=["exact"],
            sets={"verbatim": SetSummary(n=len(cases), errors=0, scores={"exact": mean})},
            cases=cases,
        )

    # b answers the shared question no better, but has an extra easy question
    a = run("before", {"What is A?": 0.0, "What is B?": 1.0})
    b = run("after", {"What is A?": 0.0, "What is B?": 1.0, "What is C?": 1.0})
    c = a.compare(b)
    d = c.delta("verbatim", "exact")
    assert d is not None and (d.a, d.b, d.delta) == (0.5, 0.5, 0.0)
    assert (c.matched, c.only_a, c.only_b) == (2, 0, 1)
    assert "scores are over the matched cases" in c.to_markdown()
    # with every case matched the runs' own means are used
    same = a.compare(run("again", {"What is A?": 1.0, "What is B?": 1.0}))
    assert same.delta("verbatim", "exact").delta == 0.5  # type: ignore[union-attr]
