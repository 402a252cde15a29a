"""Fine-tune a model on the bundled sample and ask it questions: offline, or on OpenAI.

Shows: the training half of the lifecycle end to end. ``DatasetBuilder`` writes train and
validation JSONL from the sample QA export; ``FineTuneJob.create`` checks the request and
the file, uploads it and starts a job (journaled: running the script again finds that job
instead of paying for a second one); ``wait`` follows the job through its statuses and
events; ``metrics`` reads the per-step losses; and ``chat_model`` asks the fine-tune a
training question (answered verbatim), a rephrasing of one (the nearest trained answer)
and an unrelated question (a fluent off-domain answer, which is what a real fine-tune
gives too; guardrails are for that).

By default it runs on the offline backend, which simulates OpenAI's API on a virtual
clock: no key, no network, no cost, and the job's minutes pass in a fraction of a second.
With ``--openai`` the same code runs on OpenAI (``backend="openai"``, which reads
``OPENAI_API_KEY``): it trains a real gpt-4o-mini-2024-07-18 fine-tune, which takes some
minutes and costs about a cent. Without the key set, it stops at once with exit code 2.
The journal goes to the given directory, else (with ``--openai``) to finetune_qa's cache
directory, so running it again picks up the same OpenAI job. Run it from the repository
root:

    python examples/05_finetune.py                   # offline, in a temporary directory
    python examples/05_finetune.py out/              # keeps out/train.jsonl, validation.jsonl,
                                                     # and the job journal, out/journal.jsonl
    OPENAI_API_KEY=sk-... python examples/05_finetune.py --openai [out/]   # on OpenAI
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from finetune_qa import (
    DatasetBuilder,
    FineTuneJob,
    FineTuneQAError,
    JobEvent,
    JobInfo,
    OfflineBackend,
    sample_csv,
)

MODEL = "gpt-4o-mini-2024-07-18"  # OpenAI's name; the offline backend knows it too
SYSTEM_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."
QUESTIONS = {
    "a training question": "How much does Lumen Pro cost?",
    "a rephrasing": "What does Lumen Pro cost per month?",
    "an unrelated question": "What is Star Wars?",
}
NO_KEY = "error: --openai needs an API key: set OPENAI_API_KEY, or drop --openai to run offline"


def run(workdir: Path, *, openai: bool, journal: Path | None) -> int:
    train, validation = workdir / "train.jsonl", workdir / "validation.jsonl"
    report = (
        DatasetBuilder(system_prompt=SYSTEM_PROMPT)
        .add_source(sample_csv())
        .sample_validation(seed=42)  # train on every pair; repeat 10% of them to validate
        .build(train, validation_output=validation)
    )
    print(
        f"Built {report.train} training examples, {report.validation} of them repeated as "
        "validation examples."
    )

    job = FineTuneJob.create(
        train,
        validation_file=validation,
        model=MODEL,
        backend="openai" if openai else OfflineBackend(),
        journal=journal,  # None: the journal in finetune_qa's cache directory
        n_epochs=3,
        suffix="lumen",
    )
    print(f"Created {job.id} on the {job.backend.name} backend.")

    started = job.info.created_at

    def on_status(info: JobInfo) -> None:
        print(f"  status: {info.status}", flush=True)

    def on_event(event: JobEvent) -> None:
        data = event.data or {}
        if event.type == "metrics" and data.get("step", 0) % 10 == 0:
            print(f"  +{event.created_at - started:>4} s  {event.message}", flush=True)

    # offline, it polls on the virtual clock; on OpenAI, every 5 to 60 seconds
    info = job.wait(on_status=on_status, on_event=on_event)

    points = job.metrics()
    print(f"Fine-tuned model: {info.fine_tuned_model}")
    print(f"Trained tokens: {info.trained_tokens or 0:,}; steps: {len(points)}")
    losses = [point.train_loss for point in points if point.train_loss is not None]
    if losses:
        print(f"Final train loss: {losses[-1]:.3f} (first step: {losses[0]:.3f})")

    bot = job.chat_model()  # the training system prompt and stop marker
    for kind, question in QUESTIONS.items():
        answer = bot.ask(question)
        print(f"Q ({kind}): {question}")
        print(f"A: {answer.text}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "workdir",
        nargs="?",
        type=Path,
        help="directory to keep the JSONL files and the journal in (default: a temporary one)",
    )
    parser.add_argument(
        "--openai",
        action="store_true",
        help="train and ask on OpenAI (needs OPENAI_API_KEY; takes minutes, costs about a cent)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.openai and not os.environ.get("OPENAI_API_KEY"):
        print(NO_KEY, file=sys.stderr)
        return 2
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run(args.workdir, openai=args.openai, journal=args.workdir / "journal.jsonl")
        with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
            journal = None if args.openai else Path(tmp) / "journal.jsonl"
            return run(Path(tmp), openai=args.openai, journal=journal)
    except FineTuneQAError as exc:  # one line, as the CLI prints it (a bad key, a failed job)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the job goes on at the provider; the journal knows it
        print("interrupted: run the same command again to pick the job up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
