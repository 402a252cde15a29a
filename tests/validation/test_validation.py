from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiktoken

from finetune_qa import (
    InputFileError,
    UsageError,
    ValidationReport,
    default_epochs,
    validate_examples,
    validate_file,
)

TODAY = dt.date(2026, 11, 25)


def ex(
    q: str = "What is Acme?",
    a: str = "A maker of anvils. **STOP**",
    system: str | None = "Be factual.",
) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def good(n: int) -> list[dict[str, Any]]:
    return [
        ex(f"Question number {i} about plans?", f"Answer {i} with words {'x ' * (i % 7)}. **STOP**")
        for i in range(n)
    ]


def write(path: Path, lines: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False))
            f.write("\n")
    return path


def kinds_at(report: ValidationReport) -> set[tuple[str, int | None]]:
    return {(e.kind, e.line) for e in report.errors}


def test_clean_file_reports_ok(tmp_path: Path) -> None:
    r = validate_file(write(tmp_path / "t.jsonl", good(20)), model="gpt-4o-mini", today=TODAY)
    assert r.ok and r.examples == 20 and r.lines == 20
    assert r.stop_marker == "**STOP**"
    assert r.warning_counts == {}
    assert r.cost.n_epochs == 5 and r.cost.epochs_source == "default heuristic"
    assert r.cost.token_limit == 65536 and "gpt-4o-mini-2024-07-18" in r.cost.limit_source
    assert r.cost.estimated_cost_usd == pytest.approx(
        r.cost.billed_tokens_total * 3.0 / 1e6, rel=1e-6
    )
    assert any("2027-01-06" in w for w in r.model_warnings)


def test_every_error_kind_is_reported_with_its_line(tmp_path: Path) -> None:
    lines: list[Any] = good(12)
    bad: list[tuple[Any, str]] = [
        ("{not json", "invalid_json"),
        ("", "blank_line"),
        ([1, 2], "data_type"),
        ({"messages": []}, "missing_messages_list"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ],
                "extra": 1,
            },
            "unknown_key",
        ),
        ({"messages": ["hi", {"role": "assistant", "content": "a"}]}, "message_type"),
        (
            {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
            "message_missing_key",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q", "mood": "x"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "message_unrecognized_key",
        ),
        (
            {
                "messages": [
                    {"role": "narrator", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "unrecognized_role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "   "},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "missing_content",
        ),
        (
            {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "a"}]},
            "missing_content",
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, "example_missing_assistant_message"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": 2},
                ]
            },
            "invalid_weight",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": True},
                ]
            },
            "invalid_weight",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q", "weight": 1},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "invalid_weight",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}],
                    },
                ]
            },
            "invalid_tool_call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "tool", "content": "r", "tool_call_id": "nope"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "invalid_tool_call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ],
                "tools": [{"type": "function", "function": {}}],
            },
            "invalid_tools",
        ),
    ]
    start = len(lines) + 1
    lines += [b for b, _ in bad]
    r = validate_file(write(tmp_path / "t.jsonl", lines), today=TODAY)
    assert not r.ok
    found = kinds_at(r)
    for offset, (_, kind) in enumerate(bad):
        assert (kind, start + offset) in found, (kind, start + offset, sorted(found))
    assert r.examples == 12  # the bad lines are not counted as examples
    for e in r.errors:
        assert e.file and e.file.endswith("t.jsonl")
        assert e.render().startswith(f"{e.file}:{e.line}: {e.kind}: ")


def test_weight_zero_and_one_and_tool_calls_are_valid(tmp_path: Path) -> None:
    rows = good(10) + [
        {
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                    "weight": 0,
                },
                {"role": "tool", "content": "rain", "tool_call_id": "c1"},
                {"role": "assistant", "content": "It rains. **STOP**", "weight": 1},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "weather", "parameters": {"type": "object"}},
                }
            ],
        },
    ]
    r = validate_file(write(tmp_path / "t.jsonl", rows), today=TODAY)
    assert r.ok, r.errors


def test_too_few_examples_is_an_error(tmp_path: Path) -> None:
    r = validate_file(write(tmp_path / "t.jsonl", good(9)), today=TODAY)
    assert r.error_counts == {"too_few_examples": 1}
    assert "at least 10" in r.errors[0].message


def test_distributions_equal_numpy_on_the_same_counts(tmp_path: Path) -> None:
    rows = good(57)
    r = validate_file(write(tmp_path / "t.jsonl", rows), model="gpt-4o-mini", today=TODAY)
    enc = tiktoken.get_encoding("o200k_base")
    totals = [
        3
        + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in e["messages"])
        for e in rows
    ]
    assistant = [len(enc.encode(e["messages"][-1]["content"])) for e in rows]
    for dist, values in (
        (r.tokens_per_example, totals),
        (r.assistant_tokens_per_example, assistant),
    ):
        assert dist is not None
        a = np.array(values)
        assert (dist.min, dist.max) == (a.min(), a.max())
        assert dist.mean == pytest.approx(a.mean())
        assert dist.median == pytest.approx(np.median(a))
        assert dist.p10 == pytest.approx(np.quantile(a, 0.1))
        assert dist.p90 == pytest.approx(np.quantile(a, 0.9))
    assert r.total_tokens == sum(totals)
    assert r.messages_per_example is not None and r.messages_per_example.max == 3


def test_over_limit_examples_are_warned_and_billing_is_capped(tmp_path: Path) -> None:
    long_answer = "word " * 17000
    rows = good(10) + [ex("Long one?", long_answer)]
    r = validate_file(write(tmp_path / "t.jsonl", rows), model="gpt-3.5-turbo", today=TODAY)
    assert r.examples_over_limit == 1
    assert [w.line for w in r.warnings if w.kind == "over_token_limit"] == [11]
    assert r.cost.token_limit == 16385
    assert r.cost.billed_tokens_per_epoch == r.total_tokens - r.tokens_per_example.max + 16385  # type: ignore[union-attr]
    assert any("shut down" in w for w in r.model_warnings)


def test_duplicates_and_stop_marker(tmp_path: Path) -> None:
    rows = good(12) + [
        good(1)[0],
        ex("question number 0 about plans", "Other answer. **STOP**"),
        ex("New?", "No marker here."),
    ]
    r = validate_file(write(tmp_path / "t.jsonl", rows), today=TODAY)
    assert r.ok
    w = {(x.kind, x.line) for x in r.warnings}
    assert ("duplicate_example", 13) in w
    assert ("duplicate_question", 14) in w
    assert ("inconsistent_stop_marker", 15) in w
    assert r.stop_marker == "**STOP**"


def test_given_stop_marker_is_checked(tmp_path: Path) -> None:
    rows = good(10) + [ex("Other?", "Ends with END")]
    r = validate_file(write(tmp_path / "t.jsonl", rows), stop="**STOP**", today=TODAY)
    assert [x.line for x in r.warnings if x.kind == "inconsistent_stop_marker"] == [11]


def test_train_validation_overlap(tmp_path: Path) -> None:
    train = write(tmp_path / "t.jsonl", good(10))
    val = write(tmp_path / "v.jsonl", [ex("Brand new question?"), good(3)[2]])
    r = validate_file(train, validation_path=val, today=TODAY)
    overlap = [x for x in r.warnings if x.kind == "train_validation_overlap"]
    assert [(x.file, x.line) for x in overlap] == [(str(val), 2)]
    assert "line 3" in overlap[0].message
    assert r.validation_examples == 2 and r.validation_tokens and r.validation_tokens > 0


def test_bom_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", good(10))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    r = validate_file(path, today=TODAY)
    assert ("bom", 1) in kinds_at(r)


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (30000, 1)],
)
def test_default_epochs(n: int, epochs: int) -> None:
    assert default_epochs(n) == epochs


def test_given_epochs_and_bad_epochs(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", good(10))
    r = validate_file(path, n_epochs=2, today=TODAY)
    assert (r.cost.n_epochs, r.cost.epochs_source) == (2, "given")
    with pytest.raises(UsageError, match="n_epochs"):
        validate_file(path, n_epochs=0)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        validate_file(tmp_path / "nope.jsonl")
    with pytest.raises(InputFileError, match="directory"):
        validate_file(tmp_path)


def test_renderings_name_percentiles_truthfully(tmp_path: Path) -> None:
    r = validate_file(write(tmp_path / "t.jsonl", good(12)), today=TODAY)
    text, md = r.to_text(), r.to_markdown()
    for out in (text, md):
        assert "p10" in out and "p90" in out and "p5" not in out
        assert "token limit applied: 65,536" in out
        assert "estimated training cost: $" in out
    assert "| figure | min | max | mean | median | p10 | p90 |" in md
    data = json.loads(r.to_json())
    assert data["ok"] is True and data["examples"] == 12


def test_process_pool_gives_the_same_report(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", good(300))
    a = validate_file(path, processes=0, today=TODAY)
    b = validate_file(path, processes=2, today=TODAY)
    assert a.model_dump() == b.model_dump()


def test_validate_examples_in_memory() -> None:
    r = validate_examples(good(11), model="gpt-4.1", today=TODAY)
    assert r.ok and r.examples == 11 and r.encoding == "o200k_base"


def test_an_ordinary_common_last_word_is_not_a_stop_marker(tmp_path: Path) -> None:
    rows = [ex(f"Question {i} about opening hours?", "We are open today.") for i in range(12)]
    r = validate_file(write(tmp_path / "t.jsonl", rows), today=TODAY)
    assert r.stop_marker is None
    rows = [ex(f"Question {i} about opening hours?", "We are open today. END") for i in range(12)]
    assert validate_file(write(tmp_path / "t2.jsonl", rows), today=TODAY).stop_marker == "END"


def test_line_errors_come_before_file_level_errors(tmp_path: Path) -> None:
    from finetune_qa import ValidationFailed

    rows: list[Any] = good(8) + ["{broken"]
    r = validate_file(write(tmp_path / "t.jsonl", rows), today=TODAY)
    assert [(e.kind, e.line) for e in r.errors] == [("invalid_json", 9), ("too_few_examples", None)]
    assert "First: " in str(ValidationFailed(r)) and ":9: invalid_json" in str(ValidationFailed(r))


def test_parallel_validation_equals_sequential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune_qa.validation import _parallel as validation_mod

    monkeypatch.setattr(validation_mod, "_PROCESS_THRESHOLD_BYTES", 1)
    monkeypatch.setattr(validation_mod, "_RANGE_BYTES", 700)  # many small ranges
    rows: list[Any] = []
    for i in range(300):
        rows.append(good(i % 40 + 1)[-1])  # duplicates across ranges
        if i % 37 == 0:
            rows.append("{broken")
        if i % 53 == 0:
            rows.append(ex(f"Other {i}?", "No marker here."))
        if i % 61 == 0:
            rows.append(ex(f"Long {i}?", "word " * 17000))
        if i % 29 == 0:
            rows.append(ex(f"question number {i % 40} about plans", "Different answer. **STOP**"))
    path = write(tmp_path / "t.jsonl", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    val = write(tmp_path / "v.jsonl", [good(3)[2], ex("Fresh one?")])
    for stop in (None, "**STOP**"):
        seq = validate_file(
            path, validation_path=val, stop=stop, processes=0, today=TODAY, model="gpt-3.5-turbo"
        )
        par = validate_file(
            path, validation_path=val, stop=stop, processes=2, today=TODAY, model="gpt-3.5-turbo"
        )
        assert par.model_dump() == seq.model_dump()
        kinds = set(seq.error_counts) | set(seq.warning_counts)
        assert {
            "bom",
            "invalid_json",
            "duplicate_example",
            "duplicate_question",
            "over_token_limit",
            "inconsistent_stop_marker",
            "train_validation_overlap",
        } <= kinds


# ------------------------------------------------------------------ Together AI's rules

LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


def together_kinds(examples: list[dict[str, Any]], **kwargs: Any) -> dict[str, list[int | None]]:
    report = validate_examples(examples, model=LLAMA, today=TODAY, **kwargs)
    out: dict[str, list[int | None]] = {}
    for issue in report.errors:
        out.setdefault(issue.kind, []).append(issue.line)
    return out


def msgs(*roles: str) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": f"{r} text"} for r in roles]}


def test_together_rules_apply_from_the_models_catalogue_provider() -> None:
    report = validate_examples(good(3), model=LLAMA, today=TODAY)
    assert report.ok and report.examples == 3  # Together takes files of any size
    assert report.tokens_exact is False and "ESTIMATE" in report.counting
    assert "own tokenizer" in report.counting
    assert report.cost.n_epochs == 1 and report.cost.epochs_source == "provider default"
    assert report.cost.price_per_1m == 0.48
    assert "tokens estimated with tiktoken o200k_base" in report.to_text()
    exact = validate_examples(good(12), model="gpt-4o-mini", today=TODAY)
    assert exact.tokens_exact is True and "exact tiktoken" in exact.counting


@pytest.mark.parametrize(
    ("example", "where"),
    [
        (msgs("assistant", "user", "assistant"), "messages[0] is 'assistant' where 'user'"),
        (msgs("system", "user", "user", "assistant"), "messages[2] is 'user' where 'assistant'"),
        (msgs("user", "assistant", "system", "user", "assistant"), "messages[2] is a system"),
        (msgs("user", "assistant", "assistant"), "messages[2] is 'assistant' where 'user'"),
    ],
)
def test_together_roles_must_alternate(example: dict[str, Any], where: str) -> None:
    report = validate_examples([good(1)[0], example], model=LLAMA, today=TODAY)
    [issue] = [i for i in report.errors if i.kind == "together_roles_not_alternating"]
    assert issue.line == 2 and where in issue.message and "alternate" not in issue.kind
    assert report.examples == 1
    # the same line is fine for OpenAI, which has no such rule
    assert validate_examples([example] * 10, model="gpt-4o-mini", today=TODAY).ok


def test_together_tool_results_follow_tool_calls() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ok = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    assert together_kinds([ok]) == {}
    stray = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "c1", "content": "y"},
            {"role": "assistant", "content": "z"},
        ]
    }
    assert "together_roles_not_alternating" in together_kinds([ok, stray])


def test_together_weights_are_0_or_1_on_any_message() -> None:
    masked = {
        "messages": [
            {"role": "user", "content": "Q", "weight": 0},
            {"role": "assistant", "content": "A", "weight": 1},
        ]
    }
    assert together_kinds([masked]) == {}  # Together's docs mask user turns with weight 0
    assert "invalid_weight" in {
        i.kind for i in validate_examples([masked], model="gpt-4o-mini").errors
    }
    bad = {
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A", "weight": 0.5},
        ]
    }
    kinds = together_kinds([masked, bad])
    assert kinds == {"together_invalid_weight": [2]}


def test_together_unsupported_keys_and_roles() -> None:
    parallel = {**msgs("user", "assistant"), "parallel_tool_calls": False}
    legacy = {
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "function", "name": "f", "content": "x"},
            {"role": "assistant", "content": "A"},
        ]
    }
    kinds = together_kinds([parallel, legacy])
    assert kinds["together_unsupported_key"] == [1] and kinds["together_unsupported_role"] == [2]


def pref(**over: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "input": {"messages": [{"role": "user", "content": "What is Lumen?"}]},
        "preferred_output": [{"role": "assistant", "content": "A note-taking app."}],
        "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
    }
    line.update(over)
    return line


def test_together_preference_format() -> None:
    report = validate_examples([pref(), pref()], model=LLAMA, today=TODAY)
    assert report.ok and report.examples == 2 and report.total_tokens > 0
    assert report.total_assistant_tokens > 0  # the preferred answer is counted
    kinds = together_kinds(
        [
            pref(),
            pref(
                preferred_output=[
                    {"role": "assistant", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ]
            ),
            pref(non_preferred_output=[{"role": "user", "content": "a"}]),
            pref(input={"prompt": "x"}),
            pref(input={"messages": [{"role": "narrator", "content": "x"}]}),
            pref(extra=1),
            {k: v for k, v in pref().items() if k != "non_preferred_output"},
        ]
    )
    assert kinds == {
        "together_preference_output": [2, 3, 7],
        "together_preference_input": [4, 5],
        "together_unsupported_key": [6],
    }


def test_together_rules_in_a_file_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    examples = [*good(2), msgs("user", "user", "assistant"), pref(), pref(preferred_output=[])]
    lines = [json.dumps(e) for e in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = validate_file(path, model="gpt-4o-mini", provider="together", today=TODAY)
    rendered = [i.render() for i in report.errors]
    assert rendered == [
        f"{path}:3: together_roles_not_alternating: messages[1] is 'user' where 'assistant' should come; "
        "Together AI takes an optional system message first, then user and assistant messages in "
        "turn (tool results right after the assistant's tool calls)",
        f"{path}:5: together_preference_output: preferred_output is 0 message(s), not one "
        "assistant message with text; preferred_output and non_preferred_output each hold exactly "
        "one assistant message with text content",
    ]
    assert report.examples == 3 and report.tokens_exact  # gpt-4o-mini's counts stay exact
