"""Verdicts from labels and log-probabilities; held-out reports and thresholds."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.exceptions import UsageError
from finetune_qa.guardrails._common import (
    MIN_HELDOUT_PER_CLASS,
    OFF_TOPIC_LABEL,
    ON_TOPIC_LABEL,
    Gate,
)


class Verdict(BaseModel):
    """A discriminator's decision on one input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate: Gate = Field(description="Which gate decided: 'question' or 'answer'.")
    on_topic: bool = Field(description="probability >= threshold.")
    probability: float = Field(ge=0.0, le=1.0, description="Probability that it is on topic.")
    threshold: float = Field(description="The threshold it was compared with.")
    label: str = Field(description="The label text the model replied with.")
    source: Literal["logprobs", "label"] = Field(
        description=(
            "Where the probability came from: the labels' log-probabilities, or the label "
            "text alone (1.0 or 0.0) when the provider gave none."
        )
    )


def _norm_label(token: str) -> str:
    return token.strip().casefold()


def probability_from_logprobs(
    logprobs: Sequence[dict[str, Any]] | None,
    *,
    on_label: str = ON_TOPIC_LABEL,
    off_label: str = OFF_TOPIC_LABEL,
) -> float | None:
    """Probability of the on-topic label from the first token's log-probabilities.

    ``exp(logprob)`` of each label is read from the first token's ``top_logprobs`` (and
    the token itself); tokens equal to a label after stripping white space and case
    folding add up (``"yes"``, ``" Yes"``). With both labels found the probability is
    normalised over the two; with one found, it is that label's own probability (or one
    minus it, for the off-topic label); with neither, None.

    Example:
        >>> import math
        >>> first = {"token": "yes", "logprob": math.log(0.6),
        ...          "top_logprobs": [{"token": "yes", "logprob": math.log(0.6)},
        ...                           {"token": "no", "logprob": math.log(0.2)}]}
        >>> round(probability_from_logprobs([first]), 3)
        0.75
    """
    if not logprobs:
        return None
    first = logprobs[0]
    entries = [first, *(first.get("top_logprobs") or [])]
    mass = {on_label: 0.0, off_label: 0.0}
    found: set[str] = set()
    tokens_seen: set[str] = set()
    for entry in entries:
        token, lp = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(lp, (int, float)) or token in tokens_seen:
            continue
        tokens_seen.add(token)  # the chosen token is listed again in top_logprobs
        for label in (on_label, off_label):
            if _norm_label(token) == _norm_label(label):
                mass[label] += math.exp(lp)
                found.add(label)
    p_on, p_off = mass[on_label], mass[off_label]
    if on_label in found and off_label in found:
        total = p_on + p_off
        return p_on / total if total > 0 else None
    if on_label in found:
        return min(1.0, p_on)
    if off_label in found:
        return max(0.0, 1.0 - p_off)
    return None


# ========================================================================= thresholds


class GateReport(BaseModel):
    """How well a gate separates on-topic from off-topic inputs at a threshold.

    The positive class is *on topic*: precision is the share of inputs let through that
    are on topic, recall the share of on-topic inputs let through. A ratio with a zero
    denominator is 0.0.
    """

    model_config = ConfigDict(extra="forbid")

    gate: Gate | None = Field(default=None, description="The gate, when known.")
    threshold: float = Field(description="Inputs with probability >= threshold pass.")
    on_topic: int = Field(description="On-topic inputs scored.")
    off_topic: int = Field(description="Off-topic inputs scored.")
    true_positives: int = Field(description="On-topic inputs let through.")
    false_negatives: int = Field(description="On-topic inputs stopped.")
    true_negatives: int = Field(description="Off-topic inputs stopped.")
    false_positives: int = Field(description="Off-topic inputs let through.")
    precision: float = Field(description="tp / (tp + fp).")
    recall: float = Field(description="tp / (tp + fn).")
    f1: float = Field(description="Harmonic mean of precision and recall.")
    accuracy: float = Field(description="(tp + tn) / all.")
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            f"Why the figures may not be trusted: a class with fewer than "
            f"{MIN_HELDOUT_PER_CLASS} inputs scored, or a threshold that stops no "
            "off-topic input."
        ),
    )
    basis: Literal["rephrasings", "questions"] | None = Field(
        default=None,
        description="What the threshold was chosen on (training): the held-out pairs' "
        "rephrasings, or their questions when there were no rephrasings.",
    )
    heldout_pairs: int | None = Field(
        default=None, description="QA pairs whose wordings the on-topic inputs were."
    )
    margin: float | None = Field(
        default=None,
        description="The threshold was lowered to this far above the highest held-out "
        "off-topic score (None: the best-F1 midpoint was kept).",
    )

    def rested_on(self) -> str | None:
        """What the threshold was chosen on, in words, when it was chosen in training."""
        if self.basis is None:
            return None
        pairs = f" of {self.heldout_pairs} pairs" if self.heldout_pairs is not None else ""
        how = (
            f", lowered to {self.margin:g} above the highest off-topic score"
            if self.margin is not None
            else ""
        )
        return (
            f"chosen on {self.on_topic} held-out {self.basis}{pairs} and {self.off_topic} "
            f"off-topic questions{how}"
        )

    def to_text(self) -> str:
        """One line for a terminal, then one ``warning:`` line per warning."""
        line = (
            f"threshold {self.threshold:.3f}: precision {self.precision:.2f}, recall "
            f"{self.recall:.2f}, F1 {self.f1:.2f}, accuracy {self.accuracy:.2f} "
            f"(on-topic {self.true_positives}/{self.on_topic} passed, off-topic "
            f"{self.true_negatives}/{self.off_topic} stopped)"
        )
        rested = self.rested_on()
        if rested:
            line += f"; {rested}"
        return "\n".join([line, *(f"  warning: {w}" for w in self.warnings)])


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def gate_report(
    on_scores: Sequence[float],
    off_scores: Sequence[float],
    *,
    threshold: float,
    gate: Gate | None = None,
    fix: str | None = None,
) -> GateReport:
    """Confusion counts and ratios of probabilities against ``threshold``.

    Args:
        on_scores: probabilities given to on-topic inputs.
        off_scores: probabilities given to off-topic inputs.
        threshold: inputs with probability >= threshold pass.
        gate: recorded in the report.
        fix: what the on-topic warning says to do (default: give more QA pairs, or a
            larger held-out fraction).

    A class with fewer than :data:`MIN_HELDOUT_PER_CLASS` scores gets a warning in the
    report's ``warnings``: its ratios (and a threshold chosen from them) rest on too few
    inputs to be trusted. So does a threshold that stops none of the off-topic inputs:
    such a gate refuses nothing, which must never pass unnoticed.
    """
    default = "give more QA pairs (or, when training, a larger heldout_fraction)"
    warnings = [
        f"only {n} {name} input{'s' if n != 1 else ''} scored (fewer than "
        f"{MIN_HELDOUT_PER_CLASS}): precision, recall and the threshold are unreliable; "
        f"{todo}"
        for name, n, todo in (
            ("on-topic", len(on_scores), fix or default),
            ("off-topic", len(off_scores), default),
        )
        if n < MIN_HELDOUT_PER_CLASS
    ]
    tp = sum(1 for s in on_scores if s >= threshold)
    fp = sum(1 for s in off_scores if s >= threshold)
    fn = len(on_scores) - tp
    tn = len(off_scores) - fp
    if off_scores and not tn:
        warnings.append(
            f"the threshold {threshold:.3f} stops none of the {len(off_scores)} off-topic "
            "inputs: this gate refuses nothing; its scores do not tell off-topic from "
            "on-topic inputs (check that the negatives are not worded like the QA pairs, "
            "and give more or varied negatives)"
        )
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return GateReport(
        gate=gate,
        threshold=threshold,
        on_topic=len(on_scores),
        off_topic=len(off_scores),
        true_positives=tp,
        false_negatives=fn,
        true_negatives=tn,
        false_positives=fp,
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=_ratio(tp + tn, len(on_scores) + len(off_scores)),
        warnings=warnings,
    )


def choose_threshold(
    on_scores: Sequence[float],
    off_scores: Sequence[float],
    *,
    target_precision: float | None = None,
) -> float:
    """The threshold that separates held-out on-topic from off-topic probabilities best.

    Candidates are the midpoints between neighbouring distinct scores (and 0.5 when
    every score is on one side). By default the candidate with the highest F1 of the
    on-topic class wins; ties go to the widest gap between scores, then to the higher
    threshold. With ``target_precision`` the lowest candidate whose precision reaches it
    wins (the most recall at that precision); if none does, the one with the highest
    precision (then F1).

    Args:
        on_scores: probabilities of held-out on-topic inputs.
        off_scores: probabilities of held-out off-topic inputs.
        target_precision: 0-1, or None to maximise F1.

    Raises:
        UsageError: no scores, or a bad ``target_precision``.
    """
    if target_precision is not None and (
        isinstance(target_precision, bool)
        or not isinstance(target_precision, (int, float))
        or not 0 < target_precision <= 1
    ):
        raise UsageError(f"target_precision must be in (0, 1] or None, got {target_precision!r}")
    if not on_scores and not off_scores:
        raise UsageError("choose_threshold needs held-out scores; got none")
    points = sorted(set(on_scores) | set(off_scores))
    cands: list[tuple[float, float]] = []  # (threshold, gap)
    for lo, hi in itertools.pairwise(points):
        cands.append(((lo + hi) / 2, hi - lo))
    if not cands:
        cands.append((0.5, 0.0))
    scored = [(t, gap, gate_report(on_scores, off_scores, threshold=t)) for t, gap in cands]
    if target_precision is not None:
        ok = [t for t, _, r in scored if r.precision >= target_precision and r.true_positives]
        if ok:
            return round(min(ok), 6)
        best = max(scored, key=lambda x: (x[2].precision, x[2].f1, x[0]))
        return round(best[0], 6)
    best = max(scored, key=lambda x: (round(x[2].f1, 9), x[1], x[0]))
    return round(best[0], 6)
