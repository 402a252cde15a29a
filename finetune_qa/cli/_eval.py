"""CLI command ``finetune-qa eval``: run an evaluation suite on one model, or compare two.

A thin shell over :class:`~finetune_qa.evaluation.EvalSuite`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from finetune_qa.cli._chat import card_chat, guarded_chat
from finetune_qa.cli._common import (
    backend_options,
    check_outputs,
    compact_json,
    json_option,
    open_backend,
    output_option,
    quiet_option,
)
from finetune_qa.config import DEFAULT_MODEL, DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT, cache_dir
from finetune_qa.exceptions import FineTuneQAError, UsageError

if TYPE_CHECKING:
    from finetune_qa.backends import Backend
    from finetune_qa.chat import ChatModel
    from finetune_qa.evaluation import Answering, EvalResult, EvalSuite
    from finetune_qa.golden import GoldenSet

__all__ = [
    "EVAL_EXIT_HELP",
    "Asker",
    "eval_command",
    "progress_printer",
    "sampling_options",
    "suite_options",
    "with_variations",
]

EVAL_EXIT_HELP = (
    "Exit codes: 0 success, 1 some questions failed (or the run did), 2 bad input or usage."
)


def _apply(f: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        f = option(f)
    return f


def suite_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that build an evaluation suite's sets (`eval`, `record`)."""
    return _apply(
        f,
        [
            click.option(
                "--variations",
                "variations_file",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                help="QA file of rephrased questions with their expected answers.",
            ),
            click.option(
                "--generate-variations",
                is_flag=True,
                help="Have --generator rephrase every question (cached in --variations-cache).",
            ),
            click.option(
                "--variations-per-question",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Rephrasings per question with --generate-variations.",
            ),
            click.option(
                "--generator",
                default=DEFAULT_MODEL,
                show_default=True,
                help="Model that writes the rephrasings.",
            ),
            click.option(
                "--variations-cache",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="JSONL cache of rephrasings [default: <cache dir>/eval-variations.jsonl].",
            ),
            click.option(
                "--unrelated",
                "unrelated_file",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                help="Text file of your own off-topic questions, one per line.",
            ),
            click.option(
                "--no-builtin-unrelated",
                is_flag=True,
                help="Leave out the built-in off-topic questions.",
            ),
        ],
    )


def sampling_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--limit, --seed and --concurrency (`eval`, `record`)."""
    return _apply(
        f,
        [
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                default=None,
                help="At most N questions per set (a seeded sample).",
            ),
            click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed."),
            click.option(
                "--concurrency",
                type=click.IntRange(min=1),
                default=32,
                show_default=True,
                help="Questions in flight at once.",
            ),
        ],
    )


@click.command("eval", epilog=EVAL_EXIT_HELP)
@click.argument(
    "data", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option("--model", required=True, help="The model to evaluate (e.g. your fine-tune).")
@click.option(
    "--against",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A golden set (from 'record'): ask its questions, its answers are the references.",
)
@click.option(
    "--compare",
    "compare_model",
    default=None,
    help="A second model, run first as 'a' (e.g. the base model): a side-by-side report.",
)
@click.option(
    "--system-prompt",
    default=None,
    help="System message sent with every question ('' for none). Default: the one each "
    f"model was trained with (its model card), else {DEFAULT_SYSTEM_PROMPT!r}.",
)
@click.option(
    "--stop",
    default=None,
    help="Stop marker ('' for none). Default: each model's from its card, else "
    f"{DEFAULT_STOP!r}; DATA's answers lose theirs (given or detected).",
)
@suite_options
@click.option(
    "--refusal",
    "refusals",
    multiple=True,
    help="Your bot's refusal text (repeatable): such answers count as not answered.",
)
@click.option("--judge", default=None, help="A model that grades answers 1-5 (LLM judge).")
@click.option(
    "--question-gate",
    "question_gate",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Question gate JSON (from 'guard train'): --model answers behind it.",
)
@click.option(
    "--answer-gate",
    "answer_gate",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Answer gate JSON (from 'guard train'): --model's answers are checked by it.",
)
@sampling_options
@output_option(
    "Write the report here, as the suffix says: .html, .md or .json (repeatable).",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
)
# the spellings before -o/--output: they still work, but --help shows one way
@click.option("--html", "html_path", hidden=True, type=click.Path(path_type=Path))
@click.option("--markdown", "md_path", hidden=True, type=click.Path(path_type=Path))
@click.option(
    "--save-suite",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the suite's questions as JSONL.",
)
@backend_options
@json_option("the result")
@quiet_option("the paths of the reports written")
def eval_command(
    data: Path | None,
    model: str,
    against: Path | None,
    compare_model: str | None,
    system_prompt: str | None,
    stop: str | None,
    variations_file: Path | None,
    generate_variations: bool,
    variations_per_question: int,
    generator: str,
    variations_cache: Path | None,
    unrelated_file: Path | None,
    no_builtin_unrelated: bool,
    refusals: tuple[str, ...],
    judge: str | None,
    question_gate: Path | None,
    answer_gate: Path | None,
    limit: int | None,
    seed: int,
    concurrency: int,
    output: tuple[Path, ...],
    html_path: Path | None,
    md_path: Path | None,
    save_suite: Path | None,
    backend: str,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Evaluate a model on DATA: its questions verbatim, rephrased, and off-topic ones.

    DATA is a QA file (seed CSV, pair CSV, pair JSONL) or training JSONL. Prints mean
    scores per set (exact, contains, f1, rouge_l, stop, answered, judge); with
    --compare, both models side by side with the change. With --question-gate or
    --answer-gate, --model answers behind those gates (--compare stays unguarded, so
    --compare with the --model's name shows the model before and after the guard).

    With --against GOLDEN instead of DATA (a golden set from 'record'), the recorded
    questions are asked and the recorded answers are the references: exact, contains,
    f1, rouge_l, answered and agreement (both answered or both refused), per set and
    overall. --system-prompt and --stop then default to those of the recording.
    """
    if variations_file is not None and generate_variations:
        raise UsageError("use either --variations FILE or --generate-variations, not both")
    cache = variations_cache or cache_dir() / "eval-variations.jsonl"
    reports = _reports(output, html_path, md_path)
    check_outputs(
        {
            **{name: path for name, path, _ in reports},
            "--save-suite": save_suite,
            "--variations-cache": cache if generate_variations else None,
        },
        [data, against, variations_file, unrelated_file, question_gate, answer_gate],
    )
    suite, golden, system_prompt, stop = _suite(data, against, system_prompt, stop)
    say = (lambda *a, **k: None) if (quiet or as_json) else click.echo
    with open_backend(backend, base_url) as be:
        asker = Asker(be, system_prompt, stop, quiet=quiet, say=say)
        if generate_variations:
            suite = with_variations(
                suite, asker.chat(generator), variations_per_question, cache, concurrency
            )
        _say_suite(suite, say)
        if save_suite is not None:
            suite.to_jsonl(save_suite)
        run = _runner(
            suite,
            golden,
            concurrency=concurrency,
            judge=asker.chat(judge) if judge else None,
            refusals=refusals,
            progress=sys.stderr.isatty() and not (quiet or as_json),
        )
        bot = asker.chat(model, tell=True)
        tested: Answering = bot
        label: str | None = None
        if question_gate is not None or answer_gate is not None:
            tested = guarded_chat(bot, be, question_gate, answer_gate)
            label = f"{model} (guarded)"
        results = []
        if compare_model:
            results.append(run(asker.chat(compare_model, tell=True), None))
        results.append(run(tested, label))
    _report(results, reports, as_json=as_json, quiet=quiet, say=say)


_REPORT_KINDS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


def _reports(
    output: tuple[Path, ...], html_path: Path | None, md_path: Path | None
) -> list[tuple[str, Path, str]]:
    """The reports to write: the option that named each, its path, its format.

    The format follows the suffix (or the old option's name: ``--html``, ``--markdown``).
    """
    reports = []
    for n, path in enumerate(output, 1):
        kind = _REPORT_KINDS.get(path.suffix.lower())
        if kind is None:
            raise UsageError(
                f"-o/--output {path}: end the report's name in .html, .md or .json "
                "(its format follows the suffix)"
            )
        reports.append(("-o" if n == 1 else f"-o #{n}", path, kind))
    if html_path is not None:
        reports.append(("--html", html_path, "html"))
    if md_path is not None:
        reports.append(("--markdown", md_path, "md"))
    return reports


def _suite(
    data: Path | None, against: Path | None, system_prompt: str | None, stop: str | None
) -> tuple[EvalSuite, GoldenSet | None, str | None, str | None]:
    """The suite to run: DATA's, or a golden set's (whose prompt and marker become defaults)."""
    from finetune_qa.cli._kit import against_defaults, check_against
    from finetune_qa.evaluation import EvalSuite
    from finetune_qa.golden import GoldenSet

    params = click.get_current_context().params
    if against is not None:
        check_against(
            data=data is not None,
            variations=params["variations_file"] is not None,
            generate_variations=params["generate_variations"],
            unrelated=params["unrelated_file"] is not None,
            no_builtin_unrelated=params["no_builtin_unrelated"],
            limit=params["limit"] is not None,
        )
        golden = GoldenSet.read(against)
        system_prompt, stop = against_defaults(golden, system_prompt, stop)
        return golden.to_suite(), golden, system_prompt, stop
    if data is None:
        raise UsageError("give DATA (a QA file) or --against GOLDEN (a recorded golden set)")
    suite = EvalSuite.from_file(
        data,
        variations=params["variations_file"],
        unrelated=params["unrelated_file"],
        builtin_unrelated=not params["no_builtin_unrelated"],
        limit=params["limit"],
        seed=params["seed"],
        stop=stop,
    )
    return suite, None, system_prompt, stop


def _say_suite(suite: EvalSuite, say: Callable[..., None]) -> None:
    names = suite.set_names
    parts = [f"{names.get(k) or k} ({n})" for k, n in suite.counts().items() if n]
    say(f"{len(suite)} questions: {', '.join(parts)}")
    if suite.dropped:
        dropped = ", ".join(f"{k} {v}" for k, v in suite.dropped.items())
        say(f"dropped {sum(suite.dropped.values())} questions: {dropped}")


class Asker:
    """Chat models for one ``eval`` run, each asked as trained, with notes printed once."""

    def __init__(
        self,
        backend: Backend,
        system_prompt: str | None,
        stop: str | None,
        *,
        quiet: bool,
        say: Callable[..., None],
        show_card: bool = True,
    ) -> None:
        self.backend, self.system_prompt, self.stop = backend, system_prompt, stop
        self.quiet, self.say, self.show_card = quiet, say, show_card

    def chat(self, name: str, *, tell: bool = False) -> ChatModel:
        """``name`` as a ChatModel; with ``tell``, say how it is asked (its card, overrides)."""
        bot: ChatModel = card_chat(
            name, self.backend, self.system_prompt, self.stop, ask_provider=tell
        )
        if tell and not self.quiet:
            if self.show_card and bot.card is not None and not bot.notes:
                self.say(f"{name}: asked as trained (model card): {_card_line(bot)}")
            for note in bot.notes:
                click.echo(f"note: {note}", err=True)
        return bot


def with_variations(
    suite: EvalSuite, generator: ChatModel, per_question: int, cache: Path, concurrency: int
) -> EvalSuite:
    """The suite with ``generator``'s rephrasings added; a question it failed on is named."""
    suite = suite.generate_variations(generator, per_question, cache=cache, concurrency=concurrency)
    for problem in suite.generation_errors:
        click.echo(f"warning: no rephrasing for {problem}", err=True)
    return suite


def _runner(
    suite: EvalSuite,
    golden: GoldenSet | None,
    *,
    concurrency: int,
    judge: ChatModel | None,
    refusals: tuple[str, ...],
    progress: bool,
) -> Callable[[Answering, str | None], EvalResult]:
    """How one model is run: the suite, or the golden set's comparison."""
    from finetune_qa.evaluation import JudgeScorer
    from finetune_qa.golden import compare_to_golden

    common: dict[str, Any] = {
        "concurrency": concurrency,
        "judge": JudgeScorer(judge) if judge is not None else None,
        "refusal_texts": refusals,
        "progress": progress_printer() if progress else None,
    }

    def run(who: Answering, name: str | None) -> EvalResult:
        if golden is not None:
            return compare_to_golden(golden, who, label=name, **common)
        return suite.run(who, label=name, **common)

    return run


def _report(
    results: list[EvalResult],
    reports: list[tuple[str, Path, str]],
    *,
    as_json: bool,
    quiet: bool,
    say: Callable[..., None],
) -> None:
    """Write the reports, print the table (or JSON), and fail when questions failed."""
    from finetune_qa.evaluation import Comparison, compare

    report = compare(results[0], results[1]) if len(results) == 2 else results[0]
    writers = {"html": report.write_html, "md": report.write_markdown, "json": report.write_json}
    for _, path, kind in reports:
        writers[kind](path)
        say(f"wrote {path}")
        if quiet and not as_json:
            click.echo(str(path))
    if as_json:
        click.echo(compact_json(report.to_json()))
    elif not quiet:
        click.echo(_table(results))
        if isinstance(report, Comparison):
            click.echo(
                f"\n{report.matched} cases matched ({report.only_a} only in a, "
                f"{report.only_b} only in b)"
            )
    failed = sum(r.errors for r in results)
    if failed:
        first = next(c.error for r in results for c in r.cases if c.error)
        # an error, not click's Exit: main() prints it as one line and exits 1
        raise FineTuneQAError(
            f"{failed} of {sum(r.n for r in results)} questions failed (first: {first}); "
            "the reports include them, as errors"
        )


def _card_line(bot: ChatModel) -> str:
    return f"system prompt {bot.system_prompt!r}, stop {', '.join(bot.stop) or 'none'}"


def progress_printer(noun: str = "requests") -> Callable[[int, int], None]:
    """A progress callback that rewrites one stderr line, once per percent."""
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = done * 100 // max(total, 1)
        if pct != last[0]:
            last[0] = pct
            click.echo(f"\r{done}/{total} {noun}", nl=done >= total, err=True)

    return show


def _table(results: list[Any]) -> str:
    """Plain-text summary: one block per set, a column per model (and the change)."""
    from finetune_qa.evaluation import EVAL_SETS

    two = len(results) == 2
    sets = [*EVAL_SETS, *dict.fromkeys(s for r in results for s in r.sets if s not in EVAL_SETS)]
    lines: list[str] = []
    for k, r in enumerate(results):
        tag = "ab"[k] + ": " if two else ""
        lines.append(
            f"{tag}{r.label} ({r.backend}): {r.n} questions, {r.errors} errors, {r.seconds:.1f} s"
        )
    for name in sets:
        summaries = [r.sets.get(name) for r in results]
        if not any(summaries):
            continue
        n = next(s.n for s in summaries if s)
        lines.append("")
        header = f"{results[0].set_name(name)} ({n})"
        lines.append(
            f"{header:<22}"
            + "".join(f"{h:>9}" for h in (["a", "b", "delta"] if two else ["score"]))
        )
        names: list[str] = []
        for s in summaries:
            if s:
                names.extend(k for k, v in s.scores.items() if v is not None and k not in names)
        for scorer in names:
            values = [s.scores.get(scorer) if s else None for s in summaries]
            cells = [f"{v:9.2f}" if v is not None else f"{'-':>9}" for v in values]
            if two and values[0] is not None and values[1] is not None:
                cells.append(f"{values[1] - values[0]:+9.2f}")
            lines.append(f"  {scorer:<20}" + "".join(cells))
    return "\n".join(lines)
