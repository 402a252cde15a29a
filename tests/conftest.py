"""Shared fixtures. Every test runs offline; tiktoken's cache is a fresh directory per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Hermetic token counting: tiktoken reads (and finetune_qa seeds) this cache only.
_CACHE = tempfile.mkdtemp(prefix="ftqa-tiktoken-")
os.environ["TIKTOKEN_CACHE_DIR"] = _CACHE
# Journals and the CLI's offline state go to a scratch directory, never the user's cache.
os.environ["FINETUNE_QA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ftqa-cache-")
os.environ.pop("FINETUNE_QA_BACKEND", None)
# Retirement warnings depend on the date; pin it so shown outputs stay true tomorrow.
os.environ["FINETUNE_QA_TODAY"] = "2026-11-25"
os.environ.pop("FINETUNE_QA_OFFLINE_STATE", None)

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
