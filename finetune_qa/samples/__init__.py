"""Sample data shipped with the package, for the demo, the docs and your first experiments.

``lumen_notes_qa.csv`` is a website QA export of a fictional company (Lumen Labs, maker of
Lumen Notes) in the seed layout: ``questions`` and ``answers`` cells holding numbered,
newline-separated lists. It keeps the quirks real exports have: items numbered 10 and up,
a too-short pair, a row whose lists differ in length, a numbered row with a gap, ``Q:``/``A:``
markers and a continuation line.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_csv"]


def sample_csv() -> Path:
    """Path of the bundled sample QA CSV (seed layout)."""
    return Path(__file__).with_name("lumen_notes_qa.csv")
