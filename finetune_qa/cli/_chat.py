"""Talking to a model: ``ask`` and ``serve``, and the chat models other commands build.

:func:`card_chat` asks a model as it was trained (its model card's system prompt and stop
marker unless given) and :func:`guarded_chat` puts it behind saved gates; ``eval``,
``record`` and ``guard train`` use them too.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from finetune_qa.backends import Backend
from finetune_qa.cli._common import (
    EXIT_HELP,
    FINITE,
    Finite,
    backend_options,
    emit,
    json_option,
    local_chat_api,
    model_backend,
    open_backend,
    quiet_option,
    run_server,
    stdin_lines,
)
from finetune_qa.config import DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT, cache_dir
from finetune_qa.exceptions import UsageError

if TYPE_CHECKING:
    from finetune_qa.chat import ChatModel
    from finetune_qa.guardrails import GuardedChatModel

__all__ = ["ask", "card_chat", "guarded_chat", "interactive", "prompted_lines", "serve"]


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


@click.command(epilog=EXIT_HELP)
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
@json_option("one answer per line (JSON Lines)")
@quiet_option("the answers")
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
@click.option("--topic", default=None, help="What the bot is about, for the gates' refusal text.")
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

    At a terminal, questions are read at a "> " prompt with line editing and history
    (kept in <cache dir>/ask-history); from a pipe, one question per line, no prompt.
    With --question-gate / --answer-gate (files from `guard train`), the question goes
    through the gates: an off-topic question gets the refusal (about --topic) without
    reaching the model, and an off-topic answer is withheld. Without --backend, the
    backend the model was trained on (its model card) is used.
    """
    backend, base_url = model_backend(model, backend, base_url)
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
        elif interactive():
            if not (as_json or quiet):
                click.echo("Ask a question (Ctrl-D to end).", err=True)
            questions = prompted_lines(cache_dir() / "ask-history")
        else:
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
            text = functools.partial(str, answer.text)
            emit(answer.model_dump(mode="json"), as_json, text, quiet=text)


@click.command(epilog=EXIT_HELP)
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
@json_option("the address, and each request on standard error (JSON Lines)")
@quiet_option("the address served (no line per request)")
def serve(
    host: str, port: int, speedup: float, model: str | None, as_json: bool, quiet: bool
) -> None:
    """Serve the offline OpenAI API under /v1, for any OpenAI client to point at.

    With --model, serve a model trained by the local backend (chat completions and
    models, streaming included): OpenAI(base_url=URL, api_key="anything") then
    client.chat.completions.create(model=MODEL, ...).

    Example: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="anything").
    """
    log = None if quiet else functools.partial(_log_request, as_json=as_json)
    try:
        if model is None:
            run_server(
                host=host,
                port=port,
                realtime=True,
                speedup=speedup,
                request_log=log,
                ready=functools.partial(_ready, None, as_json=as_json),
            )
            return
        api = local_chat_api(model, on_request=log)
        ready = functools.partial(_ready, model, as_json=as_json)
        run_server(api, host=host, port=port, realtime=False, ready=ready)
    except OSError as exc:  # a host that does not resolve, a port in use or reserved
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another "
            "--host or --port (--port 0 takes any free one)"
        ) from exc


def _ready(model: str | None, url: str, *, as_json: bool) -> None:
    """Say where the server listens: on standard error, or as one JSON object on stdout."""
    if as_json:
        click.echo(orjson.dumps({"url": url, "model": model or "offline"}).decode())
    elif model is None:
        click.echo(
            f"offline OpenAI API listening on {url} (use any api_key); Ctrl-C stops it", err=True
        )
    else:
        click.echo(f"serving {model} on {url} (use any api_key); Ctrl-C stops it", err=True)


def _log_request(line: str, *, as_json: bool) -> None:
    """One request answered ("POST /v1/chat/completions 200 0.012s"), on standard error."""
    if not as_json:
        click.echo(line, err=True)
        return
    method, path, status, took = [*line.split(" ", 3), "", "", ""][:4]
    seconds = took.removesuffix("s")
    record = {
        "method": method,
        "path": path,
        "status": int(status) if status.isdigit() else status,
        "seconds": float(seconds) if seconds.replace(".", "", 1).isdigit() else None,
    }
    click.echo(orjson.dumps(record).decode(), err=True)


def interactive() -> bool:
    """Whether questions come from a person at a terminal (not a pipe or a file)."""
    return sys.stdin.isatty()


def prompted_lines(history: Path) -> Iterator[str]:
    """Questions typed at a "> " prompt, with line editing and history (``readline``).

    History is read from and saved to ``history`` (best effort: a history that cannot be
    read or written is no reason to refuse a question). Blank lines are skipped; Ctrl-D
    ends.
    """
    try:
        import readline
    except ImportError:  # no readline on this platform: a plain prompt still works
        readline = None  # type: ignore[assignment]
    if readline is not None:
        readline.set_auto_history(False)
        readline.set_history_length(1000)
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    try:
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                click.echo(err=True)  # leave the terminal on a fresh line
                return
            if not line:
                continue
            if readline is not None:
                readline.add_history(line)
            yield line
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(history)
