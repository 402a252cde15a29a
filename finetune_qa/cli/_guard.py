"""CLI commands ``finetune-qa guard train`` and ``finetune-qa guard check``: on-topic gates.

A thin shell over :class:`~finetune_qa.guardrails.Discriminator`. ``guard train`` reads QA pairs the
way ``finetune-qa eval`` does, trains a question or answer gate with
:meth:`~finetune_qa.guardrails.Discriminator.train` and writes its settings with
:meth:`~finetune_qa.guardrails.Discriminator.save`; ``guard check`` loads those settings and
prints the verdict on a question (and an answer). Both go through
:func:`~finetune_qa.cli._common.open_backend`, so with ``--backend offline`` the gate trained by
one command (and the QA model trained by ``finetune-qa train``) serve the next.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import orjson

from finetune_qa.cli._chat import card_chat
from finetune_qa.cli._common import (
    Finite,
    backend_options,
    check_outputs,
    emit,
    json_option,
    open_backend,
    output_option,
    quiet_option,
    stdin_lines,
)
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT
from finetune_qa.exceptions import UsageError

if TYPE_CHECKING:
    from finetune_qa.guardrails import DiscriminatorSettings, Gate

__all__ = ["guard"]

GUARD_EXIT_HELP = (
    "Exit codes: 0 success, 1 failure (or off topic, with --fail-off-topic), 2 bad input."
)
_GATES = ("question", "answer")
_MAX_SEED = 2_147_483_647  # guardrails.MAX_SEED (not imported: the CLI loads it lazily)


@click.group(epilog=GUARD_EXIT_HELP)
def guard() -> None:
    """Train and use on-topic gates: classifiers that keep a QA bot to its subject."""


@guard.command("train", epilog=GUARD_EXIT_HELP)
@click.argument("data", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--gate",
    type=click.Choice(_GATES),
    required=True,
    help="question: reads the question; answer: reads the question and the answer.",
)
@click.option(
    "--qa-model",
    default=None,
    help="The QA model (answer gate): its answers to off-topic questions are the negatives.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Base model of the classifier fine-tune.",
)
@output_option(
    "Where to write the gate's settings JSON [default: <gate>-gate.json].",
    old="--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
)
@click.option(
    "--negatives",
    "negatives_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Text file of your own off-topic questions, one per line.",
)
@click.option(
    "--no-builtin-negatives",
    is_flag=True,
    help="Leave out the built-in bank of off-topic questions (then give --negatives).",
)
@click.option(
    "--target-precision",
    type=Finite(min=0.0, max=1.0, min_open=True),
    default=None,
    help="Choose the threshold for this held-out precision instead of the best F1.",
)
@click.option(
    "--heldout-fraction",
    type=Finite(min=0.0, max=0.5),
    default=0.2,
    show_default=True,
    help="Share of each class held out to choose the threshold.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, _MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the split and of the job.",
)
@click.option(
    "--system-prompt",
    default=None,
    help="System message to ask the QA model with (answer gate; '' for none). Default: "
    f"the QA model's card, else {DEFAULT_SYSTEM_PROMPT!r}.",
)
@click.option(
    "--stop",
    default=None,
    help="Stop marker of DATA's answers and the QA model ('' for none). Default: "
    f"detected in DATA, the QA model's card, else {DEFAULT_STOP!r}.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the gate's JSONL files and the job journal here "
    "[default: a temporary directory; the journal in the cache directory].",
)
@click.option(
    "--augment",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Rephrase each question K times (by --writer): rephrasings train the gate and "
    "choose its threshold, so it passes questions worded unlike DATA's. Cached: the "
    "rephrasings `build --augment` wrote are reused.",
)
@click.option(
    "--writer",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model that writes the rephrasings (with --augment).",
)
@backend_options
@json_option("the settings")
@quiet_option("the settings file's path")
def guard_train(
    data: Path,
    gate: str,
    qa_model: str | None,
    model: str,
    output: Path | None,
    negatives_file: Path | None,
    no_builtin_negatives: bool,
    target_precision: float | None,
    heldout_fraction: float,
    seed: int,
    system_prompt: str | None,
    stop: str | None,
    workdir: Path | None,
    augment: int,
    writer: str,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train an on-topic gate on the questions of DATA and write its settings.

    DATA is a QA file (seed CSV, pair CSV, pair JSONL) or training JSONL: its questions
    (with their answers, for the answer gate) are the on-topic examples; a built-in
    bank of varied off-topic questions (and --negatives) the off-topic ones. A share
    is held out to choose the threshold and report precision and recall. Safe to run
    again: the journal attaches to the job already started.
    """
    from finetune_qa.chat import ChatModel
    from finetune_qa.evaluation import read_questions
    from finetune_qa.guardrails import OFF_TOPIC_TRAINING_QUESTIONS, Discriminator
    from finetune_qa.readers import QASource

    _check_gate_and_model(gate, qa_model)
    target = output if output is not None else Path(f"{gate}-gate.json")
    check_outputs({"--output": target}, [data, negatives_file])
    pairs = list(QASource(data, stop=stop).pairs())
    negatives = read_questions(negatives_file) if negatives_file is not None else []
    bank = () if no_builtin_negatives else OFF_TOPIC_TRAINING_QUESTIONS
    say = (lambda *a, **k: None) if (quiet or as_json) else click.echo
    say(
        f"training the {gate} gate on {len(pairs)} QA pairs from {data.name} and "
        f"{len(bank) + len(negatives)} off-topic questions (a fine-tuning job)",
    )
    with open_backend(backend, base_url) as be:
        qa = None
        if qa_model:
            qa = card_chat(qa_model, be, system_prompt, stop, ask_provider=True)
            if not quiet:
                for note in qa.notes:
                    click.echo(f"note: {note}", err=True)
        disc = Discriminator.train(
            pairs,
            backend=be,
            model=model,
            gate=cast("Gate", gate),  # click.Choice checked it
            qa_model=qa,
            negatives=negatives,
            bank=bank,
            seed=seed,
            heldout_fraction=heldout_fraction,
            target_precision=target_precision,
            workdir=workdir,
            journal=workdir / "journal.jsonl" if workdir is not None else None,
            augment=augment,
            writer=ChatModel(writer, backend=be) if augment else None,
        )
    disc.save(target)
    settings = disc.settings()

    def text() -> str:
        return _trained_text(disc.model, settings, target)

    # -q keeps the path, so GATE=$(finetune-qa guard train ... -q) works
    saved = {"path": str(target), **settings.model_dump(mode="json")}
    emit(saved, as_json, text, quiet=lambda: str(target))


def _check_gate_and_model(gate: str, qa_model: str | None) -> None:
    """An answer gate needs the QA model; a question gate reads no answers."""
    if gate == "answer" and not qa_model:
        raise UsageError(
            "--gate answer needs --qa-model MODEL: the QA model whose fluent answers to "
            "off-topic questions the gate learns to catch"
        )
    if gate == "question" and qa_model:
        raise UsageError("--qa-model is for --gate answer; the question gate reads no answers")


def _trained_text(model: str, settings: DiscriminatorSettings, target: Path) -> str:
    """What ``guard train`` prints: the model, the counts, the held-out scores, the file."""
    lines = [f"model: {model}"]
    if settings.counts is not None:
        lines.append(settings.counts.to_text())
    if settings.report is not None:
        lines.append(f"held out: {settings.report.to_text()}")
    else:
        lines.append(f"threshold {settings.threshold:.3f} (nothing held out)")
    lines.append(f"wrote {target}")
    return "\n".join(lines)


@guard.command("check", epilog=GUARD_EXIT_HELP)
@click.argument("gate_json", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("question", required=False)
@click.option(
    "--answer", default=None, help="The answer to check with QUESTION (answer gates only)."
)
@click.option(
    "--threshold",
    type=Finite(min=0.0, max=1.0),
    default=None,
    help="Judge at this on-topic probability instead of the saved threshold.",
)
@click.option(
    "--fail-off-topic",
    is_flag=True,
    help="Exit 1 when a question is off topic (for scripts).",
)
@backend_options
@json_option("one verdict per line (JSON Lines)")
@quiet_option('the verdicts ("on topic" or "off topic")')
def guard_check(
    gate_json: Path,
    question: str | None,
    answer: str | None,
    threshold: float | None,
    fail_off_topic: bool,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Say whether QUESTION (and --answer) is on topic for the gate saved in GATE_JSON.

    GATE_JSON is the settings file `guard train` wrote. Prints the verdict, the
    on-topic probability and the threshold, and exits 0 either way (with
    --fail-off-topic, 1 when off topic). Without QUESTION, checks the questions read
    from standard input, one per line (question gates). Without --backend (and
    $FINETUNE_QA_BACKEND), the backend the gate was trained on is used.
    """
    from finetune_qa.guardrails import Discriminator, DiscriminatorSettings, Verdict

    if question is None and answer is not None:
        raise UsageError("--answer goes with a QUESTION argument; give both")
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("backend") is not click.core.ParameterSource.DEFAULT
    if not given and base_url is None and not os.environ.get("FINETUNE_QA_BACKEND"):
        backend = DiscriminatorSettings.read(gate_json).backend or backend
    with open_backend(backend, base_url) as be:
        disc = Discriminator.load(gate_json, backend=be)
        if threshold is not None:
            disc.threshold = threshold
        if disc.gate == "question" and answer is not None:
            raise UsageError(
                f"{gate_json} is a question gate: it reads the question alone; drop --answer"
            )
        if disc.gate == "answer" and (question is None or not answer):
            raise UsageError(f'{gate_json} is an answer gate: pass QUESTION and --answer "TEXT"')
        if question is not None:
            questions = [question]
            verdicts = [disc.check(question, answer)]
        else:
            if sys.stdin.isatty() and not (as_json or quiet):
                click.echo("Questions to check, one per line (Ctrl-D to end).", err=True)
            questions = list(stdin_lines("questions"))
            verdicts = disc.check_many(questions)

    def line(q: str, v: Verdict) -> str:
        verdict = "on topic " if v.on_topic else "off topic"
        return f"{verdict}  {v.probability:.3f} (threshold {v.threshold:.3f})  {q}"

    for q, v in zip(questions, verdicts, strict=True):
        data: dict[str, Any] = {"question": q, **v.model_dump(mode="json")}
        if answer is not None:
            data["answer"] = answer
        if as_json:
            click.echo(orjson.dumps(data).decode())
        else:
            click.echo(("on topic" if v.on_topic else "off topic") if quiet else line(q, v))
    if fail_off_topic and not all(v.on_topic for v in verdicts):
        raise click.exceptions.Exit(1)
