from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "finetune-qa" in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Exit codes: 0 success, 1 problems found or failure, 2 bad input" in out
    for cmd in ("build", "validate", "models"):
        code, out, _ = run(capsys, cmd, "--help")
        assert code == 0 and "Exit codes" in out


def test_build_then_validate(
    capsys: pytest.CaptureFixture[str], seed_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    code, stdout, err = run(
        capsys, "build", str(seed_csv), "--output", str(out), "--system-prompt", "Be factual."
    )
    assert code == 0, err
    assert "read 15 pairs = kept 14 + dropped 1 (reconciles)" in stdout
    assert "question_too_short: 1" in stdout
    assert "estimated training cost: $" in stdout
    code, stdout, _ = run(capsys, "validate", str(out), "--model", "gpt-4.1-mini")
    assert code == 0 and "OK" in stdout and "gpt-4.1-mini" in stdout


def test_build_json_and_report_file(
    capsys: pytest.CaptureFixture[str], seed_csv: Path, tmp_path: Path
) -> None:
    out, rep = tmp_path / "t.jsonl", tmp_path / "report.json"
    code, stdout, _ = run(
        capsys,
        "build",
        str(seed_csv),
        "-o",
        str(out),
        "--validation",
        str(tmp_path / "v.jsonl"),
        "--validation-fraction",
        "0.3",
        "--seed",
        "3",
        "--report",
        str(rep),
        "--json",
    )
    assert code == 0
    data = json.loads(stdout)
    assert data["reconciles"] is True and data["read"] == 15
    assert data["train"] + data["validation"] == data["kept"] == 14
    assert json.loads(rep.read_text()) == data


def test_validate_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    code, stdout, _ = run(capsys, "validate", str(bad), "--json")
    assert code == 1
    data = json.loads(stdout)
    assert data["ok"] is False
    assert data["error_counts"] == {"example_missing_assistant_message": 1, "too_few_examples": 1}
    assert data["errors"][0]["line"] in (1, None)


def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "qa.csv"
    src.write_text("question,reply\nWhat?,This.\n")
    code, _out, err = run(capsys, "build", str(src), "-o", str(tmp_path / "t.jsonl"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and f"{src}:1" in err
    assert "Traceback" not in err and not (tmp_path / "t.jsonl").exists()
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in err and err.count("\n") == 1
    code, _, err = run(capsys, "validate", str(src), "--model", "gpt-9-imaginary")
    assert code == 2 and "unknown model" in err
    code, _, err = run(capsys, "build", str(src))
    assert code == 2 and "--output" in err


def test_nothing_survives_exit_1(
    capsys: pytest.CaptureFixture[str], seed_csv: Path, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        "build",
        str(seed_csv),
        "-o",
        str(tmp_path / "t.jsonl"),
        "--min-question-length",
        "999",
    )
    assert code == 1 and "question_too_short: 15" in out and "no pair survived" in err


def test_models_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0 and "gpt-4o-mini-2024-07-18" in out and "2027-01-14" in out
    code, out, _ = run(capsys, "models", "--json")
    found = [json.loads(line) for line in out.splitlines()]  # JSON Lines: one model per line
    assert code == 0 and any(m["name"] == "gpt-4.1-2025-04-14" for m in found)


def test_console_script_and_module_entry_points(seed_csv: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "finetune_qa", "validate", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
