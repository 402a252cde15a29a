"""Fine-tune a model on the bundled sample and ask it questions, on the offline backend.

Shows: the training half of the lifecycle end to end. ``DatasetBuilder`` writes train and
validation JSONL from the sample QA export; ``FineTuneJob.create`` checks the request and
the file, uploads it and starts a job (journaled: against OpenAI, running the script again
finds that job instead of paying for a second one); ``wait`` follows the job through its
statuses and events; ``metrics`` reads the per-step losses; and ``chat_model`` asks the
fine-tune a training question (answered verbatim), a rephrasing of one (the nearest
trained answer) and an unrelated question (a fluent off-domain answer, which is what a
real fine-tune gives too; guardrails are for that).

The offline backend simulates OpenAI's API on a virtual clock: no key, no network, no cost,
and the job's minutes pass in a fraction of a second. Run it from the repository root:

    python examples/05_finetune_offline.py          # works in a temporary directory
    python examples/05_finetune_offline.py out/     # keeps out/train.jsonl, validation.jsonl,
                                                    # and the job journal, out/journal.jsonl
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from finetune_qa import (
    DatasetBuilder,
    FineTuneJob,
    JobEvent,
    JobInfo,
    OfflineBackend,
    sample_csv,
)

SYSTEM_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."
QUESTIONS = {
    "a training question": "How much does Lumen Pro cost?",
    "a rephrasing": "What does Lumen Pro cost per month?",
    "an unrelated question": "What is Star Wars?",
}


def run(workdir: Path) -> int:
    train, validation = workdir / "train.jsonl", workdir / "validation.jsonl"
    report = (
        DatasetBuilder(system_prompt=SYSTEM_PROMPT)
        .add_source(sample_csv())
        .split(0.15, seed=42)
        .build(train, validation_output=validation)
    )
    print(f"Built {report.train} training and {report.validation} validation examples.")

    backend = OfflineBackend()  # OpenAIBackend() (or backend="openai") trains for real
    job = FineTuneJob.create(
        train,
        validation_file=validation,
        model="gpt-4o-mini",
        backend=backend,
        journal=workdir / "journal.jsonl",
        n_epochs=3,
        suffix="lumen",
    )
    print(f"Created {job.id} on the {backend.name} backend.")

    started = job.info.created_at

    def on_status(info: JobInfo) -> None:
        print(f"  status: {info.status}")

    def on_event(event: JobEvent) -> None:
        data = event.data or {}
        if event.type == "metrics" and data.get("step", 0) % 10 == 0:
            print(f"  +{event.created_at - started:>4} s  {event.message}")

    info = job.wait(on_status=on_status, on_event=on_event)  # polls on the virtual clock

    points = job.metrics()
    print(f"Fine-tuned model: {info.fine_tuned_model}")
    print(f"Trained tokens: {info.trained_tokens:,}; steps: {len(points)}")
    print(f"Final train loss: {points[-1].train_loss:.3f} (first step: {points[0].train_loss:.3f})")

    bot = job.chat_model()  # the training system prompt and stop marker
    for kind, question in QUESTIONS.items():
        answer = bot.ask(question)
        print(f"Q ({kind}): {question}")
        print(f"A: {answer.text}")
    return 0


def main() -> int:
    if len(sys.argv) > 1:
        workdir = Path(sys.argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
