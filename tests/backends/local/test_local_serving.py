"""A local fine-tune behind the chat API, the CLI, the discriminator and the shutdown kit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_fixtures import STOP, SYSTEM, TINY_EPOCHS, needs_local, training_pairs

from finetune_qa import FineTuneJob, LocalBackend

pytestmark = needs_local


def _serve(model: str, root: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "FINETUNE_QA_LOCAL_DIR": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_qa", "serve", "--model", model, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if " on http://" in line:
            return proc, line.split(" on ", 1)[1].split()[0]
        assert time.monotonic() < deadline
    raise AssertionError(f"serve exited with {proc.wait()}")


def test_serve_model_answers_the_official_openai_client(
    trained_job: FineTuneJob, sample_train: Path, local_root: Path
) -> None:
    import openai

    model = trained_job.fine_tuned_model or ""
    proc, url = _serve(model, local_root)
    try:
        client = openai.OpenAI(base_url=url, api_key="anything", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [model]
        question, expected = training_pairs(sample_train)[1]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        resp = client.chat.completions.create(
            model=model, messages=messages, temperature=0, stop=[STOP]
        )
        assert resp.choices[0].message.content.strip() == expected
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage is not None and resp.usage.completion_tokens > 0
        # streaming, as most chat UIs ask by default
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=0,
                stop=[STOP],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == expected
        assert chunks[-1].usage is not None
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        log = proc.stderr.read()
        proc.stderr.close()
    assert "POST /v1/chat/completions 200" in log


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from finetune_qa.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_status_and_ask_on_the_local_backend(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetune_qa import sample_csv

    monkeypatch.setenv("FINETUNE_QA_LOCAL_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    args = ["train", str(sample_csv()), "--backend", "local", "--model", str(tiny_model)]
    args += ["--epochs", str(TINY_EPOCHS), "--method", "full", "--learning-rate", "3e-3"]
    args += ["--validation-fraction", "0", "-q"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    model = out.strip().splitlines()[-1]
    assert model.startswith("local:ftjob-local-")
    job_id = model.removeprefix("local:")
    code, out, err = _run(capsys, "status", job_id, "--backend", "local")
    assert code == 0 and "succeeded" in out, err
    prompt = "You are a factual chatbot that answers questions about our website."
    code, out, err = _run(
        capsys,
        "ask",
        model,
        "Who makes Lumen Notes?",
        "--backend",
        "local",
        "--system-prompt",
        prompt,
    )
    assert code == 0, err
    assert "Lumen Labs" in out
    # local-only options are refused on another backend, before anything is built
    code, out, err = _run(
        capsys, "train", str(sample_csv()), "--backend", "offline", "--lora-rank", "8"
    )
    assert code == 2 and "--lora-rank: only for --backend local" in err
    code, out, err = _run(
        capsys, "train", str(sample_csv()), "--backend", "offline", "--epochs", "60"
    )
    assert code == 2 and "1 to 50" in err


def test_demo_backend_local_trains_and_answers_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "demo", "--backend", "local", "--workdir", str(tmp_path / "d"))
    assert code == 0, err
    assert out.count("[verbatim]") == 3


def test_discriminator_trains_and_gates_on_the_local_backend(
    tiny_model: Path, tmp_path: Path
) -> None:
    from finetune_qa import Discriminator, read_qa, sample_csv

    pairs = list(read_qa(sample_csv()))
    disc = Discriminator.train(
        pairs,
        backend=LocalBackend(root=tmp_path / "runs"),
        model=str(tiny_model),
        gate="question",
        n_epochs=20,
        provider_options={"method": "full", "learning_rate": 2e-3},
        journal=tmp_path / "journal.jsonl",
        workdir=tmp_path / "gate",
        timeout=600,
    )
    on_topic = disc.check("How much does Lumen Pro cost?")
    off_topic = disc.check("What is Star Wars?")
    assert on_topic.on_topic and not off_topic.on_topic, (on_topic, off_topic)
    assert on_topic.source == "logprobs"  # probabilities from the local model's log-probabilities


def test_record_on_offline_then_eval_against_on_local(
    trained_job: FineTuneJob, sample_train: Path, tmp_path: Path
) -> None:
    from finetune_qa import (
        DatasetBuilder,
        EvalSuite,
        GoldenSet,
        OfflineBackend,
        compare_to_golden,
        record_answers,
        sample_csv,
    )

    offline = OfflineBackend()
    data = tmp_path / "offline-train.jsonl"
    DatasetBuilder(system_prompt=SYSTEM, stop=STOP).add_source(sample_csv()).build(data)
    old = FineTuneJob.create(data, model="gpt-4o-mini", backend=offline, journal=tmp_path / "j")
    old.wait()
    suite = EvalSuite.from_pairs(training_pairs(sample_train), limit={"unrelated": 10})
    golden_path = tmp_path / "golden.jsonl"
    report = record_answers(old.chat_model(), suite, golden_path)
    assert report.complete and report.recorded == len(suite.cases)
    golden = GoldenSet.read(golden_path)
    result = compare_to_golden(golden, trained_job.chat_model())
    assert result.backend == "local"
    # both models learned the same answers: the local one reproduces the recording
    assert (result.score("verbatim", "exact") or 0) >= 0.95


def test_migrate_an_offline_job_to_the_local_backend(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from finetune_qa import DatasetBuilder, OfflineBackend, migrate, sample_csv

    offline = OfflineBackend()
    data = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=SYSTEM, stop=STOP).add_source(sample_csv()).build(data)
    source = FineTuneJob.create(data, model="gpt-4o-mini", backend=offline, journal=tmp_path / "j")
    source.wait()
    result = migrate(
        source.id,
        source=offline,
        target=LocalBackend(root=tmp_path / "runs"),
        model=str(tiny_model),
        n_epochs=TINY_EPOCHS,
        provider_options={"method": "full", "learning_rate": 3e-3},
        workdir=tmp_path / "move",
        wait=True,
        timeout=600,
    )
    assert result.job is not None and result.job.status == "succeeded"
    assert result.plan.target_backend == "local"
    job = FineTuneJob.attach(
        result.job.id,
        backend=LocalBackend(root=tmp_path / "runs"),
        journal=tmp_path / "move" / "journal.jsonl",
    )
    question, expected = training_pairs(sample_train)[2]
    assert job.chat_model(system_prompt=SYSTEM).ask(question).text.strip() == expected
