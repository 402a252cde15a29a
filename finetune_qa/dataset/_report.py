"""The build report: what was read, kept, dropped and changed, and why; augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finetune_qa._pipeline import Accounts, Example, Options, Tally, short
from finetune_qa.data import Provenance
from finetune_qa.readers import QASource

if TYPE_CHECKING:
    from finetune_qa.dataset._builder import DatasetBuilder

from typing import TYPE_CHECKING, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.readers import (
    CHANGE_REASONS,
    ISSUE_REASONS,
)
from finetune_qa.validation import ValidationReport

if TYPE_CHECKING:
    pass


__all__ = [
    "CHANGES",
    "REASONS",
    "AugmentReport",
    "BuildReport",
    "ReasonCount",
    "ReasonExample",
    "build_report",
    "drop_summary",
    "settings_note",
]

REASONS: dict[str, str] = {
    **ISSUE_REASONS,  # the readers' reasons, described where they are raised
    "question_too_short": "the question is shorter than the minimum length",
    "answer_too_short": "the answer is shorter than the minimum length",
    "answer_contains_stop": (
        "the answer holds the stop marker: a model trained on it stops there, so answers "
        "would be cut short"
    ),
    "duplicate_question": "the same question (ignoring case, spacing and punctuation) came earlier",
}
"""Why a pair can be dropped; custom filters add their own names."""

CHANGES: dict[str, str] = {
    **CHANGE_REASONS,
    "unicode_normalized": "the text was put in Unicode NFC form",
    "whitespace_normalized": "runs of spaces or tabs were collapsed to one space",
}
"""What the readers and the builder may change in a pair (it is kept, and counted)."""


class ReasonExample(BaseModel):
    """One example of a drop or change, with where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="file:line (row, item).")
    question: str | None = Field(default=None, description="The question, shortened.")
    answer: str | None = Field(default=None, description="The answer, shortened.")
    detail: str | None = Field(default=None, description="What exactly happened.")


class ReasonCount(BaseModel):
    """How many pairs one reason covers, and a few examples."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(description="Number of pairs.")
    description: str = Field(description="What the reason means.")
    examples: list[ReasonExample] = Field(description="The first few pairs it applied to.")


class AugmentReport(BaseModel):
    """What augmentation added to a build: rephrasings of each kept question, same answer."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(description="Rephrasings asked per question.")
    writer: str = Field(description="The writer model that rephrased.")
    questions: int = Field(description="Kept questions rephrased.")
    added: int = Field(description="Rephrasings written (train + validation).")
    added_train: int = Field(description="Rephrasings in the training file.")
    added_validation: int = Field(description="Rephrasings in the validation file.")
    skipped: dict[str, int] = Field(
        description="Rephrasings not written, by reason: duplicate (the same as a kept "
        "question or an earlier rephrasing), too_short (under the minimum length)."
    )
    cache_hits: int = Field(description="Questions whose rephrasings came from the cache.")
    requests: int = Field(description="Requests sent to the writer.")
    failed: int = Field(description="Questions the writer gave no usable rephrasing for.")

    def to_text(self) -> str:
        """One line for a report."""
        skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(self.skipped.items()) if v)
        return (
            f"augmented: +{self.added:,} rephrasings of {self.questions:,} questions "
            f"({self.k} asked each, writer {self.writer}; {self.added_train:,} train, "
            f"{self.added_validation:,} validation); cache hits {self.cache_hits:,}, "
            f"requests {self.requests:,}, failed {self.failed:,}"
            + (f"; skipped: {skipped}" if skipped else "")
        )


class BuildReport(BaseModel):
    """What a build read, kept, dropped (by reason) and changed, and where it wrote."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(description="Inputs, in the order read, with their format.")
    read: int = Field(description="Candidate pairs read (kept + dropped).")
    kept: int = Field(
        description="Pairs written (train + validation; train alone when validation repeats "
        "a sample of training)."
    )
    train: int = Field(description="Examples in the training file.")
    validation: int = Field(description="Examples in the validation file.")
    dropped: int = Field(description="Pairs not written.")
    dropped_by_reason: dict[str, ReasonCount] = Field(description="Drops by reason.")
    changed_by_reason: dict[str, ReasonCount] = Field(description="Changes by kind.")
    output: str | None = Field(description="Training JSONL written.")
    validation_output: str | None = Field(description="Validation JSONL written, if any.")
    system_prompt: str | None = Field(description="System message of every example.")
    stop: str | None = Field(description="Stop marker appended to every answer.")
    validation_fraction: float = Field(
        description="Share of questions asked for the validation file (held out or sampled)."
    )
    validation_mode: Literal["none", "holdout", "sample"] = Field(
        default="none",
        description="holdout: validation questions are kept out of training; sample: "
        "the validation file repeats a sample of the training examples; none: no split.",
    )
    seed: int = Field(description="Seed of the split.")
    notes: list[str] = Field(
        default_factory=list,
        description="What the build decided that the counts do not show: settings kept "
        "from a chat source or replaced, a validation file not written, and why.",
    )
    token_report: ValidationReport | None = Field(
        default=None, description="Token figures and cost of the training file, when asked for."
    )
    augmentation: AugmentReport | None = Field(
        default=None,
        description="Rephrasings added (augment=K): counted apart from kept, which counts "
        "the pairs read; train and validation count every example written.",
    )

    @property
    def reconciles(self) -> bool:
        """True when read == kept + dropped and the drops add up by reason."""
        return self.read == self.kept + self.dropped and self.dropped == sum(
            r.count for r in self.dropped_by_reason.values()
        )

    def describe_split(self) -> str:
        """The split in words, e.g. for a model card."""
        if self.validation_output is None:
            return f"every pair trained on ({self.train:,}); no validation file"
        if self.validation_mode == "sample":
            return (
                f"every pair trained on ({self.train:,}); {self.validation:,} of them repeated "
                f"as validation (seed {self.seed})"
            )
        return (
            f"{self.validation:,} of {self.kept:,} questions held out of training for "
            f"validation (seed {self.seed})"
        )

    def to_json(self) -> str:
        """The report as indented JSON."""
        data = self.model_dump(mode="json")
        data["reconciles"] = self.reconciles
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")

    def to_text(self) -> str:
        """A plain-text rendering."""
        return self._render(markdown=False)

    def to_markdown(self) -> str:
        """A Markdown rendering."""
        return self._render(markdown=True)

    def _render(self, *, markdown: bool) -> str:
        h = "## " if markdown else ""
        b = "- " if markdown else "  "
        out = [f"{'# ' if markdown else ''}Build report", ""]
        for s in self.sources:
            out.append(f"{b}source: {s}")
        out.append(
            f"{b}read {self.read:,} pairs = kept {self.kept:,} + dropped {self.dropped:,}"
            f" ({'reconciles' if self.reconciles else 'DOES NOT RECONCILE'})"
        )
        out.append(f"{b}train: {self.train:,} -> {self.output}")
        if self.validation_output:
            what = " (copies of training examples)" if self.validation_mode == "sample" else ""
            out.append(f"{b}validation: {self.validation:,} -> {self.validation_output}{what}")
        if self.augmentation is not None:
            out.append(f"{b}{self.augmentation.to_text()}")
        for note in self.notes:
            out.append(f"{b}note: {note}")
        for title, table in (
            ("Dropped", self.dropped_by_reason),
            ("Changed", self.changed_by_reason),
        ):
            if not table:
                continue
            out.append("")
            out.append(f"{h}{title}")
            for reason, rc in table.items():
                out.append(f"{b}{reason}: {rc.count:,} ({rc.description})")
                for ex in rc.examples:
                    parts = [ex.source]
                    if ex.detail:
                        parts.append(ex.detail)
                    if ex.question is not None:
                        parts.append(f"Q: {ex.question!r}")
                    if ex.answer is not None:
                        parts.append(f"A: {ex.answer!r}")
                    out.append(("    - " if markdown else "      ") + " | ".join(parts))
        text = "\n".join(out) + "\n"
        if self.token_report is not None:
            text += "\n" + (
                self.token_report.to_markdown() if markdown else self.token_report.to_text()
            )
        return text


def settings_note(src: QASource, prompt: str | None, stop: str | None) -> str:
    """What a build did with the system prompt and stop marker a chat source carries."""
    parts = []
    if src.system_prompt_varies:
        parts.append(f"its examples carry different system prompts; all now have {prompt!r}")
    elif src.system_prompt == prompt:
        parts.append("system prompt kept" if prompt else "no system prompt, kept so")
    elif src.system_prompt is None:
        parts.append(f"no system prompt; {prompt!r} added")
    else:
        parts.append(
            f"system prompt {short(src.system_prompt, 60)!r} replaced by "
            f"{short(prompt, 60) if prompt else 'none'!r}"
        )
    if src.stop == stop:
        parts.append(
            f"stop marker {stop!r} kept (removed when read, appended once)"
            if stop
            else "no stop marker, kept so"
        )
    elif src.stop is None:
        parts.append(f"no stop marker; {stop!r} appended")
    else:
        parts.append(
            f"stop marker {src.stop!r} removed"
            + (f" and {stop!r} appended instead" if stop else ", none appended")
        )
    return f"{src.path}: " + "; ".join(parts)


def _example(ex: Example) -> ReasonExample:
    file, line, row, item, q, a, detail = ex
    where = Provenance.model_construct(file=file, line=line, row=row, item=item).render()
    return ReasonExample(source=where, question=short(q), answer=short(a), detail=detail)


def drop_summary(drops: dict[str, Tally]) -> str:
    if not drops:
        return "the sources held no pairs"
    return ", ".join(
        f"{k} {v.count:,}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1].count)
    )


def build_report(
    builder: DatasetBuilder,
    acc: Accounts,
    n_train: int,
    n_val: int,
    out_path: Path,
    val_path: Path | None,
    opts: Options | None = None,
    stop: str | None = None,
    notes: list[str] | None = None,
) -> BuildReport:
    def table(d: dict[str, Tally], names: dict[str, str], default: str) -> dict[str, ReasonCount]:
        return {
            k: ReasonCount(
                count=v.count,
                description=names.get(k, default),
                examples=[_example(e) for e in v.examples],
            )
            for k, v in sorted(d.items(), key=lambda kv: (-kv[1].count, kv[0]))
        }

    dropped = sum(t.count for t in acc.drops.values())
    if opts is None:
        opts = builder._options()
        stop = builder.settings()[1]
    changes = acc.changes()
    kept_marker = {
        s.source.stop
        for s in builder._sources
        if s.source is not None and s.source.format == "chat_jsonl" and s.source.stop
    }
    if kept_marker == {stop}:
        # the marker read off the answers is appended again: the output did not change
        changes.pop("stop_marker_removed", None)
    aug = builder._aug
    written = n_train - aug["added_train"] if opts.sample else n_train + n_val - aug["added"]
    return BuildReport(
        sources=[s.label for s in builder._sources],
        read=acc.read,
        kept=written,
        train=n_train,
        validation=n_val,
        dropped=dropped,
        dropped_by_reason=table(acc.drops, REASONS, "rejected by a custom filter"),
        changed_by_reason=table(changes, CHANGES, "changed"),
        output=str(out_path),
        validation_output=str(val_path) if val_path is not None else None,
        system_prompt=opts.system_prompt,
        stop=stop,
        validation_fraction=builder.validation_fraction,
        validation_mode=builder.validation_mode,
        seed=builder.seed,
        notes=list(notes or []),
        augmentation=_augment_report(builder),
    )


def _augment_report(builder: DatasetBuilder) -> AugmentReport | None:
    rephraser = builder._rephraser
    if rephraser is None:
        return None
    aug, stats = builder._aug, rephraser.stats
    return AugmentReport(
        k=rephraser.k,
        writer=rephraser.writer,
        questions=aug["questions"],
        added=aug["added"],
        added_train=aug["added_train"],
        added_validation=aug["added_validation"],
        skipped={k: aug[k] for k in ("duplicate", "too_short")},
        cache_hits=stats.cache_hits,
        requests=stats.requests,
        failed=stats.failed,
    )
