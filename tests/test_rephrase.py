"""Rephrasings from a writer model: the strict parser, the offline rules, the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_qa import ChatModel, OfflineBackend, Rephraser, parse_rephrasings
from finetune_qa import exceptions as exc
from finetune_qa._text import question_key
from finetune_qa.backends._fake import _fake_rephrase
from finetune_qa.rephrase import REPHRASE_PROMPT, REPHRASE_TASK_PHRASE


def _chat_requests(backend: OfflineBackend) -> int:
    return sum(1 for r in backend.fake.requests if r.path.endswith("/chat/completions"))


def test_the_offline_writer_changes_words_and_question_forms() -> None:
    assert _fake_rephrase.REPHRASE_TASK_PHRASE == REPHRASE_TASK_PHRASE
    assert REPHRASE_TASK_PHRASE in REPHRASE_PROMPT
    writer = ChatModel.offline("gpt-4o-mini")
    got = Rephraser(writer, k=3, cache=False).rephrase("Who founded Lumenfield?")
    assert got == [
        "Who started Lumenfield?",
        "Which people set up Lumenfield?",
        "Lumenfield was founded by whom?",
    ]
    # other forms: the price, the place, the head count; names and numbers kept
    for question, word in (
        ("How much does the 2-day workshop cost?", "price"),
        ("Where is Acme based?", "located"),
        ("How many people work at Acme?", "employees"),
    ):
        texts = Rephraser(writer, k=4, cache=False).rephrase(question)
        assert len(texts) == 4 and len({question_key(t) for t in texts}) == 4
        assert any(word in t for t in texts), texts
        assert all(("Acme" in t) or ("2-day" in t) for t in texts), texts
        assert question_key(question) not in {question_key(t) for t in texts}


def test_the_parser_is_strict() -> None:
    reply = (
        "Sure! Here are some:\n"
        "1. Who started Acme?\n"
        "2. who started acme\n"  # the same as item 1
        "3) Who founded Acme?\n"  # the question itself
        "4. Sorry, I cannot help with that.\n"
        "5. Acme?\n"  # one word
        "- Which people set up Acme?\n"  # not numbered
        "(6) Acme was founded by whom?\n"
    )
    assert parse_rephrasings(reply, "Who founded Acme?") == [
        "Who started Acme?",
        "Acme was founded by whom?",
    ]
    assert parse_rephrasings(reply, "Who founded Acme?", k=1) == ["Who started Acme?"]
    assert parse_rephrasings("I can't do that.", "Who founded Acme?") == []


def test_a_rerun_asks_nothing_and_the_key_holds_model_k_and_prompt(tmp_path: Path) -> None:
    cache = tmp_path / "rephrasings.jsonl"
    backend = OfflineBackend()
    writer = ChatModel("gpt-4o-mini", backend=backend)
    questions = ["Who founded Acme?", "Where is Acme based?", "who founded acme"]
    first = Rephraser(writer, k=2, cache=cache)
    got = first.rephrase_many(questions)
    assert got[0] == got[2] and all(len(x) == 2 for x in got)
    assert (first.stats.requests, first.stats.cache_hits) == (2, 0)
    assert _chat_requests(backend) == 2 and cache.exists()
    again = Rephraser(writer, k=2, cache=cache)
    assert again.rephrase_many(questions) == got
    assert (again.stats.requests, again.stats.cache_hits) == (0, 2)
    assert _chat_requests(backend) == 2  # the second run made zero requests
    # another k, another prompt: other keys, asked again
    Rephraser(writer, k=3, cache=cache).rephrase("Who founded Acme?")
    Rephraser(writer, k=2, cache=cache, prompt=REPHRASE_PROMPT + " Be brief.").rephrase(
        "Who founded Acme?"
    )
    assert _chat_requests(backend) == 4
    # a damaged line costs one request, nothing more
    cache.write_text("not json\n" + cache.read_text())
    assert Rephraser(writer, k=2, cache=cache).rephrase("Where is Acme based?") == got[1]
    assert _chat_requests(backend) == 4


def test_failures_are_counted_not_raised() -> None:
    backend = OfflineBackend(max_retries=0)
    writer = ChatModel("no-such-model", backend=backend, retries=0)
    r = Rephraser(writer, k=2, cache=False)
    assert r.rephrase_many(["Who founded Acme?"]) == [[]]
    assert r.stats.failed == 1 and len(r.errors) == 1 and "Who founded Acme?" in r.errors[0]


def test_bad_arguments() -> None:
    writer = ChatModel.offline("gpt-4o-mini")
    for k in (0, 21, True, 2.0):
        with pytest.raises(exc.UsageError, match="k must be"):
            Rephraser(writer, k=k, cache=False)  # type: ignore[arg-type]
    with pytest.raises(exc.UsageError, match="ChatModel"):
        Rephraser("gpt-4o-mini", cache=False)  # type: ignore[arg-type]
    with pytest.raises(exc.UsageError, match="not one string"):
        Rephraser(writer, cache=False).rephrase_many("Who founded Acme?")
