"""Checking a job's training and validation files as OpenAI checks them.

Chat files go through finetune_qa's own :class:`~finetune_qa.validation.Validator`;
preference (DPO) files are checked line by line here. The first problem fails the job
with ``invalid_training_file`` (or ``invalid_validation_file``) and a message naming the
line.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from finetune_qa.backends._fake._answers import qa_of_example
from finetune_qa.backends._fake._records import _Checked, _File, _Invalid, _Job
from finetune_qa.tokens import TokenCounter
from finetune_qa.validation import ValidationIssue, Validator

MIN_EXAMPLES = 10


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    return enumerate(io.BytesIO(data), 1)


def _first_error(errors: Iterable[ValidationIssue], file_label: str) -> ValidationIssue | None:
    mine = [e for e in errors if e.file == file_label]
    with_line = [e for e in mine if e.line is not None]
    return min(with_line, key=lambda e: e.line or 0) if with_line else (mine[0] if mine else None)


def _describe(issue: ValidationIssue, what: str) -> str:
    where = f"Line {issue.line}: " if issue.line is not None else ""
    msg = issue.message
    if issue.kind == "too_few_examples":
        msg = f"{msg}. Training needs at least {MIN_EXAMPLES} valid examples"
    elif issue.line is not None:
        msg = f"{issue.kind}: {msg}"
    return f"The job failed due to an invalid {what} file. {where}{msg}."


def _check_chat_files(
    job: _Job, train: _File, valid: _File | None, today: dt.date
) -> _Checked | _Invalid:
    """Validate chat JSONL with finetune_qa's Validator, as OpenAI validates it."""
    v = Validator(model=job.base, path=train.id, today=today)
    pairs: list[tuple[str, str]] = []
    try:
        for n, raw in _lines(train.data):
            v.add_line(raw, n)
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            pair = qa_of_example(obj) if isinstance(obj, dict) else None
            if pair is not None:
                pairs.append(pair)
        if valid is not None:
            v.start_validation_file(valid.id)
            for n, raw in _lines(valid.data):
                v.add_line(raw, n)
        report = v.finish()
    finally:
        v.close()
    issue = _first_error(report.errors, train.id)
    if issue is not None:
        return _Invalid("invalid_training_file", _describe(issue, "training"), "training_file")
    if valid is not None:
        issue = _first_error(report.errors, valid.id)
        if issue is not None:
            return _Invalid(
                "invalid_validation_file", _describe(issue, "validation"), "validation_file"
            )
    return report.examples, report.cost.billed_tokens_per_epoch, pairs


def _check_preference_files(job: _Job, train: _File, valid: _File | None) -> _Checked | _Invalid:
    """Validate DPO JSONL: ``input.messages`` plus one preferred and one non-preferred reply."""
    counter = TokenCounter(job.base)
    billed = 0
    pairs: list[tuple[str, str]] = []
    for label, f in (("training", train), ("validation", valid)):
        if f is None:
            continue
        n_ok = 0
        for n, raw in _lines(f.data):
            problem = None
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj, problem = None, "not valid JSON"
            if problem is None:
                problem = _preference_problem(obj)
            if problem is not None:
                msg = f"The job failed due to an invalid {label} file. Line {n}: {problem}."
                return _Invalid(f"invalid_{label}_file", msg, f"{label}_file")
            n_ok += 1
            if label == "training":
                inp = obj["input"]["messages"]
                for key in ("preferred_output", "non_preferred_output"):
                    billed += counter.count_messages([*inp, *obj[key]])
                pair = qa_of_example(obj)
                if pair is not None:
                    pairs.append(pair)
        if label == "training" and n_ok < MIN_EXAMPLES:
            msg = (
                f"The job failed due to an invalid training file. Training file has {n_ok} "
                f"example(s), but must have at least {MIN_EXAMPLES} examples."
            )
            return _Invalid("invalid_training_file", msg, "training_file")
    return len(pairs), billed, pairs


def _preference_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "each line must be a JSON object"
    inp = obj.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
        return "missing 'input.messages'"
    if not inp["messages"] or not any(
        isinstance(m, dict) and m.get("role") == "user" for m in inp["messages"]
    ):
        return "'input.messages' needs a user message"
    for key in ("preferred_output", "non_preferred_output"):
        out = obj.get(key)
        if (
            not isinstance(out, list)
            or len(out) != 1
            or not isinstance(out[0], dict)
            or out[0].get("role") != "assistant"
            or not isinstance(out[0].get("content"), str)
        ):
            return f"'{key}' must be a list with one assistant message"
    return None
