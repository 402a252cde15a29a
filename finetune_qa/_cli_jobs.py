"""CLI commands for the training half: upload, train, status, events, cancel, jobs, ask, serve.

Registered on the ``finetune-qa`` group by :mod:`finetune_qa.cli`. Every command takes
``--backend`` (``openai`` by default, or ``$FINETUNE_QA_BACKEND``) and ``--json``. With
``--backend offline`` the offline API's state (files, jobs, models) is kept between
commands in ``<cache dir>/offline-api.json``, so ``train`` then ``status`` then ``ask``
work as they would against OpenAI.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from finetune_qa._fs import file_lock
from finetune_qa.backends import (
    Backend,
    JobEvent,
    JobInfo,
    OfflineBackend,
    available_backends,
    get_backend,
)
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT, cache_dir
from finetune_qa.exceptions import InputFileError, UnknownBackendError, UsageError

__all__ = ["FINITE", "Finite", "follow_job", "offline_state_path", "open_backend", "register"]

_EXIT_HELP = "Exit codes: 0 success, 1 problems found or failure, 2 bad input or usage."


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


def offline_state_path() -> Path:
    """Where the CLI keeps the offline API's state between commands."""
    explicit = os.environ.get("FINETUNE_QA_OFFLINE_STATE")
    return Path(explicit) if explicit else cache_dir() / "offline-api.json"


def _load_offline_state(path: Path) -> Any:
    """The offline API saved at ``path``, a new one if there is none, or an InputFileError."""
    from finetune_qa.backends._fakeapi import FakeOpenAI

    if not path.exists() and not path.is_symlink():
        return FakeOpenAI()
    hint = (
        f"delete {path} to start again with an empty offline API (its files and jobs are lost), "
        "or point FINETUNE_QA_OFFLINE_STATE at another file"
    )
    try:
        return FakeOpenAI.load(path)
    except InputFileError:
        raise
    except UsageError as exc:  # saved by another version
        raise InputFileError(str(exc), path=path, hint=hint) from exc


@contextmanager
def open_backend(name: str, base_url: str | None) -> Iterator[Backend]:
    """The backend for one command; the offline API's state is loaded and saved around it."""
    if name == "offline":
        path = offline_state_path()

        def waiting() -> None:
            click.echo(
                f"waiting for another finetune-qa command that uses the offline state ({path})",
                err=True,
            )

        # load, use and save under one lock: concurrent commands would each load the same
        # state and the last save would drop the others' files and jobs
        with file_lock(path.parent, on_wait=waiting, directory=True):
            fake = _load_offline_state(path)
            backend = OfflineBackend(fake)
            try:
                yield backend
            finally:
                try:
                    fake.save(path)
                except OSError as exc:
                    raise InputFileError(
                        f"cannot save the offline API's state ({exc.strerror or exc})",
                        path=path,
                        hint="point FINETUNE_QA_OFFLINE_STATE or FINETUNE_QA_CACHE_DIR at a "
                        "writable place",
                    ) from exc
        return
    if name == "openai" and base_url:
        from finetune_qa.backends import OpenAIBackend

        yield OpenAIBackend(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "none")
        return
    yield get_backend(name)


def _emit(data: Any, as_json: bool, text: Callable[[], str], *, result: bool = False) -> None:
    """Print a command's output; ``-q`` silences it unless it is the command's result."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("quiet") and not result:
        return
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(text())


def _job_line(j: JobInfo) -> str:
    model = j.fine_tuned_model or "-"
    return f"{j.id}  {j.status:<16} {j.model:<26} {model}"


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


def register(cli: click.Group) -> None:
    """Add the training-half commands to ``cli``."""

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print the file as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    def upload(path: Path, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
        """Upload a training file (large files go through the Uploads API in parts)."""
        with open_backend(backend, base_url) as be:
            size = path.stat().st_size
            in_parts = getattr(be, "upload_path", None)
            if size > 100 * 1024 * 1024 and callable(in_parts):
                info = in_parts(path, filename=path.name)
            else:
                info = be.upload_file(path.read_bytes(), filename=path.name)
        _emit(
            info.model_dump(mode="json"),
            as_json,
            lambda: f"{info.id}  {info.bytes:,} bytes  {info.filename}",
        )

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option(
        "--model", default=DEFAULT_MODEL, show_default=True, help="Base model to fine-tune."
    )
    @click.option(
        "--workdir",
        type=click.Path(path_type=Path),
        default=Path("finetune-qa-train"),
        show_default=True,
        help="Where the built JSONL and the journal go.",
    )
    @click.option(
        "--system-prompt",
        default=DEFAULT_SYSTEM_PROMPT,
        show_default=True,
        help="System message of every example.",
    )
    @click.option(
        "--stop",
        default=DEFAULT_STOP,
        show_default=True,
        help="Stop marker appended to every answer.",
    )
    @click.option(
        "--validation-fraction",
        type=Finite(min=0, max=0.5),
        default=0.1,
        show_default=True,
        help="Share of questions for the validation file (0: none).",
    )
    @click.option("--epochs", default="auto", show_default=True, help="Epochs, 1-50 or auto.")
    @click.option("--suffix", default=None, help="Up to 64 characters in the model name.")
    @click.option("--seed", type=int, default=None, help="Training seed.")
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
        system_prompt: str,
        stop: str,
        validation_fraction: float,
        epochs: str,
        suffix: str | None,
        seed: int | None,
        wait: bool,
        timeout: float | None,
        backend: str,
        base_url: str | None,
        as_json: bool,
        quiet: bool,
    ) -> None:
        """Build, validate, upload, start and follow a fine-tuning job, in one go.

        Safe to run again: the same data and settings attach to the job already started.
        """
        from finetune_qa.dataset import DatasetBuilder
        from finetune_qa.jobs import FineTuneJob

        if backend not in available_backends():  # before anything is built or written
            raise UnknownBackendError(backend, available_backends())
        n_epochs: int | str = "auto" if epochs == "auto" else _int(epochs, "--epochs")
        if n_epochs != "auto" and not 1 <= int(n_epochs) <= 50:
            raise UsageError(f"--epochs takes 1 to 50 or 'auto', got {n_epochs}")
        say = (lambda *a, **k: None) if (quiet or as_json) else click.echo
        train_path = workdir / "train.jsonl"
        val_path = workdir / "validation.jsonl" if validation_fraction > 0 else None
        builder = DatasetBuilder(system_prompt=system_prompt, stop=stop).split(validation_fraction)
        for p in inputs:
            builder.add_source(p)
        report = builder.build(
            train_path, validation_output=val_path, model=model, require_training=True
        )
        say(
            f"built {report.train:,} training and {report.validation:,} validation examples "
            f"from {report.read:,} pairs ({report.dropped:,} dropped) in {workdir}/"
        )
        if report.token_report is not None:
            c = report.token_report.cost
            cost = (
                f"${c.estimated_cost_usd:,.2f}" if c.estimated_cost_usd is not None else "unknown"
            )
            say(f"{c.billed_tokens_total:,} billed tokens over {c.n_epochs} epochs: about {cost}")
            for w in report.token_report.model_warnings:
                say(f"warning: {w}")
        with open_backend(backend, base_url) as be:
            job = FineTuneJob.create(
                train_path,
                model=model,
                backend=be,
                validation_file=val_path,
                n_epochs=n_epochs,  # type: ignore[arg-type]
                suffix=suffix,
                seed=seed,
                system_prompt=system_prompt,
                stop=stop,
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
        _emit(
            result, as_json, lambda: job.fine_tuned_model or f"{job.id} {job.status}", result=True
        )
        if job.status in ("failed", "cancelled"):
            raise click.exceptions.Exit(1)

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("job_id", type=JOB_ID)
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    def status(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
        """Show a job's status and, once it succeeded, its model."""
        with open_backend(backend, base_url) as be:
            info = be.retrieve_job(job_id)
        data = info.model_dump(mode="json", exclude={"raw"})
        _emit(
            data,
            as_json,
            lambda: _job_line(info) + (f"\n{info.error_message}" if info.error_message else ""),
        )

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("job_id", type=JOB_ID)
    @click.option(
        "--follow", "follow_", is_flag=True, help="Keep printing events until the job ends."
    )
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

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("job_id", type=JOB_ID)
    @click.option(
        "--plot",
        "plot_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Also write a PNG of loss and token accuracy (needs finetune-qa[plot]).",
    )
    @click.option(
        "--rows", type=int, default=20, show_default=True, help="Steps shown in the table."
    )
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

        _emit([p.model_dump() for p in points], as_json, text)

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("job_id", type=JOB_ID)
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    def cancel(job_id: str, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
        """Cancel a job."""
        with open_backend(backend, base_url) as be:
            info = be.cancel_job(job_id)
        _emit(info.model_dump(mode="json", exclude={"raw"}), as_json, lambda: _job_line(info))

    @cli.command(epilog=_EXIT_HELP)
    @click.option(
        "--limit", type=int, default=20, show_default=True, help="How many, newest first."
    )
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    def jobs(limit: int, backend: str, base_url: str | None, as_json: bool, quiet: bool) -> None:
        """List fine-tuning jobs, newest first."""
        if not 1 <= limit <= 100:
            raise UsageError(f"--limit takes 1 to 100 (one page of the jobs list), got {limit}")
        with open_backend(backend, base_url) as be:
            found = be.list_jobs(limit=limit)
        _emit(
            [j.model_dump(mode="json", exclude={"raw"}) for j in found],
            as_json,
            lambda: "\n".join(_job_line(j) for j in found) or "no jobs",
        )

    @cli.command(epilog=_EXIT_HELP)
    @click.argument("model")
    @click.argument("question", required=False)
    @click.option(
        "--system-prompt",
        default=None,
        help="System message (default: none; use the training one).",
    )
    @click.option(
        "--stop", default=DEFAULT_STOP, show_default=True, help="Stop marker ('' for none)."
    )
    @click.option("--temperature", type=FINITE, default=0.0, show_default=True, help="0-2.")
    @click.option("--max-tokens", type=int, default=None, help="Cap on the answer's tokens.")
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print answers as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    def ask(
        model: str,
        question: str | None,
        system_prompt: str | None,
        stop: str,
        temperature: float,
        max_tokens: int | None,
        backend: str,
        base_url: str | None,
        as_json: bool,
        quiet: bool,
    ) -> None:
        """Ask a model a question; without QUESTION, read questions line by line (interactive)."""
        from finetune_qa.chat import ChatModel

        with open_backend(backend, base_url) as be:
            chat = ChatModel(
                model,
                backend=be,
                system_prompt=system_prompt,
                stop=stop or None,
                temperature=temperature,
                max_tokens=max_tokens,
            )
            questions: Iterator[str]
            if question is not None:
                questions = iter([question])
            else:
                if sys.stdin.isatty() and not (as_json or quiet):
                    click.echo("Ask a question (Ctrl-D to end).", err=True)
                questions = stdin_lines("questions")
            for q in questions:
                answer = chat.ask(q)
                _emit(answer.model_dump(mode="json"), as_json, functools.partial(str, answer.text))

    @cli.command(epilog=_EXIT_HELP)
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=8000,
        show_default=True,
        help="Port (0: any free one).",
    )
    @click.option(
        "--speedup",
        type=Finite(min=0, min_open=True),
        default=60.0,
        show_default=True,
        help="Virtual seconds per real second (jobs finish quicker).",
    )
    def serve(host: str, port: int, speedup: float) -> None:
        """Serve the offline OpenAI API under /v1, for any OpenAI client to point at.

        Example: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="anything").
        """
        from finetune_qa.backends._wire import run_server

        try:
            run_server(host=host, port=port, realtime=True, speedup=speedup)
        except OSError as exc:  # a host that does not resolve, a port in use or reserved
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another "
                "--host or --port (--port 0 takes any free one)"
            ) from exc


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
