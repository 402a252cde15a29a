"""Fact coverage and natural questions (issue #14, item 1), on both hand-written sites."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from finetune_qa.backends.base import ChatRequest, ChatResponse, Usage
from finetune_qa.chat import ChatModel
from finetune_qa.generation import (
    CoverageReport,
    GenerationReport,
    GenerationResult,
    QAGenerator,
    fact_sentences,
    is_fact_bearing,
    load_markdown,
)
from finetune_qa.generation._coverage import covers

DATA = Path(__file__).parents[1] / "data"
SITES = ("markdown_site", "velokoop_site")


@pytest.fixture(scope="module", params=SITES)
def generated(request: pytest.FixtureRequest) -> tuple[str, GenerationResult]:
    site = str(request.param)
    return site, QAGenerator(ChatModel.offline("gpt-4o-mini")).generate(DATA / site)


def test_offline_coverage_is_at_least_90_percent_on_both_sites(
    generated: tuple[str, GenerationResult],
) -> None:
    site, result = generated
    coverage = result.report.coverage
    assert coverage.sentences >= 40, site
    assert coverage.ratio >= 0.9, coverage.to_text()
    assert coverage.covered == coverage.sentences - len(coverage.uncovered)
    # every page of the site has fact-bearing sentences, and the count is the pages' own
    files = {Path(p.file).name for p in result.pairs}
    assert len(files) == result.report.pages_read


def test_no_question_asks_about_a_heading_as_a_topic(
    generated: tuple[str, GenerationResult],
) -> None:
    _, result = generated
    headings = {
        b.text.casefold()
        for file in {p.file for p in result.pairs}
        for b in load_markdown(file).blocks
        if b.kind == "heading"
    }
    # "What are benefits?", "What is careers at Lumenfield?": a heading, lower-cased, as a topic
    # (a name defined by its page, "What is Fernhill Tasks?", is a fair question)
    topic = re.compile(r"^What (?:is|are) (?:the )?(?P<topic>[a-z].*?)(?: at .+)?\?$")
    for pair in result.pairs:
        m = topic.match(pair.question)
        assert m is None or m["topic"].casefold() not in headings, pair.question
        assert not re.search(r"\bat (?:fernhill|velokoop)[\w ]*\?$", pair.question.casefold())


def test_each_chunk_gets_at_least_one_pair_per_fact(
    generated: tuple[str, GenerationResult],
) -> None:
    _, result = generated
    pairs = Counter(p.chunk for p in result.pairs)
    by_file: dict[str, list[int]] = {}
    for chunk in result.chunks:
        by_file.setdefault(chunk.file, []).append(chunk.index)
    checked = 0
    for file, indexes in by_file.items():
        chunks = [result.chunks[i] for i in indexes]
        for chunk, facts in zip(chunks, fact_sentences(load_markdown(file), chunks), strict=True):
            assert pairs[chunk.index] >= len(facts), (chunk.render(), len(facts))
            checked += len(facts) > 5
    assert checked  # some chunk states more facts than the 5 pairs asked for by default


def test_offline_questions_are_what_a_visitor_asks() -> None:
    chat = ChatModel.offline("gpt-4o-mini")
    questions = {
        p.question.casefold()
        for site in SITES
        for p in QAGenerator(chat).generate(DATA / site).pairs
    }
    for expected in (
        "Who founded Velokoop?",
        "Who founded Fernhill Software?",
        "How many member-owners does the cooperative have?",
        "How many people are in the team?",
        "How much does the full service cost?",
        "How much does the Pro plan cost?",
        "How long before my booking should I cancel?",
        "Where is the workshop?",
        "Where is customer data stored?",
        "When is the counter open?",
        "When is the counter open on Saturdays?",
        "What discount do members get?",
        "What happens if I book two repairs in the same month?",
        "How often are backups taken?",
        "How do I join?",
    ):
        assert expected.casefold() in questions, expected
    assert not any(q.startswith("what are benefits") for q in questions)


# ------------------------------------------------------------------ over a stub backend


class Recorder:
    """A backend that answers every generation prompt with one fixed reply, and records it."""

    name = "recorder"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.prompts.append(str(request.messages[-1]["content"]))
        return ChatResponse(
            id="c",
            model=request.model,
            content=self.reply,
            finish_reason="stop",
            usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        )

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return self.chat(request)


PAGE = (
    "# Acme Bikes\n"
    "\n"
    "Acme Bikes was founded in 2015 by Ada Lovelace.\n"
    "The shop employs 12 mechanics.\n"
)


def test_the_coverage_report_lists_a_sentence_no_pair_covers(tmp_path: Path) -> None:
    page = tmp_path / "index.md"
    page.write_text(PAGE, encoding="utf-8")
    backend = Recorder(
        "Questions:\n1. Who founded Acme Bikes?\n"
        "Answers:\n1. Acme Bikes was founded in 2015 by Ada Lovelace."
    )
    result = QAGenerator(ChatModel("m", backend=backend)).generate(page)
    report = result.report
    coverage = report.coverage
    assert (coverage.sentences, coverage.covered) == (2, 1)
    [missing] = coverage.uncovered
    assert (missing.file, missing.line, missing.text) == (
        str(page),
        4,
        "The shop employs 12 mechanics.",
    )
    # one follow-up asked for the uncovered sentence alone; its reply covered nothing new
    assert report.followup_requests == 1 and len(backend.prompts) == 2
    assert "<excerpt>\nThe shop employs 12 mechanics.\n</excerpt>" in backend.prompts[1]
    assert "Write 1 " in backend.prompts[1]
    assert report.duplicates_dropped == 1 and report.pairs_kept == 1
    text = report.to_text()
    assert "fact coverage: 1 of 2 fact-bearing sentences (50%)" in text
    assert f"{page}:4: The shop employs 12 mechanics." in text
    assert "replies: 2 (1 follow-ups)" in text
    assert GenerationReport.model_validate_json(report.to_json()) == report
    assert json.loads(report.to_json())["coverage"]["uncovered"][0]["line"] == 4


def test_a_follow_up_that_covers_the_sentence_completes_the_coverage(tmp_path: Path) -> None:
    page = tmp_path / "index.md"
    page.write_text(PAGE, encoding="utf-8")
    result = QAGenerator(ChatModel.offline("gpt-4o-mini"), pairs_per_chunk=1).generate(page)
    assert result.report.coverage.ratio == 1.0
    assert [p.question for p in result.pairs] == [
        "Who founded Acme Bikes?",
        "How many mechanics does the shop employ?",
    ]
    assert result.report.followup_requests == 0  # 1 asked, but 2 facts: 2 pairs at once


def test_pairs_per_chunk_is_a_floor_where_the_text_has_the_facts(tmp_path: Path) -> None:
    facts = [f"Plan {i} costs €{i + 5} per month." for i in range(8)]
    page = tmp_path / "pricing.md"
    page.write_text("# Pricing\n\n" + "\n".join(facts) + "\n", encoding="utf-8")
    backend = Recorder("Questions:\n1. What costs what?\nAnswers:\n1. Plans cost money.")
    QAGenerator(ChatModel("m", backend=backend), pairs_per_chunk=5).generate(page)
    assert backend.prompts[0].startswith("Write 8 question/answer pairs")
    assert "Cover every fact" in backend.prompts[0]
    QAGenerator(ChatModel("m", backend=backend), pairs_per_chunk=12).generate(page)
    assert backend.prompts[-2].startswith("Write 12 question/answer pairs")


def test_cover_facts_false_sends_no_follow_up_but_still_reports(tmp_path: Path) -> None:
    page = tmp_path / "index.md"
    page.write_text(PAGE, encoding="utf-8")
    backend = Recorder("Questions:\n1. What is Acme?\nAnswers:\n1. A shop.")
    result = QAGenerator(ChatModel("m", backend=backend), cover_facts=False).generate(page)
    assert len(backend.prompts) == 1 and result.report.followup_requests == 0
    assert result.report.coverage.covered == 0 and len(result.report.coverage.uncovered) == 2


# ------------------------------------------------------------------ the rules, one by one


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Velokoop was founded in 2011 by Lotte Janssens.", True),  # a date, names
        ("The basic tune-up takes about one hour.", True),  # a duration in words
        ("The counter is open Tuesday to Friday.", True),  # days
        ("Walk-ins are welcome for flat tyres.", True),  # a rule
        ("- Fill in the form on the website.", True),  # a step
        ("We love bikes and people.", False),
        ("Read more.", False),
    ],
)
def test_fact_bearing_sentences(sentence: str, expected: bool) -> None:
    assert is_fact_bearing(sentence) is expected


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("How many?", "The team is made up of 24 people who work from Utrecht.")], True),
        ([("How many?", "The team is made up of 24 people.")], False),  # half its facts
        ([("How big is the team?", "Twenty-four, working from Utrecht.")], False),  # no 24
        (  # filler names the subject but states no fact
            [("How many people?", "Many people work at Fernhill is a well-known topic.")],
            False,
        ),
        (  # the facts spread over two pairs of the page
            [
                ("How many?", "The team has 24 people."),
                ("Where?", "The team works from Utrecht."),
            ],
            True,
        ),
        ([("Where?", "The team works from Utrecht.")], False),
    ],
)
def test_a_pair_covers_a_sentence_when_it_states_its_facts(
    pairs: list[tuple[str, str]], expected: bool
) -> None:
    sentence = "The team is made up of 24 people who work from Utrecht."
    assert covers(sentence, pairs) is expected


def test_an_empty_coverage_report_is_complete() -> None:
    empty = CoverageReport()
    assert (empty.sentences, empty.covered, empty.ratio) == (0, 0, 1.0)
    assert empty.to_text() == "  fact coverage: 0 of 0 fact-bearing sentences (100%)"
