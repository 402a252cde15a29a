"""The documentation's code runs, its shown outputs are real, and its reference lists are complete.

Every ```python block in docs/**/*.md and README.md is executed, page by page, in order,
in one namespace per page (a page reads like one session), in a fresh temporary working
directory that holds a copy of the bundled sample as ``qa.csv`` (README's example reads
that name). ``--8<-- "examples/..."`` lines are expanded as pymdownx.snippets expands them.

Two markers, and only these, change that:

* a block fenced as ```python title="not run", or preceded by ``<!-- not-run -->``, is
  skipped (it needs a user's own file or an API key);
* a ```text title="Output" block right after a python block must equal what that block
  printed, so every output shown as such in the docs is real.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import finetune_qa
from finetune_qa import dataset, readers, validation
from finetune_qa.cli import cli as click_group
from finetune_qa.samples import sample_csv

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
MIN_BLOCKS_RUN = 10
UPDATE = os.environ.get("FINETUNE_QA_UPDATE_DOCS") == "1"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
_NOT_RUN_COMMENT = "<!-- not-run -->"


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    code: str
    not_run_comment: bool
    output: str | None = None  # the ```text title="Output" block that follows, if any
    owner: Block | None = None  # for an Output block: the python block it belongs to

    @property
    def is_python(self) -> bool:
        return self.lang in ("python", "py")

    @property
    def runs(self) -> bool:
        return self.is_python and self.title != "not run" and not self.not_run_comment

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """Fenced code blocks of a Markdown page, with their attributes and following output."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous_text = ""  # the last non-blank line outside code blocks
    gap_only_blank = False  # nothing but blank lines since the last block closed
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            if lines[i].strip():
                previous_text = lines[i].strip()
                gap_only_blank = False
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        start = i + 1
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = lines[i].strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                break
            text = lines[i]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            i += 1
        else:
            raise AssertionError(f"{page}:{start}: code block is never closed")
        i += 1
        lang = info.split()[0].lower() if info else ""
        title_match = _TITLE.search(info)
        block = Block(
            page=page,
            line=start,
            lang=lang,
            title=title_match["title"] if title_match else None,
            code="\n".join(body) + "\n",
            not_run_comment=previous_text == _NOT_RUN_COMMENT,
        )
        if (
            blocks
            and gap_only_blank
            and block.lang == "text"
            and block.title == "Output"
            and blocks[-1].is_python
        ):
            blocks[-1].output = block.code
            block.owner = blocks[-1]
        blocks.append(block)
        previous_text = ""
        gap_only_blank = True
    return blocks


def expand_snippets(code: str) -> str:
    """Replace ``--8<-- "path"`` lines with the file, as pymdownx.snippets does (base: ROOT)."""
    out = []
    for line in code.splitlines(keepends=True):
        m = _SNIPPET.match(line)
        if m is None:
            out.append(line)
            continue
        path = ROOT / m["path"]
        assert path.is_file(), f"snippet {m['path']} does not exist"
        out.append(path.read_text(encoding="utf-8"))
    return "".join(out)


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


ALL_BLOCKS = {page: parse_blocks(page) for page in PAGES}
RUNNABLE_PAGES = [page for page, blocks in ALL_BLOCKS.items() if any(b.runs for b in blocks)]


def test_the_docs_exist() -> None:
    assert (DOCS / "index.md").is_file()
    assert len(PAGES) > 5


def test_enough_python_blocks_run() -> None:
    runnable = [b for blocks in ALL_BLOCKS.values() for b in blocks if b.runs]
    assert len(runnable) >= MIN_BLOCKS_RUN, [b.where for b in runnable]


def test_every_skipped_block_is_marked_explicitly() -> None:
    for blocks in ALL_BLOCKS.values():
        for b in blocks:
            if b.is_python and not b.runs:
                assert b.title == "not run" or b.not_run_comment, b.where
            if b.title == "not run" or b.not_run_comment:
                assert b.is_python, f"{b.where}: only python blocks can be marked not run"


def test_outputs_follow_code_that_runs() -> None:
    """A ```text title="Output" block must directly follow a python block that runs."""
    for blocks in ALL_BLOCKS.values():
        for b in blocks:
            if b.lang == "text" and b.title == "Output":
                assert b.owner is not None and b.owner.runs, (
                    f"{b.where}: an Output block must directly follow a python block that runs"
                )


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [page.name])  # examples read an optional argv[1]
    shutil.copy(sample_csv(), tmp_path / "qa.csv")
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in ALL_BLOCKS[page]:
        if not block.runs:
            continue
        code = compile(expand_snippets(block.code), block.where, "exec", dont_inherit=True)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                exec(code, namespace)
            except SystemExit as exc:  # an included example ends with SystemExit(main())
                assert exc.code in (0, None), f"{block.where} exited with {exc.code}"
        if block.output is not None:
            actual = _normalized(printed.getvalue())
            if UPDATE and actual != _normalized(block.output):
                # FINETUNE_QA_UPDATE_DOCS=1 pytest tests/test_docs.py rewrites stale outputs
                text = page.read_text(encoding="utf-8")
                assert text.count(block.output) == 1, f"{block.where}: cannot locate its output"
                page.write_text(text.replace(block.output, actual + "\n"), encoding="utf-8")
                continue
            assert actual == _normalized(block.output), (
                f"{block.where}: the Output block shown after this code is not what it prints "
                "(FINETUNE_QA_UPDATE_DOCS=1 pytest tests/test_docs.py rewrites it)"
            )


# ------------------------------------------------------------- reference completeness


def test_api_reference_lists_every_export() -> None:
    api = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: finetune_qa\.(\w+)\s*$", api, flags=re.MULTILINE))
    exported = set(finetune_qa.__all__) - {"__version__"}
    assert exported <= documented, exported - documented
    # anything else documented at that level is a public submodule (e.g. finetune_qa.plots)
    import importlib

    for extra in documented - exported:
        importlib.import_module(f"finetune_qa.{extra}")


def _code_spans(page: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", (DOCS / page).read_text(encoding="utf-8")))


def test_drop_and_change_reasons_are_documented() -> None:
    reading, building = _code_spans("guides/reading.md"), _code_spans("guides/building.md")
    assert set(readers.ISSUE_REASONS) <= reading
    assert set(dataset.REASONS) <= building
    assert set(dataset.CHANGES) <= building
    assert set(readers.CHANGE_REASONS) <= building


def _validation_kinds() -> set[str]:
    """Every issue kind validation.py can emit: errors.append((kind, ...)) and _issue(kind, ...)."""
    package = Path(validation.__file__).parent
    sources = [*package.glob("*.py"), package.parent / "backends" / "together" / "_rules.py"]
    kinds = set()
    for node in (n for p in sources for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        first = node.args[0] if node.args else None
        if node.func.attr == "append" and isinstance(first, ast.Tuple) and first.elts:
            first = first.elts[0]
        elif node.func.attr != "_issue":
            continue
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            kinds.add(first.value)
    return kinds


def test_every_validation_kind_is_documented() -> None:
    kinds = _validation_kinds()
    assert {"invalid_json", "missing_content", "over_token_limit"} <= kinds  # the parse works
    assert kinds <= _code_spans("guides/validation.md")


def _cli_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    """Every command and subgroup of the CLI by its full name (``guard train``)."""
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found.extend(_cli_commands(command, f"{prefix}{name} "))
    return found


def test_every_cli_command_and_option_is_documented() -> None:
    page = (DOCS / "guides" / "cli.md").read_text(encoding="utf-8")
    commands = _cli_commands(click_group)
    assert "guard train" in dict(commands)  # the walk reaches subcommands
    for name, command in commands:
        assert f"finetune-qa {name}" in page, name
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-") and opt not in ("-h", "--help"):
                    assert f"`{opt}" in page, f"{name} {opt}"


def test_the_cli_guide_shows_every_commands_help() -> None:
    """Issue #13, finding 11: docs/guides/cli.md shows each command's real --help."""
    page = (DOCS / "guides" / "cli.md").read_text(encoding="utf-8")
    shown = {m.group(1) for m in _HELP_BLOCK.finditer(page)}
    for name, _ in [("", click_group), *_cli_commands(click_group)]:
        assert f"finetune-qa {name} --help".replace("  ", " ") in shown, name


def test_every_environment_variable_is_documented() -> None:
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in Path(finetune_qa.__file__).parent.rglob("*.py")
    )
    names = set(re.findall(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']\s+in\s+os\.environ""", source))
    assert "FINETUNE_QA_DEBUG" in names  # the scan works
    env_page = _code_spans("reference/environment.md")
    assert names <= env_page, names - env_page


_HELP_BLOCK = re.compile(r"```text\n\$ (finetune-qa[^\n]*--help)\n(.*?)```", re.S)


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_help_shown_in_the_docs_is_the_real_one(page: Path) -> None:
    """Issue #13, finding 11: a `$ finetune-qa ... --help` transcript is what --help prints."""
    from click.testing import CliRunner

    for match in _HELP_BLOCK.finditer(page.read_text(encoding="utf-8")):
        argv = match.group(1).split()[1:]
        result = CliRunner().invoke(click_group, argv, terminal_width=80)
        assert result.exit_code == 0, result.output
        assert match.group(2).rstrip() == result.output.rstrip(), f"{page}: {match.group(1)}"
