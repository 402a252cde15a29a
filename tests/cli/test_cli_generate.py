"""``finetune-qa generate``: Markdown pages -> QA file, then ``finetune-qa build`` on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finetune_qa import cli as cli_module
from finetune_qa.readers import QASource, read_qa

DATA = Path(__file__).parent.parent / "data"
SITE = DATA / "markdown_site"
BAD = DATA / "bad_markdown"


pytestmark = pytest.mark.usefixtures("offline_state")  # each test in its own offline project


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_module.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_then_build_with_clirunner(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_module.cli, ["generate", str(SITE), "--out", "qa.csv", "--backend", "offline"]
    )
    assert result.exit_code == 0, result.output
    assert "Generated 132 QA pairs from 11 pages (12 chunks)" in result.output
    assert result.output.rstrip().endswith("Wrote 132 pairs to qa.csv")
    pairs = list(QASource(tmp_path / "qa.csv").pairs())
    assert len(pairs) == 132
    built = runner.invoke(cli_module.cli, ["build", "qa.csv", "-o", "train.jsonl", "--json"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.output)
    assert report["kept"] == 132 and report["dropped"] == 0
    assert len((tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 132


def test_generate_jsonl_with_options_and_json_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        "generate",
        str(SITE / "pricing.md"),
        str(SITE / "faq.md"),
        "--out",
        "qa.jsonl",
        "--pairs-per-chunk",
        "3",
        "--max-chunk-tokens",
        "200",
        "--concurrency",
        "2",
        "--model",
        "gpt-4o-mini",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["pages_read"] == 2 and report["chunks"] >= 4
    pairs = list(read_qa(tmp_path / "qa.jsonl"))
    assert len(pairs) == report["pairs_kept"] >= 3 * report["chunks"]  # a floor, not a cap
    lines = [json.loads(x) for x in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert {Path(x["file"]).name for x in lines} == {"pricing.md", "faq.md"}


def test_quiet_prints_only_the_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "generate", str(SITE / "security.md"), "--out", "qa.csv", "-q")
    assert (code, out, err) == (0, "qa.csv\n", "")
    assert (tmp_path / "qa.csv").exists()


def test_the_output_must_be_csv_or_jsonl(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "generate", str(SITE), "--out", "qa.txt")
    assert code == 2 and err.startswith("error: -o/--output qa.txt must end in .csv")
    assert not (tmp_path / "qa.txt").exists()


def huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.md"
    path.write_bytes(b"# Huge\n\n" + b"y" * (1024 * 1024 + 1) + b"\n")
    return path


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("invalid_utf8.md", "invalid_utf8.md:4: is not valid UTF-8"),
        ("nul_bytes.md", "nul_bytes.md:4: contains a NUL byte"),
        ("empty.md", "empty.md:1: is empty"),
        ("only_front_matter.md", "only_front_matter.md:1: holds front matter and no text"),
        ("binary.md", "binary.md:1: is a PNG image, not Markdown text"),
        ("unclosed_front_matter.md", "unclosed_front_matter.md:1: the front matter opened"),
        ("no_markdown", "no_markdown: is a folder with no Markdown files"),
        ("missing.md", "missing.md: no such file"),
        ("huge", "huge.md:3: line 3 is 1.0 MiB long"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, where: str
) -> None:
    path = huge(tmp_path) if name == "huge" else BAD / name
    for out in ("qa.csv", "qa.jsonl"):
        code, stdout, err = run(capsys, "generate", str(path), "--out", out)
        assert code == 2, err
        assert stdout == ""
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert where in err
        assert not (tmp_path / out).exists()
        assert not list(tmp_path.glob(".qa*"))


def test_a_bad_file_among_good_ones_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "generate", str(SITE / "pricing.md"), str(BAD / "nul_bytes.md"), "--out", "qa.csv"
    )
    assert code == 2 and "nul_bytes.md:4" in err
    assert not (tmp_path / "qa.csv").exists()


def test_missing_output_folders_are_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "generate", str(SITE / "pricing.md"), "-o", "nofolder/deeper/qa.csv"
    )
    assert code == 0, err
    assert out.rstrip().endswith("to nofolder/deeper/qa.csv")
    assert len(list(QASource(tmp_path / "nofolder" / "deeper" / "qa.csv").pairs())) > 0


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("afile/qa.csv", "-o/--output's folder cannot be created: afile is a file, not a folder"),
        ("afile/sub/qa.jsonl", "afile is a file, not a folder"),
        ("site/pages.csv", "-o/--output is one of the input pages (given as site)"),
    ],
)
def test_a_bad_out_path_fails_before_any_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, out: str, words: str
) -> None:
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.md").write_text("# Acme\n\nAcme makes anvils.\n", encoding="utf-8")
    (site / "pages.csv").write_text("questions,answers\n", encoding="utf-8")
    code, stdout, err = run(capsys, "generate", "site", "--glob", "*", "-o", out)
    assert code == 2 and stdout == ""
    assert err.startswith(f"error: {out}: ") and words in err, err
    assert err.count("\n") == 1
    # the backend was never opened: the offline API saved no state, so nothing was asked
    assert not (tmp_path / "offline-api.pickle").exists()
    assert (site / "pages.csv").read_text(encoding="utf-8") == "questions,answers\n"
