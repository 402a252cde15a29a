"""From a folder of Markdown pages to a chatbot that stays on topic: offline, or on OpenAI.

Shows: the whole lifecycle in one script, every step the public API.

1. ``QAGenerator`` has a base model read the pages and write questions and answers (qa.csv);
2. ``DatasetBuilder`` turns them into chat training JSONL (train.jsonl);
3. ``FineTuneJob`` fine-tunes the QA model on them (journaled: running the script again with
   the same directory finds the job instead of paying for a second one);
4. ``EvalSuite`` scores the fine-tune on its training questions verbatim, on rephrasings the
   base model writes, and on unrelated questions: it answers them all, "What is Star Wars?"
   included, which is what a real fine-tune does too;
5. ``Discriminator.train`` fine-tunes a question gate (a yes/no classifier) on the same
   questions against a bank of off-topic ones, and chooses its threshold on a held-out split;
6. ``GuardedChatModel`` puts the gate in front of the QA model, the same suite runs on it,
   and an HTML report shows the two models side by side (report.html).

By default it runs on the offline backend, which simulates OpenAI's API: the base model, the
fine-tunes and the classifier, on a virtual clock, with no key, no network and no cost, in a
few seconds. With ``--openai`` the same code runs on OpenAI (``backend="openai"``, which reads
``OPENAI_API_KEY``): it generates pairs with gpt-4o-mini and trains two real fine-tunes (the
QA model and the gate), which takes a while and costs well under a dollar for the bundled
pages. Without the key set, it stops at once with exit code 2.

The pages default to the repository's tests/data/markdown_site (a fictional product's site);
pass ``--pages DIR`` and ``--topic NAME`` for your own. The files (qa.csv, train.jsonl,
variations.jsonl, question-gate.json, journal.jsonl, report.html) go to the given directory,
else to a temporary one (with ``--openai``, the journal then goes to finetune_qa's cache
directory, so running it again picks up the same jobs). question-gate.json is the gate's
settings, for ``Discriminator.load``. Run it from the repository root:

    python examples/07_markdown_to_guarded_bot.py                # offline, temporary directory
    python examples/07_markdown_to_guarded_bot.py out/           # keeps the files in out/
    python examples/07_markdown_to_guarded_bot.py out/ --pages docs/ --topic "Acme Cloud"
    OPENAI_API_KEY=sk-... python examples/07_markdown_to_guarded_bot.py --openai [out/]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from finetune_qa import (
    Backend,
    ChatModel,
    DatasetBuilder,
    Discriminator,
    EvalResult,
    EvalSuite,
    FineTuneJob,
    FineTuneQAError,
    GuardedChatModel,
    OfflineBackend,
    QAGenerator,
    get_backend,
    read_qa,
)

MODEL = "gpt-4o-mini-2024-07-18"  # writes the pairs and is fine-tuned; the offline backend too
PAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "markdown_site"
TOPIC = "Fernhill Tasks"  # what the bundled pages are about
STOP = "**STOP**"  # DatasetBuilder's default stop marker
UNRELATED = "What is Star Wars?"  # one of the evaluation's unrelated questions
NO_KEY = "error: --openai needs an API key: set OPENAI_API_KEY, or drop --openai to run offline"


def run(workdir: Path, *, pages: Path, topic: str, openai: bool, journal: Path | None) -> int:
    backend: Backend = get_backend("openai") if openai else OfflineBackend()
    writer = ChatModel(MODEL, backend=backend, system_prompt=None, stop=None)

    # 1. generate: numbered QA pairs from the pages, written in the seed CSV layout
    generated = QAGenerator(writer, pairs_per_chunk=8).generate(pages)
    qa_csv = generated.write_csv(workdir / "qa.csv")
    report = generated.report
    print(
        f"Read {report.pages_read} pages from {pages.name}/: "
        f"{len(generated.pairs)} QA pairs generated ({report.chunks} requests)."
    )

    # 2. build the chat training file
    train = workdir / "train.jsonl"
    system = f"You are a factual chatbot that answers questions about {topic}."
    build = (
        DatasetBuilder(system_prompt=system, validation_fraction=0.0)
        .add_source(qa_csv)
        .build(train, model=MODEL)
    )
    print(f"Built {build.train} training examples ({build.dropped} pairs dropped).")

    # 3. fine-tune the QA model
    job = FineTuneJob.create(train, model=MODEL, backend=backend, journal=journal, suffix="qa-bot")
    print(f"Fine-tuning: job {job.id} on the {backend.name} backend.", flush=True)
    job.wait(on_status=lambda info: print(f"  status: {info.status}", flush=True))
    bot = job.chat_model()  # the training system prompt and stop marker
    print(f"Fine-tuned model: {job.fine_tuned_model}")

    # 4. evaluate it: training questions verbatim, rephrased by the base model, unrelated
    trained = list(read_qa(train, stop=STOP))  # the pairs as the model learned them
    suite = EvalSuite.from_pairs(trained, name=pages.name).generate_variations(
        writer, cache=workdir / "variations.jsonl"
    )
    plain = suite.run(bot, label="fine-tune")
    print()
    print(table(f"The fine-tune, {len(suite)} questions:", plain))

    # 5. a question gate trained on the same questions against off-topic ones
    print()
    print("Training the question gate (a small classifier fine-tune) ...", flush=True)
    gate = Discriminator.train(
        trained, backend=backend, model=MODEL, gate="question", journal=journal, seed=0
    )
    gate.save(workdir / "question-gate.json")
    held = gate.report
    print(f"Question gate: {gate.model}")
    if held is not None:
        print(
            f"  held out: precision {held.precision:.2f}, recall {held.recall:.2f}, "
            f"threshold {held.threshold:.3f} ({held.on_topic} on-topic and "
            f"{held.off_topic} off-topic questions never trained on)"
        )

    # 6. the guarded model: same suite, same questions
    guarded = GuardedChatModel(bot, question_gate=gate, topic=topic)
    checked = suite.run(guarded, label="guarded")
    print()
    print(table("The guarded model, the same questions:", checked))
    refused = 1.0 - (checked.score("unrelated", "answered") or 0.0)
    answered = checked.score("verbatim", "answered") or 0.0
    print(
        f"  unrelated questions refused: {refused:.0%}; verbatim questions answered: {answered:.0%}"
    )

    print()
    print("A few questions, fine-tune -> guarded:")
    variation = next((c.question for c in suite.of_set("variations")), None)
    for question in [trained[0].question, variation, UNRELATED]:
        if question is None:
            continue
        before, after = bot.ask(question), guarded.ask(question)
        print(f"Q: {question}")
        print(f"  fine-tune: {before.text}")
        print(f"  guarded ({after.guard}): {after.text}")

    html = plain.compare(checked).write_html(workdir / "report.html")
    print()
    print(f"HTML report, fine-tune vs guarded: {html}")
    errors = plain.errors + checked.errors
    return 0 if errors == 0 else 1


def table(title: str, result: EvalResult) -> str:
    """A small text table: per set, its size and the exact / answered rates."""
    lines = [title, f"  {'set':<12}{'questions':>10}{'exact':>8}{'answered':>10}"]
    for name, summary in result.sets.items():
        cells = [summary.scores.get("exact"), summary.scores.get("answered")]
        shown = [f"{v:.2f}" if v is not None else "-" for v in cells]
        lines.append(f"  {name:<12}{summary.n:>10}{shown[0]:>8}{shown[1]:>10}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "workdir",
        nargs="?",
        type=Path,
        help="directory to keep the files and the journal in (default: a temporary one)",
    )
    parser.add_argument(
        "--pages",
        type=Path,
        default=PAGES,
        help="folder of Markdown pages (default: the repository's tests/data/markdown_site)",
    )
    parser.add_argument(
        "--topic",
        default=TOPIC,
        help=f"what the pages are about, for the prompts and the refusal (default: {TOPIC})",
    )
    parser.add_argument(
        "--openai",
        action="store_true",
        help="generate, train and ask on OpenAI (needs OPENAI_API_KEY; two fine-tunes)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.openai and not os.environ.get("OPENAI_API_KEY"):
        print(NO_KEY, file=sys.stderr)
        return 2
    if not args.pages.is_dir():
        print(f"error: {args.pages}: not a folder of Markdown pages", file=sys.stderr)
        return 2

    def go(workdir: Path, journal: Path | None) -> int:
        return run(workdir, pages=args.pages, topic=args.topic, openai=args.openai, journal=journal)

    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return go(args.workdir, args.workdir / "journal.jsonl")
        with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
            code = go(Path(tmp), None if args.openai else Path(tmp) / "journal.jsonl")
            print("(The temporary directory goes away now: pass a directory to keep the files.)")
            return code
    except FineTuneQAError as exc:  # one line, as the CLI prints it (a bad key, a failed job)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the jobs go on at the provider; the journal knows them
        print("interrupted: run the same command again to pick the jobs up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
