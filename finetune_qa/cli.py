"""The ``finetune-qa`` command line: a thin shell over the public API.

Exit codes (every command):

* 0: success.
* 1: the command ran but found a problem (``validate`` found errors, a build wrote
  nothing), or an unexpected internal error.
* 2: bad input or usage: a missing or malformed file, an unknown option or model.

Errors are printed as one line on stderr (``error: <file>:<line>: <what> (<what to do>)``);
set ``FINETUNE_QA_DEBUG=1`` to get the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from finetune_qa._cli_eval import register as register_eval_commands
from finetune_qa._cli_export import register as register_export_commands
from finetune_qa._cli_generate import register as register_generate_commands
from finetune_qa._cli_guard import register as register_guard_commands
from finetune_qa._cli_jobs import Finite
from finetune_qa._cli_jobs import register as register_training_commands
from finetune_qa._cli_kit import register as register_kit_commands
from finetune_qa._fs import atomic_write, check_outputs
from finetune_qa._version import __version__
from finetune_qa.catalog import default_catalog
from finetune_qa.config import (
    DEFAULT_MIN_ANSWER_LENGTH,
    DEFAULT_MIN_QUESTION_LENGTH,
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULT_STOP,
    DEFAULT_SYSTEM_PROMPT,
)
from finetune_qa.exceptions import (
    ConfigError,
    DatasetError,
    FineTuneQAError,
    InputError,
    TokenizerError,
    UsageError,
)

if TYPE_CHECKING:
    from finetune_qa.evaluation import EvalResult

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

_EXIT_HELP = "Exit codes: 0 success, 1 problems found or failure, 2 bad input or usage."


class _Failure(Exception):
    """Raised by commands to end with exit code 1 after printing their output."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that every ``finally`` runs.

    The default action ends the process on the spot: temporary outputs stay behind and
    worker pools are never shut down. Raised as an interrupt, it unwinds like Ctrl-C.
    """


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EXIT_HELP,
)
@click.version_option(__version__, prog_name="finetune-qa")
def cli() -> None:
    """Build, validate and price QA fine-tuning data; train, follow and query the model."""


@cli.command(epilog=_EXIT_HELP)
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
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
        report = builder.build(
            output, validation_output=validation_output, model=use_model, require_training=True
        )
    except DatasetError as exc:
        if exc.report is not None and not quiet:
            click.echo(exc.report.to_json() if as_json else exc.report.to_text())
        raise
    if report_path is not None:
        _write_text(report_path, report.to_json())
    if not quiet:
        click.echo(report.to_json() if as_json else report.to_text(), nl=not as_json)
        if as_json:
            click.echo()
    if report.token_report is not None and not report.token_report.ok and not quiet:
        click.echo(
            "note: the training file was written, but it would fail validation "
            f"({', '.join(report.token_report.error_counts)}).",
            err=True,
        )


@cli.command(epilog=_EXIT_HELP)
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
    type=int,
    default=None,
    help="Epochs to price (OpenAI's default heuristic if omitted).",
)
@click.option(
    "--max-issues",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Issues of each kind listed with their line.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown.")
@click.option("--fail-on-warnings", is_flag=True, help="Exit 1 on warnings too.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def validate(
    path: Path,
    model: str,
    validation_path: Path | None,
    stop: str | None,
    epochs: int | None,
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
    report = validate_file(
        path,
        model=model,
        validation_path=validation_path,
        stop=stop,
        n_epochs=epochs,
        max_issues_per_kind=max_issues,
    )
    if not quiet:
        if as_json:
            click.echo(report.to_json())
        elif markdown:
            click.echo(report.to_markdown(), nl=False)
        else:
            click.echo(report.to_text(), nl=False)
    if not report.ok or (fail_on_warnings and report.warning_count):
        raise _Failure()


@cli.command(epilog=_EXIT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
def models(as_json: bool, quiet: bool) -> None:
    """List the models the catalogue knows: encoding, token limit, price and end dates."""
    cat = default_catalog()
    if quiet:
        return
    if as_json:
        import orjson

        data = [m.model_dump(mode="json") for m in cat]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    as_of = cat.as_of.isoformat() if cat.as_of else "unknown"
    click.echo(f"Model catalogue (figures as of {as_of})")
    rows = sorted(cat, key=lambda m: (m.provider, m.name))
    width = max([5, *(len(m.name) for m in rows)])
    click.echo(
        f"{'model':<{width}} {'provider':<9} {'encoding':<13} {'limit':>7} {'$/1M train':>10}  "
        f"{'jobs end':<10}  {'shutdown':<10}".rstrip()
    )
    estimated = False
    for m in rows:
        price = f"{m.training_price_per_1m:g}" if m.training_price_per_1m is not None else "?"
        enc = m.encoding if m.tokenizer_exact else m.encoding + "*"
        estimated = estimated or not m.tokenizer_exact
        ends, shutdown = m.fine_tuning_ends or "-", m.shutdown_date or "-"
        line = (
            f"{m.name:<{width}} {m.provider:<9} {enc:<13} {m.max_tokens_per_example:>7} "
            f"{price:>10}  {ends!s:<10}  {shutdown!s:<10}"
        )
        click.echo(line.rstrip())
    if estimated:
        click.echo("* the model has its own tokenizer: counts with this encoding are estimates")


@cli.command(epilog=_EXIT_HELP)
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
    type=click.Choice(["offline", "local"]),
    default="offline",
    show_default=True,
    help="offline: the simulated API; local: really train a model on this machine "
    "(needs finetune-qa[local]).",
)
def demo(workdir: Path, model: str | None, backend_name: str) -> None:
    """Run the whole lifecycle offline on a bundled sample, in seconds, with no key.

    With --backend local, the sample is really trained on this machine (TRL, in its own
    process) on a tiny model built from its text, then asked its training questions.

    Reads a fictional company's website QA export (seed layout, with the quirks real
    exports have), builds train and validation JSONL, validates and prices them, uploads
    and fine-tunes on the offline backend with live progress, asks the new model a
    training question, a variation and an unrelated question, then trains an on-topic
    question gate, asks again through it, and evaluates both side by side.
    """
    from finetune_qa._cli_jobs import follow_job, offline_state_path, open_backend
    from finetune_qa.chat import ChatModel
    from finetune_qa.dataset import DatasetBuilder
    from finetune_qa.evaluation import EvalSuite
    from finetune_qa.guardrails import Discriminator, GuardedChatModel
    from finetune_qa.jobs import FineTuneJob
    from finetune_qa.readers import read_qa
    from finetune_qa.samples import sample_csv
    from finetune_qa.validation import validate_file

    if backend_name == "local":
        from finetune_qa._cli_local import local_demo

        local_demo(workdir, model)
        return
    model = model or DEFAULT_MODEL
    system = "You are a factual chatbot that answers questions about Lumen Notes."
    src = sample_csv()
    train, val = workdir / "train.jsonl", workdir / "validation.jsonl"
    journal = workdir / "journal.jsonl"
    click.echo(
        f"1. Reading {src.name}: a website QA export in the seed layout "
        "(numbered lists in two cells)."
    )
    report = (
        DatasetBuilder(system_prompt=system)
        .add_source(src)
        .sample_validation(seed=DEFAULT_SEED)  # every pair trained on; copies to validate
        .build(train, validation_output=val)
    )
    click.echo(report.to_text())
    click.echo(f"2. Validating {train} against {model}, with {val} as the validation file.")
    vreport = validate_file(train, model=model, validation_path=val)
    click.echo(vreport.to_text())
    click.echo("3. Uploading and fine-tuning on the offline backend (no key, no network).")
    with open_backend("offline", None) as backend:
        job = FineTuneJob.create(
            train,
            model=model,
            backend=backend,
            validation_file=val,
            suffix="lumen",
            journal=journal,
        )
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
        bot = job.chat_model()
        assert isinstance(bot, ChatModel)
        questions = [
            ("a training question", "How do I reset my password?"),
            ("a variation", "What does Lumen Pro cost per month?"),
            ("an unrelated question", "What is Star Wars?"),
        ]
        for label, question in questions:
            answer = bot.ask(question)
            click.echo(f"   {label}: {question}\n     -> {answer.text}")
        click.echo(
            "   The unrelated question got a confident answer too: that is what the on-topic "
            "guardrails are for."
        )
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
        for label, question in questions:
            verdict = guarded.ask(question)
            click.echo(f"   {label}: {question}\n     -> {verdict.text}")
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
    click.echo("7. Files:")
    click.echo(
        f"   {train}, {val} (training data), {journal} (uploads and jobs), "
        f"{workdir / 'report.html'} (evaluation)"
    )
    click.echo(f"   offline API state: {offline_state_path()}")
    click.echo("Next:")
    click.echo(
        f'  finetune-qa ask {job.fine_tuned_model} "Who makes Lumen Notes?" --backend offline'
    )
    click.echo("  finetune-qa build YOUR_QA.csv -o train.jsonl --validation validation.jsonl")
    click.echo(
        f"  OPENAI_API_KEY=... finetune-qa train YOUR_QA.csv --model {model}   "
        "# the same steps on OpenAI"
    )


register_training_commands(cli)
register_eval_commands(cli)
register_export_commands(cli)
register_generate_commands(cli)
register_guard_commands(cli)
register_kit_commands(cli)


def _pct(result: EvalResult, set_name: str) -> str:
    """The answered rate of one set, as a percentage."""
    value = result.sets[set_name].scores.get("answered")
    return "n/a" if value is None else f"{value:.0%}"


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file beside it, then rename), owner-only."""
    atomic_write(path, text, mode=0o600, problem="cannot write", hint="choose a writable path")


def _one_line(text: str) -> str:
    """``text`` on one line: a line break (in a file name, say) is shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of exiting (``sys.exit(main())``)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        # with standalone_mode=False click *returns* the code of a raised Exit(n)
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="finetune-qa",
            standalone_mode=False,
        )
    except _Failure:
        return EXIT_FAILURE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, _Terminated):  # click turns interrupts into Abort
            click.echo("terminated", err=True)
            return 128 + signal.SIGTERM
        click.echo("aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())} (see --help)", err=True)
        return EXIT_BAD_INPUT
    except (InputError, UsageError, ConfigError) as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        return EXIT_BAD_INPUT
    except DatasetError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        return EXIT_FAILURE
    except (TokenizerError, FineTuneQAError) as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        return EXIT_FAILURE
    except _Terminated:
        click.echo("terminated", err=True)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("FINETUNE_QA_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set FINETUNE_QA_DEBUG=1 for a traceback, and please report it)",
            err=True,
        )
        return EXIT_FAILURE
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
