"""exceptions.py sits at the bottom of the package: it imports nothing from finetune_qa."""

from __future__ import annotations

import ast
from pathlib import Path

import finetune_qa.exceptions


def _package_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "finetune_qa"]
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "finetune_qa"
        ):
            found.append("." * node.level + (node.module or ""))
    return found


def test_exceptions_imports_nothing_from_the_package() -> None:
    source = Path(finetune_qa.exceptions.__file__).read_text(encoding="utf-8")
    # TYPE_CHECKING imports count too: they are a dependency all the same
    assert _package_imports(source) == []


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import finetune_qa.validation\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from finetune_qa.validation import ValidationReport\n"
        "from . import config\n"
    )
    assert sorted(_package_imports(source)) == [
        ".",
        "finetune_qa.validation",
        "finetune_qa.validation",
    ]
