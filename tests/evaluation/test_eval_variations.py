"""Rephrasings: what counts as one in a model's reply."""

from __future__ import annotations

from finetune_qa.evaluation import _variations


def test_paraphrase_replies_without_numbering_keep_only_questions() -> None:
    q = "How much does Lumen Pro cost?"
    assert (
        _variations._parse_paraphrases("I am sorry, but I cannot rephrase that question.", q) == []
    )
    reply = "Sure! Here you go.\nWhat is the price of Lumen Pro?\nIs Lumen Pro expensive?\nHope this helps!"
    assert _variations._parse_paraphrases(reply, q) == [
        "What is the price of Lumen Pro?",
        "Is Lumen Pro expensive?",
    ]
    assert _variations._parse_paraphrases(
        "1. What is the price of Lumen Pro?\n2. Sorry, I can't help with that.", q
    ) == ["What is the price of Lumen Pro?"]
    # numbered rephrasings need no question mark ("I would like to know ...")
    assert _variations._parse_paraphrases("1. I would like to know the price of Lumen Pro.", q) == [
        "I would like to know the price of Lumen Pro."
    ]
