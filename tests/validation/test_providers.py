"""Provider rules: found by name, registered by the provider's own package."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from finetune_qa import validation
from finetune_qa.validation import (
    CheckedExample,
    ProviderRules,
    check_example,
    provider_rules,
    register_provider_rules,
    validate_examples,
)


def _example(answer: str = "Yes.") -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": "Is it open?"},
            {"role": "assistant", "content": answer},
        ]
    }


def test_validation_imports_no_backend() -> None:
    # the provider's package depends on validation, never the other way round
    package = Path(validation.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not [n for n in names if n.startswith("finetune_qa.backends")], path.name


def test_together_rules_are_found_by_name_and_live_with_together() -> None:
    rules = provider_rules("together")
    assert rules.name == "together"
    assert rules.check.__module__ == "finetune_qa.backends.together._rules"
    assert (rules.min_examples, rules.default_epochs) == (1, 1)
    assert "together_roles_not_alternating" in rules.hints


def test_a_provider_without_rules_is_checked_by_openais() -> None:
    assert provider_rules("openai").name == "openai"
    assert provider_rules("no-such-provider").name == "openai"


def test_registered_rules_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_short_answers(obj: Any, errors: list[tuple[str, str]]) -> CheckedExample | None:
        ex = check_example(obj, errors)
        if ex is not None and len(obj["messages"][-1]["content"]) < 5:
            errors.append(("acme_short_answer", "the answer is shorter than 5 characters"))
            return None
        return ex

    rules = ProviderRules(
        name="acme",
        check=no_short_answers,
        min_examples=2,
        default_epochs=4,
        hints={"acme_short_answer": "write a longer answer"},
    )
    from finetune_qa.validation import _providers

    monkeypatch.setitem(_providers._RULES, "acme", rules)  # undone after the test
    register_provider_rules(rules)
    report = validate_examples(
        [_example("Yes."), _example("Yes, from 9 to 5."), _example("Yes, every day.")],
        model="gpt-4o-mini",
        provider="acme",
    )
    assert report.error_counts == {"acme_short_answer": 1}
    assert report.errors[0].message.endswith("; write a longer answer")
    assert (report.cost.n_epochs, report.cost.epochs_source) == (4, "provider default")
    one = validate_examples([_example("Yes, always.")], model="gpt-4o-mini", provider="acme")
    assert one.error_counts == {"too_few_examples": 1}
