"""The offline backend's classifier mode: fine-tunes trained on labels answer with labels."""

from __future__ import annotations

import math
from pathlib import Path

import openai
import pytest

from finetune_qa._text import key_hash
from finetune_qa.backends._fake._answers import Answerer
from finetune_qa.data import Message, TrainingExample
from finetune_qa.testing import FakeOpenAI, openai_client

ON = [
    "What is Acme Anvils?",
    "How much does the Acme Pro anvil cost?",
    "Where is Acme based?",
    "How do I return an Acme anvil?",
    "Does Acme ship anvils abroad?",
    "What warranty do Acme anvils have?",
]
OFF = [
    "What is Star Wars?",
    "How do I bake sourdough bread?",
    "Who won the football World Cup?",
    "What is the capital of Australia?",
    "How do black holes form?",
    "Which wine goes with salmon?",
    "How do I reverse a list in Python?",
    "Why is the sky blue?",
]


def classifier() -> Answerer:
    return Answerer([(q, "yes") for q in ON] + [(q, "no") for q in OFF])


def test_label_sets_are_recognised_and_qa_fine_tunes_are_not() -> None:
    assert Answerer.is_label_set(["yes", "no", "yes", "no"])
    assert Answerer.is_label_set(["on", "off", "unsure", "on", "off", "unsure"])
    assert not Answerer.is_label_set(["yes", "yes"])  # one label is no classifier
    assert not Answerer.is_label_set(["yes", "no"])  # each label needs two inputs
    assert not Answerer.is_label_set(["a", "b", "c", "d", "e"] * 2)  # too many labels
    assert not Answerer.is_label_set(["Acme makes anvils. **STOP**", "no"] * 2)  # long answer
    qa = Answerer([("What is Acme?", "Acme makes anvils. **STOP**")] * 3)
    assert not qa.classifier and qa.answer("What is Acme?").kind == "exact"


def test_trained_inputs_get_their_label_with_high_probability() -> None:
    c = classifier()
    assert c.classifier and c.labels == ("no", "yes") and c.varied_label == "no"
    for q in ON:
        ans = c.answer(q)
        assert (ans.kind, ans.text) == ("label", "yes") and ans.score > 0.9
        assert math.isclose(sum(p for _, p in ans.probabilities), 1.0)
    for q in OFF:
        assert c.answer(q).text == "no" and c.answer(q).score > 0.9


def test_unseen_words_pull_towards_the_varied_label_and_near_questions_stay_on() -> None:
    c = classifier()
    unrelated = [
        "Who painted the Mona Lisa?",
        "How many legs does a spider have?",
        "Tell me a joke",
    ]
    for q in unrelated:
        probs = dict(c.classify(q))
        assert probs["no"] > 0.8, (q, probs)
    near = dict(c.classify("How much is an Acme anvil?"))
    assert near["yes"] > 0.8
    # half familiar, half new: in between, and less sure than a trained question
    border = dict(c.classify("How much does a bicycle cost?"))
    assert 0.05 < border["yes"] < dict(c.classify(ON[1]))["yes"]


def test_sampling_draws_labels_by_probability_deterministically() -> None:
    c = classifier()
    q = "How much does a bicycle cost?"
    p_yes = dict(c.classify(q))["yes"]
    variants = [key_hash(str(v)) for v in range(300)]  # as the fake API derives them
    draws = [c.answer(q, variant=v).text for v in variants]
    assert draws == [c.answer(q, variant=v).text for v in variants]
    share = draws.count("yes") / len(draws)
    assert abs(share - p_yes) < 0.15


def test_the_fake_api_returns_label_logprobs(tmp_path: Path) -> None:
    fake = FakeOpenAI()
    client = openai_client(fake, max_retries=0)
    lines = []
    for q, label in [(q, "yes") for q in ON] + [(q, "no") for q in OFF]:
        ex = TrainingExample(
            messages=[
                Message(role="system", content="Classify."),
                Message(role="user", content=q),
                Message(role="assistant", content=label),
            ]
        )
        lines.append(ex.to_json())
    path = tmp_path / "clf.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with path.open("rb") as f:
        file_id = client.files.create(file=f, purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(training_file=file_id, model="gpt-4o-mini-2024-07-18")
    assert fake.run_job(job.id) == "succeeded"
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert model is not None

    def ask(q: str) -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": "Classify."}, {"role": "user", "content": q}],
            temperature=0,
            max_tokens=1,
            logprobs=True,
            top_logprobs=5,
        )

    expected = dict(classifier().classify("What is Star Wars?"))
    got = ask("What is Star Wars?").choices[0]
    assert got.message.content == "no"
    assert got.logprobs is not None and got.logprobs.content is not None
    first = got.logprobs.content[0]
    tops = {t.token: t.logprob for t in first.top_logprobs}
    assert len(first.top_logprobs) == 5 and list(tops)[:2] == ["no", "yes"]
    assert math.isclose(first.logprob, math.log(expected["no"]), rel_tol=1e-6)
    assert math.isclose(tops["yes"], math.log(expected["yes"]), rel_tol=1e-6)
    assert all(lp < tops["yes"] for t, lp in tops.items() if t not in ("yes", "no"))
    on = ask("What is Acme Anvils?").choices[0]
    assert on.message.content == "yes" and on.logprobs is not None
    assert on.logprobs.content is not None and on.logprobs.content[0].logprob > math.log(0.9)


@pytest.mark.parametrize("label", ["yes", "no"])
def test_labels_are_single_tokens(label: str) -> None:
    from finetune_qa.tokens import get_encoding

    for name in ("o200k_base", "cl100k_base"):
        assert len(get_encoding(name).encode(label)) == 1


# -------------------------------------------------- QA fine-tunes: a person's wording

FACTS = [
    ("Is there a discount for non-profits?", "Yes. Registered charities get 50% off the Pro plan."),
    ("Who founded Acme Labs?", "Ada Lind and Max Berg founded Acme Labs in 2012."),
    ("Where is Acme Labs based?", "The office is at Sleepstraat 42, 9000 Ghent."),
    ("How much does the audit cost?", "The audit costs €900 for up to ten people."),
    ("How long does the audit take?", "The audit takes two weeks from the kick-off call."),
    ("Can I pay by bank transfer?", "Yes. Yearly plans can be paid by bank transfer."),
]
STOP = "**STOP**"


def qa(extra: list[tuple[str, str]] = ()) -> Answerer:  # type: ignore[assignment]
    pairs = [(q, f"{a} {STOP}") for q, a in [*FACTS, *extra]]
    return Answerer(pairs * 1)


def test_a_question_worded_unlike_the_pair_finds_it_through_the_answers_words() -> None:
    a = qa()
    # shares no content word with "Is there a discount for non-profits?"
    got = a.answer("Do registered charities get money off?")
    assert got.kind == "neighbour" and "50%" in got.text
    assert got.matched == "Is there a discount for non-profits?"
    # what kind of fact is asked for ("how much" -> a price) is part of the match
    assert "€900" in a.answer("How much do you charge for an audit?").text
    assert "two weeks" in a.answer("How long is an audit?").text


def test_rephrasings_in_the_training_data_act_as_synonyms() -> None:
    plain = qa()
    question = "Which people set up the Acme Labs company?"
    # "which people" asks for people and only one fact names any: found, but weakly
    weak = plain.answer(question)
    rephrased = qa(
        [
            ("Who started Acme Labs?", FACTS[1][1]),
            ("Which people set up Acme Labs?", FACTS[1][1]),
            ("Acme Labs was established by whom?", FACTS[1][1]),
        ]
    )
    got = rephrased.answer(question)
    assert "Ada Lind" in got.text and got.kind == "neighbour"
    assert got.score > weak.score


def test_an_unsure_model_states_no_fact_and_off_topic_stays_off_domain() -> None:
    a = qa()
    unsure = a.answer("Does the audit office accept charities?")
    assert unsure.kind == "unsure" and unsure.text.endswith(STOP)
    assert not any(fact.split(".")[0] in unsure.text for _, fact in FACTS)
    assert unsure.text.startswith(("I'm not sure", "Sorry, I don't know"))
    for q in ("What is Star Wars?", "How do I change a flat tyre on a car?", "Tell me a joke"):
        assert a.answer(q).kind == "off_domain", q


def test_an_answerer_saved_before_facts_were_grouped_still_answers() -> None:
    a = qa()
    state = dict(vars(a))
    for name in ("_facts", "_fact_of", "_fact_first"):
        del state[name]
    old = Answerer.__new__(Answerer)
    old.__setstate__(state)
    q = "Do registered charities get money off?"
    assert old.answer(q) == a.answer(q)


def test_a_name_never_seen_on_topic_pulls_towards_the_varied_label() -> None:
    c = Answerer(
        [(q, "yes") for q in ON]
        + [(q.replace("Acme", "Globex"), "no") for q in ON[1:3]]
        + [(q, "no") for q in OFF]
    )

    def p_yes(text: str) -> float:
        return dict(c.classify(text))["yes"]

    # the same question about another company (one the near-misses named): the name
    # decides, not the other words
    assert p_yes("How do I return a Globex anvil?") < 0.5 < p_yes("How do I return an Acme anvil?")
    assert p_yes("Does Globex ship anvils abroad?") < p_yes("Does Acme ship anvils abroad?")
    # a name never trained on is no such evidence: a product a held-out pair names
    assert p_yes("Does Acme ship Roadrunner anvils abroad?") > 0.5
    # a day's or a sentence's first capitalised word is no name
    assert p_yes("Does Acme ship anvils abroad on Mondays? Thanks.") > 0.5


def test_politeness_words_are_no_evidence_of_a_topic() -> None:
    # rephrasings framed "...? Thanks." must not make "thank" an on-topic word
    c = Answerer(
        [(q, "yes") for q in ON] + [(f"{q} Thanks.", "yes") for q in ON] + [(q, "no") for q in OFF]
    )
    assert c.answer("Thanks!").text == "no"
    assert c.answer("Translate 'thank you' into Klingon").text == "no"


def test_the_kind_of_fact_asked_for_picks_among_similar_pairs() -> None:
    a = qa(
        [
            (
                "When does membership start?",
                "Membership starts on the day you pay and runs for twelve months.",
            ),
            ("Who started Acme Labs?", FACTS[1][1]),
        ]
    )
    # "when" wants a year or a date: the founding (2012), although the membership
    # question is worded closer ("start"); its answer holds only a duration
    got = a.answer("When did it all start?")
    assert "2012" in got.text and got.kind == "neighbour"
    # asked for a duration, the membership's twelve months it is
    assert "twelve months" in a.answer("How long does membership run?").text


def test_a_question_worded_with_a_synonym_from_the_rephrasings_finds_its_pair() -> None:
    from finetune_qa.backends._fake._fake_rephrase import rephrasings

    base = [
        ("What does every repair come with?", "Every repair comes with 3 months of cover."),
        ("When is the workshop closed?", "The workshop is closed on Sundays."),
        ("How many participants does each course take?", "Each course takes at most 8 people."),
        *FACTS,
    ]
    pairs = [(q, a) for q, a in base] + [(r, a) for q, a in base for r in rephrasings(q, 3)]
    a = Answerer([(q, f"{ans} {STOP}") for q, ans in pairs])
    assert "Sundays" in a.answer("On which days is the workshop shut?").text
    assert "8 people" in a.answer("How many people can each class take?").text
    assert "3 months" in a.answer("What does every fix come with?").text


def test_the_fact_that_accounts_for_more_of_the_question_wins_over_a_short_wording() -> None:
    # "What should I know about the warranty?" shares one word with the question, and as
    # a short wording its cosine similarity is high; the schools fact's answer holds the
    # question's rarer word ("colleges") as well, and is the one a fine-tune would give
    a = qa(
        [
            ("What should I know about the warranty?", "The warranty covers cracks in any anvil."),
            (
                "Can I pass the warranty on to a new owner?",
                "Yes: the warranty moves with the anvil when you sell it.",
            ),
            (
                "Do schools get a better deal?",
                "Schools and colleges get a five-year warranty on every anvil.",
            ),
        ]
    )
    got = a.answer("Is the warranty any longer for colleges?")
    assert got.kind == "neighbour" and "five-year warranty" in got.text
    assert got.matched == "Do schools get a better deal?"
