"""Validate a training file for two models and compare what training would cost.

Shows: ``validate_file`` checking a chat JSONL (and its validation file) line by line,
exact token counts for each model's own encoding, the per-example token limit, OpenAI's
default number of epochs, the dollar estimate, and the retirement warnings that come with
the model. The same file is priced for gpt-4o-mini and gpt-3.5-turbo: they tokenize with
different encodings (o200k_base, cl100k_base), have different per-example limits and
prices, and gpt-3.5-turbo has already been shut down, which the report says.

Runs offline, with no API key. Run it from the repository root:

    python examples/02_validate_and_price.py         # builds the sample file in a temp dir
    python examples/02_validate_and_price.py out/    # validates out/train.jsonl, as written
                                                     # by 01_build_dataset.py (built if missing)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from finetune_qa import DatasetBuilder, get_model_info, sample_csv, validate_file

MODELS = ("gpt-4o-mini", "gpt-3.5-turbo")
SYSTEM_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."


def ensure_files(workdir: Path) -> tuple[Path, Path]:
    """The training and validation files in ``workdir``, built from the sample if missing."""
    train, validation = workdir / "train.jsonl", workdir / "validation.jsonl"
    if train.exists() and validation.exists():
        print(f"Using {train} and {validation}.")
    else:
        print(f"Building {train} and {validation} from the bundled sample first.")
        (
            DatasetBuilder(system_prompt=SYSTEM_PROMPT)
            .add_source(sample_csv())
            .split(0.1, seed=42)
            .build(train, validation_output=validation)
        )
    return train, validation


def run(workdir: Path) -> int:
    train, validation = ensure_files(workdir)
    reports = {}
    for model in MODELS:
        report = validate_file(train, model=model, validation_path=validation)
        reports[model] = report
        print()
        print(f"== {model}: {'OK' if report.ok else f'{report.error_count} error(s)'}")
        if not report.ok:
            for issue in report.errors:
                print(f"  {issue.render()}")
        cost = report.cost
        largest = report.tokens_per_example.max if report.tokens_per_example else 0
        print(f"  encoding: {report.encoding}")
        print(f"  examples: {report.examples} (validation: {report.validation_examples})")
        print(f"  token limit per example: {cost.token_limit:,}; largest example: {largest:,}")
        print(f"  tokens per epoch: {cost.billed_tokens_per_epoch:,} x {cost.n_epochs} epochs")
        if cost.estimated_cost_usd is not None and cost.price_per_1m is not None:
            print(
                f"  estimated training cost: ${cost.estimated_cost_usd:.4f} "
                f"at ${cost.price_per_1m:g} per 1M tokens"
            )
        else:
            print("  estimated training cost: unknown (no price in the catalogue)")
        info = get_model_info(model)
        print(f"  catalogue: jobs end {info.fine_tuning_ends}, serving ends {info.shutdown_date}")
        for warning in report.model_warnings:
            print(f"  WARNING: {warning}")
        for kind, count in report.warning_counts.items():
            print(f"  warning {kind}: {count}")

    first, second = (reports[m] for m in MODELS)
    print()
    print(
        f"Same file, {first.total_tokens:,} tokens for {MODELS[0]} and "
        f"{second.total_tokens:,} for {MODELS[1]}: the encoding decides the count."
    )
    a, b = first.cost.estimated_cost_usd, second.cost.estimated_cost_usd
    if a and b:
        print(f"Training on {MODELS[1]} would cost {b / a:.1f}x what {MODELS[0]} costs.")
    return 0 if all(r.ok for r in reports.values()) else 1


def main() -> int:
    if len(sys.argv) > 1:
        workdir = Path(sys.argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
