#!/usr/bin/env python3
"""Benchmark concurrency where it pays: ask_many, and multi-part uploads.

Both run against the offline backend with injected latency (real seconds), so the
figures measure how much waiting the library overlaps, not a provider's speed.

1. ``ChatModel.ask_many`` over N questions with L seconds of latency per request at
   concurrency C, against a sequential loop of ``ask``. Target: >= 20x faster for
   N=1000, L=0.05, C=32.
2. ``OpenAIBackend.upload_path`` of an S-byte file through the Uploads API, each part
   request throttled by T seconds, with P parts in parallel against 1 at a time.
   Target: >= 3x faster for 1 GB.

Usage:
    python bench/bench_chat_upload.py                    # the targets' sizes
    python bench/bench_chat_upload.py --questions 200 --upload-mb 128   # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def bench_ask_many(n: int, latency: float, concurrency: int) -> dict[str, float]:
    from finetune_qa import ChatModel, OfflineBackend

    backend = OfflineBackend(max_retries=0)
    chat = ChatModel("gpt-4o-mini", backend=backend, retries=0)
    questions = [f"What does plan number {i} include?" for i in range(n)]
    backend.fake.inject("POST /chat/completions", latency=latency, times=None)

    t = time.perf_counter()
    sequential = [chat.ask(q) for q in questions]
    t_seq = time.perf_counter() - t

    t = time.perf_counter()
    batch = chat.ask_many(questions, concurrency=concurrency)
    t_par = time.perf_counter() - t
    assert len(batch) == len(sequential) and all(item.ok for item in batch)
    assert [item.question for item in batch] == questions  # order kept
    return {"sequential_s": t_seq, "ask_many_s": t_par, "speedup": t_seq / t_par}


def bench_upload(size_mb: int, throttle: float, parallel: int, part_mb: int) -> dict[str, float]:
    from finetune_qa import OfflineBackend

    part = part_mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.jsonl"
        line = b'{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}\n'
        block = line * 13000
        with path.open("wb") as f:
            remaining = size_mb * 1024 * 1024
            while remaining > 0:
                chunk = block[:remaining]
                f.write(chunk)
                remaining -= len(chunk)
        results: dict[str, float] = {}
        for label, p in (("sequential_s", 1), ("parallel_s", parallel)):
            backend = OfflineBackend(max_retries=0)  # a fresh fake: memory is freed between runs
            backend.fake.inject("POST /uploads/*/parts", latency=throttle, times=None)
            t = time.perf_counter()
            info = backend.upload_path(path, filename="big.jsonl", part_size=part, parallel=p)
            results[label] = time.perf_counter() - t
            assert info.bytes == path.stat().st_size
            del backend
        results["speedup"] = results["sequential_s"] / results["parallel_s"]
        return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per chat request")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--upload-mb", type=int, default=1024)
    ap.add_argument("--part-mb", type=int, default=64)
    ap.add_argument("--throttle", type=float, default=1.0, help="seconds per part request")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--skip-upload", action="store_true")
    args = ap.parse_args(argv)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    r = bench_ask_many(args.questions, args.latency, args.concurrency)
    print(
        f"ask_many: {args.questions} questions, {args.latency * 1000:.0f} ms latency: "
        f"sequential {r['sequential_s']:.2f} s, concurrency {args.concurrency} "
        f"{r['ask_many_s']:.2f} s -> {r['speedup']:.1f}x (target >= 20x)"
    )
    if not args.skip_upload:
        u = bench_upload(args.upload_mb, args.throttle, args.parallel, args.part_mb)
        print(
            f"upload_path: {args.upload_mb} MiB in {args.part_mb} MiB parts, {args.throttle:.2f} s "
            f"per part: 1 at a time {u['sequential_s']:.2f} s, {args.parallel} at a time "
            f"{u['parallel_s']:.2f} s -> {u['speedup']:.1f}x (target >= 3x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
