"""One CLI dialect (issue #13, finding 7), checked on every command by walking the group.

The rules are those of docs/guides/cli.md's "One dialect" section: ``-o/--output`` for the
file a command writes (older spellings kept only as hidden aliases), ``--json`` and
``-q/--quiet`` (one meaning) on every command, one name and one type for one thing, and
``--epochs`` read the same way everywhere. A command that breaks a rule fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from finetune_qa.cli import cli

# a thing with two names: the second is the one to use
SYNONYMS = {
    "--out": "--output",
    "--out-dir": "--output",
    "--output-dir": "--output",
    "--rows": "--limit",
    "--max-rows": "--limit",
    "--count": "--limit",
    "--silent": "--quiet",
    "--verbose": "--quiet",
}
# the commands whose main result is a file (or folder) they write
WRITERS = {"build", "eval", "export", "generate", "guard train", "record"}


def commands(group: click.Group = cli, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command of the group, subgroups' commands included, by their full name."""
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, full + " ")
        else:
            yield full, command


ALL = list(commands())
NAMES = [name for name, _ in ALL]


def visible_opts(param: click.Parameter) -> list[str]:
    """The spellings ``--help`` shows (hidden aliases left out)."""
    hidden = set(getattr(param, "hidden_aliases", ()))
    return [o for o in [*param.opts, *param.secondary_opts] if o not in hidden]


def options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def test_the_walk_sees_every_command_and_subcommand() -> None:
    assert {"build", "guard train", "guard check", "ask", "serve", "demo"} <= set(NAMES)
    assert len(ALL) >= 21


@pytest.mark.parametrize(("name", "command"), ALL, ids=NAMES)
def test_json_on_every_command(name: str, command: click.Command) -> None:
    found = [p for p in options(command) if "--json" in p.opts]
    assert found, f"{name}: no --json"
    assert found[0].is_flag and found[0].name == "as_json", name
    assert found[0].help and "JSON" in found[0].help, name


@pytest.mark.parametrize(("name", "command"), ALL, ids=NAMES)
def test_quiet_has_one_spelling_and_one_meaning(name: str, command: click.Command) -> None:
    found = [p for p in options(command) if "--quiet" in p.opts or "-q" in p.opts]
    assert found, f"{name}: no -q/--quiet"
    quiet = found[0]
    assert quiet.opts == ["-q", "--quiet"] and quiet.is_flag, f"{name}: {quiet.opts}"
    # one meaning: only the essential result, no progress
    assert quiet.help and quiet.help.startswith("Print only "), f"{name}: {quiet.help!r}"
    assert quiet.help.endswith("; no progress."), f"{name}: {quiet.help!r}"


@pytest.mark.parametrize(("name", "command"), ALL, ids=NAMES)
def test_written_files_are_dash_o_output(name: str, command: click.Command) -> None:
    for param in options(command):
        shown = visible_opts(param)
        if "-o" in shown or "--output" in shown:
            assert shown == ["-o", "--output"], f"{name}: {shown}"
    if name in WRITERS:
        assert any(visible_opts(p) == ["-o", "--output"] for p in options(command)), name


@pytest.mark.parametrize(("name", "command"), ALL, ids=NAMES)
def test_one_name_for_one_thing(name: str, command: click.Command) -> None:
    for param in options(command):
        for opt in visible_opts(param):
            assert opt not in SYNONYMS, f"{name} {opt}: spell it {SYNONYMS[opt]}"


def _kind(param: click.Parameter) -> str:
    """A parameter's type, ranges and finiteness aside (an IntRange is an integer)."""
    t = param.type
    if isinstance(t, click.IntRange):
        return "integer"
    if isinstance(t, click.FloatRange):
        return "float"
    if isinstance(t, click.Choice):
        return "choice"
    if isinstance(t, click.Path):
        return "path"  # a file, a folder or either
    return "flag" if getattr(param, "is_flag", False) else t.name


def test_one_type_for_one_name() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name, command in ALL:
        for param in options(command):
            for opt in visible_opts(param):
                if not opt.startswith("--"):
                    continue
                kind = _kind(param)
                first = seen.setdefault(opt, (name, kind))
                assert first[1] == kind, f"{opt}: {first[1]} in {first[0]}, {kind} in {name}"


def test_epochs_reads_the_same_everywhere() -> None:
    found = [(n, p) for n, c in ALL for p in options(c) if "--epochs" in p.opts]
    assert {n for n, _ in found} >= {"validate", "train", "migrate"}
    for name, param in found:
        assert param.type.name == "auto|1-N", name
        ctx = click.Context(click.Command(name))
        assert param.type.convert("auto", param, ctx) == "auto"
        assert param.type.convert("3", param, ctx) == 3
        with pytest.raises(click.BadParameter):
            param.type.convert("0", param, ctx)
        with pytest.raises(click.BadParameter):
            param.type.convert("many", param, ctx)


@pytest.mark.parametrize(
    ("argv", "old", "dest", "value"),
    [
        (["generate", "x.md", "--out", "qa.csv"], "--out", "output", Path("qa.csv")),
        (["export", "t.jsonl", "--out", "d"], "--out", "output", Path("d")),
        (
            ["guard", "train", "d.csv", "--gate", "question", "--out", "g.json"],
            "--out",
            "output",
            Path("g.json"),
        ),
        (["metrics", "ftjob-1", "--rows", "5"], "--rows", "limit", 5),
    ],
)
def test_old_spellings_still_work_but_are_not_shown(
    argv: list[str], old: str, dest: str, value: object
) -> None:
    words = list(argv)
    command: click.Command = cli
    # each context under its parent, as a run makes them: the group's settings (-h) reach
    # the command, and click's cached help option stays the one a real run sees
    parent = click.Context(cli, info_name="finetune-qa", **cli.context_settings)
    while isinstance(command, click.Group):
        command = command.commands[words.pop(0)]
        if isinstance(command, click.Group):
            parent = click.Context(command, info_name=command.name, parent=parent)
    ctx = command.make_context(command.name, words, parent=parent, resilient_parsing=True)
    assert ctx.params[dest] == value
    shown = command.get_help(ctx)
    assert f"{old} " not in shown and f"{old}," not in shown
