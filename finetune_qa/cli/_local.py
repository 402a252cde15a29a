"""`finetune-qa demo --backend local`: the bundled sample trained on this machine, in one go.

With no model given, a real tiny model is built from the sample's own text (a byte-level
BPE tokenizer and a two-layer Llama of random weights), so the whole path (TRL training in
its own process, metrics, checkpoints, greedy answers with the stop marker) runs offline
on a CPU in well under a minute. ``--model`` trains a real open model instead (a Hugging
Face id or model directory), with the backend's automatic settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

if TYPE_CHECKING:
    from finetune_qa.jobs import FineTuneJob

__all__ = ["TINY_RECIPE", "local_demo"]

TINY_RECIPE = {"n_epochs": 60, "provider_options": {"method": "full", "learning_rate": 3e-3}}
"""How the demo trains the tiny model: a random model learns its data fastest in full."""


def local_demo(workdir: Path, base_model: str | None) -> FineTuneJob:
    """Build the sample, train it with the local backend, and ask it training questions.

    Returns:
        The finished job.

    Raises:
        ConfigError: the ``local`` extra is not installed (the message says how to install it).
    """
    from finetune_qa.backends.local import LocalBackend, build_tiny_model
    from finetune_qa.cli._common import require_local
    from finetune_qa.cli._jobs import follow_job
    from finetune_qa.dataset import DatasetBuilder
    from finetune_qa.jobs import FineTuneJob
    from finetune_qa.samples import sample_csv

    require_local()
    system = "You are a factual chatbot that answers questions about Lumen Notes."
    train = workdir / "train.jsonl"
    click.echo(f"1. Building {train} from the bundled sample ({sample_csv().name}).")
    report = DatasetBuilder(system_prompt=system).add_source(sample_csv()).build(train)
    click.echo(
        f"   {report.train} training examples (read {report.read}, dropped {report.dropped})"
    )
    options: dict[str, object] = {}
    n_epochs: int | str = "auto"
    if base_model is None:
        texts = [
            m["content"]
            for line in train.read_bytes().splitlines()
            for m in orjson.loads(line)["messages"]
        ]
        base_model = str(build_tiny_model(workdir / "tiny-model", texts))
        options = dict(TINY_RECIPE["provider_options"])  # type: ignore[call-overload]
        n_epochs = int(TINY_RECIPE["n_epochs"])  # type: ignore[call-overload]
        click.echo(f"2. Built a tiny real model in {base_model} (no download: tokenizer and")
        click.echo("   weights made here), to train in full at lr 3e-3 for 60 epochs.")
    else:
        click.echo(f"2. Base model: {base_model} (LoRA, automatic settings for this machine).")
    backend = LocalBackend(root=workdir / "runs")
    job = FineTuneJob.create(
        train,
        model=base_model,
        backend=backend,
        n_epochs=n_epochs,  # type: ignore[arg-type]
        provider_options=options,
        journal=workdir / "journal.jsonl",
    )
    click.echo(f"3. Training in its own process: job {job.id}, run directory {backend.root}/jobs/")
    follow_job(job, timeout=None, show=True)
    points = job.metrics()
    if points and points[0].train_loss is not None and points[-1].train_loss is not None:
        click.echo(
            f"   training loss {points[0].train_loss:.3f} at step {points[0].step} -> "
            f"{points[-1].train_loss:.3f} at step {points[-1].step}"
        )
    bot = job.chat_model()
    click.echo(
        f"4. Asking {job.fine_tuned_model} three training questions (greedy, temperature 0):"
    )
    for line in train.read_bytes().splitlines()[:3]:
        messages = orjson.loads(line)["messages"]
        question = messages[1]["content"]
        expected = messages[2]["content"].removesuffix("**STOP**").strip()
        answer = bot.ask(question)
        verdict = "verbatim" if answer.text.strip() == expected else "differs from training"
        click.echo(f"   Q: {question}\n   A: {answer.text}  [{verdict}]")
    click.echo(
        f"Serve it to any OpenAI client: FINETUNE_QA_LOCAL_DIR={backend.root} "
        f"finetune-qa serve --model {job.fine_tuned_model}"
    )
    return job
