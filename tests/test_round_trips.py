"""Issue #13: data survives every round trip, and the split serves a QA bot.

Each test names the finding of the issue it reproduces: 1 (a build of training data
corrupts it), 3 (an empty validation file is uploaded; the hash split is approximate),
4 (the default split holds facts out of training).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from finetune_qa import DatasetBuilder, QAPair, read_qa
from finetune_qa.cli import main
from finetune_qa.readers import QASource, detect_stop_marker
from finetune_qa.samples import sample_csv

DEMO_PROMPT = "You are a factual chatbot that answers questions about Lumen Notes."


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETUNE_QA_OFFLINE_STATE", str(tmp_path / "offline-api.pickle"))
    monkeypatch.setenv("FINETUNE_QA_BACKEND", "offline")
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()]


def assistant_answers(path: Path) -> list[str]:
    return [str(ex["messages"][-1]["content"]) for ex in lines(path)]  # type: ignore[index]


# --- finding 1: build of training data ---------------------------------------------------


def test_finding1_build_of_training_data_is_the_identity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    train = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=DEMO_PROMPT).add_source(sample_csv()).build(train)
    code, out, err = run(capsys, "build", str(train), "-o", str(tmp_path / "rebuilt.jsonl"))
    assert code == 0, err
    rebuilt = tmp_path / "rebuilt.jsonl"
    assert rebuilt.read_bytes() == train.read_bytes()  # not "**STOP** **STOP**", same prompt
    assert "system prompt kept" in out and "stop marker '**STOP**' kept" in out


def test_finding1_build_with_its_own_marker_appends_it_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    train = tmp_path / "train.jsonl"
    DatasetBuilder(stop="###").add_source(sample_csv()).build(train)
    code, _, err = run(capsys, "build", str(train), "-o", "again.jsonl", "--stop", "###")
    assert code == 0, err
    answers = assistant_answers(tmp_path / "again.jsonl")
    assert all(a.endswith(" ###") and not a.endswith("### ###") for a in answers)


def test_finding1_train_on_training_data_appends_its_marker_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    train = tmp_path / "mine.jsonl"
    DatasetBuilder(stop="###", system_prompt=DEMO_PROMPT).add_source(sample_csv()).build(train)
    code, _, err = run(capsys, "train", str(train), "--stop", "###", "-q")
    assert code == 0, err
    built = tmp_path / "finetune-qa-train" / "train.jsonl"
    assert built.read_bytes() == train.read_bytes()  # not "### ###", and the same prompt


def test_finding1_replaced_settings_are_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    train = tmp_path / "train.jsonl"
    DatasetBuilder(system_prompt=DEMO_PROMPT).add_source(sample_csv()).build(train)
    code, out, _ = run(
        capsys, "build", str(train), "-o", "o.jsonl", "--stop", "###", "--system-prompt", "Hi."
    )
    assert code == 0
    assert f"system prompt {DEMO_PROMPT[:59] + '…'!r} replaced by 'Hi.'" in out
    assert "stop marker '**STOP**' removed and '###' appended instead" in out
    assert re.search(r"stop_marker_removed: 24 ", out)  # the Changed section counts them
    assert all(
        a.endswith(" ###") and "**STOP**" not in a for a in assistant_answers(tmp_path / "o.jsonl")
    )


def test_finding1_a_pair_read_back_from_training_data_is_the_pair_that_went_in(
    tmp_path: Path,
) -> None:
    pairs = [
        QAPair(question=f"What is plan {i}?", answer=f"Plan {i} costs {i} euros.")
        for i in range(12)
    ]
    for stop in ("**STOP**", "###", "<|end|>"):
        out = tmp_path / f"t{len(stop)}.jsonl"
        DatasetBuilder(stop=stop).add_pairs(pairs).build(out)
        source = QASource(out)
        assert (source.stop, source.stop_detected) == (stop, True)
        assert (
            source.system_prompt
            == "You are a factual chatbot that answers questions about our website."
        )
        assert [(p.question, p.answer) for p in source.pairs()] == [
            (p.question, p.answer) for p in pairs
        ]
    # stop="" reads the answers as they are
    assert next(read_qa(out, stop="")).answer == "Plan 0 costs 0 euros. <|end|>"


def test_finding1_prose_is_not_taken_for_a_marker() -> None:
    assert detect_stop_marker(["It costs €5 a month.", "It costs €48 a month."]) is None
    assert detect_stop_marker(["Yes (see the FAQ)", "No (see the FAQ)"]) is None
    assert detect_stop_marker(["Only one answer ###"]) is None  # one answer: too little to tell
    assert detect_stop_marker(["Only one answer **STOP**"]) == "**STOP**"
    assert detect_stop_marker(["A. ###", "B. ##"]) is None


def test_finding1_demo_report_scores_verbatim_answers_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0, err
    html = (tmp_path / "demo" / "report.html").read_text("utf-8")
    assert "**STOP**" not in html  # the references are the answers as they went in
    # the fine-tune's verbatim exact-match score: 1.00, not 0.00
    scores = re.findall(r"verbatim exact: ([0-9.]+)</title>", html)
    assert scores and float(scores[0]) == 1.0, scores


_word = st.text("abcdefghij", min_size=2, max_size=8)
_sentence = st.lists(_word, min_size=2, max_size=6).map(lambda ws: " ".join(ws).capitalize() + ".")
_pair = st.builds(lambda q, a: (q[:-1] + "?", a), _sentence, _sentence)


def _write_kind(kind: str, pairs: list[tuple[str, str]], path: Path) -> Path:
    if kind == "seed_csv":
        import csv

        with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["questions", "answers"])
            w.writerow(
                [
                    "\n".join(f"{i}. {q}" for i, (q, _) in enumerate(pairs, 1)),
                    "\n".join(f"{i}. {a}" for i, (_, a) in enumerate(pairs, 1)),
                ]
            )
        return path.with_suffix(".csv")
    if kind == "pairs_csv":
        import csv

        with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["question", "answer"])
            w.writerows(pairs)
        return path.with_suffix(".csv")
    out = path.with_suffix(".jsonl")
    if kind == "pairs_jsonl":
        out.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs))
    else:  # chat_jsonl: someone else's chat data, with its own prompt and marker
        out.write_text(
            "".join(
                json.dumps(
                    {
                        "messages": [
                            {"role": "system", "content": "Theirs."},
                            {"role": "user", "content": q},
                            {"role": "assistant", "content": f"{a} <END>"},
                        ]
                    }
                )
                + "\n"
                for q, a in pairs
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["seed_csv", "pairs_csv", "pairs_jsonl", "chat_jsonl"]),
    pairs=st.lists(_pair, min_size=1, max_size=8, unique_by=lambda p: p[0].lower()),
    prompt=st.sampled_from([None, "", "Answer about Acme.", "__default__"]),
    stop=st.sampled_from([None, "", "**STOP**", "###", "<|end|>", "__default__"]),
)
def test_finding1_build_read_build_is_the_identity(
    kind: str, pairs: list[tuple[str, str]], prompt: str | None, stop: str | None
) -> None:
    # a marker other than the default is told from prose on two answers or more
    assume(
        len(pairs) >= 2 or (kind != "chat_jsonl" and stop in (None, "", "**STOP**", "__default__"))
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        src = _write_kind(kind, pairs, tmp / "input")
        first = DatasetBuilder(min_question_length=0, min_answer_length=0)
        if prompt != "__default__":
            first.with_system_prompt(prompt)
        if stop != "__default__":
            first.with_stop(stop)
        report = first.add_source(src).build(tmp / "one.jsonl")
        # read: the pairs that went in
        assert [(p.question, p.answer) for p in read_qa(tmp / "one.jsonl")] == pairs
        # build again with no settings given: byte for byte the same file
        again = DatasetBuilder(min_question_length=0, min_answer_length=0)
        second = again.add_source(tmp / "one.jsonl").build(tmp / "two.jsonl")
        assert (tmp / "two.jsonl").read_bytes() == (tmp / "one.jsonl").read_bytes()
        assert (second.system_prompt, second.stop) == (report.system_prompt, report.stop)
        assert "stop_marker_removed" not in second.changed_by_reason


# --- findings 3 and 4: the split -----------------------------------------------------------


def _pairs(n: int) -> list[QAPair]:
    return [
        QAPair(question=f"What does plan {i} include?", answer=f"Plan {i} includes {i} anvils.")
        for i in range(n)
    ]


@pytest.mark.parametrize(("fraction", "expected"), [(0.1, 2), (0.15, 4), (0.2, 5), (0.5, 12)])
def test_finding3_an_explicit_fraction_is_exact(
    tmp_path: Path, fraction: float, expected: int
) -> None:
    report = (
        DatasetBuilder()
        .add_source(sample_csv())  # 24 distinct questions
        .split(fraction)
        .build(tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl")
    )
    # round(fraction * 24), where the hash split gave 7 (29%) for 15%
    assert (report.train, report.validation) == (24 - expected, expected)
    assert report.validation_mode == "holdout"


def test_finding3_a_split_too_small_for_one_example_writes_no_validation_file(
    tmp_path: Path,
) -> None:
    report = (
        DatasetBuilder()
        .add_pairs(_pairs(4))
        .split(0.1)
        .build(tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl")
    )
    assert report.validation == 0 and report.validation_output is None
    assert not (tmp_path / "v.jsonl").exists()
    assert "no validation file was written: 10% of 4 questions" in report.to_text()


def test_finding3_train_never_uploads_an_empty_validation_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "qa.jsonl"
    src.write_text(
        "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in _pairs(12))
    )
    code, out, err = run(capsys, "train", str(src), "--validation-fraction", "0.01")
    assert code == 0, err
    assert "built 12 training examples (no validation file)" in out
    assert "note: no validation file was written" in out
    assert not (tmp_path / "finetune-qa-train" / "validation.jsonl").exists()
    code, out, _ = run(capsys, "train", str(src), "--validation-fraction", "0.01", "--json")
    assert json.loads(out)["validation_file"] is None
    code, out, _ = run(capsys, "status", json.loads(out)["job_id"], "--json")
    assert json.loads(out)["validation_file"] is None  # nothing was attached to the job


def test_finding4_train_trains_on_every_pair_by_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "train", str(sample_csv()))
    assert code == 0, err
    assert "built 24 training examples (2 of them repeated as validation)" in out
    workdir = tmp_path / "finetune-qa-train"
    trained = {str(ex["messages"][1]["content"]) for ex in lines(workdir / "train.jsonl")}  # type: ignore[index]
    validated = {str(ex["messages"][1]["content"]) for ex in lines(workdir / "validation.jsonl")}  # type: ignore[index]
    assert len(trained) == 24 and validated and validated <= trained


def test_finding4_build_validation_repeats_training_examples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "build", str(sample_csv()), "-o", "t.jsonl", "--validation", "v.jsonl"
    )
    assert code == 0
    assert (
        "train: 24 -> t.jsonl" in out
        and "validation: 2 -> v.jsonl (copies of training examples)" in out
    )
    assert "read 29 pairs = kept 24 + dropped 5 (reconciles)" in out
    train, val = (
        (tmp_path / "t.jsonl").read_text().splitlines(),
        (tmp_path / "v.jsonl").read_text().splitlines(),
    )
    assert set(val) <= set(train)
    # an explicit fraction still holds questions out
    code, out, _ = run(
        capsys,
        "build",
        str(sample_csv()),
        "-o",
        "t.jsonl",
        "--validation",
        "v.jsonl",
        "--validation-fraction",
        "0.25",
    )
    assert "train: 18 -> t.jsonl" in out and "validation: 6 -> v.jsonl\n" in out


def test_finding4_sample_validation_in_python(tmp_path: Path) -> None:
    report = (
        DatasetBuilder()
        .add_pairs(iter(_pairs(30)))  # an iterator: read twice, so kept in a list
        .sample_validation(0.2, seed=3)
        .build(tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl")
    )
    assert (report.train, report.validation, report.kept, report.validation_mode) == (
        30,
        6,
        30,
        "sample",
    )
    assert report.reconciles
    train = set((tmp_path / "t.jsonl").read_text().splitlines())
    assert set((tmp_path / "v.jsonl").read_text().splitlines()) <= train


# --- finding 5: a comparison names its sides ---------------------------------------------


def test_finding5_comparisons_tell_their_sides_apart(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0, err
    html = (tmp_path / "demo" / "report.html").read_text("utf-8")
    title = re.search(r"<title>Comparison: (.*?) vs (.*?)</title>", html)
    assert title is not None
    a, b = title.groups()
    assert a != b and b == f"{a} (guarded: question gate)", title.group(0)


def test_finding5_same_label_or_user_labels(tmp_path: Path) -> None:
    from finetune_qa import ChatModel, EvalSuite

    bot = ChatModel.offline("gpt-4o-mini")
    suite = EvalSuite.from_pairs(_pairs(3), builtin_unrelated=False)
    one, two = suite.run(bot), suite.run(bot)
    same = one.compare(two)
    assert (same.a.label, same.b.label) == ("gpt-4o-mini (a)", "gpt-4o-mini (b)")
    assert "gpt-4o-mini (a) vs gpt-4o-mini (b)" in same.to_markdown()
    named = one.compare(two, labels=("before", "after"))
    assert "Comparison: before vs after" in named.to_html()
    assert "before" in named.to_markdown() and "after" in named.to_markdown()


def test_finding4_a_sampled_validation_file_is_not_an_overlap_warning(tmp_path: Path) -> None:
    from finetune_qa import validate_file

    DatasetBuilder().add_source(sample_csv()).sample_validation().build(
        tmp_path / "t.jsonl", validation_output=tmp_path / "v.jsonl"
    )
    report = validate_file(tmp_path / "t.jsonl", validation_path=tmp_path / "v.jsonl")
    assert report.ok and "train_validation_overlap" not in report.warning_counts


@pytest.mark.parametrize("mode", ["sample", "holdout"])
def test_finding3_the_parallel_path_splits_exactly_as_the_sequential_one(
    tmp_path: Path, mode: str
) -> None:
    from unittest import mock

    from finetune_qa.dataset import _merge as dataset_module

    src = tmp_path / "qa.jsonl"
    src.write_text(
        "".join(json.dumps({"question": p.question, "answer": p.answer}) + "\n" for p in _pairs(40))
    )
    out = []
    for workers in (0, 1):
        builder = DatasetBuilder().add_source(src).add_source(src)  # the second copy: duplicates
        builder = builder.sample_validation(0.2) if mode == "sample" else builder.split(0.2)
        with mock.patch.object(dataset_module, "_RANGE_BYTES", 300):
            report = builder.build(
                tmp_path / f"t{workers}.jsonl",
                validation_output=tmp_path / f"v{workers}.jsonl",
                processes=workers,
                model="gpt-4o-mini",
            )
        out.append(
            (
                (tmp_path / f"t{workers}.jsonl").read_bytes(),
                (tmp_path / f"v{workers}.jsonl").read_bytes(),
            )
        )
        assert report.validation == 8 and report.train == (40 if mode == "sample" else 32)
        assert report.token_report is not None and report.token_report.examples == report.train
    assert out[0] == out[1]


def test_finding3_an_empty_validation_file_is_refused_before_upload(tmp_path: Path) -> None:
    from finetune_qa import FineTuneJob, OfflineBackend, ValidationFailed, validate_file

    DatasetBuilder().add_source(sample_csv()).build(tmp_path / "t.jsonl")
    (tmp_path / "v.jsonl").write_bytes(b"")
    report = validate_file(tmp_path / "t.jsonl", validation_path=tmp_path / "v.jsonl")
    assert not report.ok and report.error_counts == {"empty_validation_file": 1}
    backend = OfflineBackend()
    with pytest.raises(ValidationFailed, match="empty_validation_file"):
        FineTuneJob.create(
            tmp_path / "t.jsonl",
            validation_file=tmp_path / "v.jsonl",
            model="gpt-4o-mini",
            backend=backend,
            journal=tmp_path / "j.jsonl",
        )
    assert not [r for r in backend.fake.requests if r.method == "POST"]  # nothing was sent
