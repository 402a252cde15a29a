"""``finetune-qa demo``: the whole lifecycle on a bundled sample, offline, in seconds.

With ``--backend local`` the sample is really trained on this machine
(:mod:`finetune_qa.cli._local`).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from finetune_qa.cli._common import (
    EXIT_HELP,
    json_option,
    offline_state_path,
    open_backend,
    quiet_option,
    remember_job,
)
from finetune_qa.cli._jobs import follow_job
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_SEED
from finetune_qa.exceptions import UsageError

if TYPE_CHECKING:
    from finetune_qa.backends import Backend
    from finetune_qa.chat import ChatModel
    from finetune_qa.evaluation import EvalResult
    from finetune_qa.guardrails import GuardedChatModel
    from finetune_qa.jobs import FineTuneJob

__all__ = ["demo"]


@click.command(epilog=EXIT_HELP)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("finetune-qa-demo"),
    show_default=True,
    help="Where to write the demo's files.",
)
@click.option(
    "--model",
    default=None,
    help="Model to price the data for [default: gpt-4o-mini-2024-07-18]; with --backend "
    "local, the open model to train [default: a tiny model built here].",
)
@click.option(
    "--backend",
    "backend_name",
    default="offline",
    show_default=True,
    help="offline: the simulated API; local: really train a model on this machine "
    "(needs finetune-qa[local]).",
)
@json_option("a summary (the job, the model, the files)")
@quiet_option("the fine-tuned model's name")
def demo(workdir: Path, model: str | None, backend_name: str, as_json: bool, quiet: bool) -> None:
    """Run the whole lifecycle offline on a bundled sample, in seconds, with no key.

    With --backend local, the sample is really trained on this machine (TRL, in its own
    process) on a tiny model built from its text, then asked its training questions.

    Reads a fictional company's website QA export (seed layout, with the quirks real
    exports have), builds train and validation JSONL, validates and prices them, uploads
    and fine-tunes on the offline backend with live progress, asks the new model a
    training question, a variation and an unrelated question, then trains an on-topic
    question gate, asks again through it, and evaluates both side by side.
    """
    if backend_name not in ("offline", "local"):
        raise UsageError(f"--backend {backend_name!r}: the demo runs on offline or local")
    # with --json or -q the steps' story is not printed, only the result at the end
    story = io.StringIO() if (as_json or quiet) else None
    with contextlib.redirect_stdout(story) if story is not None else contextlib.nullcontext():
        if backend_name == "local":
            from finetune_qa.cli._local import local_demo

            job = local_demo(workdir, model)
            summary: dict[str, Any] = {"backend": "local", "workdir": str(workdir)}
        else:
            job, summary = _offline_demo(workdir, model or DEFAULT_MODEL)
    summary = {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": job.fine_tuned_model,
        **summary,
    }
    if as_json:
        click.echo(orjson.dumps(summary).decode())
    elif quiet:
        click.echo(job.fine_tuned_model or f"{job.id} {job.status}")


def _offline_demo(workdir: Path, model: str) -> tuple[FineTuneJob, dict[str, Any]]:
    """The offline lifecycle, step by step; the job and what ``--json`` reports."""
    train, val = workdir / "train.jsonl", workdir / "validation.jsonl"
    journal = workdir / "journal.jsonl"
    _build_and_validate(train, val, model)
    click.echo("3. Uploading and fine-tuning on the offline backend (no key, no network).")
    with open_backend("offline", None) as backend:
        job = _train(backend, train, val, model, journal)
        bot = job.chat_model()
        _ask(bot, QUESTIONS)
        click.echo(
            "   The unrelated question got a confident answer too: that is what the on-topic "
            "guardrails are for."
        )
        scores = _guard_and_evaluate(backend, bot, train, workdir)
    _files_and_next_steps(workdir, train, val, journal, model, job.fine_tuned_model)
    files = {
        "train": train,
        "validation": val,
        "journal": journal,
        "report": workdir / "report.html",
    }
    return job, {
        "backend": "offline",
        "workdir": str(workdir),
        "files": {k: str(v) for k, v in files.items()},
        "answered": scores,
        "offline_state": str(offline_state_path()),
    }


SYSTEM = "You are a factual chatbot that answers questions about Lumen Notes."
QUESTIONS = [
    ("a training question", "How do I reset my password?"),
    ("a variation", "What does Lumen Pro cost per month?"),
    ("an unrelated question", "What is Star Wars?"),
]


def _build_and_validate(train: Path, val: Path, model: str) -> None:
    """Steps 1 and 2: build the sample's training data, then validate and price it."""
    from finetune_qa.dataset import DatasetBuilder
    from finetune_qa.samples import sample_csv
    from finetune_qa.validation import validate_file

    src = sample_csv()
    click.echo(
        f"1. Reading {src.name}: a website QA export in the seed layout "
        "(numbered lists in two cells)."
    )
    report = (
        DatasetBuilder(system_prompt=SYSTEM)
        .add_source(src)
        .sample_validation(seed=DEFAULT_SEED)  # every pair trained on; copies to validate
        .build(train, validation_output=val)
    )
    click.echo(report.to_text())
    click.echo(f"2. Validating {train} against {model}, with {val} as the validation file.")
    click.echo(validate_file(train, model=model, validation_path=val).to_text())


def _train(backend: Backend, train: Path, val: Path, model: str, journal: Path) -> FineTuneJob:
    """Step 3: the fine-tuning job, followed to its end, and its loss."""
    from finetune_qa.jobs import FineTuneJob

    job = FineTuneJob.create(
        train, model=model, backend=backend, validation_file=val, suffix="lumen", journal=journal
    )
    remember_job(job.id, "offline", None)  # so that `status JOB` needs no --backend
    click.echo(f"   job {job.id} ({job.status}); every upload and job is in {journal}")
    follow_job(job, timeout=None, show=True)
    points = job.metrics()
    if points:
        first, last = points[0], points[-1]
        click.echo(
            f"   training loss {first.train_loss:.3f} at step {first.step} -> "
            f"{last.train_loss:.3f} at step {last.step}"
        )
    click.echo(f"4. The fine-tuned model: {job.fine_tuned_model}")
    return job


def _ask(bot: ChatModel | GuardedChatModel, questions: list[tuple[str, str]]) -> None:
    """Ask each question and print the answer under its label."""
    for label, question in questions:
        answer = bot.ask(question)
        click.echo(f"   {label}: {question}\n     -> {answer.text}")


def _guard_and_evaluate(
    backend: Backend, bot: ChatModel, train: Path, workdir: Path
) -> dict[str, dict[str, float | None]]:
    """Steps 5 and 6: train a question gate, ask through it, evaluate both side by side.

    Returns:
        The answered rates per model and set (``{"fine-tune": {"verbatim": 1.0, ...}}``).
    """
    from finetune_qa.evaluation import EvalSuite
    from finetune_qa.guardrails import Discriminator, GuardedChatModel
    from finetune_qa.readers import read_qa

    click.echo(
        "5. Guarding it: a second fine-tune, a classifier, learns which questions are on topic."
    )
    pairs = list(read_qa(train))  # as they went in: the stop marker is read off
    gate = Discriminator.train(
        pairs, backend=backend, gate="question", workdir=workdir / "question-gate"
    )
    held_out = gate.settings().report
    if held_out is not None:
        click.echo(
            f"   gate {gate.model}: threshold {gate.threshold:.2f}, held-out precision "
            f"{held_out.precision:.2f}, recall {held_out.recall:.2f}"
        )
    guarded = GuardedChatModel(bot, question_gate=gate, topic="Lumen Notes")
    _ask(guarded, QUESTIONS)
    click.echo("6. Evaluating both: the training questions and 65 unrelated ones.")
    suite = EvalSuite.from_pairs(pairs)
    plain, safe = suite.run(bot), suite.run(guarded)
    report_path = (plain.compare(safe)).write_html(workdir / "report.html")
    for name, result in (("fine-tune", plain), ("guarded", safe)):
        click.echo(
            f"   {name:<9}  verbatim answered {_pct(result, 'verbatim')}, "
            f"unrelated answered {_pct(result, 'unrelated')}"
        )
    click.echo(f"   side-by-side report: {report_path}")
    return {
        name: {s: result.sets[s].scores.get("answered") for s in ("verbatim", "unrelated")}
        for name, result in (("fine-tune", plain), ("guarded", safe))
    }


def _files_and_next_steps(
    workdir: Path, train: Path, val: Path, journal: Path, model: str, tuned: str | None
) -> None:
    """Step 7: where everything is, and the commands to try next."""
    click.echo("7. Files:")
    click.echo(
        f"   {train}, {val} (training data), {journal} (uploads and jobs), "
        f"{workdir / 'report.html'} (evaluation)"
    )
    click.echo(f"   offline API state: {offline_state_path()}")
    click.echo("Next:")
    click.echo(f'  finetune-qa ask {tuned} "Who makes Lumen Notes?" --backend offline')
    click.echo("  finetune-qa build YOUR_QA.csv -o train.jsonl --validation validation.jsonl")
    click.echo(
        f"  OPENAI_API_KEY=... finetune-qa train YOUR_QA.csv --model {model}   "
        "# the same steps on OpenAI"
    )


def _pct(result: EvalResult, set_name: str) -> str:
    """The answered rate of one set, as a percentage."""
    value = result.sets[set_name].scores.get("answered")
    return "n/a" if value is None else f"{value:.0%}"
