"""The report as text for terminals and logs, or as Markdown for pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetune_qa._text import fmt_number

if TYPE_CHECKING:
    from finetune_qa.validation._report import ValidationReport


def render_report(r: ValidationReport, *, markdown: bool) -> str:
    """``r`` as plain text (``markdown=False``) or Markdown."""
    out: list[str] = []
    h = "## " if markdown else ""
    bullet = "- " if markdown else "  "
    _summary(r, out, markdown=markdown, bullet=bullet)
    _issues(r, out, markdown=markdown, h=h, bullet=bullet)
    _distributions(r, out, markdown=markdown, h=h)
    _cost(r, out, h=h, bullet=bullet)
    return "\n".join(out) + "\n"


def _summary(r: ValidationReport, out: list[str], *, markdown: bool, bullet: str) -> None:
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


def _issues(r: ValidationReport, out: list[str], *, markdown: bool, h: str, bullet: str) -> None:
    quote = "`" if markdown else ""
    indent = "" if markdown else "  "
    if r.error_counts:
        out.append("")
        out.append(f"{h}Errors")
        for kind, n in r.error_counts.items():
            out.append(f"{bullet}{kind}: {n:,}")
        for e in r.errors:
            out.append(f"{bullet}{quote or indent}{e.render()}{quote}")
    if r.warning_counts:
        out.append("")
        out.append(f"{h}Warnings")
        for kind, n in r.warning_counts.items():
            out.append(f"{bullet}{kind}: {n:,}")
        for w in r.warnings[:60]:
            out.append(f"{bullet}{quote or indent}{w.render()}{quote}")


def _distributions(r: ValidationReport, out: list[str], *, markdown: bool, h: str) -> None:
    dists = [
        ("messages per example", r.messages_per_example),
        ("tokens per example", r.tokens_per_example),
        ("assistant tokens per example", r.assistant_tokens_per_example),
    ]
    if not any(d for _, d in dists):
        return
    out.append("")
    out.append(f"{h}Distributions")
    if markdown:
        out.append("| figure | min | max | mean | median | p10 | p90 |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, d in dists:
        if d is None:
            continue
        cells = [fmt_number(x) for x in (d.min, d.max, d.mean, d.median, d.p10, d.p90)]
        if markdown:
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        else:
            out.append(
                f"  {name}: min {cells[0]}, max {cells[1]}, mean {cells[2]}, "
                f"median {cells[3]}, p10 {cells[4]}, p90 {cells[5]}"
            )


def _cost(r: ValidationReport, out: list[str], *, h: str, bullet: str) -> None:
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
