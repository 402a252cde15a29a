#!/usr/bin/env python3
"""Benchmark the local backend's training against a plain TRL ``SFTTrainer`` script (issue #15).

This is a benchmark, not a test: it prints wall times, trained tokens per second, peak
memory, losses and the ratios the issue's targets are stated in. It always exits 0 once it
has measured what it could; a variant that fails or runs past its timeout is a FAILED row.

Both sides train the same tiny real model (``build_tiny_model``: a two-layer Llama and a
BPE tokenizer built offline from the data's own text) on the same N chat examples
(``make_data.py`` CSV -> ``finetune-qa build``), for the same epochs, learning rate and
LoRA adapters (r=16, alpha=32, dropout 0.05, all linear layers: the backend's defaults):

* ``plain TRL script``: what a user writes from the TRL docs: a conversational
  ``messages`` dataset, ``SFTConfig(assistant_only_loss=True, per_device_train_batch_size=8,
  learning_rate=2e-4, num_train_epochs=E)`` and everything else TRL's defaults
  (``gradient_checkpointing=True``, ``bf16=True``, ``logging_steps=10``, ``max_length=1024``,
  no packing), ``SFTTrainer(model=PATH, peft_config=...)``, then ``trainer.save_model()``.
* ``ours: automatic settings``: the real path a user gets: ``FineTuneJob.create(...,
  backend=LocalBackend(root=...), model=PATH, n_epochs=E)`` then ``job.wait()``. The only
  change is that the backend's launcher runs ``_train.main(RUN_DIR)`` in the worker itself
  instead of a detached process, so its time and peak memory are the worker's.
* alternatives, each a row: our path with one setting changed. ``provider_options`` /
  ``batch_size`` where a user can set it (``n_checkpoints=0``, ``packing=True``, batch 16
  and 32); otherwise the automatic choice is overridden after ``resolve()``
  (``group_by_length``) so the row shows what changing ``_settings.py`` would give.

Every variant runs in a fresh subprocess (``python bench_local_train.py --worker SPEC``),
so peak RSS (``ru_maxrss`` from ``os.wait4``) is that variant's alone; each has a timeout.

Figures per variant:

* **total s**: the variant's work in its process, from before the data is read (or the job
  created) until the trained adapter is saved (``job.wait()`` returned): data preparation,
  model load, training, checkpoints and the final save. Interpreter start and imports are
  not counted (the same for all). The held-out loss below is measured after, untimed.
* **train s**: ``trainer.train()`` alone.
* **tokens/s**: trained non-padding tokens (the attention-mask sum of every training
  forward pass, counted by a hook: padding and the eval pass are not counted) / train s.
* **pad %**: padding tokens / all tokens of the training forward passes.
* **peak RSS**: the worker's ``ru_maxrss``. On GPU also ``torch.cuda.max_memory_allocated``.
* **train loss**: TRL's mean training loss over the run; **last loss**: the last logged one.
* **held-out loss**: assistant-token cross-entropy of the trained model on the same
  held-out examples (encoded with the backend's ``encode_example``), the same code for all
  variants: the "equal loss" the CPU target is stated at.

Targets (issue #15): on CPU, our automatic settings no slower than the plain script at
equal loss (wall time and tokens/s ratio >= 1.0, held-out loss within 2%); on GPU, our
tokens/s >= 1.5x the plain script's.

Usage (the venv needs torch, transformers, trl, peft, datasets: ``finetune-qa[local]``):
    PYTHONPATH=. python bench/bench_local_train.py --pairs 2000 --epochs 1
    PYTHONPATH=. python bench/bench_local_train.py --quick            # 200 pairs, smoke run
    PYTHONPATH=. python bench/bench_local_train.py --variants plain,ours
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV_VAR = "FINETUNE_QA_SHARED_BENCH"

LR = 2e-4  # the backend's LoRA learning rate at multiplier 1 (BASE_LEARNING_RATE["lora"])
PLAIN_BATCH = 8
CPU_TARGET = 1.0  # ours / plain, tokens/s and wall time, on CPU
GPU_TARGET = 1.5  # ours / plain, tokens/s, on GPU
LOSS_TOLERANCE = 0.02  # "equal loss": held-out losses within 2% of each other

# name -> spec; "kind" is plain (TRL script) or ours (FineTuneJob + LocalBackend)
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"label": "(a) plain TRL script, defaults, batch 8", "kind": "plain"},
    "ours": {"label": "(b) ours: automatic settings", "kind": "ours"},
    "ours-nockpt": {
        "label": "ours, n_checkpoints=0",
        "kind": "ours",
        "options": {"n_checkpoints": 0},
    },
    "ours-packing": {
        "label": "ours, packing=True (bfd, padding-free)",
        "kind": "ours",
        "options": {"packing": True},
    },
    "ours-b16": {"label": "ours, batch 16", "kind": "ours", "batch_size": 16},
    "ours-b32": {"label": "ours, batch 32", "kind": "ours", "batch_size": 32},
    "ours-gbl": {
        "label": "ours, group_by_length (resolve override)",
        "kind": "ours",
        "override": {"group_by_length": True},
    },
    "plain-nogc": {
        "label": "plain, gradient_checkpointing=False, bf16=False",
        "kind": "plain",
        "config": {"gradient_checkpointing": False, "bf16": False},
    },
}
DEFAULT_VARIANTS = list(VARIANTS)


# --------------------------------------------------------------------------- data


def shared_dir() -> Path:
    env = os.environ.get(SHARED_ENV_VAR)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "bench"


def prepare(work: Path, pairs: int, n_eval: int, seed: int) -> dict[str, Any]:
    """Train/held-out chat JSONL files and the tiny model (cached in ``work``)."""
    done = work / f"data_{pairs}_{n_eval}_{seed}.done"
    train = work / f"train_{pairs}.jsonl"
    held = work / f"heldout_{n_eval}.jsonl"
    model = work / f"tiny_model_{pairs}"
    if done.is_file() and train.is_file() and held.is_file() and model.is_dir():
        return json.loads(done.read_text())
    want = pairs + n_eval
    csv = work / "qa.csv"
    built = work / "built.jsonl"
    lines: list[str] = []
    gen = int(want * 1.1) + 50
    while len(lines) < want:
        subprocess.run(
            [
                sys.executable,
                str(shared_dir() / "make_data.py"),
                "--pairs",
                str(gen),
                "--seed",
                str(seed),
                "--out",
                str(csv),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "finetune_qa",
                "build",
                str(csv),
                "--output",
                str(built),
                "--no-tokens",
                "--json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env=_env(),
        )
        lines = [x for x in built.read_text(encoding="utf-8").splitlines() if x.strip()]
        gen *= 2
    train.write_text("\n".join(lines[:pairs]) + "\n", encoding="utf-8")
    held.write_text("\n".join(lines[pairs:want]) + "\n", encoding="utf-8")
    texts = [m["content"] for x in lines[:want] for m in json.loads(x)["messages"]]
    code = (
        "import sys, json\n"
        "from finetune_qa.backends.local import build_tiny_model\n"
        "texts = json.load(open(sys.argv[2]))\n"
        "build_tiny_model(sys.argv[1], texts)\n"
    )
    tpath = work / "texts.json"
    tpath.write_text(json.dumps(texts))
    subprocess.run([sys.executable, "-c", code, str(model), str(tpath)], check=True, env=_env())
    info = {
        "train": str(train),
        "heldout": str(held),
        "model": str(model),
        "pairs": pairs,
        "n_eval": n_eval,
    }
    done.write_text(json.dumps(info))
    return info


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


# --------------------------------------------------------------------------- worker


class _Meter:
    """Times ``SFTTrainer.train`` and counts the tokens its forward passes see."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.result: dict[str, Any] = {}
        self.real = 0
        self.padded = 0

    def install(self) -> None:
        from trl import SFTTrainer

        original = SFTTrainer.train
        meter = self

        def timed_train(trainer: Any, *a: Any, **kw: Any) -> Any:
            counting = [True]

            def hook(module: Any, args: Any, kwargs: Any) -> None:
                if not (counting[0] and module.training):
                    return
                ids = kwargs.get("input_ids")
                if ids is None and args:
                    ids = args[0]
                if ids is None:
                    return
                mask = kwargs.get("attention_mask")
                n = int(ids.numel())
                meter.padded += n
                meter.real += int(mask.sum()) if mask is not None else n

            handle = trainer.model.register_forward_pre_hook(hook, with_kwargs=True)
            start = time.perf_counter()
            try:
                out = original(trainer, *a, **kw)
            finally:
                meter.result["train_s"] = time.perf_counter() - start
                counting[0] = False
                handle.remove()
            logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            args = trainer.args
            meter.result.update(
                train_loss=float(out.training_loss),
                last_loss=float(logged[-1]) if logged else None,
                steps=int(trainer.state.global_step),
                config={
                    "batch": args.per_device_train_batch_size,
                    "grad_ckpt": bool(args.gradient_checkpointing),
                    "bf16": bool(args.bf16),
                    "packing": bool(getattr(args, "packing", False)),
                    "padding_free": bool(getattr(args, "padding_free", False)),
                    "logging_steps": args.logging_steps,
                    "save_strategy": str(args.save_strategy),
                    "max_length": getattr(args, "max_length", None),
                    "sampling": str(getattr(args, "train_sampling_strategy", "")),
                },
            )
            eval_start = time.perf_counter()
            meter.result["heldout_loss"] = heldout_loss(trainer, meter.spec["heldout"])
            meter.result["eval_s"] = time.perf_counter() - eval_start
            return out

        SFTTrainer.train = timed_train  # type: ignore[method-assign]


def heldout_loss(trainer: Any, path: str) -> float:
    """Mean assistant-token cross-entropy of the trained model on the held-out examples."""
    import torch

    from finetune_qa.backends.local._data import encode_example, read_chat_jsonl

    tok = trainer.processing_class
    model = trainer.model
    device = next(model.parameters()).device
    rows = [encode_example(tok, ex) for _, ex in read_chat_jsonl(Path(path))]
    was = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]], device=device)
            labels = torch.tensor([r["labels"]], device=device)
            logits = model(input_ids=ids).logits.float()
            shift = labels[:, 1:]
            n = int((shift != -100).sum())
            if not n:
                continue
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                shift.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            total += float(loss)
            count += n
    model.train(was)
    return total / max(1, count)


def run_plain(spec: dict[str, Any], out_dir: Path) -> None:
    """The plain TRL script: a conversational dataset, TRL's defaults, batch 8."""
    from datasets import load_dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    ds = load_dataset("json", data_files=spec["train"], split="train")
    config = SFTConfig(
        output_dir=str(out_dir / "plain"),
        num_train_epochs=spec["epochs"],
        per_device_train_batch_size=PLAIN_BATCH,
        learning_rate=LR,
        assistant_only_loss=True,
        report_to="none",
        disable_tqdm=True,
        use_cpu=spec["device"] == "cpu",
        **spec.get("config", {}),
    )
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=spec["model"], args=config, train_dataset=ds, peft_config=peft_config
    )
    trainer.train()
    trainer.save_model()


def run_ours(spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Our real path: FineTuneJob.create on a LocalBackend, then job.wait()."""
    from finetune_qa.backends.local import LocalBackend, _backend, _train
    from finetune_qa.jobs import FineTuneJob

    def launch_inline(self: Any, run: Any, settings: Any) -> int:
        code = _train.main([str(run.path)])
        if code:
            raise RuntimeError(f"training failed: {run.path / 'status.json'}")
        return os.getpid()

    _backend.LocalBackend._launch = launch_inline  # type: ignore[method-assign]
    override = spec.get("override")
    if override:
        real_resolve = _train.resolve

        def resolve(*a: Any, **kw: Any) -> Any:
            return real_resolve(*a, **kw).model_copy(update=override)

        _train.resolve = resolve  # type: ignore[assignment]
    options = dict(spec.get("options", {}))
    if spec["device"] != "auto":
        options.setdefault("device", spec["device"])
    root = out_dir / "local-root"
    job = FineTuneJob.create(
        spec["train"],
        model=spec["model"],
        backend=LocalBackend(root=root),
        n_epochs=spec["epochs"],
        batch_size=spec.get("batch_size", "auto"),
        provider_options=options,
        seed=42,
        journal=out_dir / "journal.jsonl",
    )
    job.wait(timeout=spec["timeout"])
    runs = list(root.rglob("status.json"))
    status = json.loads(runs[0].read_text()) if runs else {}
    if status.get("status") != "succeeded":
        raise RuntimeError(f"job ended {status.get('status')}: {status.get('error_message')}")
    return {
        "resolved": status.get("resolved"),
        "n_checkpoints": len(list(root.rglob("checkpoint-*"))),
    }


def worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    meter = _Meter(spec)
    import torch

    meter.install()
    out_dir = Path(spec["out"])
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if spec["kind"] == "plain":
        run_plain(spec, out_dir)
    else:
        extra = run_ours(spec, out_dir)
    total = time.perf_counter() - start - meter.result.get("eval_s", 0.0)
    result = dict(meter.result, total_s=total, tokens=meter.real, all_tokens=meter.padded, **extra)
    if torch.cuda.is_available():
        result["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
        result["gpu_name"] = torch.cuda.get_device_name(0)
    result["torch_threads"] = torch.get_num_threads()
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent


def run_variant(name: str, base: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    spec = dict(
        base, **VARIANTS[name], out=str(out), result=str(out / "result.json"), timeout=timeout
    )
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    log = out / "worker.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=out,
            start_new_session=True,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)

        timer = threading.Timer(timeout, kill)
        timer.start()
        start = time.perf_counter()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
    row: dict[str, Any] = {
        "name": name,
        "label": VARIANTS[name]["label"],
        "process_s": time.perf_counter() - start,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "log": str(log),
    }
    if killed.is_set():
        row["error"] = f"timed out after {timeout:.0f} s"
    elif proc.returncode != 0 or not Path(spec["result"]).is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-6:]
        row["error"] = f"exit {proc.returncode}: " + " | ".join(tail)
    else:
        row.update(json.loads(Path(spec["result"]).read_text()))
        row["tokens_per_s"] = row["tokens"] / row["train_s"] if row["train_s"] else 0.0
        row["pad_pct"] = 100 * (1 - row["tokens"] / row["all_tokens"]) if row["all_tokens"] else 0
    return row


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_table(rows: list[dict[str, Any]], gpu: bool) -> None:
    head = (
        f"{'variant':<46} {'total s':>8} {'train s':>8} {'tokens/s':>9} {'pad %':>6} "
        f"{'peak RSS':>9} {'train loss':>10} {'last loss':>9} {'held-out':>9}"
    )
    if gpu:
        head += f" {'GPU peak':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['label']:<46} FAILED: {r['error'][:200]}")
            continue
        line = (
            f"{r['label']:<46} {r['total_s']:>8.1f} {r['train_s']:>8.1f} "
            f"{r['tokens_per_s']:>9,.0f} {r['pad_pct']:>6.1f} {r['peak_rss_mib']:>6,.0f} MiB "
            f"{_f(r.get('train_loss'), '.4f'):>10} {_f(r.get('last_loss'), '.4f'):>9} "
            f"{_f(r.get('heldout_loss'), '.4f'):>9}"
        )
        if gpu:
            line += f" {r.get('gpu_peak_bytes', 0) / 2**20:>5,.0f} MiB"
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2000, help="training examples (default 2000)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 pairs, plain + ours")
    ap.add_argument("--heldout", type=int, default=200, help="held-out examples for the loss")
    ap.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated, from: {', '.join(VARIANTS)} (default: all)",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per variant")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="data, model and runs (default: a temp dir; data cached there)",
    )
    ap.add_argument("--seed", type=int, default=1234, help="data seed")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.quick:
        args.pairs = min(args.pairs, 200)
        args.heldout = min(args.heldout, 50)
    names = (
        args.variants.split(",")
        if args.variants
        else (["plain", "ours"] if args.quick else DEFAULT_VARIANTS)
    )
    for n in names:
        if n not in VARIANTS:
            ap.error(f"unknown variant {n!r}; known: {', '.join(VARIANTS)}")
    if "plain" not in names or "ours" not in names:
        print("note: without both 'plain' and 'ours' no ratio is printed")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-local-train-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch  # only to say where it runs

    gpu = args.device != "cpu" and torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    print(f"# bench_local_train  {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M UTC}")
    print(
        f"# {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(0)})" if gpu else "")
    )
    vers = []
    for pkg in ("transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            from importlib import metadata

            vers.append(f"{pkg} {metadata.version(pkg)}")
        except Exception:
            vers.append(f"{pkg} ?")
    print("# " + ", ".join(vers))
    t0 = time.perf_counter()
    data = prepare(work, args.pairs, args.heldout, args.seed)
    print(
        f"# data: {args.pairs} training + {args.heldout} held-out chat examples, "
        f"{args.epochs} epoch(s); tiny model {data['model']} "
        f"(prepared in {time.perf_counter() - t0:.1f} s); workdir {work}"
    )
    base = {
        "train": data["train"],
        "heldout": data["heldout"],
        "model": data["model"],
        "epochs": args.epochs,
        "device": args.device if args.device != "auto" else device,
    }
    rows = []
    for name in names:
        print(f"# running {name}: {VARIANTS[name]['label']} ...", flush=True)
        row = run_variant(name, base, work, args.timeout)
        rows.append(row)
        if "error" in row:
            print(f"#   FAILED ({row['error'][:300]}); log {row['log']}", flush=True)
        else:
            print(
                f"#   {row['total_s']:.1f} s, {row['tokens_per_s']:,.0f} tokens/s, "
                f"config {row.get('config')}",
                flush=True,
            )
            if row.get("resolved"):
                r = row["resolved"]
                print(
                    f"#   resolved: batch {r['batch_size']}, packing {r['packing']}, "
                    f"group_by_length {r['group_by_length']}, precision {r['precision']}, "
                    f"max_length {r['max_length']}, checkpoints written "
                    f"{row.get('n_checkpoints')}",
                    flush=True,
                )
    print()
    print_table(rows, gpu)
    by = {r["name"]: r for r in rows}
    a, b = by.get("plain"), by.get("ours")
    print()
    if a and b and "error" not in a and "error" not in b:
        tps = b["tokens_per_s"] / a["tokens_per_s"]
        wall = a["total_s"] / b["total_s"]
        train = a["train_s"] / b["train_s"]
        dloss = (b["heldout_loss"] - a["heldout_loss"]) / a["heldout_loss"]
        print(f"ratio (b)/(a) tokens/s:                 {tps:.2f}x")
        print(
            f"ratio (b)/(a) wall time (total s):      {b['total_s'] / a['total_s']:.2f}x "
            f"(speed-up {wall:.2f}x)"
        )
        print(
            f"ratio (b)/(a) train time (train s):     {b['train_s'] / a['train_s']:.2f}x "
            f"(speed-up {train:.2f}x)"
        )
        print(
            f"held-out loss (b) vs (a):               {b['heldout_loss']:.4f} vs "
            f"{a['heldout_loss']:.4f} ({dloss:+.1%})"
        )
        print(
            f"peak RSS (b) / (a):                     {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x"
        )
        if gpu:
            print(
                f"GPU tokens/s (a) {a['tokens_per_s']:,.0f}, (b) {b['tokens_per_s']:,.0f}; "
                f"peak GPU memory (a) {a['gpu_peak_bytes'] / 2**20:,.0f} MiB, "
                f"(b) {b['gpu_peak_bytes'] / 2**20:,.0f} MiB"
            )
            met = tps >= GPU_TARGET
            print(
                f"GPU target (ours tokens/s >= {GPU_TARGET}x plain): "
                f"{'target met' if met else 'target NOT met'} ({tps:.2f}x)"
            )
        else:
            equal = abs(dloss) <= LOSS_TOLERANCE
            better = b["heldout_loss"] <= a["heldout_loss"]
            fast = tps >= CPU_TARGET and wall >= CPU_TARGET
            met = fast and (equal or better)
            print(
                f"CPU target (ours no slower than plain at equal loss): "
                f"{'target met' if met else 'target NOT met'} "
                f"(tokens/s {tps:.2f}x, wall speed-up {wall:.2f}x, held-out loss "
                f"{dloss:+.1%}{', within 2%' if equal else (', lower' if better else ', higher')})"
            )
            print("GPU target (>= 1.5x plain tokens/s): not measured (no GPU here)")
    else:
        print("no ratio: the plain or the automatic variant did not run or failed")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
