"""What every command shares: opening a backend, printing output, the option types.

Also the one place the CLI reaches into the package's private modules (the offline API's
state, the HTTP server, the local backend's serving and dependency check, the file
helpers): every other CLI module imports them from here, so a move inside the package
is a change to this file only.

With ``--backend offline`` the offline API's state (files, jobs, models) is kept between
commands in one file (:func:`offline_state_path`), so ``train`` then ``status`` then
``ask`` work as they would against OpenAI. The backend a job was created on is
remembered in the journal (:func:`remember_job`), so ``status JOB`` needs no ``--backend``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from finetune_qa._fs import atomic_write, check_outputs, file_lock, same_file
from finetune_qa._limits import MAX_EPOCHS, MULTIPART_THRESHOLD, parse_epochs
from finetune_qa._version import __version__ as VERSION
from finetune_qa.backends import Backend, get_backend
from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.exceptions import ConfigError, InputFileError, UsageError

if TYPE_CHECKING:
    from finetune_qa.jobs import Journal

__all__ = [
    "EPOCHS",
    "EXIT_HELP",
    "FINITE",
    "JOB_ID",
    "MAX_EPOCHS",
    "MULTIPART_THRESHOLD",
    "VERSION",
    "AliasOption",
    "Epochs",
    "Failure",
    "Finite",
    "JobId",
    "backend_options",
    "check_epochs_for",
    "check_outputs",
    "compact_json",
    "emit",
    "emit_lines",
    "iso_time",
    "job_backend",
    "json_option",
    "local_chat_api",
    "local_time",
    "offline_state_path",
    "one_line",
    "open_backend",
    "output_option",
    "quiet_option",
    "remember_job",
    "require_local",
    "run_server",
    "same_file",
    "stdin_lines",
    "table",
    "with_iso_times",
    "write_text",
]

EXIT_HELP = "Exit codes: 0 success, 1 problems found or failure, 2 bad input or usage."
"""The epilog of every command's ``--help`` (commands with other codes say theirs)."""


class Failure(Exception):
    """Raised by commands to end with exit code 1 after printing their output."""


# ------------------------------------------------------------------ option types


class Finite(click.FloatRange):
    """A float option that refuses ``nan`` and ``inf`` (``float()`` accepts both).

    A NaN passes every range check (each comparison is false): ``--timeout nan`` waited
    forever and ``serve --speedup nan`` answered every upload with a 500.
    """

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


FINITE = Finite()
"""Any finite float."""


class JobId(click.ParamType[str]):
    """A job id: 1-200 printable characters, no space or slash (it goes into a URL path)."""

    name = "job_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text:
            self.fail("is empty; pass a job id such as ftjob-abc123 (see `finetune-qa jobs`)")
        if len(text) > 200:
            self.fail(f"is {len(text):,} characters long; job ids are short, e.g. ftjob-abc123")
        if not text.isprintable() or any(c in text for c in " /\\?#%"):
            self.fail(f"{text[:40]!r} is not a job id (e.g. ftjob-abc123; see `finetune-qa jobs`)")
        return text


JOB_ID = JobId()
"""The type of every JOB_ID argument."""


class Epochs(click.ParamType[Any]):
    """``--epochs``: ``auto`` or a whole number from 1, read the same by every command.

    The cap depends on the backend (50 on hosted ones, 1000 on the local trainer), so the
    command that knows its backend checks it with :func:`check_epochs_for`.
    """

    name = "auto|1-N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            return parse_epochs(str(value), most=sys.maxsize)
        except ValueError:
            self.fail(
                f"--epochs takes 1 to {MAX_EPOCHS} (local: 1 to {LOCAL_MAX_EPOCHS}) or 'auto', "
                f"got {value}",
                param,
                ctx,
            )


EPOCHS = Epochs()
"""The type of every ``--epochs``."""


def check_epochs_for(value: int | str | None, most: int) -> None:
    """Refuse an epoch count over a backend's cap, in the CLI's words."""
    if isinstance(value, int) and not 1 <= value <= most:
        raise UsageError(f"--epochs takes 1 to {most} or 'auto', got {value}")


# ------------------------------------------------------------------ shared options


def backend_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--backend and --base-url on a command."""
    f = click.option(
        "--base-url",
        default=None,
        help="OpenAI-compatible server for --backend openai (e.g. a `finetune-qa serve` URL).",
    )(f)
    return click.option(
        "--backend",
        default=lambda: os.environ.get("FINETUNE_QA_BACKEND", "openai"),
        show_default="openai, or $FINETUNE_QA_BACKEND",
        help="Who trains and serves: openai, offline, or a registered name.",
    )(f)


def json_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json`` (``what``: what is printed as JSON, e.g. "the report")."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def quiet_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-q/--quiet``, with its one meaning: print only the essential result (``what``)."""
    return click.option("-q", "--quiet", is_flag=True, help=f"Print only {what}; no progress.")


class AliasOption(click.Option):
    """An option whose old spellings (``hidden_aliases``) still work but are not in ``--help``.

    ``generate --out`` became ``-o/--output``: scripts that pass ``--out`` keep working.
    """

    def __init__(self, *args: Any, hidden_aliases: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = self.opts
        self.opts = [o for o in shown if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def output_option(
    help_text: str, *, old: str | None = None, dest: str = "output", **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output`` for a written file; ``old``: an earlier spelling, kept hidden."""
    names = ["-o", "--output", *([old] if old else []), dest]
    return click.option(
        *names, cls=AliasOption, hidden_aliases=[old] if old else [], help=help_text, **kwargs
    )


# ------------------------------------------------------------------ output


def emit(
    data: Any,
    as_json: bool,
    text: Callable[[], str],
    *,
    quiet: Callable[[], str | None] | None = None,
) -> None:
    """Print a command's output: ``data`` as one JSON object on one line, or ``text()``.

    With ``-q`` (and no ``--json``) only ``quiet()`` is printed, the command's essential
    result (an id, a path), or nothing when it has none.
    """
    ctx = click.get_current_context(silent=True)
    if as_json:
        click.echo(orjson.dumps(data).decode())
    elif ctx is not None and ctx.params.get("quiet"):
        line = quiet() if quiet is not None else None
        if line:
            click.echo(line)
    else:
        click.echo(text())


def compact_json(text: str) -> str:
    """A JSON document (a library's ``to_json()``) on one line."""
    return orjson.dumps(orjson.loads(text)).decode()


def emit_lines(items: Iterable[Any]) -> None:
    """Print JSON Lines: one compact object per line (streams and batches)."""
    for item in items:
        click.echo(orjson.dumps(item).decode())


def iso_time(value: int | float | dt.datetime | None) -> str | None:
    """A time as ISO-8601 in UTC (what ``--json`` prints), or None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


TIME_FIELDS = ("created_at", "finished_at", "estimated_finish")
"""The fields of the API's records that hold Unix times."""


def with_iso_times(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its Unix times (``created_at``, ...) as ISO-8601, as ``--json`` prints."""
    return {
        k: iso_time(v) if k in TIME_FIELDS and isinstance(v, int | float) else v
        for k, v in record.items()
    }


def local_time(value: int | float | dt.datetime | None) -> str:
    """A time as a person reads it in a table: local, to the second, or ``-``."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    else:
        when = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Columns aligned under a header line (the last column left ragged)."""
    lines = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(r[k]) for r in lines) for k in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file beside it, then rename), owner-only."""
    atomic_write(path, text, mode=0o600, problem="cannot write", hint="choose a writable path")


def one_line(text: str) -> str:
    """``text`` on one line: a line break (in a file name, say) is shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def stdin_lines(what: str) -> Iterator[str]:
    """Non-blank lines of standard input, stripped; UsageError on bytes that are not UTF-8."""
    stream: Iterable[bytes | str] = getattr(sys.stdin, "buffer", None) or sys.stdin
    for n, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            text.encode("utf-8")  # a text stream may hold surrogates for undecodable bytes
        except UnicodeError:
            raise UsageError(
                f"standard input line {n} is not UTF-8 text; pass {what} as UTF-8 text, "
                "one per line"
            ) from None
        line = text.strip()
        if line:
            yield line


# ------------------------------------------------------------------ backends


def offline_state_path() -> Path:
    """Where the CLI keeps the offline API's state between commands: in the project.

    ``.finetune-qa/offline-api.json`` under the current directory (so jobs of different
    projects never mix), or ``$FINETUNE_QA_OFFLINE_STATE``.
    """
    from finetune_qa.backends.offline import state_path

    return state_path()


@contextmanager
def open_backend(name: str, base_url: str | None) -> Iterator[Backend]:
    """The backend for one command; the offline API's state is loaded and saved around it."""
    if name == "offline":
        with _offline_backend() as backend:
            yield backend
        return
    if name == "openai" and base_url:
        from finetune_qa.backends import OpenAIBackend

        yield OpenAIBackend(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "none")
        return
    yield get_backend(name)


@contextmanager
def _offline_backend() -> Iterator[Backend]:
    from finetune_qa.backends import OfflineBackend
    from finetune_qa.backends.offline import load_state, save_state, words_from_environment

    path = offline_state_path()

    def waiting() -> None:
        click.echo(
            f"waiting for another finetune-qa command that uses the offline state ({path})",
            err=True,
        )

    # load, use and save under one lock: concurrent commands would each load the same
    # state and the last save would drop the others' files and jobs
    with file_lock(path.parent, on_wait=waiting, directory=True):
        fake = load_state(path)
        # the environment decides for every command (models keep what they were trained with)
        backend = OfflineBackend(fake, word_knowledge=words_from_environment())
        try:
            yield backend
        finally:
            try:
                save_state(fake, path)
            except OSError as exc:
                raise InputFileError(
                    f"cannot save the offline API's state ({exc.strerror or exc})",
                    path=path,
                    hint="point FINETUNE_QA_OFFLINE_STATE or FINETUNE_QA_CACHE_DIR at a "
                    "writable place",
                ) from exc


def run_server(*args: Any, **kwargs: Any) -> None:
    """The offline API's HTTP server (``serve``)."""
    from finetune_qa.testing import run_server as run

    run(*args, **kwargs)


def local_chat_api(model: str, on_request: Callable[[str], None] | None) -> Any:
    """A local model's chat API for ``serve --model``, warmed up."""
    from finetune_qa.backends.local import LocalBackend
    from finetune_qa.backends.local._serve import LocalChatAPI

    api = LocalChatAPI(LocalBackend(), model, on_request=on_request)
    api.warm()
    return api


def require_local() -> None:
    """Refuse, with how to install it, when the ``local`` extra is missing."""
    from finetune_qa.backends.local._deps import require

    require()


# ------------------------------------------------------------------ remembered backends


def _cli_journal() -> Journal:
    """The machine's journal (``<cache dir>/journal.jsonl``), where the CLI notes job backends."""
    from finetune_qa.jobs import Journal

    return Journal()


def remember_job(job_id: str, backend: str, base_url: str | None) -> None:
    """Note in the journal which backend (and server) ``job_id`` was created on.

    Best effort: the job exists whatever happens here, so a journal that cannot be written
    costs a note on standard error (and ``--backend`` on the next commands), not a failure.
    """
    record = {
        "op": "job",
        "state": "cli-backend",
        "job_id": job_id,
        "backend": backend,
        "base_url": base_url,
    }
    try:
        _cli_journal().append(record)
    except (InputFileError, ConfigError) as exc:
        click.echo(
            f"note: cannot note the job's backend in the journal ({exc}); "
            f"pass --backend {backend} to status, events, metrics and cancel",
            err=True,
        )


def _from_label(label: str) -> tuple[str, str | None]:
    """A journal's backend label ("offline:...", "openai:https://...") as --backend, --base-url."""
    name, _, where = label.partition(":")
    if name == "openai" and where and "api.openai.com" not in where:
        return name, where
    return name, None


def _backend_given(base_url: str | None) -> bool:
    """Whether this command's backend was chosen: --backend, $FINETUNE_QA_BACKEND, --base-url."""
    ctx = click.get_current_context(silent=True)
    given = ctx is not None and (
        ctx.get_parameter_source("backend") is not click.core.ParameterSource.DEFAULT
    )
    return given or base_url is not None or bool(os.environ.get("FINETUNE_QA_BACKEND"))


def _journal_records(**match: Any) -> list[dict[str, Any]]:
    """The machine journal's job records matching ``match`` (none when it cannot be read)."""
    try:
        return _cli_journal().find(op="job", **match)
    except (InputFileError, ConfigError):
        return []  # an unreadable journal: the default, as before


def _remembered(rec: dict[str, Any]) -> tuple[str, str | None] | None:
    if rec.get("state") == "cli-backend" and isinstance(rec.get("backend"), str):
        url = rec.get("base_url")
        return rec["backend"], url if isinstance(url, str) else None
    if isinstance(rec.get("backend"), str):
        return _from_label(rec["backend"])
    return None


def job_backend(job_id: str, backend: str, base_url: str | None) -> tuple[str, str | None]:
    """The backend to reach ``job_id`` on: ``--backend`` when given, else the remembered one.

    ``--backend`` (or ``$FINETUNE_QA_BACKEND``, or ``--base-url``) given explicitly wins;
    otherwise the journal's latest record of the job names the backend it was created on.
    """
    if _backend_given(base_url):
        return backend, base_url
    for rec in reversed(_journal_records(job_id=job_id)):
        found = _remembered(rec)
        if found is not None:
            return found
    return backend, base_url


def recent_backend(backend: str, base_url: str | None) -> tuple[str, str | None]:
    """For commands about no job in particular (``jobs``): the backend of the latest job.

    ``--backend`` given explicitly wins; otherwise the backend the CLI last created a job
    on (a note on standard error says so), else the default.
    """
    if _backend_given(base_url):
        return backend, base_url
    for rec in reversed(_journal_records(state="cli-backend")):
        found = _remembered(rec)
        if found is not None:
            if found != (backend, base_url):
                click.echo(
                    f"note: listing jobs on {found[0]}, where your latest job was created "
                    "(--backend to choose)",
                    err=True,
                )
            return found
    return backend, base_url


def model_backend(model: str, backend: str, base_url: str | None) -> tuple[str, str | None]:
    """The backend serving ``model``: ``--backend`` when given, else its model card's."""
    if _backend_given(base_url):
        return backend, base_url
    from finetune_qa.jobs import model_card

    try:
        card = model_card(model)
    except (InputFileError, ConfigError):
        return backend, base_url
    if card is not None and card.backend:
        return _from_label(card.backend)
    return backend, base_url
