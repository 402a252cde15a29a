from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from finetune_qa import Message, QAPair, TrainingExample, UsageError
from finetune_qa.data import Provenance


def test_from_qa_builds_the_seed_example() -> None:
    pair = QAPair(question="What is Acme?", answer="A maker of anvils.")
    ex = TrainingExample.from_qa(pair, system_prompt="You answer questions about Acme.")
    assert ex.to_dict() == {
        "messages": [
            {"role": "system", "content": "You answer questions about Acme."},
            {"role": "user", "content": "What is Acme?"},
            {"role": "assistant", "content": "A maker of anvils. **STOP**"},
        ]
    }
    assert ex.question == "What is Acme?"
    assert ex.answer == "A maker of anvils. **STOP**"


def test_from_qa_without_system_prompt_or_stop() -> None:
    ex = TrainingExample.from_qa(QAPair(question="Q?", answer="A."), system_prompt=None, stop=None)
    assert [m.role for m in ex.messages] == ["user", "assistant"]
    assert ex.messages[-1].content == "A."


@pytest.mark.parametrize(
    "line",
    [
        '{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Héllo 🚀 \\"x\\""}]}',
        '{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Hi","name":"bob"},'
        '{"role":"assistant","content":"No","weight":0},{"role":"user","content":"Again"},'
        '{"role":"assistant","content":"Yes","weight":1}]}',
        '{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":'
        '[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Oslo\\"}"}}]},'
        '{"role":"tool","content":"rain","tool_call_id":"call_1"},{"role":"assistant","content":"Rain."}],'
        '"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],'
        '"parallel_tool_calls":false}',
    ],
)
def test_jsonl_round_trip_is_byte_stable(line: str) -> None:
    ex = TrainingExample.from_json(line)
    assert ex.to_json() == line
    assert TrainingExample.from_json(ex.to_json()).to_json() == line
    assert json.loads(ex.to_json()) == json.loads(line)


def test_unicode_is_written_unescaped() -> None:
    ex = TrainingExample.from_qa(QAPair(question="Où est Zürich?", answer="En Suisse 🇨🇭."))
    assert "Zürich" in ex.to_json() and "\\u" not in ex.to_json()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"role": "user", "content": "x", "weight": 1}, "only allowed on assistant"),
        ({"role": "assistant", "content": "x", "weight": 2}, "weight"),
        ({"role": "assistant", "content": "x", "weight": True}, "weight"),
        ({"role": "narrator", "content": "x"}, "role"),
        ({"role": "user"}, "needs 'content'"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "c"}, "only allowed on tool"),
        ({"role": "user", "content": "x", "colour": "red"}, "Extra inputs"),
        ({"role": "user", "content": 3}, "string"),
    ],
)
def test_message_is_strict(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Message.model_validate(kwargs)


def test_example_needs_an_assistant_message() -> None:
    with pytest.raises(ValidationError, match="assistant"):
        TrainingExample(messages=[Message(role="user", content="hi")])


def test_from_json_errors_are_usage_errors_with_a_reason() -> None:
    with pytest.raises(UsageError, match="not valid JSON"):
        TrainingExample.from_json("{nope")
    with pytest.raises(UsageError, match=r"messages\.0\.role"):
        TrainingExample.from_json('{"messages":[{"role":"bot","content":"x"}]}')


def test_qapair_rejects_blank_text_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="white space"):
        QAPair(question="   ", answer="a")
    with pytest.raises(ValidationError):
        QAPair.model_validate({"question": "q", "answer": "a", "extra": 1})
    with pytest.raises(ValidationError):
        QAPair.model_validate({"question": 1, "answer": "a"})


def test_provenance_render() -> None:
    assert Provenance(file="qa.csv", line=4, row=2, item=10).render() == "qa.csv:4 (row 2, item 10)"
    assert Provenance().render() == "<input>"
