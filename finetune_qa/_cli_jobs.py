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
from typing import TYPE_CHECKING, Any

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
from finetune_qa.backends.local import MAX_EPOCHS as LOCAL_MAX_EPOCHS
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT, cache_dir
from finetune_qa.exceptions import InputFileError, UnknownBackendError, UsageError

if TYPE_CHECKING:
    from finetune_qa.chat import ChatModel
    from finetune_qa.guardrails import GuardedChatModel

__all__ = [
    "FINITE",
    "Finite",
    "card_chat",
    "follow_job",
    "guarded_chat",
    "local_options",
    "local_training_options",
    "offline_state_path",
    "open_backend",
    "register",
    "training_options",
]

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


def card_chat(
    model: str,
    backend: Backend,
    system_prompt: str | None,
    stop: str | None,
    *,
    no_card_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    ask_provider: bool = False,
    **options: Any,
) -> ChatModel:
    """A ChatModel for a command: the model card's prompt and marker unless given.

    ``system_prompt`` / ``stop`` are the options as given (None: not given; ``''``: none).
    With ``ask_provider``, a model with no card on this machine is looked up in the
    provider's job metadata. Overrides of the card are in the model's ``notes`` for the
    command to print.
    """
    import warnings

    from finetune_qa.chat import ChatModel
    from finetune_qa.jobs import model_card

    if ask_provider:
        found = model_card(model, backend=backend, ask_provider=True)
        options["card"] = found if found is not None else False
    if system_prompt is not None:
        options["system_prompt"] = system_prompt or None
    if stop is not None:
        options["stop"] = stop or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the command prints the notes itself
        chat = ChatModel(model, backend=backend, **options)
    if chat.card is None and system_prompt is None:
        chat.system_prompt = no_card_prompt
    return chat


def guarded_chat(
    qa: ChatModel,
    backend: Backend,
    question_gate: Path | None,
    answer_gate: Path | None,
    *,
    topic: str | None = None,
) -> GuardedChatModel:
    """``qa`` behind the gates saved in the given files (each checked to be the right kind)."""
    from finetune_qa.guardrails import Discriminator, GuardedChatModel

    gates: dict[str, Discriminator | None] = {"question": None, "answer": None}
    for kind, path in (("question", question_gate), ("answer", answer_gate)):
        if path is None:
            continue
        gate = Discriminator.load(path, backend=backend)
        if gate.gate != kind:
            raise UsageError(
                f"{path}: is {'an' if gate.gate == 'answer' else 'a'} {gate.gate} gate; "
                f"pass it with --{gate.gate}-gate"
            )
        gates[kind] = gate
    if topic is None:
        return GuardedChatModel(qa, question_gate=gates["question"], answer_gate=gates["answer"])
    return GuardedChatModel(
        qa, question_gate=gates["question"], answer_gate=gates["answer"], topic=topic
    )


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
        from finetune_qa.dataset import DatasetBuilder
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
        # an open model trained locally costs nothing and is not in the catalogue
        report = builder.build(
            train_path,
            validation_output=workdir / "validation.jsonl"
            if builder.validation_mode != "none"
            else None,
            model=None if backend == "local" else model,
            require_training=True,
        )
        # only a file this build wrote, never an empty one or one left by an earlier run
        val_path = Path(report.validation_output) if report.validation_output else None
        if val_path is None:
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
        help="System message ('' for none). Default: the one MODEL was trained with (its "
        "model card), else none.",
    )
    @click.option(
        "--stop",
        default=None,
        help=f"Stop marker ('' for none). Default: MODEL's from its card, else {DEFAULT_STOP!r}.",
    )
    @click.option("--temperature", type=FINITE, default=0.0, show_default=True, help="0-2.")
    @click.option("--max-tokens", type=int, default=None, help="Cap on the answer's tokens.")
    @backend_options
    @click.option("--json", "as_json", is_flag=True, help="Print answers as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing; use the exit code.")
    @click.option(
        "--question-gate",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        default=None,
        help="Ask through this question gate (from `guard train --gate question`).",
    )
    @click.option(
        "--answer-gate",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        default=None,
        help="Withhold answers this answer gate finds off topic.",
    )
    @click.option(
        "--topic", default=None, help="What the bot is about, for the gates' refusal text."
    )
    def ask(
        model: str,
        question: str | None,
        system_prompt: str | None,
        stop: str | None,
        temperature: float,
        max_tokens: int | None,
        backend: str,
        base_url: str | None,
        as_json: bool,
        quiet: bool,
        question_gate: Path | None,
        answer_gate: Path | None,
        topic: str | None,
    ) -> None:
        """Ask a model a question; without QUESTION, read questions line by line (interactive).

        With --question-gate / --answer-gate (files from `guard train`), the question goes
        through the gates: an off-topic question gets the refusal (about --topic) without
        reaching the model, and an off-topic answer is withheld.
        """
        with open_backend(backend, base_url) as be:
            chat = card_chat(
                model,
                be,
                system_prompt,
                stop,
                no_card_prompt=None,
                ask_provider=True,
                temperature=temperature,
                max_tokens=max_tokens,
            )
            if not quiet:
                for note in chat.notes:
                    click.echo(f"note: {note}", err=True)
            questions: Iterator[str]
            if question is not None:
                questions = iter([question])
            else:
                if sys.stdin.isatty() and not (as_json or quiet):
                    click.echo("Ask a question (Ctrl-D to end).", err=True)
                questions = stdin_lines("questions")
            bot: Any = chat
            if question_gate is not None or answer_gate is not None:
                bot = guarded_chat(chat, be, question_gate, answer_gate, topic=topic)
            elif topic is not None:
                raise UsageError(
                    "--topic is the refusal's topic: give --question-gate or --answer-gate"
                )
            for q in questions:
                answer = bot.ask(q)
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
    @click.option(
        "--model",
        "model",
        default=None,
        help="Serve this local model instead (local:JOB_ID, a run or model directory).",
    )
    @click.option(
        "-q", "--quiet", is_flag=True, help="No line on standard error per request answered."
    )
    def serve(host: str, port: int, speedup: float, model: str | None, quiet: bool) -> None:
        """Serve the offline OpenAI API under /v1, for any OpenAI client to point at.

        With --model, serve a model trained by the local backend (chat completions and
        models, streaming included): OpenAI(base_url=URL, api_key="anything") then
        client.chat.completions.create(model=MODEL, ...).

        Example: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="anything").
        """
        from finetune_qa.backends._wire import run_server

        try:
            if model is None:
                run_server(
                    host=host,
                    port=port,
                    realtime=True,
                    speedup=speedup,
                    request_log=None if quiet else lambda line: click.echo(line, err=True),
                )
                return
            from finetune_qa.backends.local import LocalBackend
            from finetune_qa.backends.local._serve import LocalChatAPI

            api = LocalChatAPI(
                LocalBackend(),
                model,
                on_request=None if quiet else lambda line: click.echo(line, err=True),
            )
            api.warm()

            def ready(url: str) -> None:
                click.echo(f"serving {model} on {url} (use any api_key); Ctrl-C stops it", err=True)

            run_server(api, host=host, port=port, realtime=False, ready=ready)
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
