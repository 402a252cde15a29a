"""Shared fixtures. Every test runs offline; tiktoken's cache is a fresh directory per session."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

# The suite is a tool developers run all day: keep compiled modules between runs (Python's
# __pycache__/, git-ignored), pytest's assertion-rewritten test modules included, even where
# PYTHONDONTWRITEBYTECODE is set. Without them every run, every xdist worker and every
# subprocess (examples, the CLI, process pools) compiles the package and the tests anew.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from local_fixtures import SECRETS, STOP, SYSTEM, TINY_EPOCHS, TINY_OPTIONS  # noqa: E402

# Hermetic token counting: tiktoken reads (and finetune_qa seeds) this cache only.
_CACHE = tempfile.mkdtemp(prefix="ftqa-tiktoken-")
os.environ["TIKTOKEN_CACHE_DIR"] = _CACHE
# Journals and the CLI's offline state go to a scratch directory, never the user's cache.
os.environ["FINETUNE_QA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ftqa-cache-")
os.environ.pop("FINETUNE_QA_BACKEND", None)
# The offline fine-tunes match trained words unless a test turns word knowledge on itself.
os.environ.pop("FINETUNE_QA_OFFLINE_WORDS", None)
# Retirement warnings depend on the date; pin it so shown outputs stay true tomorrow.
os.environ["FINETUNE_QA_TODAY"] = "2026-11-25"
# The CLI's offline state lives in the working project; a test that runs a command from the
# repository root must not leave one there, so the session's state goes to scratch too
# (tests of the per-project default delete this variable).
os.environ["FINETUNE_QA_OFFLINE_STATE"] = os.path.join(
    tempfile.mkdtemp(prefix="ftqa-state-"), "offline-api.json"
)

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def seed_csv(tmp_path: Path) -> Path:
    """A small seed-layout CSV with the quirks the old pipeline got wrong."""
    rows = [
        ("questions", "answers"),
        (
            "1. What is Acme Anvils?\n2. Where is Acme based?\n3. Hours?",
            "1. Acme Anvils makes drop-forged anvils.\n2. Acme is based in Tucson, Arizona.\n3. 9-5.",
        ),
        (
            "\n".join(f"{i}. What does plan number {i} include?" for i in range(1, 13)),
            "\n".join(f"{i}. Plan {i} includes {i} anvils per month." for i in range(1, 13)),
        ),
    ]
    import csv

    path = tmp_path / "qa.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make any attempt to download tiktoken rank files fail loudly."""
    import tiktoken.load

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise ConnectionError("network disabled in tests")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    yield


# --------------------------------------------------------------------------- local backend
# A real tiny model built here, and one trained job, shared by tests/backends/local (they
# skip without the `local` extra; see tests/local_fixtures.py).


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


@pytest.fixture
def offline_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLI test's own project: the offline backend, its state, a cache and the working folder.

    Returns the offline state's path (it exists once a command has used the offline API).
    """
    state = tmp_path / "offline-api.json"
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(state))
    monkeypatch.setenv("FINETUNE_QA_BACKEND", "offline")
    monkeypatch.setenv("FINETUNE_QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return state
