"""Fine-tune a model on this machine's CPU and ask it questions: no key, no network, no GPU.

Shows: the local backend end to end, on a real Hugging Face model small enough to train in
seconds. ``build_tiny_model`` writes a model directory (a tokenizer trained on the sample's
own text, a two-layer Llama of random weights); ``DatasetBuilder`` writes the bundled sample
as chat JSONL; ``FineTuneJob.create`` with ``backend=LocalBackend(...)`` starts a training
process (TRL's ``SFTTrainer``, here full fine-tuning at a learning rate of 3e-3 for 60
epochs, since a random model has everything to learn); ``wait`` follows it; ``metrics``
reads its losses; and ``chat_model`` asks the result three training questions. The same
code trains a real open model (a Hugging Face id such as ``Qwen/Qwen2.5-0.5B-Instruct``)
with LoRA by changing ``model=`` and the options.

It needs the ``local`` extra (torch, transformers, trl, peft, accelerate):
``pip install 'finetune-qa[local]'``. Without it, it stops at once with exit code 2 and
one line saying so. Training takes about ten seconds on a laptop CPU. Run it from the
repository root:

    python examples/08_train_on_your_machine.py         # in a temporary directory
    python examples/08_train_on_your_machine.py out/    # keeps out/train.jsonl, the tiny
                                                        # model and the run directory
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from finetune_qa import (
    ConfigError,
    DatasetBuilder,
    FineTuneJob,
    FineTuneQAError,
    LocalBackend,
    read_qa,
    sample_csv,
)
from finetune_qa.backends.local import build_tiny_model

SYSTEM_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."
STOP = "**STOP**"
QUESTIONS = [
    "What is Lumen Notes?",
    "How much does Lumen Pro cost?",
    "How do I reset my password?",
]
# a random model has everything to learn: full fine-tuning at a high rate learns it fastest
OPTIONS = {"method": "full", "learning_rate": 3e-3}
EPOCHS = 60
# Hugging Face draws progress bars on stderr when it saves and loads weights; keep it quiet
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def run(workdir: Path) -> int:
    pairs = list(read_qa(sample_csv()))
    texts = [SYSTEM_PROMPT, STOP] + [text for p in pairs for text in (p.question, p.answer)]
    try:
        # checks for the local extra before it writes anything
        model_dir = build_tiny_model(workdir / "tiny-model", texts)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Built a tiny model from the sample's text: {model_dir.name}/")

    train = workdir / "train.jsonl"
    builder = DatasetBuilder(system_prompt=SYSTEM_PROMPT, stop=STOP).add_source(sample_csv())
    report = builder.build(train)
    print(f"Built {report.kept} training examples.")

    backend = LocalBackend(root=workdir / "runs")
    job = FineTuneJob.create(
        train,
        model=str(model_dir),
        backend=backend,
        n_epochs=EPOCHS,
        seed=0,
        provider_options=OPTIONS,
        journal=workdir / "journal.jsonl",
    )
    print(f"Training job {job.id} on this machine (run directory: runs/jobs/{job.id}/).")
    info = job.wait(timeout=600)
    print(f"  status: {info.status}")
    print(f"Fine-tuned model: {info.fine_tuned_model}")

    points = job.metrics()
    first, last = points[0], points[-1]
    print(
        f"steps: {last.step}; train loss {first.train_loss:.3f} at step {first.step}, "
        f"{last.train_loss:.3f} at step {last.step}"
    )

    bot = job.chat_model()  # the training system prompt and stop marker
    for question in QUESTIONS:
        print(f"Q: {question}\nA: {bot.ask(question).text}")
    return 0


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        if out is not None:
            return run(out)
        with tempfile.TemporaryDirectory(prefix="finetune-qa-local-") as tmp:
            return run(Path(tmp))
    except FineTuneQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
