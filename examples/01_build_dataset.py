"""Build chat fine-tuning JSONL from the bundled sample QA export, with a validation file.

Shows: ``DatasetBuilder`` reading a seed-layout CSV (numbered lists in two cells), training
on every pair and repeating 10% of them in a validation file, counting tokens and pricing
training in the same pass, and the build report that accounts for every pair
(read = kept + dropped, each drop under a reason).

Runs offline, with no API key. Run it from the repository root:

    python examples/01_build_dataset.py           # writes to a temporary directory
    python examples/01_build_dataset.py out/      # writes out/train.jsonl, out/validation.jsonl
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from finetune_qa import DatasetBuilder, sample_csv


def run(workdir: Path) -> int:
    train = workdir / "train.jsonl"
    validation = workdir / "validation.jsonl"
    print(f"Building {train} and {validation} from {sample_csv().name} (bundled sample).")
    report = (
        DatasetBuilder(
            system_prompt="You are a factual chatbot that answers questions about Lumen Notes."
        )
        .add_source(sample_csv())
        .sample_validation(0.1, seed=42)  # a QA bot trains on every fact; 10% repeated
        .build(train, validation_output=validation, model="gpt-4o-mini")
    )
    print(report.to_text())

    print("In numbers:")
    print(f"  read {report.read} = kept {report.kept} + dropped {report.dropped}")
    print(f"  kept {report.kept} = train {report.train}; validation {report.validation} of them")
    for reason, drop in report.dropped_by_reason.items():
        print(f"  dropped as {reason}: {drop.count}")
    print(f"  reconciles: {report.reconciles}")

    first_line = train.read_text(encoding="utf-8").splitlines()[0]
    print(f"First line of {train.name}:")
    print(f"  {first_line}")
    return 0 if report.reconciles else 1


def main() -> int:
    if len(sys.argv) > 1:
        workdir = Path(sys.argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
