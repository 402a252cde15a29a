#!/usr/bin/env python3
"""Suite benchmark: how long the README's test command (``pytest``) takes, against 90 s.

A benchmark, not a test: it prints figures and exits 0 once it has measured, or 1 when a
run failed (a failing suite has no time worth reporting).

It clones the repository's committed HEAD (or ``--rev``) into a temporary directory (so
nothing of this checkout's caches helps), then runs the README's test command there ``--runs`` times
(default 2) with the current interpreter: the first run is a fresh clone's, the later
ones are a developer's next runs (compiled modules kept). The environment is this
process's own, except that ``PYTHONPATH`` points at the clone so the clone's code is what
runs. Reported per run: wall time, CPU time (user + system, children included), tests
passed and skipped, and wall / 90 s (the target of issue #11: at most 1.0).

Usage: ``python bench/bench_suite.py [--runs N] [--repo PATH] [--rev COMMIT]``.
Runs in about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 90.0
ROOT = Path(__file__).resolve().parent.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(clone: Path) -> tuple[float, float, str, int]:
    """One run of ``pytest`` in ``clone``: wall s, CPU s, its summary line, its exit code."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    summary = lines[-1].strip("= ") if lines else (proc.stdout + proc.stderr)[-400:]
    return wall, cpu, summary, proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="runs of the suite in one clone")
    ap.add_argument("--repo", type=Path, default=ROOT, help="the git checkout to clone")
    ap.add_argument(
        "--rev", default="HEAD", help="the commit to run (to compare with an older one)"
    )
    args = ap.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="ftqa-bench-suite-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", args.rev], cwd=clone, check=True)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"clone of {args.repo} at {head}; command: pytest (the README's)")
        print(f"{'run':<22}{'wall s':>8}{'cpu s':>8}{'wall/90s':>10}  result")
        for i in range(args.runs):
            wall, cpu, summary, code = run_once(clone)
            failed |= code != 0
            label = "1 (fresh clone)" if i == 0 else f"{i + 1} (caches kept)"
            print(f"{label:<22}{wall:>8.1f}{cpu:>8.1f}{wall / TARGET_S:>10.2f}  {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
