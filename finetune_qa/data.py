r"""The data models: question/answer pairs and chat-format training examples.

All models are strict pydantic models (unknown keys rejected, no type coercion) that
round-trip to JSONL exactly: ``TrainingExample.from_json(ex.to_json()).to_json()`` is
``ex.to_json()``, byte for byte.

Example:
    >>> from finetune_qa import QAPair, TrainingExample
    >>> pair = QAPair(question="What is Acme?", answer="A maker of anvils.")
    >>> line = TrainingExample.from_qa(pair, system_prompt="Answer about Acme.").to_json()
    >>> print(line.replace("},{", "},\n{"))
    {"messages":[{"role":"system","content":"Answer about Acme."},
    {"role":"user","content":"What is Acme?"},
    {"role":"assistant","content":"A maker of anvils. **STOP**"}]}
    >>> TrainingExample.from_json(line).to_json() == line
    True
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from finetune_qa.config import DEFAULT_STOP
from finetune_qa.exceptions import UsageError

__all__ = [
    "FunctionCall",
    "FunctionDefinition",
    "Message",
    "Provenance",
    "QAPair",
    "Role",
    "Tool",
    "ToolCall",
    "TrainingExample",
]

Role = Literal["system", "user", "assistant", "tool"]
"""The message roles chat fine-tuning accepts."""

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Provenance(BaseModel):
    """Where a QA pair came from, so every drop or error can point back at it."""

    model_config = _STRICT

    file: str | None = Field(default=None, description="Source file path, as given.")
    line: int | None = Field(
        default=None, ge=1, description="1-based physical line where the record starts."
    )
    row: int | None = Field(default=None, ge=1, description="1-based data row (CSV) or record.")
    item: int | None = Field(
        default=None, ge=1, description="1-based position in the row's numbered list."
    )

    def render(self) -> str:
        """Short ``file:line (row R, item I)`` form for reports and messages."""
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        extra = []
        if self.row is not None:
            extra.append(f"row {self.row}")
        if self.item is not None:
            extra.append(f"item {self.item}")
        return where + (f" ({', '.join(extra)})" if extra else "")


class QAPair(BaseModel):
    """One question and its answer, with where it came from."""

    model_config = _STRICT

    question: str = Field(min_length=1, description="The user's question.")
    answer: str = Field(min_length=1, description="The answer the model should learn.")
    source: Provenance | None = Field(default=None, description="Where the pair was read.")

    @field_validator("question", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain more than white space")
        return value


class FunctionCall(BaseModel):
    """The function an assistant message calls, with its JSON-encoded arguments."""

    model_config = _STRICT

    name: str = Field(min_length=1, description="Function name.")
    arguments: str = Field(description="Arguments as a JSON-encoded string.")


class ToolCall(BaseModel):
    """A tool call made by an assistant message."""

    model_config = _STRICT

    id: str = Field(min_length=1, description="Call id, echoed by the tool message.")
    type: Literal["function"] = Field(default="function", description="Always 'function'.")
    function: FunctionCall = Field(description="The function called.")


class FunctionDefinition(BaseModel):
    """A function the model may call, as listed in an example's ``tools``."""

    model_config = _STRICT

    name: str = Field(min_length=1, description="Function name.")
    description: str | None = Field(default=None, description="What the function does.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the arguments."
    )
    strict: bool | None = Field(default=None, description="Structured-outputs strictness.")


class Tool(BaseModel):
    """A tool offered to the model in a training example."""

    model_config = _STRICT

    type: Literal["function"] = Field(default="function", description="Always 'function'.")
    function: FunctionDefinition = Field(description="The function offered.")


class Message(BaseModel):
    """One chat message of a training example.

    ``weight`` (0 or 1) and ``tool_calls`` belong to assistant messages only;
    ``tool_call_id`` to tool messages, which must carry one.
    """

    model_config = _STRICT

    role: Role = Field(description="system, user, assistant or tool.")
    content: str | None = Field(
        default=None, description="Text; may be null only on an assistant message with tool_calls."
    )
    name: str | None = Field(default=None, description="Optional participant name.")
    weight: Literal[0, 1] | None = Field(
        default=None, description="Assistant only: 0 skips training on this message, 1 trains."
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="Assistant only: the tools this message calls."
    )
    tool_call_id: str | None = Field(
        default=None, description="Tool only: the id of the call this message answers."
    )

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_is_not_bool(cls, value: object) -> object:
        # Literal[0, 1] alone would accept True and False, which OpenAI rejects.
        if isinstance(value, bool):
            raise ValueError("weight must be the integer 0 or 1, not a boolean")
        return value

    @model_validator(mode="after")
    def _role_rules(self) -> Self:
        if self.weight is not None and self.role != "assistant":
            raise ValueError(f"'weight' is only allowed on assistant messages, not {self.role}")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError(f"'tool_calls' is only allowed on assistant messages, not {self.role}")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs a 'tool_call_id'")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError(f"'tool_call_id' is only allowed on tool messages, not {self.role}")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs 'content'")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The message as OpenAI's JSONL has it (unset optional keys left out)."""
        out: dict[str, Any] = {"role": self.role}
        if self.content is not None:
            out["content"] = self.content
        if self.name is not None:
            out["name"] = self.name
        if self.weight is not None:
            out["weight"] = self.weight
        if self.tool_calls is not None:
            out["tool_calls"] = [c.model_dump(exclude_none=True) for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class TrainingExample(BaseModel):
    """One line of a chat fine-tuning JSONL file."""

    model_config = _STRICT

    messages: list[Message] = Field(min_length=1, description="The conversation.")
    tools: list[Tool] | None = Field(default=None, description="Tools offered to the model.")
    parallel_tool_calls: bool | None = Field(
        default=None, description="Whether the model may call several tools at once."
    )

    @model_validator(mode="after")
    def _has_assistant(self) -> Self:
        if not any(m.role == "assistant" for m in self.messages):
            raise ValueError("an example needs at least one assistant message to learn from")
        return self

    @classmethod
    def from_qa(
        cls,
        pair: QAPair,
        *,
        system_prompt: str | None = None,
        stop: str | None = DEFAULT_STOP,
    ) -> TrainingExample:
        """Build the seed workflow's three-message example from a QA pair.

        Args:
            pair: the question and answer.
            system_prompt: the system message; ``None`` or ``""`` leaves it out.
            stop: marker appended to the answer after one space (``None`` or ``""``: none).
                Query the fine-tuned model with the same string as ``stop``.
        """
        messages = []
        if system_prompt:
            messages.append(Message(role="system", content=system_prompt))
        messages.append(Message(role="user", content=pair.question))
        answer = f"{pair.answer} {stop}" if stop else pair.answer
        messages.append(Message(role="assistant", content=answer))
        return cls(messages=messages)

    def to_dict(self) -> dict[str, Any]:
        """The example as a plain dict in OpenAI's JSONL shape."""
        out: dict[str, Any] = {"messages": [m.to_dict() for m in self.messages]}
        if self.tools is not None:
            out["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
        return out

    def to_json(self) -> str:
        """One compact JSONL line (no trailing newline), UTF-8 characters unescaped."""
        return orjson.dumps(self.to_dict()).decode("utf-8")

    @classmethod
    def from_json(cls, line: str | bytes) -> TrainingExample:
        """Parse one JSONL line strictly.

        Raises:
            UsageError: the line is not JSON or not a valid example; the message says why.
        """
        try:
            return cls.model_validate(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"not valid JSON: {exc}") from exc
        except ValidationError as exc:
            raise UsageError(f"not a valid training example: {_first_error(exc)}") from exc

    @property
    def question(self) -> str | None:
        """Content of the first user message, if any."""
        return next((m.content for m in self.messages if m.role == "user"), None)

    @property
    def answer(self) -> str | None:
        """Content of the last assistant message, if any."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), None)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
