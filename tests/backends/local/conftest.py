"""Fixtures for the local backend: a real tiny model built here, and one trained job.

The tests need the ``local`` extra (torch, transformers, trl, peft, accelerate). Without
it they skip with that reason; CI's local lane sets FINETUNE_QA_REQUIRE_LOCAL=1, and then
a missing package fails the run instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from local_fixtures import SECRETS, STOP, SYSTEM, TINY_EPOCHS, TINY_OPTIONS


def _texts(path: Path) -> list[str]:
    out = []
    for line in path.read_bytes().splitlines():
        for m in orjson.loads(line)["messages"]:
            out.append(m["content"])
    return out


@pytest.fixture(scope="session")
def sample_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample as a chat JSONL, plus weight-0 conversations."""
    from finetune_qa import DatasetBuilder, sample_csv

    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    DatasetBuilder(system_prompt=SYSTEM, stop=STOP).add_source(sample_csv()).build(path)
    with path.open("ab") as f:
        for q, a in SECRETS:
            msgs = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": q},
                {"role": "assistant", "content": f"{a} {STOP}", "weight": 0},
            ]
            f.write(orjson.dumps({"messages": msgs}) + b"\n")
    return path


@pytest.fixture(scope="session")
def tiny_model(sample_train: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Hugging Face model directory (tokenizer trained on the data, random weights)."""
    from finetune_qa.backends.local import build_tiny_model
    from finetune_qa.guardrails import OFF_TOPIC_TRAINING_QUESTIONS

    texts = _texts(sample_train) + list(OFF_TOPIC_TRAINING_QUESTIONS) + ["yes", "no"] * 50
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts)


@pytest.fixture(scope="session")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-backend")


@pytest.fixture(scope="session")
def trained_job(sample_train: Path, tiny_model: Path, local_root: Path) -> Iterator[object]:
    """The sample trained on the tiny model by the local backend (one job per session)."""
    from finetune_qa import FineTuneJob, LocalBackend

    job = FineTuneJob.create(
        sample_train,
        model=str(tiny_model),
        backend=LocalBackend(root=local_root),
        n_epochs=TINY_EPOCHS,
        provider_options=TINY_OPTIONS,
        seed=0,
        journal=local_root / "journal.jsonl",
    )
    job.wait(timeout=600)
    yield job
