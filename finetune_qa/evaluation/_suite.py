"""The suite: build it from QA pairs or files, add rephrasings, run it on a model."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from finetune_qa._text import question_key
from finetune_qa.chat import BatchItem, ChatModel
from finetune_qa.data import QAPair
from finetune_qa.evaluation._asking import _checked, _own_concurrency, _probing, _Progress
from finetune_qa.evaluation._banks import (
    DEFAULT_EVAL_CONCURRENCY,
    DEFAULT_SET_NAMES,
    EVAL_SETS,
    KNOWLEDGE_SETS,
    PARAPHRASE_PROMPT,
    TRAINING_QUESTIONS,
    UNRELATED_QUESTIONS,
    EvalSet,
    _ordered_sets,
)
from finetune_qa.evaluation._build import (
    _CaseIds,
    _limit_of,
    _now,
    _sample,
    _unrelated_rows,
    _variation_rows,
    _verbatim_rows,
)
from finetune_qa.evaluation._files import _lines, _write_atomic, read_pages, read_questions
from finetune_qa.evaluation._judge import JudgeGrade, JudgeScorer
from finetune_qa.evaluation._knowledge import knowledge_cases
from finetune_qa.evaluation._results import (
    CaseResult,
    Comparison,
    EvalResult,
    SetSummary,
    _summarize,
    compare,
    default_label,
)
from finetune_qa.evaluation._scorers import (
    Answering,
    EvalCase,
    GroundedScorer,
    Scorer,
    default_scorers,
    knowledge_scorers,
)
from finetune_qa.evaluation._variations import _rephrase
from finetune_qa.exceptions import JSONLFormatError, RecordError, UsageError


class EvalSuite:
    """Questions to evaluate a QA bot with: verbatim, variations and unrelated sets.

    Build one with :meth:`from_pairs`, :meth:`from_file` or :meth:`from_jsonl`; run it
    with :meth:`run`. A suite is immutable: :meth:`generate_variations` returns a new one.
    :meth:`from_knowledge_file` reads questions a person wrote with the facts a right
    answer states, in the sets ``on_topic``, ``rephrasing`` and ``off_topic``.

    Each set has a name that says what it is, carried into results and reports
    (:attr:`set_names`): "training questions" for the questions the model was trained on,
    the file's name for a file of your own, "rephrasings", "off-topic questions".

    Attributes:
        dropped: questions left out while building, per reason (``blank_question``,
            ``duplicate_question``, ``blank_variation``, ``duplicate_variation``,
            ``variation_is_a_training_question``, ``blank_unrelated``,
            ``duplicate_unrelated``, ``over_limit``), so the questions read equal
            ``len(suite) + sum(suite.dropped.values())``.
        generation_errors: questions :meth:`generate_variations` got no rephrasing for,
            with why.
        pages: source pages' texts by name: an answer that states a fact of its
            case's page counts as answered (see :class:`GroundedScorer`).

    Args:
        cases: the cases; ids must be unique.
        name: a name for reports.
        set_names: what each set is called, e.g. ``{"verbatim": "training questions"}``
            (others: :data:`DEFAULT_SET_NAMES`, else the set's key).
        pages: source pages' texts by name (see ``pages`` above).

    Raises:
        UsageError: two cases share an id.
    """

    def __init__(
        self,
        cases: Iterable[EvalCase],
        *,
        name: str | None = None,
        set_names: Mapping[str, str] | None = None,
        pages: Mapping[str, str] | None = None,
    ) -> None:
        self.cases: tuple[EvalCase, ...] = tuple(cases)
        self.name = name
        self._set_names = dict(set_names or {})
        self.pages: dict[str, str] = dict(pages or {})
        self.generation_errors: list[str] = []
        self.dropped: dict[str, int] = {}
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise UsageError(f"two cases have the id {case.id!r}; ids must be unique")
            seen.add(case.id)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[EvalCase]:
        return iter(self.cases)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"EvalSuite({counts})"

    def counts(self) -> dict[str, int]:
        """Cases per set, e.g. ``{"verbatim": 24, "variations": 24, "unrelated": 65}``.

        The three sets of QA pairs always; a knowledge file's sets when they have cases.
        """
        counts: dict[str, int] = {s: sum(1 for c in self.cases if c.set == s) for s in EVAL_SETS}
        for s in KNOWLEDGE_SETS:
            if n := sum(1 for c in self.cases if c.set == s):
                counts[s] = n
        return counts

    @property
    def set_names(self) -> dict[str, str]:
        """What each set is called in results and reports, e.g. ``"training questions"``.

        Example:
            >>> EvalSuite.from_pairs([("What is Acme?", "Anvils.")]).set_names["verbatim"]
            'training questions'
        """
        keys = (*EVAL_SETS, *KNOWLEDGE_SETS)
        return {k: self._set_names.get(k) or DEFAULT_SET_NAMES.get(k, k) for k in keys}

    @property
    def knowledge(self) -> bool:
        """True when the suite holds a knowledge file's questions (the sets of kinds)."""
        return any(c.set in KNOWLEDGE_SETS for c in self.cases)

    def of_set(self, set: EvalSet) -> list[EvalCase]:
        """The cases of one set, in order."""
        return [c for c in self.cases if c.set == set]

    # -- building -----------------------------------------------------------------------
    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[QAPair | tuple[str, str]],
        *,
        variations: Mapping[str, str | Sequence[str]]
        | Iterable[QAPair | tuple[str, str]]
        | None = None,
        unrelated: Iterable[str] | None = None,
        builtin_unrelated: bool = True,
        limit: int | Mapping[str, int] | None = None,
        seed: int = 0,
        name: str | None = None,
        set_names: Mapping[str, str] | None = None,
    ) -> EvalSuite:
        """A suite from QA pairs: their questions verbatim, variations, unrelated questions.

        Args:
            pairs: the training pairs (:class:`~finetune_qa.data.QAPair` or
                ``(question, answer)``); a repeated question keeps its first answer.
            variations: rephrased questions, either a mapping ``{training question:
                rephrasing or [rephrasings]}``, or pairs ``(rephrasing, expected answer)``
                (a pair whose answer is a training answer is linked to that question).
            unrelated: your own off-topic questions, added to the built-in bank.
            builtin_unrelated: include :data:`UNRELATED_QUESTIONS`.
            limit: at most this many cases per set (or ``{"set": n}``), sampled with
                ``seed`` and kept in their original order.
            seed: the sampling seed.
            name: a name for reports.
            set_names: what the sets are called (default: the pairs' questions are
                "training questions", see :attr:`set_names`).

        Raises:
            UsageError: a variation names a question that is not among the pairs, or a
                bad ``limit``.
        """
        dropped: Counter[str] = Counter()
        verbatim = _verbatim_rows(pairs, dropped)
        var_rows = _variation_rows(variations, verbatim, dropped)
        off = _unrelated_rows(
            [*(UNRELATED_QUESTIONS if builtin_unrelated else ()), *(unrelated or ())], dropped
        )
        v_rows = _sample(verbatim, _limit_of(limit, "verbatim"), seed)
        var_kept = _sample(var_rows, _limit_of(limit, "variations"), seed)
        off_rows = _sample(off, _limit_of(limit, "unrelated"), seed)
        over = sum(
            len(rows) - len(kept)
            for rows, kept in ((verbatim, v_rows), (var_rows, var_kept), (off, off_rows))
        )
        if over:
            dropped["over_limit"] = over
        ids = _CaseIds()
        cases = [
            EvalCase(
                id=ids.new("verbatim", q),
                set="verbatim",
                question=q,
                reference=a,
                source_question=q,
            )
            for q, a in v_rows
        ]
        cases += [
            EvalCase(
                id=ids.new("variations", q),
                set="variations",
                question=q,
                reference=a,
                source_question=s,
            )
            for q, a, s in var_kept
        ]
        cases += [
            EvalCase(id=ids.new("unrelated", q), set="unrelated", question=q) for q in off_rows
        ]
        names = {"verbatim": TRAINING_QUESTIONS, **(set_names or {})}
        suite = cls(cases, name=name, set_names=names)
        suite.dropped = dict(sorted(dropped.items()))
        return suite

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        variations: str | os.PathLike[str] | None = None,
        unrelated: str | os.PathLike[str] | Iterable[str] | None = None,
        builtin_unrelated: bool = True,
        limit: int | Mapping[str, int] | None = None,
        seed: int = 0,
        stop: str | None = None,
        name: str | None = None,
        trained: bool | None = None,
    ) -> EvalSuite:
        """A suite from a QA file (seed CSV, pair CSV, pair JSONL or training JSONL).

        The file's questions are named by what they are: "training questions" when the
        model was trained on them (``trained``), else the file's name; a ``variations``
        file's by its name too.

        Args:
            path: the QA file, read with :class:`~finetune_qa.readers.QASource`.
            variations: a QA file of rephrased questions with their expected answers.
            unrelated: a text file of off-topic questions (one per line; blank lines and
                lines starting with ``#`` skipped), or the questions themselves.
            builtin_unrelated: include :data:`UNRELATED_QUESTIONS`.
            limit: at most this many cases per set; see :meth:`from_pairs`.
            seed: the sampling seed.
            stop: stop marker removed from the end of training-JSONL answers (None: the
                one the file's answers end with, detected; ``""``: none).
            name: a name for reports (default: the file's name).
            trained: whether the model under test was trained on the file's questions
                (None: True for training JSONL, a file written to fine-tune on; False for
                any other file, which may be anyone's questions).

        Raises:
            InputError: a file is missing or unreadable (named, with the line).
        """
        from finetune_qa.readers import QASource

        source = QASource(path, stop=stop)
        if trained is None:
            trained = source.format == "chat_jsonl"
        names = {"verbatim": TRAINING_QUESTIONS if trained else Path(path).name}
        if variations:
            names["variations"] = Path(variations).name
        pairs = list(source.pairs())
        var_pairs = list(QASource(variations, stop=stop).pairs()) if variations else None
        if isinstance(unrelated, (str, os.PathLike)):
            unrelated = read_questions(unrelated)
        return cls.from_pairs(
            pairs,
            variations=var_pairs,
            unrelated=unrelated,
            builtin_unrelated=builtin_unrelated,
            limit=limit,
            seed=seed,
            name=name or Path(path).name,
            set_names=names,
        )

    @classmethod
    def from_knowledge_file(
        cls,
        path: str | os.PathLike[str],
        *,
        pages: str | os.PathLike[str] | Mapping[str, str] | None = None,
        name: str | None = None,
        set_names: Mapping[str, str] | None = None,
    ) -> EvalSuite:
        """A suite from a knowledge file: a person's questions with the facts of a right answer.

        Each line ``{"question", "kind", "facts", "page"}`` becomes a case of the set
        named by its ``kind`` (``on_topic``, ``rephrasing``, ``off_topic``; see
        :func:`read_knowledge`), its ``facts`` joined as its reference. :meth:`run` then
        scores with :func:`knowledge_scorers`: per set ``answered`` (a fact stated),
        ``right_fact`` (one of the question's facts) and ``refused``.

        Example:
            ```python
            suite = EvalSuite.from_knowledge_file("site.jsonl", pages="site/")
            result = suite.run(bot)
            result.score("on_topic", "right_fact"), result.count("off_topic", "refused")
            ```

        Args:
            path: the knowledge file (JSONL).
            pages: the site's pages (a folder, one file, or texts by name): an answer
                stating a fact of its question's page counts as answered; each line's
                ``page`` must name one of them.
            name: a name for reports (default: the file's name).
            set_names: what the sets are called (default :data:`DEFAULT_SET_NAMES`).

        Raises:
            InputFileError: the file or a page is missing or unreadable.
            JSONLFormatError: a line is not JSON.
            RecordError: a line is not a knowledge question, or names a page not given.
        """
        texts = read_pages(pages) if isinstance(pages, (str, os.PathLike)) else pages
        dropped: Counter[str] = Counter()
        cases = knowledge_cases(path, texts or {}, dropped)
        suite = cls(cases, name=name or Path(path).name, set_names=set_names, pages=texts)
        suite.dropped = dict(sorted(dropped.items()))
        return suite

    # -- saving -------------------------------------------------------------------------
    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write the cases to ``path``, one JSON object per line, atomically."""
        text = "".join(_case_json(c) + "\n" for c in self.cases)
        return _write_atomic(path, text)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], *, name: str | None = None) -> EvalSuite:
        """Load a suite saved with :meth:`to_jsonl`.

        Raises:
            InputFileError: the file is missing or unreadable.
            JSONLFormatError: a line is not JSON.
            RecordError: a line is not a case (named, with what is wrong).
        """
        cases: list[EvalCase] = []
        seen: set[str] = set()
        for line_no, raw in _lines(path):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise JSONLFormatError(
                    f"not JSON ({exc})", path=str(path), line=line_no, hint="fix or remove the line"
                ) from None
            try:
                case = EvalCase.model_validate(obj)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "record"
                raise RecordError(
                    f"not an evaluation case: {where}: {err['msg']}",
                    path=str(path),
                    line=line_no,
                    hint="each line needs id, set, question, reference and source_question",
                ) from None
            if case.id in seen:
                raise RecordError(
                    f"the id {case.id!r} appears twice",
                    path=str(path),
                    line=line_no,
                    hint="give each case its own id",
                )
            seen.add(case.id)
            cases.append(case)
        return cls(cases, name=name or Path(path).name)

    # -- variations ---------------------------------------------------------------------
    def generate_variations(
        self,
        chat: ChatModel,
        n_per_question: int = 1,
        *,
        cache: str | os.PathLike[str] | None = None,
        concurrency: int | None = None,
        prompt: str = PARAPHRASE_PROMPT,
        max_tokens: int | None = 400,
    ) -> EvalSuite:
        """A new suite with rephrasings of every verbatim question, written by ``chat``.

        ``chat`` gets :data:`PARAPHRASE_PROMPT` as its system prompt (its own system prompt
        and stop marker are not used). With ``cache``, rephrasings are kept in a JSONL file
        keyed by question and model, so running again asks only for new questions. A
        question whose request fails or whose reply holds no rephrasing gets none; see
        :attr:`generation_errors` of the returned suite.

        Args:
            chat: the model that rephrases (a base model, not the fine-tune under test).
            n_per_question: rephrasings per question.
            cache: JSONL file to read and update.
            concurrency: requests in flight at once (default: the model's).
            prompt: the system prompt.
            max_tokens: cap on each reply.

        Raises:
            UsageError: ``n_per_question`` is not a whole number >= 1.
            InputFileError: the cache cannot be written.
        """
        if isinstance(n_per_question, bool) or not isinstance(n_per_question, int):
            raise UsageError(f"n_per_question must be a whole number, got {n_per_question!r}")
        if n_per_question < 1:
            raise UsageError(f"n_per_question must be at least 1, got {n_per_question}")
        sources = self.of_set("verbatim")
        found, errors = _rephrase(
            chat,
            [c.question for c in sources],
            n_per_question,
            cache=cache,
            concurrency=concurrency,
            prompt=prompt,
            max_tokens=max_tokens,
        )
        variations = list(self.of_set("variations"))
        trained = {question_key(c.question) for c in sources}
        keys = {question_key(c.question) for c in variations}
        dropped = Counter(self.dropped)
        ids = _CaseIds(c.id for c in self.cases)
        for case in sources:
            for text in found.get(question_key(case.question), []):
                key = question_key(text)
                if key in trained or key in keys:
                    trained_q = key in trained
                    dropped[
                        "variation_is_a_training_question" if trained_q else "duplicate_variation"
                    ] += 1
                    continue
                keys.add(key)
                variations.append(
                    EvalCase(
                        id=ids.new("variations", text),
                        set="variations",
                        question=text,
                        reference=case.reference,
                        source_question=case.source_question or case.question,
                    )
                )
        cases = [*self.of_set("verbatim"), *variations, *self.of_set("unrelated")]
        suite = EvalSuite(cases, name=self.name, set_names=self._set_names, pages=self.pages)
        suite.generation_errors = errors
        suite.dropped = dict(sorted(dropped.items()))
        return suite

    # -- running ------------------------------------------------------------------------
    def run(
        self,
        chat: Answering,
        *,
        concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
        scorers: Sequence[Scorer] | None = None,
        judge: JudgeScorer | None = None,
        progress: Callable[[int, int], None] | None = None,
        refusal_texts: Sequence[str] = (),
        label: str | None = None,
    ) -> EvalResult:
        """Ask ``chat`` every question, ``concurrency`` at a time, and score the answers.

        A question that fails (after the model's retries) is recorded in its row with
        its error and counted in ``errors``; the others go on.

        The stop sequence is *not* sent to the API: a :class:`~finetune_qa.chat.ChatModel`
        (or a wrapper holding one as ``.chat``, such as a
        :class:`~finetune_qa.guardrails.GuardedChatModel`) is asked through a copy that
        cuts the answer at the marker itself, so the ``stop`` score says whether the
        model wrote the marker (see :class:`StopScorer`). The answers are the same; a
        model that writes on after its marker costs those extra tokens (``max_tokens``
        caps them). For any other :class:`Answering` the default ``stop`` score is left
        out.

        Args:
            chat: the model under test (query a fine-tune as trained: its system prompt
                and stop marker; :meth:`~finetune_qa.jobs.FineTuneJob.chat_model` does).
            concurrency: questions in flight at once. The default,
                :data:`DEFAULT_EVAL_CONCURRENCY` (32), is higher than a ChatModel's own
                (8), since a suite is a batch job; ``None`` uses ``chat``'s own default.
                The judge runs with the same.
            scorers: the scorers (default :func:`default_scorers` with ``chat``'s stop
                marker and ``refusal_texts``). A :class:`JudgeScorer` goes in ``judge=``.
            judge: an LLM judge, run on every answered case with a reference, in batches.
            progress: called with ``(done, total)`` as requests complete.
            refusal_texts: your bot's own refusal texts, for the default ``answered``
                (a guarded model's ``refusal_texts`` are added by themselves).
            label: display name in reports (default: the model name).

        Raises:
            UsageError: the suite is empty, a bad ``concurrency``, or a
                :class:`JudgeScorer` in ``scorers``.
        """
        self._check_runnable(concurrency, scorers)
        start, started_at = time.perf_counter(), _now()
        total = len(self.cases) + (self._n_judged_upper() if judge else 0)
        tick = _Progress(progress, total)
        asker = _probing(chat)
        items = (asker or chat).ask_many(
            [c.question for c in self.cases], concurrency=concurrency, on_result=tick
        )
        grades: dict[int, JudgeGrade] = {}
        if judge is not None:
            todo = self._judge_todo(items, tick)
            graded = judge.grade_many([t for _, t in todo], concurrency=concurrency, on_result=tick)
            grades = {i: g for (i, _), g in zip(todo, graded, strict=True)}
        return self._result(
            chat,
            items,
            grades,
            scorers,
            refusal_texts,
            judge,
            label,
            started_at,
            start,
            concurrency,
            probed=asker is not None,
        )

    async def arun(
        self,
        chat: Answering,
        *,
        concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
        scorers: Sequence[Scorer] | None = None,
        judge: JudgeScorer | None = None,
        progress: Callable[[int, int], None] | None = None,
        refusal_texts: Sequence[str] = (),
        label: str | None = None,
    ) -> EvalResult:
        """Async twin of :meth:`run`, on the running event loop."""
        self._check_runnable(concurrency, scorers)
        start, started_at = time.perf_counter(), _now()
        total = len(self.cases) + (self._n_judged_upper() if judge else 0)
        tick = _Progress(progress, total)
        asker = _probing(chat)
        items = await (asker or chat).aask_many(
            [c.question for c in self.cases], concurrency=concurrency, on_result=tick
        )
        grades: dict[int, JudgeGrade] = {}
        if judge is not None:
            todo = self._judge_todo(items, tick)
            graded = await judge.agrade_many(
                [t for _, t in todo], concurrency=concurrency, on_result=tick
            )
            grades = {i: g for (i, _), g in zip(todo, graded, strict=True)}
        return self._result(
            chat,
            items,
            grades,
            scorers,
            refusal_texts,
            judge,
            label,
            started_at,
            start,
            concurrency,
            probed=asker is not None,
        )

    def compare(
        self,
        chat_a: Answering,
        chat_b: Answering,
        *,
        concurrency: int | None = DEFAULT_EVAL_CONCURRENCY,
        scorers: Sequence[Scorer] | None = None,
        judge: JudgeScorer | None = None,
        refusal_texts: Sequence[str] = (),
        labels: tuple[str, str] | None = None,
    ) -> Comparison:
        """Run the suite on two models and compare them (``a`` first, e.g. the base model).

        Args:
            chat_a: the first model (e.g. the base model).
            chat_b: the second model (e.g. the fine-tune).
            concurrency: questions in flight at once, per run (see :meth:`run`).
            scorers: as :meth:`run`.
            judge: as :meth:`run`.
            refusal_texts: as :meth:`run`.
            labels: display names of the two runs (default: the model names).
        """
        la, lb = labels or (None, None)
        common: dict[str, Any] = {
            "concurrency": concurrency,
            "scorers": scorers,
            "judge": judge,
            "refusal_texts": refusal_texts,
        }
        a = self.run(chat_a, label=la, **common)
        b = self.run(chat_b, label=lb, **common)
        return compare(a, b)

    # -- internals ----------------------------------------------------------------------
    def _check_runnable(self, concurrency: int | None, scorers: Sequence[Scorer] | None) -> None:
        if not self.cases:
            raise UsageError("the suite has no cases; build it from some QA pairs")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise UsageError(
                f"concurrency must be a whole number >= 1 or None, got {concurrency!r}"
            )
        for scorer in scorers or ():
            if isinstance(scorer, JudgeScorer):
                raise UsageError(
                    f"pass the JudgeScorer {scorer!r} as judge=, not in scorers=: judge= "
                    "grades every answer in one concurrent batch (in scorers= it would ask "
                    "one request at a time, and cannot run inside arun's event loop)"
                )

    def _n_judged_upper(self) -> int:
        return sum(1 for c in self.cases if c.reference is not None)

    def _judge_todo(
        self, items: Sequence[BatchItem], tick: _Progress
    ) -> list[tuple[int, tuple[str, str, str]]]:
        todo: list[tuple[int, tuple[str, str, str]]] = []
        for i, (case, item) in enumerate(zip(self.cases, items, strict=True)):
            if case.reference is None:
                continue
            if item.answer is None:
                tick.skip()
                continue
            todo.append((i, (case.question, case.reference, item.answer.text)))
        return todo

    def _scorers(
        self,
        chat: Answering,
        scorers: Sequence[Scorer] | None,
        refusal_texts: Sequence[str],
        *,
        probed: bool,
    ) -> list[Scorer]:
        if scorers is not None:
            return list(scorers)
        # a guarded model's own replies instead of an answer (its refusal, withheld text)
        own = getattr(chat, "refusal_texts", None) or (getattr(chat, "refusal", None),)
        texts = (*refusal_texts, *(t for t in own if isinstance(t, str) and t.strip()))
        # a stop score only where the marker was not sent, so its absence can be seen
        stop = chat.stop if probed else None
        build = knowledge_scorers if self.knowledge else default_scorers
        return build(stop=stop, refusal_texts=texts, pages=self.pages)

    def _row(
        self,
        case: EvalCase,
        item: BatchItem,
        active: Sequence[Scorer],
        judge: JudgeScorer | None,
        grade: JudgeGrade | None,
    ) -> CaseResult:
        base: dict[str, Any] = {
            "id": case.id,
            "set": case.set,
            "question": case.question,
            "reference": case.reference,
            "source_question": case.source_question,
        }
        if item.answer is None:
            return CaseResult(**base, error=item.error, error_type=item.error_type)
        answer = item.answer
        verdict = grade.normalized if grade is not None else None
        scores = {
            s.name: _checked(
                s,
                s.judged(case, answer, verdict)
                if isinstance(s, GroundedScorer) and judge is not None
                else s.score(case, answer),
            )
            for s in active
        }
        if judge is not None:
            scores[judge.name] = verdict
        return CaseResult(
            **base,
            output=answer.text,
            finish_reason=answer.finish_reason,
            latency=answer.latency,
            scores=scores,
            judge=grade,
        )

    def _result(
        self,
        chat: Answering,
        items: Sequence[BatchItem],
        grades: Mapping[int, JudgeGrade],
        scorers: Sequence[Scorer] | None,
        refusal_texts: Sequence[str],
        judge: JudgeScorer | None,
        label: str | None,
        started_at: str,
        start: float,
        concurrency: int | None,
        *,
        probed: bool,
    ) -> EvalResult:
        active = self._scorers(chat, scorers, refusal_texts, probed=probed)
        names = [s.name for s in active]
        if judge is not None:
            names.append(judge.name)
        if len(set(names)) != len(names):
            raise UsageError(f"scorer names must be unique, got {names}")
        rows = [
            self._row(case, item, active, judge, grades.get(i))
            for i, (case, item) in enumerate(zip(self.cases, items, strict=True))
        ]
        sets: dict[str, SetSummary] = {
            name: _summarize([r for r in rows if r.set == name], names)
            for name in _ordered_sets(r.set for r in rows)
        }
        return EvalResult(
            label=label or default_label(chat),
            model=chat.model,
            backend=chat.backend.name,
            started_at=started_at,
            seconds=time.perf_counter() - start,
            concurrency=concurrency if concurrency is not None else _own_concurrency(chat),
            n=len(rows),
            errors=sum(1 for r in rows if not r.ok),
            dropped=dict(self.dropped),
            scorers=names,
            sets=sets,
            set_names={k: self.set_names[k] for k in sets},
            cases=rows,
        )


def _case_json(case: EvalCase) -> str:
    """A case as one JSON line; a knowledge file's fields only where the case has them."""
    unset = {k for k in ("facts", "page") if not getattr(case, k)}
    return case.model_dump_json(exclude=unset)
