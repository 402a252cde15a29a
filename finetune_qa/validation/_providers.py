"""Provider rules: what a provider accepts where it differs from OpenAI, found by name.

A provider whose training files follow other rules (Together AI: role order, weights, a
preference format) describes them as :class:`ProviderRules` and registers them with
:func:`register_provider_rules` from its own package, so validation knows no provider. A
provider with no rules of its own is checked by OpenAI's (:data:`OPENAI_RULES`).

The built-in providers' rules are imported on first use (:data:`_BUILT_IN`): importing
validation does not import a backend, and the backend's package need not be imported first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finetune_qa.config import MIN_TRAINING_EXAMPLES
from finetune_qa.validation._rules import CheckedExample, check_example

Check = Callable[[Any, list[tuple[str, str]]], CheckedExample | None]
"""Check one parsed line: append ``(kind, message)`` errors, return the counting plan if valid."""


@dataclass(frozen=True)
class ProviderRules:
    """A provider's format rules, as validation applies them.

    Attributes:
        name: the provider (``Validator(provider=...)``, a catalogue entry's provider).
        check: checks one parsed line (start from :func:`check_example`).
        min_examples: the fewest valid training examples the provider takes.
        default_epochs: the epochs the provider trains by default, priced as "provider
            default"; None for OpenAI's heuristic (:func:`default_epochs`).
        hints: what to do about each error kind the rules add (``kind -> hint``).
    """

    name: str
    check: Check
    min_examples: int = MIN_TRAINING_EXAMPLES
    default_epochs: int | None = None
    hints: Mapping[str, str] = field(default_factory=dict)


def _openai_check(obj: Any, errors: list[tuple[str, str]]) -> CheckedExample | None:
    return check_example(obj, errors)


OPENAI_RULES = ProviderRules(name="openai", check=_openai_check)
"""OpenAI's rules: the ones every provider without rules of its own is checked by."""

_RULES: dict[str, ProviderRules] = {"openai": OPENAI_RULES}
_BUILT_IN: dict[str, str] = {"together": "finetune_qa.backends.together._rules"}


def register_provider_rules(rules: ProviderRules) -> None:
    """Make ``rules`` the ones :func:`provider_rules` returns for ``rules.name``."""
    _RULES[rules.name] = rules


def provider_rules(provider: str) -> ProviderRules:
    """The rules registered for ``provider``; OpenAI's when it has none of its own."""
    rules = _RULES.get(provider)
    if rules is None and provider in _BUILT_IN:
        importlib.import_module(_BUILT_IN[provider])  # the module registers its rules
        rules = _RULES.get(provider)
    return rules or OPENAI_RULES
