"""Property-based tests of the readers, the data models and the dataset builder.

Files are written in a fresh ``tempfile.TemporaryDirectory()`` per example: hypothesis
runs the body many times per test call, so a function-scoped ``tmp_path`` would be shared.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from finetune_qa import DatasetBuilder, DatasetError, QAPair, TrainingExample
from finetune_qa._pipeline import worker_init
from finetune_qa._procs import worker_pool
from finetune_qa._text import question_key
from finetune_qa.dataset import _merge as dataset_module
from finetune_qa.readers import QASource, ReadIssue, strip_numbering

NUM = ("numbering_stripped",)

# --- shared helpers ------------------------------------------------------------------


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    term: str,
    *,
    delimiter: str = ",",
    bom: bool = False,
) -> None:
    # csv.writer (CPython 3.11 here) leaves a cell holding a lone "\r" unquoted when the line
    # terminator is "\n", which its own reader then rejects: quote every cell then.
    lone_cr = term == "\n" and any("\r" in cell for row in rows for cell in row)
    buf = io.StringIO()
    writer = csv.writer(
        buf,
        delimiter=delimiter,
        lineterminator=term,
        quoting=csv.QUOTE_ALL if lone_cr else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8"))


def read_all(source: QASource) -> tuple[list[tuple[Any, ...]], list[ReadIssue]]:
    pairs: list[tuple[Any, ...]] = []
    issues: list[ReadIssue] = []
    for record in source.iter_raw():
        if isinstance(record, ReadIssue):
            issues.append(record)
        else:
            pairs.append(record)
    return pairs, issues


def user_and_assistant(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_bytes().splitlines():
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages[-2:]] == ["user", "assistant"]
        out.append((messages[-2]["content"], messages[-1]["content"]))
    return out


# --- 1. strip_numbering --------------------------------------------------------------

_NOT_PRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")
_printable = st.text(
    st.characters(exclude_categories=_NOT_PRINTABLE, include_characters=" "), max_size=30
)
# Characters a list marker can start with (digits, "(", q/Q/a/A, "-", "*", the bullet).
_MARKER_FIRST = "0123456789(qQaA-*\u2022"
_plain_start = st.builds(
    lambda first, rest: first + rest,
    st.characters(exclude_categories=_NOT_PRINTABLE, exclude_characters=_MARKER_FIRST),
    _printable,
)
# Starts that begin with a marker character but are documented not to be markers.
_tricky_start = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(
        [
            "3 days",
            "2.5 GB",
            "10.5 percent",
            "-5°C",
            "*bold*",
            "Quick",
            "about",
            "qa",
            "q&a",
            "(x)",
            "A.B",
            "2nd",
            "Answers",
            "Question mark",
        ]
    ),
    _printable,
)
# White space str.strip() removes, ASCII and not.
_space = st.text(st.sampled_from(" \t\u00a0\u2003\u3000\x1c\x85"), max_size=3)
_no_marker_text = st.builds(
    lambda lead, core, trail: lead + core + trail,
    _space,
    st.one_of(st.just(""), _plain_start, _tricky_start),
    _space,
)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 10**6), sep=st.sampled_from([".", ")"]), text=_no_marker_text)
def test_strip_numbering_removes_exactly_one_marker(n: int, sep: str, text: str) -> None:
    out = strip_numbering(f"{n}{sep} {text}")
    assert out == (text.strip(), n)
    # the text has no marker of its own, so a second pass changes nothing
    assert strip_numbering(out[0]) == (out[0], None)


# --- 2. seed-layout CSV round trip -----------------------------------------------------

# No "\n" or "\r" inside an item, but other characters str.splitlines() would break on.
_ITEM_ALPHABET = (
    "abcxyzABCXYZ0123456789 ,,;|\"\"''.?!:()-*/éßñüø中文ёж\u00a0\u2028\x85\x0b\x0c\x1c\u3000"
)
_item = st.text(_ITEM_ALPHABET, min_size=1, max_size=20).map(str.strip).filter(bool)
_blank_lines = st.lists(st.sampled_from(["", " ", "\t "]), max_size=1)


@st.composite
def _numbered_cell(draw: st.DrawFn, items: list[tuple[int, str]], newline: str = "\n") -> str:
    """The items as ``N. text`` lines, with varied spacing and the odd blank line."""
    lines = draw(_blank_lines)
    for number, text in items:
        lead = draw(st.sampled_from(["", "", " "]))
        sep = draw(st.sampled_from([".", ")"]))
        gap = draw(st.sampled_from([" ", " ", "  ", "\t"]))  # "1.5" would be a decimal
        trail = draw(st.sampled_from(["", "", " ", "\t"]))
        lines.append(f"{lead}{number}{sep}{gap}{text}{trail}")
        lines += draw(_blank_lines)
    return newline.join(lines)


_seed_row = st.integers(1, 12).flatmap(
    lambda k: st.tuples(
        st.lists(_item, min_size=k, max_size=k), st.lists(_item, min_size=k, max_size=k)
    )
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(_seed_row, min_size=1, max_size=4),
    term=st.sampled_from(["\n", "\r\n"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
    crlf_cells=st.booleans(),
    layout=st.sampled_from(
        [
            ("questions", "answers"),
            ("answers", "questions"),
            ("id", "Questions", "ANSWERS"),
            (" questions ", "notes", "answers"),
        ]
    ),
    data=st.data(),
)
def test_seed_csv_round_trip(
    rows: list[tuple[list[str], list[str]]],
    term: str,
    delimiter: str,
    bom: bool,
    crlf_cells: bool,
    layout: tuple[str, ...],
    data: st.DataObject,
) -> None:
    # crlf_cells: line breaks inside cells are CRLF too, as after unix2dos on the file
    newline = "\r\n" if crlf_cells else "\n"
    names = [c.strip().casefold() for c in layout]
    qi, ai = names.index("questions"), names.index("answers")

    def write(path: Path, cells: list[tuple[str, str]]) -> list[int]:
        """Write the rows; return the line each record starts on."""
        records, starts, line = [], [], 2
        for r, (qcell, acell) in enumerate(cells, 1):
            record = [f"extra, {r}"] * len(layout)
            record[qi], record[ai] = qcell, acell
            records.append(record)
            starts.append(line)
            line += 1 + sum(cell.count("\n") for cell in record)
        write_csv(path, layout, records, term, delimiter=delimiter, bom=bom)
        return starts

    def read(path: Path) -> tuple[list[tuple[Any, ...]], list[ReadIssue]]:
        return read_all(QASource(path, format="seed_csv", delimiter=delimiter))

    numbered = [list(enumerate(qs, 1)) for qs, _ in rows]
    answers = [list(enumerate(ans, 1)) for _, ans in rows]
    cells = [
        (data.draw(_numbered_cell(q, newline)), data.draw(_numbered_cell(a, newline)))
        for q, a in zip(numbered, answers, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.csv"
        starts = write(path, cells)
        pairs, issues = read(path)
        expected = [
            (q, a, starts[r - 1], r, i, NUM)
            for r, (qs, ans) in enumerate(rows, 1)
            for i, (q, a) in enumerate(zip(qs, ans, strict=True), 1)
        ]
        assert issues == []
        assert pairs == expected

        # remove one numbered answer: exactly that question is unmatched, nothing shifts
        eligible = [r for r, (qs, _) in enumerate(rows) if len(qs) >= 2]
        if not eligible:
            return
        r0 = data.draw(st.sampled_from(eligible), label="row without one answer")
        gone = data.draw(st.integers(1, len(rows[r0][0])), label="removed answer number")
        cells[r0] = (
            cells[r0][0],
            data.draw(_numbered_cell([(n, t) for n, t in answers[r0] if n != gone], newline)),
        )
        starts = write(path, cells)
        pairs, issues = read(path)
        assert [(i.reason, i.count, i.line, i.row, i.item, i.question) for i in issues] == [
            ("unmatched_question", 1, starts[r0], r0 + 1, gone, rows[r0][0][gone - 1])
        ]
        expected = [
            (q, a, starts[r - 1], r, i, NUM)
            for r, (qs, ans) in enumerate(rows, 1)
            for i, (q, a) in enumerate(zip(qs, ans, strict=True), 1)
            if (r - 1, i) != (r0, gone)
        ]
        assert pairs == expected


# --- 2b. pair-per-row CSV round trip ---------------------------------------------------

_cell_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=30
).filter(lambda s: bool(s.strip()))


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(st.tuples(_cell_text, _cell_text), min_size=1, max_size=6),
    term=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_pairs_csv_round_trip(records: list[tuple[str, str]], term: str, bom: bool) -> None:
    def expect(text: str) -> str:
        return text.strip().replace("\r\n", "\n")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.csv"
        write_csv(path, ["question", "answer"], records, term, bom=bom)
        source = QASource(path)
        assert source.format == "pairs_csv"
        pairs, issues = read_all(source)
    assert issues == []
    assert [(q, a, row) for q, a, _, row, _, _ in pairs] == [
        (expect(q), expect(a), row) for row, (q, a) in enumerate(records, 1)
    ]
    lines = [2]
    for q, a in records[:-1]:
        lines.append(lines[-1] + 1 + q.count("\n") + a.count("\n"))
    assert [p[2] for p in pairs] == lines


# --- 3. count reconciliation over arbitrary seed CSVs ------------------------------------

_pool_question = st.sampled_from(
    [
        "What is Acme?",
        "what is  acme",
        "WHAT IS ACME?!",
        "Where is it?",
        "How do I pay for it?",
        "Hi?",
        "ﬁle size?",
        "file size",
        "Caf\u00e9 hours?",
        "Cafe\u0301 hours?",
        "",
        "   ",
    ]
)
# The same question as question_key sees it, spelt another way.
_question_variant = st.builds(
    lambda q, spell: spell(q),
    _pool_question,
    st.sampled_from(
        [
            str.upper,
            str.lower,
            str.title,
            lambda s: s.replace(" ", "  "),
            lambda s: s.replace(" ", "\t"),
            lambda s: f'"{s}"',
            lambda s: f"{s}?!",
            lambda s: f" ¿{s} ",
        ]
    ),
)
_pool_answer = st.sampled_from(
    ["Acme makes anvils.", "Yes.", "By card or bank transfer.", "2.5 GB", "", "-", "  x  "]
)
_free_text = st.text('abcAB xyz?.,:-*1\u00a0\t\r"', max_size=14)
_prefix = st.one_of(
    st.sampled_from(["", "", "- ", "* ", "Q: ", "A: ", "• ", "(2) "]),
    st.builds(lambda n, s: f"{n}{s} ", st.integers(0, 6), st.sampled_from([".", ")"])),
)
_any_line = st.builds(lambda p, t: p + t, _prefix, st.one_of(_pool_question, _free_text))
_messy_cell = st.lists(_any_line, max_size=6).map("\n".join)


@st.composite
def _listed_row(draw: st.DrawFn) -> list[str]:
    """A row of two lists in one style (numbered, plain, Q:/A:, bullets), maybe spoilt."""
    questions = draw(
        st.lists(st.one_of(_pool_question, _question_variant, _free_text), min_size=1, max_size=5)
    )
    answers = draw(
        st.lists(
            st.one_of(_pool_answer, _free_text),
            min_size=max(0, len(questions) - 1),
            max_size=len(questions) + 1,
        )
    )
    style = draw(st.sampled_from(["number", "number", "plain", "qa", "bullet"]))

    def cell(items: list[str], label: str) -> str:
        marks = {
            "number": [f"{i}. " for i in range(1, len(items) + 1)],
            "plain": [""] * len(items),
            "qa": [f"{label}: "] * len(items),
            "bullet": ["- "] * len(items),
        }[style]
        return "\n".join(m + t for m, t in zip(marks, items, strict=True))

    row = [cell(questions, "Q"), cell(answers, "A")]
    if draw(st.booleans()):
        row.reverse()  # answers in the questions column: still a row the reader must account
    return row + draw(st.lists(_messy_cell, max_size=1))


_any_row = st.one_of(_listed_row(), _listed_row(), st.lists(_messy_cell, min_size=0, max_size=3))


@settings(max_examples=120, deadline=None)
@given(
    rows=st.lists(_any_row, max_size=8),
    term=st.sampled_from(["\n", "\r\n"]),
    fraction=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9]),
    seed=st.integers(-(2**63), 2**63 - 1),
    min_q=st.sampled_from([0, 0, 1, 4, 9, 12]),
    min_a=st.sampled_from([0, 0, 1, 4, 9, 12]),
    dedupe=st.booleans(),
    system_prompt=st.sampled_from([None, "", "You answer questions about Acme."]),
)
def test_build_counts_reconcile(
    rows: list[list[str]],
    term: str,
    fraction: float,
    seed: int,
    min_q: int,
    min_a: int,
    dedupe: bool,
    system_prompt: str | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, train, val = Path(tmp) / "qa.csv", Path(tmp) / "train.jsonl", Path(tmp) / "val.jsonl"
        write_csv(src, ["questions", "answers"], rows, term)
        builder = (
            DatasetBuilder(
                system_prompt=system_prompt,
                min_question_length=min_q,
                min_answer_length=min_a,
                dedupe=dedupe,
            )
            .add_source(src)
            .split(fraction, seed=seed)
        )
        try:
            report = builder.build(train, validation_output=val)
        except DatasetError as exc:
            report = exc.report
            assert report is not None
            assert report.reconciles and report.kept == 0
            assert report.read == report.dropped
            assert not train.exists() and not val.exists()
            event("nothing survived")
            return
        for reason in report.dropped_by_reason:
            event(f"dropped: {reason}")
        event(f"kept > 0, validation {'> 0' if report.validation else '= 0'}")
        assert report.reconciles
        assert report.read == report.kept + report.dropped
        assert report.dropped == sum(r.count for r in report.dropped_by_reason.values())
        assert report.train + report.validation == report.kept
        # never an empty validation file: none at all, and a note saying why
        assert val.exists() == (report.validation_output is not None) == (report.validation > 0)
        if not val.exists() and fraction > 0:
            assert any("no validation file" in n for n in report.notes)
        train_rows = user_and_assistant(train)
        val_rows = user_and_assistant(val) if val.exists() else []
        assert (len(train_rows), len(val_rows)) == (report.train, report.validation)
        if dedupe:  # the hold-out is exact: round(fraction * questions), all but one at most
            expected = min(math.floor(fraction * report.kept + 0.5), report.kept - 1)
            assert report.validation == expected
        train_keys = {question_key(q) for q, _ in train_rows}
        val_keys = {question_key(q) for q, _ in val_rows}
        assert not train_keys & val_keys
        if dedupe:  # one example per distinct question
            assert len(train_keys) + len(val_keys) == report.kept
        if fraction == 0.0:
            assert report.validation == 0
        for q, a in train_rows + val_rows:
            assert len(q) >= min_q and a.endswith(" **STOP**")
            assert len(a) - len(" **STOP**") >= min_a


# --- 4. JSONL round trips ------------------------------------------------------------

_unicode = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
_not_blank = _unicode.filter(lambda s: bool(s.strip()))


@settings(max_examples=300, deadline=None)
@given(
    question=_not_blank,
    answer=_not_blank,
    system_prompt=st.one_of(st.none(), st.just(""), _unicode),
    stop=st.one_of(st.none(), st.just(""), st.just("**STOP**"), _unicode),
)
def test_training_example_json_round_trip(
    question: str, answer: str, system_prompt: str | None, stop: str | None
) -> None:
    pair = QAPair(question=question, answer=answer)
    line = TrainingExample.from_qa(pair, system_prompt=system_prompt, stop=stop).to_json()
    assert "\n" not in line
    again = TrainingExample.from_json(line).to_json()
    assert again == line
    assert TrainingExample.from_json(line.encode("utf-8")).to_json() == line
    expected = []
    if system_prompt:
        expected.append({"role": "system", "content": system_prompt})
    expected.append({"role": "user", "content": question})
    expected.append({"role": "assistant", "content": f"{answer} {stop}" if stop else answer})
    assert json.loads(line) == {"messages": expected}


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(
        st.tuples(_not_blank, _not_blank, st.sampled_from(["", "", "\n", " \t\n", "\r\n"])),
        min_size=1,
        max_size=8,
    ),
    leading=st.sampled_from(["", "", "\n", " \n\n"]),
    term=st.sampled_from(["\n", "\r\n"]),
    ensure_ascii=st.booleans(),
    bom=st.booleans(),
    extension=st.sampled_from([".jsonl", ".ndjson", ".txt"]),
)
def test_pairs_jsonl_round_trip(
    records: list[tuple[str, str, str]],
    leading: str,
    term: str,
    ensure_ascii: bool,
    bom: bool,
    extension: str,
) -> None:
    text, expected, line = leading, [], 1 + leading.count("\n")
    for row, (q, a, blank) in enumerate(records, 1):
        text += json.dumps({"question": q, "answer": a}, ensure_ascii=ensure_ascii) + term
        changes = () if (q.strip(), a.strip()) == (q, a) else ("whitespace_stripped",)
        expected.append((q.strip(), a.strip(), line, row, None, changes))
        text += blank
        line += 1 + blank.count("\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"pairs{extension}"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        source = QASource(path)
        assert source.format == "pairs_jsonl"
        pairs, issues = read_all(source)
    assert issues == []
    assert pairs == expected


# --- 5. split determinism --------------------------------------------------------------

_split_question = st.one_of(
    st.one_of(_pool_question, _question_variant).filter(lambda s: bool(s.strip())),
    st.text("abcdefgh ?", min_size=1, max_size=10).filter(lambda s: bool(s.strip())),
)
_split_pair = st.builds(
    lambda q, a: QAPair(question=q, answer=a),
    _split_question,
    st.text("xyz é", min_size=1, max_size=8).filter(lambda s: bool(s.strip())),
)


def _build(
    pairs: list[QAPair], tmp: Path, tag: str, via_file: bool, fraction: float, seed: int, **kw: Any
) -> tuple[bytes, bytes]:
    builder = DatasetBuilder(min_question_length=0, min_answer_length=0).split(fraction, seed=seed)
    if via_file:
        src = tmp / f"{tag}.jsonl"
        src.write_text(
            "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in pairs),
            encoding="utf-8",
        )
        builder.add_source(src)
    else:
        builder.add_pairs(list(pairs))
    train, val = tmp / f"{tag}.train.jsonl", tmp / f"{tag}.val.jsonl"
    builder.build(train, validation_output=val, **kw)
    return train.read_bytes(), _read_if_written(val)


def _read_if_written(path: Path) -> bytes:
    """A validation file's bytes; b"" when the split left it no example (none was written)."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    assert data, f"{path} was written empty"
    return data


def _sides(train: bytes, val: bytes) -> dict[str, str]:
    sides: dict[str, str] = {}
    for side, blob in (("train", train), ("validation", val)):
        for line in blob.splitlines():
            key = question_key(json.loads(line)["messages"][-2]["content"])
            assert sides.setdefault(key, side) == side
    return sides


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(_split_pair, min_size=1, max_size=25),
    fraction=st.sampled_from([0.2, 0.5, 0.8]),
    seed=st.integers(-(2**63), 2**63 - 1),
    via_file=st.booleans(),
    data=st.data(),
)
def test_split_is_deterministic_and_order_independent(
    pairs: list[QAPair], fraction: float, seed: int, via_file: bool, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(pairs), label="shuffled")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        first = _build(pairs, tmp, "a", via_file, fraction, seed)
        second = _build(pairs, tmp, "b", via_file, fraction, seed)
        assert first == second
        other = _build(shuffled, tmp, "c", via_file, fraction, seed)
    sides, other_sides = _sides(*first), _sides(*other)
    note(f"sides={sides}")
    assert sides == other_sides
    assert set(sides) == {question_key(p.question.strip()) for p in pairs}
    # dedupe (on by default) keeps one example per distinct question
    assert sum(blob.count(b"\n") for blob in first) == len(sides)


def _report_without_paths(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = report.model_dump()
    for key in ("output", "validation_output"):
        data.pop(key)
    return data


def _write_source(tmp: Path, fmt: str, rows: list[list[str]], term: str, bom: bool) -> Path:
    """The rows as a seed CSV, a pair-per-row CSV or a pairs JSONL file (first two cells)."""
    if fmt == "seed_csv":
        src = tmp / "qa.csv"
        write_csv(src, ["questions", "answers"], rows, term, bom=bom)
    elif fmt == "pairs_csv":
        src = tmp / "qa.csv"
        write_csv(src, ["question", "answer"], rows, term, bom=bom)
    else:
        src = tmp / "qa.jsonl"
        lines = []
        for row in rows:
            q, a = [*row, "", ""][:2]
            lines.append(json.dumps({"question": q, "answer": a}, ensure_ascii=len(lines) % 2 == 0))
            if not row:
                lines.append("")  # a blank line
        text = term.join(lines) + term
        src.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return src


class _KeptPool:
    """One worker pool lent to every build; ``shutdown`` by a build leaves it running."""

    def __init__(self, pool: ProcessPoolExecutor, initargs: tuple[Any, ...]) -> None:
        self.pool, self.initargs = pool, initargs

    def __call__(self, workers: int, *, initializer: Any, initargs: tuple[Any, ...]) -> Any:
        assert (workers, initializer, initargs) == (1, worker_init, self.initargs)
        return self

    def submit(self, fn: Any, /, *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Kept for the next build: each of the 50 examples would start its own pool."""


@pytest.fixture(scope="module")
def kept_pool() -> Iterator[_KeptPool]:
    """A real one-worker pool, started once: spawning one per build cost ~1 s each.

    Under pytest-xdist the runner's threads make ``mp_context`` choose ``spawn``, and a
    spawned worker imports the package and loads the encoding before its first range.
    The worker still reads every byte range in its own process from pickled arguments.
    """
    initargs = (None,)  # the builds below name no model: no encoding to load
    pool = worker_pool(1, initializer=worker_init, initargs=initargs)
    try:
        yield _KeptPool(pool, initargs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@settings(max_examples=50, deadline=None)
@given(
    fmt=st.sampled_from(["seed_csv", "seed_csv", "pairs_csv", "pairs_jsonl"]),
    rows=st.lists(_any_row, min_size=1, max_size=10),
    term=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    range_bytes=st.sampled_from([1, 7, 40, 300, 1 << 20]),
    fraction=st.sampled_from([0.0, 0.5]),
    seed=st.integers(-(2**63), 2**63 - 1),
)
def test_parallel_build_is_byte_identical(
    kept_pool: _KeptPool,
    fmt: str,
    rows: list[list[str]],
    term: str,
    bom: bool,
    range_bytes: int,
    fraction: float,
    seed: int,
) -> None:
    """Worker processes over (tiny) byte ranges write what a sequential build writes."""
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        event(fmt)
        src = _write_source(tmp, fmt, rows, term, bom)
        results = []
        for workers in (0, 1):
            train, val = tmp / f"t{workers}.jsonl", tmp / f"v{workers}.jsonl"
            builder = (
                DatasetBuilder(min_question_length=4, min_answer_length=2)
                .add_source(src)
                .add_source(src)  # the second copy is all duplicates, rows restart at 1
                .split(fraction, seed=seed)
            )
            with (
                mock.patch.object(dataset_module, "_RANGE_BYTES", range_bytes),
                mock.patch.object(dataset_module, "worker_pool", kept_pool),
            ):
                try:
                    report = builder.build(train, validation_output=val, processes=workers)
                except DatasetError as exc:
                    event("nothing survived")
                    results.append((None, None, _report_without_paths(exc.report)))
                    continue
            event(f"{fmt}: kept {min(report.kept, 5)}+")
            results.append(
                (train.read_bytes(), _read_if_written(val), _report_without_paths(report))
            )
    assert results[0] == results[1]


# --- 8. the split with repeated questions kept ------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(_split_pair, min_size=1, max_size=12),
    repeats=st.lists(st.integers(0, 11), max_size=12),
    fraction=st.sampled_from([0.3, 0.7]),
    seed=st.integers(0, 2**32),
)
def test_split_without_dedupe_keeps_each_question_on_one_side(
    pairs: list[QAPair], repeats: list[int], fraction: float, seed: int
) -> None:
    """Repeated questions (dedupe off) all land on one side, and the counts reconcile."""
    rows = pairs + [pairs[i % len(pairs)] for i in repeats]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        builder = DatasetBuilder(min_question_length=0, min_answer_length=0, dedupe=False)
        train, val = tmp / "t.jsonl", tmp / "v.jsonl"
        report = (
            builder.split(fraction, seed=seed).add_pairs(rows).build(train, validation_output=val)
        )
        blobs = train.read_bytes(), _read_if_written(val)
    _sides(*blobs)  # raises if a question is on both sides
    assert report.train + report.validation == report.kept == len(rows)
    assert report.read == report.kept + report.dropped
    assert blobs[0].count(b"\n") == report.train and blobs[1].count(b"\n") == report.validation
