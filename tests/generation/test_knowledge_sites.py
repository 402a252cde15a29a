"""The hand-written benchmark sites and their questions (issue #14, item 5).

Each site under ``tests/data/`` has a questions file ``tests/data/knowledge/<site>.jsonl``
written by a person: on-topic questions worded unlike the pages, rephrasings of them, and
off-topic questions. These tests keep the files well formed and honest: every fact string
an answer is checked for really is on the page it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
SITES = ("markdown_site", "velokoop_site")
KINDS = {"on_topic", "rephrasing", "off_topic"}
MINIMUM = {"on_topic": 12, "rephrasing": 5, "off_topic": 10}


def _rows(site: str) -> list[dict[str, Any]]:
    path = DATA / "knowledge" / f"{site}.jsonl"
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{number} is not an object"
        rows.append(row)
    return rows


@pytest.mark.parametrize("site", SITES)
def test_every_line_has_the_schema(site: str) -> None:
    for row in _rows(site):
        assert set(row) == {"question", "kind", "facts", "page"}, row
        assert isinstance(row["question"], str) and row["question"].strip(), row
        assert row["kind"] in KINDS, row
        assert isinstance(row["facts"], list), row
        assert all(isinstance(f, str) and f.strip() for f in row["facts"]), row
        assert isinstance(row["page"], str), row
        if row["kind"] == "off_topic":
            assert row["facts"] == [] and row["page"] == "", row
        else:
            assert row["facts"] and row["page"], row


@pytest.mark.parametrize("site", SITES)
def test_each_kind_has_enough_questions(site: str) -> None:
    rows = _rows(site)
    counts = {kind: sum(r["kind"] == kind for r in rows) for kind in KINDS}
    for kind, least in MINIMUM.items():
        assert counts[kind] >= least, (site, kind, counts[kind])
    questions = [r["question"].casefold() for r in rows]
    assert len(set(questions)) == len(questions), "a question is asked twice"


@pytest.mark.parametrize("site", SITES)
def test_facts_are_on_the_named_page_and_questions_are_not_copied(site: str) -> None:
    for row in _rows(site):
        if row["kind"] == "off_topic":
            continue
        page = DATA / site / row["page"]
        assert page.is_file(), row
        text = page.read_text(encoding="utf-8").casefold()
        assert "draft: true" not in text, f"{row['page']} is a draft the generator skips"
        assert any(f.casefold() in text for f in row["facts"]), row
        assert row["question"].casefold().rstrip("?.") not in text, row


@pytest.mark.parametrize("site", SITES)
def test_each_rephrasing_asks_for_an_on_topic_questions_fact(site: str) -> None:
    rows = _rows(site)
    asked = {(r["page"], f.casefold()) for r in rows if r["kind"] == "on_topic" for f in r["facts"]}
    for row in rows:
        if row["kind"] == "rephrasing":
            assert any((row["page"], f.casefold()) in asked for f in row["facts"]), row


def test_the_second_site_is_small_and_hand_written() -> None:
    pages = sorted((DATA / "velokoop_site").rglob("*.md"))
    assert 5 <= len(pages) <= 6
    referenced = {r["page"] for r in _rows("velokoop_site") if r["page"]}
    assert referenced == {p.name for p in pages}, "every page is asked about"
