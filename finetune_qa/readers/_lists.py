"""Seed cells: list markers (``1.``, ``Q:``, bullets) and the items of a newline-separated list."""

from __future__ import annotations

import re

from finetune_qa.readers._types import _NO_CHANGE

_F_STRIPPED = 1
_F_JOINED = 2
_SEED_CHANGES: tuple[tuple[str, ...], ...] = (
    _NO_CHANGE,
    ("numbering_stripped",),
    ("continuation_joined",),
    ("numbering_stripped", "continuation_joined"),
)
"""A seed pair's ``changes``, indexed by its question's and answer's flags or-ed together."""


_MARKER_RE = re.compile(
    r"""
    (?:
        ([0-9]{1,9})(?:\.(?![0-9])|\))      # 1.  1)  10.  12)   but not the decimal 2.5
      | \(([0-9]{1,9})\)                    # (3)
      | (?:question[ \t]*|answer[ \t]*|q|a)([0-9]{1,9})?[ \t]*(?::|\.(?!\S))
                                            # Q: A: Q. A. Q1: A1. Question: Answer 2:
      | [-*](?=\s)                          # - item   * item   (not -5, not *bold*)
      | \u2022                              # bullet character
    )\s*
    """,
    re.IGNORECASE | re.VERBOSE,
)
_MARKER_MATCH = _MARKER_RE.match
# Splits "\n" + cell at every line that starts with an ``N.`` or ``N)`` marker.
_SPLIT_NUMBERED = re.compile(r"\n[^\S\n]*([0-9]{1,9})(?:\.(?![0-9])|\))[^\S\n]*").split
_SMALL_INTS = {str(i): i for i in range(1, 1000)}
# The first characters a marker can start with: lines starting otherwise skip the regex.
_MARKER_START = frozenset("0123456789(qQaA-*\u2022")


def strip_numbering(item: str) -> tuple[str, int | None]:
    """Remove one list marker from the start of an item.

    Markers: ``1.``, ``1)``, ``10.``, ``(3)``; ``Q:``, ``A:``, ``Question:``, ``Answer:``
    and ``Q1:`` / ``A1.`` / ``Question 2:`` (any case; a ``.`` after a letter or word
    must be followed by white space); and the bullets ``-`` and ``*`` (followed by white
    space) and ``•``. White space after the marker, and around the item, is removed.
    A number followed by ``.`` and a digit is a decimal, not a marker, and a number with
    no punctuation after it is text: ``"2.5 GB is the limit"`` and ``"3 days"`` stay.

    Args:
        item: one line of a list.

    Returns:
        The text without its marker, and the marker's number if it had one, else None.

    Example:
        >>> strip_numbering("10. What is Acme?")
        ('What is Acme?', 10)
        >>> strip_numbering("- 2.5 GB")
        ('2.5 GB', None)
    """
    text = item.strip()
    if text and text[0] in _MARKER_START:
        m = _MARKER_MATCH(text)
        if m is not None:
            group = m.lastindex
            return text[m.end() :], int(m[group]) if group else None
    return text, None


def _parse_list(cell: str) -> tuple[list[str], list[int] | None, list[int]]:
    """Split a seed cell into items: (texts, numbers or None if unnumbered, change flags).

    Blank lines are skipped. When the first item is numbered, the list is numbered: a
    line that does not start with a numbered marker continues the item above it (its text
    is kept as written, bullets included) and every item has a number. When the first
    item has another marker (``Q:``, ``A:``, a bullet), a line with no marker at all
    continues the item above it.
    """
    # Fast path for the usual cell, every line one ``N.`` / ``N)`` item: one regex split
    # in C. Anything else (blank lines, continuations, other markers) takes the loop below,
    # which gives the same result for these cells (a property test checks it).
    parts = _SPLIT_NUMBERED("\n" + cell)
    n = len(parts) >> 1
    if n and not parts[0] and n == cell.count("\n") + 1:
        small = _SMALL_INTS
        return (
            [text.strip() for text in parts[2::2]],
            [small.get(number) or int(number) for number in parts[1::2]],
            [_F_STRIPPED] * n,
        )
    return _parse_lines(cell)


def _parse_lines(cell: str) -> tuple[list[str], list[int] | None, list[int]]:
    """The general case of :func:`_parse_list`, line by line."""
    texts: list[str] = []
    flags: list[int] = []
    numbers: list[int] | None = None
    marked = False  # the first item had an unnumbered marker (Q:, A:, a bullet)
    match = _MARKER_MATCH
    starts = _MARKER_START
    for raw in cell.split("\n"):
        line = raw.strip()
        if not line:
            continue
        m = match(line) if line[0] in starts else None
        if marked and m is None:
            # in a marked list, a line without a marker continues the item above it
            texts[-1] = f"{texts[-1]}\n{line}" if texts[-1] else line
            flags[-1] |= _F_JOINED
            continue
        if numbers is not None:
            if m is not None:
                group = m.lastindex  # the number's group, None for an unnumbered marker
                if group:
                    numbers.append(int(m[group]))
                    texts.append(line[m.end() :])
                    flags.append(_F_STRIPPED)
                    continue
            previous = texts[-1]
            texts[-1] = f"{previous}\n{line}" if previous else line
            flags[-1] |= _F_JOINED
        elif m is None:
            texts.append(line)
            flags.append(0)
        else:
            group = m.lastindex
            if not texts:
                if group:
                    numbers = [int(m[group])]
                else:
                    marked = True
            texts.append(line[m.end() :])
            flags.append(_F_STRIPPED)
    return texts, numbers, flags
