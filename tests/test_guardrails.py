from __future__ import annotations

import asyncio
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from finetune_qa import ChatModel, DatasetBuilder, FineTuneJob, OfflineBackend, QAPair, read_qa
from finetune_qa import exceptions as exc
from finetune_qa._text import question_key
from finetune_qa.backends.base import Usage
from finetune_qa.chat import Answer, BatchItem
from finetune_qa.guardrails import (
    DISCRIMINATOR_SYSTEM_PROMPT,
    OFF_TOPIC_LABEL,
    OFF_TOPIC_TRAINING_QUESTIONS,
    ON_TOPIC_LABEL,
    Discriminator,
    DiscriminatorData,
    GuardedAnswer,
    GuardedChatModel,
    choose_threshold,
    gate_input,
    gate_report,
    probability_from_logprobs,
)
from finetune_qa.samples import sample_csv
from finetune_qa.tokens import get_encoding

SYS = "You are a factual chatbot that answers questions about Lumen Notes."

# Unrelated questions that are NOT in the discriminator's negatives (checked below).
UNRELATED = [
    "Who painted the Mona Lisa?",
    "What is the boiling point of water?",
    "How do I make pancakes?",
    "Who won Wimbledon in 2019?",
    "What is the capital of Canada?",
    "How does a car engine work?",
    "What is machine learning?",
    "Recommend a good horror movie.",
    "How many continents are there?",
    "What is the square root of 144?",
    "Who wrote Pride and Prejudice?",
    "How do airplanes stay in the air?",
    "What is the best pizza topping?",
    "How do I fix a leaking tap?",
    "Which language is spoken in Brazil?",
    "What is the largest ocean?",
    "How do I invest in gold?",
    "Why do leaves change colour in autumn?",
    "What is a haiku?",
    "How old is the universe?",
    "What is the fastest animal on land?",
    "How do I play poker?",
    "Who discovered penicillin?",
    "What does DNA stand for?",
    "Where is Machu Picchu?",
    "Can you teach me French?",
    "What is the best smartphone?",
    "How do I lose weight fast?",
    "What is the Mandalorian about?",
    "How do volcanoes erupt?",
]


@dataclass
class World:
    backend: OfflineBackend
    pairs: list[QAPair]
    bot: ChatModel
    question_gate: Discriminator
    answer_gate: Discriminator


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("guard")
    pairs = list(read_qa(sample_csv()))
    backend = OfflineBackend(max_retries=0)
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs).build(tmp / "train.jsonl")
    job = FineTuneJob.create(
        tmp / "train.jsonl", model="gpt-4o-mini", backend=backend, journal=tmp / "j.jsonl"
    )
    job.wait()
    bot = job.chat_model(retries=0)
    qg = Discriminator.train(pairs, backend=backend, journal=tmp / "j.jsonl", workdir=tmp)
    ag = Discriminator.train(
        pairs, backend=backend, gate="answer", qa_model=bot, journal=tmp / "j.jsonl"
    )
    return World(backend, pairs, bot, qg, ag)


# ------------------------------------------------------------------------------ data


def test_the_bank_is_large_varied_and_separate_from_the_test_questions() -> None:
    keys = {question_key(q) for q in OFF_TOPIC_TRAINING_QUESTIONS}
    assert len(OFF_TOPIC_TRAINING_QUESTIONS) >= 80 and len(keys) == len(
        OFF_TOPIC_TRAINING_QUESTIONS
    )
    # the seed's own example is for evaluation: the guard must not have trained on it
    assert "what is star wars" not in keys
    assert not keys & {question_key(q) for q in UNRELATED}


def test_labels_are_single_tokens_in_both_encodings() -> None:
    for name in ("o200k_base", "cl100k_base"):
        enc = get_encoding(name)
        assert len(enc.encode(ON_TOPIC_LABEL)) == len(enc.encode(OFF_TOPIC_LABEL)) == 1


def test_question_gate_data_counts_split_and_examples(tmp_path: Path) -> None:
    pairs = [
        QAPair(question=f"What does Acme plan {i} include?", answer=f"Plan {i}.") for i in range(10)
    ]
    pairs.append(QAPair(question="what does acme plan 3 include", answer="dup"))
    negatives = ["What is Star Wars?", "What does Acme plan 1 include?", "Who is Darth Vader?"]
    bank = [
        "Why is the sky blue?",
        "who is darth vader",
        *[f"Trivia question {i}?" for i in range(8)],
    ]
    data = DiscriminatorData.build(pairs, negatives=negatives, bank=bank, seed=3)
    c = data.counts
    assert (c.pairs_read, c.negatives_read) == (11, {"bank": 10, "user": 3})
    assert c.positives == 10 and c.negatives == {"bank": 9, "user": 2}
    assert c.dropped == {
        "duplicate_positive": 1,
        "duplicate_negative": 1,  # "who is darth vader" after the user's own
        "conflict": 1,  # a "negative" that is one of the QA questions
        "capped": 0,  # 11 negatives for 10 positives: under the 4x cap
        "unanswered": 0,
    }
    assert c.reconciles and "reconciles" in c.to_text()
    assert (c.heldout_on_topic, c.heldout_off_topic) == (2, 2)
    assert len(data.train) + len(data.heldout) == 21
    train_keys = {question_key(e.question) for e in data.train}
    assert not train_keys & {question_key(e.question) for e in data.heldout}
    # seeded: the same seed gives the same split, another seed another one
    again = DiscriminatorData.build(pairs, negatives=negatives, bank=bank, seed=3)
    assert [e.question for e in again.heldout] == [e.question for e in data.heldout]
    other = DiscriminatorData.build(pairs, negatives=negatives, bank=bank, seed=4)
    assert {e.question for e in other.heldout} != {e.question for e in data.heldout}
    n = data.write(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert n == len(lines) == len(data.train)
    ex = data.examples()[0].to_dict()["messages"]
    assert ex[0] == {"role": "system", "content": DISCRIMINATOR_SYSTEM_PROMPT}
    assert ex[2]["content"] in (ON_TOPIC_LABEL, OFF_TOPIC_LABEL)
    labels = [e.messages[-1].content for e in data.examples()]
    assert labels.count(ON_TOPIC_LABEL) == c.train_on_topic


def test_answer_gate_data_uses_the_qa_models_answers() -> None:
    pairs = [
        QAPair(question=f"What does Acme plan {i} include?", answer=f"Plan {i}.") for i in range(6)
    ]
    with pytest.raises(exc.UsageError, match="qa_model"):
        DiscriminatorData.build(pairs, gate="answer")
    bot = ChatModel.offline("gpt-4o-mini", stop=None)
    own = [("Who is Yoda?", "Yoda is a Jedi master.")]
    data = DiscriminatorData.build(
        pairs, gate="answer", negatives=own, bank=["What is Star Wars?"], qa_model=bot
    )
    assert data.counts.negatives == {"bank": 1, "user": 1}
    texts = {e.question: e.text("answer") for e in data.train + data.heldout}
    assert texts["Who is Yoda?"] == "Question: Who is Yoda?\nAnswer: Yoda is a Jedi master."
    assert texts["What is Star Wars?"].startswith("Question: What is Star Wars?\nAnswer: ")
    assert "Star Wars" in texts["What is Star Wars?"].split("Answer: ")[1]  # the model's reply
    assert texts[pairs[0].question].endswith("Answer: Plan 0.")


def test_bad_arguments_are_usage_errors() -> None:
    pairs = [QAPair(question="What is Acme?", answer="Anvils.")]
    with pytest.raises(exc.UsageError, match="gate"):
        DiscriminatorData.build(pairs, gate="both")  # type: ignore[arg-type]
    with pytest.raises(exc.UsageError, match="heldout_fraction"):
        DiscriminatorData.build(pairs, heldout_fraction=0.9)
    with pytest.raises(exc.UsageError, match="read_qa"):
        DiscriminatorData.build("qa.csv")  # type: ignore[arg-type]
    with pytest.raises(exc.DatasetError, match="off-topic"):
        DiscriminatorData.build(pairs, bank=())
    with pytest.raises(exc.UsageError, match="answer"):
        gate_input("answer", "What is Acme?")
    with pytest.raises(exc.DatasetError, match="at least 10"):
        Discriminator.train(pairs, backend=OfflineBackend(), bank=["What is Star Wars?"] * 3)


# ------------------------------------------------------------------ probabilities


def top(token: str, p: float, *alts: tuple[str, float]) -> list[dict[str, object]]:
    entries = [{"token": token, "logprob": math.log(p)}] + [
        {"token": t, "logprob": math.log(q)} for t, q in alts
    ]
    return [{**entries[0], "top_logprobs": entries}]


def test_probability_from_logprobs() -> None:
    assert probability_from_logprobs(top("yes", 0.6, ("no", 0.3))) == pytest.approx(2 / 3)
    assert probability_from_logprobs(top("no", 0.9, ("yes", 0.05))) == pytest.approx(0.05 / 0.95)
    # case and white-space variants of a label add up
    both = top("Yes", 0.5, (" yes", 0.2), ("no", 0.1), ("maybe", 0.2))
    assert probability_from_logprobs(both) == pytest.approx(0.7 / 0.8)
    assert probability_from_logprobs(top("yes", 0.8, ("sure", 0.1))) == pytest.approx(0.8)
    assert probability_from_logprobs(top("no", 0.7, ("nah", 0.2))) == pytest.approx(0.3)
    assert probability_from_logprobs(top("maybe", 0.7)) is None
    assert probability_from_logprobs(None) is None and probability_from_logprobs([]) is None


def answer(text: str, logprobs: list[dict[str, object]] | None = None) -> Answer:
    return Answer(
        question="q",
        text=text,
        finish_reason="length",
        usage=Usage(),
        latency=0.0,
        model="m",
        request_id=None,
        stopped_at_marker=False,
        logprobs=logprobs,
    )


def test_verdicts_from_logprobs_and_the_label_fallback() -> None:
    d = Discriminator("ft:x", backend=OfflineBackend(), threshold=0.7)
    v = d.verdict(answer("yes", top("yes", 0.6, ("no", 0.4))))
    assert (v.source, v.probability, v.on_topic, v.threshold) == (
        "logprobs",
        pytest.approx(0.6),
        False,
        0.7,
    )
    assert d.verdict(answer("yes")).model_dump(exclude={"threshold", "gate"}) == {
        "on_topic": True,
        "probability": 1.0,
        "label": "yes",
        "source": "label",
    }
    assert d.verdict(answer("No")).probability == 0.0
    assert not d.verdict(answer("Sure!")).on_topic  # an unknown label fails closed


def test_without_logprobs_the_label_decides(world: World) -> None:
    plain = Discriminator(world.question_gate.model, backend=world.backend, logprobs=False)
    v = plain.check("What is Lumen Notes?")
    assert (v.source, v.probability, v.on_topic, v.label) == ("label", 1.0, True, "yes")
    assert plain.check("What is Star Wars?").probability == 0.0


# --------------------------------------------------------------------- thresholds


def test_threshold_maximises_f1_with_the_widest_gap() -> None:
    assert choose_threshold([0.9, 0.8, 0.6], [0.1, 0.2]) == pytest.approx(0.4)
    # letting the 0.3 positive in costs a false positive (0.4) but raises F1:
    # 0.55 gives P=1 R=2/3 (F1 0.8); 0.275 gives P=0.75 R=1 (F1 0.857)
    assert choose_threshold([0.9, 0.7, 0.3], [0.25, 0.4]) == pytest.approx(0.275)
    assert choose_threshold([1.0, 1.0], [0.0]) == pytest.approx(0.5)
    assert choose_threshold([0.5], [0.5]) == 0.5  # one score: the default


def test_threshold_for_a_target_precision() -> None:
    on, off = [0.9, 0.7, 0.3], [0.25, 0.4]
    t = choose_threshold(on, off, target_precision=1.0)
    assert t == pytest.approx(0.55)
    assert gate_report(on, off, threshold=t).precision == 1.0
    with pytest.raises(exc.UsageError, match="target_precision"):
        choose_threshold(on, off, target_precision=0)
    with pytest.raises(exc.UsageError, match="scores"):
        choose_threshold([], [])


def test_gate_report_maths() -> None:
    r = gate_report([0.9, 0.6, 0.2, 0.1], [0.7, 0.3, 0.0], threshold=0.5, gate="question")
    assert (r.true_positives, r.false_negatives, r.true_negatives, r.false_positives) == (
        2,
        2,
        2,
        1,
    )
    assert r.precision == pytest.approx(2 / 3) and r.recall == pytest.approx(0.5)
    assert r.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert r.accuracy == pytest.approx(4 / 7)
    empty = gate_report([], [0.1], threshold=0.5)
    assert (empty.precision, empty.recall, empty.f1, empty.accuracy) == (0.0, 0.0, 0.0, 1.0)
    assert "precision 0.67, recall 0.50" in r.to_text()


# --------------------------------------------------------------------- end to end


def test_trained_gates_report_on_held_out_data(world: World) -> None:
    for gate in (world.question_gate, world.answer_gate):
        assert gate.model.startswith("ft:gpt-4o-mini-2024-07-18:org-offline:")
        assert gate.counts is not None and gate.counts.reconciles
        assert gate.counts.positives == 25 and gate.counts.negatives["bank"] == len(
            OFF_TOPIC_TRAINING_QUESTIONS
        )
        r = gate.report
        assert r is not None and r.threshold == gate.threshold and 0 < gate.threshold < 1
        assert (r.on_topic, r.off_topic) == (
            gate.counts.heldout_on_topic,
            gate.counts.heldout_off_topic,
        )
        assert r.precision >= 0.8 and r.recall >= 0.6
    # evaluate() on held-out sets reproduces the report's figures
    held = DiscriminatorData.build(world.pairs, seed=0).heldout
    again = world.question_gate.evaluate(
        [e.question for e in held if e.on_topic], [e.question for e in held if not e.on_topic]
    )
    report = world.question_gate.report
    assert report is not None and (report.basis, report.margin) == ("questions", None)
    assert report.heldout_pairs == report.on_topic  # no rephrasings: one question a pair
    assert "chosen on " in report.to_text() and f"{report.on_topic} held-out questions" in (
        report.to_text()
    )
    training_only = {"basis", "heldout_pairs", "margin", "warnings"}
    assert again.model_dump(exclude=training_only) == report.model_dump(exclude=training_only)


def test_guarded_model_refuses_unrelated_and_answers_training_questions(world: World) -> None:
    guarded = GuardedChatModel(world.bot, question_gate=world.question_gate, topic="Lumen Notes")
    items = guarded.ask_many(UNRELATED + [p.question for p in world.pairs], concurrency=4)
    assert [i.index for i in items] == list(range(len(items))) and all(i.ok for i in items)
    outcomes = [i.answer.guard for i in items if isinstance(i.answer, GuardedAnswer)]
    refused = outcomes[: len(UNRELATED)].count("refused_question") / len(UNRELATED)
    answered = outcomes[len(UNRELATED) :].count("passed") / len(world.pairs)
    assert refused >= 0.9 and answered >= 0.9, (refused, answered)
    star = guarded.ask("What is Star Wars?")
    assert star.text == "Sorry, I can only answer questions about Lumen Notes."
    assert (star.guard, star.finish_reason, star.model) == (
        "refused_question",
        "stop",
        world.bot.model,
    )
    assert star.question_verdict is not None and star.question_verdict.probability < 0.1


def test_a_refused_question_never_reaches_the_qa_model(world: World) -> None:
    guarded = GuardedChatModel(world.bot, question_gate=world.question_gate)
    fake = world.backend.fake
    before = len(fake.requests)
    guarded.ask("What is Star Wars?")
    models = [
        r.json["model"] for r in fake.requests[before:] if r.path.endswith("/chat/completions")
    ]
    assert models == [world.question_gate.model]
    before = len(fake.requests)
    ok = guarded.ask("How much does Lumen Pro cost?")
    models = [
        r.json["model"] for r in fake.requests[before:] if r.path.endswith("/chat/completions")
    ]
    assert models == [world.question_gate.model, world.bot.model]
    assert ok.guard == "passed" and ok.text.startswith("Lumen Pro costs")
    assert ok.usage.total_tokens > 0 and ok.answer_verdict is None


def test_the_answer_gate_withholds_an_off_domain_answer(world: World) -> None:
    guarded = GuardedChatModel(world.bot, question_gate=None, answer_gate=world.answer_gate)
    plain = world.bot.ask("What is Star Wars?").text
    got = guarded.ask("What is Star Wars?")
    assert got.guard == "withheld_answer" and got.original_text == plain
    assert got.text.startswith("Sorry, I don't have a reliable answer")
    assert got.answer_verdict is not None and not got.answer_verdict.on_topic
    fine = guarded.ask("How much does Lumen Pro cost?")
    assert (
        fine.guard == "passed" and fine.answer_verdict is not None and fine.answer_verdict.on_topic
    )


def test_per_item_errors_with_an_injected_fault(world: World) -> None:
    guarded = GuardedChatModel(
        world.bot, question_gate=world.question_gate, answer_gate=world.answer_gate
    )
    questions = ["How much does Lumen Pro cost?", "What is Star Wars?", "Can I pay yearly?"]
    world.backend.fake.inject("POST /chat/completions", status=400, times=1)
    items = guarded.ask_many(questions, concurrency=1)
    assert [i.index for i in items] == [0, 1, 2]
    assert not items[0].ok and items[0].error_type == "BadRequestError"
    assert items[1].ok and isinstance(items[1].answer, GuardedAnswer)
    assert items[1].answer.guard == "refused_question"
    assert isinstance(items[2], BatchItem) and isinstance(items[2].answer, Answer)
    assert isinstance(items[2].answer, GuardedAnswer) and items[2].answer.guard == "passed"
    seen: list[int] = []
    again = asyncio.run(guarded.aask_many(questions, on_result=lambda i: seen.append(i.index)))
    assert [i.answer.text for i in again if i.answer] == [
        i.answer.text for i in guarded.ask_many(questions) if i.answer
    ]
    assert seen == [0, 1, 2]
    world.backend.fake.inject("POST /chat/completions", status=400, times=1)
    with pytest.raises(exc.BadRequestError):
        guarded.ask("Can I pay yearly?")
    with pytest.raises(exc.UsageError, match="question 1"):
        guarded.ask_many(["ok?", "  "])


def test_async_ask_and_check_many(world: World) -> None:
    guarded = GuardedChatModel(world.bot, question_gate=world.question_gate)
    got = asyncio.run(guarded.aask("What is Star Wars?"))
    assert got.guard == "refused_question"
    verdicts = world.question_gate.check_many(["What is Lumen Notes?", "Why is the sky blue?"])
    assert [v.on_topic for v in verdicts] == [True, False]
    averdicts = asyncio.run(world.question_gate.acheck_many(["What is Lumen Notes?"]))
    assert averdicts[0] == verdicts[0]
    with pytest.raises(exc.UsageError, match="answers"):
        world.answer_gate.check_many(["a?", "b?"], ["x"])


def test_save_and_load(world: World, tmp_path: Path) -> None:
    path = world.question_gate.save(tmp_path / "gate.json")
    loaded = Discriminator.load(path, backend=world.backend)
    assert loaded.settings() == world.question_gate.settings()
    assert loaded.check("What is Star Wars?") == world.question_gate.check("What is Star Wars?")
    (tmp_path / "bad.json").write_text('{"model": "x"}')
    with pytest.raises(exc.InputFileError, match=r"bad\.json"):
        Discriminator.load(tmp_path / "bad.json")
    with pytest.raises(exc.InputFileError, match=r"missing\.json"):
        Discriminator.load(tmp_path / "missing.json")


def test_gates_of_the_wrong_kind_are_refused(world: World) -> None:
    with pytest.raises(exc.UsageError, match="question-gate"):
        GuardedChatModel(world.bot, question_gate=world.answer_gate)
    with pytest.raises(exc.UsageError, match="answer-gate"):
        GuardedChatModel(world.bot, question_gate=None, answer_gate=world.question_gate)
    assert GuardedChatModel(world.bot, question_gate=None).model == world.bot.model


def test_the_training_bank_shares_nothing_with_the_evaluation_bank() -> None:
    from finetune_qa._text import question_key
    from finetune_qa.evaluation import UNRELATED_QUESTIONS

    evaluation = {question_key(q) for q in UNRELATED_QUESTIONS}
    assert not [q for q in OFF_TOPIC_TRAINING_QUESTIONS if question_key(q) in evaluation]


# ------------------------------------------------------------------- review fixes


@pytest.mark.parametrize("seed", [2**64, 99999999999999999999, -1, 2**31, True, 1.5])
def test_a_seed_out_of_range_is_a_usage_error_naming_the_range(seed: object) -> None:
    pairs = [QAPair(question=f"What does plan {i} include?", answer="x") for i in range(12)]
    with pytest.raises(exc.UsageError, match="seed must be a whole number from 0 to 2147483647"):
        DiscriminatorData.build(pairs, seed=seed)  # type: ignore[arg-type]
    backend = OfflineBackend()
    with pytest.raises(exc.UsageError, match="0 to 2147483647"):
        Discriminator.train(pairs, backend=backend, seed=seed)  # type: ignore[arg-type]
    assert backend.fake.requests == []  # refused before anything was sent
    assert DiscriminatorData.build(pairs, seed=2**31 - 1).counts.seed == 2**31 - 1


def test_the_bank_is_capped_at_four_negatives_per_positive() -> None:
    two = [QAPair(question=f"What does Acme plan {i} include?", answer="x") for i in range(2)]
    data = DiscriminatorData.build(two, seed=5)
    c = data.counts
    assert c.negatives == {"bank": 8, "user": 0}
    assert c.dropped["capped"] == len(OFF_TOPIC_TRAINING_QUESTIONS) - 8
    assert c.reconciles and f"capped {c.dropped['capped']}" in c.to_text()
    # a seeded choice: same seed, same bank questions; another seed, others
    again = DiscriminatorData.build(two, seed=5)
    other = DiscriminatorData.build(two, seed=6)
    kept = {e.question for e in data.train + data.heldout if not e.on_topic}
    assert kept == {e.question for e in again.train + again.heldout if not e.on_topic}
    assert kept != {e.question for e in other.train + other.heldout if not e.on_topic}
    # the user's own negatives are never dropped; the bank makes room for them
    own = [f"Own off-topic question {i}?" for i in range(10)]
    mine = DiscriminatorData.build(two, negatives=own, seed=5).counts
    assert mine.negatives == {"bank": 0, "user": 10}
    assert mine.dropped["capped"] == len(OFF_TOPIC_TRAINING_QUESTIONS)
    # the cap is an option
    ratio = DiscriminatorData.build(two, max_negatives_per_positive=10).counts
    assert ratio.negatives["bank"] == 20
    uncapped = DiscriminatorData.build(two, max_negatives_per_positive=None).counts
    assert uncapped.negatives["bank"] == len(OFF_TOPIC_TRAINING_QUESTIONS)
    assert uncapped.dropped["capped"] == 0
    with pytest.raises(exc.UsageError, match="max_negatives_per_positive"):
        DiscriminatorData.build(two, max_negatives_per_positive=0.5)


def test_the_answer_gate_does_not_ask_about_capped_questions() -> None:
    pairs = [QAPair(question=f"What does Acme plan {i} include?", answer="x") for i in range(3)]
    bot = ChatModel.offline("gpt-4o-mini", stop=None)
    fake = bot.backend.fake  # type: ignore[attr-defined]
    data = DiscriminatorData.build(pairs, gate="answer", qa_model=bot)
    assert data.counts.negatives["bank"] == 12
    asked = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(asked) == 12


def test_tiny_held_out_data_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    five = [
        QAPair(question=f"What does the Acme plan number {i} include?", answer=f"Plan {i}.")
        for i in range(5)
    ]
    backend = OfflineBackend()
    with caplog.at_level("WARNING", logger="finetune_qa.guardrails"):
        gate = Discriminator.train(five, backend=backend)
    assert gate.counts is not None and gate.counts.negatives["bank"] == 20
    report = gate.report
    assert report is not None and (report.on_topic, report.off_topic) == (1, 4)
    assert report.warnings == [
        "only 1 on-topic input scored (fewer than 10): precision, recall and the threshold "
        "are unreliable; add rephrasings of each pair (augment=3, `--augment 3`), or give "
        "more QA pairs (or, when training, a larger heldout_fraction)",
        "only 4 off-topic inputs scored (fewer than 10): precision, recall and the "
        "threshold are unreliable; give more QA pairs (or, when training, a larger "
        "heldout_fraction)",
    ]
    lines = report.to_text().splitlines()
    assert lines[0].startswith("threshold ") and lines[1:] == [
        f"  warning: {w}" for w in report.warnings
    ]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(logged) == 2 and "only 1 on-topic input scored" in logged[0]
    assert gate.model in logged[0]
    # enough held-out data: no warning
    assert gate_report([0.9] * 10, [0.1] * 10, threshold=0.5).warnings == []
    # two QA pairs no longer train a gate on 1 positive against the whole bank
    with pytest.raises(exc.DatasetError, match="bank questions were left out"):
        Discriminator.train(five[:2], backend=backend)


def test_a_failed_check_names_the_input_and_what_to_do(world: World) -> None:
    missing = Discriminator("ft:gpt-4o-mini-2024-07-18:x:gone:1", backend=world.backend, retries=0)
    long_question = "What is Star Wars? " + "And who is Luke Skywalker, really? " * 5
    with pytest.raises(exc.BackendError) as caught:
        missing.check_many(["Fine?", long_question])
    text = str(caught.value)
    assert "the question gate (ft:gpt-4o-mini-2024-07-18:x:gone:1) could not check" in text
    assert "'Fine?' (input 0)" in text and "does not exist" in text
    assert "load the gate with the backend that trained it" in text
    world.backend.fake.inject("POST /chat/completions", status=500, times=1)
    gate = Discriminator(world.answer_gate.model, backend=world.backend, gate="answer", retries=0)
    with pytest.raises(exc.BackendError) as caught:
        gate.check_many([long_question], ["It is a film."])
    text = str(caught.value)
    assert "'What is Star Wars? And who is Luke Skywalker, really? ...' (input 0)" in text
    assert "try again later" in text


def test_settings_record_the_backend_and_load_uses_it(world: World, tmp_path: Path) -> None:
    path = world.question_gate.save(tmp_path / "gate.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["backend"] == "offline"
    loaded = Discriminator.load(path)  # no backend: the recorded one, not "openai"
    assert isinstance(loaded.chat.backend, OfflineBackend)
    assert loaded.settings() == world.question_gate.settings()
    explicit = Discriminator.load(path, backend=world.backend)  # an explicit backend wins
    assert explicit.chat.backend is world.backend
    # settings written before the backend was recorded still mean "openai"
    del raw["backend"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(exc.ConfigError, match="OpenAI API key"):
        Discriminator.load(path)
    assert Discriminator.load(path, backend=world.backend).check("What is Lumen Notes?").on_topic


def test_saves_are_atomic_and_keep_the_old_file_on_failure(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.question_gate.save(tmp_path / "gate.json")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    before = path.read_bytes()
    data = DiscriminatorData.build(world.pairs, seed=1)
    data.write(tmp_path / "train.jsonl")
    old_train = (tmp_path / "train.jsonl").read_bytes()

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    settings = world.question_gate.settings()
    other = Discriminator(world.question_gate.model, backend=world.backend, threshold=0.9)
    with pytest.raises(exc.InputFileError, match=r"gate\.json: cannot write \(No space left"):
        other.save(path)
    with pytest.raises(exc.InputFileError, match=r"train\.jsonl: cannot write"):
        DiscriminatorData.build(world.pairs, seed=2).write(tmp_path / "train.jsonl")
    monkeypatch.undo()
    assert path.read_bytes() == before and settings.threshold != 0.9
    assert (tmp_path / "train.jsonl").read_bytes() == old_train
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.json", "train.jsonl"]


# ------------------------------------------------- a gate that generalizes (issue #14)

ACME = [
    ("Who founded Acme Labs?", "Ada Lind and Max Berg founded Acme Labs in 2012."),
    ("How many people work at Acme Labs?", "Acme Labs has 42 employees."),
    ("Where is Acme Labs based?", "Acme Labs is based in Leeds."),
    ("How much does the Acme audit cost?", "The audit costs 900 euros."),
    ("How long does the Acme audit take?", "The audit takes two weeks."),
    ("Does Acme Labs offer discounts for charities?", "Charities get 30% off."),
    ("How do I book a workshop with Acme Labs?", "Book on acme.example/book."),
    ("Can I cancel an Acme workshop?", "Cancel up to 48 hours before for free."),
    ("What are the Acme Labs office hours?", "Monday to Friday, 9:00 to 17:00."),
    ("Who is the CEO of Acme Labs?", "Ada Lind is the CEO."),
    ("What does the Acme starter plan include?", "Two audits a year."),
    ("Is there a free trial of Acme Cloud?", "Yes, for 30 days."),
]


def test_rephrasings_are_positives_held_out_with_their_pair() -> None:
    from finetune_qa.guardrails import NEAR_MISS_QUESTIONS

    pairs = [QAPair(question=q, answer=a) for q, a in ACME]
    writer = ChatModel.offline("gpt-4o-mini")
    from finetune_qa import Rephraser

    reph = Rephraser(writer, k=3, cache=False)
    rephrasings = dict(
        zip([q for q, _ in ACME], reph.rephrase_many(q for q, _ in ACME), strict=True)
    )
    data = DiscriminatorData.build(pairs, rephrasings=rephrasings, heldout_fraction=0.25, seed=1)
    c = data.counts
    assert c.reconciles and c.rephrasings_read == sum(len(v) for v in rephrasings.values())
    assert c.rephrasings == c.positives - 12 and c.rephrasings >= 30
    assert c.heldout_pairs == 3 and c.heldout_rephrasings >= 8
    # a pair is held out whole: no wording of a held-out pair is trained on
    held = {e.group for e in data.heldout if e.on_topic}
    assert len(held) == 3 and not held & {e.group for e in data.train if e.on_topic}
    # near-misses come with rephrasings: the bank, and the site's questions about others
    assert c.negatives["near_miss"] > 0 and "near_miss" in c.negatives_read
    near = {e.question for e in data.train + data.heldout if e.source == "near_miss"}
    assert near & set(NEAR_MISS_QUESTIONS)
    swapped = [q for q in near if "Acme" not in q and q not in NEAR_MISS_QUESTIONS]
    assert swapped and all(not q.startswith("Who founded Acme") for q in swapped)
    # without rephrasings nothing changes: no near-misses unless asked for
    plain = DiscriminatorData.build(pairs, seed=1).counts
    assert "near_miss" not in plain.negatives and plain.rephrasings == 0
    asked = DiscriminatorData.build(pairs, seed=1, near_misses=True).counts
    assert asked.negatives["near_miss"] > 0
    # wordings read back from an augmented file (same answer) are one pair too
    flat = [*pairs, QAPair(question="Who started Acme Labs?", answer=ACME[0][1])]
    groups = {e.question: e.group for e in DiscriminatorData.build(flat).train}
    groups |= {e.question: e.group for e in DiscriminatorData.build(flat).heldout}
    assert groups["Who started Acme Labs?"] == groups["Who founded Acme Labs?"]


def test_company_names_are_found_and_swapped() -> None:
    from finetune_qa.guardrails import company_name, company_swaps

    questions = [q for q, _ in ACME]
    assert company_name(questions) == "Acme"
    swaps = company_swaps(questions, "Acme")
    assert len(swaps) == 12 and not any("Acme" in q for q in swaps)
    assert company_swaps(["See acme.example/book, Acme?"], "Acme")[0].startswith("See acme.example")
    assert company_name(["What is a plan?", "How do I pay?"]) is None


def test_the_threshold_is_chosen_on_held_out_rephrasings(tmp_path: Path) -> None:
    backend = OfflineBackend()
    writer = ChatModel("gpt-4o-mini", backend=backend)
    pairs = [QAPair(question=q, answer=a) for q, a in ACME]
    gate = Discriminator.train(
        pairs, backend=backend, augment=3, writer=writer, heldout_fraction=0.34, workdir=tmp_path
    )
    c, r = gate.counts, gate.report
    assert c is not None and r is not None and c.reconciles
    assert r.basis == "rephrasings"
    # the on-topic inputs it rested on are the held-out pairs' rephrasings, nothing else
    assert r.on_topic == c.heldout_rephrasings and r.heldout_pairs == c.heldout_pairs == 4
    assert f"chosen on {r.on_topic} held-out rephrasings of 4 pairs" in r.to_text()
    held = [
        json.loads(x)
        for x in (tmp_path / "question-gate-heldout.jsonl").read_text().split("\n")
        if x
    ]
    trained = [
        json.loads(x) for x in (tmp_path / "question-gate-train.jsonl").read_text().split("\n") if x
    ]
    held_q = {h["messages"][1]["content"] for h in held if h["messages"][2]["content"] == "yes"}
    data = DiscriminatorData.build(
        pairs,
        rephrasings=_rephrasings(writer, 3),
        heldout_fraction=0.34,
    )
    rephrased = {e.question for e in data.heldout if e.source == "rephrasing"}
    assert rephrased <= held_q and not rephrased & {t["messages"][1]["content"] for t in trained}
    # the threshold: the best-F1 cut on those scores, lowered to the margin above the
    # highest held-out off-topic score
    on = [e.question for e in data.heldout if e.source == "rephrasing"]
    off = [e.question for e in data.heldout if not e.on_topic]
    on_s = [v.probability for v in gate.check_many(on)]
    off_s = [v.probability for v in gate.check_many(off)]
    best = choose_threshold(on_s, off_s)
    stopped = [s for s in off_s if s < best]
    assert gate.threshold == round(min(best, max(stopped) + 0.05), 6) <= best
    # the report names the margin only when the threshold was lowered by it
    assert r.margin == (0.05 if gate.threshold < best else None)
    # the arguments are checked
    with pytest.raises(exc.UsageError, match="needs a writer"):
        Discriminator.train(pairs, backend=backend, augment=3)
    with pytest.raises(exc.UsageError, match="margin"):
        Discriminator.train(pairs, backend=backend, margin=0.9)


def _rephrasings(writer: ChatModel, k: int) -> dict[str, list[str]]:
    from finetune_qa import Rephraser

    questions = [q for q, _ in ACME]
    return dict(zip(questions, Rephraser(writer, k=k).rephrase_many(questions), strict=True))


def test_a_small_held_out_set_is_warned_about_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pairs = [QAPair(question=q, answer=a) for q, a in ACME]
    with caplog.at_level("WARNING", logger="finetune_qa.guardrails"):
        gate = Discriminator.train(pairs, backend=OfflineBackend())
    r = gate.report
    assert r is not None and r.basis == "questions" and r.on_topic == 2
    assert any("add rephrasings of each pair (augment=3, `--augment 3`)" in w for w in r.warnings)
    logged = " ".join(x.getMessage() for x in caplog.records)
    assert "only 2 on-topic inputs scored" in logged and "--augment 3" in logged
    # with rephrasings the same pairs give a held-out set large enough to trust
    backend = OfflineBackend()
    writer = ChatModel("gpt-4o-mini", backend=backend)
    rich = Discriminator.train(
        pairs, backend=backend, augment=3, writer=writer, heldout_fraction=0.34
    )
    assert rich.report is not None and rich.report.on_topic >= 10
    assert not [w for w in rich.report.warnings if "on-topic" in w]


def test_a_sentence_s_first_word_is_no_company_name() -> None:
    from finetune_qa.guardrails import company_name

    # rephrasings framed "...? Thanks." must not make "Thanks" the company to swap
    questions = [
        "Where is Acme based? Thanks.",
        "Who founded Acme? Thanks.",
        "How much is the plan? Thanks.",
        "What does the plan include? Thanks.",
    ]
    assert company_name(questions) == "Acme"


def test_a_threshold_that_stops_no_off_topic_input_is_warned_about() -> None:
    on, off = [0.9] * 12, [0.7] * 12
    report = gate_report(on, off, threshold=0.5)
    assert report.true_negatives == 0
    assert any("stops none of the 12 off-topic inputs" in w for w in report.warnings)
    assert "warning: the threshold 0.500 stops none" in report.to_text()
    # a threshold that stops some says nothing of the kind
    assert not gate_report(on, off, threshold=0.8).warnings


def test_a_gate_trained_on_an_augmented_file_read_back_still_refuses(tmp_path: Path) -> None:
    # pairs read back from an augmented train.jsonl already hold rephrasings; more
    # rephrasings on top once made near-misses of "Thanks" and a threshold of 0.000
    backend = OfflineBackend()
    writer = ChatModel("gpt-4o-mini", backend=backend, system_prompt=None, stop=None)
    src = tmp_path / "qa.csv"
    src.write_text(
        "question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in ACME), encoding="utf-8"
    )
    builder = DatasetBuilder(
        system_prompt="You answer questions about Acme Labs.", augment=3, writer=writer
    )
    builder.add_source(src)
    builder.build(tmp_path / "train.jsonl", model="gpt-4o-mini")
    pairs = list(read_qa(tmp_path / "train.jsonl"))
    assert len(pairs) > 2 * len(ACME)
    gate = Discriminator.train(
        pairs, backend=backend, augment=3, writer=writer, heldout_fraction=0.34, seed=0
    )
    r = gate.report
    assert r is not None and r.true_negatives > r.off_topic // 2 and gate.threshold > 0
    assert not any("stops none" in w for w in r.warnings)
    assert not gate.check("Who founded Microsoft?").on_topic
    assert gate.check("Who set up Acme Labs?").on_topic
