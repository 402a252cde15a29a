"""Ask a fine-tuned model 50 questions at once, 8 at a time, through injected faults.

Shows: ``ChatModel.ask_many`` with bounded concurrency, results in the order asked, and
failures recorded per question instead of stopping the batch. The model is fine-tuned
offline from the bundled sample; then the offline API is told to rate-limit three
requests (429 with retry-after: retried, and the question is answered) and refuse two
(400: not worth retrying, so two questions fail). The 50 questions are the 24 training
questions, 16 of them typed carelessly, and 10 that have nothing to do with Lumen Notes.

The offline backend needs no key and no network; retries wait on its virtual clock, so
the rate limits cost no real time. ``await bot.aask_many(...)`` is the async twin.

With ``--openai`` the same questions go to a real fine-tune on OpenAI
(``backend="openai"``, which reads ``OPENAI_API_KEY``): the script trains a
gpt-4o-mini-2024-07-18 fine-tune first (some minutes, a few cents), then asks. No faults
are injected there, so every question should be answered, and retries wait in real time.
Without the key set, it stops at once with exit code 2. The journal goes to the given
directory, else (with ``--openai``) to finetune_qa's cache directory, so running it again
asks the same fine-tune instead of training another. Run it from the repository root:

    python examples/06_ask_many.py                   # offline, in a temporary directory
    python examples/06_ask_many.py out/              # keeps out/train.jsonl and out/journal.jsonl
    OPENAI_API_KEY=sk-... python examples/06_ask_many.py --openai [out/]   # on OpenAI
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from finetune_qa import (
    BatchItem,
    DatasetBuilder,
    FineTuneJob,
    FineTuneQAError,
    OfflineBackend,
    read_qa,
    sample_csv,
)

MODEL = "gpt-4o-mini-2024-07-18"  # OpenAI's name; the offline backend knows it too
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
NO_KEY = "error: --openai needs an API key: set OPENAI_API_KEY, or drop --openai to run offline"


def run(workdir: Path, *, openai: bool, journal: Path | None) -> int:
    train = workdir / "train.jsonl"
    DatasetBuilder(system_prompt=SYSTEM_PROMPT).add_source(sample_csv()).build(train)
    trained = {pair.question: pair.answer for pair in read_qa(train, stop="**STOP**")}

    # offline, retries are ChatModel's, on the virtual clock (the openai client's would
    # really sleep); on OpenAI, the backend's openai client retries too
    offline = None if openai else OfflineBackend(max_retries=0)
    job = FineTuneJob.create(
        train,
        model=MODEL,
        backend=offline if offline is not None else "openai",
        journal=journal,  # None: the journal in finetune_qa's cache directory
        suffix="lumen",
    )
    if openai:
        print(f"Fine-tuning on OpenAI: job {job.id} ({job.status}); this takes some minutes.")
    job.wait()
    print(f"Fine-tuned {job.fine_tuned_model} on {len(trained)} questions.")

    careless = [q.lower().rstrip("?") for q in list(trained)[:16]]
    questions = [*trained, *careless, *UNRELATED]

    before = 0
    if offline is not None:  # faults to show what ask_many does with them
        offline.fake.inject("POST /chat/completions", status=429, retry_after=2, times=3)
        offline.fake.inject("POST /chat/completions", status=400, times=2)
        before = len(offline.fake.requests)

    done: list[BatchItem] = []

    def progress(item: BatchItem) -> None:  # called as each question completes
        done.append(item)
        if len(done) % 10 == 0:
            print(f"  {len(done)}/{len(questions)} done", flush=True)

    bot = job.chat_model()
    print(f"Asking {len(questions)} questions, 8 at a time:")
    items = bot.ask_many(questions, concurrency=8, on_result=progress)

    ok = [item for item in items if item.ok]
    failed = [item for item in items if not item.ok]
    print(f"ok: {len(ok)}, errors: {len(failed)}")
    for error_type, n in sorted(Counter(item.error_type for item in failed).items()):
        print(f"  {error_type}: {n}")
    if offline is not None:
        sent = len(offline.fake.requests) - before
        print(
            f"requests sent: {sent} ({len(questions)} questions + {sent - len(questions)} retries)"
        )
    print(f"in order: {[item.question for item in items] == questions}")

    asked = [item for item in ok if item.question in trained]
    verbatim = [
        item for item in asked if item.answer and item.answer.text == trained[item.question]
    ]
    print(f"trained questions answered verbatim: {len(verbatim)} of {len(asked)} answered")
    for index in (21, 39, 49):  # one of each kind, from late in the batch
        item = items[index]
        print(f"  [{index}] {item.question} -> {item.answer.text if item.answer else item.error}")
    # offline: the two refused requests, and nothing else; on OpenAI: nothing
    return 0 if len(failed) == (0 if openai else 2) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "workdir",
        nargs="?",
        type=Path,
        help="directory to keep the JSONL file and the journal in (default: a temporary one)",
    )
    parser.add_argument(
        "--openai",
        action="store_true",
        help="train and ask on OpenAI (needs OPENAI_API_KEY; takes minutes, costs a few cents)",
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
