"""After an offline `train`, the README's next commands need neither --backend nor a key
(issue #13, finding 6): `jobs` lists where the latest job was created, `ask MODEL` reaches
the backend its model card names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run

from finetune_qa.samples import sample_csv


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FINETUNE_QA_OFFLINE_STATE", raising=False)  # the project's own
    monkeypatch.delenv("FINETUNE_QA_BACKEND", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def test_jobs_and_ask_after_an_offline_train(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # before any job: the default backend, which wants a key
    code, _, err = run(capsys, "jobs")
    assert code == 2 and "OPENAI_API_KEY" in err
    code, out, err = run(capsys, "train", str(sample_csv()), "--backend", "offline", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert (tmp_path / ".finetune-qa" / "offline-api.json").is_file()  # state in the project

    code, out, err = run(capsys, "jobs", "-q")
    assert code == 0 and out.split() == [job["job_id"]], err
    assert "listing jobs on offline" in err  # it says where it looked

    code, out, err = run(capsys, "ask", job["fine_tuned_model"], "What is Lumen Notes?", "-q")
    assert code == 0 and out.startswith("Lumen Notes"), err

    # an explicit --backend still wins
    code, _, err = run(capsys, "jobs", "--backend", "openai")
    assert code == 2 and "OPENAI_API_KEY" in err
    code, _, err = run(capsys, "ask", "ft:gpt-4o-mini:unknown", "hi")
    assert code == 2 and "OPENAI_API_KEY" in err  # a model no card names: the default
