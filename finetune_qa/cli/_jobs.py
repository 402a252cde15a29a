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
from typing import TYPE_CHECKING, Any, Literal

import click
import orjson

from finetune_qa.backends import JobEvent, JobInfo, available_backends
from finetune_qa.backends.base import UploadsPaths
from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.cli._common import (
    EPOCHS,
    EXIT_HELP,
    JOB_ID,
    MAX_EPOCHS,
    MULTIPART_THRESHOLD,
    AliasOption,
    Finite,
    backend_options,
    check_epochs_for,
    emit,
    emit_lines,
    job_backend,
    json_option,
    local_time,
    open_backend,
    quiet_option,
    recent_backend,
    remember_job,
    table,
    with_iso_times,
)
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT
from finetune_qa.exceptions import InputFileError, UnknownBackendError, UsageError

if TYPE_CHECKING:
    from finetune_qa.dataset import BuildReport

__all__ = [
    "JOB_HEADER",
    "cancel",
    "events",
    "follow_job",
    "job_json",
    "job_panel",
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
@json_option("the file")
@quiet_option("the file id")
def upload(path: Path, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Upload a training file (large files go through the Uploads API in parts)."""
    with open_backend(backend, base_url) as be:
        size = path.stat().st_size
        if size > MULTIPART_THRESHOLD and isinstance(be, UploadsPaths):
            info = be.upload_path(path, filename=path.name)
        else:
            info = be.upload_file(path.read_bytes(), filename=path.name)
    emit(
        with_iso_times(info.model_dump(mode="json")),
        as_json,
        lambda: f"{info.id}  {info.bytes:,} bytes  {info.filename}",
        quiet=lambda: info.id,
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
    type=EPOCHS,
    default="auto",
    show_default=True,
    help=f"Epochs, 1-{MAX_EPOCHS} (local: 1-{LOCAL_MAX_EPOCHS}) or auto.",
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
@json_option("the result")
@quiet_option("the fine-tuned model's name (or the job id and status)")
def train(
    inputs: tuple[Path, ...],
    model: str,
    workdir: Path,
    system_prompt: str | None,
    stop: str | None,
    validation_fraction: float | None,
    epochs: int | Literal["auto"],
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
    from finetune_qa.jobs import FineTuneJob, Journal

    if backend not in available_backends():  # before anything is built or written
        raise UnknownBackendError(backend, available_backends())
    check_epochs_for(epochs, LOCAL_MAX_EPOCHS if backend == "local" else MAX_EPOCHS)
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
    journal = Journal(workdir / "journal.jsonl")
    known = {r.get("job_id") for r in journal.find(op="job", state="created")}
    with open_backend(backend, base_url) as be:
        job = FineTuneJob.create(
            train_path,
            model=model,
            backend=be,
            validation_file=val_path,
            n_epochs=epochs,
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
            journal=journal,
        )
        remember_job(job.id, backend, base_url)
        how = "attached to" if job.id in known else "created"
        say(f"job {job.id} {how} ({job.status}); journal: {journal.path}")
        if wait:
            follow_job(job, timeout=timeout, show=not (quiet or as_json))
    result = {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": job.fine_tuned_model,
        "training_file": str(train_path),
        "validation_file": str(val_path) if val_path else None,
    }
    line = job.fine_tuned_model or f"{job.id} {job.status}"
    # -q keeps this line, so MODEL=$(finetune-qa train ... -q) works
    emit(result, as_json, lambda: line, quiet=lambda: line)
    if job.status in ("failed", "cancelled"):
        raise click.exceptions.Exit(1)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@backend_options
@json_option("the job")
@quiet_option("the status")
def status(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Show a job: its status, times, trained tokens, files and, once it succeeded, its model.

    Without --backend, the backend the job was created on (by `train` or `migrate` on
    this machine) is used.
    """
    backend, base_url = job_backend(job_id, backend, base_url)
    with open_backend(backend, base_url) as be:
        info = be.retrieve_job(job_id)
    emit(job_json(info), as_json, lambda: job_panel(info), quiet=lambda: info.status)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@click.option("--follow", "follow_", is_flag=True, help="Keep printing events until the job ends.")
@backend_options
@json_option("one event per line (JSON Lines)")
@quiet_option("the events' messages")
def events(
    job_id: str,
    follow_: bool,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Print a job's events, oldest first, with their local time (with --follow, until it ends).

    Without --backend, the backend the job was created on is used.
    """
    from finetune_qa.jobs import FineTuneJob

    backend, base_url = job_backend(job_id, backend, base_url)
    with open_backend(backend, base_url) as be:
        job = FineTuneJob.attach(job_id, backend=be)
        stream = job.follow() if follow_ else iter(job.events())
        for e in stream:
            _print_event(e, as_json, quiet)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a PNG of loss and token accuracy (needs finetune-qa[plot]).",
)
@click.option(
    "--limit",
    "--rows",
    "limit",
    cls=AliasOption,
    hidden_aliases=["--rows"],
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Most steps shown in the table.",
)
@click.option("--ascii", "ascii_", is_flag=True, help="Draw the loss curve with ASCII only.")
@backend_options
@json_option("one step per line (JSON Lines)")
@quiet_option("the plot's path (with --plot)")
def metrics(
    job_id: str,
    plot_path: Path | None,
    limit: int,
    ascii_: bool,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Show a job's training metrics: a table and a loss curve (and a PNG with --plot).

    Without --backend, the backend the job was created on is used.
    """
    from finetune_qa.jobs import FineTuneJob
    from finetune_qa.plots import loss_curve, metrics_table, plot_metrics

    backend, base_url = job_backend(job_id, backend, base_url)
    with open_backend(backend, base_url) as be:
        job = FineTuneJob.attach(job_id, backend=be)
        points = job.metrics()
    if plot_path is not None:
        plot_metrics(points, plot_path, title=job.fine_tuned_model or job.id)
    if as_json:
        emit_lines(p.model_dump() for p in points)
        return
    if quiet:
        if plot_path is not None:
            click.echo(str(plot_path))
        return
    # the table shows the first and the last step at least
    out = metrics_table(points, max_rows=max(limit, 2)) + "\n\n" + loss_curve(points, ascii=ascii_)
    if plot_path is not None:
        out += f"\n\nplot written to {plot_path}"
    click.echo(out)


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@backend_options
@json_option("the job")
@quiet_option("the status")
def cancel(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """Cancel a job (without --backend, on the backend it was created on)."""
    backend, base_url = job_backend(job_id, backend, base_url)
    with open_backend(backend, base_url) as be:
        info = be.cancel_job(job_id)
    emit(job_json(info), as_json, lambda: job_panel(info), quiet=lambda: info.status)


@click.command(epilog=EXIT_HELP)
@click.option(
    "--limit", type=int, default=20, show_default=True, help="How many, newest first (1-100)."
)
@backend_options
@json_option("one job per line (JSON Lines)")
@quiet_option("the job ids")
def jobs(limit: int, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
    """List fine-tuning jobs, newest first: id, status, created, base model, fine-tuned model."""
    if not 1 <= limit <= 100:
        raise UsageError(f"--limit takes 1 to 100 (one page of the jobs list), got {limit}")
    backend, base_url = recent_backend(backend, base_url)
    with open_backend(backend, base_url) as be:
        found = be.list_jobs(limit=limit)
    if as_json:
        emit_lines(job_json(j) for j in found)
    elif quiet:
        for j in found:
            click.echo(j.id)
    elif not found:
        click.echo("no jobs")
    else:
        click.echo(table(JOB_HEADER, (_job_row(j) for j in found)))


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


JOB_HEADER = ("JOB", "STATUS", "CREATED", "MODEL", "FINE-TUNED MODEL")
"""The header of the `jobs` table."""


def _job_row(j: JobInfo) -> tuple[str, ...]:
    return (j.id, j.status, local_time(j.created_at), j.model, j.fine_tuned_model or "-")


def job_json(info: JobInfo) -> dict[str, Any]:
    """A job as ``--json`` prints it: the provider's raw record left out, times in ISO-8601."""
    return with_iso_times(info.model_dump(mode="json", exclude={"raw"}))


def job_panel(info: JobInfo) -> str:
    """A job as a small panel: one labelled line per fact, as ``status`` prints it."""
    files = f"training {info.training_file}"
    if info.validation_file:
        files += f", validation {info.validation_file}"
    if info.result_files:
        files += f", results {', '.join(info.result_files)}"
    tokens = f"{info.trained_tokens:,}" if info.trained_tokens is not None else "-"
    rows = [
        ("job", info.id),
        ("status", info.status),
        ("model", info.model),
        ("created", local_time(info.created_at)),
        ("finished", local_time(info.finished_at)),
        ("trained tokens", tokens),
        ("fine-tuned model", info.fine_tuned_model or "-"),
        ("files", files),
    ]
    if info.error_message:
        rows.append(("error", info.error_message))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _print_event(e: JobEvent, as_json: bool, quiet: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(with_iso_times(e.model_dump(mode="json"))).decode())
    elif quiet:
        click.echo(e.message)
    else:
        click.echo(f"{local_time(e.created_at)}  {e.level:<5} {e.message}")


def follow_job(job: Any, *, timeout: float | None, show: bool) -> None:
    """Follow a job: a progress bar on a terminal, plain lines elsewhere; one final line.

    Both show the step as N/M and an ETA once training reports steps, and end with the
    same label, ``job ID: STATUS``.
    """
    if not show:
        job.wait(timeout=timeout)
        return
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        _follow_with_bar(job, timeout)
    else:
        eta = _Eta()
        last_step = [0]

        def plain(e: JobEvent) -> None:
            d = e.data or {}
            if e.type == "metrics" and "step" in d:
                step, total = d["step"], d.get("total_steps") or 0
                left = eta.update(step, total, e.created_at)
                # one line per tenth of training, not one per step
                if (total and step * 10 // total > last_step[0] * 10 // total) or step == total:
                    click.echo(
                        f"  step {step}/{total or '?'}: training loss "
                        f"{d.get('train_loss', 0):.3f}, ETA {left}"
                    )
                last_step[0] = step
            else:
                click.echo(f"  {e.message}")

        job.wait(timeout=timeout, on_event=plain)
    click.echo(f"job {job.id}: {job.status}")


class _Eta:
    """Time left from the steps' own timestamps (the provider's clock, not this machine's)."""

    def __init__(self) -> None:
        self.start: tuple[int, int] | None = None

    def update(self, step: int, total: int, at: int) -> str:
        if self.start is None:
            self.start = (step, at)
            return "unknown"
        done, took = step - self.start[0], at - self.start[1]
        if step >= total > 0:
            return "0:00:00"
        if done <= 0 or took <= 0 or not total:
            return "unknown"
        seconds = round((total - step) * took / done)
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _follow_with_bar(job: Any, timeout: float | None) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
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
        progress.update(task, description=job.status)  # one final label, whatever came last
