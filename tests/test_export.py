from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from finetune_qa import DatasetBuilder, TrainingExample, sample_csv, validate_examples
from finetune_qa import export as export_mod
from finetune_qa.cli import main
from finetune_qa.exceptions import (
    ConfigError,
    InputFileError,
    JSONLFormatError,
    RecordError,
    UsageError,
)
from finetune_qa.export import ExportReport, export_build, export_hf, export_splits


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """datasets without network, with its cache under tmp."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    cache = tmp_path / "hf-cache"
    return cache


def load(builder: str, cache: Path, **kwargs: Any) -> Any:
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(builder, cache_dir=str(cache), **kwargs)


def trl_is_conversational(example: dict[str, Any]) -> bool:
    """TRL's check (trl.data_utils.is_conversational) for the keys SFTTrainer reads."""
    keys = {k for k in example if k in ("prompt", "chosen", "rejected", "completion", "messages")}
    if not keys:
        return False
    value = example[keys.pop()]
    return (
        isinstance(value, list)
        and isinstance(value[0], dict)
        and "role" in value[0]
        and "content" in value[0]
    )


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def source_messages(path: Path) -> list[list[dict[str, Any]]]:
    return [
        [m.to_dict() for m in TrainingExample.from_json(line).messages]
        for line in path.read_text().splitlines()
    ]


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "data"
    report = (
        DatasetBuilder()
        .add_source(sample_csv())
        .split(0.2)
        .build(d / "train.jsonl", validation_output=d / "validation.jsonl")
    )
    assert report.train > 0 and report.validation > 0
    return d / "train.jsonl", d / "validation.jsonl"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_round_trip_loads_with_datasets(
    fmt: str, built: tuple[Path, Path], tmp_path: Path, hf_offline: Path
) -> None:
    train, _ = built
    out = tmp_path / "hf"
    out.mkdir()
    report = export_hf(train, out, format=fmt, split_name="train")  # type: ignore[arg-type]
    ours = source_messages(train)
    assert report.examples == len(ours) and report.columns == ["messages"]
    assert report.message_fields == ["role", "content"]
    assert (
        Path(report.path) == out / f"train.{fmt}"
        and report.bytes == Path(report.path).stat().st_size
    )
    assert report.weighted_examples == 0 and report.tool_examples == 0 and report.dropped_keys == {}

    ds = load(
        "json" if fmt == "jsonl" else "parquet", hf_offline, data_files={"train": report.path}
    )["train"]
    assert ds.column_names == ["messages"] and len(ds) == len(ours)
    assert ds[0]["messages"] == ours[0]
    assert [row["messages"] for row in ds] == ours  # every row, in order, stop marker kept
    assert ours[0][-1]["content"].endswith(" **STOP**")
    assert all(trl_is_conversational(row) for row in ds)
    assert all(
        isinstance(m["role"], str) and isinstance(m["content"], str)
        for row in ds
        for m in row["messages"]
    )


def test_export_build_writes_both_splits_by_name(
    built: tuple[Path, Path], tmp_path: Path, hf_offline: Path
) -> None:
    _, val = built
    report = (
        DatasetBuilder()
        .add_source(sample_csv())
        .split(0.2)
        .build(
            tmp_path / "b" / "train.jsonl", validation_output=tmp_path / "b" / "validation.jsonl"
        )
    )
    reports = export_build(report, tmp_path / "hf")
    assert [r.split for r in reports] == ["train", "validation"]
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "train.parquet",
        "validation.parquet",
    ]
    dd = load("parquet", hf_offline, data_dir=str(tmp_path / "hf"))
    assert set(dd) == {"train", "validation"}
    assert [r["messages"] for r in dd["validation"]] == source_messages(val)
    assert len(dd["train"]) == report.train


def test_weights_tools_and_tool_calls_as_documented(tmp_path: Path, hf_offline: Path) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
    }
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Hi?"},
                {"role": "assistant", "content": "Hello.", "weight": 0},
                {"role": "user", "content": "And?"},
                {"role": "assistant", "content": "Bye.", "weight": 1},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Plain?"},
                {"role": "assistant", "content": "Yes."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Look up x"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": "x is 1", "tool_call_id": "c1"},
                {"role": "assistant", "content": "It is 1.", "name": "bot"},
            ],
            "tools": tools,
            "parallel_tool_calls": False,
        },
    ]
    src = write_jsonl(tmp_path / "extras.jsonl", rows)
    report = export_hf(src, tmp_path / "extras.parquet", split_name="train")
    assert report.columns == ["messages", "weights", "tools_json"]
    assert report.message_fields == ["role", "content", "name", "tool_calls", "tool_call_id"]
    assert report.weighted_examples == 1 and report.tool_examples == 1
    assert report.dropped_keys == {"parallel_tool_calls": 1}
    text = report.to_text()
    assert "weights" in text and "tools_json" in text and "parallel_tool_calls" in text

    ds = load("parquet", hf_offline, data_files={"train": report.path})["train"]
    first = ds[0]
    # weight stays out of messages; a parallel column holds it (null where none was given)
    assert all("weight" not in m for m in first["messages"])
    assert first["weights"] == [None, 0, None, 1]
    assert ds[1]["weights"] == [None, None] and ds[1]["tools_json"] is None
    assert [m["content"] for m in ds[1]["messages"]] == ["Plain?", "Yes."]
    third = ds[2]
    assert json.loads(third["tools_json"]) == tools
    assert third["messages"][1]["tool_calls"] == [call] and third["messages"][1]["content"] is None
    assert third["messages"][2]["tool_call_id"] == "c1" and third["messages"][3]["name"] == "bot"
    assert all(trl_is_conversational(row) for row in ds)


def test_row_groups_stream_in_batches(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Q{i}?"},
                {"role": "assistant", "content": f"A{i}."},
            ]
        }
        for i in range(25)
    ]
    src = write_jsonl(tmp_path / "many.jsonl", rows)
    report = export_hf(src, tmp_path / "many.parquet", row_group_size=10)
    meta = pq.ParquetFile(report.path).metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 25
    table = pq.read_table(report.path)
    assert table.column("messages").to_pylist() == [r["messages"] for r in rows]


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        (b"{not json", JSONLFormatError, "not valid JSON"),
        (b"[1, 2]", JSONLFormatError, "not an object"),
        (b'{"messages": []}', RecordError, "non-empty list"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', RecordError, "role 'robot'"),
        (b'{"messages": [{"role": "user", "content": 5}]}', RecordError, "needs text 'content'"),
        (b'{"messages": [{"role": "user", "content": "x", "weight": 1}]}', RecordError, "'weight'"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "extra": 1}',
            RecordError,
            "unknown key 'extra'",
        ),
    ],
)
def test_bad_line_names_file_and_line_and_writes_nothing(
    tmp_path: Path, line: bytes, error: type[Exception], words: str
) -> None:
    good = orjson.dumps(
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}]}
    )
    src = tmp_path / "bad.jsonl"
    src.write_bytes(good + b"\n\n" + good + b"\n" + line + b"\n" + good + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error) as info:
        export_hf(src, out, format="parquet", split_name="train")
    assert info.value.path == str(src) and info.value.line == 4  # type: ignore[attr-defined]
    assert words in str(info.value) and f"{src}:4:" in str(info.value)
    assert list(out.iterdir()) == []


def test_failure_mid_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Q{i}?"},
                {"role": "assistant", "content": "A."},
            ]
        }
        for i in range(30)
    ]
    src = write_jsonl(tmp_path / "t.jsonl", rows)
    target = tmp_path / "out" / "t.parquet"
    target.parent.mkdir()
    target.write_bytes(b"previous export")
    real_row = export_mod._row
    calls = {"n": 0}

    def failing_row(obj: dict[str, Any], shape: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 25:
            raise OSError("disk full")
        return real_row(obj, shape)

    monkeypatch.setattr(export_mod, "_row", failing_row)
    for fmt in ("parquet", "jsonl"):
        calls["n"] = 0
        # an OS error while writing is an InputFileError naming the file (a one-line CLI error)
        with pytest.raises(InputFileError, match="disk full") as info:
            export_hf(src, target, format=fmt, row_group_size=10)  # type: ignore[arg-type]
        assert info.value.path == str(target)
        # the earlier file is untouched and no temporary file is left behind
        assert target.read_bytes() == b"previous export"
        assert [p.name for p in target.parent.iterdir()] == ["t.parquet"]


def test_missing_pyarrow_is_a_config_error_with_the_install_hint(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match=r"pip install 'finetune-qa\[hf\]'"):
        export_hf(built[0], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    # JSONL needs no extra
    assert export_hf(built[0], tmp_path / "x.jsonl", format="jsonl").examples > 0


def test_refuses_to_overwrite_its_source_and_bad_arguments(built: tuple[Path, Path]) -> None:
    train, _ = built
    before = train.read_bytes()
    with pytest.raises(UsageError, match="overwrite its source"):
        export_hf(train, train.parent, format="jsonl", split_name="train")
    assert train.read_bytes() == before
    with pytest.raises(UsageError, match="format"):
        export_hf(train, train.parent / "x", format="csv")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="row_group_size"):
        export_hf(train, train.parent / "x", row_group_size=0)


def test_report_round_trips_and_load_snippet(built: tuple[Path, Path], tmp_path: Path) -> None:
    report = export_hf(built[0], tmp_path / "t.jsonl", format="jsonl", split_name="train")
    assert ExportReport.model_validate_json(report.model_dump_json()) == report
    assert (
        report.load_snippet()
        == f'load_dataset("json", data_files={{"train": "{tmp_path / "t.jsonl"}"}})'
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = built
    out = tmp_path / "hf"
    code, stdout, err = run(capsys, "export", str(train), str(val), "--out", str(out), "--json")
    assert code == 0, err
    reports = [json.loads(line) for line in stdout.splitlines()]  # JSON Lines: one per split
    assert [r["split"] for r in reports] == ["train", "validation"]
    assert [r["examples"] for r in reports] == [
        len(source_messages(train)),
        len(source_messages(val)),
    ]
    assert pq.read_table(out / "validation.parquet").column(
        "messages"
    ).to_pylist() == source_messages(val)

    code, stdout, _ = run(capsys, "export", str(train), "--out", str(out), "--format", "jsonl")
    assert code == 0 and "load with" in stdout and (out / "train.jsonl").exists()
    code, stdout, _ = run(capsys, "export", str(train), "--out", str(out), "-q")
    assert code == 0 and stdout == f"{out / 'train.parquet'}\n"  # -q: only the path written

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}]}\n{oops\n')
    code, stdout, err = run(capsys, "export", str(bad), "--out", str(tmp_path / "none"))
    assert code == 2 and err.startswith(f"error: {bad}:2: not valid JSON") and err.count("\n") == 1
    assert not (tmp_path / "none").exists()  # no empty directory left behind
    code, _, err = run(capsys, "export", str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert code == 2 and "no such file" in err


# ---------------------------------------------------------------------------- inputs and outputs


def test_a_pipe_is_refused_not_exported_empty(built: tuple[Path, Path], tmp_path: Path) -> None:
    """`export <(cat train.jsonl)` used to write an empty file: the second pass read nothing."""
    train, _ = built
    r, w = os.pipe()
    os.write(w, train.read_bytes()[:60_000])  # fits in the pipe's buffer
    os.close(w)
    try:
        with pytest.raises(InputFileError, match="not a regular file") as info:
            export_hf(f"/dev/fd/{r}", tmp_path / "hf/", format="jsonl", split_name="train")
    finally:
        os.close(r)
    assert "reads it twice" in str(info.value)
    assert not (tmp_path / "hf").exists()


def test_a_named_fifo_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    code, out, err = run(capsys, "export", str(fifo), "--out", str(tmp_path / "hf"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {fifo}: is not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_unwritable_out_is_a_one_line_error(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out` under a file (or /proc) used to be an internal FileNotFoundError, exit 1."""
    train, _ = built
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile / "hf", Path("/proc/finetune-qa-nope")):
        code, stdout, err = run(capsys, "export", str(train), "--out", str(out))
        assert code == 2 and stdout == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: {out / 'train.parquet'}: cannot write here"), err
        assert "internal error" not in err
    assert afile.read_text() == "x"


def test_every_input_is_checked_before_anything_is_written(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, _ = built
    out = tmp_path / "hf"
    code, _, err = run(
        capsys, "export", str(train), str(tmp_path / "nope.jsonl"), "--out", str(out)
    )
    assert code == 2 and "nope.jsonl: no such file" in err
    assert not out.exists()  # not even train.parquet, nor the directory


def test_an_output_never_replaces_a_source(built: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = built
    # a hard link to the source is the source (resolve() alone does not see it)
    link = tmp_path / "link.jsonl"
    os.link(train, link)
    before = train.read_bytes()
    with pytest.raises(UsageError, match="overwrite its source"):
        export_hf(train, link, format="jsonl")
    # one split's output is another split's input
    out = tmp_path / "hf"
    out.mkdir()
    (out / "train.jsonl").write_bytes(val.read_bytes())
    with pytest.raises(UsageError, match="overwrite its source"):
        export_splits([("train", train), ("validation", out / "train.jsonl")], out, format="jsonl")
    assert train.read_bytes() == before and (out / "train.jsonl").read_bytes() == val.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["train.jsonl"]


def test_export_splits_arguments(built: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = built
    with pytest.raises(UsageError, match="different names"):
        export_splits([("train", train), ("train", val)], tmp_path / "x")
    with pytest.raises(UsageError, match="is a file"):
        export_splits([("train", train)], train)
    reports = export_splits([("validation", val)], tmp_path / "new" / "dir", format="jsonl")
    assert [Path(r.path).name for r in reports] == ["validation.jsonl"]
    assert reports[0].examples == len(source_messages(val))


def test_the_export_never_sets_the_umask(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.umask() is process-wide: reading it by setting it races with other threads."""

    def no_umask(mask: int) -> int:
        raise AssertionError("os.umask called during an export")

    monkeypatch.setattr(os, "umask", no_umask)
    report = export_hf(built[0], tmp_path / "t.jsonl", format="jsonl")
    from finetune_qa._fs import umask

    assert Path(report.path).stat().st_mode & 0o777 == 0o644 & ~umask()


@pytest.mark.parametrize(
    ("calls", "problem"),
    [
        ([], "tool_calls must be a non-empty list"),
        (
            [{"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            "tool_calls[0] has no string 'id'",
        ),
        (
            [{"id": "c1", "type": "retrieval", "function": {"name": "f", "arguments": "{}"}}],
            "tool_calls[0].type must be 'function'",
        ),
        (
            [{"id": "c1", "function": {"name": "f", "arguments": "{}"}, "extra": 1}],
            "tool_calls[0] has unknown keys ['extra']",
        ),
    ],
)
def test_tool_calls_follow_the_validators_rule(
    tmp_path: Path, calls: list[Any], problem: str
) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Look up x"},
            {"role": "assistant", "content": "One moment.", "tool_calls": calls},
        ]
    }
    src = write_jsonl(tmp_path / "calls.jsonl", [row])
    with pytest.raises(RecordError, match=re.escape(problem)) as info:
        export_hf(src, tmp_path / "out.jsonl", format="jsonl")
    assert info.value.line == 1
    # the same words as `finetune-qa validate`, so the two never disagree about a file
    report = validate_examples([row] * 10, model="gpt-4o-mini")
    assert any(problem in e.message for e in report.errors)
