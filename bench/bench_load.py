#!/usr/bin/env python3
"""Load benchmark: 200 concurrent ``ask_many`` callers, and a 1M-pair build + validate.

A benchmark, not a test: it prints figures and exits 0 once it has measured, or 1 when a
run had errors (any failed question, any failed command).

(a) Chat load, in process, on the offline backend with 20 ms injected latency per request:
    200 threads each call ``ask_many`` (50 questions) on one shared ``ChatModel``; then one
    ``aask_many`` of the same 10,000 questions with concurrency 200. Reported: questions,
    errors (must be 0), wall time, throughput, peak RSS of this process.
(c) Chat load over HTTP: ``finetune-qa serve`` as a child process, 200 threads each
    sending ``--questions`` chat completions at once on their own connection (raw
    ``http.client``, no retries). Reported: requests, connection resets (must be 0), other
    errors (must be 0), wall time, throughput.
(b) Data load: ``finetune-qa build`` then ``finetune-qa validate`` as child processes at
    100k, 300k and 1M pairs (data from ``bench/out`` or generated with the shared
    ``make_data.py``, reusing bench_build_validate's helpers), with the peak RSS of each
    process tree; the 1M / 100k ratio of the peak shows whether memory is flat (~1.0).

Usage: ``python bench/bench_load.py [--sizes 100000,300000,1000000] [--skip-data]
[--skip-serve] [--skip-chat]``.
Runs in about 3-6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_build_validate import (
    ensure_data,
    expand_template,
    find_shared_bench,
    fmt_mib,
    mib,
    run_measured,
)

from finetune_qa import ChatModel
from finetune_qa.backends import OfflineBackend

OUT = Path(__file__).resolve().parent / "out"
BUILD = "finetune-qa build {csv} --output {out} --no-tokens --json"
VALIDATE = "finetune-qa validate {out} --model gpt-4o-mini --json"


def peak_rss_mib() -> float:
    """This process's peak RSS so far."""
    return mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def chat_load(workers: int, per_worker: int, latency: float) -> bool:
    """Run (a); return True when no question failed."""
    backend = OfflineBackend(max_retries=0)
    backend.fake.inject("POST /chat/completions", latency=latency, times=None)
    bot = ChatModel("gpt-4o-mini", backend=backend, concurrency=4)
    questions = [f"What does plan {i} include?" for i in range(per_worker)]
    errors = [0] * workers
    answered = [0] * workers

    def worker(k: int) -> None:
        for item in bot.ask_many(questions):
            answered[k] += 1
            errors[k] += 0 if item.ok else 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total, failed = sum(answered), sum(errors)
    print(
        f"ask_many  x{workers} threads: {total:,} questions, {failed} errors, {wall:.1f} s, "
        f"{total / wall:,.0f} q/s, peak RSS {peak_rss_mib():.0f} MiB"
    )
    everything = questions * workers
    t0 = time.perf_counter()
    items = asyncio.run(bot.aask_many(everything, concurrency=workers))
    wall = time.perf_counter() - t0
    afailed = sum(1 for i in items if not i.ok)
    print(
        f"aask_many concurrency {workers}: {len(items):,} questions, {afailed} errors, "
        f"{wall:.1f} s, {len(items) / wall:,.0f} q/s, peak RSS {peak_rss_mib():.0f} MiB"
    )
    return failed == 0 and afailed == 0 and total == len(items) == workers * per_worker


def serve_load(workers: int, per_worker: int) -> bool:
    """Run (c); return True when no request was reset or failed."""
    import http.client
    import json
    import re
    import subprocess

    proc = subprocess.Popen(
        # -q: no log line per request (nobody drains this pipe after the first line)
        [sys.executable, "-m", "finetune_qa", "serve", "--port", "0", "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://([\d.]+):(\d+)/v1", line)
        if found is None:
            print(f"serve did not start: {line.strip()}")
            return False
        host, port = found.group(1), int(found.group(2))
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi?"}]}
        )
        headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
        resets = [0] * workers
        errors = [0] * workers
        done = [0] * workers
        start = threading.Barrier(workers)

        def worker(k: int) -> None:
            conn = http.client.HTTPConnection(host, port, timeout=120)
            start.wait()
            for _ in range(per_worker):
                try:
                    conn.request("POST", "/v1/chat/completions", body, headers)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        done[k] += 1
                    else:
                        errors[k] += 1
                except (ConnectionResetError, BrokenPipeError):
                    resets[k] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=120)
                except (OSError, http.client.HTTPException):
                    errors[k] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=120)
            conn.close()

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    total = sum(done) + sum(resets) + sum(errors)
    print(
        f"serve     x{workers} connections: {total:,} chats, {sum(resets)} resets, "
        f"{sum(errors)} errors, {wall:.1f} s, {sum(done) / wall:,.0f} chats/s"
    )
    return sum(resets) == 0 and sum(errors) == 0


def data_load(sizes: list[int], seed: int) -> bool:
    """Run (b); return True when every command succeeded."""
    shared = find_shared_bench()
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    peaks: dict[int, float] = {}
    ok = True
    print(f"{'pairs':>9}  {'step':<9} {'wall s':>7} {'peak MiB':>9} {'tree MiB':>9}")
    for n in sizes:
        csv_path, _ = ensure_data(shared, OUT, n, seed)
        out = OUT / f"load_{n}.jsonl"
        values = {"csv": str(csv_path), "out": str(out)}
        peak = 0.0
        for step, template in (("build", BUILD), ("validate", VALIDATE)):
            res = run_measured(expand_template(template, values), logs / f"load_{step}_{n}")
            ok = ok and res.ok
            tree = max(res.tree_rss_kib, res.peak_rss_kib)
            peak = max(peak, mib(tree))
            print(
                f"{n:>9,}  {step:<9} {res.wall_s:>7.1f} {fmt_mib(mib(res.peak_rss_kib)):>9} "
                f"{fmt_mib(mib(tree)):>9}" + ("" if res.ok else f"  FAILED: {res.stderr_tail(3)}")
            )
        peaks[n] = peak
        out.unlink(missing_ok=True)
    small, large = min(peaks), max(peaks)
    print(
        f"peak RSS (process tree) {large:,} / {small:,} pairs: "
        f"{peaks[large]:.0f} / {peaks[small]:.0f} MiB = {peaks[large] / peaks[small]:.2f} "
        "(flat memory: about 1.0)"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when any question or command failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--questions", type=int, default=50, help="per worker")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--seed", type=int, default=1234, help="make_data.py seed")
    parser.add_argument("--skip-chat", action="store_true")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args(argv)
    ok = True
    # the children first: a child forked from a large parent starts with the parent's
    # ru_maxrss, so the chat load (which grows this process) runs last
    if not args.skip_data:
        ok = data_load([int(s) for s in args.sizes.split(",")], args.seed) and ok
    if not args.skip_serve:
        ok = serve_load(args.workers, args.questions) and ok
    if not args.skip_chat:
        ok = chat_load(args.workers, args.questions, args.latency) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
