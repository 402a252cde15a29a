from __future__ import annotations

import csv
import importlib.util
import io
import json
import tracemalloc
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finetune_qa import _fs, exceptions
from finetune_qa.data import Provenance, QAPair
from finetune_qa.exceptions import (
    CSVFormatError,
    InputError,
    InputFileError,
    JSONLFormatError,
    UnbalancedListsError,
    UsageError,
)
from finetune_qa.readers import (
    CHANGE_REASONS,
    ISSUE_REASONS,
    QASource,
    ReadIssue,
    read_qa,
    strip_numbering,
)

DATA = Path(__file__).parent.parent / "data"
GOOD = DATA / "good"
BAD = DATA / "bad"
MANIFEST: dict[str, dict[str, Any]] = json.loads((BAD / "MANIFEST.json").read_text("utf-8"))

NUM = ("numbering_stripped",)
JOINED = ("numbering_stripped", "continuation_joined")

SEED_EXPECTED = [
    ("What is Acme?", "Acme is a maker of anvils.", 2, 1, 1, NUM),
    ("Where is Acme based?", "Acme is based in Phoenix, Arizona.", 2, 1, 2, NUM),
    ("Who founded Acme?", "Acme was founded by Wile E. Coyote.", 2, 1, 3, NUM),
    *[
        (f"What does rule {i} say?", f"Rule {i} says: keep {i}.5 GB free.", 7, 2, i, NUM)
        for i in range(1, 13)
    ],
    ("What are your opening hours?", "We are open 9 to 5 on weekdays.", 32, 3, 1, ()),
    ("How do I pay?", "By card or bank transfer.", 33, 4, 1, NUM),
    ("Can I get a refund?", "Yes, within 30 days.", 33, 4, 2, NUM),
]


# --- helpers -------------------------------------------------------------------------


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[str]], delimiter: str = ","
) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return path


def seed_file(tmp_path: Path, rows: Iterable[Sequence[str]], name: str = "seed.csv") -> Path:
    return write_csv(tmp_path / name, ["questions", "answers"], rows)


def read_all(source: QASource) -> tuple[list[tuple[Any, ...]], list[ReadIssue]]:
    pairs: list[tuple[Any, ...]] = []
    issues: list[ReadIssue] = []
    for record in source.iter_raw():
        if isinstance(record, ReadIssue):
            issues.append(record)
        else:
            pairs.append(record)
    return pairs, issues


def qa(pairs: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(p[0], p[1]) for p in pairs]


def load_corpus_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_bad_corpus", DATA / "make_bad_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- strip_numbering -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("1. What is Acme?", ("What is Acme?", 1)),
        ("1) What is Acme?", ("What is Acme?", 1)),
        ("10. Ten", ("Ten", 10)),
        ("12) Twelve", ("Twelve", 12)),
        ("123. Many", ("Many", 123)),
        ("(3) Three", ("Three", 3)),
        ("1.What", ("What", 1)),
        ("  7.   padded  ", ("padded", 7)),
        ("3.", ("", 3)),
        ("Q: Question", ("Question", None)),
        ("A: Answer", ("Answer", None)),
        ("q: lower", ("lower", None)),
        ("Q. Dotted", ("Dotted", None)),
        ("A. Dotted answer", ("Dotted answer", None)),
        ("Question: Long form", ("Long form", None)),
        ("ANSWER: upper", ("upper", None)),
        ("Q1: Numbered label", ("Numbered label", 1)),
        ("A1. Numbered answer", ("Numbered answer", 1)),
        ("Q12: twelve", ("twelve", 12)),
        ("Question 2: spaced", ("spaced", 2)),
        ("- bullet", ("bullet", None)),
        ("* star bullet", ("star bullet", None)),
        ("• dot bullet", ("dot bullet", None)),
        ("•tight", ("tight", None)),
        # not markers
        ("2.5 GB is the limit", ("2.5 GB is the limit", None)),
        ("10.5 percent", ("10.5 percent", None)),
        ("3 days", ("3 days", None)),
        ("-5°C at night", ("-5°C at night", None)),
        ("-", ("-", None)),
        ("*bold* text", ("*bold* text", None)),
        ("Q.E.D.", ("Q.E.D.", None)),
        ("a.m. opening", ("a.m. opening", None)),
        ("Apple: a fruit", ("Apple: a fruit", None)),
        ("A 5:1 ratio", ("A 5:1 ratio", None)),
        ("Quick answer", ("Quick answer", None)),
        (
            "1234567890. too long to be a list number",
            ("1234567890. too long to be a list number", None),
        ),
        ("", ("", None)),
        ("   ", ("", None)),
    ],
)
def test_strip_numbering(item: str, expected: tuple[str, int | None]) -> None:
    assert strip_numbering(item) == expected


@given(n=st.integers(0, 999_999_999), text=st.text().map(str.strip))
def test_strip_numbering_property(n: int, text: str) -> None:
    assert strip_numbering(f"{n}. {text}") == (text, n)
    assert strip_numbering(f"{n}) {text}") == (text, n)


# --- seed layout ---------------------------------------------------------------------


def test_seed_good_file_exact_pairs() -> None:
    source = QASource(GOOD / "seed.csv")
    assert source.format == "seed_csv"
    assert (source.question_column, source.answer_column) == ("questions", "answers")
    pairs, issues = read_all(source)
    assert pairs == SEED_EXPECTED
    assert issues == []


def test_seed_items_ten_and_up_are_clean() -> None:
    pairs, _ = read_all(QASource(GOOD / "seed.csv"))
    for question, answer, *_ in pairs:
        assert not question.startswith((".", ")", " ")), question
        assert not answer.startswith((".", ")", " ")), answer


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda b: b.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b, id="bom"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"), id="bom+crlf"),
    ],
)
def test_seed_crlf_and_bom_read_like_lf(tmp_path: Path, transform: Any) -> None:
    path = tmp_path / "seed.csv"
    path.write_bytes(transform((GOOD / "seed.csv").read_bytes()))
    pairs, issues = read_all(QASource(path))
    assert pairs == SEED_EXPECTED
    assert issues == []
    assert not any("\r" in p[0] or "\r" in p[1] for p in pairs)


def test_seed_continuation_lines(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            [
                "1. What is Acme?\n2. What is the storage limit?",
                "1. Acme makes anvils.\nThey ship worldwide:\n- by road\n- by rail\n"
                "2. The limit is\n2.5 GB is the limit per account.",
            ]
        ],
    )
    pairs, issues = read_all(QASource(path))
    assert issues == []
    assert pairs == [
        (
            "What is Acme?",
            "Acme makes anvils.\nThey ship worldwide:\n- by road\n- by rail",
            2,
            1,
            1,
            JOINED,
        ),
        (
            "What is the storage limit?",
            "The limit is\n2.5 GB is the limit per account.",
            2,
            1,
            2,
            JOINED,
        ),
    ]


def test_seed_unnumbered_lists_have_no_continuations(tmp_path: Path) -> None:
    path = seed_file(tmp_path, [["Intro question?\n1. Second?", "Intro answer.\nSecond answer."]])
    pairs, _ = read_all(QASource(path))
    assert pairs == [
        ("Intro question?", "Intro answer.", 2, 1, 1, ()),
        ("Second?", "Second answer.", 2, 1, 2, NUM),
    ]


def test_seed_pairs_by_number_with_a_gap(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            [
                "1. Q one?\n2. Q two?\n3. Q three?\n4. Q four?",
                "1. A one.\n3. A three.\n4. A four.\n5. A five.",
            ]
        ],
    )
    pairs, issues = read_all(QASource(path))
    assert pairs == [
        ("Q one?", "A one.", 2, 1, 1, NUM),
        ("Q three?", "A three.", 2, 1, 3, NUM),
        ("Q four?", "A four.", 2, 1, 4, NUM),
    ]
    assert [(i.reason, i.item, i.question, i.answer, i.count) for i in issues] == [
        ("unmatched_question", 2, "Q two?", None, 1),
        ("unmatched_answer", 5, None, "A five.", 1),
    ]
    assert issues[0].line == 2 and issues[0].row == 1
    assert "question 2" in issues[0].message and "answer 2" in issues[0].message


def test_seed_pairs_by_number_out_of_order_and_labels(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            [
                "Q1: First?\nQ2: Second?",
                "A2: Second answer.\nA1: First answer.",
            ]
        ],
    )
    pairs, issues = read_all(QASource(path))
    assert issues == []
    assert qa(pairs) == [("First?", "First answer."), ("Second?", "Second answer.")]
    assert [p[4] for p in pairs] == [1, 2]


def test_seed_duplicate_numbers_pair_by_position(tmp_path: Path) -> None:
    path = seed_file(tmp_path, [["1. A?\n1. B?\n2. C?", "1. a.\n2. b.\n3. c."]])
    pairs, issues = read_all(QASource(path))
    assert issues == []
    assert [(p[0], p[1], p[4]) for p in pairs] == [
        ("A?", "a.", 1),
        ("B?", "b.", 2),
        ("C?", "c.", 3),
    ]


def test_seed_unbalanced_unnumbered_row_is_one_issue(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            ["1. Fine?", "1. Fine."],
            ["How?\nWhy?\nWhen?", "Like this.\nBecause."],
        ],
    )
    pairs, issues = read_all(QASource(path))
    assert qa(pairs) == [("Fine?", "Fine.")]
    [issue] = issues
    assert (issue.reason, issue.count, issue.line, issue.row) == ("unbalanced_row", 3, 3, 2)
    assert "3 questions but 2 answers" in issue.message
    assert "number the items" in issue.message
    assert issue.file == str(path)


def test_seed_strict_raises_unbalanced_lists(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            ["1. Fine?\n2. Also fine?", "1. Fine.\n2. Also."],
            ["How?\nWhy?", "Like this."],
        ],
    )
    source = QASource(path, strict=True)
    seen = []
    with pytest.raises(UnbalancedListsError) as info:
        for record in source.iter_raw():
            seen.append(record)
    assert len(seen) == 2  # the rows before the bad one were streamed first
    assert info.value.line == 5
    assert "2 questions but 1 answer" in str(info.value)
    assert f"{path}:5" in str(info.value)
    assert isinstance(info.value, CSVFormatError)


def test_seed_trailing_newlines_and_blank_lines_in_cells(tmp_path: Path) -> None:
    path = seed_file(tmp_path, [["\n1. Q one?\n\n2. Q two?\n\n\n", "1. A one.  \n2. A two.\n\n"]])
    pairs, issues = read_all(QASource(path))
    assert issues == []
    assert qa(pairs) == [("Q one?", "A one."), ("Q two?", "A two.")]


def test_seed_blank_cells(tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        [
            ["", "  \n"],  # both blank: not a candidate, not reported
            ["1. Q one?\n2. Q two?\n3. Q three?", ""],
            ["", "Only an answer."],
        ],
    )
    pairs, issues = read_all(QASource(path))
    assert pairs == []
    assert [(i.reason, i.count, i.row) for i in issues] == [
        ("unbalanced_row", 3, 2),
        ("unbalanced_row", 1, 3),
    ]
    assert "3 questions but no answers" in issues[0].message
    assert "1 answer but no questions" in issues[1].message


def test_seed_marker_only_items_are_empty(tmp_path: Path) -> None:
    path = seed_file(tmp_path, [["1. Q one?\n2.\n3. Q three?", "1. A one.\n2. A two.\n3. -"]])
    pairs, issues = read_all(QASource(path))
    assert qa(pairs) == [("Q one?", "A one."), ("Q three?", "-")]
    [issue] = issues
    assert (issue.reason, issue.item, issue.answer, issue.count) == (
        "empty_question",
        2,
        "A two.",
        1,
    )


def test_seed_missing_cell_counts_items(tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_text('questions,answers\n"1. Q one?\n2. Q two?"\n\n"1. Q?",1. A.\n', "utf-8")
    pairs, issues = read_all(QASource(path))
    assert qa(pairs) == [("Q?", "A.")]
    [issue] = issues
    assert (issue.reason, issue.count, issue.line, issue.row) == ("missing_cell", 2, 2, 1)
    assert "'answers' cell is missing" in issue.message


def test_header_only_csv_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_text("questions,answers\n", "utf-8")
    assert read_all(QASource(path)) == ([], [])


def test_header_matches_case_and_space_insensitively(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv", ["id", " Answers ", "QUESTIONS"], [["7", "1. A.", "1. Q?"]]
    )
    source = QASource(path)
    assert source.format == "seed_csv"
    assert qa(read_all(source)[0]) == [("Q?", "A.")]


def test_quote_inside_unquoted_cell_is_literal(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('question,answer\nWhat does "Acme" mean?,It means peak.\n', "utf-8")
    assert qa(read_all(QASource(path))[0]) == [('What does "Acme" mean?', "It means peak.")]


def test_cells_above_csv_default_limit_are_read(tmp_path: Path) -> None:
    long_answer = "1. " + "x" * 300_000
    path = seed_file(tmp_path, [["1. Long?", long_answer]])
    assert read_all(QASource(path))[0][0][1] == "x" * 300_000


def test_cell_over_field_limit(tmp_path: Path) -> None:
    limit = 16 * 1024 * 1024
    old = csv.field_size_limit(limit)
    try:
        path = tmp_path / "big.csv"
        with path.open("wb") as f:
            f.write(b'question,answer\nWhat?,Fine.\n"')
            f.write(b"x" * (limit + 1))
            f.write(b'",answer\n')
        with pytest.raises(CSVFormatError) as info:
            list(QASource(path).iter_raw())
    finally:
        csv.field_size_limit(old)
    assert info.value.line == 3
    assert "16 MiB" in str(info.value)
    assert "big.csv:3" in str(info.value)
    assert isinstance(info.value.__cause__, csv.Error)


# --- pairs_csv, pairs_jsonl, chat_jsonl ----------------------------------------------


def test_pairs_csv_custom_columns() -> None:
    source = QASource(
        GOOD / "pairs_custom.csv",
        format="pairs_csv",
        question_column="prompt",
        answer_column="COMPLETION",
    )
    pairs, issues = read_all(source)
    assert pairs == [
        ("What is Acme?", "A maker of anvils.", 2, 1, None, ()),
        ("Where is Acme based?", "Phoenix,\nArizona.", 3, 2, None, ("whitespace_stripped",)),
        ("Who runs Acme today?", "Road Runner Holdings.", 7, 5, None, ()),
    ]
    assert [(i.reason, i.line, i.row, i.question, i.count) for i in issues] == [
        ("empty_answer", 5, 3, "Is there a free plan?", 1),
        ("missing_cell", 6, 4, "Who founded Acme?", 1),
    ]


def test_pairs_csv_crlf_multiline_cell_has_no_cr(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'question,answer\r\nWhere?,"Phoenix,\r\nArizona."\r\nWho?,Wile.\r\n')
    pairs, _ = read_all(QASource(path))
    assert pairs == [
        ("Where?", "Phoenix,\nArizona.", 2, 1, None, ()),
        ("Who?", "Wile.", 4, 2, None, ()),
    ]


def test_pairs_csv_skips_blank_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("question,answer\n\n,\n  ,  \nWhat?,That.\n", "utf-8")
    assert read_all(QASource(path)) == ([("What?", "That.", 5, 4, None, ())], [])


def test_tsv_by_extension() -> None:
    source = QASource(GOOD / "pairs.tsv")
    assert (source.format, source.delimiter) == ("pairs_csv", "\t")
    assert qa(read_all(source)[0]) == [
        ("What is Acme?", "A maker of anvils."),
        ("Where is Acme based?", "Phoenix, Arizona."),
    ]


def test_explicit_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("question;answer\nWhat?;That, and more.\n", "utf-8")
    assert qa(read_all(QASource(path, delimiter=";"))[0]) == [("What?", "That, and more.")]


def test_pairs_jsonl() -> None:
    source = QASource(GOOD / "pairs.jsonl")
    assert source.format == "pairs_jsonl"
    pairs, issues = read_all(source)
    assert pairs == [
        ("What is Acme?", "A maker of anvils.", 1, 1, None, ()),
        ("Where is Acme based?", "Phoenix, Arizona.", 2, 2, None, ("whitespace_stripped",)),
        ("Who founded Acme?", "Wile E. Coyote.", 5, 4, None, ()),
    ]
    assert [(i.reason, i.line, i.row, i.question) for i in issues] == [
        ("empty_answer", 4, 3, "Is there a free plan?")
    ]


def test_pairs_jsonl_custom_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "What?", "completion": "That."}\r\n')
    source = QASource(path, question_column="prompt", answer_column="completion")
    assert read_all(source) == ([("What?", "That.", 1, 1, None, ())], [])


def test_chat_jsonl_with_stop() -> None:
    source = QASource(GOOD / "chat.jsonl", stop="**STOP**")
    assert source.format == "chat_jsonl"
    pairs, issues = read_all(source)
    assert pairs == [
        ("What is Acme?", "A maker of anvils.", 1, 1, None, ("stop_marker_removed",)),
        ("Where is Acme based?", "Phoenix, Arizona.", 2, 2, None, ()),
        (
            "Who founded Acme?",
            "Wile E. Coyote.",
            7,
            6,
            None,
            ("whitespace_stripped", "stop_marker_removed"),
        ),
    ]
    assert [(i.reason, i.line, i.row, i.count) for i in issues] == [
        ("multi_turn", 3, 3, 1),
        ("no_user_or_assistant", 4, 4, 1),
        ("non_text_content", 6, 5, 1),
        ("empty_answer", 8, 7, 1),
    ]
    assert issues[0].question == "Hi"
    assert "2 user messages and 2 assistant messages" in issues[0].message


def test_chat_jsonl_without_stop_keeps_marker() -> None:
    pairs, _ = read_all(QASource(GOOD / "chat.jsonl"))
    assert pairs[0][1] == "A maker of anvils. **STOP**"
    assert pairs[-1][1] == "**STOP**"  # the answer that is only a marker


# --- detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("s.csv", "questions,answers\n1. Q?,1. A.\n", "seed_csv"),
        ("p.csv", "question,answer\nQ?,A.\n", "pairs_csv"),
        ("p.CSV", "Answer,Question\nA.,Q?\n", "pairs_csv"),
        ("s.tsv", "questions\tanswers\n1. Q?\t1. A.\n", "seed_csv"),
        ("p.jsonl", '{"question": "Q?", "answer": "A."}\n', "pairs_jsonl"),
        ("p.json", '\n{"question": "Q?", "answer": "A."}\n', "pairs_jsonl"),
        (
            "c.ndjson",
            '{"messages": [{"role": "user", "content": "Q?"}, '
            '{"role": "assistant", "content": "A."}]}\n',
            "chat_jsonl",
        ),
        (
            "c.jsonl",
            '{"messages": [{"role": "user", "content": "Q?"}, '
            '{"role": "assistant", "content": "A."}]}\n',
            "chat_jsonl",
        ),
        ("p.txt", '  {"question": "Q?", "answer": "A."}\n', "pairs_jsonl"),
        ("s.txt", "questions,answers\n1. Q?,1. A.\n", "seed_csv"),
        ("noext", "question,answer\nQ?,A.\n", "pairs_csv"),
    ],
)
def test_auto_detection(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, "utf-8")
    source = QASource(path)
    assert source.format == expected
    pairs, issues = read_all(source)
    assert qa(pairs) == [("Q?", "A.")] and issues == []


def test_custom_columns_auto_detects_seed_layout(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv", ["prompt", "completion"], [["1. Q?\n2. R?", "1. A.\n2. B."]]
    )
    source = QASource(path, question_column="Prompt", answer_column="completion")
    assert source.format == "seed_csv"
    assert qa(read_all(source)[0]) == [("Q?", "A."), ("R?", "B.")]


def test_explicit_format_skips_detection(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('{"question": "Q?", "answer": "A."}\n', "utf-8")
    assert QASource(path, format="pairs_jsonl").format == "pairs_jsonl"
    assert qa(read_all(QASource(path, format="pairs_jsonl"))[0]) == [("Q?", "A.")]


def test_detection_problems_raise_at_construction(tmp_path: Path) -> None:
    with pytest.raises(CSVFormatError):
        QASource(BAD / "missing_answers_column.csv")
    with pytest.raises(InputFileError, match="is empty"):
        QASource(BAD / "empty.jsonl")
    with pytest.raises(InputFileError, match="no such file"):
        QASource(tmp_path / "nope.csv")
    # a bad line further down is only raised when the iterator reaches it
    source = QASource(BAD / "bad_json_line3.jsonl")
    iterator = source.iter_raw()
    assert next(iterator)[0] == "What is Acme?"
    with pytest.raises(JSONLFormatError):
        next(iterator)


def test_errors_are_raised_where_the_stream_reaches_them(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"question,answer\n" + b"Q?,A.\n" * 3 + b"Caf\xe9?,Yes.\nQ?,A.\n")
    seen = []
    with pytest.raises(InputFileError) as info:
        for record in QASource(path).iter_raw():
            seen.append(record)
    assert len(seen) == 3
    assert info.value.line == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "xlsx"}, "unknown format"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": '"'}, "delimiter"),
        ({"question_column": "x", "answer_column": "x"}, "different"),
        ({"question_column": "answers"}, "same column"),
    ],
)
def test_usage_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        QASource(GOOD / "seed.csv", **kwargs)


# --- pairs(), read_qa, issues --------------------------------------------------------


def test_pairs_builds_qapairs_with_provenance() -> None:
    source = QASource(
        GOOD / "pairs_custom.csv",
        format="pairs_csv",
        question_column="Prompt",
        answer_column="Completion",
    )
    pairs = list(source.pairs())
    assert pairs[1] == QAPair(
        question="Where is Acme based?",
        answer="Phoenix,\nArizona.",
        source=Provenance(file=str(GOOD / "pairs_custom.csv"), line=3, row=2, item=None),
    )
    assert [i.reason for i in source.issues] == ["empty_answer", "missing_cell"]
    list(source.pairs())
    assert len(source.issues) == 2  # emptied at the start of each run


def test_pairs_on_issue_callback() -> None:
    source = QASource(GOOD / "chat.jsonl")
    seen: list[ReadIssue] = []
    pairs = list(source.pairs(on_issue=seen.append))
    assert len(pairs) == 4
    assert [i.reason for i in seen] == ["multi_turn", "no_user_or_assistant", "non_text_content"]
    assert source.issues == []


def test_read_qa() -> None:
    pairs = list(read_qa(GOOD / "seed.csv"))
    assert [(p.question, p.answer) for p in pairs] == [(e[0], e[1]) for e in SEED_EXPECTED]
    assert pairs[14].source == Provenance(file=str(GOOD / "seed.csv"), line=7, row=2, item=12)
    with pytest.raises(InputFileError):
        read_qa(GOOD / "missing.csv")  # construction errors are raised at the call


def test_issue_and_change_reasons_are_documented(tmp_path: Path) -> None:
    reasons: set[str] = set()
    changes: set[str] = set()
    for path, kwargs in [
        (GOOD / "seed.csv", {}),
        (GOOD / "chat.jsonl", {"stop": "**STOP**"}),
        (GOOD / "pairs.jsonl", {}),
        (reconcile_file(tmp_path), {}),
    ]:
        pairs, issues = read_all(QASource(path, **kwargs))
        reasons |= {i.reason for i in issues}
        changes |= {c for p in pairs for c in p[5]}
        assert all(i.message and i.message[0].islower() for i in issues)
    assert reasons == set(ISSUE_REASONS)
    assert changes == set(CHANGE_REASONS)


def test_read_issue_render() -> None:
    issue = ReadIssue("unmatched_question", "no answer.", "faq.csv", 4, row=2, item=3)
    assert issue.render() == "faq.csv:4 (row 2, item 3): no answer."
    assert ReadIssue("multi_turn", "m.", None, None).render() == "<input>: m."


# --- reconciliation ------------------------------------------------------------------


def reconcile_file(tmp_path: Path) -> Path:
    path = tmp_path / "reconcile.csv"
    path.write_text(
        "questions,answers\n"
        '"1. A1?\n2. A2?\n3. A3?","1. a1.\n2. a2.\n3. a3."\n'  # 3 candidates, 3 pairs
        '"1. B1?\n2. B2?\n3. B3?","1. b1.\n3. b3."\n'  # union of numbers: 3
        '"C1?\nC2?","c1.\nc2.\nc3.\nc4."\n'  # unbalanced: 4
        '"1. D1?\n2.","1. d1.\n2. d2."\n'  # 2, one empty question
        '"1. E1?\n2. E2?\n3. E3?",\n'  # answers blank: 3
        ",\n"  # both blank: 0
        '"1. G1?\n2. G2?"\n'  # missing cell: 2
        '"1. H1?\n2. H2?","2. h2.\n3. h3."\n'  # union 3
        "   \n"  # blank line: 0
        '"1. I1?\n  continued\n2. I2?","- i1.\n- i2."\n',  # 2, by position
        "utf-8",
    )
    return path


def test_pairs_plus_dropped_reconcile(tmp_path: Path) -> None:
    pairs, issues = read_all(QASource(reconcile_file(tmp_path)))
    assert len(pairs) + sum(i.count for i in issues) == 3 + 3 + 4 + 2 + 3 + 0 + 2 + 3 + 2
    assert len(pairs) == 3 + 2 + 1 + 1 + 2
    assert ("I1?\ncontinued", "i1.") in qa(pairs)


@pytest.mark.parametrize(
    ("name", "records"), [("pairs.jsonl", 4), ("chat.jsonl", 7), ("pairs.tsv", 2)]
)
def test_jsonl_and_csv_records_reconcile(name: str, records: int) -> None:
    pairs, issues = read_all(QASource(GOOD / name))
    assert len(pairs) + sum(i.count for i in issues) == records


# --- streaming -----------------------------------------------------------------------


def test_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    per_row, rows = 10, 20_000
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("questions,answers\n")
        for r in range(rows):
            qs = "\n".join(f"{i}. Question {i} of row {r}?" for i in range(1, per_row + 1))
            ans = "\n".join(
                f"{i}. Answer {i} of row {r}, with a little more text."
                for i in range(1, per_row + 1)
            )
            f.write(f'"{qs}","{ans}"\n')
    source = QASource(path)
    count = 0
    tracemalloc.start()
    try:
        for _ in source.iter_raw():
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == per_row * rows
    assert peak < 2 * 1024 * 1024, peak  # holding 200k pairs would take well over 40 MB


# --- test-generated input errors -----------------------------------------------------


def test_directory_is_an_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as info:
        QASource(tmp_path)
    assert type(info.value) is InputFileError
    assert info.value.line is None
    assert "is a directory" in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as info:
        QASource(tmp_path / "faq.csv")
    assert info.value.line is None and info.value.path == str(tmp_path / "faq.csv")
    assert "faq.csv: no such file" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("question,answer\n", "utf-8")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # files are opened through finetune_qa._fs.open_regular (a pipe must not hang a read)
    monkeypatch.setattr(_fs, "open", denied, raising=False)
    with pytest.raises(InputFileError, match="permission denied") as info:
        QASource(path)
    assert isinstance(info.value.__cause__, PermissionError)


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("invalid_utf8_line4.csv", UnicodeDecodeError),
        ("invalid_utf8.jsonl", UnicodeDecodeError),
        ("unterminated_quote.csv", csv.Error),
        ("text_after_closing_quote.csv", csv.Error),
        ("bad_json_line3.jsonl", orjson.JSONDecodeError),
    ],
)
def test_errors_chain_the_underlying_exception(name: str, cause: type[Exception]) -> None:
    spec = MANIFEST[name]
    with pytest.raises(InputError) as info:
        list(QASource(BAD / name, format=spec["format"]).iter_raw())
    assert isinstance(info.value.__cause__, cause)


# --- the bad-input corpus ------------------------------------------------------------


def test_bad_corpus_directory_matches_manifest() -> None:
    files = {
        p.name
        for p in BAD.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != "MANIFEST.json"
    }
    assert files == set(MANIFEST)
    assert len(files) >= 30


def test_bad_corpus_files_match_their_generator() -> None:
    module = load_corpus_script()
    assert module.manifest() == MANIFEST
    for name, (content, *_) in module.CORPUS.items():
        assert (BAD / name).read_bytes() == content, name


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bad_corpus(name: str) -> None:
    spec = MANIFEST[name]
    expected = getattr(exceptions, spec["error"])
    with pytest.raises(InputError) as info:
        source = QASource(BAD / name, format=spec["format"], **spec.get("options", {}))
        for _ in source.iter_raw():
            pass
    exc = info.value
    message = str(exc)
    assert type(exc) is expected, message
    assert exc.line == spec["line"], message
    assert exc.path is not None and exc.path.endswith(name)
    assert name in message
    if spec["line"] is not None:
        assert f"{name}:{spec['line']}" in message
    assert spec["contains"] in message
    assert exc.hint, "every input error says what to do"
