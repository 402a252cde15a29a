"""The shared file helpers: regular-file opening, same-file checks, atomic writes."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import IO

import pytest

from finetune_qa import _fs
from finetune_qa._fs import AtomicFile, atomic_write, open_regular, same_file, umask
from finetune_qa.exceptions import InputFileError

# ---------------------------------------------------------------------------- open_regular


def test_open_regular_reads_a_file_and_a_link_to_one(tmp_path: Path) -> None:
    f = tmp_path / "a.jsonl"
    f.write_bytes(b"one\ntwo\n")
    (tmp_path / "link.jsonl").symlink_to(f)
    for p in (f, tmp_path / "link.jsonl", str(f)):
        with open_regular(p) as fh:
            assert fh.read() == b"one\ntwo\n"
            assert os.get_blocking(fh.fileno())  # reads block again, like open()


@pytest.mark.parametrize(
    ("name", "problem", "hint"),
    [
        ("missing.jsonl", "no such file", "look here"),
        ("adir", "is a directory, not a JSONL file", "pass the file"),
        ("broken.jsonl", "no such file", "look here"),
        ("fifo", "is not a regular file (a pipe, socket or device)", "save it"),
    ],
)
def test_open_regular_refuses_with_the_path_and_what_to_do(
    tmp_path: Path, name: str, problem: str, hint: str
) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "broken.jsonl").symlink_to(tmp_path / "gone")
    os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would never return
    with pytest.raises(InputFileError) as info:
        open_regular(
            tmp_path / name,
            kind="JSONL file",
            directory_hint="pass the file",
            pipe_hint="save it",
            missing_hint="look here",
        )
    err = info.value
    assert (err.path, err.problem, err.hint) == (str(tmp_path / name), problem, hint)


def test_open_regular_refuses_a_pipe_that_holds_data() -> None:
    """`<(cat file)` is a pipe: it could be read once only, so it is refused up front."""
    r, w = os.pipe()
    os.write(w, b'{"messages": []}\n')
    os.close(w)
    try:
        with pytest.raises(InputFileError, match="not a regular file"):
            open_regular(f"/dev/fd/{r}")
    finally:
        os.close(r)


def test_open_regular_maps_permission_and_other_os_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "a.jsonl"
    f.write_bytes(b"x\n")
    for exc, words in (
        (PermissionError(13, "Permission denied"), "cannot be read: permission denied"),
        (OSError(5, "Input/output error"), "cannot be opened: Input/output error"),
    ):

        def failing(path: str, flags: int, exc: OSError = exc) -> int:
            raise exc

        monkeypatch.setattr(_fs, "_nonblocking", failing)
        with pytest.raises(InputFileError, match=words) as info:
            open_regular(f)
        assert info.value.path == str(f) and info.value.__cause__ is exc


# ---------------------------------------------------------------------------- same_file


def test_same_file_sees_paths_links_and_hard_links(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("x")
    (tmp_path / "d").mkdir()
    os.link(a, tmp_path / "hard.txt")
    (tmp_path / "soft.txt").symlink_to(a)
    (tmp_path / "b.txt").write_text("x")  # same content, other file
    assert same_file(a, a)
    assert same_file(a, tmp_path / "d" / ".." / "a.txt")
    assert same_file(a, tmp_path / "soft.txt")
    assert same_file(str(tmp_path / "hard.txt"), a)
    assert not same_file(a, tmp_path / "b.txt")
    assert not same_file(a, tmp_path / "missing.txt")
    assert not same_file(tmp_path / "missing.txt", tmp_path / "other-missing.txt")
    assert same_file(tmp_path / "new.txt", tmp_path / "d" / ".." / "new.txt")  # not there yet


# ---------------------------------------------------------------------------- atomic writes


def tmp_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00bytes\n", b"\x00bytes\n"),
        ("text: é\n", "text: é\n".encode()),
    ],
)
def test_atomic_write_bytes_and_text(tmp_path: Path, data: bytes | str, expected: bytes) -> None:
    target = tmp_path / "sub" / "dir" / "out.bin"  # missing folders are made
    atomic_write(target, data)
    assert target.read_bytes() == expected
    assert oct(target.stat().st_mode & 0o777) == oct(0o644 & ~umask())
    assert tmp_files(target.parent) == []


def test_atomic_write_callback_and_owner_only_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    os.chmod(target, 0o644)

    def writer(f: IO[bytes]) -> None:
        f.write(b"{")
        f.write(b"}")

    atomic_write(target, writer, mode=0o600)
    assert target.read_text() == "{}"
    assert oct(target.stat().st_mode & 0o777) == "0o600"  # the new file's mode, not the old


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous")

    def half(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        atomic_write(target, half)
    assert target.read_text() == "previous" and tmp_files(tmp_path) == []

    def disk_full(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputFileError) as info:
        atomic_write(target, disk_full, hint="free some space")
    err = info.value
    assert err.path == str(target) and err.hint == "free some space"
    assert err.problem == "cannot write here (No space left on device)"
    assert target.read_text() == "previous" and tmp_files(tmp_path) == []


def test_an_unwritable_place_is_an_input_file_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputFileError, match="cannot write the plot") as info:
        atomic_write(afile / "out.png", b"png", problem="cannot write the plot")
    assert info.value.path == str(afile / "out.png") and info.value.hint
    assert afile.read_text() == "x"


def test_a_failing_rename_is_mapped_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_replace(src: str, dst: str) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(InputFileError, match="cross-device"):
        atomic_write(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_streams_and_only_appears_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "train.jsonl"
    with AtomicFile(target) as out:
        out.write(b"line 1\n")
        assert not target.exists() and len(tmp_files(tmp_path)) == 1
        out.write(b"line 2\n")
    assert target.read_bytes() == b"line 1\nline 2\n" and tmp_files(tmp_path) == []
    with pytest.raises(RuntimeError):
        _ = out.file  # closed outside the with block


def test_writes_never_set_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.umask() is process-wide: reading it by setting it races with threads creating files."""

    def no_umask(mask: int) -> int:
        raise AssertionError("os.umask called while writing")

    monkeypatch.setattr(os, "umask", no_umask)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            atomic_write(tmp_path / f"{i}.txt", str(i))
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {p.read_text() for p in tmp_path.iterdir()} == {str(i) for i in range(8)}
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644 & ~umask()}


# --------------------------------------------------- one writer for text, one for streams


def test_atomic_write_hands_a_text_file_and_returns_the_path(tmp_path: Path) -> None:
    import csv

    target = tmp_path / "new" / "pairs.csv"

    def write(f: IO[str]) -> None:
        csv.writer(f, lineterminator="\n").writerow(["é", "a\nb"])

    assert atomic_write(target, write, text=True) == target
    # UTF-8, and no newline translation inside a quoted cell
    assert target.read_bytes() == b'\xc3\xa9,"a\nb"\n'
    assert atomic_write(str(target), b"x") == target


def test_atomic_write_says_what_to_do_about_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a directory") as info:
        atomic_write(tmp_path, "x", directory_hint="give a file name, e.g. out.jsonl")
    assert info.value.hint == "give a file name, e.g. out.jsonl"
    with pytest.raises(InputFileError) as info:
        atomic_write(tmp_path, "x")
    assert info.value.hint == "pass a file path to write"


def test_a_discarded_atomic_file_leaves_the_old_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "val.jsonl"
    with AtomicFile(target) as out:
        out.write(b"half")
        out.discard()
    assert not target.exists() and not (tmp_path / "sub").exists()
    target.parent.mkdir()
    target.write_bytes(b"old")
    with AtomicFile(target) as out:
        out.write(b"new")
        out.discard()
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["val.jsonl"]


# ------------------------------------------------------------- lines and byte ranges


def test_numbered_lines_skips_blanks_and_refuses_what_open_regular_refuses(
    tmp_path: Path,
) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"one\n \n\ntwo\r\nthree")
    assert list(_fs.numbered_lines(p)) == [
        (1, b"one\n"),
        (2, b" \n"),
        (3, b"\n"),
        (4, b"two\r\n"),
        (5, b"three"),
    ]
    assert list(_fs.numbered_lines(p, skip_blank=True)) == [
        (1, b"one\n"),
        (4, b"two\r\n"),
        (5, b"three"),
    ]
    with pytest.raises(InputFileError, match="longer than"):
        list(_fs.numbered_lines(p, limit=3))
    assert len(list(_fs.numbered_lines(p, limit=None))) == 5
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputFileError, match="not a regular file"):
        list(_fs.numbered_lines(tmp_path / "pipe"))


@pytest.mark.parametrize("target", [1, 7, 20, 1000])
def test_line_ranges_cover_the_file_on_line_breaks(tmp_path: Path, target: int) -> None:
    data = b"".join(b"line %d %s\n" % (i, b"x" * (i % 5)) for i in range(40))
    p = tmp_path / "a.txt"
    p.write_bytes(data)
    with open_regular(p) as f:
        ranges = list(_fs.plan_line_ranges(f, p, target))
        lines = [
            (n, raw)
            for s, e, first in ranges
            for n, raw in enumerate(_fs.read_range(f, s, e, p), first)
        ]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert lines == list(enumerate(data.splitlines(keepends=True), 1))


def test_quoted_line_ranges_never_split_a_quoted_cell(tmp_path: Path) -> None:
    rows = [b'%d,"multi\nline %d"\n' % (i, i) for i in range(30)]
    p = tmp_path / "a.csv"
    p.write_bytes(b"".join(rows))
    with open_regular(p) as f:
        ranges = list(_fs.plan_line_ranges(f, p, 5, quoted=True))
        chunks = [b"".join(_fs.read_range(f, s, e, p)) for s, e, _ in ranges]
    assert all(c.count(b'"') % 2 == 0 for c in chunks)
    assert [first for _, _, first in ranges][:3] == [1, 3, 5]


def test_a_range_read_short_means_the_file_shrank(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"a\n" * 100)
    with open_regular(p) as f:
        os.truncate(p, 50)
        with pytest.raises(InputFileError, match="shorter now"):
            _fs.read_range(f, 0, 200, p)
