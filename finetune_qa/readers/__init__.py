"""QA sources -> streams of question/answer pairs, with where each pair came from.

Four layouts are read, chosen by ``format=`` or detected from the file:

* ``seed_csv``: the seed workflow's layout. Each row has a ``questions`` cell and an
  ``answers`` cell holding newline-separated lists (one item per line); the i-th
  question goes with the i-th answer. List markers are stripped (:func:`strip_numbering`);
  when both lists are numbered the items are matched by number, so a gap in one list
  cannot shift every answer after it onto the wrong question.
* ``pairs_csv``: one pair per row, columns ``question`` and ``answer``.
* ``pairs_jsonl``: one ``{"question": ..., "answer": ...}`` object per line.
* ``chat_jsonl``: existing chat fine-tuning data, ``{"messages": [...]}`` per line;
  single-turn examples are read back into pairs.

Everything streams: a file is read line by line, in constant memory, however large.
Files are decoded as UTF-8 (a leading byte-order mark is dropped; CRLF and LF both work).

What goes wrong is told apart in two ways. A file that cannot be read as its format at
all (missing, not UTF-8, broken quoting, not JSON, ...) raises an
:class:`~finetune_qa.exceptions.InputError` naming the file and line. A file that is
readable but holds some pairs that cannot be used (an unbalanced row, an empty answer,
a multi-turn chat) yields a :class:`ReadIssue` for them and goes on; its ``count`` says
how many candidate pairs were dropped, so pairs read plus dropped add up.

Problems found while detecting the layout (missing file, directory, empty file, missing
or duplicate columns in the header) are raised by the :class:`QASource` constructor;
every other error is raised by the iterator when it reaches the bad line.

Example:
    >>> from finetune_qa.readers import QASource, strip_numbering
    >>> strip_numbering("12) How do I reset my password?")
    ('How do I reset my password?', 12)
    >>> source = QASource("faq.csv")  # doctest: +SKIP
    >>> source.format  # doctest: +SKIP
    'seed_csv'
    >>> for pair in source.pairs():  # doctest: +SKIP
    ...     print(pair.source.render(), pair.question)
    faq.csv:2 (row 1, item 1) What is Acme?
    >>> [issue.reason for issue in source.issues]  # doctest: +SKIP
    ['unbalanced_row']
"""

from __future__ import annotations

from finetune_qa.readers._jsonl import detect_stop_marker
from finetune_qa.readers._lists import strip_numbering
from finetune_qa.readers._source import QASource, read_qa
from finetune_qa.readers._types import (
    CHANGE_REASONS,
    ISSUE_REASONS,
    RawPair,
    ReadIssue,
    SourceFormat,
)

__all__ = [
    "CHANGE_REASONS",
    "ISSUE_REASONS",
    "QASource",
    "RawPair",
    "ReadIssue",
    "SourceFormat",
    "detect_stop_marker",
    "read_qa",
    "strip_numbering",
]
