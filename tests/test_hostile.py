"""Hostile and careless use (issue #12): each numbered finding reproduced, then held fixed.

Items that could hang or outlive the test (FIFOs, signals, concurrent processes) run the
CLI in a subprocess with a timeout; the rest call ``main()`` in process. Every test here
failed before its fix. Cases and outcomes now:

==  ===========================================  ==========================================
#   case                                         outcome
==  ===========================================  ==========================================
1   -o / --report: a device node, a FIFO, a      exit 2, "not a regular file"; the node is
    link to /proc/self/fd/1                      untouched; a link to a regular file is
                                                 written through (the link stays)
2   eval --html/--markdown/--save-suite/         exit 2, "<option> X is also an input";
    --variations-cache = DATA; guard --out =     --html X --markdown X: "name one file";
    DATA; build -o X --validation X              build names -o and --validation
15  --report in an unwritable folder; a failed   exit 2 before anything is written; no new
    build into new/deep/; rebuild over 0600;     folders left; 0600 kept; --glob may not
    generate --glob '../../*'                    leave the folder
7   a pickle (planted 0666 by another user, or   never unpickled: exit 2, "another user" /
    one's own old one) where the state lives     "pickle ... delete it"; state is JSON 0600;
                                                 a state writable by others is refused
8   --base-url with ?api-key= or user:KEY@       the journal holds the URL without the key
13  nan / inf for --timeout, --speedup,          exit 2, "is not a finite number"
    --temperature, fractions, precision
12  serve --port -1/70000, bad host, port in     exit 2 with one "error:" line, never
    use; status ''/100k chars; --seed 1e20;      "internal error"
    binary stdin to ask
3   input truncated while build/validate read    exit 2, "changed while it was read"; no
    it                                           endless empty ranges, no .tmp left
4   SIGTERM / SIGKILL to build / validate        workers end with the parent, pipes close;
                                                 SIGTERM: exit 143, no .tmp
9   FIFO or /dev/zero link at tiktoken's cache   per-user cache, regular files only, size
    path                                         capped: validate runs normally
10  **STOP** mid-answer, answer already ending   dropped as answer_contains_stop; kept with
    with it, --stop ' ' / '\n' / 'is'             one marker; blank refused; validate warns
                                                 stop_marker_inside_answer
11  serve: bad Content-Length / chunk size,      400 / 413 answers, no traceback; idle
    100k-deep JSON, idle sockets, 200 chats,     connections closed; 200 concurrent chats
    --host 0.0.0.0                               with no reset; a warning for 0.0.0.0
16  UTF-16 without BOM, CR-only JSONL, newline   each named plainly on one line; the CLI
    in a file name, bad gate JSON, validation    takes fractions 0-0.5; the exact split
    fraction 0.9999                              keeps >= 1 training example
5   two trains in one workdir at once; a         one job (journal lock); the token look-up
    deleted or damaged journal                   adopts the earlier job
6   four offline trains at once                  four jobs kept (state lock)
14  2 GB sparse .jsonl/.csv, 27 MB one-line      exit 2 at once, peak RSS < 400 MiB
    JSON array                                   (~80 MB), "looks like one JSON array"
==  ===========================================  ==========================================
"""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_qa.cli import main
from finetune_qa.samples import sample_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state" / "offline-api.json"
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(state))
    monkeypatch.setenv("FINETUNE_QA_BACKEND", "offline")
    monkeypatch.chdir(tmp_path)
    return state


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli(
    *args: str, timeout: float = 60, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a subprocess, killed after ``timeout`` seconds (a hang fails the test)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "finetune_qa", *args],
        capture_output=True,
        timeout=timeout,
        input=input,
        env=full,
        check=False,
    )


def small_csv(path: Path, n: int = 12) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        for i in range(n):
            w.writerow([f"What is the number {i} plan?", f"The number {i} plan has {i} seats."])
    return path


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- 1. not a regular file


def test_1_build_never_replaces_a_device_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "mynull"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a stand-in for /dev/null
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", str(node),
                       "-q", "--no-tokens")  # fmt: skip
    assert code == 2
    assert "not a regular file" in one_error_line(err)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lf.csv", "mynull"]


@pytest.mark.parametrize("kind", ["fifo", "link_to_fd", "report_fifo"])
def test_1_outputs_refuse_fifos_and_links_to_them(tmp_path: Path, kind: str) -> None:
    src = small_csv(tmp_path / "lf.csv")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = ["build", str(src), "-o", str(tmp_path / "t.jsonl"), "-q", "--no-tokens"]
    if kind == "fifo":
        args[3] = str(fifo)
    elif kind == "link_to_fd":
        link = tmp_path / "out"
        link.symlink_to("/proc/self/fd/1")
        args[3] = str(link)
    else:
        args += ["--report", str(fifo)]
    proc = cli(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in one_error_line(proc.stderr.decode())
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not (tmp_path / "t.jsonl").exists()
    if kind == "link_to_fd":
        assert os.path.islink(tmp_path / "out")


def test_1_a_link_to_a_regular_file_is_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", str(link),
                       "-q", "--no-tokens")  # fmt: skip
    assert code == 0, err
    assert link.is_symlink() and real.read_text().startswith('{"messages"')


# ------------------------------------------------------------ 2. outputs over inputs


@pytest.fixture
def trained(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(capsys, "train", str(sample_csv()), "--validation-fraction", "0", "-q")
    assert code == 0, err
    return out.strip()


@pytest.mark.parametrize("option", ["--html", "--markdown", "--save-suite", "--variations-cache"])
def test_2_eval_never_writes_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trained: str, option: str
) -> None:
    ev = tmp_path / "ev.csv"
    ev.write_bytes(sample_csv().read_bytes())
    before = ev.read_bytes()
    args = ["eval", str(ev), "--model", trained, "--limit", "2", option, str(ev)]
    if option == "--variations-cache":
        args.append("--generate-variations")
    code, _, err = run(capsys, *args)
    assert code == 2
    assert f"{option} {ev} is also an input" in one_error_line(err)
    assert ev.read_bytes() == before


def test_2_eval_refuses_one_file_for_two_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trained: str
) -> None:
    code, _, err = run(capsys, "eval", str(sample_csv()), "--model", trained, "--limit", "2",
                       "--html", "x", "--markdown", "x")  # fmt: skip
    assert code == 2
    assert "--html and --markdown name one file" in one_error_line(err)
    assert not (tmp_path / "x").exists()


def test_2_guard_train_never_writes_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gd = tmp_path / "gd.csv"
    gd.write_bytes(sample_csv().read_bytes())
    before = gd.read_bytes()
    code, _, err = run(capsys, "guard", "train", str(gd), "--gate", "question", "--out", str(gd))
    assert code == 2
    assert "--out" in one_error_line(err) and "is also an input" in err
    assert gd.read_bytes() == before


def test_2_build_says_which_options_name_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", "x",
                       "--validation", "x", "-q", "--no-tokens")  # fmt: skip
    assert code == 2
    line = one_error_line(err)
    assert "-o and --validation name one file (x)" in line
    assert "validation_output" not in line


# ---------------------------------------------------------------- 15. partial output


def test_15_an_unwritable_report_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc refuses new files even to root: a stand-in for a folder one cannot write
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", "ok.jsonl",
                       "--report", "/proc/r.json", "-q", "--no-tokens")  # fmt: skip
    assert code == 2
    assert "/proc/r.json" in one_error_line(err)
    assert not (tmp_path / "ok.jsonl").exists()


def test_15_a_failed_build_leaves_no_new_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o",
                     "new/deep/out.jsonl", "--min-answer-length", "1000", "-q", "--no-tokens")  # fmt: skip
    assert code == 1
    assert not (tmp_path / "new").exists()


def test_15_rebuilding_keeps_a_private_file_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    os.chmod(out, 0o600)
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", str(out),
                       "-q", "--no-tokens")  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_15_generate_glob_stays_inside_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "a" / "b"
    site.mkdir(parents=True)
    (site / "page.md").write_text("# Page\n\nSome text about the product.\n")
    code, _, err = run(capsys, "generate", str(site), "--glob", "../../*", "--out", "qa.csv")
    assert code == 2
    assert "reaches outside the folder" in one_error_line(err)


# ------------------------------------------------------- 7. code in the offline state


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("planted", [True, False])
def test_7_a_pickle_where_the_state_lives_is_never_loaded(
    tmp_path: Path, offline_state: Path, capsys: pytest.CaptureFixture[str], planted: bool
) -> None:
    import pickle

    marker = tmp_path / "marker"
    offline_state.parent.mkdir(parents=True, exist_ok=True)
    offline_state.write_bytes(pickle.dumps(_Payload(marker)))
    if planted:  # another user's file, writable by all
        os.chmod(offline_state, 0o666)
        os.chown(offline_state, 12345, 12345)
    else:  # even one's own old state is not unpickled
        os.chmod(offline_state, 0o600)
    code, _, err = run(capsys, "jobs")
    assert code == 2
    line = one_error_line(err)
    assert str(offline_state) in line and "delete" in line
    assert ("another user" in line) if planted else ("pickle" in line)
    assert not marker.exists()


def test_7_a_state_writable_by_others_is_refused(
    offline_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "jobs")[0] == 0
    assert offline_state.read_bytes().startswith(b'{"format":"finetune_qa offline API state"')
    assert stat.S_IMODE(offline_state.stat().st_mode) == 0o600
    os.chmod(offline_state, 0o622)
    code, _, err = run(capsys, "jobs")
    assert code == 2 and "writable by other users" in one_error_line(err)


def test_7_the_json_state_keeps_jobs_and_models_between_commands(
    capsys: pytest.CaptureFixture[str], trained: str
) -> None:
    code, out, err = run(capsys, "ask", trained, "How do I reset my password?")
    assert code == 0, err
    assert "Forgot password" in out
    code, out, _ = run(capsys, "jobs", "--json")
    assert code == 0 and trained in out


# ------------------------------------------------------------------ 8. key in journal


@pytest.fixture
def server() -> object:
    import threading

    from finetune_qa.testing import FakeOpenAI, serve

    srv = serve(FakeOpenAI(), port=0, speedup=600)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


KEY = "sk-PLANTEDsecret0123456789abcdef"


@pytest.mark.parametrize("where", ["query", "userinfo"])
def test_8_no_key_from_the_base_url_in_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: object, where: str
) -> None:
    port = server.server_address[1]  # type: ignore[attr-defined]
    if where == "query":
        url = f"http://127.0.0.1:{port}/v1?api-key={KEY}"
    else:
        url = f"http://u:{KEY}@127.0.0.1:{port}/v1"
    _code, out, err = run(capsys, "train", str(sample_csv()), "--workdir", "wd", "--no-wait",
                         "--backend", "openai", "--base-url", url)  # fmt: skip
    journal = (tmp_path / "wd" / "journal.jsonl").read_text()
    assert '"backend"' in journal or "openai:" in journal
    assert KEY not in journal and "PLANTED" not in journal
    assert KEY not in out + err


def test_8_scrub_url_keeps_what_is_not_secret() -> None:
    from finetune_qa._text import scrub_url

    assert scrub_url("https://api.example.com/v1?api-version=2024") == (
        "https://api.example.com/v1?api-version=2024"
    )
    assert scrub_url(f"http://u:{KEY}@h/v1?token=abc&x=1") == "http://h/v1?token=[REDACTED]&x=1"


# ------------------------------------------------------------------- 13. NaN and inf


@pytest.mark.parametrize(
    "args",
    [
        ["train", "{csv}", "--timeout", "nan"],
        ["train", "{csv}", "--timeout", "inf"],
        ["train", "{csv}", "--validation-fraction", "nan"],
        ["ask", "m", "q", "--temperature", "nan"],
        ["build", "{csv}", "-o", "t.jsonl", "--validation-fraction", "nan"],
        ["guard", "train", "{csv}", "--gate", "question", "--target-precision", "nan"],
    ],
)
def test_13_nan_and_inf_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]
) -> None:
    """In process: a refused value ends the command before any work (see the serve cases)."""
    csv_path = str(sample_csv())
    code, _out, err = run(capsys, *[a.replace("{csv}", csv_path) for a in args])
    assert code == 2, err
    assert "is not a finite number" in one_error_line(err)
    assert not (tmp_path / "t.jsonl").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--speedup", "nan", "--port", "0"],
        ["serve", "--speedup", "inf", "--port", "0"],
    ],
)
def test_13_nan_and_inf_are_refused_by_serve(tmp_path: Path, args: list[str]) -> None:
    """In a subprocess with a timeout: a serve that took the value would run until killed."""
    proc = cli(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr.decode())
    assert "is not a finite number" in line


def test_13_the_library_refuses_them_too() -> None:
    from finetune_qa.exceptions import UsageError
    from finetune_qa.testing import FakeOpenAI

    with pytest.raises(UsageError, match="finite"):
        FakeOpenAI().clock.run_realtime(float("nan"))


# ------------------------------------------------------- 12. usage, not internal errors


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--host", "nosuchhost.invalid", "--port", "0"], "cannot listen on"),
        (["status", ""], "is empty"),
        (["status", "x" * 100_000], "100,000 characters"),
        (["events", "ftjob-a/../b"], "is not a job id"),
        (["build", "{csv}", "-o", "t.jsonl", "--seed", "99999999999999999999"], "--seed"),
    ],
)
def test_12_usage_errors_are_not_internal_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], expect: str
) -> None:
    code, _, err = run(capsys, *[a.replace("{csv}", str(sample_csv())) for a in args])
    assert code == 2
    assert expect in one_error_line(err)


def test_12_a_port_in_use_is_a_usage_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cli("serve", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert "cannot listen on" in one_error_line(proc.stderr.decode())


def test_12_binary_stdin_to_ask_is_a_usage_error() -> None:
    proc = cli("ask", "m", "--backend", "offline", input=b"\xff\xfe\x00q\n" * 100, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "line 1 is not UTF-8 text" in one_error_line(proc.stderr.decode())


# --------------------------------------------------------- 3. an input that shrinks


def big_csv(path: Path, mib: int) -> Path:
    row = b'"What is the plan number %07d about?","The plan number %07d is about seats."\n'
    n = mib * 1024 * 1024 // len(row % (0, 0)) + 1
    with path.open("wb") as f:
        f.write(b"question,answer\n")
        f.writelines(row % (i, i) for i in range(n))
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_3_the_range_planner_stops_on_a_file_that_shrinks(tmp_path: Path, kind: str) -> None:
    from itertools import islice

    from finetune_qa.exceptions import InputFileError
    from finetune_qa.readers import QASource
    from finetune_qa.validation._parallel import _line_ranges

    path = tmp_path / f"big.{kind}"
    if kind == "csv":
        big_csv(path, 2)
        ranges = QASource(path).plan_ranges(64 * 1024)
    else:
        path.write_bytes(b'{"messages": []}\n' * 120_000)
        ranges = _line_ranges(path, 64 * 1024)
    next(ranges)
    os.truncate(path, 100_000)
    with pytest.raises(InputFileError, match="changed while it was read"):
        list(islice(ranges, 10_000))  # before: endless empty ranges


def test_3_a_range_read_short_is_an_error(tmp_path: Path) -> None:
    from finetune_qa.exceptions import InputFileError
    from finetune_qa.readers import QASource

    path = big_csv(tmp_path / "big.csv", 1)
    src = QASource(path)
    start, end, line = next(src.plan_ranges(1 << 30))
    os.truncate(path, end // 2)
    with pytest.raises(InputFileError, match="shorter now"):
        list(src.iter_range(start, end, line, src._columns))


def test_3_build_of_a_file_truncated_meanwhile_ends(tmp_path: Path) -> None:
    import time

    path = big_csv(tmp_path / "big.csv", 17)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "finetune_qa", "build", str(path), "-o", "out.jsonl", "-q",
            "--no-tokens"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        # the temporary output appears just before the input is read: truncate then
        while not any(p.suffix == ".tmp" for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.truncate(path, 4 * 1024 * 1024 + 17)  # mid-row
        _, err = proc.communicate(timeout=90)  # before: 7 of 8 runs never ended
    finally:
        proc.kill()
    assert proc.returncode == 2
    line = one_error_line(err.decode())
    assert "changed while it was read" in line or "never closed" in line
    assert not (tmp_path / "out.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------- 4. orphans


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def big_chat_jsonl(path: Path, mib: int) -> Path:
    line = b'{"messages":[{"role":"user","content":"What is plan %07d?"},'
    line += b'{"role":"assistant","content":"Plan %07d is a plan. **STOP**"}]}\n'
    n = mib * 1024 * 1024 // len(line % (0, 0)) + 1
    with path.open("wb") as f:
        f.writelines(line % (i, i) for i in range(n))
    return path


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        ("build", signal.SIGTERM),
        ("build", signal.SIGKILL),
        ("validate", signal.SIGTERM),
        ("validate", signal.SIGKILL),
    ],
)
def test_4_workers_end_with_their_parent(tmp_path: Path, command: str, sig: int) -> None:
    import time

    if command == "build":
        argv = ["build", str(big_csv(tmp_path / "big.csv", 24)), "-o", "out.jsonl", "-q",
                "--no-tokens"]  # fmt: skip
    else:
        argv = ["validate", str(big_chat_jsonl(tmp_path / "big.jsonl", 24)), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_qa", *argv],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not children(proc.pid):  # the workers are running
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        workers = children(proc.pid)
        proc.send_signal(sig)
        # what subprocess.run(timeout=...) waits for: stdout and stderr closed by everyone
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if Path(f"/proc/{w}/stat").exists()
             and (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")]  # fmt: skip
    assert alive == []
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
        # the first line (click prints a blank line before an interrupt's message); rarely,
        # a pool thread then reports a closed pipe as the pool unwinds
        assert next(ln for ln in err.decode().splitlines() if ln.strip()) == "terminated"
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert not (tmp_path / "out.jsonl").exists()


# ------------------------------------------------------ 9. tokenizer cache in /tmp


@pytest.mark.parametrize("plant", ["fifo", "zero"])
@pytest.mark.parametrize("where", ["default", "configured"])
def test_9_a_planted_rank_file_neither_hangs_nor_eats_memory(
    tmp_path: Path, plant: str, where: str
) -> None:
    import hashlib

    blob = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    name = hashlib.sha1(blob.encode()).hexdigest()
    shared_tmp = tmp_path / "tmp"
    folder = shared_tmp / "data-gym-cache" if where == "default" else tmp_path / "tk"
    folder.mkdir(parents=True)
    planted = folder / name
    if plant == "fifo":
        os.mkfifo(planted)
    else:
        planted.symlink_to("/dev/zero")
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"messages":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."}]}\n'
        * 12
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")
    }
    env.update(TMPDIR=str(shared_tmp), FINETUNE_QA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT))  # fmt: skip
    if where == "configured":
        env["TIKTOKEN_CACHE_DIR"] = str(folder)
    proc = subprocess.run(
        [sys.executable, "-m", "finetune_qa", "validate", str(train), "--json"],
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert b'"total_tokens"' in proc.stdout or b"tokens" in proc.stdout
    assert os.path.islink(planted) or stat.S_ISFIFO(os.lstat(planted).st_mode)
    if where == "default":  # the per-user cache was used and filled
        assert list((tmp_path / "cache" / "tiktoken").iterdir())


# ------------------------------------------------------------ 10. the stop marker


def qa_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        w.writerows(rows)
    return path


def test_10_answers_holding_the_stop_marker_are_reported_not_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    rows = [(f"What does plan {i} include?", f"Plan {i} includes {i} seats.") for i in range(10)]
    rows.append(("What is the marker?", "We end answers with **STOP** and then go on."))
    rows.append(("Does it end well?", "Yes it ends with the marker. **STOP**"))
    src = qa_csv(tmp_path / "qa.csv", rows)
    code, out, err = run(capsys, "build", str(src), "-o", "t.jsonl", "--json", "--no-tokens")
    assert code == 0, err
    report = json.loads(out)
    assert report["dropped_by_reason"]["answer_contains_stop"]["count"] == 1
    assert report["changed_by_reason"]["stop_marker_removed"]["count"] == 1
    lines = Path("t.jsonl").read_text().splitlines()
    answers = [json.loads(ln)["messages"][-1]["content"] for ln in lines]
    assert "Yes it ends with the marker. **STOP**" in answers  # once, not twice
    assert all(a.count("**STOP**") == 1 for a in answers)


@pytest.mark.parametrize("stop", [" ", "\n", "\t "])
def test_10_a_blank_stop_marker_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stop: str
) -> None:
    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", "t.jsonl",
                       "--stop", stop)  # fmt: skip
    assert code == 2
    assert "is blank" in one_error_line(err)


def test_10_a_word_as_stop_marker_drops_what_it_would_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    src = qa_csv(tmp_path / "qa.csv", [
        ("What is the price?", "The price is ten euros."),
        ("Where are you based?", "We are based in Lyon."),
        ("Who makes it?", "Acme makes it."),
    ])  # fmt: skip
    code, out, _ = run(capsys, "build", str(src), "-o", "t.jsonl", "--stop", "is",
                       "--json", "--no-tokens")  # fmt: skip
    assert code == 0
    assert json.loads(out)["dropped_by_reason"]["answer_contains_stop"]["count"] == 1


@pytest.mark.parametrize("given", [True, False])
def test_10_validate_warns_of_a_marker_inside_an_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: bool
) -> None:
    import json

    def line(q: str, a: str) -> str:
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return json.dumps({"messages": msgs}) + "\n"

    lines = [line(f"Question {i}?", f"Answer {i}. **STOP**") for i in range(12)]
    lines.append(line("Marker?", "We say **STOP** mid-text. **STOP**"))
    path = tmp_path / "train.jsonl"
    path.write_text("".join(lines))
    args = ["validate", str(path), "--json"] + (["--stop", "**STOP**"] if given else [])
    code, out, _ = run(capsys, *args)
    report = json.loads(out)
    kinds = {w["kind"]: w for w in report["warnings"]}
    assert "stop_marker_inside_answer" in kinds
    assert kinds["stop_marker_inside_answer"]["line"] == 13
    assert code == 0


# ------------------------------------------------------------ 11. serve, bounded


def raw_http(port: int, request: bytes, timeout: float = 10) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                n = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")]
                if n and len(body) >= int(n[0].split(b":")[1]):
                    break
        return data


HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (HEAD + b"Content-Length: abc\r\n\r\n", b"400"),
        (HEAD + b"Content-Length: -5\r\n\r\n", b"400"),
        (HEAD + b"Content-Length: 30000000000\r\n\r\n", b"413"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n", b"400"),
        (
            HEAD
            + b"Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
            + b"[" * 100_000
            + b"]" * 100_000,
            b"400",
        ),
    ],
    ids=["length-abc", "length-negative", "length-huge", "chunk-zzz", "nested-100k"],
)
def test_11_malformed_requests_get_an_http_answer(
    server: object, capsys: pytest.CaptureFixture[str], request_bytes: bytes, status: bytes
) -> None:
    port = server.server_address[1]  # type: ignore[attr-defined]
    reply = raw_http(port, request_bytes)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
    assert b'"error"' in reply
    assert "Traceback" not in capsys.readouterr().err


def test_11_an_idle_connection_is_closed() -> None:
    import socket
    import threading
    import time

    from finetune_qa.testing import FakeOpenAI, serve

    srv = serve(FakeOpenAI(), port=0, idle_timeout=0.5)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10) as s:
            t0 = time.monotonic()
            assert s.recv(10) == b""  # closed by the server, not by our 10 s timeout
            assert time.monotonic() - t0 < 5
    finally:
        srv.shutdown()
        srv.server_close()


def test_11_two_hundred_concurrent_chats_and_no_reset(server: object) -> None:
    import http.client
    import json
    import threading

    port = server.server_address[1]  # type: ignore[attr-defined]
    assert server.request_queue_size >= 200  # type: ignore[attr-defined]
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi?"}]})
    start = threading.Barrier(200)
    results: list[object] = []

    def chat() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            start.wait(timeout=60)
            conn.request("POST", "/v1/chat/completions", body,
                         {"Authorization": "Bearer k", "Content-Type": "application/json"})  # fmt: skip
            results.append(conn.getresponse().status)
        except Exception as exc:
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=chat) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [200] * 200


def test_11_a_non_loopback_bind_warns(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_qa", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert first.startswith("warning: listening on 0.0.0.0")


# ------------------------------------------------------------ 16. unclear messages


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_16_utf16_without_bom_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str, newline: str
) -> None:
    text = newline.join(["question,answer", "What is the plan about?,It is about seats.", ""])
    src = tmp_path / "u16.csv"
    src.write_bytes(text.encode(codec))
    code, _, err = run(capsys, "build", str(src), "-o", "t.jsonl", "-q", "--no-tokens")
    assert code == 2
    line = one_error_line(err)
    assert "UTF-16" in line and "without a byte-order mark" in line and "Mac" not in line


def test_16_cr_only_jsonl_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = '{"question":"What is the plan about?","answer":"It is about seats."}'
    src = tmp_path / "cr.jsonl"
    src.write_text(f"{rec}\r{rec}\r", newline="")
    code, _, err = run(capsys, "build", str(src), "-o", "t.jsonl", "-q", "--no-tokens")
    assert code == 2
    line = one_error_line(err)
    assert "old Mac line endings" in line and "unexpected content" not in line


def test_16_a_line_break_in_a_file_name_keeps_the_error_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a\nb.csv"
    src.write_bytes(b"question,answer\nWhat?\0,x\n")
    code, _, err = run(capsys, "build", str(src), "-o", "t.jsonl", "-q", "--no-tokens")
    assert code == 2
    assert "a\\nb.csv" in one_error_line(err)


def test_16_a_bad_gate_file_says_which_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = tmp_path / "g.json"
    gate.write_text('{"model": "m", "gate": "question", "threshold": "x", "system_prompt": ""}')
    code, _, err = run(capsys, "guard", "check", str(gate), "hi")
    assert code == 2
    line = one_error_line(err)
    assert "threshold:" in line and "validation error" not in line


def test_16_no_empty_training_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finetune_qa import DatasetBuilder, QAPair

    code, _, err = run(capsys, "build", str(small_csv(tmp_path / "lf.csv")), "-o", "t.jsonl",
                       "--validation", "v.jsonl", "--validation-fraction", "0.9999")  # fmt: skip
    assert code == 2 and "--validation-fraction" in one_error_line(err)
    pairs = [QAPair(question=f"What is plan {i}?", answer=f"Plan {i} has seats.") for i in range(6)]
    # the exact split holds out at most all but one question: training is never empty
    builder = DatasetBuilder().add_pairs(pairs).split(0.9999)
    report = builder.build(
        tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl", require_training=True
    )
    assert (report.train, report.validation) == (1, 5)
    assert (tmp_path / "t.jsonl").read_text().count("\n") == 1


# ------------------------------------------------------- 5, 6. duplicate and lost jobs


def run_many(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> list[tuple[int, str, str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "finetune_qa", *argv],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    out = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=120)
            out.append((p.returncode, o.decode(), e.decode()))
    finally:
        for p in procs:
            p.kill()
    return out


def test_5_two_trains_in_one_workdir_at_once_make_one_job(tmp_path: Path, server: object) -> None:
    from finetune_qa.backends import OpenAIBackend

    url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    argv = ["train", str(sample_csv()), "--workdir", "same", "--no-wait", "--json",
            "--backend", "openai", "--base-url", url]  # fmt: skip
    results = run_many([argv, argv], tmp_path, {"OPENAI_API_KEY": "sk-test"})
    assert [r[0] for r in results] == [0, 0], results
    ids = {json.loads(out)["job_id"] for _, out, _ in results}
    jobs = OpenAIBackend(base_url=url, api_key="sk-test").list_jobs(limit=100)
    assert len(ids) == 1 and [j.id for j in jobs] == list(ids)


def test_5_a_deleted_journal_does_not_start_a_second_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", str(sample_csv()), "--workdir", "wd", "--no-wait", "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    first = json.loads(out)["job_id"]
    for damage in ("delete", "garble"):
        journal = tmp_path / "wd" / "journal.jsonl"
        if damage == "delete":
            journal.unlink()
        else:
            journal.write_bytes(b"\x00garbage\n{not json\n")
        code, out, err = run(capsys, *args)
        assert code == 0, err
        assert json.loads(out)["job_id"] == first
    code, out, _ = run(capsys, "jobs", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [first]


def test_6_concurrent_offline_trains_keep_every_job(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, offline_state: Path
) -> None:
    argvs = [
        ["train", str(sample_csv()), "--workdir", f"wd{i}", "--no-wait", "--json", "-q"]
        for i in range(4)
    ]
    results = run_many(argvs, tmp_path, {"FINETUNE_QA_OFFLINE_STATE": str(offline_state)})
    assert [r[0] for r in results] == [0, 0, 0, 0], results
    ids = {json.loads(out)["job_id"] for _, out, _ in results}
    assert len(ids) == 4
    code, out, err = run(capsys, "jobs", "--json")  # the reading side needs no process
    assert code == 0, err
    assert {json.loads(line)["id"] for line in out.splitlines()} == ids


# ------------------------------------------------- 14. constant memory on hostile sizes


def peak_rss_mib(argv: list[str], cwd: Path) -> tuple[int, str, float]:
    """Run the CLI; its exit code, stderr and the peak RSS of its process tree in MiB."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, timeout=120)\n"
        "sys.stderr.buffer.write(p.stderr)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "finetune_qa", *argv],
        capture_output=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    code, kib = proc.stdout.split()
    return int(code), proc.stderr.decode(), int(kib) / 1024


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("sparse.jsonl", "build"),
        ("sparse.jsonl", "validate"),
        ("sparse.csv", "build"),
        ("array.jsonl", "build"),
    ],
)
def test_14_a_file_without_line_breaks_fails_in_constant_memory(
    tmp_path: Path, name: str, command: str
) -> None:
    path = tmp_path / name
    if name.startswith("sparse"):
        with path.open("wb") as f:
            if name.endswith(".csv"):
                f.write(b"question,answer\n")
            f.truncate(2 * 1024**3)  # 2 GB of NUL bytes on disk as a hole
    else:
        rec = b'{"question":"What is the plan about?","answer":"It is about seats."}'
        path.write_bytes(b"[" + b",".join([rec] * 400_000) + b"]\n")  # 27 MB, one line
    argv = [command, str(path)] + (["-o", "o.jsonl", "--no-tokens"] if command == "build" else [])
    code, err, peak = peak_rss_mib([*argv, "-q"], tmp_path)
    assert code == 2, err
    line = one_error_line(err)
    assert "MiB" in line or "NUL" in line
    if name == "array.jsonl":
        assert "JSON array" in line
    assert peak < 400, f"{peak:.0f} MiB"
