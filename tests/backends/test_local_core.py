"""The local backend's parts that need no torch: settings per device, the run directory,
failure messages, and the install hint. They run in the main lane."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_qa import FineTuneJob, LocalBackend, LocalSettings
from finetune_qa.backends import JobRequest, get_backend
from finetune_qa.backends.local._settings import DeviceInfo, resolve
from finetune_qa.backends.local._store import Store
from finetune_qa.backends.local._train import TrainingFailure, _describe
from finetune_qa.exceptions import ConfigError, NotFoundError, UsageError

CPU = DeviceInfo(kind="cpu")
H200 = DeviceInfo(
    kind="cuda", name="H200", memory_bytes=141 << 30, bf16=True, fast_kernels=True, count=1
)
OLD_GPU = DeviceInfo(kind="cuda", name="T4", memory_bytes=16 << 30, bf16=False)


def _resolve(device: DeviceInfo, **kw: object) -> object:
    args: dict[str, object] = {
        "device": device,
        "n_examples": 2000,
        "longest": 120,
        "mean_length": 50.0,
        "n_params": 1_500_000_000,
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
        "seed": None,
        "model_max_length": 32768,
    }
    args.update(kw)
    settings = args.pop("settings", LocalSettings())
    return resolve(settings, **args)  # type: ignore[arg-type]


def test_settings_are_chosen_per_device() -> None:
    cpu = _resolve(CPU)
    assert (cpu.device, cpu.precision, cpu.packing, cpu.batch_size) == ("cpu", "fp32", False, 8)
    assert not cpu.gradient_checkpointing
    gpu = _resolve(H200)
    assert (gpu.precision, gpu.packing, gpu.padding_free) == ("bf16", True, True)
    assert gpu.gradient_checkpointing  # a 1.5B model
    assert gpu.batch_size > cpu.batch_size
    old = _resolve(OLD_GPU)
    assert old.precision == "fp16" and not old.packing and old.group_by_length
    assert "packing" in old.reasons and "batch_size" in gpu.reasons


def test_the_common_arguments_keep_their_meaning() -> None:
    r = _resolve(CPU, n_epochs=7, batch_size=4, learning_rate_multiplier=2.0, seed=3)
    assert (r.n_epochs, r.batch_size, r.seed) == (7, 4, 3)
    assert r.learning_rate == pytest.approx(2 * 2e-4)  # LoRA's base rate, multiplied
    full = _resolve(CPU, settings=LocalSettings(method="full"))
    assert full.learning_rate == pytest.approx(2e-5)
    given = _resolve(CPU, settings=LocalSettings(learning_rate=3e-3), learning_rate_multiplier=9.0)
    assert given.learning_rate == 3e-3
    # OpenAI's epoch heuristic for "auto"; max length from the data, within the model's
    assert _resolve(CPU, n_examples=20).n_epochs == 5
    assert _resolve(CPU, longest=100_000).max_length == 32768
    assert _resolve(CPU, n_examples=3, batch_size=8).batch_size == 3


def test_failures_name_their_cause() -> None:
    class OutOfMemoryError(RuntimeError):
        pass

    code, message = _describe(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert (
        code == "out_of_memory" and "batch_size" in message and "gradient_checkpointing" in message
    )
    assert _describe(TrainingFailure("missing_chat_template", "no template")) == (
        "missing_chat_template",
        "no template",
    )
    code, message = _describe(ValueError("boom"))
    assert code == "training_error" and "train.log" in message


def test_registered_and_listed_without_the_extra(tmp_path: Path) -> None:
    backend = get_backend("local", root=tmp_path)
    assert isinstance(backend, LocalBackend) and backend.root == tmp_path.absolute()
    assert backend.list_jobs() == [] and backend.list_files() == []
    with pytest.raises(NotFoundError):
        backend.retrieve_job("ftjob-local-nope")
    with pytest.raises(NotFoundError):
        backend.retrieve_job("../../etc")
    info = backend.upload_file(b'{"messages": []}\n', filename="t.jsonl")
    again = backend.upload_file(b'{"messages": []}\n', filename="t.jsonl")
    assert info.id == again.id and backend.file_content(info.id) == b'{"messages": []}\n'


def test_a_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalBackend(root="runs").root == tmp_path / "runs"
    monkeypatch.setenv("FINETUNE_QA_LOCAL_DIR", "elsewhere")
    assert LocalBackend().root == tmp_path / "elsewhere"


def test_options_and_models_are_checked_before_anything_runs(tmp_path: Path) -> None:
    backend = LocalBackend(root=tmp_path / "root")
    with pytest.raises(UsageError, match="lora_r"):
        backend.check_request(
            JobRequest(model="x/y", training_file="f", provider_options={"lora_r": 0})
        )
    with pytest.raises(UsageError, match="no model directory"):
        backend.check_request(JobRequest(model="./missing-model", training_file="f"))
    not_model = tmp_path / "empty"
    not_model.mkdir()
    with pytest.raises(UsageError, match="not a model directory"):
        backend.check_request(JobRequest(model=str(not_model), training_file="f"))
    with pytest.raises(UsageError, match="supervised"):
        backend.check_request(JobRequest(model="x/y", training_file="f", method="dpo"))


def test_without_the_extra_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune_qa.backends.local import _deps

    monkeypatch.setattr(_deps, "missing", lambda: ["torch", "trl"])
    backend = LocalBackend(root=tmp_path)
    with pytest.raises(ConfigError, match=r"torch, trl.*pip install 'finetune-qa\[local\]'"):
        backend.check_request(JobRequest(model="Qwen/Qwen2.5-0.5B-Instruct", training_file="f"))


def test_a_run_directory_round_trips(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run = store.new_run()
    run.write_job({"id": run.id, "created_at": 5, "request": {"metadata": {"k": "v"}}})
    run.update_status(status="running", step=3)
    run.add_event("Step 3/9: training loss=1.0", type="metrics", data={"step": 3})
    run.add_event("hello")
    run.add_result({"step": 3, "train_loss": 1.0, "train_accuracy": 0.5})
    assert [e["message"] for e in run.events()] == ["Step 3/9: training loss=1.0", "hello"]
    assert run.results().decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "3,1.0,0.5,,",
    ]
    assert [r.id for r in store.runs()] == [run.id]
    assert store.run(run.id) is not None and store.run("nope") is None


def test_a_dead_training_process_is_a_failed_job(tmp_path: Path) -> None:
    import subprocess
    import sys

    backend = LocalBackend(root=tmp_path)
    run = backend.store.new_run()
    run.write_job({"id": run.id, "created_at": 1, "base_model": "m", "request": {}})
    with open(run.log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('CUDA error: device lost')"], stdout=log
        )
        proc.wait()
    run.update_status(status="running", pid=proc.pid)
    info = backend.retrieve_job(run.id)
    assert info.status == "failed" and info.error_code == "process_died"
    assert "device lost" in (info.error_message or "")
    # a cancel asked for before the process died makes it cancelled instead
    run2 = backend.store.new_run()
    run2.write_job({"id": run2.id, "created_at": 2, "base_model": "m", "request": {}})
    run2.update_status(status="running", pid=proc.pid)
    run2.request_cancel()
    assert backend.retrieve_job(run2.id).status == "cancelled"


def test_fine_tune_job_refuses_more_epochs_elsewhere_than_locally(tmp_path: Path) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text(
        '{"messages":[{"role":"user","content":"Hi there?"},{"role":"assistant","content":"Hello!"}]}\n'
        * 10
    )
    from finetune_qa import OfflineBackend

    with pytest.raises(UsageError, match="1-50"):
        FineTuneJob.create(data, model="gpt-4o-mini", backend=OfflineBackend(), n_epochs=60)
