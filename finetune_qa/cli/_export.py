"""CLI commands for leaving hosted fine-tuning: ``export`` (Hugging Face files) and ``migrate``.

``migrate`` opens both backends with :func:`~finetune_qa.cli._common.open_backend`; when
``--from`` and ``--to`` name the same backend, one connection serves both (for
``offline``, the one persisted API state the other commands use).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import click

from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.cli._common import (
    EPOCHS,
    EXIT_HELP,
    JOB_ID,
    MAX_EPOCHS,
    Finite,
    check_epochs_for,
    emit,
    emit_lines,
    json_option,
    open_backend,
    output_option,
    quiet_option,
    remember_job,
)
from finetune_qa.cli._jobs import local_options, local_training_options
from finetune_qa.exceptions import ConfigError, UnknownBackendError
from finetune_qa.export import ExportFormat, export_splits

__all__ = ["export", "migrate"]


@click.command(epilog=EXIT_HELP)
@click.argument("train", type=click.Path(path_type=Path))
@click.argument("validation", required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "jsonl"]),
    default="parquet",
    show_default=True,
    help="Parquet (needs finetune-qa[hf]) or JSON lines.",
)
@output_option(
    "Directory to write train.<ext> (and validation.<ext>) into.",
    old="--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
)
@json_option("one report per split (JSON Lines)")
@quiet_option("the paths written")
def export(
    train: Path,
    validation: Path | None,
    fmt: ExportFormat,
    output: Path,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write chat JSONL as a Hugging Face dataset (a `messages` column) for TRL or axolotl.

    Load the result with datasets.load_dataset("parquet", data_dir=DIR).
    """
    splits: list[tuple[str, Path]] = [("train", train)]
    if validation is not None:
        splits.append(("validation", validation))
    # every input is checked before anything is written; the directory is made only
    # then (by the atomic writer, whose OS errors become one-line InputFileErrors)
    out_dir = output
    reports = export_splits(splits, out_dir, format=fmt)
    builder = "json" if fmt == "jsonl" else "parquet"

    def text() -> str:
        body = "".join(r.to_text() for r in reports)  # each ends with a newline
        return body + (
            f'load with: datasets.load_dataset("{builder}", data_dir="{out_dir}")'
            if fmt == "parquet"
            else 'load with: datasets.load_dataset("json", data_files={'
            + ", ".join(f'"{r.split}": "{r.path}"' for r in reports)
            + "})"
        )

    if as_json:
        emit_lines(r.model_dump(mode="json") for r in reports)
    else:
        emit(None, False, text, quiet=lambda: "\n".join(str(r.path) for r in reports))


@click.command(epilog=EXIT_HELP)
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--to",
    "to",
    required=True,
    help="Backend to move to: together, offline, openai, or a registered name.",
)
@click.option(
    "--from",
    "from_",
    default="openai",
    show_default=True,
    help="Backend the job ran on.",
)
@click.option("--model", default=None, help="Target base model (default: the suggested mapping).")
@click.option(
    "--epochs",
    type=EPOCHS,
    default=None,
    help=f"Epochs for the new job, 1-{MAX_EPOCHS} (local: 1-{LOCAL_MAX_EPOCHS}) or auto "
    "[default: the source job's].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Download, validate and print the plan; send nothing (with the target's key set, "
    "its limits are read and checked).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the downloaded files and the journal go [default: finetune-qa-migrate/JOB_ID].",
)
@click.option(
    "--wait/--no-wait", default=False, show_default=True, help="Follow the new job to its end."
)
@click.option(
    "--timeout",
    type=Finite(min=0),
    default=None,
    help="With --wait, stop following after this many seconds (the job goes on).",
)
@local_training_options
@json_option("the plan and job")
@quiet_option("the new job's id")
def migrate(
    job_id: str,
    to: str,
    from_: str,
    model: str | None,
    epochs: int | Literal["auto"] | None,
    dry_run: bool,
    workdir: Path | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    quiet: bool,
    **local: Any,
) -> None:
    """Start the equivalent of a fine-tuning job on another backend (OpenAI -> Together).

    Reads the job's files and settings on --from, validates the files for the target
    model, maps the model and hyperparameters, and starts the job on --to. Safe to
    run again: the same workdir attaches to the job already started. With --to local
    the job trains an open model on this machine (--model: a Hugging Face id or model
    directory; the local-only options apply).
    """
    from finetune_qa.migration import max_epochs
    from finetune_qa.migration import migrate as run_migration

    check_epochs_for(epochs, max_epochs(to))
    provider_options = local_options(to, local)
    with ExitStack() as stack:
        source = stack.enter_context(open_backend(from_, None))
        # one backend for both sides when they are the same: two handles on the
        # offline state would each save their own copy and lose the other's changes
        target: Any = source if to == from_ else to
        if target is to and not (dry_run and to == "offline"):
            try:
                target = stack.enter_context(open_backend(to, None))
            except (ConfigError, UnknownBackendError):
                if not dry_run:
                    raise
                # no key (or not registered here): a dry run still plans by name,
                # without the target's own limits
        result = run_migration(
            job_id,
            source=source,
            target=target,
            model=model,
            n_epochs=epochs,
            dry_run=dry_run,
            workdir=workdir,
            wait=wait,
            timeout=timeout,
            provider_options=provider_options or None,
        )
    plan = result.plan
    if dry_run:
        emit(
            result.model_dump(mode="json", exclude={"job"}),
            as_json,
            lambda: result.to_text().rstrip("\n"),
        )
        if not plan.ok:
            raise click.exceptions.Exit(1)
        return
    job = result.job
    assert job is not None

    def text() -> str:
        follow = f"\nfollow it: finetune-qa events {job.id} --backend {to} --follow"
        return result.to_text().rstrip("\n") + ("" if job.done else follow)

    remember_job(job.id, to, None)  # so that `status JOB` needs no --backend
    emit(
        result.model_dump(mode="json", exclude={"job": {"raw"}}),
        as_json,
        text,
        quiet=lambda: job.id,
    )
    if job.status in ("failed", "cancelled"):
        raise click.exceptions.Exit(1)
