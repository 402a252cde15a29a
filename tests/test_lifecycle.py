"""The whole chain, offline: Markdown pages -> QA pairs -> dataset -> job -> model -> eval
-> discriminator -> guarded model (issue #5's acceptance test).

Nothing here is mocked: every step is the public API over one offline backend, which
plays the base model that writes the pairs, the trainer, the fine-tune and the
classifier fine-tune.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from finetune_qa import (
    UNRELATED_QUESTIONS,
    ChatModel,
    DatasetBuilder,
    Discriminator,
    EvalSuite,
    FineTuneJob,
    GuardedChatModel,
    QAGenerator,
    read_qa,
)
from finetune_qa.backends import OfflineBackend

SITE = Path(__file__).parent / "data" / "markdown_site"
SYSTEM = "You are a factual chatbot that answers questions about Fernhill Tasks."
AUGMENT = 3  # rephrasings per question, in the training data and in the gate


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("lifecycle")
    backend = OfflineBackend()

    # 1. generate: a base model writes numbered QA pairs from the site's pages
    writer = ChatModel("gpt-4o-mini", backend=backend, system_prompt=None, stop=None)
    generated = QAGenerator(writer, pairs_per_chunk=8).generate(SITE)
    qa_csv = generated.write_csv(work / "qa.csv")

    # 2. build: the seed CSV layout back into chat JSONL, with 3 rephrasings of each
    #    question (the writer rephrases; cached, so the gate below asks nothing again)
    builder = DatasetBuilder(
        system_prompt=SYSTEM,
        validation_fraction=0.0,
        augment=AUGMENT,
        writer=writer,
        rephrase_cache=work / "rephrasings.jsonl",
    )
    builder.add_source(qa_csv)
    build = builder.build(work / "train.jsonl", model="gpt-4o-mini")

    # 3. train the QA model
    job = FineTuneJob.create(
        work / "train.jsonl", model="gpt-4o-mini", backend=backend, journal=work / "j.jsonl"
    )
    job.wait()
    bot = job.chat_model()

    # the pairs the model was trained on, as the dataset kept them
    pairs = list(read_qa(qa_csv))
    kept = {e.question for e in _examples(work / "train.jsonl")}
    trained = [p for p in pairs if p.question in kept]

    # 4. evaluate the bare fine-tune: verbatim, variations (generated), unrelated
    suite = EvalSuite.from_pairs(trained)
    suite = suite.generate_variations(writer, cache=work / "variations.jsonl")
    plain = suite.run(bot)

    # 5. train a question gate on the same pairs, then guard the bot
    gate = Discriminator.train(
        trained,
        backend=backend,
        gate="question",
        workdir=work / "gate",
        seed=0,
        augment=AUGMENT,
        writer=writer,
    )
    guarded = GuardedChatModel(bot, question_gate=gate, topic="Fernhill Tasks")
    guarded_result = suite.run(guarded)
    return {
        "generated": generated,
        "build": build,
        "job": job,
        "trained": trained,
        "suite": suite,
        "plain": plain,
        "gate": gate,
        "guarded": guarded_result,
        "comparison": plain.compare(guarded_result),
        "work": work,
        "backend": backend,
        "bot": bot,
    }


def _examples(path: Path) -> list[object]:
    from finetune_qa import TrainingExample

    return [
        TrainingExample.model_validate_json(line) for line in path.read_text("utf-8").splitlines()
    ]


def _rate(result: object, set_name: str, scorer: str) -> float:
    return float(result.sets[set_name].scores[scorer])  # type: ignore[attr-defined]


def test_generation_feeds_a_dataset(chain: dict[str, object]) -> None:
    generated = chain["generated"]
    report = generated.report  # type: ignore[attr-defined]
    assert report.pages_read >= 8 and report.replies_malformed == 0
    assert len(generated.pairs) >= 60  # type: ignore[attr-defined]
    build = chain["build"]
    assert build.train >= 60  # type: ignore[attr-defined]
    assert chain["job"].status == "succeeded"  # type: ignore[attr-defined]


def test_augmentation_adds_rephrasings_and_the_gate_rests_on_them(
    chain: dict[str, object],
) -> None:
    build = chain["build"]
    aug = build.augmentation  # type: ignore[attr-defined]
    assert aug is not None and aug.k == AUGMENT
    # every kept question was rephrased; the rephrasings are training examples, counted
    assert aug.questions == build.kept  # type: ignore[attr-defined]
    assert aug.added_train >= 2 * aug.questions
    assert build.train == build.kept + aug.added_train  # type: ignore[attr-defined]
    # the gate's threshold rests on held-out pairs' rephrasings
    report = chain["gate"].report  # type: ignore[attr-defined]
    assert report.basis == "rephrasings"
    assert report.heldout_pairs and report.on_topic > report.heldout_pairs


def test_the_bare_fine_tune_answers_everything(chain: dict[str, object]) -> None:
    plain = chain["plain"]
    assert _rate(plain, "verbatim", "exact") >= 0.9
    # rephrasings reach the trained answer less often than the questions themselves
    assert _rate(plain, "variations", "exact") < _rate(plain, "verbatim", "exact")
    # ... and, as in the seed, it answers the unrelated questions too
    assert _rate(plain, "unrelated", "answered") >= 0.9


def test_the_guarded_model_refuses_unrelated_and_answers_verbatim(
    chain: dict[str, object],
) -> None:
    guarded = chain["guarded"]
    assert guarded.errors == 0  # type: ignore[attr-defined]
    refused = 1.0 - _rate(guarded, "unrelated", "answered")
    answered = _rate(guarded, "verbatim", "answered")
    assert refused >= 0.9, f"refused {refused:.0%} of the unrelated set"
    assert answered >= 0.9, f"answered {answered:.0%} of the verbatim set"
    # rephrasings are on topic too: a gate that only passes exact training questions fails
    assert _rate(guarded, "variations", "answered") >= 0.9
    # and what it answers is the trained answer, not only "something"
    assert _rate(guarded, "verbatim", "exact") >= 0.9
    # the unrelated set is the evaluation's own bank, not the gate's training negatives
    from finetune_qa import OFF_TOPIC_TRAINING_QUESTIONS

    assert not set(UNRELATED_QUESTIONS) & set(OFF_TOPIC_TRAINING_QUESTIONS)


def test_the_gate_reports_held_out_precision_and_recall(chain: dict[str, object]) -> None:
    report = chain["gate"].settings().report  # type: ignore[attr-defined]
    assert report is not None
    assert report.precision >= 0.8 and report.recall >= 0.8


def test_the_report_shows_both_models_side_by_side(chain: dict[str, object]) -> None:
    comparison = chain["comparison"]
    page = comparison.to_html()  # type: ignore[attr-defined]
    plain, guarded = chain["plain"], chain["guarded"]
    # both models are named in the page, and the unrelated set's change is shown
    assert html.escape(plain.label) in page and html.escape(guarded.label) in page  # type: ignore[attr-defined]
    unrelated = [
        d
        for d in comparison.deltas  # type: ignore[attr-defined]
        if d.set == "unrelated" and d.scorer == "answered"
    ]
    assert len(unrelated) == 1 and unrelated[0].delta <= -0.9
    assert f"{unrelated[0].delta:+.2f}" in page
    # one row per question, with both outputs: the guarded refusal of "What is Star Wars?"
    assert page.count("What is Star Wars?") >= 1 and "Sorry, I can only answer" in page


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_targets_do_not_hang_on_one_split(chain: dict[str, object], seed: int) -> None:
    """Another held-out split picks another threshold; both targets still hold."""
    gate = Discriminator.train(
        chain["trained"],  # type: ignore[arg-type]
        backend=chain["backend"],  # type: ignore[arg-type]
        gate="question",
        workdir=chain["work"] / f"gate-{seed}",  # type: ignore[operator]
        seed=seed,
    )
    guarded = GuardedChatModel(chain["bot"], question_gate=gate)  # type: ignore[arg-type]
    result = chain["suite"].run(guarded)  # type: ignore[attr-defined]
    assert 1.0 - _rate(result, "unrelated", "answered") >= 0.9
    assert _rate(result, "verbatim", "answered") >= 0.9
