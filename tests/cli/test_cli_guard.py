"""finetune-qa guard train / guard check, on the offline backend kept between commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from clirun import run

from finetune_qa import cli as cli_module
from finetune_qa.config import DEFAULT_SYSTEM_PROMPT as SYSTEM
from finetune_qa.guardrails import OFF_TOPIC_TRAINING_QUESTIONS, DiscriminatorSettings
from finetune_qa.readers import read_qa
from finetune_qa.samples import sample_csv

ON_TOPIC = "How much does Lumen Pro cost?"  # a question of the sample
OFF_TOPIC = "What is Star Wars?"  # not among the gate's training negatives


pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


@pytest.fixture
def question_gate(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """A question gate trained on the sample through the CLI; its --json output."""
    code, out, err = run(
        capsys, "guard", "train", str(sample_csv()), "--gate", "question", "--json"
    )
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_train_writes_settings_that_describe_the_gate(
    question_gate: dict[str, object], tmp_path: Path
) -> None:
    assert question_gate["path"] == "question-gate.json"
    saved = DiscriminatorSettings.model_validate_json(
        (tmp_path / "question-gate.json").read_text(encoding="utf-8")
    )
    assert saved.model_dump(mode="json") == {k: v for k, v in question_gate.items() if k != "path"}
    assert saved.gate == "question"
    assert saved.model.startswith("ft:") and ":question-gate:" in saved.model
    n_questions = len({p.question for p in read_qa(sample_csv())})
    assert saved.counts is not None and saved.counts.reconciles
    assert saved.counts.positives == n_questions
    assert saved.counts.negatives == {"bank": len(OFF_TOPIC_TRAINING_QUESTIONS), "user": 0}
    assert saved.report is not None
    assert saved.report.threshold == saved.threshold
    assert saved.report.precision >= 0.8 and saved.report.recall >= 0.5


def test_train_prints_counts_report_and_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "guard", "train", str(sample_csv()), "--gate", "question")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("training the question gate on ")
    assert lines[1].startswith("model: ft:gpt-4o-mini-2024-07-18:org-offline:question-gate:")
    assert "(reconciles)" in out
    assert "held out: threshold " in out and "precision" in out and "recall" in out
    # 25 QA pairs hold out 5 on-topic questions: the report says that is few
    warned = [x for x in lines if x.startswith("  warning: only 5 on-topic inputs scored")]
    assert len(warned) == 1 and warned[0].endswith("a larger heldout_fraction)")
    assert lines[-1] == "wrote question-gate.json"


def test_train_quiet_prints_only_the_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "guard", "train", str(sample_csv()), "--gate", "question", "--out", "g.json", "-q"
    )
    assert code == 0, err
    assert out == "g.json\n"
    assert (tmp_path / "g.json").is_file()


def test_check_prints_the_verdict_and_exits_0_either_way(
    question_gate: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    threshold = f"(threshold {question_gate['threshold']:.3f})"
    code, out, _ = run(capsys, "guard", "check", "question-gate.json", ON_TOPIC)
    assert code == 0
    assert out.startswith("on topic ") and out.rstrip().endswith(f"{threshold}  {ON_TOPIC}")
    code, out, _ = run(capsys, "guard", "check", "question-gate.json", OFF_TOPIC)
    assert code == 0
    assert out.startswith("off topic") and out.rstrip().endswith(OFF_TOPIC)


def test_fail_off_topic_makes_the_exit_code_the_answer(
    question_gate: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    check = ["guard", "check", "question-gate.json", "--fail-off-topic", "-q"]
    assert run(capsys, *check, OFF_TOPIC) == (1, "off topic\n", "")  # -q: only the verdict
    assert run(capsys, *check, ON_TOPIC) == (0, "on topic\n", "")


def test_check_reads_questions_from_stdin_as_json_lines(
    question_gate: dict[str, object],
) -> None:
    result = CliRunner().invoke(
        cli_module.cli,
        ["guard", "check", "question-gate.json", "--json"],
        input=f"{ON_TOPIC}\n\n{OFF_TOPIC}\n",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["question"] for r in rows] == [ON_TOPIC, OFF_TOPIC]
    assert [r["on_topic"] for r in rows] == [True, False]
    assert all(r["gate"] == "question" and r["source"] == "logprobs" for r in rows)
    assert rows[0]["probability"] > rows[0]["threshold"] > rows[1]["probability"]


def test_check_threshold_overrides_the_saved_one(
    question_gate: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "guard", "check", "question-gate.json", OFF_TOPIC, "--threshold", "0", "--json"
    )
    assert code == 0
    verdict = json.loads(out)
    assert verdict["threshold"] == 0.0 and verdict["on_topic"] is True


def test_answer_gate_uses_the_qa_model_trained_by_train(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`finetune-qa train --backend offline` then `guard train --gate answer --qa-model ft:...`."""
    code, model, err = run(capsys, "train", str(sample_csv()), "--validation-fraction", "0", "-q")
    assert code == 0, err
    model = model.strip()
    code, out, err = run(
        capsys, "guard", "train", str(sample_csv()), "--gate", "answer", "--qa-model", model,
        "--out", "answer-gate.json", "--json",
    )  # fmt: skip
    assert code == 0, err
    settings = json.loads(out)
    assert settings["gate"] == "answer" and ":answer-gate:" in settings["model"]
    # every off-topic question got the QA model's answer: none dropped as unanswered
    assert settings["counts"]["dropped"]["unanswered"] == 0
    assert settings["counts"]["negatives"]["bank"] == len(OFF_TOPIC_TRAINING_QUESTIONS)

    # what the QA model says to an unrelated question is what the answer gate stops
    code, fluent, err = run(capsys, "ask", model, OFF_TOPIC, "--system-prompt", SYSTEM)
    assert code == 0 and fluent.startswith("Star Wars is"), err
    trained = {p.question: p.answer for p in read_qa(sample_csv())}
    gate = "answer-gate.json"
    code, out, _ = run(capsys, "guard", "check", gate, ON_TOPIC, "--answer", trained[ON_TOPIC])
    assert code == 0 and out.startswith("on topic "), out
    code, out, _ = run(capsys, "guard", "check", gate, OFF_TOPIC, "--answer", fluent.strip())
    assert code == 0 and out.startswith("off topic"), out


def test_answer_gate_needs_a_qa_model(
    capsys: pytest.CaptureFixture[str], offline_state: Path
) -> None:
    code, out, err = run(capsys, "guard", "train", str(sample_csv()), "--gate", "answer")
    assert code == 2 and out == ""
    assert err.startswith("error: --gate answer needs --qa-model MODEL")
    assert not offline_state.exists()  # nothing was sent


def test_question_gate_refuses_a_qa_model(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["guard", "train", str(sample_csv()), "--gate", "question", "--qa-model", "ft:x"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "--qa-model is for --gate answer" in err


def test_a_bad_out_path_fails_before_any_job(
    capsys: pytest.CaptureFixture[str], offline_state: Path
) -> None:
    Path("no").write_text("a file, not a folder")
    args = ["guard", "train", str(sample_csv()), "--gate", "question", "--out", "no/g.json"]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("error: no/g.json: cannot write here: ")
    assert err.endswith("no is not a folder (pick another path for --output)\n")
    assert not offline_state.exists()


def test_check_refuses_the_wrong_inputs_for_the_gate(
    question_gate: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "guard", "check", "question-gate.json", ON_TOPIC, "--answer", "x")
    assert code == 2 and "is a question gate" in err and "drop --answer" in err
    code, _, err = run(capsys, "guard", "check", "question-gate.json", "--answer", "x")
    assert code == 2 and "--answer goes with a QUESTION" in err


def test_check_names_a_file_that_is_not_gate_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "nope.json").write_text('{"model": "x"}', encoding="utf-8")
    code, _, err = run(capsys, "guard", "check", "nope.json", ON_TOPIC)
    assert code == 2
    assert err.startswith("error: nope.json: not discriminator settings")


def test_own_negatives_and_workdir_make_a_rerun_attach(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    negatives = tmp_path / "off.txt"
    negatives.write_text(
        "# my off-topic questions\n" + "".join(f"{q}\n" for q in OFF_TOPIC_TRAINING_QUESTIONS[:40]),
        encoding="utf-8",
    )
    args = [
        "guard", "train", str(sample_csv()), "--gate", "question", "--negatives", str(negatives),
        "--no-builtin-negatives", "--workdir", "gate", "--seed", "3", "--json",
    ]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["counts"]["negatives"] == {"bank": 0, "user": 40}
    assert first["counts"]["seed"] == 3
    kept = {p.name for p in (tmp_path / "gate").iterdir()}
    assert kept == {"question-gate-train.jsonl", "question-gate-heldout.jsonl", "journal.jsonl"}
    # the same data and settings: the journal finds the job, no second one is started
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["model"] == first["model"]
    code, out, err = run(capsys, "jobs", "--json")
    assert code == 0, err
    listed = [json.loads(line) for line in out.splitlines()]
    assert sum(":question-gate" in (j["fine_tuned_model"] or "") for j in listed) == 1


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "2147483648"])
def test_a_seed_out_of_range_is_refused_before_any_job(
    capsys: pytest.CaptureFixture[str], offline_state: Path, seed: str
) -> None:
    args = ["guard", "train", str(sample_csv()), "--gate", "question", "--seed", seed]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert "internal error" not in err and "OverflowError" not in err
    assert "--seed" in err and "0<=x<=2147483647" in err
    assert not offline_state.exists()


def test_check_uses_the_backend_the_gate_was_trained_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FINETUNE_QA_BACKEND")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["guard", "train", str(sample_csv()), "--gate", "question", "--backend", "offline"]
    code, _, err = run(capsys, *args, "-q")
    assert code == 0, err
    saved = DiscriminatorSettings.model_validate_json(
        (tmp_path / "question-gate.json").read_text(encoding="utf-8")
    )
    assert saved.backend == "offline"
    code, out, err = run(capsys, "guard", "check", "question-gate.json", ON_TOPIC)  # no --backend
    assert code == 0, err
    assert out.startswith("on topic ")
    # an explicit backend still wins: openai has no key here, so it fails, naming the key
    code, _, err = run(
        capsys, "guard", "check", "question-gate.json", ON_TOPIC, "--backend", "openai"
    )
    assert code != 0 and "OpenAI API key" in err


def test_ask_one_question_through_a_gate(
    question_gate: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #13, finding 10: `ask` takes the gates (and the refusal's topic) itself."""
    code, out, err = run(capsys, "train", str(sample_csv()), "-q")
    assert code == 0, err
    model = out.strip().splitlines()[-1]
    gate = str(question_gate["path"])
    code, out, err = run(
        capsys, "ask", model, OFF_TOPIC, "--question-gate", gate, "--topic", "Lumen Notes", "--json"
    )
    assert code == 0, err
    refused = json.loads(out)
    assert refused["guard"] == "refused_question" and "Lumen Notes" in refused["text"]
    code, out, err = run(capsys, "ask", model, ON_TOPIC, "--question-gate", gate)
    assert code == 0, err
    assert "Lumen Pro" in out and "Sorry" not in out
    code, out, err = run(capsys, "ask", model, ON_TOPIC, "--answer-gate", gate)
    assert code == 2 and "is a question gate; pass it with --question-gate" in err
    code, out, err = run(capsys, "ask", model, ON_TOPIC, "--topic", "Lumen Notes")
    assert code == 2 and "--topic" in err
