"""ChatModel: ask a (fine-tuned) model one question or many, with stop-marker handling.

A model fine-tuned on examples built by :class:`~finetune_qa.dataset.DatasetBuilder`
was taught to end every answer with a stop marker (``**STOP**`` by default), so it is
queried with that marker as its ``stop`` sequence. :class:`ChatModel` does that, and
more of the querying a QA chatbot needs:

* :meth:`ChatModel.ask` sends ``[system] + history + [question]`` and returns an
  :class:`Answer`: the text without the marker, why it ended, token usage, latency and
  the provider's request id;
* it retries what is worth retrying: rate limits (honouring the provider's
  ``retry-after``), 5xx errors, dropped connections, and "model not found" for an
  ``ft:`` model (a fine-tune can take a few minutes to appear after its job succeeds),
  with exponential backoff;
* :meth:`ChatModel.ask_many` asks many questions with bounded concurrency and returns
  one :class:`BatchItem` per question, in order; a failed question is recorded in its
  item instead of aborting the batch;
* :meth:`ChatModel.aask` and :meth:`ChatModel.aask_many` are the async twins.

The backend defaults to ``"openai"`` (which needs an API key and costs money); pass
``backend="offline"`` (or use :meth:`ChatModel.offline`) to run without either.

Example:
    >>> from finetune_qa.chat import ChatModel
    >>> bot = ChatModel.offline("gpt-4o-mini")
    >>> answer = bot.ask("What is Lumen Notes?")
    >>> answer.finish_reason, answer.usage.completion_tokens > 0
    ('stop', True)
    >>> [item.ok for item in bot.ask_many(["Hello?", "What is a notebook?"])]
    [True, True]
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

from finetune_qa._retry import RetryPolicy
from finetune_qa.backends import get_backend
from finetune_qa.backends.base import (
    Backend,
    ChatRequest,
    ChatResponse,
    HasClock,
    MakesLoopClients,
    Usage,
    backend_sleep,
)
from finetune_qa.config import DEFAULT_STOP, DEFAULT_SYSTEM_PROMPT
from finetune_qa.exceptions import (
    BackendError,
    FineTuneQAError,
    NotFoundError,
    UsageError,
    redact,
)

if TYPE_CHECKING:
    from finetune_qa.jobs import ModelCard

__all__ = ["Answer", "BatchItem", "ChatModel"]


class _Unset(enum.Enum):
    FROM_CARD = "from the model card"

    def __repr__(self) -> str:
        return "<the model card's, else the default>"


_FROM_CARD = _Unset.FROM_CARD

MAX_STOP_SEQUENCES = 4
"""OpenAI accepts at most this many stop sequences."""

_POLL_SECONDS = 0.2  # how often a waiting ask_many wakes up, so Ctrl-C is seen on every OS


class Answer(BaseModel):
    """A model's answer to one question, with why it ended and what it cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(description="The question asked (surrounding white space stripped).")
    text: str = Field(
        description="The answer: stop marker and anything after it removed, white space stripped."
    )
    finish_reason: str = Field(description="Why generation ended: 'stop', 'length', ...")
    usage: Usage = Field(description="Token usage of the successful request.")
    latency: float = Field(
        description="Wall-clock seconds of the call, including this library's retries and waits."
    )
    model: str = Field(description="The model that answered, as the provider names it.")
    request_id: str | None = Field(description="Provider request id (quote it to support).")
    stopped_at_marker: bool = Field(
        description="True when the text ended at a stop marker; False when cut by max_tokens etc."
    )
    logprobs: list[dict[str, Any]] | None = Field(
        default=None, description="Per-token log-probabilities, when asked for."
    )


class BatchItem(BaseModel):
    """One result of :meth:`ChatModel.ask_many`: either an answer or an error, never both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(description="Position of the question in the batch (0-based).")
    question: str = Field(description="The question asked.")
    answer: Answer | None = Field(default=None, description="The answer, if one came back.")
    error: str | None = Field(
        default=None, description="One line: exception class name and (redacted) message."
    )
    error_type: str | None = Field(
        default=None, description="Exception class name, e.g. 'RateLimitError'."
    )

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if (self.answer is None) == (self.error is None):
            raise ValueError("a BatchItem has exactly one of answer and error")
        if (self.error is None) != (self.error_type is None):
            raise ValueError("error and error_type are set together")
        return self

    @property
    def ok(self) -> bool:
        """True when the question was answered."""
        return self.answer is not None


class ChatModel:
    """A chat model to ask questions: a fine-tune, or any model the backend serves.

    Args:
        model: model name, e.g. ``"ft:gpt-4o-mini-2024-07-18:acme::AbC123"``.
        backend: a backend name (``"openai"``, ``"offline"``, or a registered one) or a
            backend instance; ``None`` means ``"openai"``, which needs an API key (the
            error without one says how to run offline instead).
        system_prompt: system message sent first. Default: the one the model was trained
            with, from its :class:`~finetune_qa.jobs.ModelCard`; for a model without a
            card, that of :class:`~finetune_qa.dataset.DatasetBuilder`. ``None`` or
            ``""``: none. Another one than the card's is used, with a warning.
        stop: stop marker(s), at most 4 non-empty strings. Default: the card's marker,
            else the one :class:`~finetune_qa.dataset.DatasetBuilder` appends. ``None``:
            no stop. Another one than the card's is used, with a warning.
        temperature: sampling temperature, 0-2 (0: the most likely answer).
        max_tokens: cap on generated tokens (``None``: the provider's limit).
        seed: sampling seed, for repeatable answers at temperature > 0.
        logprobs: also return per-token log-probabilities.
        top_logprobs: alternatives per token with ``logprobs``, 0-20.
        retries: retries of one question after a rate limit (never a quota or billing
            error), a 5xx error, a dropped connection or a not-yet-visible fine-tune
            (0: none), by finetune_qa's one retry policy. The built-in backends send
            chat requests with their SDK's own retries off, so these are all there are.
        not_found_retries: at most this many of those retries for "model not found",
            and only for ``ft:`` models.
        backoff: seconds before the first retry, doubled for each one after it, less
            up to a quarter at random (jitter); a rate limit's ``retry-after`` is used
            instead when the provider sends one (0: at once). No wait is over 60 s.
        sleep: how to wait between retries, called with seconds. The async methods
            await what it returns if that is awaitable (so ``asyncio.sleep`` works
            there; the sync ones need a blocking function). Default: the backend's
            ``sleep`` if it has one (the offline backend's advances its virtual clock),
            else :func:`time.sleep`, and :func:`asyncio.sleep` in the async methods.
        concurrency: questions in flight at once in :meth:`ask_many` by default.
        card: the model's card; True (the default) looks it up by model name among the
            models trained through this backend (:func:`~finetune_qa.jobs.model_card`);
            False uses none.

    Attributes:
        card: the model card in use, or None.
        notes: where the card was overridden, one line each (also warned).

    Raises:
        UsageError: an argument is out of range.
        UnknownBackendError: no backend has that name.
        ConfigError: the backend cannot be built, e.g. no OpenAI API key.

    Example:
        ```python
        bot = ChatModel("ft:gpt-4o-mini-2024-07-18:acme::AbC123")
        print(bot.ask("What does the Pro plan include?").text)
        for item in bot.ask_many(questions, concurrency=16):
            print(item.index, item.answer.text if item.ok else item.error)
        ```
    """

    def __init__(
        self,
        model: str,
        *,
        backend: str | Backend | None = None,
        system_prompt: str | _Unset | None = _FROM_CARD,
        stop: str | Sequence[str] | _Unset | None = _FROM_CARD,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        retries: int = 3,
        not_found_retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], object] | None = None,
        concurrency: int = 8,
        card: ModelCard | bool = True,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise UsageError(f"model must be a non-empty model name, got {model!r}")
        if system_prompt is not None and not isinstance(system_prompt, (str, _Unset)):
            raise UsageError(f"system_prompt must be a string or None, got {system_prompt!r}")
        if top_logprobs is not None and (not _is_int(top_logprobs) or not 0 <= top_logprobs <= 20):
            raise UsageError(f"top_logprobs must be a whole number 0-20, got {top_logprobs!r}")
        if seed is not None and not _is_int(seed):
            raise UsageError(f"seed must be a whole number or None, got {seed!r}")
        for name, value in (("retries", retries), ("not_found_retries", not_found_retries)):
            if not _is_int(value) or value < 0:
                raise UsageError(f"{name} must be a whole number >= 0, got {value!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
            raise UsageError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        if sleep is not None and not callable(sleep):
            raise UsageError(f"sleep must be a callable taking seconds, got {sleep!r}")
        self.model = model.strip()
        explicit_stop = None if isinstance(stop, _Unset) else _check_stop(stop)
        self.temperature = _check_temperature(temperature)
        self.max_tokens = _check_max_tokens(max_tokens)
        self.seed = seed
        self.logprobs = bool(logprobs)
        self.top_logprobs = top_logprobs
        self.retries = retries
        self.not_found_retries = not_found_retries
        self.backoff = float(backoff)
        self.concurrency = _check_concurrency(concurrency)
        self.backend: Backend = get_backend("openai" if backend is None else backend)
        self._sleep = sleep
        self.card: ModelCard | None = _find_card(self.model, self.backend, card)
        self.notes: list[str] = []
        default_prompt = DEFAULT_SYSTEM_PROMPT if self.card is None else self.card.system_prompt
        self.system_prompt: str | None = (
            default_prompt if isinstance(system_prompt, _Unset) else system_prompt or None
        )
        if explicit_stop is None:
            marker = DEFAULT_STOP if self.card is None else self.card.stop
            explicit_stop = _check_stop(marker)
            stop_given = False
        else:
            stop_given = True
        self.stop: tuple[str, ...] = explicit_stop
        if self.card is not None:
            c = self.card
            if not isinstance(system_prompt, _Unset) and self.system_prompt != c.system_prompt:
                self.notes.append(
                    f"{self.model} was trained with the system prompt {c.system_prompt!r}; "
                    f"asking with {self.system_prompt!r} instead"
                )
            if stop_given and self.stop != _check_stop(c.stop):
                self.notes.append(
                    f"{self.model} was trained with the stop marker {c.stop!r}; asking with "
                    f"{', '.join(repr(x) for x in self.stop) or 'none'} instead"
                )
            for note in self.notes:
                warnings.warn(note, UserWarning, stacklevel=2)

    @classmethod
    def offline(cls, model: str, **kwargs: Any) -> Self:
        """A chat model on the offline backend: no key, no network, no cost.

        Args:
            model: a base model name, or a fine-tune made on an offline backend (share
                that backend with ``ChatModel(model, backend=that_backend)`` instead,
                since a new offline backend knows no fine-tunes).
            **kwargs: the other :class:`ChatModel` options.
        """
        return cls(model, backend="offline", **kwargs)

    def with_options(self, **changes: Any) -> Self:
        """A copy of this model with some options changed, checked like the constructor.

        The copy shares the backend (and so its connections and, offline, its state).

        Args:
            **changes: any of the constructor's keyword arguments, and ``model``.

        Raises:
            UsageError: an unknown option, or a value out of range.

        Example:
            ```python
            grader = bot.with_options(system_prompt="Grade the answer 1-5.", stop=None)
            ```
        """
        options: dict[str, Any] = {
            "model": self.model,
            "backend": self.backend,
            "system_prompt": self.system_prompt,
            "stop": self.stop or None,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "retries": self.retries,
            "not_found_retries": self.not_found_retries,
            "backoff": self.backoff,
            "sleep": self._sleep,
            "concurrency": self.concurrency,
            "card": self.card if self.card is not None and "model" not in changes else True,
        }
        unknown = sorted(set(changes) - set(options))
        if unknown:
            raise UsageError(
                f"unknown ChatModel option(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(options))}"
            )
        options.update(changes)
        return type(self)(options.pop("model"), **options)

    def __repr__(self) -> str:
        return (
            f"ChatModel({self.model!r}, backend={self.backend.name!r}, "
            f"stop={list(self.stop)!r}, temperature={self.temperature!r})"
        )

    # ----------------------------------------------------------------- one question
    def messages_for(
        self, question: str, history: Sequence[Mapping[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The messages sent for ``question``: ``[system] + history + [user question]``.

        Args:
            question: the user's question (surrounding white space is stripped).
            history: earlier turns, e.g. ``[{"role": "user", "content": "..."},
                {"role": "assistant", "content": "..."}]``.

        Raises:
            UsageError: the question is blank, or a history entry is not a message.
        """
        text = _check_question(question)
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for i, turn in enumerate(history or ()):
            if not isinstance(turn, Mapping) or not isinstance(turn.get("role"), str):
                raise UsageError(
                    f"history[{i}] must be a message like {{'role': 'user', 'content': '...'}}, "
                    f"got {turn!r}"
                )
            messages.append(dict(turn))
        messages.append({"role": "user", "content": text})
        return messages

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: bool | None = None,
    ) -> Answer:
        """Ask one question; retry what is worth retrying.

        Args:
            question: the user's question.
            history: earlier turns to send before it (see :meth:`messages_for`).
            temperature: this call's temperature (``None``: the model's).
            max_tokens: this call's token cap (``None``: the model's).
            logprobs: this call's ``logprobs`` (``None``: the model's).

        Returns:
            The answer, with the stop marker removed.

        Raises:
            UsageError: a blank question or an argument out of range.
            BackendError: the request failed, after the retries allowed.
        """
        request = self._request(question, history, temperature, max_tokens, logprobs)
        start = time.perf_counter()
        response = self._policy().call(
            lambda: self.backend.chat(request),
            sleep=self._wait,
            retry_also=self._not_found_yet(),
        )
        return self._answer(request, response, time.perf_counter() - start)

    async def aask(
        self,
        question: str,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        logprobs: bool | None = None,
    ) -> Answer:
        """Ask one question asynchronously (the backend's ``achat``); see :meth:`ask`."""
        request = self._request(question, history, temperature, max_tokens, logprobs)
        start = time.perf_counter()
        response = await self._policy().acall(
            lambda: self.backend.achat(request),
            sleep=self._await,
            retry_also=self._not_found_yet(),
        )
        return self._answer(request, response, time.perf_counter() - start)

    # ---------------------------------------------------------------- many questions
    def ask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Ask many questions, ``concurrency`` at a time; result ``i`` is question ``i``.

        A question that fails (after its retries) gives an item with ``error`` set; the
        others go on. Every question is checked before the first is sent.

        When the backend makes async clients per event loop (the built-in backends do,
        for clients they build), the questions run as coroutines on a fresh event loop;
        otherwise with :meth:`ask` on worker threads, because an async client you passed
        in is tied to the loop it first ran on.

        Args:
            questions: the questions.
            concurrency: questions in flight at once (default: the model's ``concurrency``).
            on_result: called in the calling thread with each item as it completes
                (completion order); an exception it raises stops the batch.

        Returns:
            One item per question, in the order given.

        Raises:
            UsageError: a blank question, a bad ``concurrency``, or called from a running
                event loop (``await aask_many(...)`` there instead).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                "ask_many() blocks, so it cannot be called from a running event loop; "
                "use `await model.aask_many(...)` there instead"
            )
        items = _check_questions(questions)
        limit = _check_concurrency(self.concurrency if concurrency is None else concurrency)
        results: list[BatchItem | None] = [None] * len(items)
        if not items:
            return []
        if isinstance(self.backend, MakesLoopClients) and self.backend.async_per_loop:
            # the backend makes a fresh async client for this loop: no thread per request
            return asyncio.run(self._run_async_batch(items, limit, on_result))
        todo = iter(enumerate(items))
        todo_lock = threading.Lock()
        stopped = threading.Event()
        done: queue.SimpleQueue[BatchItem | BaseException] = queue.SimpleQueue()

        def work() -> None:
            while not stopped.is_set():
                with todo_lock:
                    nxt = next(todo, None)
                if nxt is None:
                    return
                try:
                    done.put(self._item(*nxt))
                except BaseException as exc:  # a UsageError or worse: hand it to the caller
                    done.put(exc)
                    return

        for k in range(min(limit, len(items))):
            threading.Thread(target=work, name=f"finetune_qa-ask-{k}", daemon=True).start()
        try:
            for _ in items:
                got = _get(done)
                if isinstance(got, BaseException):
                    raise got
                results[got.index] = got
                if on_result is not None:
                    on_result(got)
        finally:
            stopped.set()  # workers finish the request in hand and take no more
        return [item for item in results if item is not None]

    async def _run_async_batch(
        self,
        items: list[str],
        limit: int,
        on_result: Callable[[BatchItem], None] | None,
    ) -> list[BatchItem]:
        try:
            return await self.aask_many(items, concurrency=limit, on_result=on_result)
        finally:
            if isinstance(self.backend, MakesLoopClients):
                await self.backend.aclose_loop_client()

    async def aask_many(
        self,
        questions: Iterable[str],
        *,
        concurrency: int | None = None,
        on_result: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Ask many questions on the running event loop; see :meth:`ask_many`.

        ``concurrency`` coroutines take the questions in turn, so memory does not grow
        with a task per question.
        """
        items = _check_questions(questions)
        limit = _check_concurrency(self.concurrency if concurrency is None else concurrency)
        results: list[BatchItem | None] = [None] * len(items)
        todo = iter(enumerate(items))

        async def work() -> None:
            for index, question in todo:
                item = await self._aitem(index, question)
                results[index] = item
                if on_result is not None:
                    on_result(item)

        workers = [asyncio.ensure_future(work()) for _ in range(min(limit, len(items)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return [item for item in results if item is not None]

    # ------------------------------------------------------------------- internals
    def _request(
        self,
        question: str,
        history: Sequence[Mapping[str, Any]] | None,
        temperature: float | None,
        max_tokens: int | None,
        logprobs: bool | None,
    ) -> ChatRequest:
        want_logprobs = self.logprobs if logprobs is None else bool(logprobs)
        if temperature is None:
            temperature = self.temperature
        if max_tokens is None:
            max_tokens = self.max_tokens
        return ChatRequest(
            model=self.model,
            messages=self.messages_for(question, history),
            temperature=_check_temperature(temperature),
            max_tokens=_check_max_tokens(max_tokens),
            stop=list(self.stop) or None,
            seed=self.seed,
            logprobs=want_logprobs,
            top_logprobs=self.top_logprobs if want_logprobs else None,
        )

    def _answer(self, request: ChatRequest, response: ChatResponse, latency: float) -> Answer:
        content = response.content
        cut = min((i for i in (content.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:  # the server did not apply ``stop``: cut at the marker here
            content = content[:cut]
        return Answer(
            question=str(request.messages[-1]["content"]),
            text=content.strip(),
            finish_reason=response.finish_reason,
            usage=response.usage,
            latency=latency,
            model=response.model,
            request_id=response.request_id,
            stopped_at_marker=bool(self.stop) and (cut >= 0 or response.finish_reason == "stop"),
            logprobs=response.logprobs,
        )

    def _item(self, index: int, question: str) -> BatchItem:
        try:
            return BatchItem(index=index, question=question, answer=self.ask(question))
        except UsageError:
            raise
        except Exception as exc:
            return _failed(index, question, exc)

    async def _aitem(self, index: int, question: str) -> BatchItem:
        try:
            return BatchItem(index=index, question=question, answer=await self.aask(question))
        except UsageError:
            raise
        except Exception as exc:
            return _failed(index, question, exc)

    def _policy(self) -> RetryPolicy:
        """The one retry policy, with this model's retries and backoff."""
        return RetryPolicy(attempts=self.retries + 1, backoff=self.backoff)

    def _not_found_yet(self) -> Callable[[BackendError], bool]:
        """For one question: whether "model not found" is worth a retry (a new fine-tune).

        A fine-tune (``ft:``) can take a few minutes to appear after its job succeeds;
        at most ``not_found_retries`` of the retries are spent waiting for it.
        """
        spent = 0

        def admit(exc: BackendError) -> bool:
            nonlocal spent
            if not isinstance(exc, NotFoundError) or not self.model.startswith("ft:"):
                return False
            if spent >= self.not_found_retries:
                return False
            spent += 1
            return True

        return admit

    def _wait(self, seconds: float) -> None:
        if self._sleep is None:
            backend_sleep(self.backend)(seconds)
            return
        result = self._sleep(seconds)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it rather than leak a warning
            raise UsageError(
                "sleep= returned an awaitable, which ask() and ask_many() cannot wait for; "
                "pass a blocking function such as time.sleep (the async methods accept both)"
            )

    async def _await(self, seconds: float) -> None:
        sleep: Callable[[float], object] | None = self._sleep
        if sleep is None and isinstance(self.backend, HasClock):
            sleep = self.backend.sleep
        if sleep is None:
            await asyncio.sleep(seconds)
            return
        result = sleep(seconds)  # a virtual clock's sleep returns at once
        if inspect.isawaitable(result):
            await result


def _get(done: queue.SimpleQueue[BatchItem | BaseException]) -> BatchItem | BaseException:
    while True:
        try:
            return done.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue


def _failed(index: int, question: str, exc: Exception) -> BatchItem:
    name = type(exc).__name__
    message = " ".join(redact(str(exc)).split())
    return BatchItem(
        index=index,
        question=question,
        error=f"{name}: {message}" if message else name,
        error_type=name,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_question(question: object) -> str:
    if not isinstance(question, str):
        raise UsageError(f"a question must be a string, got {type(question).__name__}")
    text = question.strip()
    if not text:
        raise UsageError("the question is blank; ask something (a non-empty string)")
    return text


def _check_questions(questions: Iterable[str]) -> list[str]:
    if isinstance(questions, str):
        raise UsageError("ask_many takes an iterable of questions, not one string; use ask()")
    items: list[str] = []
    for i, question in enumerate(questions):
        try:
            items.append(_check_question(question))
        except UsageError as exc:
            raise UsageError(f"question {i}: {exc}; nothing was sent") from None
    return items


def _find_card(model: str, backend: Backend, card: ModelCard | bool) -> ModelCard | None:
    """The card given, or the one recorded for ``model`` on ``backend`` (with ``True``)."""
    from finetune_qa.jobs import ModelCard, model_card

    if isinstance(card, ModelCard):
        return card
    if card is not True:
        return None
    try:
        return model_card(model, backend=backend)
    except FineTuneQAError:
        return None  # an unreadable index must not stop a question from being asked


def _check_stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise UsageError(
            f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed (OpenAI's limit), "
            f"got {len(stops)}"
        )
    for s in stops:
        if not isinstance(s, str) or not s:
            raise UsageError(
                f"stop sequences must be non-empty strings, got {s!r}; pass stop=None for none"
            )
    return tuple(stops)


def _check_temperature(temperature: float) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 <= temperature <= 2
    ):
        raise UsageError(
            f"temperature must be a number from 0 to 2, got {temperature!r} "
            "(0 gives the most likely answer, the usual choice for a QA bot)"
        )
    return float(temperature)


def _check_max_tokens(max_tokens: int | None) -> int | None:
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise UsageError(f"max_tokens must be a whole number >= 1 or None, got {max_tokens!r}")
    return max_tokens


def _check_concurrency(concurrency: int) -> int:
    if not _is_int(concurrency) or concurrency < 1:
        raise UsageError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    return concurrency
