"""Sets named by what they are; knowledge files (a person's questions with their facts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import Scripted

from finetune_qa import DatasetBuilder
from finetune_qa.chat import ChatModel
from finetune_qa.evaluation import (
    EvalResult,
    EvalSuite,
    KnowledgeQuestion,
    compare,
    read_knowledge,
)
from finetune_qa.exceptions import JSONLFormatError, RecordError
from finetune_qa.samples import sample_csv

SYS = "You are a factual chatbot that answers questions about Lumen Notes."
REFUSAL = "Sorry, I can only answer questions about Lumenfield."

PAGES = {
    "about.md": "# About Lumenfield\n\nLumenfield is a small consultancy based in Leeds.\n\n"
    "Lumenfield was founded in 2012 by Ada Park and Ben Ortiz. We have 42 employees.\n",
    "pricing.md": "# Pricing\n\nA workshop day costs €1,200. Nonprofits get 20% off.\n",
}
LINES = [
    {"question": "How big is the team?", "kind": "on_topic", "facts": ["42"], "page": "about.md"},
    {"question": "Who started the company?", "kind": "on_topic", "facts": ["Ada Park"]},
    {"question": "What does a day cost?", "kind": "on_topic", "facts": ["€1,200", "1200"]},
    {"question": "Any discount for charities?", "kind": "rephrasing", "facts": ["20%"]},
    {"question": "How many staff do you have?", "kind": "rephrasing", "facts": ["42"]},
    {"question": "Who won the 2018 World Cup?", "kind": "off_topic", "facts": []},
    {"question": "What is the capital of Peru?", "kind": "off_topic"},
]
REPLIES = {
    "How big": "Lumenfield has 42 employees.",
    "Who started": "Who started the company is a well-known topic. It is widely discussed.",
    "What does a day": REFUSAL,  # a gate that turned an on-topic question away
    "charities": "Nonprofits get 20% off.",
    "How many staff": "We were founded in 2012 in Leeds.",  # grounded, not the right fact
    "World Cup": REFUSAL,
    "Peru": "Lima is the capital of Peru.",
}


def _site(tmp_path: Path, lines: list[dict[str, object]] = LINES) -> tuple[Path, Path]:
    site = tmp_path / "site"
    site.mkdir()
    for name, text in PAGES.items():
        (site / name).write_text(text, encoding="utf-8")
    path = tmp_path / "lumenfield.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path, site


def _bot() -> ChatModel:
    return ChatModel("bot", backend=Scripted(REPLIES), stop=None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ set names


def test_sets_are_named_by_what_they_are(tmp_path: Path) -> None:
    pairs = [("What is Acme?", "Acme makes anvils.")]
    assert EvalSuite.from_pairs(pairs).set_names["verbatim"] == "training questions"
    # a QA file may be anyone's questions: named by the file, unless said to be trained on
    mine = EvalSuite.from_file(sample_csv())
    assert mine.set_names["verbatim"] == sample_csv().name
    assert EvalSuite.from_file(sample_csv(), trained=True).set_names["verbatim"] == (
        "training questions"
    )
    # training JSONL is a file written to fine-tune on
    DatasetBuilder(system_prompt=SYS).add_source(sample_csv()).build(tmp_path / "train.jsonl")
    trained = EvalSuite.from_file(tmp_path / "train.jsonl", variations=sample_csv())
    assert trained.set_names["verbatim"] == "training questions"
    assert trained.set_names["variations"] == sample_csv().name  # the user's own file
    assert (trained.set_names["unrelated"], mine.set_names["variations"]) == (
        "off-topic questions",
        "rephrasings",
    )


def test_results_and_reports_carry_the_names(tmp_path: Path) -> None:
    bot = ChatModel("bot", backend=Scripted({}, default="Acme makes anvils."), stop=None)  # type: ignore[arg-type]
    suite = EvalSuite.from_pairs(
        [("What is Acme?", "Acme makes anvils.")], unrelated=["Who is Batman?"]
    )
    result = suite.run(bot)
    assert result.set_names == {
        "verbatim": "training questions",
        "unrelated": "off-topic questions",
    }
    assert (
        result.set_name("verbatim") == "training questions" == result.summary().set_name("verbatim")
    )
    md = result.to_markdown()
    assert "## training questions" in md and "## off-topic questions" in md
    assert "## verbatim" not in md
    page = result.to_html()
    assert '<h2 id="set-verbatim">training questions</h2>' in page
    assert "## training questions" in compare(result, result).to_markdown()
    assert EvalResult.from_json(result.to_json()).set_names == result.set_names
    # a result saved before sets had names still loads, and shows the sets' keys
    old = json.loads(result.to_json())
    del old["set_names"]
    loaded = EvalResult.from_json(json.dumps(old))
    assert loaded.set_name("verbatim") == "verbatim" and "## verbatim" in loaded.to_markdown()


# -------------------------------------------------------------------------- knowledge files


def test_a_knowledge_file_is_a_suite_of_its_kinds(tmp_path: Path) -> None:
    path, site = _site(tmp_path)
    assert read_knowledge(path)[0] == KnowledgeQuestion(
        question="How big is the team?", kind="on_topic", facts=("42",), page="about.md"
    )
    suite = EvalSuite.from_knowledge_file(path, pages=site)
    assert suite.counts() == {
        "verbatim": 0,
        "variations": 0,
        "unrelated": 0,
        "on_topic": 3,
        "rephrasing": 2,
        "off_topic": 2,
    }
    assert suite.name == "lumenfield.jsonl" and suite.knowledge
    assert sorted(suite.pages) == ["about.md", "pricing.md"]
    first = suite.of_set("on_topic")[0]
    assert (first.facts, first.page, first.reference) == (("42",), "about.md", "42")
    assert suite.of_set("off_topic")[0].reference is None
    assert suite.set_names["on_topic"] == "on-topic questions"


def test_right_fact_answered_and_refused_per_kind(tmp_path: Path) -> None:
    path, site = _site(tmp_path)
    result = EvalSuite.from_knowledge_file(path, pages=site).run(_bot())
    assert result.scorers == ["answered", "right_fact", "refused"]
    assert list(result.sets) == ["on_topic", "rephrasing", "off_topic"]
    # on-topic: the fact; filler; a refusal
    assert result.score("on_topic", "right_fact") == pytest.approx(1 / 3)
    assert result.score("on_topic", "answered") == pytest.approx(1 / 3)
    assert result.count("on_topic", "refused") == 1
    # rephrasings: the fact; a fact of the page, not the one asked for
    assert result.score("rephrasing", "right_fact") == 0.5
    assert result.score("rephrasing", "answered") == 1.0
    # off-topic: one refused, one answered; no facts, so no right_fact
    assert result.score("off_topic", "refused") == 0.5
    assert result.score("off_topic", "right_fact") is None
    assert result.count("off_topic", "refused") == 1
    md = result.to_markdown()
    assert "## on-topic questions" in md and "| right_fact |" in md


def test_a_knowledge_suite_round_trips_and_old_suite_lines_keep_their_keys(tmp_path: Path) -> None:
    path, site = _site(tmp_path)
    suite = EvalSuite.from_knowledge_file(path, pages=site)
    back = EvalSuite.from_jsonl(suite.to_jsonl(tmp_path / "suite.jsonl"))
    assert back.cases == suite.cases
    plain = EvalSuite.from_pairs([("What is Acme?", "Anvils.")], builtin_unrelated=False)
    line = json.loads(plain.to_jsonl(tmp_path / "plain.jsonl").read_text(encoding="utf-8"))
    assert set(line) == {"id", "set", "question", "reference", "source_question"}


def test_knowledge_file_errors_name_the_line(tmp_path: Path) -> None:
    path, site = _site(tmp_path)
    path.write_text('{"question": "Q?", "kind": "on_topic", "facts": ["x"]}\n{oops\n')
    with pytest.raises(JSONLFormatError, match=r"lumenfield\.jsonl:2"):
        EvalSuite.from_knowledge_file(path)
    path.write_text('\n{"question": "Q?", "kind": "sideways"}\n')
    with pytest.raises(RecordError, match=r":2: not a knowledge question: kind"):
        EvalSuite.from_knowledge_file(path)
    path.write_text('{"question": "Q?", "kind": "on_topic", "facts": ["x"], "page": "team.md"}\n')
    with pytest.raises(RecordError, match=r"the page 'team\.md' is not among") as info:
        EvalSuite.from_knowledge_file(path, pages=site)
    assert info.value.hint == "name one of: about.md, pricing.md"
    # without pages, a page is a label; a page named by its stem is found
    assert EvalSuite.from_knowledge_file(path).cases[0].page == "team.md"
    path.write_text('{"question": "Q?", "kind": "on_topic", "facts": ["x"], "page": "about"}\n')
    assert EvalSuite.from_knowledge_file(path, pages=site).cases[0].page == "about.md"


def test_repeated_questions_in_a_knowledge_file_are_counted(tmp_path: Path) -> None:
    lines = [*LINES, {"question": "how big is the team", "kind": "on_topic", "facts": ["42"]}]
    path, _ = _site(tmp_path, lines)
    suite = EvalSuite.from_knowledge_file(path)
    assert suite.dropped == {"duplicate_on_topic": 1} and len(suite) == len(LINES)


@pytest.mark.parametrize("site", ["markdown_site", "velokoop_site"])
def test_the_hand_written_sites_read_and_tell_facts_from_filler(data_dir: Path, site: str) -> None:
    path = data_dir / "knowledge" / f"{site}.jsonl"
    suite = EvalSuite.from_knowledge_file(path, pages=data_dir / site)
    lines = read_knowledge(path)
    for kind in ("on_topic", "rephrasing", "off_topic"):
        assert suite.counts()[kind] == sum(1 for q in lines if q.kind == kind) > 0
    assert all(c.page in suite.pages for c in suite if c.set != "off_topic")
    oracle = {c.question: f"That would be {c.facts[0]}." if c.facts else REFUSAL for c in suite}
    right = suite.run(ChatModel("oracle", backend=Scripted(oracle), stop=None))  # type: ignore[arg-type]
    for kind in ("on_topic", "rephrasing"):
        assert right.score(kind, "right_fact") == right.score(kind, "answered") == 1.0
    assert right.score("off_topic", "refused") == 1.0
    filler = {c.question: f"{c.question.rstrip('?')} is a well-known topic." for c in suite}
    vague = suite.run(ChatModel("filler", backend=Scripted(filler), stop=None))  # type: ignore[arg-type]
    # a fact the question itself holds ("Are you open on Mondays?": "Mondays") is said back
    assert (vague.score("on_topic", "answered") or 0) <= 0.1
    assert vague.score("off_topic", "refused") == 0.0
