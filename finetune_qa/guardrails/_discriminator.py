"""The discriminator: train, save, load, check."""

from __future__ import annotations

import logging
import os
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune_qa._fs import open_regular
from finetune_qa.backends import get_backend
from finetune_qa.backends.base import Backend
from finetune_qa.chat import Answer, BatchItem, ChatModel
from finetune_qa.config import DEFAULT_MODEL, MIN_TRAINING_EXAMPLES
from finetune_qa.exceptions import BackendError, DatasetError, InputFileError, UsageError
from finetune_qa.jobs import FineTuneJob, Journal

if TYPE_CHECKING:
    from finetune_qa.guardrails._guarded import GuardedChatModel
    from finetune_qa.rephrase import Rephraser

from finetune_qa.guardrails._bank import OFF_TOPIC_TRAINING_QUESTIONS
from finetune_qa.guardrails._common import (
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
    DEFAULT_THRESHOLD_MARGIN,
    DISCRIMINATOR_SYSTEM_PROMPT,
    ON_TOPIC_LABEL,
    Gate,
)
from finetune_qa.guardrails._data import (
    DataCounts,
    DiscriminatorData,
    NegativeInput,
    PairInput,
    _as_pair,
    _write_atomic,
    gate_input,
)
from finetune_qa.guardrails._verdicts import (
    GateReport,
    Verdict,
    _norm_label,
    choose_threshold,
    gate_report,
    probability_from_logprobs,
)

logger = logging.getLogger("finetune_qa.guardrails")

_MAX_SETTINGS_BYTES = 1024 * 1024  # a saved gate is about 2 KB


class DiscriminatorSettings(BaseModel):
    """What :meth:`Discriminator.save` writes: enough to load the discriminator again."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The fine-tuned classifier model.")
    gate: Gate = Field(description="'question' or 'answer'.")
    threshold: float = Field(ge=0.0, le=1.0, description="Probability from which input passes.")
    system_prompt: str = Field(description="System message it was trained with.")
    report: GateReport | None = Field(default=None, description="Held-out report, if trained.")
    counts: DataCounts | None = Field(default=None, description="Training data counts.")
    backend: str | None = Field(
        default=None,
        description=(
            "Registry name of the backend that serves the model ('openai', 'offline', "
            "'together', ...); Discriminator.load uses it when given no backend. None "
            "(files written before it was recorded): 'openai'."
        ),
    )

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> DiscriminatorSettings:
        """Read settings written by :meth:`Discriminator.save`.

        Raises:
            InputFileError: the file cannot be read or is not discriminator settings.
        """
        src = Path(path)
        try:
            with open_regular(src, kind="gate settings file") as f:
                raw = f.read(_MAX_SETTINGS_BYTES + 1)
        except OSError as exc:
            raise InputFileError(
                f"cannot read: {exc.strerror or exc}",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            ) from exc
        if len(raw) > _MAX_SETTINGS_BYTES:
            raise InputFileError(
                f"is over {_MAX_SETTINGS_BYTES // 1024} KiB: not gate settings",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            )
        try:
            return cls.model_validate(orjson.loads(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "the top level"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InputFileError(
                f"not discriminator settings: {where}: {err['msg']}{more}",
                path=src,
                hint="pass the JSON file `guard train` (Discriminator.save()) wrote",
            ) from exc
        except orjson.JSONDecodeError as exc:
            first = str(exc).splitlines()[0]
            raise InputFileError(
                f"not discriminator settings: {first}",
                path=src,
                hint="pass the JSON file Discriminator.save() wrote",
            ) from exc


class Discriminator:
    """A fine-tuned on-topic classifier for one gate.

    Train one with :meth:`train`, or load one by model name (or with :meth:`load`).

    Args:
        model: the fine-tuned classifier, e.g. ``"ft:gpt-4o-mini-2024-07-18:acme:question-gate:X"``.
        backend: a backend name or instance (``None``: ``"openai"``).
        gate: ``"question"`` or ``"answer"``.
        threshold: on-topic probability from which an input passes (0-1).
        system_prompt: the system message it was trained with.
        logprobs: ask for log-probabilities (switch off for providers without them; the
            label text then decides, with probability 1.0 or 0.0).
        concurrency: checks in flight at once in :meth:`check_many` by default.
        retries: retries per check (see :class:`~finetune_qa.chat.ChatModel`).
        report: the held-out report, when known.
        counts: the training data counts, when known.

    Raises:
        UsageError: a bad argument.
    """

    def __init__(
        self,
        model: str,
        *,
        backend: str | Backend | None = None,
        gate: Gate = "question",
        threshold: float = 0.5,
        system_prompt: str = DISCRIMINATOR_SYSTEM_PROMPT,
        logprobs: bool = True,
        concurrency: int = 8,
        retries: int = 3,
        report: GateReport | None = None,
        counts: DataCounts | None = None,
    ) -> None:
        if gate not in ("question", "answer"):
            raise UsageError(f"gate must be 'question' or 'answer', got {gate!r}")
        self.gate: Gate = gate
        self.threshold = _check_threshold(threshold)
        self.report = report
        self.counts = counts
        self.chat = ChatModel(
            model,
            backend=backend,
            system_prompt=system_prompt,
            stop=None,
            card=False,  # a gate is queried with its own prompt, whatever its card says
            temperature=0.0,
            max_tokens=1,
            logprobs=logprobs,
            top_logprobs=5 if logprobs else None,
            concurrency=concurrency,
            retries=retries,
        )

    @property
    def model(self) -> str:
        """The classifier model's name."""
        return self.chat.model

    def __repr__(self) -> str:
        return f"Discriminator({self.model!r}, gate={self.gate!r}, threshold={self.threshold!r})"

    # -------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        pairs: Iterable[PairInput],
        *,
        backend: str | Backend = "openai",
        model: str = DEFAULT_MODEL,
        gate: Gate = "question",
        qa_model: ChatModel | GuardedChatModel | None = None,
        negatives: Iterable[NegativeInput] = (),
        bank: Sequence[str] = OFF_TOPIC_TRAINING_QUESTIONS,
        seed: int = 0,
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        target_precision: float | None = None,
        workdir: str | os.PathLike[str] | None = None,
        n_epochs: int | Literal["auto"] = "auto",
        suffix: str | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        force_new: bool = False,
        concurrency: int = 8,
        timeout: float | None = None,
        max_negatives_per_positive: float | None = DEFAULT_MAX_NEGATIVES_PER_POSITIVE,
        provider_options: Mapping[str, Any] | None = None,
        augment: int = 0,
        writer: ChatModel | Rephraser | None = None,
        rephrasings: Mapping[str, Sequence[str]] | None = None,
        near_misses: bool | None = None,
        margin: float = DEFAULT_THRESHOLD_MARGIN,
    ) -> Discriminator:
        """Build the data, fine-tune a classifier, and choose its threshold on held-out data.

        To generalise to questions worded unlike the QA pairs, give rephrasings
        (``augment=3`` with a ``writer``, or ``rephrasings=``): they become positives, the
        negatives gain near-misses (other companies, general questions in the domain),
        and the threshold is chosen on the held-out pairs' *rephrasings* (pairs are held
        out whole: never a pair whose wordings were trained on), then lowered towards
        the off-topic side, keeping ``margin`` above the held-out off-topic scores.

        Args:
            pairs: the on-topic QA pairs.
            backend: backend name or instance the job (and the checks) run on.
            model: base model to fine-tune.
            gate: ``"question"`` or ``"answer"``.
            qa_model: the QA model (answer gate: its answers to off-topic questions are
                the negatives).
            negatives: your own off-topic questions or ``(question, answer)`` pairs.
            bank: built-in off-topic questions.
            seed: seed of the split (and of the job), 0 to :data:`MAX_SEED`.
            heldout_fraction: share of each class held out to choose the threshold.
            target_precision: choose the threshold for this precision instead of the
                best F1 (see :func:`choose_threshold`); no margin is applied then.
            workdir: where the JSONL files (``<gate>-gate-train.jsonl``,
                ``<gate>-gate-heldout.jsonl``) are written; a temporary directory if None.
            n_epochs: epochs of the job.
            suffix: model name suffix (default ``"<gate>-gate"``).
            journal: the job journal (see :meth:`FineTuneJob.create`).
            force_new: start a new job even if the journal knows the same request.
            concurrency: checks (and QA model questions) in flight at once.
            timeout: seconds to wait for the job (None: no limit).
            max_negatives_per_positive: most off-topic examples per on-topic one (see
                :meth:`DiscriminatorData.build`).
            provider_options: the backend's own job settings (see
                :meth:`FineTuneJob.create`), e.g. the local backend's
                ``{"method": "full", "learning_rate": 1e-4}``.
            augment: rephrasings per QA question, written by ``writer`` (cached: the
                same as ``DatasetBuilder(augment=...)`` asks nothing again).
            writer: the writer model (a ChatModel) or a
                :class:`~finetune_qa.rephrase.Rephraser`.
            rephrasings: rephrasings you already have (question -> its rephrasings).
            near_misses: near-miss negatives (default: when there are rephrasings).
            margin: how far above the highest held-out off-topic score the threshold is
                kept when it is lowered (0 to 0.5).

        Returns:
            The trained discriminator, with its held-out :attr:`report` and :attr:`counts`.
            The report says what the threshold rested on; with fewer than
            :data:`MIN_HELDOUT_PER_CLASS` held-out inputs in a class it carries
            ``warnings`` (also logged) that say how to get more.

        Raises:
            UsageError: a bad argument.
            DatasetError: too few examples for a fine-tuning job.
            BackendError: the provider failed (after retries), or a held-out check did.
            JobError: the job failed, was cancelled or timed out.
        """
        _check_margin(margin)
        pairs = list(pairs) if not isinstance(pairs, (str, bytes, os.PathLike)) else pairs
        if augment:
            rephrasings = {**_rephrase(pairs, augment, writer), **(rephrasings or {})}
        data = DiscriminatorData.build(
            pairs,
            gate=gate,
            negatives=negatives,
            bank=bank,
            qa_model=qa_model,
            heldout_fraction=heldout_fraction,
            seed=seed,
            concurrency=concurrency,
            max_negatives_per_positive=max_negatives_per_positive,
            rephrasings=rephrasings,
            near_misses=near_misses,
        )
        _check_enough(data, gate, max_negatives_per_positive)
        with tempfile.TemporaryDirectory(prefix="finetune-qa-gate-") as tmp:
            folder = Path(workdir) if workdir is not None else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            train_path = folder / f"{gate}-gate-train.jsonl"
            data.write(train_path, "train")
            held_path = None
            if data.heldout:
                held_path = folder / f"{gate}-gate-heldout.jsonl"
                data.write(held_path, "heldout")
            job = FineTuneJob.create(
                train_path,
                model=model,
                backend=backend,
                validation_file=held_path,
                n_epochs=n_epochs,
                suffix=suffix or f"{gate}-gate",
                seed=seed,
                system_prompt=DISCRIMINATOR_SYSTEM_PROMPT,
                journal=journal,
                force_new=force_new,
                provider_options=provider_options,
            )
        info = job.wait(timeout=timeout)
        assert info.fine_tuned_model is not None  # wait() returns succeeded jobs only
        disc = cls(
            info.fine_tuned_model,
            backend=job.backend,
            gate=gate,
            concurrency=concurrency,
            counts=data.counts,
        )
        disc._calibrate(data, target_precision, margin)
        return disc

    def _calibrate(
        self, data: DiscriminatorData, target_precision: float | None, margin: float
    ) -> None:
        """Choose the threshold on the held-out data and keep the report (see :meth:`train`)."""
        gate = self.gate
        if not data.heldout:
            logger.warning(
                "%s gate %s: nothing was held out, so the threshold stays %s and precision "
                "and recall are unknown",
                gate,
                self.model,
                self.threshold,
            )
            return
        held_on = [e for e in data.heldout if e.on_topic]
        rephrased = [e for e in held_on if e.source == "rephrasing"]
        basis: Literal["rephrasings", "questions"] = "rephrasings" if rephrased else "questions"
        on = rephrased or held_on
        off = [e for e in data.heldout if not e.on_topic]
        on_scores = self._scores([e.text(gate) for e in on])
        off_scores = self._scores([e.text(gate) for e in off])
        used_margin: float | None = None
        if on_scores and off_scores:
            best = choose_threshold(on_scores, off_scores, target_precision=target_precision)
            self.threshold = best
            if target_precision is None and basis == "rephrasings":
                self.threshold = _lowered(best, off_scores, margin)
                used_margin = margin if self.threshold != best else None
        fix = (
            "add rephrasings of each pair (augment=3, `--augment 3`), or give more QA "
            "pairs (or, when training, a larger heldout_fraction)"
            if basis == "questions"
            else None
        )
        report = gate_report(on_scores, off_scores, threshold=self.threshold, gate=gate, fix=fix)
        self.report = report.model_copy(
            update={
                "basis": basis,
                "heldout_pairs": len({e.group or e.question for e in on}),
                "margin": used_margin,
            }
        )
        for warning in self.report.warnings:
            logger.warning("%s gate %s: held-out report: %s", gate, self.model, warning)

    # ---------------------------------------------------------------- persistence
    def settings(self) -> DiscriminatorSettings:
        """The small JSON-able settings :meth:`save` writes."""
        return DiscriminatorSettings(
            model=self.model,
            gate=self.gate,
            threshold=self.threshold,
            system_prompt=self.chat.system_prompt or "",
            report=self.report,
            counts=self.counts,
            backend=self.chat.backend.name,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings as JSON, atomically; return the path.

        Raises:
            InputFileError: the file cannot be written (the old file, if any, is kept).
        """
        out = Path(path)
        data = orjson.dumps(self.settings().model_dump(mode="json"), option=orjson.OPT_INDENT_2)
        _write_atomic(out, data + b"\n")
        return out

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: str | Backend | None = None,
        **kwargs: Any,
    ) -> Discriminator:
        """Load a discriminator from settings written by :meth:`save`.

        Args:
            path: the JSON file.
            backend: the backend serving the model, a name or an instance (``None``: the
                backend name the settings record, else ``"openai"``). An instance is
                what an offline gate needs: a new ``"offline"`` backend built by name
                starts empty and does not know the model; pass the ``OfflineBackend``
                that trained it (the CLI keeps its offline state between commands).
            **kwargs: other :class:`Discriminator` options (``concurrency``, ...).

        Raises:
            InputFileError: the file cannot be read or is not discriminator settings.
            UnknownBackendError: the recorded (or given) backend name is not registered.
        """
        settings = DiscriminatorSettings.read(path)
        if backend is None:
            backend = settings.backend or "openai"
        return cls(
            settings.model,
            backend=get_backend(backend),
            gate=settings.gate,
            threshold=settings.threshold,
            system_prompt=settings.system_prompt,
            report=settings.report,
            counts=settings.counts,
            **kwargs,
        )

    # ----------------------------------------------------------------------- checks
    def verdict(self, answer: Answer) -> Verdict:
        """The verdict of this gate from the classifier's reply.

        The probability comes from the log-probabilities (see
        :func:`probability_from_logprobs`) when present, else from the label text
        (1.0 for the on-topic label, 0.0 for anything else: it fails closed).
        """
        p = probability_from_logprobs(answer.logprobs)
        source: Literal["logprobs", "label"] = "logprobs"
        if p is None:
            source = "label"
            p = 1.0 if _norm_label(answer.text) == _norm_label(ON_TOPIC_LABEL) else 0.0
        p = min(1.0, max(0.0, p))
        return Verdict(
            gate=self.gate,
            on_topic=p >= self.threshold,
            probability=p,
            threshold=self.threshold,
            label=answer.text,
            source=source,
        )

    def input_for(self, question: str, answer: str | None = None) -> str:
        """The user message this gate sends for ``question`` (and ``answer``)."""
        return gate_input(self.gate, question, answer)

    def check(self, question: str, answer: str | None = None) -> Verdict:
        """Is ``question`` (with ``answer``, for the answer gate) on topic?

        Raises:
            UsageError: a blank question, or the answer gate without an answer.
            BackendError: the request failed after its retries.
        """
        return self.verdict(self.chat.ask(self.input_for(question, answer)))

    async def acheck(self, question: str, answer: str | None = None) -> Verdict:
        """Async twin of :meth:`check`."""
        return self.verdict(await self.chat.aask(self.input_for(question, answer)))

    def check_many(
        self,
        questions: Iterable[str],
        answers: Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
    ) -> list[Verdict]:
        """Check many inputs, ``concurrency`` at a time; verdict ``i`` is input ``i``.

        Args:
            questions: the questions.
            answers: their answers, one per question (required by the answer gate).
            concurrency: checks in flight at once (default: the discriminator's).

        Raises:
            UsageError: a blank question, or a missing answer for the answer gate.
            BackendError: a check failed after its retries (the first failure is raised;
                use :class:`GuardedChatModel` for per-question errors).
        """
        items = self.chat.ask_many(self._inputs(questions, answers), concurrency=concurrency)
        return [self._from_item(item) for item in items]

    async def acheck_many(
        self,
        questions: Iterable[str],
        answers: Iterable[str] | None = None,
        *,
        concurrency: int | None = None,
    ) -> list[Verdict]:
        """Async twin of :meth:`check_many`."""
        inputs = self._inputs(questions, answers)
        items = await self.chat.aask_many(inputs, concurrency=concurrency)
        return [self._from_item(item) for item in items]

    def evaluate(
        self,
        on_topic: Iterable[str | PairInput],
        off_topic: Iterable[str | PairInput],
        *,
        threshold: float | None = None,
    ) -> GateReport:
        """Precision, recall, F1 and accuracy on labelled inputs (e.g. held-out sets).

        Args:
            on_topic: on-topic questions, or ``(question, answer)`` pairs / QA pairs for
                the answer gate.
            off_topic: off-topic ones, likewise.
            threshold: the threshold to judge at (default: the discriminator's).

        Raises:
            UsageError: a bad input (a string for the answer gate, a blank question).
            BackendError: a check failed after its retries.
        """
        t = self.threshold if threshold is None else _check_threshold(threshold)
        on_scores = self._scores([self._text_of(x) for x in on_topic])
        off_scores = self._scores([self._text_of(x) for x in off_topic])
        return gate_report(on_scores, off_scores, threshold=t, gate=self.gate)

    # -------------------------------------------------------------------- internals
    def _text_of(self, item: str | PairInput) -> str:
        if isinstance(item, str):
            return self.input_for(item)
        pair = _as_pair(item, "input", 0)
        return self.input_for(pair.question, pair.answer)

    def _inputs(self, questions: Iterable[str], answers: Iterable[str] | None) -> list[str]:
        if isinstance(questions, str):
            raise UsageError("check_many takes an iterable of questions, not one string")
        qs = list(questions)
        if answers is None:
            return [self.input_for(q) for q in qs]
        ans = list(answers)
        if len(ans) != len(qs):
            raise UsageError(f"got {len(qs)} questions but {len(ans)} answers; give one each")
        return [self.input_for(q, a) for q, a in zip(qs, ans, strict=True)]

    def _scores(self, inputs: list[str]) -> list[float]:
        items = self.chat.ask_many(inputs)
        return [self._from_item(item).probability for item in items]

    def _from_item(self, item: BatchItem) -> Verdict:
        if item.answer is None:
            # the gate's input is the question, or "Question: ...\nAnswer: ..."
            text = item.question.removeprefix("Question: ").split("\nAnswer: ")[0]
            short = textwrap.shorten(text, width=60, placeholder=" ...")
            if item.error_type in ("NotFoundError", "PermissionDeniedError"):
                todo = (
                    "this backend does not serve the gate's model: load the gate with the "
                    "backend that trained it (Discriminator.load(path, backend=...))"
                )
            elif item.error_type == "AuthenticationError":
                todo = "check the backend's API key"
            else:
                todo = "try again later, or raise retries= (GuardedChatModel.ask_many "
                todo += "reports failures per question instead of raising)"
            error = (item.error or "the request failed").rstrip(". ")
            raise BackendError(
                f"the {self.gate} gate ({self.model}) could not check {short!r} (input "
                f"{item.index}): {error}. To fix: {todo}"
            )
        return self.verdict(item.answer)


def _check_margin(margin: object) -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 0.5:
        raise UsageError(f"margin must be a number from 0 to 0.5, got {margin!r}")


def _lowered(best: float, off_scores: Sequence[float], margin: float) -> float:
    """``best``, lowered to ``margin`` above the highest off-topic score it stops.

    Questions people write score lower than held-out rephrasings: the threshold goes as
    far towards the off-topic side as the held-out off-topic questions allow.
    """
    stopped = [s for s in off_scores if s < best]
    if not stopped:
        return best
    return round(min(best, max(stopped) + margin), 6)


def _rephrase(
    pairs: Iterable[PairInput], k: int, writer: ChatModel | Rephraser | None
) -> dict[str, list[str]]:
    from finetune_qa.rephrase import Rephraser

    if writer is None:
        raise UsageError(
            f"augment={k} needs a writer model to rephrase the questions: pass writer="
            "ChatModel(<a base model>, backend=...) (offline: ChatModel.offline('gpt-4o-mini'))"
        )
    rephraser = writer if isinstance(writer, Rephraser) else Rephraser(writer, k=k)
    rephraser.k = k
    questions = [_as_pair(p, "pair", i).question for i, p in enumerate(pairs)]
    return dict(zip(questions, rephraser.rephrase_many(questions), strict=True))


def _check_enough(
    data: DiscriminatorData, gate: Gate, max_negatives_per_positive: float | None
) -> None:
    if len(data.train) >= MIN_TRAINING_EXAMPLES:
        return
    capped = data.counts.dropped.get("capped", 0)
    raise DatasetError(
        f"only {len(data.train)} training examples for the {gate} gate; a job needs "
        f"at least {MIN_TRAINING_EXAMPLES}: give more QA pairs"
        + (
            f" ({capped} bank questions were left out to keep at most "
            f"{max_negatives_per_positive:g} off-topic examples per QA pair)"
            if capped
            else " or negatives"
        )
    )


def _check_threshold(threshold: float) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        raise UsageError(f"threshold must be a probability from 0 to 1, got {threshold!r}")
    return float(threshold)
