"""Validate any chat fine-tuning JSONL, count its tokens exactly and estimate what training costs.

:func:`validate_file` streams a file once and returns a :class:`ValidationReport` with

* every format error, each with its line: the checks of OpenAI's cookbook data-prep
  notebook (``data_type``, ``missing_messages_list``, ``message_missing_key``,
  ``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
  ``example_missing_assistant_message``) and more (invalid JSON, unknown top-level keys,
  bad ``weight``, tool-call and tool shapes, fewer than 10 examples, ...);
* warnings: examples over the model's token limit, duplicate examples and questions,
  train/validation overlap, answers missing the stop marker the others carry, the
  model's fine-tuning or serving ending soon;
* exact distributions (min, max, mean, median, p10, p90) of messages, total tokens and
  assistant tokens per example;
* OpenAI's default-epoch heuristic, the billed tokens (each example capped at the
  model's limit, the limit named) and a dollar estimate;
* for a Together AI model (``provider="together"``, or a model whose catalogue provider
  is together), what Together would reject before upload: ``together_roles_not_alternating``,
  ``together_invalid_weight``, ``together_unsupported_key``, ``together_unsupported_role``,
  ``together_preference_input`` and ``together_preference_output`` (Together's preference
  format: ``input.messages``, ``preferred_output``, ``non_preferred_output``). Token counts
  for such models are tiktoken estimates (``tokens_exact`` is False): they use their own
  tokenizers.

Example:
    >>> from finetune_qa import validate_examples
    >>> ex = {"messages": [{"role": "user", "content": "Hi?"},
    ...                    {"role": "assistant", "content": "Hello. **STOP**"}]}
    >>> report = validate_examples([ex] * 12, model="gpt-4o-mini")
    >>> report.ok, report.examples, report.error_counts
    (True, 12, {})
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._fs import capped_line, capped_lines, open_regular, shrunk
from finetune_qa._procs import auto_workers, worker_pool
from finetune_qa._text import Histogram, key_hash, question_key
from finetune_qa.catalog import ModelCatalog, ModelInfo, default_catalog
from finetune_qa.config import DEFAULT_MODEL, MIN_TRAINING_EXAMPLES
from finetune_qa.config import today as config_today
from finetune_qa.exceptions import UsageError
from finetune_qa.tokens import (
    TOKENS_PER_EXAMPLE,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    BatchCounter,
    encoding_name_for_model,
)

__all__ = [
    "CostEstimate",
    "Distribution",
    "ValidationIssue",
    "ValidationReport",
    "Validator",
    "default_epochs",
    "validate_examples",
    "validate_file",
]

Severity = Literal["error", "warning"]

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

_BATCH = 4096
TOGETHER_MIN_EXAMPLES = 1
"""Together AI's smallest training file (its SDK's ``MIN_SAMPLES``)."""
_PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
_PROCESS_THRESHOLD_BYTES = 16 * 1024 * 1024
_RANGE_BYTES = 2 * 1024 * 1024
_MAX_SUFFIXES = 64
_MAX_LINE_MEMO = 200_000

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
    "over_token_limit": "the end of the example will be cut off in training",
}


class ValidationIssue(BaseModel):
    """One problem found in a file, with where it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="Machine-readable category, e.g. 'missing_content'.")
    severity: Severity = Field(description="'error' blocks training; 'warning' does not.")
    message: str = Field(description="What is wrong and what to do.")
    file: str | None = Field(default=None, description="File the line belongs to.")
    line: int | None = Field(default=None, description="1-based line number.")

    def render(self) -> str:
        """``file:line: kind: message``."""
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}" if where else f"line {self.line}"
        return f"{where}: {self.kind}: {self.message}" if where else f"{self.kind}: {self.message}"


class Distribution(BaseModel):
    """Exact summary of a per-example figure; percentiles interpolate linearly (numpy default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(description="Number of examples measured.")
    min: int = Field(description="Smallest value.")
    max: int = Field(description="Largest value.")
    mean: float = Field(description="Arithmetic mean.")
    median: float = Field(description="50th percentile.")
    p10: float = Field(description="10th percentile.")
    p90: float = Field(description="90th percentile.")

    @classmethod
    def from_histogram(cls, h: Histogram) -> Distribution | None:
        """Summarise ``h``; None when it holds no values."""
        if not h.count:
            return None
        return cls(
            count=h.count,
            min=h.min,
            max=h.max,
            mean=h.mean,
            median=h.quantile(0.5),
            p10=h.quantile(0.1),
            p90=h.quantile(0.9),
        )


class CostEstimate(BaseModel):
    """What training on the file would be billed, per OpenAI's published formula."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Base model priced.")
    token_limit: int = Field(description="Per-example token limit applied (longer are cut).")
    limit_source: str = Field(description="Where the limit comes from.")
    billed_tokens_per_epoch: int = Field(description="Sum over examples of min(tokens, limit).")
    n_epochs: int = Field(description="Epochs assumed.")
    epochs_source: Literal["default heuristic", "given", "provider default"] = Field(
        description="Whether n_epochs is OpenAI's default for this size, was given, or is the "
        "provider's fixed default (Together: 1)."
    )
    billed_tokens_total: int = Field(description="billed_tokens_per_epoch x n_epochs.")
    price_per_1m: float | None = Field(description="USD per 1M training tokens, if known.")
    estimated_cost_usd: float | None = Field(description="Dollar estimate, if the price is known.")


class ValidationReport(BaseModel):
    """Everything :func:`validate_file` found. ``ok`` is True when there are no errors."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="The training file.")
    validation_path: str | None = Field(default=None, description="The validation file, if any.")
    model: str = Field(description="Model whose encoding, limit and price were used.")
    encoding: str = Field(description="tiktoken encoding used to count.")
    counting: str = Field(description="How tokens were counted.")
    tokens_exact: bool = Field(
        default=True,
        description="False when the model has its own tokenizer and counts are tiktoken estimates.",
    )
    lines: int = Field(description="Lines read from the training file.")
    examples: int = Field(description="Training examples with no format error.")
    validation_examples: int | None = Field(
        default=None, description="Validation examples with no format error."
    )
    error_counts: dict[str, int] = Field(description="Errors by kind (all of them).")
    warning_counts: dict[str, int] = Field(description="Warnings by kind (all of them).")
    errors: list[ValidationIssue] = Field(description="Errors with lines (first N per kind).")
    warnings: list[ValidationIssue] = Field(description="Warnings with lines (first N per kind).")
    examples_missing_system: int = Field(description="Examples with no system message.")
    examples_missing_user: int = Field(description="Examples with no user message.")
    messages_per_example: Distribution | None = Field(description="Messages per example.")
    tokens_per_example: Distribution | None = Field(description="Total tokens per example.")
    assistant_tokens_per_example: Distribution | None = Field(
        description="Assistant-content tokens per example."
    )
    total_tokens: int = Field(description="Sum of tokens over valid training examples.")
    total_assistant_tokens: int = Field(description="Sum of assistant tokens.")
    validation_tokens: int | None = Field(
        default=None, description="Tokens in the validation file (not billed)."
    )
    examples_over_limit: int = Field(description="Examples longer than the token limit.")
    stop_marker: str | None = Field(
        description="Stop marker the answers end with (given, or detected); query with it."
    )
    cost: CostEstimate = Field(description="Billed tokens and price.")
    model_warnings: list[str] = Field(description="Retirement / end-of-training warnings.")

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return not self.error_counts

    @property
    def error_count(self) -> int:
        """Number of errors of every kind."""
        return sum(self.error_counts.values())

    @property
    def warning_count(self) -> int:
        """Number of warnings of every kind."""
        return sum(self.warning_counts.values())

    def to_json(self) -> str:
        """The report as indented JSON (``ok`` included)."""
        data = self.model_dump(mode="json")
        data["ok"] = self.ok
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")

    def to_text(self) -> str:
        """A plain-text rendering for terminals and logs."""
        return _render(self, markdown=False)

    def to_markdown(self) -> str:
        """A Markdown rendering for pull requests and notebooks."""
        return _render(self, markdown=True)


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


# --------------------------------------------------------------------------- checking


class _Example:
    """What the checker extracts from a well-formed example for counting."""

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


def _is_int01(v: object) -> bool:
    return type(v) is int and v in (0, 1)


def _check_tool_calls(calls: object) -> str | None:
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


def _check(obj: Any, errors: list[tuple[str, str]], *, together: bool = False) -> _Example | None:
    """Check one parsed line; append (kind, message) errors; return the counting plan if valid.

    With ``together``, weights are left to :func:`_check_together` (Together allows them on
    any message).
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
    ex = _Example()
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
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            errors.append(("message_type", f"{where} is not an object"))
            continue
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
            continue
        assert isinstance(role, str)
        ex.overhead += TOKENS_PER_MESSAGE
        ex.roles.append(role)
        content = m.get("content")
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
            texts = [
                p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"
            ]
            if not content or not all(
                isinstance(p, dict) and p.get("type") in ("text", "image_url") for p in content
            ):
                errors.append(("missing_content", f"{where} has malformed content parts"))
            for t in texts:
                if isinstance(t, str):
                    ex.texts.append(t)
        elif (
            content is None
            and role == "assistant"
            and (m.get("tool_calls") or m.get("function_call"))
        ):
            pass
        else:
            what = "no content" if content is None else f"content of type {type(content).__name__}"
            errors.append(("missing_content", f"{where} ({role}) has {what}"))
        name = m.get("name")
        if name is not None:
            if not isinstance(name, str) or not name:
                errors.append(
                    ("message_unrecognized_key", f"{where}.name must be a non-empty string")
                )
            else:
                ex.overhead += TOKENS_PER_NAME
                ex.texts.append(name)
        if "weight" in m and not together:
            if role != "assistant":
                errors.append(
                    ("invalid_weight", f"{where}: weight is only allowed on assistant messages")
                )
            elif not _is_int01(m["weight"]):
                errors.append(("invalid_weight", f"{where}: weight is {m['weight']!r}"))
        if "tool_calls" in m:
            problem = (
                _check_tool_calls(m["tool_calls"])
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
                errors.append(
                    ("invalid_tool_call", f"{where}: a tool message needs a 'tool_call_id'")
                )
            elif cid not in call_ids:
                errors.append(
                    (
                        "invalid_tool_call",
                        f"{where}: tool_call_id {cid!r} answers no earlier tool call",
                    )
                )
            else:
                ex.texts.append(cid)
        elif "tool_call_id" in m:
            errors.append(
                ("invalid_tool_call", f"{where}: tool_call_id is only allowed on tool messages")
            )
        if role == "assistant":
            has_assistant = True
        elif role == "system":
            ex.has_system = True
        elif role == "user":
            ex.has_user = True
            if ex.question is None and isinstance(content, str):
                ex.question = content
    if not has_assistant:
        errors.append(("example_missing_assistant_message", "no assistant message"))
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
    return ex if len(errors) == n_err and not unknown else None


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
        if isinstance(m, dict) and "weight" in m and not _is_int01(m["weight"]):
            errors.append(("together_invalid_weight", f"messages[{i}]: weight is {m['weight']!r}"))


def _check_together_preference(
    obj: dict[str, Any], errors: list[tuple[str, str]]
) -> _Example | None:
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
    ex = _check(
        {"messages": [*plain, {"role": "assistant", "content": outputs[0]["content"]}]},
        scratch,
        together=True,
    )
    for _kind, msg in scratch:
        errors.append(("together_preference_input", msg))
    return ex if not scratch else None


def _check_together(obj: Any, errors: list[tuple[str, str]]) -> _Example | None:
    """The common checks, with Together AI's rules instead of OpenAI's where they differ."""
    if isinstance(obj, dict) and _PREFERENCE_KEYS & obj.keys():
        return _check_together_preference(obj, errors)
    n_err = len(errors)
    ex = _check(obj, errors, together=True)
    if isinstance(obj, dict):
        for key in ("parallel_tool_calls", "functions"):
            if key in obj:
                errors.append(("together_unsupported_key", f"{key!r} is OpenAI-only"))
        messages = obj.get("messages")
        if isinstance(messages, list):
            _together_weights(messages, errors)
            _together_roles(messages, errors)
    return ex if len(errors) == n_err else None


def _suffix(answer: str) -> str:
    parts = answer.rsplit(None, 1)
    return parts[-1] if parts else ""


class Validator:
    """Streaming validator: feed it lines or examples, then call :meth:`finish`.

    Most users want :func:`validate_file` or :func:`validate_examples`; the class is
    public for pipelines that produce examples themselves (the DatasetBuilder feeds it
    the examples it writes, so a build reports tokens and cost without re-reading).

    Args:
        model: model name or :class:`ModelInfo`: encoding, token limit and price.
        encoding: override the model's encoding.
        stop: the stop marker answers should end with; detected when None.
        n_epochs: epochs to price; OpenAI's default heuristic when None.
        catalog: catalogue to resolve ``model`` in.
        path: the file being validated (for messages).
        max_issues_per_kind: how many issues of each kind keep their line (all are counted).
        processes: worker processes for token counting (0: count inline).
        today: the date used for retirement warnings (default: ``config.today()``).
        provider: whose format rules apply ("openai" or "together"); the model's catalogue
            provider when None.
    """

    def __init__(
        self,
        *,
        model: str | ModelInfo = DEFAULT_MODEL,
        encoding: str | None = None,
        stop: str | None = None,
        n_epochs: int | None = None,
        catalog: ModelCatalog | None = None,
        path: str | None = None,
        max_issues_per_kind: int = 20,
        processes: int = 0,
        today: dt.date | None = None,
        provider: str | None = None,
    ) -> None:
        cat = catalog or default_catalog()
        self.info = cat.get(model)
        self.provider = provider or self.info.provider
        self._together = self.provider == "together"
        self.model_name = model.name if isinstance(model, ModelInfo) else model
        self.encoding_name = encoding or encoding_name_for_model(self.info)
        if n_epochs is not None and not 1 <= n_epochs <= 50:
            raise UsageError(f"n_epochs must be between 1 and 50, got {n_epochs}")
        self.n_epochs = n_epochs
        self.stop = stop or None
        self.path = path
        self.validation_path: str | None = None
        self.max_issues = max_issues_per_kind
        self.today = today or config_today()
        self.limit = self.info.max_tokens_per_example
        self._as_of = cat.as_of
        self._processes = processes
        self._counter_obj: BatchCounter | None = None
        self._role_tokens: dict[str, int] = {}
        self.lines = 0
        self.examples = 0
        self.validation_examples = 0
        self.validation_tokens = 0
        self.error_counts: Counter[str] = Counter()
        self.warning_counts: Counter[str] = Counter()
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self.missing_system = 0
        self.missing_user = 0
        self.h_msgs = Histogram()
        self.h_tokens = Histogram()
        self.h_assistant = Histogram()
        self.over_limit = 0
        self.billed = 0
        self._seen_examples: dict[int, int] = {}
        self._seen_questions: dict[int, int] = {}
        self._suffixes: Counter[str] = Counter()
        self._suffix_lines: dict[str, list[int]] = {}
        self._other_suffix_lines: list[int] = []
        self._batch_texts: list[str] = []
        self._batch_plan: list[tuple[int | None, int, int, list[int], list[int], bool]] = []
        self._text_index: dict[str, int] = {}
        self._validation_phase = False
        self._finished = False
        self._collect: list[tuple[int, int | None, int | None, str | None, bool]] | None = None
        self._inside: Counter[str] = Counter()
        self._inside_lines: dict[str, list[int]] = {}

    @property
    def _counter(self) -> BatchCounter:
        # created on first use: a caller that only records counts never loads the encoding
        if self._counter_obj is None:
            self._counter_obj = BatchCounter(self.encoding_name, processes=self._processes)
        return self._counter_obj

    def close(self) -> None:
        """Stop any token-counting worker processes."""
        if self._counter_obj is not None:
            self._counter_obj.close()

    # -- issues
    def _issue(self, kind: str, severity: Severity, message: str, line: int | None) -> None:
        counts = self.error_counts if severity == "error" else self.warning_counts
        counts[kind] += 1
        if counts[kind] <= self.max_issues:
            hint = _HINTS.get(kind)
            text = f"{message}; {hint}" if hint and hint not in message else message
            file = self.validation_path if self._validation_phase else self.path
            issue = ValidationIssue(
                kind=kind, severity=severity, message=text, file=file, line=line
            )
            (self.errors if severity == "error" else self.warnings).append(issue)

    # -- feeding
    def add_line(self, raw: bytes, line: int) -> None:
        """Check one raw JSONL line (with or without its newline)."""
        if not self._validation_phase:
            self.lines += 1
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            self._issue("bom", "error", "the file starts with a UTF-8 byte-order mark", line)
            raw = raw[3:]
        if not raw.strip():
            self._issue("blank_line", "error", "empty line", line)
            return
        try:
            # without its newline, or orjson would report a truncated object as "line 2"
            obj = orjson.loads(raw.rstrip(b"\r\n"))
        except orjson.JSONDecodeError as exc:
            self._issue("invalid_json", "error", f"not valid JSON ({exc})", line)
            return
        # Python's own hash: 64 bits, stable within the process, and much cheaper than blake2b
        self._add(obj, line, raw_key=key_hash(raw.strip()))

    def add_example(self, example: Mapping[str, Any] | Any, line: int | None = None) -> None:
        """Check one example given as a dict (or a :class:`TrainingExample`)."""
        to_dict = getattr(example, "to_dict", None)
        obj = to_dict() if callable(to_dict) else example
        if not self._validation_phase:
            self.lines += 1
        self._add(obj, line, raw_key=key_hash(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)))

    def _add(self, obj: Any, line: int | None, *, raw_key: int) -> None:
        errs: list[tuple[str, str]] = []
        ex = _check_together(obj, errs) if self._together else _check(obj, errs)
        for kind, msg in errs:
            self._issue(kind, "error", msg, line)
        if ex is None:
            return
        if self._validation_phase:
            self.validation_examples += 1
            if ex.question is not None:
                first = self._seen_questions.get(key_hash(question_key(ex.question)))
                if first is not None:
                    self._issue(
                        "train_validation_overlap",
                        "warning",
                        f"question also in the training file (line {first}); validation "
                        "metrics will look better than they are",
                        line,
                    )
            self._plan(ex, line, validation=True)
            return
        self.examples += 1
        self.missing_system += not ex.has_system
        self.missing_user += not ex.has_user
        qk = key_hash(question_key(ex.question)) if ex.question is not None else None
        answer = ex.texts[ex.asst_idx[-1]] if ex.asst_idx else None
        stop = self.stop
        if stop is not None and answer is not None:
            body = answer.rstrip()
            if body.endswith(stop):
                body = body[: -len(stop)]
            else:
                self._issue(
                    "inconsistent_stop_marker",
                    "warning",
                    f"the last answer does not end with the stop marker {stop!r}",
                    line,
                )
            if stop in body:
                self._issue("stop_marker_inside_answer", "warning", _inside_text(stop), line)
        suffix = _suffix(answer) if answer is not None and self.stop is None else None
        inside = bool(suffix and answer is not None and suffix in answer.rstrip()[: -len(suffix)])
        if self._collect is not None:
            # a worker of a parallel validation: the parent replays these in file order
            self._collect.append((raw_key, qk, line, suffix, inside))
        else:
            self._note(raw_key, qk, line, suffix, inside)
        self._plan(ex, line, validation=False)

    def _note(
        self,
        raw_key: int,
        qk: int | None,
        line: int | None,
        suffix: str | None,
        inside: bool = False,
    ) -> None:
        """Duplicate and stop-marker bookkeeping, in file order."""
        first = self._seen_examples.get(raw_key)
        if first is not None:
            self._issue("duplicate_example", "warning", f"same example as line {first}", line)
        elif len(self._seen_examples) < _MAX_LINE_MEMO:
            self._seen_examples[raw_key] = line or 0
        if qk is not None:
            firstq = self._seen_questions.get(qk)
            if firstq is not None and first is None:
                self._issue(
                    "duplicate_question",
                    "warning",
                    f"same question as line {firstq} with a different answer",
                    line,
                )
            elif firstq is None and len(self._seen_questions) < _MAX_LINE_MEMO:
                self._seen_questions[qk] = line or 0
        if suffix is None:
            return
        if inside and (suffix in self._inside or len(self._inside) < _MAX_SUFFIXES):
            self._inside[suffix] += 1
            at = self._inside_lines.setdefault(suffix, [])
            if len(at) < self.max_issues and line is not None:
                at.append(line)
        if suffix in self._suffixes or len(self._suffixes) < _MAX_SUFFIXES:
            self._suffixes[suffix] += 1
            lines = self._suffix_lines.setdefault(suffix, [])
            if len(lines) < self.max_issues and line is not None:
                lines.append(line)
        elif len(self._other_suffix_lines) < self.max_issues and line is not None:
            self._other_suffix_lines.append(line)

    def _partial(self) -> dict[str, Any]:
        """This (worker) validator's mergeable state, after every batch was counted."""
        self._flush()
        if self._counter_obj is not None:
            for plan, counts in self._counter_obj.drain():
                self._consume(plan, counts)  # type: ignore[arg-type]
        self.close()
        return {
            "lines": self.lines,
            "examples": self.examples,
            "missing": (self.missing_system, self.missing_user),
            "error_counts": dict(self.error_counts),
            "warning_counts": dict(self.warning_counts),
            "issues": self.errors + self.warnings,
            "hist": (self.h_msgs, self.h_tokens, self.h_assistant),
            "over": (self.over_limit, self.billed),
            "keys": self._collect,
        }

    def _merge(self, part: dict[str, Any]) -> None:
        """Add a worker's state (ranges merged in file order give the sequential result)."""
        self.lines += part["lines"]
        self.examples += part["examples"]
        self.missing_system += part["missing"][0]
        self.missing_user += part["missing"][1]
        kept = Counter(i.kind for i in self.errors + self.warnings)
        for issue in part["issues"]:
            if kept[issue.kind] < self.max_issues:
                kept[issue.kind] += 1
                (self.errors if issue.severity == "error" else self.warnings).append(issue)
        self.error_counts.update(part["error_counts"])
        self.warning_counts.update(part["warning_counts"])
        for mine, theirs in zip(
            (self.h_msgs, self.h_tokens, self.h_assistant), part["hist"], strict=True
        ):
            mine.merge(theirs)
        self.over_limit += part["over"][0]
        self.billed += part["over"][1]
        for raw_key, qk, line, suffix, inside in part["keys"]:
            self._note(raw_key, qk, line, suffix, inside)

    def _plan(self, ex: _Example, line: int | None, *, validation: bool) -> None:
        roles = self._role_tokens
        if not roles:
            counts = self._counter.count_now(sorted(ROLES))
            roles.update(zip(sorted(ROLES), counts, strict=True))
        overhead = ex.overhead
        for r in ex.roles:
            overhead += roles[r]
        texts = self._batch_texts
        base = len(texts)
        idx = list(range(base, base + len(ex.texts)))
        if ex.sys_idx:
            # the same system prompt repeats on every line: count it once per batch
            index = self._text_index
            for k in ex.sys_idx:
                t = ex.texts[k]
                j = index.get(t)
                if j is None:
                    index[t] = base + k
                else:
                    idx[k] = j
        texts.extend(ex.texts)
        asst = [idx[k] for k in ex.asst_idx]
        self._batch_plan.append((line, ex.n_msgs, overhead, idx, asst, validation))
        if len(self._batch_plan) >= _BATCH:
            self._flush()

    def record_counts(self, line: int | None, n_messages: int, total: int, assistant: int) -> None:
        """Record a well-formed example whose tokens the caller has already counted.

        Used by the DatasetBuilder for the examples it writes itself, which need no checks.
        """
        self.lines += 1
        self.examples += 1
        self._tally(line, n_messages, total, assistant)

    def record_batch(
        self,
        first_line: int,
        n_messages: int,
        totals: Sequence[int],
        assistant: Sequence[int],
        *,
        has_system: bool = True,
    ) -> None:
        """Record consecutive well-formed examples (lines ``first_line``, ``first_line + 1``, ...).

        The batch form of :meth:`record_counts`, for callers that count many examples at once.
        """
        n = len(totals)
        self.lines += n
        self.examples += n
        if not has_system:
            self.missing_system += n
        self.h_msgs._counts[n_messages] += n
        self.h_msgs.count += n
        self.h_msgs.total += n_messages * n
        self.h_tokens.update(totals)
        self.h_assistant.update(assistant)
        limit = self.limit
        if n and max(totals) > limit:
            for i, total in enumerate(totals):
                if total > limit:
                    self._over(first_line + i, total)
            self.billed += sum([t if t <= limit else limit for t in totals])
        else:
            self.billed += sum(totals)

    def _over(self, line: int | None, total: int) -> None:
        self.over_limit += 1
        self._issue(
            "over_token_limit",
            "warning",
            f"{total:,} tokens, over the {self.limit:,}-token limit of {self.info.name}",
            line,
        )

    def _tally(self, line: int | None, n_msgs: int, total: int, assistant: int) -> None:
        self.h_msgs.add(n_msgs)
        self.h_tokens.add(total)
        self.h_assistant.add(assistant)
        if total > self.limit:
            self._over(line, total)
            self.billed += self.limit
        else:
            self.billed += total

    def _flush(self) -> None:
        if not self._batch_plan:
            return
        texts, plan = self._batch_texts, self._batch_plan
        self._batch_texts, self._batch_plan, self._text_index = [], [], {}
        for done_plan, counts in self._counter.put(texts, plan):
            self._consume(done_plan, counts)  # type: ignore[arg-type]

    def _consume(
        self,
        plan: list[tuple[int | None, int, int, list[int], list[int], bool]],
        counts: Sequence[int],
    ) -> None:
        for line, n_msgs, overhead, idx, asst, validation in plan:
            total = overhead + sum([counts[i] for i in idx])
            if validation:
                self.validation_tokens += total
                continue
            self._tally(line, n_msgs, total, sum([counts[i] for i in asst]))

    def start_validation_file(self, path: str | None) -> None:
        """Switch to feeding the validation file: its lines are checked and compared."""
        self._flush()
        if self._counter_obj is not None:
            for plan, counts in self._counter_obj.drain():
                self._consume(plan, counts)  # type: ignore[arg-type]
        self._validation_phase = True
        self.validation_path = path

    # -- result
    def finish(self) -> ValidationReport:
        """Count what is still queued and build the report."""
        if self._finished:
            raise UsageError("finish() was already called on this Validator")
        self._finished = True
        try:
            self._flush()
            if self._counter_obj is not None:
                for plan, counts in self._counter_obj.drain():
                    self._consume(plan, counts)  # type: ignore[arg-type]
        finally:
            self.close()
        self._validation_phase = False
        overlap = self.warning_counts.get("train_validation_overlap", 0)
        if overlap and overlap == self.validation_examples:
            # every validation question is a training one: a sample repeated on purpose
            # (DatasetBuilder.sample_validation), whose loss tracks what the model learnt
            del self.warning_counts["train_validation_overlap"]
            self.warnings = [w for w in self.warnings if w.kind != "train_validation_overlap"]
        minimum = TOGETHER_MIN_EXAMPLES if self._together else MIN_TRAINING_EXAMPLES
        if self.examples < minimum:
            self._issue(
                "too_few_examples",
                "error",
                f"{self.examples} valid example{'s' if self.examples != 1 else ''}",
                None,
            )
        if self.validation_path is not None and self.validation_examples == 0:
            self._validation_phase = True  # the issue is the validation file's
            self._issue("empty_validation_file", "error", "no valid example", None)
            self._validation_phase = False
        stop = self.stop or self._detect_stop()
        epochs = self.n_epochs or (1 if self._together else default_epochs(self.examples))
        price = self.info.training_price_per_1m
        as_of = f", catalogue as of {self._as_of.isoformat()}" if self._as_of else ""
        cost = CostEstimate(
            model=self.info.name,
            token_limit=self.limit,
            limit_source=f"training-example limit of {self.info.name}{as_of}",
            billed_tokens_per_epoch=self.billed,
            n_epochs=epochs,
            epochs_source=(
                "given"
                if self.n_epochs
                else "provider default"
                if self._together
                else "default heuristic"
            ),
            billed_tokens_total=self.billed * epochs,
            price_per_1m=price,
            estimated_cost_usd=(
                self.billed * epochs * price / 1_000_000 if price is not None else None
            ),
        )
        return ValidationReport(
            path=self.path,
            validation_path=self.validation_path,
            model=self.model_name,
            encoding=self.encoding_name,
            counting=(
                f"exact tiktoken {self.encoding_name} counts; per example {TOKENS_PER_EXAMPLE} + "
                f"per message {TOKENS_PER_MESSAGE} + role + content (+ name + {TOKENS_PER_NAME}), "
                "OpenAI's chat formula"
                if self.info.tokenizer_exact
                else f"an ESTIMATE with tiktoken {self.encoding_name}: {self.info.name} uses its "
                "own tokenizer, so its real counts (and the price) differ; OpenAI's chat formula"
            ),
            tokens_exact=self.info.tokenizer_exact,
            lines=self.lines,
            examples=self.examples,
            validation_examples=self.validation_examples if self.validation_path else None,
            error_counts=dict(sorted(self.error_counts.items())),
            warning_counts=dict(sorted(self.warning_counts.items())),
            errors=sorted(self.errors, key=_issue_order),
            warnings=sorted(self.warnings, key=_issue_order),
            examples_missing_system=self.missing_system,
            examples_missing_user=self.missing_user,
            messages_per_example=Distribution.from_histogram(self.h_msgs),
            tokens_per_example=Distribution.from_histogram(self.h_tokens),
            assistant_tokens_per_example=Distribution.from_histogram(self.h_assistant),
            total_tokens=self.h_tokens.total,
            total_assistant_tokens=self.h_assistant.total,
            validation_tokens=self.validation_tokens if self.validation_path else None,
            examples_over_limit=self.over_limit,
            stop_marker=stop,
            cost=cost,
            model_warnings=self.info.warnings_on(self.today),
        )

    def _detect_stop(self) -> str | None:
        if not self._suffixes or self.examples < 3:
            return None
        marker, n = self._suffixes.most_common(1)[0]
        # A marker is the same final token on at least half the answers and looks like
        # one: it has a symbol (**STOP**, ###, <END>) or is an upper-case word (END).
        if n < 3 or n * 2 < self.examples or not _looks_like_marker(marker):
            return None
        missing = self.examples - n
        if missing:
            lines = sorted(
                [ln for s, ls in self._suffix_lines.items() if s != marker for ln in ls]
                + self._other_suffix_lines
            )[: self.max_issues]
            for ln in lines:
                self._issue(
                    "inconsistent_stop_marker",
                    "warning",
                    f"the answer does not end with {marker!r}, which {n:,} other answers end with",
                    ln,
                )
            extra = missing - len(lines)
            if extra > 0:
                self.warning_counts["inconsistent_stop_marker"] += extra
        at = self._inside_lines.get(marker, [])
        for ln in at:
            self._issue("stop_marker_inside_answer", "warning", _inside_text(marker), ln)
        if self._inside[marker] > len(at):
            self.warning_counts["stop_marker_inside_answer"] += self._inside[marker] - len(at)
        return marker


def _inside_text(stop: str) -> str:
    return (
        f"the answer holds the stop marker {stop!r} before its end: the model learns to "
        "stop there, and answers are cut at it"
    )


def _looks_like_marker(token: str) -> bool:
    core = token.rstrip(".!?,;:")
    if not core:
        return False
    if any(c in "*#<>[]{}|~^$@%&+=_\\/" for c in core):
        return True
    return len(core) >= 3 and core.isascii() and core.isalpha() and core.isupper()


def _line_ranges(path: Path, target: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first_line)`` ranges of about ``target`` bytes ending on line breaks."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos, line = 0, 1
        while pos < size:
            f.seek(pos)
            block = f.read(target)
            if not block:  # truncated since it was opened: end, do not plan empty ranges
                raise shrunk(path)
            end = pos + len(block)
            lines = block.count(b"\n")
            if end < size and not block.endswith(b"\n"):
                rest = capped_line(f, path, line + lines)
                end += len(rest)
                lines += rest.count(b"\n")
            yield pos, end, line
            line += lines
            pos = end


def _validate_range(
    task: tuple[str, int, int, int, str | ModelInfo, str | None, str | None, int, dt.date, str],
) -> dict[str, Any]:
    path, start, end, first_line, model, encoding, stop, max_issues, today, provider = task
    v = Validator(
        model=model,
        encoding=encoding,
        stop=stop,
        path=path,
        max_issues_per_kind=max_issues,
        processes=0,
        today=today,
        provider=provider,
    )
    v._collect = []
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if len(data) != end - start:
        raise shrunk(path)
    for n, raw in enumerate(io.BytesIO(data), first_line):
        v.add_line(raw, n)
    return v._partial()


def _issue_order(issue: ValidationIssue) -> tuple[str, int, int, str]:
    # by file, then line; issues about the file as a whole (no line) come after its lines
    no_line = issue.line is None
    return (issue.file or "", no_line, issue.line or 0, issue.kind)


def _iter_lines(path: Path) -> Iterable[tuple[int, bytes]]:
    # non-blocking open + regular-file check: a FIFO must not hang or be read twice
    with open_regular(
        path,
        kind="JSONL file",
        directory_hint="pass the .jsonl file itself",
        pipe_hint="save the JSONL to a file and pass that",
    ) as f:
        yield from enumerate(capped_lines(f, path), 1)


def validate_file(
    path: str | os.PathLike[str],
    *,
    model: str | ModelInfo = DEFAULT_MODEL,
    validation_path: str | os.PathLike[str] | None = None,
    stop: str | None = None,
    n_epochs: int | None = None,
    encoding: str | None = None,
    catalog: ModelCatalog | None = None,
    max_issues_per_kind: int = 20,
    processes: int | None = None,
    today: dt.date | None = None,
    provider: str | None = None,
) -> ValidationReport:
    """Validate a chat fine-tuning JSONL file (and optionally its validation file).

    The file is streamed once; memory does not grow with its length beyond the
    duplicate-detection memo (line numbers of the first 200,000 distinct examples and
    questions; repeats of later ones are not reported) and the kept issues.

    Args:
        path: the training JSONL.
        model: model name (``ft:`` names allowed) or :class:`ModelInfo`.
        validation_path: a validation JSONL to check and compare with the training file.
        stop: stop marker answers should end with (detected when None).
        n_epochs: epochs to price (OpenAI's default heuristic when None).
        encoding: override the model's encoding.
        catalog: catalogue to resolve ``model`` in.
        max_issues_per_kind: issues per kind that keep their line (all are counted).
        processes: worker processes (None: none for files under 16 MiB, one per CPU above).
            A big training file is split into byte ranges that workers check, count and
            tokenize; the report is the same as a single-process run.
        today: date for retirement warnings.
        provider: whose format rules apply: "openai", or "together" for what Together AI
            would reject (role order, weights, its preference format); the model's
            catalogue provider when None.

    Raises:
        InputFileError: the file is missing, a directory or unreadable.
        UnknownModelError: the model is not in the catalogue.
    """
    p = Path(path)
    vp = Path(validation_path) if validation_path is not None else None
    v = Validator(
        model=model,
        encoding=encoding,
        stop=stop,
        n_epochs=n_epochs,
        catalog=catalog,
        path=str(p),
        max_issues_per_kind=max_issues_per_kind,
        processes=auto_workers([p, *([vp] if vp else [])], processes, _PROCESS_THRESHOLD_BYTES),
        today=today,
        provider=provider,
    )
    try:
        workers = v._processes
        if workers and p.is_file() and p.stat().st_size >= _PROCESS_THRESHOLD_BYTES:
            # big file: workers check, count and tokenize byte ranges; this process
            # merges them in file order (duplicates and the stop marker need that order)
            _validate_parallel(v, p, workers)
        else:
            for n, raw in _iter_lines(p):
                v.add_line(raw, n)
        if vp is not None:
            v.start_validation_file(str(vp))
            for n, raw in _iter_lines(vp):
                v.add_line(raw, n)
        return v.finish()
    finally:
        v.close()


def _validate_parallel(v: Validator, path: Path, workers: int) -> None:
    v.close()
    v._processes = 0  # the validation file, if any, is counted here
    pending: deque[Future[dict[str, Any]]] = deque()
    with worker_pool(workers) as pool:
        try:
            for start, end, first_line in _line_ranges(path, _RANGE_BYTES):
                task = (
                    str(path),
                    start,
                    end,
                    first_line,
                    v.info,
                    v.encoding_name,
                    v.stop,
                    v.max_issues,
                    v.today,
                    v.provider,
                )
                pending.append(pool.submit(_validate_range, task))
                while len(pending) > 2 * workers + 1:
                    v._merge(pending.popleft().result())
            while pending:
                v._merge(pending.popleft().result())
        finally:
            for fut in pending:
                fut.cancel()


def validate_examples(
    examples: Iterable[Mapping[str, Any] | Any],
    *,
    model: str | ModelInfo = DEFAULT_MODEL,
    stop: str | None = None,
    n_epochs: int | None = None,
    catalog: ModelCatalog | None = None,
    today: dt.date | None = None,
    provider: str | None = None,
) -> ValidationReport:
    """Validate examples held in memory (dicts or :class:`TrainingExample`).

    Issue "lines" are the 1-based positions of the examples in ``examples``; ``provider``
    is as for :func:`validate_file`.
    """
    v = Validator(
        model=model, stop=stop, n_epochs=n_epochs, catalog=catalog, today=today, provider=provider
    )
    for i, ex in enumerate(examples, 1):
        v.add_example(ex, i)
    return v.finish()


# ------------------------------------------------------------------------- rendering


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _render(r: ValidationReport, *, markdown: bool) -> str:
    out: list[str] = []
    h = "## " if markdown else ""
    bullet = "- " if markdown else "  "
    title = r.path or "examples"
    status = "OK" if r.ok else f"{r.error_count:,} error(s)"
    out.append(f"{'# ' if markdown else ''}Validation of {title}: {status}")
    out.append("")
    out.append(f"{bullet}model: {r.model} (encoding {r.encoding})")
    out.append(f"{bullet}lines: {r.lines:,}; valid examples: {r.examples:,}")
    if r.validation_path:
        out.append(
            f"{bullet}validation file: {r.validation_path} ({r.validation_examples:,} valid "
            f"examples, {r.validation_tokens:,} tokens, not billed)"
        )
    if r.stop_marker:
        out.append(
            f"{bullet}stop marker: {r.stop_marker!r} (query the model with stop={r.stop_marker!r})"
        )
    out.append(
        f"{bullet}examples missing a system message: {r.examples_missing_system:,}; "
        f"missing a user message: {r.examples_missing_user:,}"
    )
    for w in r.model_warnings:
        out.append(f"{bullet}WARNING: {w}")
    if r.error_counts:
        out.append("")
        out.append(f"{h}Errors")
        for kind, n in r.error_counts.items():
            out.append(f"{bullet}{kind}: {n:,}")
        for e in r.errors:
            out.append(f"{bullet}{'`' if markdown else '  '}{e.render()}{'`' if markdown else ''}")
    if r.warning_counts:
        out.append("")
        out.append(f"{h}Warnings")
        for kind, n in r.warning_counts.items():
            out.append(f"{bullet}{kind}: {n:,}")
        for w2 in r.warnings[:60]:
            out.append(f"{bullet}{'`' if markdown else '  '}{w2.render()}{'`' if markdown else ''}")
    dists = [
        ("messages per example", r.messages_per_example),
        ("tokens per example", r.tokens_per_example),
        ("assistant tokens per example", r.assistant_tokens_per_example),
    ]
    if any(d for _, d in dists):
        out.append("")
        out.append(f"{h}Distributions")
        if markdown:
            out.append("| figure | min | max | mean | median | p10 | p90 |")
            out.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, d in dists:
            if d is None:
                continue
            cells = [
                _fmt(d.min),
                _fmt(d.max),
                _fmt(d.mean),
                _fmt(d.median),
                _fmt(d.p10),
                _fmt(d.p90),
            ]
            if markdown:
                out.append(f"| {name} | " + " | ".join(cells) + " |")
            else:
                out.append(
                    f"  {name}: min {cells[0]}, max {cells[1]}, mean {cells[2]}, "
                    f"median {cells[3]}, p10 {cells[4]}, p90 {cells[5]}"
                )
    c = r.cost
    out.append("")
    out.append(f"{h}Tokens and cost")
    out.append(f"{bullet}counting: {r.counting}")
    out.append(f"{bullet}total tokens: {r.total_tokens:,} (assistant {r.total_assistant_tokens:,})")
    out.append(
        f"{bullet}token limit applied: {c.token_limit:,} ({c.limit_source}); "
        f"examples over it: {r.examples_over_limit:,}"
    )
    out.append(f"{bullet}billed tokens per epoch: {c.billed_tokens_per_epoch:,}")
    out.append(f"{bullet}epochs: {c.n_epochs} ({c.epochs_source})")
    out.append(f"{bullet}billed tokens in total: {c.billed_tokens_total:,}")
    if c.estimated_cost_usd is not None:
        out.append(
            f"{bullet}estimated training cost: ${c.estimated_cost_usd:,.2f} "
            f"at ${c.price_per_1m:g} per 1M tokens"
            + ("" if r.tokens_exact else f" (tokens estimated with tiktoken {r.encoding})")
        )
    else:
        out.append(
            f"{bullet}estimated training cost: unknown (no price for {c.model} in the catalogue)"
        )
    return "\n".join(out) + "\n"
