"""Bad command lines: each ends with exit 2, one line on stderr naming the problem, no output.

Table-driven. Every case runs ``finetune-qa`` (in process) in a fresh directory holding a
good seed CSV (``seed.csv``), a good training file (``train.jsonl``), a directory
(``adir``), a broken symlink (``broken.csv``) and a FIFO (``fifo.csv``), and checks:

* the exit code is 2 and stderr is ``error: ...`` on one line, with no traceback;
* the message holds the expected text (the file it is about, the option, the value);
* no file appeared and no file changed (no partial output, the inputs untouched).

Running as root (as the tests do here) ``chmod 000`` does not stop reads, so "unreadable"
is covered by the mapping test in tests/test_readers.py (``open`` raising
``PermissionError``), by a directory, a broken symlink and a FIFO (which used to hang).
The bad-file corpus (tests/data/bad) is also run through ``build``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from finetune_qa import DatasetBuilder
from finetune_qa.cli import main
from finetune_qa.samples import sample_csv

BAD = Path(__file__).parent.parent / "data" / "bad"
MANIFEST: dict[str, dict[str, Any]] = json.loads((BAD / "MANIFEST.json").read_text("utf-8"))


class Case(NamedTuple):
    argv: str  # {T} is the case's directory
    expect: str  # in the one stderr line


CASES: dict[str, Case] = {
    # --- build: inputs
    "build-missing-input": Case(
        "build {T}/missing.csv -o {T}/o.jsonl", "missing.csv: no such file"
    ),
    "build-dir-input": Case("build {T}/adir -o {T}/o.jsonl", "adir: is a directory"),
    "build-broken-symlink": Case("build {T}/broken.csv -o {T}/o.jsonl", "broken.csv: no such file"),
    "build-fifo-input": Case(
        "build {T}/fifo.csv -o {T}/o.jsonl", "fifo.csv: is not a regular file"
    ),
    "build-second-input-missing": Case(
        "build {T}/seed.csv {T}/nope.jsonl -o {T}/o.jsonl", "nope.jsonl: no such file"
    ),
    "build-unknown-column": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --question-column nope", "seed.csv:1: no 'nope' column"
    ),
    "build-jsonl-as-csv": Case(
        "build {T}/train.jsonl -o {T}/o.jsonl --format seed_csv", "train.jsonl:1"
    ),
    # --- build: outputs
    "build-output-is-dir": Case("build {T}/seed.csv -o {T}/adir", "adir: is a directory"),
    "build-output-is-input": Case(
        "build {T}/seed.csv -o {T}/seed.csv", "seed.csv is also an input"
    ),
    "build-output-is-input-via-dots": Case(
        "build {T}/seed.csv -o {T}/adir/../seed.csv", "is also an input"
    ),
    "build-validation-is-input": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation {T}/seed.csv", "is also an input"
    ),
    "build-output-equals-validation": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation {T}/o.jsonl",
        "-o and --validation name one file",
    ),
    "build-output-under-a-file": Case(
        "build {T}/seed.csv -o {T}/seed.csv/o.jsonl", "cannot write here"
    ),
    "build-report-is-dir": Case("build {T}/seed.csv -o {T}/o.jsonl --report {T}/adir", "adir"),
    "build-report-is-input": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --report {T}/seed.csv", "seed.csv"
    ),
    "build-no-output": Case("build {T}/seed.csv", "--output"),
    # --- build: numbers and choices
    "build-fraction-negative": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation {T}/v.jsonl --validation-fraction -0.1",
        "-0.1 is not in the range 0<=x<=0.5",
    ),
    "build-fraction-one": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation {T}/v.jsonl --validation-fraction 1",
        "1.0 is not in the range 0<=x<=0.5",
    ),
    "build-fraction-without-file": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation-fraction 0.2", "needs --validation"
    ),
    "build-fraction-not-a-number": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --validation-fraction abc", "abc"
    ),
    "build-min-question-negative": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --min-question-length -3", "got -3"
    ),
    "build-min-answer-negative": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --min-answer-length -1", "got -1"
    ),
    "build-min-answer-not-a-number": Case(
        "build {T}/seed.csv -o {T}/o.jsonl --min-answer-length x", "x"
    ),
    "build-seed-not-a-number": Case("build {T}/seed.csv -o {T}/o.jsonl --seed x", "--seed"),
    "build-unknown-model": Case("build {T}/seed.csv -o {T}/o.jsonl --model gpt-9", "unknown model"),
    "build-unknown-format": Case("build {T}/seed.csv -o {T}/o.jsonl --format xml", "xml"),
    "build-unknown-option": Case("build {T}/seed.csv -o {T}/o.jsonl --bogus", "--bogus"),
    # --- validate
    "validate-missing": Case("validate {T}/missing.jsonl", "missing.jsonl: no such file"),
    "validate-dir": Case("validate {T}/adir", "adir: is a directory"),
    "validate-broken-symlink": Case("validate {T}/broken.csv", "broken.csv: no such file"),
    "validate-missing-validation": Case(
        "validate {T}/train.jsonl --validation {T}/nope.jsonl", "nope.jsonl: no such file"
    ),
    "validate-validation-dir": Case(
        "validate {T}/train.jsonl --validation {T}/adir", "adir: is a directory"
    ),
    "validate-epochs-zero": Case("validate {T}/train.jsonl --epochs 0", "got 0"),
    "validate-epochs-negative": Case("validate {T}/train.jsonl --epochs -1", "got -1"),
    "validate-epochs-too-many": Case("validate {T}/train.jsonl --epochs 51", "got 51"),
    "validate-epochs-not-a-number": Case("validate {T}/train.jsonl --epochs x", "--epochs"),
    "validate-unknown-model": Case(
        "validate {T}/train.jsonl --model gpt-9-imaginary", "unknown model"
    ),
    # --- train (offline backend)
    "train-missing-input": Case(
        "train {T}/missing.csv --backend offline --workdir {T}/wd", "missing.csv: no such file"
    ),
    "train-dir-input": Case(
        "train {T}/adir --backend offline --workdir {T}/wd", "adir: is a directory"
    ),
    "train-unknown-backend": Case(
        "train {T}/seed.csv --backend nope --workdir {T}/wd --no-wait", "unknown backend 'nope'"
    ),
    "train-epochs-zero": Case(
        "train {T}/seed.csv --backend offline --workdir {T}/wd --epochs 0", "--epochs takes 1 to 50"
    ),
    "train-epochs-not-a-number": Case(
        "train {T}/seed.csv --backend offline --workdir {T}/wd --epochs x", "--epochs takes"
    ),
    "train-fraction-too-big": Case(
        "train {T}/seed.csv --backend offline --workdir {T}/wd --validation-fraction 2",
        "2.0 is not in the range 0<=x<=0.5",
    ),
    "train-workdir-is-a-file": Case(
        "train {T}/seed.csv --backend offline --workdir {T}/seed.csv", "cannot write here"
    ),
    # --- the other commands
    "upload-dir": Case("upload {T}/adir --backend offline", "adir"),
    "upload-missing": Case("upload {T}/missing.jsonl --backend offline", "missing"),
    "ask-temperature": Case("ask gpt-4o-mini hi --backend offline --temperature 5", "temperature"),
    "ask-max-tokens": Case("ask gpt-4o-mini hi --backend offline --max-tokens 0", "max_tokens"),
    "ask-unknown-backend": Case("ask gpt-4o-mini hi --backend nope", "unknown backend"),
    "jobs-limit-zero": Case("jobs --backend offline --limit 0", "--limit takes 1 to 100"),
    "jobs-limit-too-big": Case("jobs --backend offline --limit 101", "--limit takes 1 to 100"),
    "metrics-rows-negative": Case("metrics ftjob-x --backend offline --rows -1", "--rows"),
    "unknown-command": Case("nocommand", "nocommand"),
    # --- export
    "export-missing-input": Case(
        "export {T}/missing.jsonl --out {T}/hf", "missing.jsonl: no such file"
    ),
    "export-dir-input": Case("export {T}/adir --out {T}/hf", "adir: is a directory"),
    "export-broken-symlink": Case("export {T}/broken.csv --out {T}/hf", "broken.csv: no such file"),
    "export-fifo-input": Case(
        "export {T}/fifo.csv --out {T}/hf", "fifo.csv: is not a regular file"
    ),
    "export-second-input-missing": Case(
        "export {T}/train.jsonl {T}/nope.jsonl --out {T}/hf", "nope.jsonl: no such file"
    ),
    "export-second-input-fifo": Case(
        "export {T}/train.jsonl {T}/fifo.csv --out {T}/hf", "fifo.csv: is not a regular file"
    ),
    "export-csv-as-jsonl": Case("export {T}/seed.csv --out {T}/hf", "seed.csv:1: not valid JSON"),
    "export-out-under-a-file": Case(
        "export {T}/train.jsonl --out {T}/seed.csv/hf", "seed.csv/hf/train.parquet: cannot write"
    ),
    "export-out-is-a-file": Case("export {T}/train.jsonl --out {T}/seed.csv", "is a file"),
    "export-out-overwrites-input": Case(
        "export {T}/train.jsonl --out {T} --format jsonl", "would overwrite its source"
    ),
    "export-unknown-format": Case("export {T}/train.jsonl --out {T}/hf --format csv", "csv"),
    "export-no-out": Case("export {T}/train.jsonl", "--out"),
    # --- migrate (an unknown job id is a 404 from the backend: exit 1, see MIGRATE_NOT_FOUND)
    "migrate-unknown-to": Case(
        "migrate ftjob-x --from offline --to nope", "unknown backend 'nope'"
    ),
    "migrate-unknown-from": Case(
        "migrate ftjob-x --from nope --to offline", "unknown backend 'nope'"
    ),
    "migrate-no-to": Case("migrate ftjob-x --from offline", "--to"),
    "migrate-epochs-zero": Case(
        "migrate ftjob-x --from offline --to offline --epochs 0", "--epochs takes 1 to 50"
    ),
    "migrate-epochs-not-a-number": Case(
        "migrate ftjob-x --from offline --to offline --epochs x", "--epochs takes 1 to 50"
    ),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes (FIFOs and dangling links by name)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink() or not p.is_file():
            out[rel] = "dir" if p.is_dir() else "special"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "w"
    root.mkdir()
    (root / "seed.csv").write_bytes(sample_csv().read_bytes())
    DatasetBuilder().add_source(root / "seed.csv").build(root / "train.jsonl")
    (root / "adir").mkdir()
    (root / "broken.csv").symlink_to(root / "gone" / "x.csv")
    os.mkfifo(root / "fifo.csv")
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(tmp_path / "state" / "offline.pickle"))
    monkeypatch.chdir(root)
    return root


def run_case(work: Path, argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    before = snapshot(work)
    code = main(argv.replace("{T}", str(work)).split())
    out, err = capsys.readouterr()
    assert snapshot(work) == before, "a file appeared or changed"
    return code, out, err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_command_line_exits_2_and_writes_nothing(
    name: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    code, _out, err = run_case(work, case.argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert case.expect in err, err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_command_line_is_one_line(
    name: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _code, _out, err = run_case(work, CASES[name].argv, capsys)
    assert err.count("\n") == 1 and err.startswith("error: "), err


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bad_corpus_through_the_cli(
    name: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = MANIFEST[name]
    argv = ["build", str(BAD / name), "-o", str(work / "out.jsonl"), "--format", spec["format"]]
    options = spec.get("options", {})
    for key in ("question_column", "answer_column"):
        if key in options:
            argv += [f"--{key.replace('_', '-')}", options[key]]
    if options.get("strict"):
        argv.append("--strict")
    before = snapshot(work)
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    where = f"{name}:{spec['line']}" if spec["line"] is not None else name
    assert where in err and spec["contains"] in err
    assert snapshot(work) == before


def test_the_output_never_replaces_the_input_through_a_link(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.link(work / "seed.csv", work / "hard.csv")
    (work / "soft.csv").symlink_to(work / "seed.csv")
    for out in ("hard.csv", "soft.csv"):
        code, _, err = run_case(work, f"build {{T}}/seed.csv -o {{T}}/{out}", capsys)
        assert code == 2 and "is also an input" in err


@pytest.mark.parametrize("dry_run", ["", " --dry-run"])
def test_migrate_unknown_job_is_one_line_and_writes_nothing(
    dry_run: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job id the backend does not know is its 404: exit 1 like `status`, one line."""
    code, out, err = run_case(
        work, "migrate ftjob-nope --from offline --to offline" + dry_run, capsys
    )
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("error: 404") and "ftjob-nope" in err


def test_case_counts() -> None:
    assert len(CASES) >= 50
    assert len(MANIFEST) >= 50
