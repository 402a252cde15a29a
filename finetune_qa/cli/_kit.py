"""CLI commands of the shutdown kit: ``finetune-qa inventory`` and ``finetune-qa record``.

Thin shells over
:func:`~finetune_qa.shutdown.inventory` and :func:`~finetune_qa.golden.record_answers`.
The third step, scoring a replacement against a recording, is ``finetune-qa eval
--against GOLDEN`` (:mod:`finetune_qa.cli._eval`).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from finetune_qa.cli._common import backend_options, json_option, open_backend, quiet_option
from finetune_qa.cli._eval import (
    EVAL_EXIT_HELP,
    Asker,
    progress_printer,
    sampling_options,
    suite_options,
    with_variations,
)
from finetune_qa.config import DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT, cache_dir
from finetune_qa.exceptions import FineTuneQAError, UsageError
from finetune_qa.shutdown import DEFAULT_INVENTORY_JOBS, FineTunedModel

if TYPE_CHECKING:
    from finetune_qa.golden import GoldenSet

__all__ = ["against_defaults", "check_against", "inventory_command", "record_command"]

_INVENTORY_EXIT_HELP = "Exit codes: 0 success, 1 the backend failed, 2 bad input or usage."


@click.command("inventory", epilog=_INVENTORY_EXIT_HELP)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Count days from this date (YYYY-MM-DD) [default: $FINETUNE_QA_TODAY or today; "
    "the offline backend's own clock].",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_INVENTORY_JOBS,
    show_default=True,
    help="How many of the newest jobs to read.",
)
@backend_options
@json_option("one model per line (JSON Lines)")
@quiet_option("the models' names")
def inventory_command(
    today: dt.datetime | None,
    limit: int,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """List every fine-tuned model of the account, with its end dates and days left.

    Models come from the succeeded jobs and, where the backend has one, the models API.
    The dates are the catalogue's for each base model: the last day new fine-tuning
    jobs can start and the day the model stops serving ('shut down' once passed).
    """
    from finetune_qa.shutdown import inventory

    with open_backend(backend, base_url) as be:
        items = inventory(be, today=today.date() if today else None, limit=limit)
    if as_json or quiet:
        for item in items:
            click.echo(item.model_dump_json() if as_json else item.model)
        return
    if not items:
        click.echo("no fine-tuned models")
        return
    click.echo(_inventory_table(items))
    first = items[0]
    if first.days_to_shutdown is not None and not first.shut_down:
        click.echo(
            f"\nsoonest: {first.model} stops serving on {first.shutdown_date} "
            f"({first.days_to_shutdown} days from {first.today}); record it first: "
            f"finetune-qa record {first.model} DATA"
        )


@click.command("record", epilog=EVAL_EXIT_HELP)
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("golden.jsonl"),
    show_default=True,
    help="The golden set file; an existing one of MODEL is resumed.",
)
@click.option(
    "--system-prompt",
    default=None,
    help="System message sent with every question ('' for none). Default: the one the "
    f"model was trained with (its model card), else {DEFAULT_SYSTEM_PROMPT!r}.",
)
@click.option(
    "--stop",
    default=None,
    help="Stop marker the model was trained with ('' for none). Default: the model "
    f"card's, else {DEFAULT_STOP!r}.",
)
@suite_options
@sampling_options
@backend_options
@json_option("the report")
@quiet_option("the golden set's path")
def record_command(
    model: str,
    data: Path,
    output: Path,
    system_prompt: str,
    stop: str,
    variations_file: Path | None,
    generate_variations: bool,
    variations_per_question: int,
    generator: str,
    variations_cache: Path | None,
    unrelated_file: Path | None,
    no_builtin_unrelated: bool,
    limit: int | None,
    seed: int,
    concurrency: int,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Record how MODEL answers the evaluation questions of DATA, as a golden set.

    DATA is what 'eval' takes (a QA file or training JSONL): its questions verbatim,
    their rephrasings (--variations or --generate-variations) and off-topic ones are
    asked, and every answer is kept in --output, saved as the answers arrive. Run the
    same command again to resume: only the questions not recorded yet (those that
    failed among them) are asked. Later, 'eval --against FILE --model NEW' scores a
    replacement against the recording.
    """
    from finetune_qa.evaluation import EvalSuite
    from finetune_qa.golden import record_answers

    if variations_file is not None and generate_variations:
        raise UsageError("use either --variations FILE or --generate-variations, not both")
    suite = EvalSuite.from_file(
        data,
        variations=variations_file,
        unrelated=unrelated_file,
        builtin_unrelated=not no_builtin_unrelated,
        limit=limit,
        seed=seed,
        stop=stop,
    )
    say = (lambda *a, **k: None) if (quiet or as_json) else click.echo
    with open_backend(backend, base_url) as be:
        asker = Asker(be, system_prompt, stop, quiet=quiet, say=say, show_card=False)
        if generate_variations:
            cache = variations_cache or cache_dir() / "eval-variations.jsonl"
            suite = with_variations(
                suite, asker.chat(generator), variations_per_question, cache, concurrency
            )
        counts = suite.counts()
        say(
            f"{len(suite)} questions: {counts['verbatim']} verbatim, "
            f"{counts['variations']} variations, {counts['unrelated']} unrelated"
        )
        show = sys.stderr.isatty() and not (quiet or as_json)
        report = record_answers(
            asker.chat(model, tell=True),
            suite,
            output,
            concurrency=concurrency,
            progress=progress_printer("questions") if show else None,
        )
    if as_json:
        click.echo(report.model_dump_json())
    elif quiet:
        click.echo(str(report.path))
    say(
        f"{report.path}: {report.total} answers of {report.model} ({report.backend}); "
        f"this run asked {report.asked} ({report.already} recorded before), "
        f"recorded {report.recorded}, {report.errors} failed"
    )
    if report.errors:
        raise FineTuneQAError(
            f"{report.errors} of {report.asked} questions failed (first: "
            f"{report.error_examples[0]}); run the same command again to ask them again"
        )


def against_defaults(
    golden: GoldenSet, system_prompt: str | None, stop: str | None
) -> tuple[str | None, str | None]:
    """``eval --against``: the recording's system prompt and stop marker, unless given.

    The replacement is asked as the recorded model was (a model trained on the same data
    expects the same system prompt), unless ``--system-prompt`` or ``--stop`` was given on
    the command line. A recording that does not know its system prompt changes nothing.
    """
    from click.core import ParameterSource

    ctx = click.get_current_context()
    header = golden.header
    if header.system_prompt is not None and (
        ctx.get_parameter_source("system_prompt") == ParameterSource.DEFAULT
    ):
        system_prompt = header.system_prompt
    if ctx.get_parameter_source("stop") == ParameterSource.DEFAULT:
        stop = header.stop[0] if header.stop else ""
    return system_prompt, stop


def check_against(**given: bool) -> None:
    """Refuse ``eval --against`` with options that build a suite from DATA.

    Args:
        **given: each option's name (as a keyword, ``_`` for ``-``) and whether it was given.
    """
    clash = [
        "DATA" if name == "data" else "--" + name.replace("_", "-")
        for name, on in given.items()
        if on
    ]
    if clash:
        raise UsageError(
            f"--against asks the questions of the golden set; {', '.join(clash)} build(s) a "
            "suite from DATA instead: leave them out (or drop --against)"
        )


def _inventory_table(items: Iterable[FineTunedModel]) -> str:
    """One line per model under a header line, columns aligned."""
    head = ("MODEL", "BASE", "CREATED", "NEW JOBS END", "SHUTDOWN", "STATUS")
    rows = [head]
    for it in items:
        rows.append(
            (
                it.model,
                it.base_model,
                it.created_at.date().isoformat() if it.created_at else "-",
                _date_and_days(
                    it.fine_tuning_ends, it.days_to_fine_tuning_end, it.fine_tuning_ended
                ),
                _date_and_days(it.shutdown_date, it.days_to_shutdown, it.shut_down),
                it.status,
            )
        )
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _date_and_days(date: dt.date | None, days: int | None, ended: bool) -> str:
    if date is None or days is None:
        return "-"
    return f"{date.isoformat()} ({'ended' if ended else f'{days} days left'})"
