"""Ask a fine-tuned model 50 questions at once, 8 at a time, through injected faults.

Shows: ``ChatModel.ask_many`` with bounded concurrency, results in the order asked, and
failures recorded per question instead of stopping the batch. The model is fine-tuned
offline from the bundled sample; then the offline API is told to rate-limit three
requests (429 with retry-after: retried, and the question is answered) and refuse two
(400: not worth retrying, so two questions fail). The 50 questions are the 24 training
questions, 16 of them typed carelessly, and 10 that have nothing to do with Lumen Notes.

The offline backend needs no key and no network; retries wait on its virtual clock, so
the rate limits cost no real time. ``await bot.aask_many(...)`` is the async twin. Run it
from the repository root:

    python examples/06_ask_many.py          # works in a temporary directory
    python examples/06_ask_many.py out/     # keeps out/train.jsonl and out/journal.jsonl
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

from finetune_qa import BatchItem, DatasetBuilder, FineTuneJob, OfflineBackend, read_qa, sample_csv

SYSTEM_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."
UNRELATED = [
    "How do I bake bread?",
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "How tall is Mount Everest?",
    "What is photosynthesis?",
    "How do volcanoes form?",
    "What is the speed of light?",
    "Who painted the Mona Lisa?",
    "How do I learn to juggle?",
    "What is Star Wars?",
]


def run(workdir: Path) -> int:
    train = workdir / "train.jsonl"
    DatasetBuilder(system_prompt=SYSTEM_PROMPT).add_source(sample_csv()).build(train)
    trained = {pair.question: pair.answer for pair in read_qa(train, stop="**STOP**")}

    # retries are ChatModel's, on the virtual clock (the openai client's would really sleep)
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        train,
        model="gpt-4o-mini",
        backend=backend,
        journal=workdir / "journal.jsonl",
        suffix="lumen",
    )
    job.wait()
    print(f"Fine-tuned {job.fine_tuned_model} on {len(trained)} questions.")

    careless = [q.lower().rstrip("?") for q in list(trained)[:16]]
    questions = [*trained, *careless, *UNRELATED]

    backend.fake.inject("POST /chat/completions", status=429, retry_after=2, times=3)
    backend.fake.inject("POST /chat/completions", status=400, times=2)
    before = len(backend.fake.requests)

    done: list[BatchItem] = []

    def progress(item: BatchItem) -> None:  # called as each question completes
        done.append(item)
        if len(done) % 10 == 0:
            print(f"  {len(done)}/{len(questions)} done")

    bot = job.chat_model()
    print(f"Asking {len(questions)} questions, 8 at a time:")
    items = bot.ask_many(questions, concurrency=8, on_result=progress)

    ok = [item for item in items if item.ok]
    failed = [item for item in items if not item.ok]
    print(f"ok: {len(ok)}, errors: {len(failed)}")
    for error_type, n in sorted(Counter(item.error_type for item in failed).items()):
        print(f"  {error_type}: {n}")
    sent = len(backend.fake.requests) - before
    print(f"requests sent: {sent} ({len(questions)} questions + {sent - len(questions)} retries)")
    print(f"in order: {[item.question for item in items] == questions}")

    asked = [item for item in ok if item.question in trained]
    verbatim = [
        item for item in asked if item.answer and item.answer.text == trained[item.question]
    ]
    print(f"trained questions answered verbatim: {len(verbatim)} of {len(asked)} answered")
    for index in (21, 39, 49):  # one of each kind, from late in the batch
        item = items[index]
        print(f"  [{index}] {item.question} -> {item.answer.text if item.answer else item.error}")
    return 0 if len(failed) == 2 else 1  # the two refused requests, and nothing else


def main() -> int:
    if len(sys.argv) > 1:
        workdir = Path(sys.argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
