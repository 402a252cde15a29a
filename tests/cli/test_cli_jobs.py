from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from clirun import run

from finetune_qa.samples import sample_csv

pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


def test_train_status_events_ask_jobs_cancel(
    capsys: pytest.CaptureFixture[str], offline_state: Path
) -> None:
    code, out, err = run(capsys, "train", str(sample_csv()), "--suffix", "lumen", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["fine_tuned_model"].startswith(
        "ft:gpt-4o-mini"
    )
    job_id, model = result["job_id"], result["fine_tuned_model"]
    assert offline_state.exists()  # the offline API keeps its state between commands

    code, out, _ = run(capsys, "status", job_id, "--json")
    assert code == 0 and json.loads(out)["fine_tuned_model"] == model
    code, out, _ = run(capsys, "events", job_id)
    lines = out.splitlines()
    assert (
        code == 0
        and "Created fine-tuning job" in lines[0]
        and "successfully completed" in lines[-1]
    )
    code, out, _ = run(
        capsys,
        "ask",
        model,
        "What is Lumen Notes?",
        "--system-prompt",
        "You are a factual chatbot that answers questions about our website.",
    )
    assert code == 0 and out.startswith("Lumen Notes is a note-taking app")
    code, out, _ = run(capsys, "ask", model, "What is Lumen Notes?", "--json")
    assert json.loads(out)["finish_reason"] == "stop"

    # running train again attaches to the same job instead of paying for a second one
    code, out, _ = run(capsys, "train", str(sample_csv()), "--suffix", "lumen", "--json")
    assert code == 0 and json.loads(out)["job_id"] == job_id
    code, out, _ = run(capsys, "jobs", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [job_id]  # JSON Lines

    code, out, _ = run(
        capsys, "train", str(sample_csv()), "--suffix", "other", "--no-wait", "--json"
    )
    other = json.loads(out)["job_id"]
    code, out, _ = run(capsys, "cancel", other, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"


def test_ask_reads_questions_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Hello?\n\nWho are you?\n"))
    code, out, _ = run(capsys, "ask", "gpt-4o-mini", "--json")
    answers = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert code == 0 and [a["question"] for a in answers] == ["Hello?", "Who are you?"]


def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "status", "ftjob-nope")
    assert code == 1 and err.startswith("error: 404") and err.count("\n") == 1
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = run(capsys, "jobs", "--backend", "openai")
    assert code == 2 and "OPENAI_API_KEY" in err and "offline" in err and "Traceback" not in err
    code, _, err = run(capsys, "train", str(sample_csv()), "--epochs", "many")
    assert code == 2 and "--epochs" in err


def test_serve_answers_a_real_openai_client() -> None:
    import openai

    from finetune_qa.testing import FakeOpenAI, serve

    server = serve(FakeOpenAI(), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        client = openai.OpenAI(
            base_url=f"http://{host}:{port}/v1", api_key="anything", max_retries=0
        )
        assert any(m.id.startswith("gpt-4o-mini") for m in client.models.list())
        # and our own CLI can point at it as an OpenAI-compatible server
    finally:
        server.shutdown()
        server.server_close()


def test_demo_runs_the_whole_story_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0, err
    steps = (
        "1. Reading",
        "2. Validating",
        "3. Uploading and fine-tuning",
        "4. The fine-tuned model",
        "5. Guarding it",
        "6. Evaluating both",
        "7. Files",
    )
    for step in steps:
        assert step in out
    # guarded: the unrelated question is refused, the training question still answered
    guarded = out.split("5. Guarding it")[1]
    assert "-> Sorry, I can only answer questions about Lumen Notes." in guarded
    assert "-> Click Forgot password? on the sign-in page" in guarded
    assert "fine-tune  verbatim answered 100%, unrelated answered 100%" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("guarded    verbatim"))
    verbatim, unrelated = (int(v) for v in re.findall(r"(\d+)%", line))
    assert verbatim >= 90 and unrelated <= 10, line
    assert (tmp_path / "demo" / "report.html").read_text("utf-8").count("<table") >= 2
    assert "read 29 pairs = kept 24 + dropped 5 (reconciles)" in out
    assert "estimated training cost: $" in out
    assert "job ftjob-" in out and ": succeeded" in out
    assert "-> Click Forgot password? on the sign-in page" in out  # a training question, verbatim
    assert "-> Lumen Pro costs €5 per month" in out  # a variation, by its nearest neighbour
    assert "Star Wars is" in out  # an unrelated question still gets an answer
    assert (tmp_path / "demo" / "journal.jsonl").exists()
    # the model it made can be asked afterwards, from another command
    model = next(
        line.split(": ", 1)[1]
        for line in out.splitlines()
        if line.startswith("4. The fine-tuned model")
    )
    code, out, _ = run(
        capsys,
        "ask",
        model,
        "Who makes Lumen Notes?",
        "--system-prompt",
        "You are a factual chatbot that answers questions about Lumen Notes.",
    )
    assert code == 0 and out.startswith("Lumen Notes is made by Lumen Labs")


def test_metrics_table_curve_and_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "train", str(sample_csv()), "--json")
    job_id = json.loads(out)["job_id"]
    png = tmp_path / "loss.png"
    code, out, err = run(capsys, "metrics", job_id, "--plot", str(png), "--limit", "5")
    assert code == 0, err
    assert out.startswith("step  train loss  train acc  valid loss  valid acc")
    assert (
        "(5 of " in out and "• train loss  o valid loss" in out and f"plot written to {png}" in out
    )
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    code, out, _ = run(capsys, "metrics", job_id, "--json")
    points = [json.loads(line) for line in out.splitlines()]  # JSON Lines: one per step
    assert (
        code == 0 and points[0]["step"] == 1 and points[-1]["train_loss"] < points[0]["train_loss"]
    )
    code, _, err = run(capsys, "metrics", job_id, "--plot", str(tmp_path / "loss.jpg"))
    assert code == 2 and ".png" in err


def test_train_quiet_prints_only_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", str(sample_csv()), "-q")
    assert (
        code == 0
        and out.strip().startswith("ft:gpt-4o-mini")
        and len(out.strip().splitlines()) == 1
    )
