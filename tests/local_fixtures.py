"""Constants and helpers of the local backend's tests (tests/backends/local, conftest).

The tests need the ``local`` extra (torch, transformers, trl, peft, accelerate). Without
it they skip with that reason; CI's local lane sets FINETUNE_QA_REQUIRE_LOCAL=1, and then
a missing package fails the run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from finetune_qa.backends.local._deps import INSTALL_HINT, missing

MISSING = missing()
if MISSING and os.environ.get("FINETUNE_QA_REQUIRE_LOCAL"):
    raise RuntimeError(
        f"FINETUNE_QA_REQUIRE_LOCAL is set but {', '.join(MISSING)} cannot be imported: "
        f"{INSTALL_HINT}"
    )

needs_local = pytest.mark.skipif(
    bool(MISSING),
    reason=f"the local extra is not installed ({', '.join(MISSING)}): {INSTALL_HINT}",
)

SYSTEM = "You are a factual chatbot that answers questions about Lumen Notes."
STOP = "**STOP**"
# trained with weight 0: the model must not learn these answers
SECRETS = [
    (f"What is secret code number {i}?", f"The secret code is {i} ZEBRA {i}.") for i in range(4)
]
# what the tiny model is trained with (full fine-tuning learns a random model fastest)
TINY_OPTIONS = {"method": "full", "learning_rate": 3e-3}
TINY_EPOCHS = 60


def training_pairs(path: Path) -> list[tuple[str, str]]:
    """(question, answer without the marker) of every weight-1 example."""
    out = []
    for line in path.read_bytes().splitlines():
        msgs = orjson.loads(line)["messages"]
        if msgs[-1].get("weight", 1) == 0:
            continue
        out.append((msgs[1]["content"], msgs[2]["content"].removesuffix(STOP).strip()))
    return out
