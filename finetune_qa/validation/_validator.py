"""The streaming validator: lines or examples in, a :class:`ValidationReport` out."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from finetune_qa._limits import MAX_EPOCHS, check_epochs
from finetune_qa._text import UTF8_BOM, Histogram, is_int, key_hash, plural, question_key
from finetune_qa.catalog import ModelCatalog, ModelInfo, default_catalog
from finetune_qa.config import DEFAULT_MODEL
from finetune_qa.config import today as config_today
from finetune_qa.exceptions import UsageError
from finetune_qa.tokens import (
    TOKENS_PER_EXAMPLE,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    BatchCounter,
    encoding_name_for_model,
)
from finetune_qa.validation._providers import provider_rules
from finetune_qa.validation._report import (
    CostEstimate,
    Distribution,
    Severity,
    ValidationIssue,
    ValidationReport,
    _issue_order,
)
from finetune_qa.validation._rules import _HINTS, ROLES, CheckedExample, default_epochs

_BATCH = 4096
_MAX_SUFFIXES = 64
_MAX_LINE_MEMO = 200_000


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
        self._rules = provider_rules(self.provider)
        self._hints = {**_HINTS, **self._rules.hints}
        self.model_name = model.name if isinstance(model, ModelInfo) else model
        self.encoding_name = encoding or encoding_name_for_model(self.info)
        if n_epochs is not None and (not is_int(n_epochs) or check_epochs(n_epochs)):
            raise UsageError(f"n_epochs must be between 1 and {MAX_EPOCHS}, got {n_epochs}")
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
            hint = self._hints.get(kind)
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
        if line == 1 and raw.startswith(UTF8_BOM):
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
        ex = self._rules.check(obj, errs)
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

    def _plan(self, ex: CheckedExample, line: int | None, *, validation: bool) -> None:
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
        self._file_issues()
        stop = self.stop or self._detect_stop()
        return ValidationReport(
            path=self.path,
            validation_path=self.validation_path,
            model=self.model_name,
            encoding=self.encoding_name,
            counting=self._counting(),
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
            cost=self._cost(),
            model_warnings=self.info.warnings_on(self.today),
        )

    def _file_issues(self) -> None:
        """The issues about the files as a whole, known once every line is in."""
        overlap = self.warning_counts.get("train_validation_overlap", 0)
        if overlap and overlap == self.validation_examples:
            # every validation question is a training one: a sample repeated on purpose
            # (DatasetBuilder.sample_validation), whose loss tracks what the model learnt
            del self.warning_counts["train_validation_overlap"]
            self.warnings = [w for w in self.warnings if w.kind != "train_validation_overlap"]
        if self.examples < self._rules.min_examples:
            self._issue(
                "too_few_examples",
                "error",
                plural(self.examples, "valid example"),
                None,
            )
        if self.validation_path is not None and self.validation_examples == 0:
            self._validation_phase = True  # the issue is the validation file's
            self._issue("empty_validation_file", "error", "no valid example", None)
            self._validation_phase = False

    def _cost(self) -> CostEstimate:
        fixed = self._rules.default_epochs
        epochs = self.n_epochs or (fixed if fixed is not None else default_epochs(self.examples))
        price = self.info.training_price_per_1m
        as_of = f", catalogue as of {self._as_of.isoformat()}" if self._as_of else ""
        return CostEstimate(
            model=self.info.name,
            token_limit=self.limit,
            limit_source=f"training-example limit of {self.info.name}{as_of}",
            billed_tokens_per_epoch=self.billed,
            n_epochs=epochs,
            epochs_source=(
                "given"
                if self.n_epochs
                else "provider default"
                if fixed is not None
                else "default heuristic"
            ),
            billed_tokens_total=self.billed * epochs,
            price_per_1m=price,
            estimated_cost_usd=(
                self.billed * epochs * price / 1_000_000 if price is not None else None
            ),
        )

    def _counting(self) -> str:
        """How the tokens were counted, for the report."""
        if self.info.tokenizer_exact:
            return (
                f"exact tiktoken {self.encoding_name} counts; per example {TOKENS_PER_EXAMPLE} + "
                f"per message {TOKENS_PER_MESSAGE} + role + content (+ name + {TOKENS_PER_NAME}), "
                "OpenAI's chat formula"
            )
        return (
            f"an ESTIMATE with tiktoken {self.encoding_name}: {self.info.name} uses its "
            "own tokenizer, so its real counts (and the price) differ; OpenAI's chat formula"
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
