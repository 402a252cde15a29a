"""The two JSONL layouts: pairs (``{"question", "answer"}``) and chat (``{"messages"}``)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import IO, Any, NoReturn

import orjson

from finetune_qa._fs import capped_line, capped_lines, read_range
from finetune_qa._text import UTF8_BOM, plural
from finetune_qa.exceptions import JSONLFormatError, RecordError
from finetune_qa.readers._base import _SourceBase
from finetune_qa.readers._types import (
    _COLUMN_HINT,
    _NO_CHANGE,
    _STOP_REMOVED,
    _WHITESPACE,
    _WHITESPACE_STOP,
    RawPair,
    ReadIssue,
    _json_type,
    _shorten,
)

_SNIFF_LINES = 200  # examples read up front for a chat file's system prompt and stop marker
_CLOSING = frozenset(".,;:!?)\"'’”»…")  # a last word ending in these is prose, not a marker


class _JSONLReading(_SourceBase):
    """Reading a JSONL source: lines, JSON errors, and the pairs of either layout."""

    def _sniff_chat(self, *, detect_stop: bool) -> None:
        """Read the settings the first examples carry: their system message, their marker."""
        prompts: set[str | None] = set()
        answers: list[str] = []
        with self._open() as f:
            for n, raw in enumerate(f):
                if n >= _SNIFF_LINES:
                    break
                try:
                    obj = orjson.loads(raw[3:] if n == 0 and raw.startswith(UTF8_BOM) else raw)
                except orjson.JSONDecodeError:
                    continue  # reported with its line number when the stream reaches it
                messages = obj.get("messages") if isinstance(obj, dict) else None
                if type(messages) is not list:
                    continue
                system: str | None = None
                said = [m for m in messages if isinstance(m, dict)]
                for m in said:
                    if m.get("role") in ("system", "developer") and type(m.get("content")) is str:
                        system = m["content"]
                        break
                prompts.add(system)
                replies = [m.get("content") for m in said if m.get("role") == "assistant"]
                if len(replies) == 1 and type(replies[0]) is str and replies[0].strip():
                    answers.append(replies[0].strip())
        if len(prompts) == 1:
            self.system_prompt = prompts.pop()
        elif prompts:
            self.system_prompt_varies = True
        if detect_stop:
            self.stop = detect_stop_marker(answers)
            self.stop_detected = self.stop is not None

    # -- CSV --------------------------------------------------------------------------

    def _json_lines(self, f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        if self._range is not None:
            start, end, first_line = self._range
            return enumerate(read_range(f, start, end, self.path), first_line)
        first = self._check_bom(capped_line(f, self.path, 1))
        return enumerate(chain((first,), capped_lines(f, self.path, first_line=2)), 1)

    def _raise_json_error(self, exc: orjson.JSONDecodeError, raw: bytes, line: int) -> NoReturn:
        try:
            text = raw.decode()
        except UnicodeDecodeError as decode_exc:
            raise self._decode_error(decode_exc, line) from decode_exc
        where = (
            "at the end of the line"
            if exc.pos >= len(text.rstrip())
            else f"at column {exc.pos + 1}"
        )
        hint = "each line must be one JSON object; fix or remove this line"
        if "\r" in text.rstrip("\r\n"):
            raise JSONLFormatError(
                "the lines end with a lone carriage return (CR: old Mac line endings), so "
                "this line holds several records",
                path=self.path,
                line=line,
                hint="save the file with LF line endings (e.g. `tr '\\r' '\\n' < in > out`)",
            ) from exc
        if line == 1 and text.lstrip().startswith("["):
            hint = (
                "the file must be JSON Lines, one object per line; convert a JSON array "
                "with `jq -c '.[]' in.json > out.jsonl`"
            )
        raise JSONLFormatError(
            f"not valid JSON ({exc.msg}, {where})",
            path=self.path,
            line=line,
            hint=hint,
        ) from exc

    def _not_object(self, value: object, line: int) -> JSONLFormatError:
        return JSONLFormatError(
            f"the line is {_json_type(value)}, not a JSON object",
            path=self.path,
            line=line,
            hint="each line must be one JSON object; fix or remove this line",
        )

    def _json_objects(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(line, row, object)`` for every non-blank line; bad JSON or a non-object raises."""
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        with self._open() as f:
            row = 0
            for line, raw in self._json_lines(f):
                if not raw or raw.isspace():
                    continue
                row += 1
                try:
                    obj = loads(raw)
                except decode_error as exc:
                    self._raise_json_error(exc, raw, line)
                if type(obj) is not dict:
                    raise self._not_object(obj, line)
                yield line, row, obj
            self.rows_read = row

    def _iter_pairs_jsonl(self) -> Iterator[RawPair | ReadIssue]:
        qk = self.question_column or "question"
        ak = self.answer_column or "answer"
        for line, row, obj in self._json_objects():
            question = obj.get(qk)
            answer = obj.get(ak)
            if type(question) is not str or type(answer) is not str:
                raise self._record_error(obj, qk, ak, line)
            q = question.strip()
            a = answer.strip()
            if q and a:
                changes = (
                    _WHITESPACE if len(q) != len(question) or len(a) != len(answer) else _NO_CHANGE
                )
                yield (q, a, line, row, None, changes)
            elif q:
                yield self._empty_issue("answer", line, row, None, q, a)
            else:
                yield self._empty_issue("question", line, row, None, q, a)

    def _record_error(self, obj: dict[str, object], qk: str, ak: str, line: int) -> RecordError:
        hint = (
            f"each line needs string values for {qk!r} and {ak!r}; if the keys have other "
            f"names, pass question_column=/answer_column= ({_COLUMN_HINT})"
        )
        for key in (qk, ak):
            if key not in obj:
                keys = ", ".join(repr(_shorten(k, 30)) for k in list(obj)[:10]) or "none"
                return RecordError(
                    f"the object has no {key!r} key (keys found: {keys})",
                    path=self.path,
                    line=line,
                    hint=hint,
                )
            value = obj[key]
            if type(value) is not str:
                return RecordError(
                    f"{key!r} is {_json_type(value)}, not a string",
                    path=self.path,
                    line=line,
                    hint=hint,
                )
        raise AssertionError("unreachable: both values are strings")  # pragma: no cover

    def _not_single_turn(
        self,
        user: dict[str, object],
        assistant: dict[str, object],
        users: int,
        assistants: int,
        others: int,
        line: int,
        row: int,
    ) -> ReadIssue:
        content = user.get("content")
        question = content.strip() or None if isinstance(content, str) else None
        content = assistant.get("content")
        answer = content.strip() or None if isinstance(content, str) else None
        if not users or not assistants:
            lacking = "user" if not users else "assistant"
            return ReadIssue(
                "no_user_or_assistant",
                f"the example has no {lacking} message, so it holds no question/answer pair "
                "and was skipped",
                self.path,
                line,
                row,
                question=question,
                answer=answer,
            )
        counts = f"{plural(users, 'user message')} and {plural(assistants, 'assistant message')}"
        if others:
            counts += f" (and {plural(others, 'message')} of other roles)"
        return ReadIssue(
            "multi_turn",
            f"the example has {counts}; only single-turn examples can be read as "
            "question/answer pairs, so it was skipped",
            self.path,
            line,
            row,
            question=question,
            answer=answer,
        )

    def _chat_roles(
        self, obj: dict[str, Any], line: int
    ) -> tuple[dict[str, object], dict[str, object], int, int, int]:
        """The first user and assistant messages, and how many of each role (and others).

        A line whose ``messages`` is not a list of objects with a string role raises.
        """
        path = self.path
        messages = obj.get("messages")
        if type(messages) is not list:
            what = (
                "missing"
                if messages is None and "messages" not in obj
                else (f"{_json_type(messages)}, not a list")
            )
            raise RecordError(
                f"'messages' is {what}",
                path=path,
                line=line,
                hint='each line must be {"messages": [{"role": ..., "content": ...}, '
                "...]}; fix or remove this line",
            )
        users = assistants = others = 0
        user: dict[str, object] = {}
        assistant: dict[str, object] = {}
        for number, message in enumerate(messages, 1):
            if type(message) is not dict:
                raise RecordError(
                    f"message {number} is {_json_type(message)}, not an object",
                    path=path,
                    line=line,
                    hint='each message must be an object like {"role": "user", "content": "..."}',
                )
            role = message.get("role")
            if type(role) is not str:
                problem = (
                    f"message {number} has no 'role'"
                    if role is None
                    else f"the 'role' of message {number} is {_json_type(role)}, not a string"
                )
                raise RecordError(
                    problem,
                    path=path,
                    line=line,
                    hint='give every message a "role": "system", "user" or "assistant"',
                )
            if role == "user":
                if not users:
                    user = message
                users += 1
            elif role == "assistant":
                if not assistants:
                    assistant = message
                assistants += 1
            elif role not in ("system", "developer"):
                others += 1
        return user, assistant, users, assistants, others

    def _non_text(self, question: object, answer: object, line: int, row: int) -> ReadIssue:
        which, value = ("user", question) if type(question) is not str else ("assistant", answer)
        return ReadIssue(
            "non_text_content",
            f"the {which} message's content is {_json_type(value)}, not text, so "
            "the example was skipped",
            self.path,
            line,
            row,
            question=question if type(question) is str else None,
            answer=answer if type(answer) is str else None,
        )

    def _iter_chat_jsonl(self) -> Iterator[RawPair | ReadIssue]:
        stop = self.stop
        for line, row, obj in self._json_objects():
            user, assistant, users, assistants, others = self._chat_roles(obj, line)
            if not users or not assistants or users > 1 or assistants > 1 or others:
                yield self._not_single_turn(user, assistant, users, assistants, others, line, row)
                continue
            question = user.get("content")
            answer = assistant.get("content")
            if type(question) is not str or type(answer) is not str:
                yield self._non_text(question, answer, line, row)
                continue
            q = question.strip()
            a = answer.strip()
            stripped = len(q) != len(question) or len(a) != len(answer)
            removed = False
            if stop is not None and a.endswith(stop):
                a = a[: -len(stop)].rstrip()
                removed = True
            if q and a:
                if removed:
                    changes = _WHITESPACE_STOP if stripped else _STOP_REMOVED
                else:
                    changes = _WHITESPACE if stripped else _NO_CHANGE
                yield (q, a, line, row, None, changes)
            elif q:
                yield self._empty_issue("answer", line, row, None, q, a)
            else:
                yield self._empty_issue("question", line, row, None, q, a)


def detect_stop_marker(answers: list[str]) -> str | None:
    """The stop marker every answer ends with, or None.

    A marker is the last white-space-separated word of every answer, and either the
    default ``**STOP**`` or, with two answers or more, a word that ends in a symbol other
    than closing punctuation (``###``, ``<|end|>``, ``[END]``): a word every answer
    happens to end with (``month.``) is not taken for one.

    Example:
        >>> detect_stop_marker(["Free. ###", "Five euros. ###"])
        '###'
        >>> detect_stop_marker(["It costs €5 a month.", "It costs €48 a month."]) is None
        True
    """
    from finetune_qa.config import DEFAULT_STOP

    if not answers:
        return None
    words = answers[0].rsplit(None, 1)
    if len(words) != 2:
        return None
    marker = words[1]
    with_text = 0
    for answer in answers:
        if answer == marker:
            continue  # an answer that is only the marker (read as an empty answer)
        body = answer[: -len(marker)]
        if not answer.endswith(marker) or not body or not body[-1].isspace():
            return None
        with_text += 1
    if marker == DEFAULT_STOP and with_text:
        return marker
    last = marker[-1]
    if with_text >= 2 and not last.isalnum() and last not in _CLOSING:
        return marker
    return None
