"""OpenAI's format rules for one chat example, and its default-epoch heuristic.

:func:`check_example` is the common check every provider starts from; a provider whose
rules differ registers its own (see :mod:`finetune_qa.validation._providers`).
"""

from __future__ import annotations

from typing import Any

import orjson

from finetune_qa._text import is_int
from finetune_qa.config import MIN_TRAINING_EXAMPLES
from finetune_qa.tokens import TOKENS_PER_EXAMPLE, TOKENS_PER_MESSAGE, TOKENS_PER_NAME

TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
)
ROLES = frozenset({"system", "user", "assistant", "tool", "function"})

# OpenAI's default-epoch heuristic (cookbook constants).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

_HINTS: dict[str, str] = {
    "invalid_json": "each line must be one complete JSON object",
    "empty_validation_file": "leave the validation file out, or give it examples; a provider "
    "rejects one without any",
    "stop_marker_inside_answer": (
        "remove the marker from the answer's text, or pick a marker no answer contains"
    ),
    "blank_line": "remove empty lines; every line must hold one example",
    "bom": "save the file as UTF-8 without a byte-order mark",
    "data_type": 'each line must be a JSON object like {"messages": [...]}',
    "unknown_key": "allowed top-level keys: messages, tools, parallel_tool_calls",
    "missing_messages_list": 'add a non-empty "messages" list',
    "message_type": "each message must be an object with role and content",
    "message_missing_key": 'each message needs "role" and "content"',
    "message_unrecognized_key": "allowed message keys: " + ", ".join(sorted(MESSAGE_KEYS)),
    "unrecognized_role": "roles are system, user, assistant and tool",
    "missing_content": "give the message non-empty text content",
    "example_missing_assistant_message": "add the assistant reply the model should learn",
    "invalid_weight": "weight is 0 or 1, on assistant messages only",
    "invalid_tool_call": (
        "tool_calls is a list of {id, type: function, function: {name, arguments}}"
    ),
    "invalid_tools": "tools is a list of {type: function, function: {name, parameters}}",
    "too_few_examples": f"OpenAI needs at least {MIN_TRAINING_EXAMPLES} examples",
    "over_token_limit": "the end of the example will be cut off in training",
}


def default_epochs(n_examples: int) -> int:
    """The number of epochs OpenAI picks by default for a dataset of ``n_examples``.

    3, raised so that small sets see about 100 examples (at most 25 epochs) and lowered
    so that large sets see about 25,000 (at least 1).
    """
    if n_examples <= 0:
        return 0
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


class CheckedExample:
    """What :func:`check_example` extracts from a well-formed example, for counting its tokens."""

    __slots__ = (
        "asst_idx",
        "has_system",
        "has_user",
        "n_msgs",
        "overhead",
        "question",
        "roles",
        "sys_idx",
        "texts",
    )

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.asst_idx: list[int] = []
        self.sys_idx: list[int] = []
        self.roles: list[str] = []
        self.overhead = TOKENS_PER_EXAMPLE
        self.n_msgs = 0
        self.has_system = False
        self.has_user = False
        self.question: str | None = None


_SIMPLE_ROLES = frozenset({"system", "user", "assistant"})


def check_tool_calls(calls: object) -> str | None:
    """The problem with an assistant message's ``tool_calls``, or None when they are well formed.

    A non-empty list of ``{id, type: function, function: {name, arguments}}``, ``arguments``
    a JSON-encoded string, no other keys. Used by validation and by the export alike.
    """
    if not isinstance(calls, list) or not calls:
        return "tool_calls must be a non-empty list"
    for i, c in enumerate(calls):
        if not isinstance(c, dict):
            return f"tool_calls[{i}] is not an object"
        if not isinstance(c.get("id"), str) or not c["id"]:
            return f"tool_calls[{i}] has no string 'id'"
        if c.get("type", "function") != "function":
            return f"tool_calls[{i}].type must be 'function'"
        fn = c.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"tool_calls[{i}].function needs a string 'name'"
        if not isinstance(fn.get("arguments"), str):
            return f"tool_calls[{i}].function.arguments must be a JSON-encoded string"
        extra = set(c) - {"id", "type", "function"}
        if extra:
            return f"tool_calls[{i}] has unknown keys {sorted(extra)}"
    return None


def _check_tools(tools: object) -> str | None:
    if not isinstance(tools, list):
        return "tools must be a list"
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            return f"tools[{i}] must be an object with type 'function'"
        fn = t.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"tools[{i}].function needs a string 'name'"
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            return f"tools[{i}].function.parameters must be a JSON Schema object"
    return None


def is_weight(value: object) -> bool:
    """True for a message weight a provider takes: the whole number 0 or 1."""
    return is_int(value) and value in (0, 1)


def check_example(
    obj: Any, errors: list[tuple[str, str]], *, weights: bool = True
) -> CheckedExample | None:
    """Check one parsed line; append ``(kind, message)`` errors; return its counting plan if valid.

    Args:
        obj: the parsed JSON line.
        errors: where the problems found go.
        weights: check ``weight`` keys by OpenAI's rule (assistant messages only); a
            provider with its own rule for them passes False and checks them itself.
    """
    if not isinstance(obj, dict):
        errors.append(("data_type", f"line is a JSON {type(obj).__name__}, not an object"))
        return None
    unknown = [k for k in obj if k not in TOP_LEVEL_KEYS]
    if unknown:
        errors.append(("unknown_key", f"unknown top-level key(s) {sorted(unknown)}"))
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        errors.append(("missing_messages_list", "no non-empty 'messages' list"))
        return None
    n_err = len(errors)
    ex = CheckedExample()
    ex.n_msgs = len(messages)
    has_assistant = False
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        # Fast path: a plain {"role", "content"} message with text, by far the most common.
        if type(m) is dict and len(m) == 2:
            role = m.get("role")
            content = m.get("content")
            if role in _SIMPLE_ROLES and type(content) is str and content and not content.isspace():
                ex.overhead += TOKENS_PER_MESSAGE
                ex.roles.append(role)
                if role == "assistant":
                    has_assistant = True
                    ex.asst_idx.append(len(ex.texts))
                elif role == "system":
                    ex.has_system = True
                    ex.sys_idx.append(len(ex.texts))
                else:
                    ex.has_user = True
                    if ex.question is None:
                        ex.question = content
                ex.texts.append(content)
                continue
        if _check_message(m, f"messages[{i}]", ex, errors, call_ids, weights=weights):
            has_assistant = True
    if not has_assistant:
        errors.append(("example_missing_assistant_message", "no assistant message"))
    _check_top_level(obj, ex, errors)
    return ex if len(errors) == n_err and not unknown else None


def _check_message(
    m: object,
    where: str,
    ex: CheckedExample,
    errors: list[tuple[str, str]],
    call_ids: set[str],
    *,
    weights: bool,
) -> bool:
    """Check a message off the fast path and add it to ``ex``; True when it is the assistant's."""
    if not isinstance(m, dict):
        errors.append(("message_type", f"{where} is not an object"))
        return False
    role = m.get("role")
    if "role" not in m or (
        "content" not in m and not (m.get("tool_calls") or "function_call" in m)
    ):
        missing = "role" if "role" not in m else "content"
        errors.append(("message_missing_key", f"{where} has no '{missing}'"))
    bad_keys = [k for k in m if k not in MESSAGE_KEYS]
    if bad_keys:
        errors.append(
            ("message_unrecognized_key", f"{where} has unknown key(s) {sorted(bad_keys)}")
        )
    if role not in ROLES:
        if "role" in m:
            errors.append(("unrecognized_role", f"{where} has role {role!r}"))
        return False
    assert isinstance(role, str)
    ex.overhead += TOKENS_PER_MESSAGE
    ex.roles.append(role)
    content = m.get("content")
    _check_content(m, content, role, where, ex, errors)
    _check_name(m.get("name"), where, ex, errors)
    if "weight" in m and weights:
        if role != "assistant":
            errors.append(
                ("invalid_weight", f"{where}: weight is only allowed on assistant messages")
            )
        elif not is_weight(m["weight"]):
            errors.append(("invalid_weight", f"{where}: weight is {m['weight']!r}"))
    _check_tool_messages(m, role, where, ex, errors, call_ids)
    if role == "system":
        ex.has_system = True
    elif role == "user":
        ex.has_user = True
        if ex.question is None and isinstance(content, str):
            ex.question = content
    return role == "assistant"


def _check_content(
    m: dict[str, Any],
    content: object,
    role: str,
    where: str,
    ex: CheckedExample,
    errors: list[tuple[str, str]],
) -> None:
    if isinstance(content, str):
        if not content or content.isspace():
            errors.append(("missing_content", f"{where} ({role}) has empty content"))
        else:
            if role == "assistant":
                ex.asst_idx.append(len(ex.texts))
            elif role == "system":
                ex.sys_idx.append(len(ex.texts))
            ex.texts.append(content)
    elif isinstance(content, list) and role in ("user", "system"):
        # content parts (text and images): text parts are counted, images are not
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if not content or not all(
            isinstance(p, dict) and p.get("type") in ("text", "image_url") for p in content
        ):
            errors.append(("missing_content", f"{where} has malformed content parts"))
        for t in texts:
            if isinstance(t, str):
                ex.texts.append(t)
    elif (
        content is None and role == "assistant" and (m.get("tool_calls") or m.get("function_call"))
    ):
        pass
    else:
        what = "no content" if content is None else f"content of type {type(content).__name__}"
        errors.append(("missing_content", f"{where} ({role}) has {what}"))


def _check_name(
    name: object, where: str, ex: CheckedExample, errors: list[tuple[str, str]]
) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not name:
        errors.append(("message_unrecognized_key", f"{where}.name must be a non-empty string"))
    else:
        ex.overhead += TOKENS_PER_NAME
        ex.texts.append(name)


def _check_tool_messages(
    m: dict[str, Any],
    role: str,
    where: str,
    ex: CheckedExample,
    errors: list[tuple[str, str]],
    call_ids: set[str],
) -> None:
    """``tool_calls`` on assistant messages; a tool message answers an earlier call."""
    if "tool_calls" in m:
        problem = (
            check_tool_calls(m["tool_calls"])
            if role == "assistant"
            else "tool_calls is only allowed on assistant messages"
        )
        if problem:
            errors.append(("invalid_tool_call", f"{where}: {problem}"))
        else:
            for c in m["tool_calls"]:
                call_ids.add(c["id"])
            ex.texts.append(orjson.dumps(m["tool_calls"]).decode("utf-8"))
    if role == "tool":
        cid = m.get("tool_call_id")
        if not isinstance(cid, str) or not cid:
            errors.append(("invalid_tool_call", f"{where}: a tool message needs a 'tool_call_id'"))
        elif cid not in call_ids:
            errors.append(
                ("invalid_tool_call", f"{where}: tool_call_id {cid!r} answers no earlier tool call")
            )
        else:
            ex.texts.append(cid)
    elif "tool_call_id" in m:
        errors.append(
            ("invalid_tool_call", f"{where}: tool_call_id is only allowed on tool messages")
        )


def _check_top_level(
    obj: dict[str, Any], ex: CheckedExample, errors: list[tuple[str, str]]
) -> None:
    if "tools" in obj:
        problem = _check_tools(obj["tools"])
        if problem:
            errors.append(("invalid_tools", problem))
        else:
            ex.texts.append(orjson.dumps(obj["tools"]).decode("utf-8"))
    if "functions" in obj:
        ex.texts.append(orjson.dumps(obj["functions"]).decode("utf-8"))
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        errors.append(("unknown_key", "parallel_tool_calls must be true or false"))
