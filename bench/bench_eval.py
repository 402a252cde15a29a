#!/usr/bin/env python3
"""Benchmark EvalSuite.run: an eval of N questions with injected latency, concurrent vs sequential.

Runs on the offline backend with L seconds of (real) latency injected into every chat
request, so the figures measure how much waiting the evaluation overlaps. The suite is
N questions over the three sets (the fine-tune's training questions verbatim, rephrased
and unrelated ones), asked of an offline fine-tune at concurrency C and at concurrency 1.
Target: >= 20x faster for N=1000, L=0.05, C=32.

Usage:
    python bench/bench_eval.py                      # the target's sizes (about a minute)
    python bench/bench_eval.py --questions 200      # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def build(n: int, workdir: Path) -> tuple[object, object]:
    from finetune_qa import DatasetBuilder, FineTuneJob, OfflineBackend, QAPair
    from finetune_qa.evaluation import UNRELATED_QUESTIONS, EvalSuite

    n_unrelated = min(len(UNRELATED_QUESTIONS), n // 10)
    n_pairs = (n - n_unrelated + 1) // 2
    pairs = [
        QAPair(
            question=f"What does plan number {i} include?",
            answer=f"Plan {i} includes {i % 50 + 1} GB of storage and {i % 7 + 1} seats.",
        )
        for i in range(n_pairs)
    ]
    variations = {
        p.question: f"Could you tell me what plan number {i} includes?" for i, p in enumerate(pairs)
    }
    suite = EvalSuite.from_pairs(pairs, variations=variations, limit={"unrelated": n_unrelated})
    suite = EvalSuite(suite.cases[:n])
    DatasetBuilder(min_question_length=1).add_pairs(pairs).build(workdir / "train.jsonl")
    backend = OfflineBackend(max_retries=0)
    job = FineTuneJob.create(workdir / "train.jsonl", model="gpt-4o-mini", backend=backend)
    job.wait()
    return suite, job.chat_model(retries=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per chat request")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args(argv)

    from finetune_qa.evaluation import EvalSuite

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        suite, chat = build(args.questions, Path(d))
    assert isinstance(suite, EvalSuite)
    backend = chat.backend  # type: ignore[attr-defined]
    backend.fake.inject("POST /chat/completions", latency=args.latency, times=None)

    t = time.perf_counter()
    sequential = suite.run(chat, concurrency=1)  # type: ignore[arg-type]
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    concurrent = suite.run(chat, concurrency=args.concurrency)  # type: ignore[arg-type]
    t_par = time.perf_counter() - t

    assert sequential.errors == concurrent.errors == 0
    assert [c.output for c in sequential.cases] == [c.output for c in concurrent.cases]
    counts = ", ".join(f"{k} {v}" for k, v in suite.counts().items())
    print(f"suite: {len(suite)} questions ({counts})")
    print(
        f"eval: {len(suite)} questions, {args.latency * 1000:.0f} ms latency: "
        f"sequential {t_seq:.2f} s, concurrency {args.concurrency} {t_par:.2f} s "
        f"-> {t_seq / t_par:.1f}x (target >= 20x)"
    )
    exact = concurrent.score("verbatim", "exact") or 0.0
    print(
        f"scores: verbatim exact {exact:.2f}, unrelated answered "
        f"{concurrent.off_topic_answer_rate or 0.0:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
