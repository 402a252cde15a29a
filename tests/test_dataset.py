from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from finetune_qa import (
    CSVFormatError,
    DatasetBuilder,
    DatasetError,
    InputFileError,
    QAPair,
    TrainingExample,
    UsageError,
    validate_file,
)
from finetune_qa._text import question_key


def write_seed(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["questions", "answers"])
        w.writerows(rows)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_seed_csv_end_to_end(seed_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    report = (
        DatasetBuilder(system_prompt="You answer questions about Acme.")
        .add_source(seed_csv)
        .build(out)
    )
    rows = read_jsonl(out)
    assert report.reconciles
    assert report.read == 15 and report.kept == 14 and report.train == 14
    assert report.dropped_by_reason["question_too_short"].count == 1  # "Hours?"
    assert report.changed_by_reason["numbering_stripped"].count == 15
    # items numbered 10 and up come out clean (the old q[2:] left ". What ...")
    questions = [r["messages"][1]["content"] for r in rows]
    assert "What does plan number 10 include?" in questions
    assert all(not q.startswith((".", " ")) for q in questions)
    assert rows[0] == {
        "messages": [
            {"role": "system", "content": "You answer questions about Acme."},
            {"role": "user", "content": "What is Acme Anvils?"},
            {"role": "assistant", "content": "Acme Anvils makes drop-forged anvils. **STOP**"},
        ]
    }
    example = report.dropped_by_reason["question_too_short"].examples[0]
    assert example.source.startswith(f"{seed_csv}:2") and example.question == "Hours?"


def test_written_lines_equal_the_data_model_serialization(seed_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    b = DatasetBuilder(system_prompt='Sys ✓ "quoted"', stop="**STOP**").add_source(seed_csv)
    b.build(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    expected = [ex.to_json() for ex in b.iter_examples()]
    assert lines == expected
    for line in lines:
        assert TrainingExample.from_json(line).to_json() == line


def test_unbalanced_row_is_reported_not_truncated(tmp_path: Path) -> None:
    src = write_seed(
        tmp_path / "qa.csv",
        [
            (
                "What is the first question?\nWhat is the second question?\nWhat is the third question?",
                "This is the first answer.\nThis is the second answer.",
            ),
            (
                "1. What is numbered one?\n2. What is numbered two?\n3. What is numbered three?",
                "1. The answer to one.\n3. The answer to three.",
            ),
        ],
    )
    report = DatasetBuilder().add_source(src).build(tmp_path / "t.jsonl")
    assert report.reconciles
    assert report.dropped_by_reason["unbalanced_row"].count == 3
    assert report.dropped_by_reason["unmatched_question"].count == 1
    rows = read_jsonl(tmp_path / "t.jsonl")
    pairs = {(r["messages"][1]["content"], r["messages"][2]["content"]) for r in rows}
    assert pairs == {
        ("What is numbered one?", "The answer to one. **STOP**"),
        ("What is numbered three?", "The answer to three. **STOP**"),
    }


def test_dedupe_normalized_questions(tmp_path: Path) -> None:
    pairs = [
        QAPair(question="What is Acme?", answer="A maker of anvils."),
        QAPair(question="  what is   ACME ", answer="Another answer entirely."),
        QAPair(question="What is Acme Pro?", answer="The premium plan."),
    ]
    report = DatasetBuilder().add_pairs(pairs).build(tmp_path / "t.jsonl")
    assert report.kept == 2 and report.dropped_by_reason["duplicate_question"].count == 1
    kept = DatasetBuilder(dedupe=False).add_pairs(pairs).build(tmp_path / "t2.jsonl")
    assert kept.kept == 3


def test_normalization_changes_are_counted(tmp_path: Path) -> None:
    pairs = [QAPair(question="Cafe\u0301 opening  hours?", answer="From\t9 to 5 every day.")]
    report = DatasetBuilder().add_pairs(pairs).build(tmp_path / "t.jsonl")
    assert set(report.changed_by_reason) == {"unicode_normalized", "whitespace_normalized"}
    row = read_jsonl(tmp_path / "t.jsonl")[0]
    assert row["messages"][1]["content"] == "Café opening hours?"
    assert row["messages"][2]["content"] == "From 9 to 5 every day. **STOP**"


def _many_pairs(n: int) -> list[QAPair]:
    out = []
    for i in range(n):
        q = f"What does feature number {i} do?"
        out.append(QAPair(question=q, answer=f"Feature {i} does thing {i}."))
        if i % 5 == 0:  # a near-duplicate that dedupe=False keeps
            out.append(QAPair(question=q.upper() + "  ", answer=f"Again {i}."))
    return out


@pytest.mark.parametrize("dedupe", [True, False])
def test_split_never_puts_a_question_on_both_sides(tmp_path: Path, dedupe: bool) -> None:
    pairs = _many_pairs(500)
    report = (
        DatasetBuilder(dedupe=dedupe)
        .add_pairs(pairs)
        .split(0.2, seed=7)
        .build(tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl")
    )
    train = {question_key(r["messages"][1]["content"]) for r in read_jsonl(tmp_path / "t.jsonl")}
    val = {question_key(r["messages"][1]["content"]) for r in read_jsonl(tmp_path / "v.jsonl")}
    assert not train & val
    assert report.train + report.validation == report.kept
    assert 0.12 < report.validation / report.kept < 0.28
    assert report.reconciles


def test_split_is_seeded_and_order_independent(tmp_path: Path) -> None:
    pairs = _many_pairs(300)

    def val_questions(seed: int, ps: list[QAPair], name: str) -> set[str]:
        DatasetBuilder().add_pairs(ps).split(0.3, seed=seed).build(
            tmp_path / f"{name}.t.jsonl", validation_output=tmp_path / f"{name}.v.jsonl"
        )
        return {
            question_key(r["messages"][1]["content"])
            for r in read_jsonl(tmp_path / f"{name}.v.jsonl")
        }

    a = val_questions(1, pairs, "a")
    assert a == val_questions(1, pairs, "b")
    assert a == val_questions(1, list(reversed(pairs)), "c")  # the later duplicate wins, same side
    assert a != val_questions(2, pairs, "d")


def test_min_lengths_and_custom_filter(tmp_path: Path) -> None:
    pairs = [
        QAPair(question="Short?", answer="Long enough answer."),
        QAPair(question="Long enough question?", answer="Yes."),
        QAPair(question="Tell me about pricing?", answer="See the pricing page."),
        QAPair(question="Tell me about refunds?", answer="Refunds take 5 days."),
        QAPair(question="Tell me about support?", answer="Support answers by e-mail."),
    ]
    report = (
        DatasetBuilder()
        .add_pairs(pairs)
        .filter(lambda p: "pricing" not in p.question, name="mentions_pricing")
        .filter(lambda p: True if "5" not in p.answer else "has_digit")
        .build(tmp_path / "t.jsonl")
    )
    assert {k: v.count for k, v in report.dropped_by_reason.items()} == {
        "question_too_short": 1,
        "answer_too_short": 1,
        "mentions_pricing": 1,
        "has_digit": 1,
    }
    assert report.kept == 1 and report.reconciles


def test_nothing_survives_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    with pytest.raises(DatasetError, match="no pair survived") as info:
        DatasetBuilder(min_question_length=1000).add_pairs(
            [QAPair(question="Q?", answer="A.")]
        ).build(out)
    assert info.value.report.dropped == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_input_midway_leaves_no_partial_output(tmp_path: Path) -> None:
    src = tmp_path / "qa.csv"
    good = "".join(
        f'"{i}. What is question {i}?","{i}. It is answer {i}."\n' for i in range(1, 200)
    )
    src.write_text("questions,answers\n" + good + '"broken,"quote\n', encoding="utf-8")
    out = tmp_path / "t.jsonl"
    out.write_text("previous content\n")
    with pytest.raises(CSVFormatError) as info:
        DatasetBuilder().add_source(src).build(out, validation_output=tmp_path / "v.jsonl")
    assert info.value.line == 201
    assert out.read_text() == "previous content\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "t.jsonl"]


def test_build_token_report_equals_validating_the_file(seed_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    report = DatasetBuilder().add_source(seed_csv).build(out, model="gpt-4o-mini")
    assert report.token_report is not None
    again = validate_file(out, model="gpt-4o-mini")
    fused = report.token_report.model_dump(
        exclude={"lines", "path", "warning_counts", "warnings", "stop_marker"}
    )
    separate = again.model_dump(
        exclude={"lines", "path", "warning_counts", "warnings", "stop_marker"}
    )
    assert fused == separate
    assert report.token_report.error_counts == {}  # 14 examples, no errors


def test_build_token_report_with_worker_processes(tmp_path: Path) -> None:
    pairs = _many_pairs(2000)
    out = tmp_path / "t.jsonl"
    a = DatasetBuilder().add_pairs(pairs).build(out, model="gpt-4o-mini", processes=0)
    b = (
        DatasetBuilder()
        .add_pairs(pairs)
        .build(tmp_path / "t2.jsonl", model="gpt-4o-mini", processes=2)
    )
    assert a.token_report is not None and b.token_report is not None
    assert (
        a.token_report.total_tokens
        == b.token_report.total_tokens
        == validate_file(out).total_tokens
    )


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no sources"):
        DatasetBuilder().build(tmp_path / "t.jsonl")
    with pytest.raises(UsageError, match="validation_output"):
        DatasetBuilder().add_pairs([]).split(0.1).build(tmp_path / "t.jsonl")
    with pytest.raises(UsageError, match="below 1"):
        DatasetBuilder().split(1.0)
    with pytest.raises(UsageError, match="min question length"):
        DatasetBuilder().min_lengths(question=-1)
    with pytest.raises(UsageError, match="are one file"):
        DatasetBuilder().add_pairs([]).split(0.1).build(
            tmp_path / "t.jsonl", validation_output=tmp_path / "t.jsonl"
        )


def test_output_permissions_follow_umask(seed_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    DatasetBuilder().add_source(seed_csv).build(out)
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _messy_seed_csv(path: Path, rows: int = 120) -> Path:
    """A seed CSV with duplicates across the file, unbalanced rows, short pairs, CRLF inside cells."""
    out = []
    for r in range(rows):
        n = 3 + r % 5
        qs = [
            f'{i}. What about topic {(r * 7 + i) % 90} and "quoted" things, number {i}?'
            for i in range(1, n + 1)
        ]
        ans = [f"{i}. Answer {r}-{i}: café, 2.5 GB,\r\n  and more text." for i in range(1, n + 1)]
        if r % 11 == 0:
            ans = ans[:-1]  # a numbered gap: unmatched question
        if r % 13 == 0:
            qs = [q.split(". ", 1)[1] for q in qs]
            ans = [a.split(". ", 1)[1] for a in ans][:-1]  # unnumbered and unbalanced
        if r % 17 == 0:
            qs.append(f"{n + 1}. Hours?")
            ans.append(f"{n + 1}. 9-5.")
        out.append(("\n".join(qs), "\n".join(ans)))
    return write_seed(path, out)


def _strip_paths(report: object) -> dict:
    data = report.model_dump()  # type: ignore[attr-defined]
    data.pop("output"), data.pop("validation_output"), data.pop("sources")
    if data.get("token_report"):
        data["token_report"].pop("path")
    return data


def test_parallel_build_equals_sequential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune_qa.dataset._merge as dataset_mod

    monkeypatch.setattr(dataset_mod, "_RANGE_BYTES", 2048)  # many small ranges
    src = _messy_seed_csv(tmp_path / "qa.csv")
    reports = {}
    for workers in (0, 2):
        d = tmp_path / f"w{workers}"
        d.mkdir()
        reports[workers] = (
            DatasetBuilder()
            .add_source(src)
            .add_source(src)  # a second file: everything in it is a duplicate
            .split(0.25, seed=5)
            .build(
                d / "t.jsonl",
                validation_output=d / "v.jsonl",
                model="gpt-4o-mini",
                processes=workers,
            )
        )
    seq, par = reports[0], reports[2]
    assert (tmp_path / "w0" / "t.jsonl").read_bytes() == (tmp_path / "w2" / "t.jsonl").read_bytes()
    assert (tmp_path / "w0" / "v.jsonl").read_bytes() == (tmp_path / "w2" / "v.jsonl").read_bytes()
    assert _strip_paths(seq) == _strip_paths(par)
    assert par.reconciles and par.dropped_by_reason["duplicate_question"].count >= par.kept
    assert {"unbalanced_row", "unmatched_question", "question_too_short"} <= set(
        par.dropped_by_reason
    )


def test_parallel_build_reports_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import finetune_qa.dataset._merge as dataset_mod

    monkeypatch.setattr(dataset_mod, "_RANGE_BYTES", 1024)
    src = _messy_seed_csv(tmp_path / "qa.csv", rows=60)
    with src.open("ab") as f:
        f.write(b'"1. What is broken?","1. This\xff is not UTF-8."\n')
    errors = []
    for workers in (0, 2):
        with pytest.raises(InputFileError) as info:
            DatasetBuilder().add_source(src).build(
                tmp_path / f"t{workers}.jsonl", processes=workers
            )
        errors.append((type(info.value), info.value.line, str(info.value)))
        assert not (tmp_path / f"t{workers}.jsonl").exists()
    assert errors[0] == errors[1]


def test_parallel_build_of_jsonl_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune_qa.dataset._merge as dataset_mod

    monkeypatch.setattr(dataset_mod, "_RANGE_BYTES", 512)
    src = tmp_path / "pairs.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for i in range(300):
            f.write(
                json.dumps({"question": f"What is item {i % 250}?", "answer": f"Item {i} is fine."})
                + "\n"
            )
            if i % 50 == 0:
                f.write("\n")
    outs = []
    for workers in (0, 2):
        r = (
            DatasetBuilder()
            .add_source(src)
            .build(tmp_path / f"t{workers}.jsonl", processes=workers)
        )
        outs.append(((tmp_path / f"t{workers}.jsonl").read_bytes(), _strip_paths(r)))
    assert outs[0] == outs[1]
    assert outs[1][1]["dropped_by_reason"]["duplicate_question"]["count"] == 50


def test_keyset_behaves_like_a_set() -> None:
    import random

    from finetune_qa._pipeline import KeySet

    rng = random.Random(3)
    ks, ref = KeySet(capacity=4), set()
    for _ in range(20000):
        k = rng.getrandbits(64) if rng.random() < 0.7 else rng.choice([0, 1, 2, 5, 2**64 - 1])
        assert ks.add(k) == ((k or 1) not in ref)
        ref.add(k or 1)
    assert len(ks) == len(ref)


# ------------------------------------------------------------------- augmentation


def _acme_pairs(n: int = 20) -> list[QAPair]:
    topics = [
        ("Who founded Acme Labs?", "Ada and Max founded Acme Labs in 2012."),
        ("How many people work at Acme Labs?", "Acme Labs has 42 employees."),
        ("Where is Acme Labs based?", "Acme Labs is based in Leeds."),
        ("How much does the audit cost?", "The audit costs 900 euros."),
        ("How long does the audit take?", "The audit takes two weeks."),
    ]
    pairs = [QAPair(question=q, answer=a) for q, a in topics]
    pairs += [
        QAPair(question=f"What does Acme plan {i} include?", answer=f"Plan {i} includes {i} seats.")
        for i in range(n - len(topics))
    ]
    return pairs


def _chat_requests(writer: object) -> int:
    fake = writer.backend.fake  # type: ignore[attr-defined]
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


def test_augmentation_adds_k_rephrasings_with_the_same_answer(tmp_path: Path) -> None:
    from finetune_qa import ChatModel

    writer = ChatModel.offline("gpt-4o-mini")
    pairs = _acme_pairs()
    out = tmp_path / "train.jsonl"
    report = (
        DatasetBuilder(augment=3, writer=writer, rephrase_cache=tmp_path / "c.jsonl", stop=None)
        .add_pairs(pairs)
        .build(out)
    )
    rows = [(r["messages"][-2]["content"], r["messages"][-1]["content"]) for r in read_jsonl(out)]
    aug = report.augmentation
    assert aug is not None and (aug.k, aug.writer, aug.questions) == (3, "gpt-4o-mini", 20)
    assert aug.added == len(rows) - 20 == aug.added_train and aug.added_validation == 0
    assert aug.added + sum(aug.skipped.values()) == 60 and aug.added >= 55
    assert (aug.requests, aug.cache_hits, aug.failed) == (20, 0, 0)
    # counted apart: kept is the pairs read, train every example written
    assert (report.read, report.kept, report.train) == (20, 20, len(rows)) and report.reconciles
    assert "augmented: +" in report.to_text() and "writer gpt-4o-mini" in report.to_text()
    by_answer: dict[str, list[str]] = {}
    for q, a in rows:
        by_answer.setdefault(a, []).append(q)
    for p in pairs:
        wordings = by_answer[p.answer]
        assert wordings[0] == p.question and 3 <= len(wordings) <= 4  # the pair, then its own
        assert len({question_key(w) for w in wordings}) == len(wordings)
    founded = by_answer["Ada and Max founded Acme Labs in 2012."]
    assert "Who started Acme Labs?" in founded  # other words, not only another frame
    # iter_examples streams the same examples
    assert [
        e.messages[-2].content
        for e in DatasetBuilder(
            augment=3, writer=writer, rephrase_cache=tmp_path / "c.jsonl", stop=None
        )
        .add_pairs(pairs)
        .iter_examples()
    ] == [q for q, _ in rows]


def test_all_wordings_of_a_pair_stay_on_one_side_of_the_split(tmp_path: Path) -> None:
    from finetune_qa import ChatModel

    writer = ChatModel.offline("gpt-4o-mini")
    pairs = _acme_pairs(30)
    for mode in ("holdout", "sample"):
        b = DatasetBuilder(augment=2, writer=writer, rephrase_cache=False, stop=None)
        b = b.split(0.3, seed=4) if mode == "holdout" else b.sample_validation(0.3, seed=4)
        report = b.add_pairs(pairs).build(
            tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl"
        )
        train = [r["messages"][-1]["content"] for r in read_jsonl(tmp_path / "t.jsonl")]
        val = [r["messages"][-1]["content"] for r in read_jsonl(tmp_path / "v.jsonl")]
        aug = report.augmentation
        assert aug is not None and report.reconciles and report.kept == 30
        if mode == "holdout":
            assert not set(train) & set(val)  # an answer (a pair) is on one side only
            assert len(set(val)) == 9  # 30% of the pairs, not of the wordings
            assert aug.added_validation == len(val) - 9
        else:
            assert set(val) <= set(train) and len(set(val)) == 9
        for a in set(val):  # the pair and both its rephrasings
            assert val.count(a) == 3


def test_an_augmented_rebuild_asks_the_writer_nothing(tmp_path: Path) -> None:
    from finetune_qa import ChatModel

    writer = ChatModel.offline("gpt-4o-mini")
    cache = tmp_path / "rephrasings.jsonl"

    def build() -> object:
        return (
            DatasetBuilder(augment=2, writer=writer, rephrase_cache=cache)
            .add_pairs(_acme_pairs(12))
            .build(tmp_path / "train.jsonl")
        )

    first = build()
    asked = _chat_requests(writer)
    assert asked == 12 and first.augmentation.requests == 12  # type: ignore[attr-defined]
    text = (tmp_path / "train.jsonl").read_text()
    second = build()
    assert _chat_requests(writer) == asked  # zero requests the second time
    assert second.augmentation.cache_hits == 12  # type: ignore[attr-defined]
    assert second.augmentation.requests == 0  # type: ignore[attr-defined]
    assert (tmp_path / "train.jsonl").read_text() == text


def test_augmentation_arguments_are_checked() -> None:
    from finetune_qa import ChatModel

    with pytest.raises(UsageError, match="needs a writer model"):
        DatasetBuilder(augment=3)
    with pytest.raises(UsageError, match="augment must be"):
        DatasetBuilder(augment=-1, writer=ChatModel.offline("gpt-4o-mini"))
    b = DatasetBuilder(augment=2, writer=ChatModel.offline("gpt-4o-mini"), rephrase_cache=False)
    assert b.augment == 2 and b.augment_with(0, writer=None).augment == 0
