"""Chat examples -> token ids and labels, with loss only where the hosted trainers put it.

The model's own chat template renders each conversation (system prompt included). Loss is
on assistant messages only, end-of-turn token included (so EOS is learned, and the stop
marker, which is part of the answer text, too); an assistant message with ``weight: 0`` is
masked, as OpenAI does. Each assistant span is found by rendering the conversation up to
that message, so any template that renders incrementally works, with or without
``{% generation %}`` markers. TRL's ``SFTTrainer`` takes the result as a pre-tokenized
dataset (``input_ids`` + ``labels``) and does the rest: batching, padding or packing,
loss, token accuracy, evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from finetune_qa._fs import open_regular

__all__ = ["IGNORE", "DataLineError", "EncodedExample", "encode_example", "read_chat_jsonl"]

IGNORE = -100
"""The label of a token that carries no loss (PyTorch's cross-entropy ignore index)."""

EncodedExample = dict[str, list[int]]


class DataLineError(ValueError):
    """A line of a training file the trainer cannot use (carries the 1-based line)."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}:{line}: {message}")


def read_chat_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, example) for each non-blank line of a chat JSONL file.

    Raises:
        DataLineError: a line is not a JSON object with a ``messages`` list.
    """
    with open_regular(path) as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DataLineError(path, n, f"not JSON ({exc})") from exc
            if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
                raise DataLineError(path, n, "not a chat example (no 'messages' list)")
            yield n, obj


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], tools: Any, gen: bool) -> str:
    text = tokenizer.apply_chat_template(
        list(messages), tools=tools, tokenize=False, add_generation_prompt=gen
    )
    return str(text)


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "weight"}


def encode_example(tokenizer: Any, example: dict[str, Any]) -> EncodedExample:
    """Token ids and labels of one chat example.

    Raises:
        ValueError: the template does not render the conversation incrementally (its
            prefix up to an assistant message is not a prefix of the whole), or the
            example has no assistant message to learn from.
    """
    messages = [_clean(m) for m in example["messages"]]
    tools = example.get("tools")
    full = _render(tokenizer, messages, tools, False)
    spans: list[tuple[int, int]] = []
    assistants = 0
    for i, message in enumerate(example["messages"]):
        if message.get("role") != "assistant":
            continue
        assistants += 1
        if message.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, messages[:i], tools, True) if i else ""
        upto = _render(tokenizer, messages[: i + 1], tools, False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise ValueError(
                "the chat template does not render the conversation message by message "
                "(a later message changes how earlier ones are rendered); pass a chat "
                "template that does (chat_template=...)"
            )
        spans.append((len(before), len(upto)))
    if not assistants:
        raise ValueError("the example has no assistant message to learn from")
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(a <= start < b for a, b in spans):
            labels[t] = ids[t]
    return {"input_ids": ids, "labels": labels}
