"""The files a suite reads go through the package's one way to open an input file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune_qa.evaluation import EvalSuite, read_questions
from finetune_qa.exceptions import InputFileError


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_question_and_suite_files_refuse_a_pipe(tmp_path: Path) -> None:
    pipe = tmp_path / "questions.txt"
    os.mkfifo(pipe)
    # refused at once (a pipe could be read only once, and with no writer it would block)
    with pytest.raises(InputFileError, match="not a regular file"):
        read_questions(pipe)
    with pytest.raises(InputFileError, match="not a regular file"):
        EvalSuite.from_jsonl(pipe)


def test_missing_and_directory_inputs_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file") as info:
        read_questions(tmp_path / "missing.txt")
    assert info.value.hint == "check the path"
    with pytest.raises(InputFileError, match="is a directory"):
        EvalSuite.from_jsonl(tmp_path)
