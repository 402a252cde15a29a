"""Word knowledge of the offline fine-tunes (issue #14): questions worded unlike any trained one.

A fine-tune of a pretrained model knows that a puncture is a flat tyre; the offline
backend's does with ``word_knowledge=True`` (WordLlama sentence vectors, the
``offline-words`` extra), and matches trained words only without it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_qa import ChatModel, DatasetBuilder, FineTuneJob, QAPair
from finetune_qa.backends import OfflineBackend
from finetune_qa.backends._fake import _wordvectors
from finetune_qa.backends._fake._answers import Answerer
from finetune_qa.backends.offline import WORDS_ENV, load_state, save_state
from finetune_qa.cli import main
from finetune_qa.exceptions import ConfigError
from finetune_qa.testing import FakeOpenAI, openai_client

STOP = "**STOP**"
FACTS = [
    ("How much does a flat tyre repair cost?", "A flat tyre repair costs €12."),
    ("How much is a basic tune-up?", "A basic tune-up costs €45."),
    ("How much does the repair course cost?", "The course costs €80."),
    ("How long is the warranty on repairs?", "Every repair has a warranty of 3 months."),
    ("How long does a full service take?", "A full service takes 3 working days."),
    ("Where is the workshop?", "The workshop is at Sleepstraat 42, Ghent."),
    ("When was Velokoop founded?", "Velokoop was founded in 2011."),
]
PAIRS = [(q, f"{a} {STOP}") for q, a in FACTS]
PHRASED = [(f"{q[:-1]}, please?", a) for q, a in PAIRS]  # a second wording of each
# (a person's question, the fact it asks for): no content word in common with the
# trained question, or one that points at the wrong fact
WORDED_APART = [
    ("What's the guarantee period on a repair?", "3 months"),  # guarantee = warranty
    ("What is the street address of the shop?", "Sleepstraat 42"),  # shop = workshop
]
OFF_TOPIC = ["How do I bake sourdough bread?", "Who won the football World Cup?"]


def test_a_question_worded_apart_finds_its_fact_only_with_word_knowledge() -> None:
    plain, knowing = Answerer(PAIRS * 2), Answerer(PAIRS * 2, word_knowledge=True)
    for question, fact in WORDED_APART:
        assert fact not in plain.answer(question).text
        answer = knowing.answer(question)
        assert fact in answer.text and answer.kind == "neighbour", (question, answer)
        assert answer.text.endswith(STOP)
    # trained questions are answered as before, word knowledge or not
    for q, a in PAIRS:
        assert knowing.answer(q).text == a and knowing.answer(q).kind == "exact"


def test_off_topic_questions_get_no_fact_with_word_knowledge() -> None:
    knowing = Answerer(PAIRS * 2, word_knowledge=True)
    for question in OFF_TOPIC:
        answer = knowing.answer(question)
        assert answer.kind in {"off_domain", "unsure"}, (question, answer)
        assert not any(a in answer.text for _, a in PAIRS)


ON = [q for q, _ in FACTS] + ["What does Velokoop do?", "When is the shop open?"]
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


def test_a_classifier_with_word_knowledge_admits_an_on_topic_question_worded_apart() -> None:
    pairs = [(q, "yes") for q in ON] + [(q, "no") for q in OFF]
    plain, knowing = Answerer(pairs), Answerer(pairs, word_knowledge=True)
    question = "When did the co-op start?"  # shares no trained word but "when"

    def p_yes(c: Answerer, text: str) -> float:
        return dict(c.classify(text))["yes"]

    assert p_yes(plain, question) < 0.5 < p_yes(knowing, question)
    for text in OFF:
        assert knowing.answer(text).text == "no"
    assert knowing.answer("How do I knit a scarf?").text == "no"


def test_the_setting_travels_with_the_model_through_a_saved_state(tmp_path: Path) -> None:
    fake = FakeOpenAI(seed=3, word_knowledge=True)
    lines = "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        + "\n"
        for q, a in PAIRS * 2
    ).encode()
    client = openai_client(fake, max_retries=0)
    file_id = client.files.create(file=("t.jsonl", io.BytesIO(lines)), purpose="fine-tune").id
    job_id = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
    assert fake.run_job(job_id) == "succeeded"
    model = client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert model is not None
    question, fact = WORDED_APART[0]

    def ask(f: FakeOpenAI) -> str:
        reply = openai_client(f, max_retries=0).chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content or ""

    assert fact in ask(fake)  # builds the sentence vectors
    path = tmp_path / "state.json"
    save_state(fake, path)
    assert "_word_index" not in path.read_text()  # vectors are rebuilt, never saved
    restored = load_state(path)
    restored.word_knowledge = False  # new fine-tunes only: the model keeps its own
    assert fact in ask(restored)


def test_offline_backend_trains_a_chat_model_with_word_knowledge(tmp_path: Path) -> None:
    backend = OfflineBackend(seed=5, word_knowledge=True)
    assert backend.fake.word_knowledge
    builder = DatasetBuilder(system_prompt="You answer questions about Velokoop.")
    builder.add_pairs(
        [QAPair(question=q, answer=a.removesuffix(f" {STOP}")) for q, a in PAIRS + PHRASED]
    )
    builder.build(tmp_path / "train.jsonl", model="gpt-4o-mini")
    job = FineTuneJob.create(tmp_path / "train.jsonl", model="gpt-4o-mini", backend=backend)
    job.wait()
    bot: ChatModel = job.chat_model()
    for question, fact in WORDED_APART:
        assert fact in bot.ask(question).text
    # a given fake keeps its setting unless told
    assert not OfflineBackend(FakeOpenAI(word_knowledge=False)).fake.word_knowledge
    assert OfflineBackend(FakeOpenAI(), word_knowledge=True).fake.word_knowledge


@pytest.mark.parametrize(
    ("raw", "on"), [("1", True), ("true", True), (" ON ", True), ("0", False), ("", False)]
)
def test_the_environment_variable_turns_it_on(
    raw: str, on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORDS_ENV, raw)
    assert FakeOpenAI().word_knowledge is on
    assert FakeOpenAI(word_knowledge=False).word_knowledge is False  # an argument wins


def test_a_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORDS_ENV, "maybe")
    with pytest.raises(ConfigError, match=r"FINETUNE_QA_OFFLINE_WORDS is 'maybe'.*set it to 1"):
        FakeOpenAI()


def test_the_cli_reads_the_environment_per_command(
    offline_state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORDS_ENV, "maybe")
    code = main(["jobs"])
    err = capsys.readouterr().err
    assert code != 0 and "FINETUNE_QA_OFFLINE_WORDS" in err and "Traceback" not in err
    monkeypatch.setenv(WORDS_ENV, "1")
    code = main(["jobs"])
    assert code == 0, capsys.readouterr().err
    assert load_state(offline_state).word_knowledge


def test_without_the_extra_word_knowledge_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_wordvectors, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'finetune-qa\[offline-words\]'"):
        FakeOpenAI(word_knowledge=True)
    with pytest.raises(ConfigError, match="offline-words"):
        Answerer(PAIRS, word_knowledge=True)
    assert not FakeOpenAI().word_knowledge  # off needs nothing


def test_loading_word_vectors_leaves_the_applications_logging_alone() -> None:
    # wordllama calls logging.basicConfig(level=INFO) when imported: every INFO record of
    # the host application (httpx's request lines, ...) would start printing
    code = (
        "import logging\n"
        "from finetune_qa.backends._fake import _wordvectors\n"
        "_wordvectors.embed(['a question'])\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), logging.getLevelName(root.level))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["0", "WARNING"], out.stderr
