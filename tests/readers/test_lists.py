"""The seed-cell list parser: the fast path agrees with the line-by-line one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finetune_qa.readers import _lists

_line = st.one_of(
    st.builds(
        lambda n, sep, t: f"{n}{sep} {t}",
        st.integers(0, 30),
        st.sampled_from([".", ")"]),
        st.text(alphabet="ab 1.\t\r", max_size=8),
    ),
    st.text(alphabet="ab -*•().Q:\t\r 12", max_size=8),
)


@given(lines=st.lists(_line, max_size=8))
def test_fast_cell_parser_agrees_with_line_parser(lines: list[str]) -> None:
    cell = "\n".join(lines)
    assert _lists._parse_list(cell) == _lists._parse_lines(cell)


@given(cell=st.text())
def test_fast_cell_parser_agrees_on_any_text(cell: str) -> None:
    assert _lists._parse_list(cell) == _lists._parse_lines(cell)


def test_marked_list_continuation_lines_join_the_item_above() -> None:
    texts, numbers, _flags = _lists._parse_lines(
        "A: Yes, no time limit.\nA: Two on Free,\nand more on Pro."
    )
    assert texts == ["Yes, no time limit.", "Two on Free,\nand more on Pro."]
    assert numbers is None
    texts, _, _ = _lists._parse_lines(
        "plain one\nplain two"
    )  # unmarked lists have no continuations
    assert texts == ["plain one", "plain two"]
