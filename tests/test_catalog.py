from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from finetune_qa import ModelCatalog, ModelInfo, UnknownModelError, base_model_name, get_model_info


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "gpt-4o-mini-2024-07-18"),
        ("ft:gpt-4.1-2025-04-14:acme:support:xyz:ckpt-step-88", "gpt-4.1-2025-04-14"),
        ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"),
    ],
)
def test_lookup_by_name_alias_and_fine_tuned_name(name: str, expected: str) -> None:
    assert get_model_info(name).name == expected


def test_base_model_name() -> None:
    assert base_model_name("ft:gpt-4o-mini-2024-07-18:acme::abc") == "gpt-4o-mini-2024-07-18"
    assert base_model_name("gpt-4o") == "gpt-4o"


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model_info("gpt-4o-mimi")
    assert "gpt-4o-mini" in info.value.suggestions
    assert "ModelInfo" in str(info.value)  # says how to describe a model explicitly
    assert isinstance(info.value, KeyError)


def test_explicit_override_is_used_as_is() -> None:
    custom = ModelInfo(name="my-model", encoding="cl100k_base", max_tokens_per_example=8192)
    assert get_model_info(custom) is custom


def test_catalogue_figures_match_the_context_notes() -> None:
    mini = get_model_info("gpt-4o-mini")
    assert (mini.encoding, mini.max_tokens_per_example, mini.training_price_per_1m) == (
        "o200k_base",
        65536,
        3.0,
    )
    assert mini.fine_tuning_ends == dt.date(2027, 1, 6)
    assert mini.shutdown_date == dt.date(2027, 1, 14)
    assert get_model_info("gpt-4.1-nano").max_tokens_per_example == 32768
    assert get_model_info("gpt-3.5-turbo").max_tokens_per_example == 16385


def test_retirement_warnings() -> None:
    mini = get_model_info("gpt-4o-mini")
    assert mini.warnings_on(dt.date(2026, 1, 1)) == []
    soon = mini.warnings_on(dt.date(2026, 11, 25))
    assert any("2027-01-06" in w and "42 days" in w for w in soon)
    assert any("2027-01-14" in w for w in soon)
    gone = get_model_info("gpt-3.5-turbo").warnings_on(dt.date(2026, 11, 25))
    assert len(gone) == 1 and "shut down" in gone[0]


def test_catalogue_from_json(tmp_path: Path) -> None:
    path = tmp_path / "cat.json"
    path.write_text(
        json.dumps(
            {
                "as_of": "2026-01-01",
                "models": [
                    {
                        "name": "m",
                        "encoding": "o200k_base",
                        "max_tokens_per_example": 100,
                        "aliases": ["mm"],
                    }
                ],
            }
        )
    )
    cat = ModelCatalog.from_json(path)
    assert cat.get("mm").name == "m" and "m" in cat and len(cat) == 1
    assert cat.as_of == dt.date(2026, 1, 1)


def test_together_models_are_priced_and_marked_inexact() -> None:
    from finetune_qa.catalog import default_catalog

    together = {m.name: m for m in default_catalog() if m.provider == "together"}
    assert {
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen3-8B",
        "mistralai/Mistral-7B-Instruct-v0.2",
    } <= set(together)
    prices = {name: m.training_price_per_1m for name, m in together.items()}
    assert prices["meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"] == 0.48  # up to 16B
    assert prices["meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"] == 2.9  # 70B-100B
    for m in together.values():
        assert m.tokenizer_exact is False and m.encoding == "o200k_base"
        assert m.methods == ("supervised", "dpo")
    assert all(m.tokenizer_exact for m in default_catalog() if m.provider == "openai")
    raw = json.loads((Path(__file__).parent.parent / "finetune_qa" / "catalog.json").read_text())
    assert "2026-11-25" in raw["sources"]["together_prices"]
