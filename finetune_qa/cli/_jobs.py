"""The training half: upload, train, status, events, metrics, cancel and jobs.

Every command takes ``--backend`` (``openai`` by default, or ``$FINETUNE_QA_BACKEND``) and
``--json``. ``train`` follows its job with :func:`follow_job` (a progress bar on a terminal,
plain lines elsewhere), which ``demo`` and ``migrate --wait`` use too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from finetune_qa.backends import JobEvent, JobInfo, available_backends
from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.cli._common import (
    EXIT_HELP,
    JOB_ID,
    MULTIPART_THRESHOLD,
    Finite,
    backend_options,
    emit,
    open_backend,
)
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT
from finetune_qa.exceptions import InputFileError, UnknownBackendError, UsageError

if TYPE_CHECKING:
    from finetune_qa.dataset import BuildReport

__all__ = [
    "cancel",
    "events",
    "follow_job",
    "jobs",
    "local_options",
    "local_training_options",
    "metrics",
    "status",
    "train",
    "training_options",
    "upload",
]


def training_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Training settings on `train`: common ones, and those only a local run has."""
    f = local_training_options(f)
    f = click.option(
        "--learning-rate-multiplier",
        type=float,
        default=None,
        help="Learning-rate multiplier, > 0 [default: auto].",
    )(f)
    return click.option("--batch-size", type=int, default=None, help="Batch size [default: auto].")(
        f
    )


def local_training_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The settings only a local run has (`train`, `migrate --to local`)."""
    opts = [
        click.option(
            "--learning-rate",
            type=float,
            default=None,
            help="Absolute learning rate (local backend; overrides the multiplier).",
        ),
        click.option(
            "--method",
            type=click.Choice(["lora", "full"]),
            default=None,
            help="Local backend: LoRA adapters or full fine-tuning [default: lora].",
        ),
        click.option("--lora-rank", type=int, default=None, help="Local backend: LoRA rank."),
        click.option("--lora-alpha", type=int, default=None, help="Local backend: LoRA alpha."),
        click.option(
            "--lora-dropout", type=float, default=None, help="Local backend: LoRA dropout."
        ),
        click.option(
            "--max-length", type=int, default=None, help="Local backend: longest example in tokens."
        ),
        click.option(
            "--packing/--no-packing",
            default=None,
            help="Local backend: pack examples padding-free [default: per device].",
        ),
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda", "mps"]),
            default=None,
            help="Local backend: where to train [default: auto].",
        ),
        click.option(
            "--precision",
            type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
            default=None,
            help="Local backend: training precision [default: auto].",
        ),
        click.option(
            "--chat-template",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            default=None,
            help="Local backend: a Jinja chat template file for a model that has none.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def local_options(backend: str, values: dict[str, Any]) -> dict[str, Any]:
    """The provider_options for `train`'s local-only settings; refused on other backends."""
    names = {
        "learning_rate": "learning_rate",
        "method": "method",
        "lora_rank": "lora_r",
        "lora_alpha": "lora_alpha",
        "lora_dropout": "lora_dropout",
        "max_length": "max_length",
        "packing": "packing",
        "device": "device",
        "precision": "precision",
        "chat_template": "chat_template",
    }
    given = {k: v for k, v in values.items() if k in names and v is not None}
    if given and backend != "local":
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise UsageError(f"{flags}: only for --backend local (this run uses {backend})")
    options = {names[k]: v for k, v in given.items()}
    if "chat_template" in options:
        path = Path(options["chat_template"])
        try:
            options["chat_template"] = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"cannot read the chat template ({exc})", path=path) from exc
    return options


@click.command(epilog=EXIT_HELP)
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the file as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def upload(path: Path, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Upload a training file (large files go through the Uploads API in parts)."""
    with open_backend(backend, base_url) as be:
        size = path.stat().st_size
        in_parts = getattr(be, "upload_path", None)
        if size > MULTIPART_THRESHOLD and callable(in_parts):
            info = in_parts(path, filename=path.name)
        else:
            info = be.upload_file(path.read_bytes(), filename=path.name)
    emit(
        info.model_dump(mode="json"),
        as_json,
        lambda: f"{info.id}  {info.bytes:,} bytes  {info.filename}",
    )


@click.command(epilog=EXIT_HELP)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Base model to fine-tune.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("finetune-qa-train"),
    show_default=True,
    help="Where the built JSONL and the journal go.",
)
@click.option(
    "--system-prompt",
    default=None,
    help="System message of every example. Default: the one a chat JSONL input "
    f"carries, else {DEFAULT_SYSTEM_PROMPT!r}.",
)
@click.option(
    "--stop",
    default=None,
    help="Stop marker appended to every answer. Default: the one a chat JSONL input's "
    f"answers end with, else {DEFAULT_STOP!r}.",
)
@click.option(
    "--validation-fraction",
    type=Finite(min=0, max=0.5),
    default=None,
    help="Share of questions held OUT of training for validation (0: no validation "
    "file). Default: every pair is trained on, and 10% are repeated as validation.",
)
@click.option(
    "--epochs",
    default="auto",
    show_default=True,
    help="Epochs, 1-50 (local: 1-1000) or auto.",
)
@click.option("--suffix", default=None, help="Up to 64 characters in the model name.")
@click.option("--seed", type=int, default=None, help="Training seed.")
@training_options
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Follow the job to its end."
)
@click.option(
    "--timeout",
    type=Finite(min=0),
    default=None,
    help="Stop following after this many seconds (the job goes on).",
)
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the result.")
def train(
    inputs: tuple[Path, ...],
    model: str,
    workdir: Path,
    system_prompt: str | None,
    stop: str | None,
    validation_fraction: float | None,
    epochs: str,
    suffix: str | None,
    seed: int | None,
    wait: bool,
    timeout: float | None,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
    batch_size: int | None,
    learning_rate_multiplier: float | None,
    **local: Any,
) -> None:
    """Build, validate, upload, start and follow a fine-tuning job, in one go.

    Safe to run again: the same data and settings attach to the job already started.
    With --backend local, an open model (a Hugging Face id or model directory given
    as --model) is trained on this machine; the local-only options apply there.
    """
    from finetune_qa.jobs import FineTuneJob

    if backend not in available_backends():  # before anything is built or written
        raise UnknownBackendError(backend, available_backends())
    n_epochs: int | str = "auto" if epochs == "auto" else _int(epochs, "--epochs")
    most = LOCAL_MAX_EPOCHS if backend == "local" else 50
    if n_epochs != "auto" and not 1 <= int(n_epochs) <= most:
        raise UsageError(f"--epochs takes 1 to {most} or 'auto', got {n_epochs}")
    provider_options = local_options(backend, local)
    say = (lambda *a, **k: None) if (quiet or as_json) else click.echo
    train_path = workdir / "train.jsonl"
    # an open model trained locally costs nothing and is not in the catalogue
    report = _build(
        inputs,
        workdir,
        system_prompt,
        stop,
        validation_fraction,
        model=None if backend == "local" else model,
    )
    # only a file this build wrote, never an empty one or one left by an earlier run
    val_path = Path(report.validation_output) if report.validation_output else None
    _say_built(report, workdir, say)
    with open_backend(backend, base_url) as be:
        job = FineTuneJob.create(
            train_path,
            model=model,
            backend=be,
            validation_file=val_path,
            n_epochs=n_epochs,  # type: ignore[arg-type]
            batch_size="auto" if batch_size is None else batch_size,
            learning_rate_multiplier=(
                "auto" if learning_rate_multiplier is None else learning_rate_multiplier
            ),
            suffix=suffix,
            seed=seed,
            provider_options=provider_options or None,
            system_prompt=report.system_prompt,
            stop=report.stop,
            split=report.describe_split(),
            journal=workdir / "journal.jsonl",
        )
        say(f"job {job.id} created ({job.status}); journal: {workdir / 'journal.jsonl'}")
        if wait:
            follow_job(job, timeout=timeout, show=not (quiet or as_json))
    result = {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": job.fine_tuned_model,
        "training_file": str(train_path),
        "validation_file": str(val_path) if val_path else None,
    }
    # -q keeps this line, so MODEL=$(finetune-qa train ... -q) works
    emit(result, as_json, lambda: job.fine_tuned_model or f"{job.id} {job.status}", result=True)
    if job.status in ("failed", "cancelled"):
        raise click.exceptions.Exit(1)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def status(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Show a job's status and, once it succeeded, its model."""
    with open_backend(backend, base_url) as be:
        info = be.retrieve_job(job_id)
    data = info.model_dump(mode="json", exclude={"raw"})
    emit(
        data,
        as_json,
        lambda: _job_line(info) + (f"\n{info.error_message}" if info.error_message else ""),
    )


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@click.option("--follow", "follow_", is_flag=True, help="Keep printing events until the job ends.")
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def events(
    job_id: str,
    follow_: bool,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Print a job's events, oldest first (with --follow, until it ends)."""
    from finetune_qa.jobs import FineTuneJob

    with open_backend(backend, base_url) as be:
        job = FineTuneJob.attach(job_id, backend=be)
        stream = job.follow() if follow_ else iter(job.events())
        for e in stream:
            if not quiet:
                _print_event(e, as_json)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a PNG of loss and token accuracy (needs finetune-qa[plot]).",
)
@click.option("--rows", type=int, default=20, show_default=True, help="Steps shown in the table.")
@click.option("--ascii", "ascii_", is_flag=True, help="Draw the loss curve with ASCII only.")
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def metrics(
    job_id: str,
    plot_path: Path | None,
    rows: int,
    ascii_: bool,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Show a job's training metrics: a table and a loss curve (and a PNG with --plot)."""
    from finetune_qa.jobs import FineTuneJob
    from finetune_qa.plots import loss_curve, metrics_table, plot_metrics

    if rows < 1:
        raise UsageError(f"--rows takes a whole number >= 1, got {rows}")
    with open_backend(backend, base_url) as be:
        job = FineTuneJob.attach(job_id, backend=be)
        points = job.metrics()
    if plot_path is not None:
        plot_metrics(points, plot_path, title=job.fine_tuned_model or job.id)

    def text() -> str:
        out = metrics_table(points, max_rows=rows) + "\n\n" + loss_curve(points, ascii=ascii_)
        if plot_path is not None:
            out += f"\n\nplot written to {plot_path}"
        return out

    emit([p.model_dump() for p in points], as_json, text)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def cancel(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Cancel a job."""
    with open_backend(backend, base_url) as be:
        info = be.cancel_job(job_id)
    emit(info.model_dump(mode="json", exclude={"raw"}), as_json, lambda: _job_line(info))


@click.command(epilog=EXIT_HELP)
@click.option("--limit", type=int, default=20, show_default=True, help="How many, newest first.")
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def jobs(limit: int, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """List fine-tuning jobs, newest first."""
    if not 1 <= limit <= 100:
        raise UsageError(f"--limit takes 1 to 100 (one page of the jobs list), got {limit}")
    with open_backend(backend, base_url) as be:
        found = be.list_jobs(limit=limit)
    emit(
        [j.model_dump(mode="json", exclude={"raw"}) for j in found],
        as_json,
        lambda: "\n".join(_job_line(j) for j in found) or "no jobs",
    )


def _build(
    inputs: tuple[Path, ...],
    workdir: Path,
    system_prompt: str | None,
    stop: str | None,
    validation_fraction: float | None,
    *,
    model: str | None,
) -> BuildReport:
    """``train``'s first step: the training (and validation) JSONL in ``workdir``."""
    from finetune_qa.dataset import DatasetBuilder

    builder = DatasetBuilder()
    if system_prompt is not None:
        builder.with_system_prompt(system_prompt)
    if stop is not None:
        builder.with_stop(stop)
    if validation_fraction is None:
        builder.sample_validation()
    else:
        builder.split(validation_fraction)
    for p in inputs:
        builder.add_source(p)
    return builder.build(
        workdir / "train.jsonl",
        validation_output=workdir / "validation.jsonl"
        if builder.validation_mode != "none"
        else None,
        model=model,
        require_training=True,
    )


def _say_built(report: BuildReport, workdir: Path, say: Callable[..., None]) -> None:
    """What ``train`` built: the counts, the notes and the price."""
    if not report.validation_output:
        validation = "no validation file"
    elif report.validation_mode == "sample":
        validation = f"{report.validation:,} of them repeated as validation"
    else:
        validation = f"{report.validation:,} held-out validation examples"
    say(
        f"built {report.train:,} training examples ({validation}) "
        f"from {report.read:,} pairs ({report.dropped:,} dropped) in {workdir}/"
    )
    for note in report.notes:
        say(f"note: {note}")
    if report.token_report is not None:
        c = report.token_report.cost
        cost = f"${c.estimated_cost_usd:,.2f}" if c.estimated_cost_usd is not None else "unknown"
        say(f"{c.billed_tokens_total:,} billed tokens over {c.n_epochs} epochs: about {cost}")
        for w in report.token_report.model_warnings:
            say(f"warning: {w}")


def _job_line(j: JobInfo) -> str:
    model = j.fine_tuned_model or "-"
    return f"{j.id}  {j.status:<16} {j.model:<26} {model}"


def _int(value: str, option: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{option} takes a whole number or 'auto', got {value!r}") from None


def _print_event(e: JobEvent, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(e.model_dump(mode="json")).decode())
    else:
        click.echo(f"{e.created_at}  {e.level:<5} {e.message}")


def follow_job(job: Any, *, timeout: float | None, show: bool) -> None:
    """Follow a job with a progress bar on a terminal, plain lines elsewhere."""
    if not show:
        job.wait(timeout=timeout)
        return
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
        ) as progress:
            task = progress.add_task(job.status, total=None, loss="")

            def on_event(e: JobEvent) -> None:
                d = e.data or {}
                if e.type == "metrics" and "step" in d:
                    progress.update(
                        task,
                        total=d.get("total_steps"),
                        completed=d["step"],
                        loss=f"loss {d.get('train_loss', 0):.3f}",
                        description="training",
                    )
                else:
                    progress.console.print(e.message)

            job.wait(
                timeout=timeout,
                on_event=on_event,
                on_status=lambda i: progress.update(task, description=i.status),
            )
    else:
        last_step = [0]

        def plain(e: JobEvent) -> None:
            d = e.data or {}
            if e.type == "metrics" and "step" in d:
                total = d.get("total_steps") or 0
                # one line per tenth of training, not one per step
                if (total and d["step"] * 10 // total > last_step[0] * 10 // total) or d[
                    "step"
                ] == total:
                    click.echo(
                        f"  step {d['step']}/{total}: training loss {d.get('train_loss', 0):.3f}"
                    )
                last_step[0] = d["step"]
            else:
                click.echo(f"  {e.message}")

        job.wait(timeout=timeout, on_event=plain)
    click.echo(f"job {job.id}: {job.status}")
