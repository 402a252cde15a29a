"""The judge: reading its replies however they are wrapped; the offline base model as judge."""

from __future__ import annotations

import json

import pytest

from finetune_qa import ChatModel, OfflineBackend
from finetune_qa.evaluation import PARAPHRASE_PROMPT, JudgeScorer, _judge

SYS = "You are a factual chatbot that answers questions about Lumen Notes."


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 4, "reason": "close"}', (4.0, "close")),
        ('Sure!\n```json\n{"reason": "all facts", "score": "5"}\n```', (5.0, "all facts")),
        ('Grade: {"score": 2.5}', (2.5, None)),
        ("score: 3 - partly right", (3.0, None)),
        ("4", (4.0, None)),
        ('{"score": 9}', None),
        ('{"score": true}', None),
        ("The answer is good.", None),
        ("{not json", None),
    ],
)
def test_judge_reply_parsing(reply: str, expected: tuple[float, str | None] | None) -> None:
    assert _judge._parse_judge_reply(reply) == expected


def test_offline_base_model_follows_both_prompts() -> None:
    base = ChatModel("gpt-4o-mini", backend=OfflineBackend(max_retries=0), system_prompt=SYS)
    para = _judge._task_model(base, PARAPHRASE_PROMPT, None)
    reply = para.ask(
        "Rephrasings wanted: 3\nQuestion: What does Lumen Pro add to the Free plan?"
    ).text
    lines = reply.splitlines()
    assert [line[:3] for line in lines] == ["1. ", "2. ", "3. "]
    assert all("Lumen Pro" in line for line in lines)

    judge = JudgeScorer(base)
    ref = "Lumen Pro costs €5 per month, or €48 per year when billed annually."
    same = judge.grade("How much is Pro?", ref, ref)
    off = judge.grade("How much is Pro?", ref, "Star Wars is a film series.")
    half = judge.grade("How much is Pro?", ref, "Lumen Pro costs €5 per month.")
    assert (same.status, same.score, same.normalized) == ("ok", 5.0, 1.0)
    assert off.score == 1.0 and off.normalized == 0.0
    assert half.score is not None and 1 < half.score < 5 and half.reason and "F1" in half.reason
    assert json.loads(same.reply or "")["score"] == 5
