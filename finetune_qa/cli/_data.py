"""The data commands: ``build``, ``validate`` and ``models``.

Thin shells over :class:`~finetune_qa.dataset.DatasetBuilder`,
:func:`~finetune_qa.validation.validate_file` and the model catalogue.
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import click
import orjson

from finetune_qa.catalog import default_catalog
from finetune_qa.cli._common import (
    EPOCHS,
    EXIT_HELP,
    MAX_EPOCHS,
    Failure,
    Finite,
    backend_options,
    check_epochs_for,
    check_outputs,
    compact_json,
    emit,
    emit_lines,
    json_option,
    open_backend,
    quiet_option,
    table,
    write_text,
)
from finetune_qa.config import (
    DEFAULT_MIN_ANSWER_LENGTH,
    DEFAULT_MIN_QUESTION_LENGTH,
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULT_STOP,
    DEFAULT_SYSTEM_PROMPT,
    today,
)
from finetune_qa.exceptions import DatasetError, UsageError

__all__ = ["build", "models", "validate"]


@click.command(epilog=EXIT_HELP)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Training JSONL to write.",
)
@click.option(
    "--validation",
    "validation_output",
    type=click.Path(path_type=Path),
    help="Validation JSONL to write: copies of 10% of the training examples (every pair "
    "is still trained on), or the held-out share of --validation-fraction.",
)
@click.option(
    "--validation-fraction",
    type=Finite(min=0, max=0.5),
    default=None,
    help="Share of distinct questions held OUT of training for --validation (exact).",
)
@click.option(
    "--system-prompt",
    default=None,
    help="System message of every example ('' for none). Default: the one a chat JSONL "
    f"input carries, else {DEFAULT_SYSTEM_PROMPT!r}.",
)
@click.option(
    "--stop",
    default=None,
    help="Stop marker appended to every answer ('' for none). Default: the one a chat "
    f"JSONL input's answers end with, else {DEFAULT_STOP!r}.",
)
@click.option(
    "--min-question-length",
    type=int,
    default=DEFAULT_MIN_QUESTION_LENGTH,
    show_default=True,
    help="Shortest question kept, in characters.",
)
@click.option(
    "--min-answer-length",
    type=int,
    default=DEFAULT_MIN_ANSWER_LENGTH,
    show_default=True,
    help="Shortest answer kept, in characters.",
)
@click.option("--no-dedupe", is_flag=True, help="Keep repeated questions.")
@click.option(
    "--seed",
    type=click.IntRange(-(2**63), 2**63 - 1),
    default=DEFAULT_SEED,
    show_default=True,
    help="Seed of the train/validation split.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl"]),
    default="auto",
    show_default=True,
    help="Input format.",
)
@click.option("--question-column", default=None, help="Column (or JSON key) holding questions.")
@click.option("--answer-column", default=None, help="Column (or JSON key) holding answers.")
@click.option(
    "--strict", is_flag=True, help="Fail on a seed-layout row whose lists differ in length."
)
@click.option(
    "--model",
    default=None,
    help=f"Model whose encoding, limit and price to report (default {DEFAULT_MODEL}; "
    "ignored with --no-tokens).",
)
@click.option(
    "--report-tokens/--no-tokens",
    "report_tokens",
    default=True,
    show_default=True,
    help="Count tokens and price the training file in the same pass.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the build report as JSON here.",
)
@click.option(
    "--augment",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Add K rephrasings of each question (same answer, same side of the split), "
    "written by --writer on --backend; cached, so a re-run asks nothing.",
)
@click.option(
    "--writer",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model that writes the rephrasings (with --augment).",
)
@backend_options
@json_option("the report")
@quiet_option("the paths written, one per line")
def build(
    inputs: tuple[Path, ...],
    output: Path,
    validation_output: Path | None,
    validation_fraction: float | None,
    system_prompt: str | None,
    stop: str | None,
    min_question_length: int,
    min_answer_length: int,
    no_dedupe: bool,
    seed: int,
    fmt: str,
    question_column: str | None,
    answer_column: str | None,
    strict: bool,
    model: str | None,
    report_tokens: bool,
    report_path: Path | None,
    augment: int,
    writer: str,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Build training (and validation) JSONL from QA files: seed CSV, pair CSV or JSONL.

    Every pair read is kept or dropped with a reason; the report says which, with
    examples. Files are written atomically: on an error nothing is written.
    """
    from finetune_qa.dataset import DatasetBuilder

    if validation_fraction is not None and validation_fraction > 0 and validation_output is None:
        raise UsageError("--validation-fraction needs --validation PATH for the validation file")
    builder = DatasetBuilder(
        min_question_length=min_question_length,
        min_answer_length=min_answer_length,
        dedupe=not no_dedupe,
    )
    if system_prompt is not None:
        builder.with_system_prompt(system_prompt)
    if stop is not None:
        builder.with_stop(stop)
    if validation_fraction is not None:
        builder.split(validation_fraction, seed=seed)
    elif validation_output is not None:
        builder.sample_validation(seed=seed)
    for path in inputs:
        builder.add_source(
            path,
            format=fmt,  # type: ignore[arg-type]
            question_column=question_column,
            answer_column=answer_column,
            strict=strict,
        )
    # the one output rule, for every output before any is written
    check_outputs(
        {"-o": output, "--validation": validation_output, "--report": report_path}, inputs
    )
    use_model = (model or DEFAULT_MODEL) if report_tokens else None
    try:
        with ExitStack() as stack:
            if augment:
                from finetune_qa.chat import ChatModel

                be = stack.enter_context(open_backend(backend, base_url))
                builder.augment_with(augment, writer=ChatModel(writer, backend=be))
            report = builder.build(
                output, validation_output=validation_output, model=use_model, require_training=True
            )
    except DatasetError as exc:
        if exc.report is not None and (as_json or not quiet):
            click.echo(compact_json(exc.report.to_json()) if as_json else exc.report.to_text())
        raise
    if report_path is not None:
        write_text(report_path, report.to_json())
    written = [report.output, report.validation_output, report_path]
    emit(
        orjson.loads(report.to_json()),
        as_json,
        report.to_text,
        quiet=lambda: "\n".join(str(p) for p in written if p),
    )
    if report.token_report is not None and not report.token_report.ok and not quiet:
        click.echo(
            "note: the training file was written, but it would fail validation "
            f"({', '.join(report.token_report.error_counts)}).",
            err=True,
        )


@click.command(epilog=EXIT_HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model (ft: names allowed) whose encoding, limit and price to use.",
)
@click.option(
    "--validation",
    "validation_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Validation JSONL to check and compare.",
)
@click.option(
    "--stop", default=None, help="Stop marker the answers should end with (detected if omitted)."
)
@click.option(
    "--epochs",
    type=EPOCHS,
    default="auto",
    show_default=True,
    help=f"Epochs to price, 1-{MAX_EPOCHS} or auto (OpenAI's heuristic for the file's size).",
)
@click.option(
    "--max-issues",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Issues of each kind listed with their line.",
)
@json_option("the report")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown.")
@click.option("--fail-on-warnings", is_flag=True, help="Exit 1 on warnings too.")
@quiet_option("errors (the exit code says whether the file passed)")
def validate(
    path: Path,
    model: str,
    validation_path: Path | None,
    stop: str | None,
    epochs: int | Literal["auto"],
    max_issues: int,
    as_json: bool,
    markdown: bool,
    fail_on_warnings: bool,
    quiet: bool,
) -> None:
    """Check a chat fine-tuning JSONL: format errors by line, exact tokens, limits and cost.

    Exits 1 when the file has errors (or warnings, with --fail-on-warnings).
    """
    from finetune_qa.validation import validate_file

    if as_json and markdown:
        raise UsageError("--json and --markdown each choose the output format: pass one")
    check_epochs_for(epochs, MAX_EPOCHS)
    report = validate_file(
        path,
        model=model,
        validation_path=validation_path,
        stop=stop,
        n_epochs=None if epochs == "auto" else epochs,
        max_issues_per_kind=max_issues,
    )
    if as_json:
        click.echo(compact_json(report.to_json()))
    elif quiet:
        pass
    elif markdown:
        click.echo(report.to_markdown(), nl=False)
    else:
        click.echo(report.to_text(), nl=False)
    if not report.ok or (fail_on_warnings and report.warning_count):
        raise Failure()


@click.command(epilog=EXIT_HELP)
@json_option("one model per line (JSON Lines)")
@quiet_option("the model names")
def models(as_json: bool, quiet: bool) -> None:
    """List the models the catalogue knows: encoding, token limit, price and end dates.

    An end date already past is marked "ended" (judged on $FINETUNE_QA_TODAY or today).
    """
    cat = default_catalog()
    rows = sorted(cat, key=lambda m: (m.provider, m.name))
    if as_json:
        emit_lines(m.model_dump(mode="json") for m in rows)
        return
    if quiet:
        for m in rows:
            click.echo(m.name)
        return
    as_of = cat.as_of.isoformat() if cat.as_of else "unknown"
    click.echo(f"Model catalogue (figures as of {as_of})")
    now = today()
    cells = []
    for m in rows:
        price = f"{m.training_price_per_1m:g}" if m.training_price_per_1m is not None else "?"
        enc = m.encoding if m.tokenizer_exact else m.encoding + "*"
        cells.append(
            (
                m.name,
                m.provider,
                enc,
                str(m.max_tokens_per_example),
                price,
                _end(
                    m.fine_tuning_ends, m.fine_tuning_ends is not None and m.fine_tuning_ends < now
                ),
                _end(m.shutdown_date, m.shutdown_date is not None and m.shutdown_date <= now),
            )
        )
    head = ("model", "provider", "encoding", "limit", "$/1M train", "jobs end", "shutdown")
    click.echo(table(head, cells))
    if any(not m.tokenizer_exact for m in rows):
        click.echo("* the model has its own tokenizer: counts with this encoding are estimates")


def _end(date: dt.date | None, ended: bool) -> str:
    """An end date as the table shows it: "ended 2026-10-23" once passed.

    Passed as the catalogue judges it: no new jobs after the last day; no answers from
    the shutdown day on.
    """
    if date is None:
        return "-"
    return f"ended {date.isoformat()}" if ended else date.isoformat()
