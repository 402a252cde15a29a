"""A person at a terminal, and a script reading --json (issue #13, findings 6-8).

Times: local and readable in tables, ISO-8601 in JSON; `jobs` has a header; `status` is a
panel; progress says step N/M and an ETA and ends on one label; a re-run says it attached;
`models` marks dates already past; interactive `ask` prompts and keeps a history; and a
job's commands find the backend it was created on without `--backend`.
"""

from __future__ import annotations

import builtins
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run

from finetune_qa.cli import _chat
from finetune_qa.samples import sample_csv

LOCAL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
ISO_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"


pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


@pytest.fixture
def job(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    code, out, err = run(capsys, "train", str(sample_csv()), "--json")
    assert code == 0, err
    result: dict[str, str] = json.loads(out)
    return result


def test_events_show_local_times_and_json_shows_iso(
    job: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "events", job["job_id"])
    lines = out.splitlines()
    assert code == 0 and lines
    assert all(re.match(LOCAL_TIME + r"  \w+ ", line) for line in lines), lines[:3]
    assert not re.match(r"^\d{9,} ", lines[0])  # not raw epoch seconds
    code, out, _ = run(capsys, "events", job["job_id"], "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == len(lines) and all(re.match(ISO_TIME, e["created_at"]) for e in events)


def test_jobs_has_a_header_and_created_times(
    job: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "jobs")
    header, row = out.splitlines()
    assert code == 0 and header.split() == [
        "JOB",
        "STATUS",
        "CREATED",
        "MODEL",
        "FINE-TUNED",
        "MODEL",
    ]
    assert row.startswith(job["job_id"]) and re.search(LOCAL_TIME, row)
    assert job["fine_tuned_model"] in row
    code, out, _ = run(capsys, "jobs", "-q")
    assert out == job["job_id"] + "\n"
    code, out, _ = run(capsys, "jobs", "--json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert re.match(ISO_TIME, listed["created_at"]) and "raw" not in listed


def test_status_is_a_panel(job: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", job["job_id"])
    panel = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert code == 0
    assert list(panel) == [
        "job",
        "status",
        "model",
        "created",
        "finished",
        "trained tokens",
        "fine-tuned model",
        "files",
    ]
    assert panel["job"] == job["job_id"] and panel["status"] == "succeeded"
    assert panel["fine-tuned model"] == job["fine_tuned_model"]
    assert re.fullmatch(LOCAL_TIME, panel["created"]) and re.fullmatch(
        LOCAL_TIME, panel["finished"]
    )
    assert re.fullmatch(r"[\d,]+", panel["trained tokens"])
    assert panel["files"].startswith("training file-")
    code, out, _ = run(capsys, "status", job["job_id"], "-q")
    assert out == "succeeded\n"
    code, out, _ = run(capsys, "status", job["job_id"], "--json")
    (line,) = out.splitlines()  # one object, on one line
    data = json.loads(line)
    assert re.match(ISO_TIME, data["created_at"]) and re.match(ISO_TIME, data["finished_at"])


def test_progress_shows_steps_eta_and_one_final_label(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", str(sample_csv()))
    assert code == 0, err
    steps = re.findall(r"step (\d+)/(\d+): training loss [\d.]+, ETA (\d+:\d\d:\d\d|unknown)", out)
    assert len(steps) >= 2
    last, total, eta = steps[-1]
    assert last == total and eta == "0:00:00"
    assert any(re.fullmatch(r"\d+:\d\d:\d\d", e) for _, _, e in steps[:-1])
    finals = [line for line in out.splitlines() if re.fullmatch(r"job \S+: \w+", line)]
    assert len(finals) == 1 and finals[0].endswith(": succeeded")
    assert out.splitlines()[-1].startswith("ft:gpt-4o-mini")  # then the result: the model


def test_a_rerun_says_attached_not_created(capsys: pytest.CaptureFixture[str]) -> None:
    code, first, _ = run(capsys, "train", str(sample_csv()), "--no-wait")
    assert code == 0 and re.search(r"job \S+ created \(", first)
    code, again, _ = run(capsys, "train", str(sample_csv()), "--no-wait")
    assert code == 0 and re.search(r"job \S+ attached to \(", again)
    assert "created (" not in again


def test_models_marks_end_dates_already_past(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINETUNE_QA_TODAY", "2026-12-01")
    code, out, _ = run(capsys, "models")
    (old,) = [line for line in out.splitlines() if line.startswith("gpt-3.5-turbo-0125 ")]
    assert code == 0 and "ended 2026-10-23" in old
    assert out.splitlines()[1].split()[:3] == ["model", "provider", "encoding"]
    monkeypatch.setenv("FINETUNE_QA_TODAY", "2026-01-01")
    code, out, _ = run(capsys, "models")
    (old,) = [line for line in out.splitlines() if line.startswith("gpt-3.5-turbo-0125 ")]
    assert "ended" not in old and "2026-10-23" in old


def test_interactive_ask_prompts_and_keeps_a_history(
    job: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pytest.importorskip("readline")
    typed = iter(["What is Lumen Notes?", "", "Who makes Lumen Notes?"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(_chat, "interactive", lambda: True)
    monkeypatch.setattr(builtins, "input", fake_input)
    code, out, err = run(capsys, "ask", job["fine_tuned_model"])
    assert code == 0, err
    assert prompts == ["> "] * 4  # a marker before every line, the blank one and Ctrl-D too
    assert len(out.splitlines()) == 2 and "Ask a question" in err
    history = (tmp_path / "cache" / "ask-history").read_text()
    assert "What is Lumen Notes?" in history and "Who makes Lumen Notes?" in history


def test_ask_json_is_one_line_per_answer(
    job: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("What is Lumen Notes?\nWho makes it?\n"))
    code, out, _ = run(capsys, "ask", job["fine_tuned_model"], "--json")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert [json.loads(line)["question"] for line in lines] == [
        "What is Lumen Notes?",
        "Who makes it?",
    ]
    code, out, _ = run(capsys, "ask", job["fine_tuned_model"], "What is Lumen Notes?", "-q")
    assert code == 0 and len(out.splitlines()) == 1 and out.startswith("Lumen Notes")


def test_a_job_remembers_its_backend(
    job: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6: after an offline train, the next commands need neither --backend nor a key."""
    monkeypatch.delenv("FINETUNE_QA_BACKEND")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    job_id = job["job_id"]
    code, out, err = run(capsys, "status", job_id)
    assert code == 0 and "succeeded" in out, err
    for command in ("events", "metrics"):
        code, out, err = run(capsys, command, job_id)
        assert code == 0 and out, (command, err)
    code, _, err = run(capsys, "cancel", job_id)  # reaches the offline API: too late
    assert code == 1 and "has already finished with status succeeded" in err
    # an explicit --backend still wins: OpenAI, which wants a key
    code, _, err = run(capsys, "status", job_id, "--backend", "openai")
    assert code == 2 and "OPENAI_API_KEY" in err
    # a job this machine never created: the default backend, as before
    code, _, err = run(capsys, "status", "ftjob-unknown")
    assert code == 2 and "OPENAI_API_KEY" in err


def test_demo_json_and_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "demo", "--workdir", str(tmp_path / "demo"), "--json")
    assert code == 0, err
    (line,) = out.splitlines()  # no story, one object
    summary = json.loads(line)
    assert summary["status"] == "succeeded" and summary["fine_tuned_model"].startswith("ft:")
    assert Path(summary["files"]["report"]).is_file()
    code, out, err = run(capsys, "status", summary["job_id"], "-q")  # remembered: offline
    assert code == 0 and out == "succeeded\n", err


def test_serve_json_prints_where_it_listens() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_qa", "serve", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert ready["model"] == "offline" and re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", ready["url"])
