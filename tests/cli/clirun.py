"""Running the CLI in-process, as the CLI tests do."""

from __future__ import annotations

import pytest

from finetune_qa.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``finetune-qa ARGS`` in this process: exit code, standard output, standard error."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
