"""Scoring functions and the built-in scorers, by hand: exact, contains, F1, ROUGE-L, stop, refusals."""

from __future__ import annotations

import pytest

from finetune_qa import evaluation as ev
from finetune_qa.backends import Usage
from finetune_qa.chat import Answer
from finetune_qa.evaluation import EvalCase


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


def test_exact_and_normalized_contains() -> None:
    assert ev.exact_match("  Yes, it is.\n", "Yes, it is.") == 1.0
    assert ev.exact_match("Yes it is.", "Yes, it is.") == 0.0
    # case, spacing, punctuation and the stop marker are ignored; whole words only
    assert (
        ev.normalized_contains("Sure:  it COSTS €5 per month! **STOP**", "It costs €5, per month.")
        == 1.0
    )
    assert ev.normalized_contains("It costs €50 per month", "costs €5") == 0.0
    assert ev.normalized_contains("Per month it costs €5", "It costs €5 per month") == 0.0
    assert ev.normalize_answer("The Pro plan: 8 dollars! **STOP**") == "pro plan 8 dollars"


def test_token_f1_by_hand() -> None:
    # normalized: [cat, sat, on, mat] vs [cat, lay, on, mat]: 3 shared, P = R = 3/4
    assert ev.token_f1("The cat sat on the mat", "the cat lay on a mat") == pytest.approx(0.75)
    # [lumen, pro, costs, 5, euros] vs [lumen, pro, costs, 5, per, month]: 4 shared
    # P = 4/5, R = 4/6, F1 = 2 * 0.8 * 0.6667 / 1.4667 = 0.72727
    assert ev.token_f1("Lumen Pro costs 5 euros", "Lumen Pro costs €5 per month") == pytest.approx(
        8 / 11
    )
    assert (
        ev.token_f1("", "") == 1.0
        and ev.token_f1("x", "") == 0.0
        and ev.token_f1("a b", "c d") == 0.0
    )
    assert ev.token_f1("yes yes yes", "yes") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))


def test_rouge_l_by_hand() -> None:
    # LCS of [the cat sat on the mat] and [the cat lay on a mat] = the cat on mat = 4; P = R = 4/6
    assert ev.rouge_l("the cat lay on a mat", "The cat sat on the mat") == pytest.approx(2 / 3)
    # LCS = 6 of 6 (candidate) and 7 (reference): F = 2 * 1 * 6/7 / (1 + 6/7) = 12/13
    assert ev.rouge_l(
        "the cat was under the bed", "the cat was found under the bed"
    ) == pytest.approx(12 / 13)
    # order matters for ROUGE-L but not for F1
    assert ev.rouge_l("c b a", "a b c") == pytest.approx(1 / 3)
    assert ev.token_f1("c b a", "a b c") == 1.0
    assert ev.rouge_l("", "") == 1.0 and ev.rouge_l("x y", "z") == 0.0


def test_stop_compliance_and_refusals() -> None:
    # the raw output of a request sent without ``stop``: the marker is there or it is not
    assert ev.stop_compliance("Yes. **STOP**") == 1.0
    assert ev.stop_compliance("Yes.") == 0.0  # a natural end: finish_reason "stop" all the same
    assert ev.stop_compliance("Yes. <END> more", markers=["<END>"]) == 1.0
    assert ev.stop_compliance("Yes. **STOP**", markers=["<END>"]) == 0.0
    case = EvalCase(id="x", set="unrelated", question="q")
    assert ev.StopScorer().score(case, _answer("Yes.")) == 1.0
    assert ev.StopScorer().score(case, _answer("Yes, and", finish="length")) == 0.0

    assert ev.is_refusal("I'm sorry, but I can’t help with THAT.")
    assert ev.is_refusal("")
    assert not ev.is_refusal("Star Wars is a film series by George Lucas.")
    custom = "Ask me about Lumen Notes instead!"
    assert not ev.is_refusal(custom) and ev.is_refusal(custom + " ", refusal_texts=[custom])
    scorer = ev.AnsweredScorer(refusal_texts=(custom,))
    case = EvalCase(id="u", set="unrelated", question="What is Star Wars?")
    assert (
        scorer.score(case, _answer(custom)) == 0.0 and scorer.score(case, _answer("A film.")) == 1.0
    )


def test_reference_scorers_skip_cases_without_reference() -> None:
    case = EvalCase(id="u", set="unrelated", question="What is Star Wars?")
    assert all(s.score(case, _answer("A film.")) is None for s in ev.default_scorers()[:4])
    assert [s.name for s in ev.default_scorers()] == [
        "exact",
        "contains",
        "f1",
        "rouge_l",
        "stop",
        "answered",
    ]
    assert [s.name for s in ev.default_scorers(stop=None)] == [
        "exact",
        "contains",
        "f1",
        "rouge_l",
        "answered",
    ]
    assert all(isinstance(s, ev.Scorer) for s in ev.default_scorers())


@pytest.mark.parametrize(
    "text",
    [
        "Custom hardware is outside the scope of our warranty.",
        "Moderators hide off-topic posts after a day.",
        'Click "I don\'t know my password" on the sign-in page.',
        "Exports are PDF only. I don't know of plans for Word export, but Pro adds Markdown.",
        "I can't say for sure, but Lumen Pro costs €5 per month.",
    ],
)
def test_answers_that_mention_a_refusal_phrase_are_not_refusals(text: str) -> None:
    assert not ev.is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "Sorry, I can only answer questions about Lumen Notes.",
        "Unfortunately, I don't have information about that.",
        "I do not know.",
        "I am sorry, but I cannot rephrase that question.",
        "  No. I cannot help with that request.",
        "That's outside the scope of what I can answer.",
    ],
)
def test_refusals_are_still_recognised(text: str) -> None:
    assert ev.is_refusal(text)


def test_own_refusal_texts_count_anywhere() -> None:
    own = "Please ask me about Lumen Notes."
    assert ev.is_refusal(f"Hmm. {own.upper()}", refusal_texts=[own])
    assert not ev.is_refusal(f"Hmm. {own}")
