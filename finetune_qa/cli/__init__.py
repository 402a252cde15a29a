"""The ``finetune-qa`` command line: a thin shell over the public API.

The group and :func:`main` live here; each command group is a module of this package
(``_data``: build, validate, models; ``_demo``; ``_jobs``; ``_chat``: ask, serve;
``_eval``; ``_guard``; ``_generate``; ``_export``: export, migrate; ``_kit``: inventory,
record), and what they share is in ``_common``.

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

import click

from finetune_qa.cli._chat import ask, serve
from finetune_qa.cli._common import EXIT_HELP, VERSION, Failure, one_line
from finetune_qa.cli._data import build, models, validate
from finetune_qa.cli._demo import demo
from finetune_qa.cli._eval import eval_command
from finetune_qa.cli._export import export, migrate
from finetune_qa.cli._generate import generate
from finetune_qa.cli._guard import guard
from finetune_qa.cli._jobs import cancel, events, jobs, metrics, status, train, upload
from finetune_qa.cli._kit import inventory_command, record_command
from finetune_qa.exceptions import (
    ConfigError,
    DatasetError,
    FineTuneQAError,
    InputError,
    TokenizerError,
    UsageError,
)

__all__ = ["cli", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that every ``finally`` runs.

    The default action ends the process on the spot: temporary outputs stay behind and
    worker pools are never shut down. Raised as an interrupt, it unwinds like Ctrl-C.
    """


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


@click.group(
    "finetune-qa",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_HELP,
)
@click.version_option(VERSION, prog_name="finetune-qa")
def cli() -> None:
    """Build, validate and price QA fine-tuning data; train, follow and query the model."""


for _command in (
    build,
    validate,
    models,
    demo,
    upload,
    train,
    status,
    events,
    metrics,
    cancel,
    jobs,
    ask,
    serve,
    eval_command,
    export,
    migrate,
    generate,
    guard,
    inventory_command,
    record_command,
):
    cli.add_command(_command)


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
    except Failure:
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
        click.echo(f"error: {one_line(exc.format_message())} (see --help)", err=True)
        return EXIT_BAD_INPUT
    except (InputError, UsageError, ConfigError) as exc:
        click.echo(f"error: {one_line(str(exc))}", err=True)
        return EXIT_BAD_INPUT
    except DatasetError as exc:
        click.echo(f"error: {one_line(str(exc))}", err=True)
        return EXIT_FAILURE
    except (TokenizerError, FineTuneQAError) as exc:
        click.echo(f"error: {one_line(str(exc))}", err=True)
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
