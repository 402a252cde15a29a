"""Plant an API key, run the lifecycle with every log level on, and scan everything produced."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from finetune_qa import DatasetBuilder, FineTuneJob, OpenAIBackend, QAPair, validate_file
from finetune_qa import exceptions as exc
from finetune_qa.backends import OfflineBackend
from finetune_qa.testing import FakeOpenAI, openai_client

KEY = "sk-proj-PLANTED0123456789abcdefSECRET"


def test_a_planted_key_appears_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)  # openai, httpx2 and everything else, at their chattiest
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = FakeOpenAI(
        advance_per_request=30
    )  # a plain client has no virtual sleep: time moves per request
    backend = OpenAIBackend(openai_client(fake, max_retries=1, api_key=KEY))
    train = tmp_path / "train.jsonl"
    build = (
        DatasetBuilder()
        .add_pairs(
            [
                QAPair(question=f"What is plan {i} about?", answer=f"Plan {i} is about {i} things.")
                for i in range(12)
            ]
        )
        .build(train, model="gpt-4o-mini")
    )
    report = validate_file(train)
    journal = tmp_path / "journal.jsonl"
    fake.inject("POST /fine_tuning/jobs", drop=True, after_effect=True)
    fake.inject("GET /fine_tuning/jobs/*", status=429, retry_after=0.01)
    job = FineTuneJob.create(train, model="gpt-4o-mini", backend=backend, journal=journal)
    job.wait(poll_interval=0.01)
    bot = job.chat_model()
    fake.inject("POST /chat/completions", status=401, times=2)
    items = bot.ask_many(
        ["What is plan 3 about?", "What is plan 4 about?", "Hello?"], concurrency=1
    )
    errors: list[str] = []
    fake.inject("GET /fine_tuning/jobs/*", status=401)
    with pytest.raises(exc.AuthenticationError) as info:
        job.refresh()
    errors.append(str(info.value))
    errors.append(repr(info.value))
    produced = {
        "logs": caplog.text,
        "journal": journal.read_text(),
        "build report": build.to_json() + build.to_text(),
        "validation report": report.to_json() + report.to_text() + report.to_markdown(),
        "batch errors": " ".join(str(i.error) for i in items),
        "exceptions": " ".join(errors),
        "job events": " ".join(e.message for e in job.events()),
    }
    assert any(not i.ok for i in items) and caplog.text  # the paths that could leak were taken
    for where, text in produced.items():
        assert KEY not in text, f"the key leaked into {where}"
        assert KEY[8:24] not in text, f"part of the key leaked into {where}"


# --- every command, every file, every repr: three kinds of planted keys ----------------

OPENAI_KEY = "sk-proj-PLANTEDopenai0123456789abcdefSECRETxyz"
TOGETHER_KEY = (
    "9f3c1e7a5b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e"  # hex, like Together's
)
AZURE_KEY = "0c4f8a2e6b1d5f9a3c7e1b5d9f3a7c2e"  # 32 hex characters, like an Azure OpenAI key
KEYS = {"OpenAI": OPENAI_KEY, "Together": TOGETHER_KEY, "Azure": AZURE_KEY}


def _leaks(text: str) -> list[str]:
    return [name for name, key in KEYS.items() if key in text or key[-20:] in text]


def test_planted_keys_appear_in_no_command_output_file_log_or_repr(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os
    import stat
    import threading

    from finetune_qa.cli import main
    from finetune_qa.testing import serve

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER_KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    state = tmp_path / "state" / "offline.pickle"
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(state))
    fake = FakeOpenAI()
    server = serve(fake, port=0, realtime=True, speedup=100_000.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    seed = tmp_path / "qa.jsonl"
    seed.write_text(
        "".join(
            f'{{"question": "What is plan {i} about?", "answer": "Plan {i} is about {i}."}}\n'
            for i in range(12)
        )
    )
    work = tmp_path / "work"
    outputs: list[str] = []
    try:
        runs = [
            [
                "build",
                str(seed),
                "-o",
                str(tmp_path / "t.jsonl"),
                "--report",
                str(tmp_path / "r.json"),
            ],
            ["validate", str(tmp_path / "t.jsonl"), "--json"],
            ["validate", str(tmp_path / "t.jsonl"), "--markdown"],
            ["train", str(seed), "--workdir", str(work), "--base-url", url, "--timeout", "60"],
            ["jobs", "--base-url", url, "--json"],
            ["upload", str(tmp_path / "t.jsonl"), "--base-url", url],
            ["ask", "gpt-4o-mini", "What is plan 3 about?", "--base-url", url],
            ["train", str(seed), "--workdir", str(tmp_path / "w2"), "--backend", "offline", "-q"],
            ["jobs", "--backend", "offline"],
            ["status", "ftjob-missing", "--base-url", url],  # 404 error path
        ]
        for argv in runs:
            main(argv)
            out, err = capsys.readouterr()
            outputs.append(out + err)
        fake.inject("*", status=401, times=None)  # a bad key, on every request
        for argv in (["jobs", "--base-url", url], ["ask", "gpt-4o-mini", "Hi?", "--base-url", url]):
            assert main(argv) == 1
            out, err = capsys.readouterr()
            assert "401" in err
            outputs.append(out + err)
    finally:
        server.shutdown()
        server.server_close()
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["status", "ftjob-x", "--backend", "openai"]) == 2  # the missing-key path
    outputs.append("".join(capsys.readouterr()))
    backend = OpenAIBackend(api_key=AZURE_KEY, base_url=url)
    with pytest.raises(exc.FineTuneQAError) as info:
        OpenAIBackend(api_key=None).list_jobs()
    produced = {
        "command output": "\n".join(outputs),
        "logs": caplog.text,
        "journal": (work / "journal.jsonl").read_text(),
        "report file": (tmp_path / "r.json").read_text(),
        "offline state": state.read_bytes().decode("latin-1"),
        "reprs": repr(backend) + repr(OfflineBackend()) + repr(info.value) + str(info.value),
    }
    assert "job " in produced["command output"] and produced["logs"]  # the paths were taken
    for where, text in produced.items():
        assert not _leaks(text), f"{_leaks(text)} key leaked into {where}"
    for private in (work / "journal.jsonl", state):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600, private


def test_the_build_report_file_is_owner_only(tmp_path: Path) -> None:
    import os
    import stat

    from finetune_qa.cli import main
    from finetune_qa.samples import sample_csv

    report = tmp_path / "report.json"
    assert (
        main(
            [
                "build",
                str(sample_csv()),
                "-o",
                str(tmp_path / "t.jsonl"),
                "--report",
                str(report),
                "-q",
            ]
        )
        == 0
    )
    assert stat.S_IMODE(os.stat(report).st_mode) == 0o600


WANDB_KEY = "wandb-PLANTED-" + "0123456789abcdef" * 2


def test_planted_together_and_wandb_keys_stay_out_of_a_together_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Together job with a wandb integration, every logger at DEBUG, through the respx fake."""
    import together
    from together_fake import API, LLAMA, fake_together

    from finetune_qa.backends import TogetherBackend

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER_KEY)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)  # the key comes from the environment
    train = tmp_path / "train.jsonl"
    DatasetBuilder().add_pairs(
        [
            QAPair(question=f"What is plan {i} about?", answer=f"Plan {i} is about {i}.")
            for i in range(12)
        ]
    ).build(train)
    journal = tmp_path / "journal.jsonl"
    with fake_together() as api:
        client = together.Together(api_key=TOGETHER_KEY, base_url=API, max_retries=0)
        backend = TogetherBackend(client)
        backend.sleep = lambda s: None  # type: ignore[attr-defined]
        job = FineTuneJob.create(
            train,
            model=LLAMA,
            backend=backend,
            journal=journal,
            integrations=[{"type": "wandb", "wandb": {"project": "qa"}}],
        )
        job.wait(poll_interval=0)
        answer = job.chat_model().ask("What is plan 3 about?")
        sent = [c.request for c in api.router.calls if c.request.url.path == "/v1/fine-tunes"]
    assert sent and WANDB_KEY in sent[-1].content.decode()  # Together received it
    assert sent[-1].headers["authorization"] == f"Bearer {TOGETHER_KEY}"
    produced = {
        "logs": caplog.text,
        "journal": journal.read_text(),
        "job": repr(job) + job.info.model_dump_json(),
        "answer": repr(answer),
        "backend": repr(backend),
    }
    assert "Request options" in caplog.text  # the SDK's option dump was logged, redacted
    for where, text in produced.items():
        assert WANDB_KEY not in text and WANDB_KEY[-20:] not in text, f"W&B key in {where}"
        assert not _leaks(text), f"{_leaks(text)} key leaked into {where}"
