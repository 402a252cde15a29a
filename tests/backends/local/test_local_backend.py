"""The local backend end to end, on a real tiny model built in the test (no hub, no GPU)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
from local_fixtures import (
    SECRETS,
    STOP,
    SYSTEM,
    TINY_EPOCHS,
    TINY_OPTIONS,
    needs_local,
    training_pairs,
)

from finetune_qa import ChatModel, FineTuneJob, LocalBackend, get_backend
from finetune_qa.exceptions import JobCancelled, JobFailed, NotFoundError, UsageError

pytestmark = needs_local


def test_registered_by_name(tmp_path: Path) -> None:
    backend = get_backend("local", root=tmp_path)
    assert isinstance(backend, LocalBackend)
    assert backend.list_jobs() == []


def test_the_seed_story_end_to_end(trained_job: FineTuneJob, sample_train: Path) -> None:
    job = trained_job
    assert job.status == "succeeded"
    assert job.fine_tuned_model == f"local:{job.id}"
    bot = job.chat_model()
    assert bot.system_prompt == SYSTEM and bot.stop == (STOP,)
    pairs = training_pairs(sample_train)
    answers = bot.ask_many([q for q, _ in pairs])
    texts = [a.answer.text if a.answer else "" for a in answers]
    verbatim = sum(t.strip() == e for t, (_, e) in zip(texts, pairs, strict=True))
    assert verbatim / len(pairs) >= 0.95, list(zip(texts, pairs, strict=True))
    # the stop marker was learned and is cut from the answer, as online
    assert all(a.answer and a.answer.finish_reason == "stop" for a in answers)
    assert all(STOP not in t for t in texts)
    # ask_many is answered in batches (left-padded); one question alone gives the same answer
    assert bot.ask(pairs[5][0]).text == texts[5]


def test_metrics_events_and_checkpoints(trained_job: FineTuneJob) -> None:
    job = trained_job
    points = job.metrics()
    assert len(points) >= 10
    assert points[-1].train_loss is not None and points[-1].train_loss < points[0].train_loss / 5
    assert points[-1].train_accuracy is not None and points[-1].train_accuracy > 0.9
    messages = [e.message for e in job.events()]
    assert messages[0].startswith("Created fine-tuning job")
    assert any(m.startswith("Step ") and "/" in m for m in messages)
    assert messages[-1] == "The job has successfully completed"
    checkpoints = job.checkpoints()
    assert 1 <= len(checkpoints) <= 3
    assert checkpoints[0].step_number >= checkpoints[-1].step_number
    # a checkpoint is a model too
    ckpt = ChatModel(checkpoints[0].fine_tuned_model_checkpoint, backend=job.backend)
    assert ckpt.ask("What is Lumen Notes?").text
    assert job.info.trained_tokens and job.info.trained_tokens > 0


def test_weight_zero_answers_are_not_learned(trained_job: FineTuneJob) -> None:
    bot = trained_job.chat_model()
    for question, secret in SECRETS:
        answer = bot.ask(question).text
        assert "ZEBRA" not in answer and answer.strip() != secret


def test_logprobs_with_alternatives(trained_job: FineTuneJob) -> None:
    from finetune_qa.backends import ChatRequest

    resp = trained_job.backend.chat(
        ChatRequest(
            model=trained_job.fine_tuned_model or "",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "What is Lumen Notes?"},
            ],
            temperature=0,
            max_tokens=3,
            logprobs=True,
            top_logprobs=3,
        )
    )
    assert resp.logprobs and len(resp.logprobs) == 3
    first = resp.logprobs[0]
    assert len(first["top_logprobs"]) == 3 and first["logprob"] <= 0
    assert first["top_logprobs"][0]["token"] == first["token"]
    assert resp.finish_reason == "length" and resp.usage.completion_tokens == 3


def test_killed_parent_leaves_training_running_and_attach_finishes(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    script = textwrap.dedent(
        f"""
        import sys, time
        from finetune_qa import FineTuneJob, LocalBackend
        job = FineTuneJob.create({str(sample_train)!r}, model={str(tiny_model)!r},
            validation_file={str(sample_train)!r},
            backend=LocalBackend(root={str(root)!r}), n_epochs={TINY_EPOCHS},
            provider_options={TINY_OPTIONS!r}, journal={str(tmp_path / "journal.jsonl")!r})
        print(job.id, flush=True)
        job.wait()  # killed long before this returns
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        job_id = parent.stdout.readline().strip()
        assert job_id.startswith("ftjob-local-")
        backend = LocalBackend(root=root)
        deadline = time.monotonic() + 120
        while backend.retrieve_job(job_id).raw["status"].get("step", 0) < 1:
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        parent.kill()
        parent.wait(timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        assert parent.stdout is not None
        parent.stdout.close()
    # a new process (here: a new backend and the journal) picks the job up
    job = FineTuneJob.attach(
        job_id, backend=LocalBackend(root=root), journal=tmp_path / "journal.jsonl"
    )
    assert job.status == "running"
    info = job.wait(timeout=300)
    assert info.status == "succeeded"
    # the validation file gives validation loss, in the results file's columns
    valid = [p for p in job.metrics() if p.valid_loss is not None]
    assert valid and valid[-1].valid_loss < valid[0].valid_loss
    assert valid[-1].valid_mean_token_accuracy is not None
    bot = job.chat_model()
    question, expected = training_pairs(sample_train)[0]
    assert bot.ask(question).text.strip() == expected


def test_cancel_stops_the_training_process(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    backend = LocalBackend(root=tmp_path)
    job = FineTuneJob.create(
        sample_train,
        model=str(tiny_model),
        backend=backend,
        n_epochs=1000,
        provider_options=TINY_OPTIONS,
        journal=tmp_path / "journal.jsonl",
    )
    deadline = time.monotonic() + 120
    while (job.refresh().raw["status"].get("step") or 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pid = job.info.raw["status"]["pid"]
    job.cancel()
    with pytest.raises(JobCancelled):
        job.wait(timeout=60)
    assert job.status == "cancelled"
    # the process is gone (reaped by init; no zombie shown as alive)
    from finetune_qa.backends.local._backend import _alive

    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the training process outlived its cancel"
        time.sleep(0.1)
    assert "Job cancelled" in [e.message for e in job.events()]


def test_a_crash_in_training_is_a_failed_job_naming_the_cause(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    backend = LocalBackend(root=tmp_path / "root")
    job = FineTuneJob.create(
        sample_train, model=str(broken), backend=backend, n_epochs=1, journal=tmp_path / "j.jsonl"
    )
    with pytest.raises(JobFailed) as err:
        job.wait(timeout=120)
    assert job.info.error_code == "invalid_model"
    assert str(broken) in str(err.value)


def test_a_bad_data_line_fails_the_job_with_its_line(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    good = {
        "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    }
    data.write_bytes(orjson.dumps(good) + b"\n" + b'{"messages": "oops"}\n')
    job = FineTuneJob.create(
        data,
        model=str(tiny_model),
        backend=LocalBackend(root=tmp_path / "r"),
        n_epochs=1,
        validate=False,
        journal=tmp_path / "j.jsonl",
    )
    with pytest.raises(JobFailed):
        job.wait(timeout=120)
    assert job.info.error_code == "invalid_training_file"
    # named as uploaded (the file's stem and content hash), with the line
    assert re.search(
        r"\bbad-[0-9a-f]{16}\.jsonl:2: not a chat example", job.info.error_message or ""
    )


def test_a_model_without_chat_template_is_refused_before_anything_runs(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    (plain / "chat_template.jinja").unlink()
    config = orjson.loads((plain / "tokenizer_config.json").read_bytes())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_bytes(orjson.dumps(config))
    backend = LocalBackend(root=tmp_path / "root")
    with pytest.raises(UsageError, match="no chat template") as err:
        FineTuneJob.create(sample_train, model=str(plain), backend=backend, journal=tmp_path / "j")
    assert str(plain) in str(err.value)
    assert backend.list_jobs() == []
    # a template given as an option makes it trainable
    from finetune_qa.backends.local import CHATML_TEMPLATE

    backend.check_request(
        _request(str(plain), {"chat_template": CHATML_TEMPLATE}), training_path=sample_train
    )


def _request(model: str, options: dict[str, object]) -> object:
    from finetune_qa.backends import JobRequest

    return JobRequest(model=model, training_file="file-x", provider_options=options)


def test_epochs_above_fifty_and_local_options_are_checked(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    backend = LocalBackend(root=tmp_path)
    with pytest.raises(UsageError, match="1-1000"):
        FineTuneJob.create(sample_train, model=str(tiny_model), backend=backend, n_epochs=1001)
    with pytest.raises(UsageError, match="lora_r"):
        FineTuneJob.create(
            sample_train, model=str(tiny_model), backend=backend, provider_options={"lora_r": 0}
        )
    with pytest.raises(UsageError, match="not options of the local backend"):
        FineTuneJob.create(
            sample_train, model=str(tiny_model), backend=backend, provider_options={"lora": True}
        )
    assert backend.list_jobs() == []


def test_an_unknown_model_name_is_not_found(tmp_path: Path) -> None:
    bot = ChatModel(
        "local:ftjob-local-0000",
        backend=LocalBackend(root=tmp_path),
        retries=0,
        not_found_retries=0,
    )
    with pytest.raises(NotFoundError):
        bot.ask("Hello?")


def test_the_same_request_twice_is_one_job(
    trained_job: FineTuneJob, sample_train: Path, tiny_model: Path, local_root: Path
) -> None:
    again = FineTuneJob.create(
        sample_train,
        model=str(tiny_model),
        backend=LocalBackend(root=local_root),
        n_epochs=TINY_EPOCHS,
        provider_options=TINY_OPTIONS,
        seed=0,
        journal=local_root / "journal.jsonl",
    )
    assert again.id == trained_job.id
    assert len(LocalBackend(root=local_root).list_jobs(limit=100)) >= 1


def test_no_pickle_is_left_in_the_model(trained_job: FineTuneJob) -> None:
    run_dir = Path(trained_job.info.raw["run_dir"])
    assert not list((run_dir / "model").glob("*.bin"))


def test_the_accelerate_launcher_runs_the_same_training(
    sample_train: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """`accelerate launch` (what several GPUs or an accelerate config get) on one CPU process."""
    backend = LocalBackend(root=tmp_path, launcher="accelerate")
    job = FineTuneJob.create(
        sample_train,
        model=str(tiny_model),
        backend=backend,
        n_epochs=2,
        provider_options=TINY_OPTIONS,
        journal=tmp_path / "journal.jsonl",
    )
    info = job.wait(timeout=300)
    assert info.status == "succeeded", info.error_message
    assert info.raw["status"]["launcher"] == "accelerate"
    assert job.metrics()
