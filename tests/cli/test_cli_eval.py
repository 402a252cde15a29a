"""finetune-qa eval: train offline through the CLI, then evaluate, compare and write reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finetune_qa import cli as cli_module
from finetune_qa.cli import main
from finetune_qa.samples import sample_csv

pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


@pytest.fixture
def model(capsys: pytest.CaptureFixture[str]) -> str:
    """A fine-tune trained on the whole sample through the CLI (kept in the offline state)."""
    code = main(["train", str(sample_csv()), "--validation-fraction", "0", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.strip()


def test_eval_compare_writes_reports(model: str, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "eval",
        str(sample_csv()),
        "--model",
        model,
        "--compare",
        "gpt-4o-mini",
        "--generate-variations",
        "--limit",
        "12",
        "--html",
        "out/report.html",
        "--markdown",
        "out/report.md",
        "--save-suite",
        "suite.jsonl",
        "--judge",
        "gpt-4o-mini",
    ]
    result = runner.invoke(cli_module.cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        "36 questions: lumen_notes_qa.csv (12), rephrasings (12), off-topic questions (12)" in out
    )
    assert f"b: {model} (offline): 36 questions, 0 errors" in out
    exact = next(line for line in out.splitlines() if line.strip().startswith("exact"))
    a, b, delta = (float(x) for x in exact.split()[1:])
    assert a == 0.0 and b >= 0.9 and delta == pytest.approx(b - a)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert (
        html.startswith("<!DOCTYPE html>")
        and model in html
        and html.count('<tr class="case"') == 36
    )
    assert (
        (tmp_path / "out" / "report.md")
        .read_text(encoding="utf-8")
        .startswith("# Comparison: gpt-4o-mini vs ")
    )
    assert len((tmp_path / "suite.jsonl").read_text(encoding="utf-8").splitlines()) == 36
    assert "judge" in out

    # --json: the comparison as JSON; the rephrasings come from the cache this time
    result = runner.invoke(cli_module.cli, [*args[:9], "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["a"]["label"] == "gpt-4o-mini" and data["b"]["label"] == model
    rows = {(d["set"], d["scorer"]): d for d in data["deltas"]}
    assert rows[("unrelated", "answered")]["b"] == 1.0  # the fine-tune answers off-topic questions
    assert rows[("verbatim", "exact")]["b"] > rows[("variations", "exact")]["b"] - 0.35


def test_eval_one_model_with_own_files(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "var.csv").write_text(
        "question,answer\nWhich company makes Lumen Notes?,"
        '"Lumen Notes is made by Lumen Labs, a small software company based in Ghent, Belgium."\n',
        encoding="utf-8",
    )
    (tmp_path / "off.txt").write_text("Who is Batman?\n", encoding="utf-8")
    code = main(
        [
            "eval",
            str(sample_csv()),
            "--model",
            model,
            "--variations",
            "var.csv",
            "--unrelated",
            "off.txt",
            "--no-builtin-unrelated",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == model and result["n"] == 25 + 1 + 1
    assert result["sets"]["variations"]["scores"]["exact"] == 1.0
    assert result["sets"]["unrelated"]["scores"]["answered"] == 1.0
    code = main(
        [
            "eval",
            str(sample_csv()),
            "--model",
            model,
            "--unrelated",
            "off.txt",
            "--no-builtin-unrelated",
            "--refusal",
            "Batman is a well-known topic",
            "-q",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and err == ""


def test_eval_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["eval", "missing.csv", "--model", "gpt-4o-mini"])
    _, err = capsys.readouterr()
    assert code == 2 and "missing.csv" in err
    code = main(
        [
            "eval",
            str(sample_csv()),
            "--model",
            "gpt-4o-mini",
            "--variations",
            str(sample_csv()),
            "--generate-variations",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2 and "either --variations" in err
    (tmp_path / "broken.jsonl").write_text('{"question": "q"\n', encoding="utf-8")
    code = main(["eval", "broken.jsonl", "--model", "gpt-4o-mini"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: broken.jsonl:1")
    # every question fails: exit 1, one line saying how many and why; the report is still written
    code = main(
        [
            "eval",
            str(sample_csv()),
            "--model",
            "gpt-4o-nope",
            "--limit",
            "2",
            "--html",
            "r.html",
            "-q",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1 and err.startswith("error: 4 of 4 questions failed (first: NotFoundError")
    assert err.count("\n") == 1 and (tmp_path / "r.html").exists()


def test_eval_behind_the_gates_before_and_after(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["guard", "train", str(sample_csv()), "--gate", "question", "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    # --compare with the same model: a is the bare fine-tune, b the same behind the gate
    args = ["eval", str(sample_csv()), "--model", model, "--compare", model, "--limit", "8"]
    code = main([*args, "--question-gate", "question-gate.json", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert (data["a"]["label"], data["b"]["label"]) == (model, f"{model} (guarded)")
    assert (data["matched"], data["only_a"], data["only_b"]) == (16, 0, 0)
    rows = {(d["set"], d["scorer"]): d for d in data["deltas"]}
    assert rows[("unrelated", "answered")]["a"] == 1.0  # the bare fine-tune answers everything
    assert rows[("unrelated", "answered")]["b"] <= 0.25  # the gate refuses off-topic questions
    assert rows[("verbatim", "exact")]["b"] >= 0.75
    code = main([*args, "--question-gate", "question-gate.json"])
    out, _ = capsys.readouterr()
    assert code == 0 and "16 cases matched (0 only in a, 0 only in b)" in out
    # a gate of the other kind is named, with the option to use
    code = main([*args, "--answer-gate", "question-gate.json"])
    _, err = capsys.readouterr()
    assert (
        code == 2 and "question-gate.json: is a question gate; pass it with --question-gate" in err
    )


def test_eval_prints_what_it_dropped(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qa.csv").write_text(
        "question,answer\nWhat is Lumen Notes?,A notes app.\nwhat is lumen notes,Again.\n",
        encoding="utf-8",
    )
    code = main(["eval", "qa.csv", "--model", model, "--limit", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "4 questions: qa.csv (1), off-topic questions (3)" in out
    assert "dropped 63 questions: duplicate_question 1, over_limit 62" in out
