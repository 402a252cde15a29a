"""Together AI's format rules: what Together rejects in a training file before upload.

Registered with validation (:func:`finetune_qa.validation.register_provider_rules`) when
this module is imported; validation imports it the first time it checks a file for
Together. The common checks are OpenAI's (:func:`finetune_qa.validation.check_example`)
with Together's rules where they differ: an optional system message first, then user and
assistant messages in turn (tool results right after the tool calls); weight 0 or 1 on any
message; no OpenAI-only keys; and Together's preference (DPO) format.
"""

from __future__ import annotations

from typing import Any

from finetune_qa._text import is_int
from finetune_qa.validation import (
    CheckedExample,
    ProviderRules,
    check_example,
    register_provider_rules,
)

__all__ = ["TOGETHER_MIN_EXAMPLES", "TOGETHER_RULES"]

TOGETHER_MIN_EXAMPLES = 1
"""Together AI's smallest training file (its SDK's ``MIN_SAMPLES``)."""
_PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})

_HINTS: dict[str, str] = {
    "together_roles_not_alternating": (
        "Together AI takes an optional system message first, then user and assistant "
        "messages in turn (tool results right after the assistant's tool calls)"
    ),
    "together_invalid_weight": "Together AI takes weight 0 or 1 (0 masks the message)",
    "together_unsupported_key": (
        "Together AI takes 'messages' and 'tools' (conversational) or 'input', "
        "'preferred_output' and 'non_preferred_output' (preference) on a line"
    ),
    "together_unsupported_role": "Together AI roles are system, user, assistant and tool",
    "together_preference_input": (
        'input is {"messages": [...]} with at least one message (and optional "tools")'
    ),
    "together_preference_output": (
        "preferred_output and non_preferred_output each hold exactly one assistant message "
        "with text content"
    ),
}


def _together_roles(messages: list[Any], errors: list[tuple[str, str]]) -> None:
    """Optional system first, then user/assistant in turn; tool results follow tool calls."""
    expect = "user"  # then "assistant", "tool" (after tool calls) or "tool_or_assistant"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return  # reported by the format checks
        role = m.get("role")
        where = f"messages[{i}]"
        if role == "function" or "function_call" in m:
            errors.append(
                ("together_unsupported_role", f"{where}: OpenAI's legacy function calling")
            )
            return
        if role == "system":
            if i == 0:
                continue
            errors.append(
                ("together_roles_not_alternating", f"{where} is a system message after the start")
            )
            return
        if role == "tool" and expect in ("tool", "tool_or_assistant"):
            expect = "tool_or_assistant"
            continue
        want = "assistant" if expect == "tool_or_assistant" else expect
        if role != want:
            errors.append(
                (
                    "together_roles_not_alternating",
                    f"{where} is {role!r} where {want!r} should come",
                )
            )
            return
        expect = "assistant" if role == "user" else "tool" if m.get("tool_calls") else "user"


def _together_weights(messages: list[Any], errors: list[tuple[str, str]]) -> None:
    for i, m in enumerate(messages):
        if (
            isinstance(m, dict)
            and "weight" in m
            and not (is_int(m["weight"]) and m["weight"] in (0, 1))
        ):
            errors.append(("together_invalid_weight", f"messages[{i}]: weight is {m['weight']!r}"))


def _check_together_preference(
    obj: dict[str, Any], errors: list[tuple[str, str]]
) -> CheckedExample | None:
    """Together's preference (DPO) line: input.messages, preferred_output, non_preferred_output."""
    n_err = len(errors)
    extra = sorted(set(obj) - _PREFERENCE_KEYS)
    if extra:
        errors.append(("together_unsupported_key", f"unknown key(s) {extra} on a preference line"))
    inp = obj.get("input")
    messages: list[Any] = []
    if (
        not isinstance(inp, dict)
        or not isinstance(inp.get("messages"), list)
        or not inp["messages"]
    ):
        errors.append(("together_preference_input", "no non-empty 'input.messages' list"))
    else:
        messages = inp["messages"]
        bad_keys = sorted(set(inp) - {"messages", "tools"})
        if bad_keys:
            errors.append(("together_preference_input", f"input has unknown key(s) {bad_keys}"))
        for i, m in enumerate(messages):
            where = f"input.messages[{i}]"
            if not isinstance(m, dict) or m.get("role") not in (
                "system",
                "user",
                "assistant",
                "tool",
            ):
                role = m.get("role") if isinstance(m, dict) else None
                errors.append(("together_preference_input", f"{where} has role {role!r}"))
            elif not (isinstance(m.get("content"), str) and m["content"].strip()) and not m.get(
                "tool_calls"
            ):
                errors.append(("together_preference_input", f"{where} has no text content"))
    outputs: list[Any] = []
    for key in ("preferred_output", "non_preferred_output"):
        out = obj.get(key)
        ok = (
            isinstance(out, list)
            and len(out) == 1
            and isinstance(out[0], dict)
            and out[0].get("role") == "assistant"
            and isinstance(out[0].get("content"), str)
            and bool(out[0]["content"].strip())
        )
        if not ok:
            what = (
                "missing"
                if out is None
                else f"{len(out)} message(s)"
                if isinstance(out, list)
                else type(out).__name__
            )
            errors.append(
                (
                    "together_preference_output",
                    f"{key} is {what}, not one assistant message with text",
                )
            )
        elif isinstance(out, list):
            outputs.append(out[0])
    if len(errors) != n_err:
        return None
    # count the prompt and the preferred answer, as a conversational example
    scratch: list[tuple[str, str]] = []
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
    ex = check_example(
        {"messages": [*plain, {"role": "assistant", "content": outputs[0]["content"]}]},
        scratch,
        weights=False,
    )
    for _kind, msg in scratch:
        errors.append(("together_preference_input", msg))
    return ex if not scratch else None


def _check_together(obj: Any, errors: list[tuple[str, str]]) -> CheckedExample | None:
    """The common checks, with Together AI's rules instead of OpenAI's where they differ."""
    if isinstance(obj, dict) and _PREFERENCE_KEYS & obj.keys():
        return _check_together_preference(obj, errors)
    n_err = len(errors)
    ex = check_example(obj, errors, weights=False)
    if isinstance(obj, dict):
        for key in ("parallel_tool_calls", "functions"):
            if key in obj:
                errors.append(("together_unsupported_key", f"{key!r} is OpenAI-only"))
        messages = obj.get("messages")
        if isinstance(messages, list):
            _together_weights(messages, errors)
            _together_roles(messages, errors)
    return ex if len(errors) == n_err else None


TOGETHER_RULES = ProviderRules(
    name="together",
    check=_check_together,
    min_examples=TOGETHER_MIN_EXAMPLES,
    default_epochs=1,
    hints=_HINTS,
)
"""Together AI's rules, as validation applies them (Together trains 1 epoch by default)."""

register_provider_rules(TOGETHER_RULES)
