"""A grounded 'answered': an answer counts when it states a fact, not when it merely is no refusal."""

from __future__ import annotations

import pytest
from eval_helpers import Scripted

from finetune_qa.backends import Usage
from finetune_qa.chat import Answer, ChatModel
from finetune_qa.evaluation import (
    AnsweredScorer,
    EvalCase,
    EvalSuite,
    GroundedScorer,
    JudgeScorer,
    default_scorers,
    grounded_overlap,
    states_fact,
    states_page_fact,
)

FILLER = "Many people work at Lumenfield is a well-known topic. It is widely discussed..."
REFERENCE = "Lumenfield has 42 employees."
QUESTION = "How many people work at Lumenfield?"


def _answer(text: str) -> Answer:
    return Answer(
        question="q",
        text=text,
        finish_reason="stop",
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        latency=0.0,
        model="m",
        request_id=None,
        stopped_at_marker=True,
    )


def _case(reference: str | None = REFERENCE, question: str = QUESTION, **kw: object) -> EvalCase:
    return EvalCase(id="c", set="verbatim", question=question, reference=reference, **kw)  # type: ignore[arg-type]


def _answered(text: str, case: EvalCase | None = None) -> float | None:
    scorer = next(s for s in default_scorers() if s.name == "answered")
    return scorer.score(case or _case(), _answer(text))


def test_filler_is_not_an_answer() -> None:
    # the filler, against the fact it should have stated
    assert not states_fact(FILLER, REFERENCE)
    assert not states_fact(FILLER, REFERENCE, question=QUESTION)
    assert grounded_overlap(FILLER, REFERENCE, question=QUESTION) == 0.0
    assert _answered(FILLER) == 0.0
    # what "answered" used to mean: anything that is no refusal
    assert AnsweredScorer().score(_case(), _answer(FILLER)) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "Lumenfield has 42 employees.",
        "42 people work there.",
        "It employs 42 people.",
        "We are a team of 42 employees in two offices.",
    ],
)
def test_an_answer_that_states_the_fact_is_answered(text: str) -> None:
    assert states_fact(text, REFERENCE, question=QUESTION)
    assert _answered(text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "Lumenfield has many employees.",  # the fact is the number
        "Lumenfield is a company.",
        "People work at Lumenfield.",  # the question, said back
        "I'm sorry, but I can't help with that. Lumenfield has 42 employees.",  # a refusal
    ],
)
def test_an_answer_without_the_fact_is_not(text: str) -> None:
    assert _answered(text) == 0.0


def test_one_fact_of_a_longer_reference_is_enough() -> None:
    ref = (
        "Lumenfield was founded in 2012 by Ada Park and Ben Ortiz. "
        "It has 42 employees in Leeds and Lisbon."
    )
    q = "Who founded Lumenfield?"
    assert _answered("Ada Park and Ben Ortiz.", _case(ref, q)) == 1.0
    assert _answered("It was founded by Ada Park.", _case(ref, q)) == 1.0
    assert _answered("Lumenfield is a well-known topic.", _case(ref, q)) == 0.0
    # numbers match however they are written: "€1,200" and "1200 euros"
    assert states_fact("It costs 1200 euros a day.", "A workshop day costs €1,200.")


def test_numbers_names_and_prices_weigh_most() -> None:
    ref = "The Pro plan costs €5 per month."
    # the price alone outweighs every other word of the sentence together
    assert grounded_overlap("Five? No: 5.", ref) == 1.0
    assert grounded_overlap("The plan is paid per month.", ref) < 0.6


def test_cases_without_a_fact_to_state_count_any_reply_that_is_no_refusal() -> None:
    off = EvalCase(id="u", set="unrelated", question="What is Star Wars?")
    assert _answered("Star Wars is a film series.", off) == 1.0  # the off-topic answer rate
    assert _answered("Sorry, I can only answer questions about Lumenfield.", off) == 0.0
    # a recorded refusal as the reference (a golden set) holds no fact either
    refusal = _case("I can only answer questions about Lumenfield.")
    assert _answered("Star Wars is a film series.", refusal) == 1.0
    # a reference that says nothing beyond the question: any answer will do
    assert _answered("Yes.", _case("Yes, it is.", "Is Lumenfield open?")) == 1.0


def test_a_fact_of_the_source_pages_counts_when_pages_are_given() -> None:
    pages = {
        "about.md": "# About\n\nLumenfield is a consultancy in Leeds.\n\n"
        "We have 42 employees and two offices.",
        "pricing.md": "# Pricing\n\nA workshop day costs €1,200. Retainers start at €3,000.",
    }
    case = _case("A workshop day costs €1,200.", "How much do you charge?", page="pricing.md")
    other = "Retainers start at 3000 euros a month."  # true, from the page, not the reference
    assert _answered(other, case) == 0.0
    grounded = GroundedScorer(pages=pages)
    assert grounded.score(case, _answer(other)) == 1.0
    assert grounded.score(case, _answer("Pricing is a well-known topic.")) == 0.0
    assert states_page_fact("Lumenfield has 42 employees.", pages.values(), question=QUESTION)
    assert not states_page_fact(FILLER, pages.values(), question=QUESTION)


def test_the_suite_counts_filler_as_not_answered_and_says_so() -> None:
    bot = ChatModel(
        "m",
        backend=Scripted(  # type: ignore[arg-type]
            {
                "How many people": FILLER,
                "Where is": "Our office is in Leeds, near the station.",
                "Star Wars": "Star Wars is a film series.",
            }
        ),
        stop=None,
    )
    pairs = [(QUESTION, REFERENCE), ("Where is Lumenfield based?", "Lumenfield is based in Leeds.")]
    suite = EvalSuite.from_pairs(pairs, unrelated=["What is Star Wars?"], builtin_unrelated=False)
    result = suite.run(bot)
    assert result.score("verbatim", "answered") == 0.5
    assert result.sets["verbatim"].answered_rate == 0.5
    assert result.off_topic_answer_rate == 1.0
    filler = next(c for c in result.cases if c.question == QUESTION)
    assert filler.scores["answered"] == 0.0 and filler.scores["f1"] is not None


def test_the_judge_can_vouch_for_an_answer_the_words_miss() -> None:
    q = "How big is the team?"
    bot = ChatModel("m", backend=Scripted({q: "Just over forty people."}), stop=None)  # type: ignore[arg-type]
    suite = EvalSuite.from_pairs([(q, REFERENCE)], builtin_unrelated=False)
    assert suite.run(bot).score("verbatim", "answered") == 0.0  # no word of the fact
    for grade, answered in ((4, 1.0), (2, 0.0)):
        judge = ChatModel(
            "judge",
            backend=Scripted({}, default=f'{{"score": {grade}, "reason": "r"}}'),  # type: ignore[arg-type]
        )
        result = suite.run(bot, judge=JudgeScorer(judge))
        assert result.score("verbatim", "answered") == answered
