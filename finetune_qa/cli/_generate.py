"""CLI command ``finetune-qa generate``: QA pairs from Markdown pages.

A thin shell over :class:`finetune_qa.generation.QAGenerator`: read and clean the
pages, chunk them, ask the model, write the pairs (seed CSV layout for ``.csv``, JSONL
for ``.jsonl``) atomically, and print the report.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from finetune_qa.cli._common import (
    EXIT_HELP,
    backend_options,
    check_outputs,
    compact_json,
    emit,
    json_option,
    open_backend,
    output_option,
    quiet_option,
    same_file,
)
from finetune_qa.config import DEFAULT_MODEL
from finetune_qa.exceptions import DatasetError, InputError, UsageError

__all__ = ["generate"]

_OUTPUT_SUFFIXES = (".csv", ".jsonl")


@click.command(epilog=EXIT_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option(
    "Where to write the pairs: .csv (seed layout) or .jsonl.",
    old="--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
)
@click.option(
    "--model", default=DEFAULT_MODEL, show_default=True, help="Model that writes the pairs."
)
@backend_options
@click.option(
    "--pairs-per-chunk",
    type=int,
    default=5,
    show_default=True,
    help="At least this many pairs per chunk (one per fact where a chunk has more).",
)
@click.option(
    "--max-chunk-tokens",
    type=int,
    default=800,
    show_default=True,
    help="Most tokens of page text per request.",
)
@click.option(
    "--concurrency", type=int, default=8, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--glob",
    default="**/*.md",
    show_default=True,
    help="Pattern for the Markdown files of a folder.",
)
@json_option("the report")
@quiet_option("the path written")
def generate(
    paths: tuple[Path, ...],
    output: Path,
    model: str,
    backend: str,
    base_url: str | None,
    pairs_per_chunk: int,
    max_chunk_tokens: int,
    concurrency: int,
    glob: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Generate QA pairs from Markdown pages (files or folders) with a model.

    Navigation, code, front matter and HTML are removed, pages are cut into chunks
    along their headings, and the model is asked for numbered questions and answers
    per chunk. The output is written atomically: on an error nothing is written.
    """
    from finetune_qa.chat import ChatModel
    from finetune_qa.generation import QAGenerator

    out = output
    if out.suffix.lower() not in _OUTPUT_SUFFIXES:
        raise UsageError(
            f"-o/--output {out} must end in .csv (seed layout, for `finetune-qa build`) or .jsonl"
        )
    if Path(glob).is_absolute() or ".." in Path(glob).parts:
        raise UsageError(
            f"--glob {glob!r} reaches outside the folder; pass a pattern inside it, e.g. '**/*.md'"
        )
    _check_out(out, paths, glob)  # before any request: a bad -o/--output must cost nothing
    check_outputs({"--output": out})
    with open_backend(backend, base_url) as be:
        generator = QAGenerator(
            ChatModel(model, backend=be),
            pairs_per_chunk=pairs_per_chunk,
            max_chunk_tokens=max_chunk_tokens,
            concurrency=concurrency,
            glob=glob,
        )
        result = generator.generate(paths)
    report = result.report
    if not result.pairs:
        if as_json or not quiet:
            click.echo(compact_json(report.to_json()) if as_json else report.to_text())
        raise DatasetError(
            f"no QA pairs were generated, so {out} was not written; see the report",
            report=report,
        )
    if out.suffix.lower() == ".csv":
        result.write_csv(out)
    else:
        result.write_jsonl(out)
    emit(
        report.model_dump(mode="json"),
        as_json,
        lambda: f"{report.to_text()}\nWrote {len(result.pairs)} pairs to {out}",
        quiet=lambda: str(out),
    )


def _check_out(out: Path, inputs: tuple[Path, ...], glob: str) -> None:
    """Refuse an -o/--output path that cannot be written, before any request is paid for.

    The path must not be a directory nor one of the input pages, and its folder must
    exist or be creatable (the nearest existing ancestor is a writable directory); the
    writer creates missing folders.

    Raises:
        InputError: the path cannot be written, naming it and what to do.
    """
    if out.is_dir():
        raise InputError(
            "-o/--output is a directory", path=out, hint="pass a file path ending in .csv or .jsonl"
        )
    if out.exists():
        for given in inputs:
            found = given.glob(glob) if given.is_dir() else (given,)
            if any(same_file(out, page) for page in found):
                raise InputError(
                    f"-o/--output is one of the input pages (given as {given})",
                    path=out,
                    hint="write the pairs to another file",
                )
    folder = out.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(
            f"-o/--output's folder cannot be created: {folder} is a file, not a folder",
            path=out,
            hint="pick a path under a folder",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"-o/--output cannot be written: no write permission in {folder}",
            path=out,
            hint="pick a path in a folder you can write to",
        )
