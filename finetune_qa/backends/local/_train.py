"""The training process of a local job: ``python -m finetune_qa.backends.local._train RUN_DIR``.

It reads the run's ``job.json``, trains with TRL's ``SFTTrainer`` (PEFT LoRA by default,
full fine-tuning on request; ``accelerate launch`` runs the same module on several
devices), and reports through the run directory: status, events, the results CSV and
checkpoints. Only the main process writes. Every way it can end becomes a status: a
crash is a ``failed`` job whose error names the cause (out of memory, a missing chat
template, a bad data line), a cancel request or SIGTERM a ``cancelled`` one.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from finetune_qa.backends.local._data import DataLineError, encode_example, read_chat_jsonl
from finetune_qa.backends.local._settings import DeviceInfo, LocalSettings, Resolved, resolve
from finetune_qa.backends.local._store import Run

__all__ = ["TrainingFailure", "main", "train"]

_MODULE = "finetune_qa.backends.local._train"


class TrainingFailure(Exception):
    """A failure with the code and message the job reports."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


class _Cancelled(Exception):
    pass


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def detect_device(wanted: str) -> DeviceInfo:
    """The device to train on (``wanted``: auto, cpu, cuda or mps)."""
    import importlib.util

    import torch

    if wanted in ("auto", "cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo(
            kind="cuda",
            count=torch.cuda.device_count(),
            name=props.name,
            memory_bytes=props.total_memory,
            bf16=torch.cuda.is_bf16_supported(),
            fast_kernels=importlib.util.find_spec("flash_attn") is not None,
        )
    if wanted == "cuda":
        raise TrainingFailure("no_device", "device='cuda' was asked for, but torch sees no GPU")
    if wanted in ("auto", "mps") and torch.backends.mps.is_available():
        return DeviceInfo(kind="mps", name="mps")
    if wanted == "mps":
        raise TrainingFailure("no_device", "device='mps' was asked for, but it is not available")
    return DeviceInfo(kind="cpu", name="cpu")


def load_tokenizer(model: str, chat_template: str | None) -> Any:
    """The base model's tokenizer, with a chat template (given, or the model's own)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise TrainingFailure(
            "model_not_found",
            f"cannot load the tokenizer of {model!r}: {exc}. Pass a Hugging Face model id "
            "or a local model directory.",
        ) from exc
    if chat_template:
        tok.chat_template = chat_template
    if not getattr(tok, "chat_template", None):
        raise TrainingFailure(
            "missing_chat_template",
            f"the model {model!r} has no chat template, so its chat examples cannot be "
            "rendered; use an instruct/chat model, or pass one with "
            "provider_options={'chat_template': '...'} (CLI: --chat-template FILE)",
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode_file(tok: Any, path: Path, name: str | None = None) -> list[dict[str, list[int]]]:
    """Every example of a chat JSONL file, encoded (see :func:`encode_example`).

    Errors name the file as ``name`` (the name it was uploaded under) when given.
    """
    shown = Path(name) if name else path
    out = []
    try:
        for line, example in read_chat_jsonl(path):
            try:
                out.append(encode_example(tok, example))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataLineError(shown, line, str(exc)) from exc
    except DataLineError as exc:
        raise DataLineError(shown, exc.line, str(exc).split(": ", 1)[1]) from exc
    if not out:
        raise DataLineError(shown, 1, "the file holds no examples")
    return out


def _events_callback(run: Run, total_steps: int, cancel: list[bool]) -> Any:
    from transformers import TrainerCallback

    class Reporter(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.status_written = 0.0
            self.last_train: dict[str, float] = {}

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            step = int(state.global_step)
            if "loss" in logs:
                self.last_train = {
                    "train_loss": float(logs["loss"]),
                    "train_mean_token_accuracy": float(logs.get("mean_token_accuracy", math.nan)),
                }
                data = {
                    "step": step,
                    **self.last_train,
                    "learning_rate": float(logs.get("learning_rate", 0.0)),
                    "epoch": float(logs.get("epoch", 0.0)),
                    "total_steps": total_steps,
                }
                run.add_event(
                    f"Step {step}/{total_steps}: training loss={logs['loss']:.4f}",
                    type="metrics",
                    data=data,
                )
                run.add_result(
                    {
                        "step": step,
                        "train_loss": float(logs["loss"]),
                        "train_accuracy": logs.get("mean_token_accuracy"),
                    }
                )
            elif "eval_loss" in logs:
                data = {
                    "step": step,
                    "valid_loss": float(logs["eval_loss"]),
                    "valid_mean_token_accuracy": logs.get("eval_mean_token_accuracy"),
                    "total_steps": total_steps,
                }
                run.add_event(
                    f"Step {step}/{total_steps}: validation loss={logs['eval_loss']:.4f}",
                    type="metrics",
                    data=data,
                )
                run.add_result({"step": step, **data})
            # the status file is rewritten (and synced) at most once a second: per-step
            # progress is in the events already, and a sync per step costs ~10% on a CPU
            now = time.monotonic()
            if now - self.status_written >= 1.0 or step >= total_steps:
                self.status_written = now
                run.update_status(step=step, total_steps=total_steps)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if cancel[0] or run.cancel_requested:
                cancel[0] = True
                control.should_training_stop = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                run.add_checkpoint(int(state.global_step), path, dict(self.last_train))
                run.add_event(f"Checkpoint saved at step {state.global_step}")

    return Reporter()


def train(run: Run) -> None:
    """Train the run's job to the end (or to a failure, raised as :class:`TrainingFailure`)."""
    from datasets import Dataset
    from trl import SFTTrainer

    job = run.job
    settings = LocalSettings.model_validate(job["settings"])
    request = job["request"]
    base = job["base_model"]
    cancel = [False]

    def on_term(signum: int, frame: Any) -> None:
        cancel[0] = True

    signal.signal(signal.SIGTERM, on_term)
    device = detect_device(settings.device)
    tok = load_tokenizer(base, settings.chat_template)
    train_rows = encode_file(tok, Path(job["training_path"]), job.get("training_filename"))
    val_path, val_name = job.get("validation_path"), job.get("validation_filename")
    val_rows = encode_file(tok, Path(val_path), val_name) if val_path else None
    lengths = [len(r["input_ids"]) for r in train_rows]
    model = _load_model(base, settings, device)
    n_params = sum(p.numel() for p in model.parameters())
    resolved = resolve(
        settings,
        device=device,
        n_examples=len(train_rows),
        longest=max(lengths),
        mean_length=sum(lengths) / len(lengths),
        n_params=n_params,
        n_epochs=request["n_epochs"],
        batch_size=request["batch_size"],
        learning_rate_multiplier=request["learning_rate_multiplier"],
        seed=request.get("seed"),
        model_max_length=getattr(model.config, "max_position_embeddings", None),
    )
    total_steps = _total_steps(len(train_rows), resolved)
    if _is_main():
        _announce(run, base, device, resolved, n_params, len(train_rows), total_steps)
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(run, settings, resolved, total_steps, has_validation=bool(val_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        processing_class=tok,
        peft_config=_lora_config(settings) if resolved.method == "lora" else None,
        callbacks=[_events_callback(run, total_steps, cancel)],
    )
    trainer.train()
    if cancel[0]:
        raise _Cancelled()
    if _is_main():
        trainer.save_model(str(run.model_dir))
        tok.save_pretrained(str(run.model_dir))
        # the trainer pickles its arguments beside the model; nothing here loads a pickle
        (run.model_dir / "training_args.bin").unlink(missing_ok=True)
        trained = sum(sum(1 for x in r["labels"] if x != -100) for r in train_rows)
        run.update_status(
            trained_tokens=sum(lengths) * resolved.n_epochs,
            trained_target_tokens=trained * resolved.n_epochs,
        )


def _load_model(base: str, settings: LocalSettings, device: DeviceInfo) -> Any:
    """The base model, in the precision and attention the device calls for."""
    import torch
    from transformers import AutoModelForCausalLM

    fast = device.kind == "cuda" and device.fast_kernels
    if settings.precision != "auto":
        dtype: Any = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision, "auto")
    else:
        dtype = torch.bfloat16 if device.bf16 else torch.float32
    try:
        return AutoModelForCausalLM.from_pretrained(
            base, dtype=dtype, attn_implementation="flash_attention_2" if fast else "sdpa"
        )
    except OSError as exc:
        raise TrainingFailure("model_not_found", f"cannot load the model {base!r}: {exc}") from exc
    except Exception as exc:  # damaged weights raise the format library's own errors
        raise TrainingFailure(
            "invalid_model",
            f"cannot load the model {base!r} ({type(exc).__name__}: {exc}); check that the "
            "directory holds a complete Hugging Face model",
        ) from exc


def _total_steps(n_examples: int, resolved: Resolved) -> int:
    """Optimizer steps of the whole run, across every process of a distributed launch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = math.ceil(n_examples / (resolved.batch_size * world))
    steps_per_epoch = math.ceil(steps_per_epoch / resolved.gradient_accumulation_steps)
    return max(1, steps_per_epoch * resolved.n_epochs)


def _announce(
    run: Run,
    base: str,
    device: DeviceInfo,
    resolved: Resolved,
    n_params: int,
    n_examples: int,
    total_steps: int,
) -> None:
    """The run's status goes to running, with what was chosen and why, and one event."""
    run.update_status(
        status="running",
        provider_status="running",
        started_at=int(time.time()),
        total_steps=total_steps,
        step=0,
        device=device.model_dump(),
        resolved=resolved.model_dump(),
        n_params=n_params,
    )
    run.add_event(
        f"Training {base} ({n_params:,} parameters, {resolved.method}) on {device.name}: "
        f"{n_examples} examples, {resolved.n_epochs} epochs, batch {resolved.batch_size}, "
        f"lr {resolved.learning_rate:g}"
    )


def _lora_config(settings: LocalSettings) -> Any:
    """PEFT's LoRA settings from ours."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha or 2 * settings.lora_r,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules,
        task_type="CAUSAL_LM",
        modules_to_save=["embed_tokens", "lm_head"] if settings.lora_train_embeddings else None,
    )


def _sft_config(
    run: Run, settings: LocalSettings, resolved: Resolved, total_steps: int, *, has_validation: bool
) -> Any:
    """TRL's SFTConfig from the resolved settings: steps, checkpoints, logging, precision."""
    from trl import SFTConfig

    n_ckpt = settings.n_checkpoints
    return SFTConfig(
        output_dir=str(run.path / "checkpoints"),
        num_train_epochs=resolved.n_epochs,
        per_device_train_batch_size=resolved.batch_size,
        per_device_eval_batch_size=resolved.batch_size,
        gradient_accumulation_steps=resolved.gradient_accumulation_steps,
        learning_rate=resolved.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        logging_steps=max(1, total_steps // 500),
        eval_strategy="steps" if has_validation else "no",
        eval_steps=max(1, total_steps // 10) if has_validation else None,
        save_strategy="steps" if n_ckpt else "no",
        save_steps=max(1, math.ceil(total_steps / n_ckpt)) if n_ckpt else total_steps,
        save_total_limit=n_ckpt or None,
        save_only_model=True,
        report_to="none",
        disable_tqdm=True,
        seed=resolved.seed,
        max_length=resolved.max_length,
        packing=resolved.packing,
        padding_free=resolved.padding_free,
        train_sampling_strategy="group_by_length" if resolved.group_by_length else "random",
        gradient_checkpointing=resolved.gradient_checkpointing,
        bf16=resolved.precision == "bf16",
        fp16=resolved.precision == "fp16",
        use_cpu=resolved.device == "cpu",
        dataloader_pin_memory=resolved.device == "cuda",
    )


def detach(launcher: str, run_dir: Path) -> int:
    """Start the training of ``run_dir`` in its own session and print its pid.

    The parent (this process) exits at once, so the trainer is nobody's child: no zombie,
    and it goes on when the script that created the job ends or is killed.
    """
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        return 0
    os.setsid()
    log = os.open(run_dir / "train.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    if launcher == "auto":
        launcher = "accelerate" if _wants_accelerate() else "python"
    if launcher == "accelerate":
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--module",
            _MODULE,  # by name: run with -m, this module's __name__ is "__main__"
            str(run_dir),
        ]
        Run(run_dir).update_status(pid=os.getpid(), launcher="accelerate")
        os.execv(sys.executable, cmd)
    code = main([str(run_dir)])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wants_accelerate() -> bool:
    """An accelerate config exists, or more than one GPU is visible."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    if os.path.isfile(os.path.join(home, "accelerate", "default_config.yaml")):
        return True
    try:
        import torch

        return bool(torch.cuda.device_count() > 1)
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the training of ``argv[0]`` (a run directory); the exit code mirrors the status.

    ``--detach LAUNCHER RUN_DIR`` starts it in the background instead (see :func:`detach`).
    """
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--detach":
        return detach(args[1], Path(args[2]))
    run = Run(Path(args[0]))
    if _is_main():
        run.update_status(status="running", pid=os.getpid(), provider_status="loading model")
    try:
        train(run)
    except _Cancelled:
        if _is_main():
            run.add_event("Job cancelled")
            run.update_status(status="cancelled", finished_at=int(time.time()))
        return 0
    except BaseException as exc:  # every ending must become a status
        code, message = _describe(exc)
        if _is_main():
            traceback.print_exc()
            run.add_event(f"Job failed: {message}", level="error")
            run.update_status(
                status="failed",
                error_code=code,
                error_message=message,
                finished_at=int(time.time()),
            )
        return 1
    if _is_main():
        job_id = run.id
        run.add_event(f"New fine-tuned model created: local:{job_id}")
        run.add_event("The job has successfully completed")
        run.update_status(
            status="succeeded", fine_tuned_model=f"local:{job_id}", finished_at=int(time.time())
        )
    return 0


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, TrainingFailure):
        return exc.code, exc.message
    if isinstance(exc, DataLineError):
        return (
            "invalid_training_file",
            f"{exc} (fix the line, or rebuild the file with `finetune-qa build`)",
        )
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return "out_of_memory", (
            f"out of memory ({text}); lower batch_size or max_length, use method='lora', or "
            "turn on gradient_checkpointing"
        )
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "the training process was interrupted"
    return "training_error", f"{name}: {text} (see train.log in the run directory)"


if __name__ == "__main__":
    sys.exit(main())
