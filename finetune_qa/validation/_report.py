"""The validation report: issues, distributions, the cost estimate, and the report itself."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa._text import Histogram
from finetune_qa.validation._render import render_report

Severity = Literal["error", "warning"]


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
        return render_report(self, markdown=False)

    def to_markdown(self) -> str:
        """A Markdown rendering for pull requests and notebooks."""
        return render_report(self, markdown=True)


def _issue_order(issue: ValidationIssue) -> tuple[str, int, int, str]:
    # by file, then line; issues about the file as a whole (no line) come after its lines
    no_line = issue.line is None
    return (issue.file or "", no_line, issue.line or 0, issue.kind)
