"""ModelCatalog.from_json opens its file the one way every input is opened (_fs.open_regular)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune_qa import ModelCatalog
from finetune_qa.exceptions import InputFileError

_CATALOGUE = b'{"models": []}'


def test_a_catalogue_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(_CATALOGUE)
    assert ModelCatalog.from_json(path).as_of is None


def test_a_pipe_is_refused_not_read() -> None:
    """A FIFO with no writer would block a plain open() forever; one with data is refused too."""
    r, w = os.pipe()
    os.write(w, _CATALOGUE)
    os.close(w)
    try:
        with pytest.raises(InputFileError, match="not a regular file") as info:
            ModelCatalog.from_json(f"/dev/fd/{r}")
        assert info.value.hint == "save the catalogue to a file and pass that"
    finally:
        os.close(r)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    ],
)
def test_unreadable_catalogues_say_what_to_do(tmp_path: Path, make: object, problem: str) -> None:
    path = tmp_path / "catalog.json"
    make(path)  # type: ignore[operator]
    with pytest.raises(InputFileError, match=problem) as info:
        ModelCatalog.from_json(path)
    assert info.value.hint == "pass an existing UTF-8 JSON file"
