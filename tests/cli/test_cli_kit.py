"""finetune-qa inventory, record and eval --against: train offline through the CLI, list the
fine-tunes, record one, resume the recording, and score models against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finetune_qa import GoldenSet
from finetune_qa.cli import cli, main
from finetune_qa.samples import sample_csv

pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


def _train(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["train", str(sample_csv()), "--validation-fraction", "0", "-q", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.strip()


@pytest.fixture
def model(capsys: pytest.CaptureFixture[str]) -> str:
    """A fine-tune trained on the whole sample through the CLI (kept in the offline state)."""
    return _train(capsys)


def test_inventory_prints_a_table_and_json_lines(
    model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _train(capsys, "--model", "gpt-4.1-nano", "--suffix", "nano")
    runner = CliRunner()
    result = runner.invoke(cli, ["inventory"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "BASE", "CREATED", "NEW", "JOBS", "END", "SHUTDOWN"] + [
        "STATUS"
    ]
    assert lines[1].startswith(other) and "2026-10-23 (295 days left)" in lines[1]
    assert lines[2].startswith(model)
    assert "2027-01-06 (370 days left)" in lines[2] and "2027-01-14 (378 days left)" in lines[2]
    assert lines[2].split()[1:3] == ["gpt-4o-mini-2024-07-18", "2026-01-01"]
    assert f"soonest: {other} stops serving on 2026-10-23" in result.output

    result = runner.invoke(cli, ["inventory", "--json", "--today", "2027-01-10"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["model"] for r in rows] == [other, model]
    assert rows[0]["shut_down"] and rows[0]["days_to_shutdown"] == -79
    assert rows[1]["fine_tuning_ended"] and not rows[1]["shut_down"]
    assert rows[1]["days_to_shutdown"] == 4 and rows[1]["today"] == "2027-01-10"
    table = runner.invoke(cli, ["inventory", "--today", "2027-01-10"]).output
    assert "2027-01-06 (ended)" in table and "no new jobs" in table and "shut down" in table


def test_inventory_without_fine_tunes() -> None:
    result = CliRunner().invoke(cli, ["inventory"])
    assert result.exit_code == 0 and result.output == "no fine-tuned models\n"


def test_record_resumes_and_eval_against_scores(model: str, tmp_path: Path) -> None:
    runner = CliRunner()
    record = ["record", model, str(sample_csv()), "-o", "golden.jsonl", "--limit", "5"]
    result = runner.invoke(cli, [*record, "--generate-variations"])
    assert result.exit_code == 0, result.output
    assert "15 questions: 5 verbatim, 5 variations, 5 unrelated" in result.output
    assert "asked 15 (0 recorded before), recorded 15, 0 failed" in result.output
    path = tmp_path / "golden.jsonl"
    golden = GoldenSet.read(path)
    assert golden.header.model == model and golden.counts() == {
        "verbatim": 5,
        "variations": 5,
        "unrelated": 5,
    }

    # a recording cut short (header + 4 answers on disk) resumes with the 11 others
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(True)[:5]), "utf-8")
    result = runner.invoke(cli, [*record, "--generate-variations", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["already"], report["asked"], report["recorded"]) == (4, 11, 11)
    resumed = GoldenSet.read(path)
    assert resumed.header == golden.header and resumed.answers[:4] == golden.answers[:4]
    assert sorted(a.question for a in resumed.answers) == sorted(a.question for a in golden.answers)

    result = runner.invoke(
        cli, ["eval", "--against", "golden.jsonl", "--model", model, "--html", "r.html", "--json"]
    )
    assert result.exit_code == 0, result.output
    same = json.loads(result.output)
    assert list(same["sets"]) == ["verbatim", "variations", "unrelated", "overall"]
    assert same["sets"]["overall"]["n"] == 15
    assert same["sets"]["overall"]["scores"]["exact"] == 1.0
    assert same["sets"]["overall"]["scores"]["agreement"] == 1.0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'data-set="overall"' in html and html.count('<tr class="case"') == 15

    result = runner.invoke(
        cli, ["eval", "--against", "golden.jsonl", "--model", "gpt-4o-mini", "--compare", model]
    )
    assert result.exit_code == 0, result.output
    overall = result.output.split("overall (15)", 1)[1]
    exact = next(line for line in overall.splitlines() if line.strip().startswith("exact"))
    a, b, delta = (float(x) for x in exact.split()[1:])
    assert a == 1.0 and b < 0.5 and delta == pytest.approx(b - a)


def test_kit_usage_errors(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(sample_csv())
    assert main(["record", model, data, "-o", "g.jsonl", "--limit", "2", "-q"]) == 0
    capsys.readouterr()
    assert main(["record", "gpt-4o-mini", data, "-o", "g.jsonl", "-q"]) == 2
    assert "record each model in its own file" in capsys.readouterr().err
    assert main(["eval", "--against", "g.jsonl", data, "--model", model]) == 2
    assert "--against asks the questions of the golden set; DATA" in capsys.readouterr().err
    assert main(["eval", "--against", "g.jsonl", "--limit", "3", "--model", model]) == 2
    assert "--limit" in capsys.readouterr().err
    assert main(["eval", "--model", model]) == 2
    assert "give DATA" in capsys.readouterr().err
    Path("not-golden.jsonl").write_text('{"question": "q"}\n', encoding="utf-8")
    assert main(["eval", "--against", "not-golden.jsonl", "--model", model]) == 2
    assert "not a golden set header" in capsys.readouterr().err


def test_eval_against_asks_as_the_recording_did(
    model: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import finetune_qa.golden as golden_module

    prompt = "You answer questions about Lumen Notes."
    data = str(sample_csv())
    args = ["-o", "g.jsonl", "--limit", "2", "--system-prompt", prompt, "--stop", "END", "-q"]
    assert main(["record", model, data, *args]) == 0
    header = GoldenSet.read("g.jsonl").header
    assert (header.system_prompt, header.stop, header.temperature) == (prompt, ["END"], 0.0)

    asked: list[tuple[str | None, tuple[str, ...]]] = []
    real = golden_module.compare_to_golden

    def spy(golden: Any, chat: Any, **kwargs: Any) -> Any:
        asked.append((chat.system_prompt, chat.stop))
        return real(golden, chat, **kwargs)

    monkeypatch.setattr(golden_module, "compare_to_golden", spy)
    assert main(["eval", "--against", "g.jsonl", "--model", model, "-q"]) == 0
    assert (
        main(["eval", "--against", "g.jsonl", "--model", model, "--system-prompt", "", "-q"]) == 0
    )
    assert main(["eval", "--against", "g.jsonl", "--model", model, "--stop", "", "-q"]) == 0
    assert asked == [(prompt, ("END",)), (None, ("END",)), (prompt, ())]
    capsys.readouterr()
