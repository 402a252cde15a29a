"""Hugging Face export: chat fine-tuning JSONL as ``datasets``-loadable JSONL or Parquet.

The files have a ``messages`` column, a list of ``{role, content}`` structs: the
conversational format TRL's ``SFTTrainer`` and axolotl's ``type: chat_template``
(``field_messages: messages``) read. Load them with
``datasets.load_dataset("parquet", data_files={"train": ...})`` (or ``"json"``).

How OpenAI's extras map:

* the stop marker stays in the answer text, exactly as trained (strip it yourself if
  the new model should learn its own end-of-turn token instead);
* ``weight`` (0/1 on assistant messages) is kept out of ``messages``, so their struct
  stays ``{role, content}``; when any example carries a weight, a parallel ``weights``
  column holds one entry per message (the weight, or null). TRL and axolotl do not
  read it: TRL trains on every assistant message;
* ``tools`` become a ``tools_json`` column of JSON strings (null when an example has
  none). It is not named ``tools`` because TRL passes a ``tools`` column straight to the
  chat template, which expects a list of JSON-schema dicts, and Parquet needs one struct
  schema for every row, which free-form parameter schemas do not have;
* ``name``, ``tool_calls`` and ``tool_call_id`` become message struct fields only when
  the file has them (``tool_calls`` keeps ``arguments`` as its JSON string);
* ``parallel_tool_calls`` is an OpenAI request flag with no open-model equivalent: it is
  dropped and counted in :attr:`ExportReport.dropped_keys`.

The export streams: a first pass checks every line and finds which optional columns are
needed (so the schema is fixed before anything is written), a second writes batches of
``row_group_size`` rows. Memory does not grow with the file. Because it is read twice, the
source must be a regular file: a pipe or ``<(process substitution)`` is refused (it would
be empty the second time). The output is written to a temporary file and moved into
place only when complete: on any error nothing appears (and :func:`export_splits` checks
every source before it writes any file or creates the directory).

Why a separate call and not an option of ``DatasetBuilder.build``: ``build`` writes the
OpenAI JSONL and a report that reconciles every pair; the Hugging Face file is a second
product, with its own optional dependency (pyarrow) and its own output layout. Exporting
the finished JSONL keeps ``build``'s contract and ``BuildReport`` unchanged, fails before
any work when the extra is missing, and guarantees the Parquet holds exactly what the
JSONL holds. :func:`export_build` does both splits of a build in one call.

Example:
    >>> import pathlib, tempfile
    >>> from finetune_qa import DatasetBuilder, sample_csv
    >>> from finetune_qa.export import export_hf
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = DatasetBuilder().add_source(sample_csv()).build(d / "train.jsonl")
    >>> (d / "hf").mkdir()
    >>> report = export_hf(d / "train.jsonl", d / "hf", format="jsonl", split_name="train")
    >>> report.examples, report.columns, pathlib.Path(report.path).name
    (24, ['messages'], 'train.jsonl')
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import atomic_write, numbered_lines, same_file
from finetune_qa.exceptions import (
    ConfigError,
    JSONLFormatError,
    RecordError,
    UsageError,
)
from finetune_qa.validation import check_tool_calls

if TYPE_CHECKING:
    from finetune_qa.dataset import BuildReport

__all__ = [
    "HF_INSTALL_HINT",
    "ExportFormat",
    "ExportReport",
    "export_build",
    "export_hf",
    "export_splits",
]

ExportFormat = Literal["jsonl", "parquet"]
"""Output formats: JSON lines, or Parquet (needs pyarrow)."""

HF_INSTALL_HINT = "pip install 'finetune-qa[hf]'"
"""How to get pyarrow for Parquet export."""

DEFAULT_ROW_GROUP = 10_000
"""Rows converted and written at a time (one Parquet row group each)."""

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_TOP_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
_EXTENSIONS: dict[str, str] = {"jsonl": "jsonl", "parquet": "parquet"}


class ExportReport(BaseModel):
    """What :func:`export_hf` wrote: where, how many rows, which columns."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="The chat JSONL read.")
    path: str = Field(description="The file written.")
    format: ExportFormat = Field(description="'jsonl' or 'parquet'.")
    split: str | None = Field(description="Split name, for load_dataset's data_files.")
    examples: int = Field(description="Rows written (one per example).")
    columns: list[str] = Field(description="Columns of the dataset, in order.")
    message_fields: list[str] = Field(description="Fields of each message struct.")
    bytes: int = Field(description="Size of the file written.")
    weighted_examples: int = Field(
        description="Examples with a 'weight' on some message (kept in the 'weights' column)."
    )
    tool_examples: int = Field(description="Examples offering tools (kept in 'tools_json').")
    dropped_keys: dict[str, int] = Field(
        description="Keys with no open-model equivalent that were not written, by count."
    )

    def load_snippet(self) -> str:
        """The ``datasets`` call that loads this file."""
        builder = "json" if self.format == "jsonl" else "parquet"
        split = self.split or "train"
        return f'load_dataset("{builder}", data_files={{"{split}": "{self.path}"}})'

    def to_text(self) -> str:
        """A short plain-text rendering."""
        lines = [
            f"{self.examples:,} examples -> {self.path} ({self.format}, {self.bytes:,} bytes)",
            f"  columns: {', '.join(self.columns)}; messages: {', '.join(self.message_fields)}",
        ]
        if self.weighted_examples:
            lines.append(
                f"  {self.weighted_examples:,} examples carry message weights: kept in the "
                "'weights' column (TRL and axolotl ignore it)"
            )
        if self.tool_examples:
            lines.append(f"  {self.tool_examples:,} examples offer tools: kept in 'tools_json'")
        for key, n in sorted(self.dropped_keys.items()):
            lines.append(f"  dropped '{key}' from {n:,} examples (no open-model equivalent)")
        return "\n".join(lines) + "\n"


@dataclass
class _Shape:
    """What the first pass found: row count and the optional parts the schema needs."""

    examples: int = 0
    weighted: int = 0
    tools: int = 0
    names: bool = False
    tool_calls: bool = False
    dropped: dict[str, int] = field(default_factory=dict)

    def message_fields(self) -> list[str]:
        out = ["role", "content"]
        if self.names:
            out.append("name")
        if self.tool_calls:
            out += ["tool_calls", "tool_call_id"]
        return out

    def columns(self) -> list[str]:
        out = ["messages"]
        if self.weighted:
            out.append("weights")
        if self.tools:
            out.append("tools_json")
        return out


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    # a regular file only: the export reads its input twice (check, then write), so a
    # pipe would be empty the second time, and opening a FIFO with no writer would hang
    return numbered_lines(
        path,
        kind="JSONL file",
        directory_hint="pass the .jsonl file itself",
        pipe_hint="save the JSONL to a file and pass that: the export reads it twice",
        skip_blank=True,
        limit=None,
    )


def _bad(path: Path, line: int, problem: str) -> RecordError:
    return RecordError(
        problem,
        path=path,
        line=line,
        hint="fix the line, or rebuild the file with `finetune-qa build`; "
        "`finetune-qa validate` lists every problem",
    )


def _parse(path: Path, line: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONLFormatError(
            f"not valid JSON ({exc})",
            path=path,
            line=line,
            hint="each line must be one JSON object",
        ) from exc
    if not isinstance(obj, dict):
        raise JSONLFormatError(
            f"a JSON {type(obj).__name__}, not an object",
            path=path,
            line=line,
            hint='each line must be one object like {"messages": [...]}',
        )
    return obj


def _check(path: Path, line: int, obj: dict[str, Any], shape: _Shape) -> None:
    """Check one example's shape and note which optional parts it uses."""
    unknown = sorted(set(obj) - _TOP_KEYS)
    if unknown:
        raise _bad(path, line, f"unknown key {unknown[0]!r} (expected messages, tools)")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad(path, line, "'messages' must be a non-empty list")
    weighted = False
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict):
            raise _bad(path, line, f"message {i} is not an object")
        extra = sorted(set(m) - _MESSAGE_KEYS)
        if extra:
            raise _bad(path, line, f"message {i} has an unknown key {extra[0]!r}")
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(path, line, f"message {i} has role {role!r}; expected {sorted(_ROLES)}")
        content = m.get("content")
        if not isinstance(content, str) and not (content is None and m.get("tool_calls")):
            raise _bad(
                path,
                line,
                f"message {i} ({role}) needs text 'content'"
                + (" (content parts such as images are not exported)" if content else ""),
            )
        if "weight" in m:
            w = m["weight"]
            if role != "assistant" or isinstance(w, bool) or w not in (0, 1):
                raise _bad(path, line, f"message {i}: 'weight' must be 0 or 1, on assistant only")
            weighted = True
        if m.get("name") is not None:
            if not isinstance(m["name"], str):
                raise _bad(path, line, f"message {i}: 'name' must be a string")
            shape.names = True
        if m.get("tool_calls") is not None or m.get("tool_call_id") is not None:
            _check_tool_calls(path, line, i, m)
            shape.tool_calls = True
    tools = obj.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad(path, line, "'tools' must be a list")
        shape.tools += 1
    if "parallel_tool_calls" in obj:
        shape.dropped["parallel_tool_calls"] = shape.dropped.get("parallel_tool_calls", 0) + 1
    shape.weighted += weighted
    shape.examples += 1


def _check_tool_calls(path: Path, line: int, i: int, m: dict[str, Any]) -> None:
    calls = m.get("tool_calls")
    if calls is not None:
        # the validator's rule, so that a file `finetune-qa validate` passes exports
        problem = check_tool_calls(calls)
        if problem is not None:
            raise _bad(
                path,
                line,
                f"message {i}: {problem}; 'tool_calls' must be a list of "
                '{"id", "type": "function", "function": {"name", "arguments"}}',
            )
    call_id = m.get("tool_call_id")
    if call_id is not None and not isinstance(call_id, str):
        raise _bad(path, line, f"message {i}: 'tool_call_id' must be a string")


def _row(obj: dict[str, Any], shape: _Shape) -> dict[str, Any]:
    """One output row; every column and struct field is present, so the schema is fixed."""
    messages = []
    for m in obj["messages"]:
        out: dict[str, Any] = {"role": m["role"], "content": m.get("content")}
        if shape.names:
            out["name"] = m.get("name")
        if shape.tool_calls:
            calls = m.get("tool_calls")
            out["tool_calls"] = (
                [
                    {
                        "id": c["id"],
                        "type": c.get("type", "function"),
                        "function": {
                            "name": c["function"]["name"],
                            "arguments": c["function"]["arguments"],
                        },
                    }
                    for c in calls
                ]
                if calls is not None
                else None
            )
            out["tool_call_id"] = m.get("tool_call_id")
        messages.append(out)
    row: dict[str, Any] = {"messages": messages}
    if shape.weighted:
        row["weights"] = [m.get("weight") for m in obj["messages"]]
    if shape.tools:
        tools = obj.get("tools")
        row["tools_json"] = orjson.dumps(tools).decode("utf-8") if tools is not None else None
    return row


def _arrow_schema(shape: _Shape) -> Any:
    pa, _ = _pyarrow()

    fields = [pa.field("role", pa.string()), pa.field("content", pa.string())]
    if shape.names:
        fields.append(pa.field("name", pa.string()))
    if shape.tool_calls:
        function = pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())])
        call = pa.struct(
            [
                pa.field("id", pa.string()),
                pa.field("type", pa.string()),
                pa.field("function", function),
            ]
        )
        fields += [pa.field("tool_calls", pa.list_(call)), pa.field("tool_call_id", pa.string())]
    columns = [pa.field("messages", pa.list_(pa.struct(fields)))]
    if shape.weighted:
        columns.append(pa.field("weights", pa.list_(pa.int8())))
    if shape.tools:
        columns.append(pa.field("tools_json", pa.string()))
    return pa.schema(columns)


def _pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, imported on demand (typed Any: pyarrow ships no stubs)."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(
            f"Parquet export needs pyarrow, which is not installed: {HF_INSTALL_HINT} "
            "(or export with format='jsonl')"
        ) from None


def _target(
    src: Path, out: Path, fmt: ExportFormat, split_name: str | None, *, as_dir: bool
) -> Path:
    if as_dir or out.is_dir():
        name = split_name or src.name.split(".", 1)[0] or "train"
        out = out / f"{name}.{_EXTENSIONS[fmt]}"
    if same_file(src, out):
        raise UsageError(
            f"the export would overwrite its source {src}; write it to another directory"
        )
    return out


@dataclass
class _Job:
    """One file to export, checked: the source, what the first pass found, the target."""

    src: Path
    shape: _Shape
    target: Path
    split: str | None


def _check_args(format: str, row_group_size: int) -> None:
    if format not in _EXTENSIONS:
        raise UsageError(f"format must be 'jsonl' or 'parquet', got {format!r}")
    if type(row_group_size) is not int or row_group_size < 1:
        raise UsageError(f"row_group_size must be a whole number >= 1, got {row_group_size!r}")
    if format == "parquet":
        _pyarrow()


def _prepare(
    src_jsonl: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: ExportFormat,
    split_name: str | None,
    *,
    as_dir: bool,
) -> _Job:
    """The first pass: check every line of the source and choose the target; writes nothing."""
    src = Path(src_jsonl)
    shape = _Shape()
    for n, raw in _lines(src):
        _check(src, n, _parse(src, n, raw), shape)
    if shape.examples == 0:
        raise RecordError(
            "holds no examples", path=src, hint="export a file with at least one chat example"
        )
    given = os.fspath(out)
    as_dir = as_dir or given.endswith(("/", os.sep))
    return _Job(src, shape, _target(src, Path(given), fmt, split_name, as_dir=as_dir), split_name)


def _write(job: _Job, fmt: ExportFormat, row_group_size: int) -> ExportReport:
    """The second pass: write the target atomically (missing folders are created)."""

    def write(f: IO[bytes]) -> None:
        if fmt == "parquet":
            _write_parquet(job.src, f, job.shape, row_group_size)
        else:
            _write_jsonl(job.src, f, job.shape, row_group_size)

    atomic_write(job.target, write, hint="choose a writable directory for the export")
    shape = job.shape
    return ExportReport(
        source=str(job.src),
        path=str(job.target),
        format=fmt,
        split=job.split,
        examples=shape.examples,
        columns=shape.columns(),
        message_fields=shape.message_fields(),
        bytes=job.target.stat().st_size,
        weighted_examples=shape.weighted,
        tool_examples=shape.tools,
        dropped_keys=dict(shape.dropped),
    )


def export_hf(
    src_jsonl: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: ExportFormat = "parquet",
    split_name: str | None = None,
    row_group_size: int = DEFAULT_ROW_GROUP,
) -> ExportReport:
    """Write a chat fine-tuning JSONL as a ``datasets`` file with a ``messages`` column.

    Args:
        src_jsonl: the chat JSONL (OpenAI's format, e.g. what ``DatasetBuilder`` wrote).
        out: the file to write; when it is a directory (existing, or ending with ``/``)
            the file is ``<split_name or source stem>.<parquet|jsonl>`` inside it.
        format: ``"parquet"`` (needs pyarrow: ``pip install 'finetune-qa[hf]'``) or
            ``"jsonl"``.
        split_name: the split this file is (``"train"``, ``"validation"``); names the
            file inside a directory and is shown in :meth:`ExportReport.load_snippet`.
        row_group_size: rows converted and written at a time (a Parquet row group).

    Returns:
        The :class:`ExportReport`.

    Raises:
        ConfigError: Parquet was asked for and pyarrow is not installed.
        InputFileError: the source cannot be read, or the output cannot be written.
        JSONLFormatError: a line is not a JSON object (the error names file and line).
        RecordError: a line is not a chat example (the error names file and line).
        UsageError: bad arguments, or the output would overwrite the source.
    """
    _check_args(format, row_group_size)
    job = _prepare(src_jsonl, out, format, split_name, as_dir=False)
    return _write(job, format, row_group_size)


def export_splits(
    splits: Sequence[tuple[str, str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    *,
    format: ExportFormat = "parquet",
    row_group_size: int = DEFAULT_ROW_GROUP,
) -> list[ExportReport]:
    """Export several splits into one directory, checking every source before writing any.

    Each split is written as ``<name>.<parquet|jsonl>`` in ``out_dir``, which is created
    when the first file is written: a bad source leaves no file and no empty directory.

    Args:
        splits: ``(split name, chat JSONL)`` pairs, e.g. ``[("train", "train.jsonl")]``.
        out_dir: the directory to write into.
        format: ``"parquet"`` or ``"jsonl"``.
        row_group_size: rows written at a time.

    Returns:
        One :class:`ExportReport` per split, in the order given.

    Raises:
        ConfigError: Parquet was asked for and pyarrow is not installed.
        InputFileError: a source cannot be read (or is not a regular file), or the
            directory cannot be written.
        JSONLFormatError: a line is not a JSON object (the error names file and line).
        RecordError: a line is not a chat example (the error names file and line).
        UsageError: bad arguments; ``out_dir`` is a file; an output would overwrite a source.
    """
    _check_args(format, row_group_size)
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d} is a file; the export writes into a directory: choose another")
    names = [name for name, _ in splits]
    if not names or len(set(names)) != len(names):
        raise UsageError(f"give one or more splits with different names, got {names}")
    jobs = [_prepare(path, d, format, name, as_dir=True) for name, path in splits]
    for job in jobs:
        for other in jobs:
            if same_file(other.src, job.target):
                raise UsageError(
                    f"the export would overwrite its source {other.src}; "
                    "write it to another directory"
                )
    return [_write(job, format, row_group_size) for job in jobs]


def _batches(src: Path, shape: _Shape, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for n, raw in _lines(src):
        batch.append(_row(_parse(src, n, raw), shape))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_jsonl(src: Path, f: IO[bytes], shape: _Shape, size: int) -> None:
    for batch in _batches(src, shape, size):
        f.write(b"".join(orjson.dumps(row) + b"\n" for row in batch))


def _write_parquet(src: Path, f: IO[bytes], shape: _Shape, size: int) -> None:
    pa, pq = _pyarrow()
    schema = _arrow_schema(shape)
    with pq.ParquetWriter(f, schema) as writer:
        for batch in _batches(src, shape, size):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema), row_group_size=size)


def export_build(
    report: BuildReport,
    out_dir: str | os.PathLike[str],
    *,
    format: ExportFormat = "parquet",
    row_group_size: int = DEFAULT_ROW_GROUP,
) -> list[ExportReport]:
    """Export the training (and validation) file of a build into ``out_dir``.

    Writes ``train.<ext>`` and, when the build wrote one, ``validation.<ext>``:
    ``load_dataset("parquet", data_dir=out_dir)`` then finds both splits by name.

    Args:
        report: what :meth:`DatasetBuilder.build` returned.
        out_dir: the directory to write into (created if needed).
        format: ``"parquet"`` or ``"jsonl"``.
        row_group_size: rows written at a time.

    Returns:
        One :class:`ExportReport` per split, training first.
    """
    if report.output is None:
        raise UsageError("the build report names no training file")
    splits: list[tuple[str, str | os.PathLike[str]]] = [("train", report.output)]
    if report.validation_output:
        splits.append(("validation", report.validation_output))
    return export_splits(splits, out_dir, format=format, row_group_size=row_group_size)
