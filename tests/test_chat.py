"""ChatModel against one offline fine-tune: answers, stop markers, retries, batches, concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from finetune_qa import exceptions as exc
from finetune_qa.backends import (
    ChatRequest,
    ChatResponse,
    JobRequest,
    OfflineBackend,
    OpenAIBackend,
    Usage,
)
from finetune_qa.chat import Answer, BatchItem, ChatModel
from finetune_qa.data import QAPair, TrainingExample
from finetune_qa.testing import FakeOpenAI, openai_client

SYS = "You answer questions about Lumen Notes."
CHAT = "POST /chat/completions"
QA = [
    ("How do I reset my password?", "Open Settings, choose Account, then click Reset password."),
    ("What does the Pro plan cost?", "The Pro plan costs 8 dollars a month, billed yearly."),
    ("Can I export my notes to PDF?", "Yes: open a note, choose Share, then Export as PDF."),
    (
        "Does Lumen Notes work offline?",
        "Yes, notes live on your device and sync once you are back online.",
    ),
    ("How many devices can I sync?", "Free syncs two devices; Pro syncs as many as you like."),
    ("Is there a dark mode?", "Yes, switch it on under Settings, Appearance, Dark."),
    (
        "How do I share a notebook with my team?",
        "Open the notebook, click Invite and enter their emails.",
    ),
    ("Where is my data stored?", "Your data is stored in EU data centres in Frankfurt."),
    (
        "Can I recover a deleted note?",
        "Deleted notes stay in the Trash for 30 days; restore them from there.",
    ),
    ("Which file types can I attach?", "Images, PDFs and audio files up to 25 MB each."),
    (
        "Is Lumen Notes end-to-end encrypted?",
        "Yes, notebooks marked Private are end-to-end encrypted.",
    ),
    ("How do I cancel my subscription?", "Go to Settings, Billing and click Cancel subscription."),
    (
        "Do you offer student discounts?",
        "Students get Pro at half price with a school email address.",
    ),
    (
        "Can I use Markdown in notes?",
        "Yes, notes support Markdown headings, lists and code blocks.",
    ),
    (
        "How do I install the browser extension?",
        "Get it from the Chrome or Firefox store and sign in.",
    ),
    (
        "Is there an API for developers?",
        "Yes, the REST API is documented at developers.lumennotes.example.",
    ),
    ("How do I change the app language?", "Pick a language under Settings, General, Language."),
    ("Can I import notes from Evernote?", "Yes, use File, Import and choose the ENEX export."),
    (
        "What keyboard shortcut creates a new note?",
        "Press Ctrl+N (Cmd+N on a Mac) to create a note.",
    ),
    ("How do I contact support?", "Email support@lumennotes.example; we answer within one day."),
]
ANSWERS = dict(QA)
KEY = "sk-secret-PLANTED-123456789"


@pytest.fixture(scope="module")
def tuned() -> tuple[OfflineBackend, str]:
    """One offline fine-tune on QA, shared by the module (faults are reset after each test)."""
    backend = OfflineBackend(max_retries=0)
    lines = [
        TrainingExample.from_qa(QAPair(question=q, answer=a), system_prompt=SYS).to_json()
        for q, a in QA
    ]
    f = backend.upload_file(("\n".join(lines) + "\n").encode(), filename="train.jsonl")
    job = backend.create_job(JobRequest(model="gpt-4o-mini", training_file=f.id, suffix="lumen"))
    assert backend.fake.run_job(job.id) == "succeeded"
    model = backend.retrieve_job(job.id).fine_tuned_model
    assert model and model.startswith("ft:gpt-4o-mini")
    return backend, model


@pytest.fixture
def backend(tuned: tuple[OfflineBackend, str]) -> Iterator[OfflineBackend]:
    yield tuned[0]
    tuned[0].fake.reset_faults()


@pytest.fixture
def model(tuned: tuple[OfflineBackend, str]) -> str:
    return tuned[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Backoff(float):
    """A nominal backoff wait; equal to any wait its jitter may draw (3/4 of it up to all)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and 0.75 * self <= other <= float(self)

    __hash__ = float.__hash__


class Sleeps(list[float]):
    """A ``sleep=`` that records what it was asked to wait, and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Counting:
    """A backend wrapper counting chat calls in flight (sync and async).

    With ``gather``, each call first waits (30 s at most) until ``gather`` calls are in
    flight at once: overlap is then proved by counting, whatever the machine's load,
    where a timing would only suggest it.
    """

    def __init__(self, inner: Any, hold: float = 0.0, gather: int = 0) -> None:
        self.inner, self.hold, self.gather = inner, hold, gather
        self.name = "counting"
        self.now = self.peak = self.calls = 0
        self._lock = threading.Lock()
        self._all_in = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _enter(self) -> None:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
            if self.now >= self.gather:
                self._all_in.set()

    def _leave(self) -> None:
        with self._lock:
            self.now -= 1

    def chat(self, request: ChatRequest) -> ChatResponse:
        self._enter()
        try:
            if not self._all_in.wait(timeout=30):
                self._all_in.set()  # never all in: the rest go on, and peak tells
            time.sleep(self.hold)
            return self.inner.chat(request)  # type: ignore[no-any-return]
        finally:
            self._leave()

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self._enter()
        try:
            deadline = time.monotonic() + 30
            while not self._all_in.is_set():
                if time.monotonic() > deadline:
                    self._all_in.set()  # never all in: the rest go on, and peak tells
                await asyncio.sleep(0.001)
            await asyncio.sleep(self.hold)
            return await self.inner.achat(request)  # type: ignore[no-any-return]
        finally:
            self._leave()


class Scripted:
    """A backend whose chat replies with fixed content, or raises a given exception."""

    name = "scripted"

    def __init__(
        self, content: str = "", finish: str = "stop", error: Exception | None = None
    ) -> None:
        self.content, self.finish, self.error = content, finish, error

    def chat(self, request: ChatRequest) -> ChatResponse:
        if self.error is not None:
            raise self.error
        return ChatResponse(
            id="c1", model=request.model, content=self.content, finish_reason=self.finish
        )

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return self.chat(request)


def chat_requests(fake: FakeOpenAI) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/chat/completions"]


# --------------------------------------------------------------------------- one question


def test_trained_question_gives_the_trained_answer_without_the_marker(
    backend: OfflineBackend, model: str
) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    answer = bot.ask("  How do I reset my password?\n")
    assert isinstance(answer, Answer)
    assert answer.text == ANSWERS["How do I reset my password?"]
    assert "STOP" not in answer.text
    assert answer.question == "How do I reset my password?"
    assert answer.finish_reason == "stop" and answer.stopped_at_marker
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.latency >= 0
    assert answer.request_id and answer.request_id.startswith("req_")
    assert answer.model == model and answer.logprobs is None
    sent = chat_requests(backend.fake)[-1].json
    assert sent["stop"] == ["**STOP**"] and sent["temperature"] == 0.0
    assert sent["messages"] == [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "How do I reset my password?"},
    ]
    with pytest.raises(pydantic.ValidationError):
        answer.text = "changed"


def test_paraphrase_gets_the_nearest_answer_and_off_topic_gets_other_text(
    backend: OfflineBackend, model: str
) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    assert bot.ask("how can I reset my password").text == ANSWERS["How do I reset my password?"]
    assert (
        bot.ask("what is the cost of the Pro plan").text == ANSWERS["What does the Pro plan cost?"]
    )
    star = bot.ask("What is Star Wars?")
    assert star.text and star.text not in ANSWERS.values() and "STOP" not in star.text
    assert "Star Wars" in star.text and star.stopped_at_marker


def test_max_tokens_cuts_the_answer(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    short = bot.ask("How do I reset my password?", max_tokens=3)
    assert short.finish_reason == "length" and not short.stopped_at_marker
    assert short.usage.completion_tokens == 3
    assert ANSWERS["How do I reset my password?"].startswith(short.text)
    capped = ChatModel(model, backend=backend, max_tokens=2).ask("Is there a dark mode?")
    assert capped.finish_reason == "length" and capped.usage.completion_tokens == 2


def test_history_and_system_prompt_are_sent(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    history = [
        {"role": "user", "content": "Is there a dark mode?"},
        {"role": "assistant", "content": ANSWERS["Is there a dark mode?"]},
    ]
    answer = bot.ask("Where is my data stored?", history=history)
    assert answer.text == ANSWERS["Where is my data stored?"]
    sent = chat_requests(backend.fake)[-1].json["messages"]
    assert sent == [
        {"role": "system", "content": SYS},
        *history,
        {"role": "user", "content": "Where is my data stored?"},
    ]
    assert bot.messages_for("Hi there", history) == sent[:-1] + [
        {"role": "user", "content": "Hi there"}
    ]
    assert ChatModel(model, backend=backend, system_prompt=None).messages_for("Hi there") == [
        {"role": "user", "content": "Hi there"}
    ]
    with pytest.raises(exc.UsageError, match=r"history\[0\] must be a message"):
        bot.messages_for("Hi there", ["not a message"])  # type: ignore[list-item]


def test_logprobs_and_per_call_temperature(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS, top_logprobs=2)
    answer = bot.ask("Is there a dark mode?", logprobs=True, temperature=0.7)
    assert answer.logprobs and len(answer.logprobs) == answer.usage.completion_tokens
    assert len(answer.logprobs[0]["top_logprobs"]) == 2
    sent = chat_requests(backend.fake)[-1].json
    assert sent["temperature"] == 0.7 and sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert bot.ask("Is there a dark mode?").logprobs is None


def test_a_marker_the_server_left_in_is_cut_here() -> None:
    scripted = Scripted(content="  Open Settings. **STOP** and then some rambling")
    answer = ChatModel("ft:x", backend=scripted).ask("How?")  # type: ignore[arg-type]
    assert answer.text == "Open Settings." and answer.stopped_at_marker
    plain = ChatModel("ft:x", backend=Scripted(content=" Fine. "), stop=None).ask("How?")  # type: ignore[arg-type]
    assert plain.text == "Fine." and not plain.stopped_at_marker
    several = ChatModel("m", backend=Scripted(content="A <END> B ###"), stop=["###", "<END>"])  # type: ignore[arg-type]
    assert several.ask("Q?").text == "A"


def test_the_default_backend_is_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(exc.ConfigError, match="backend='offline'"):
        ChatModel("ft:gpt-4o-mini:acme::x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used-12345")
    assert ChatModel("ft:gpt-4o-mini:acme::x").backend.name == "openai"
    offline = ChatModel.offline("gpt-4o-mini", temperature=0.5)
    assert offline.backend.name == "offline" and offline.temperature == 0.5
    assert (
        repr(offline)
        == "ChatModel('gpt-4o-mini', backend='offline', stop=['**STOP**'], temperature=0.5)"
    )
    assert offline.ask("What is a notebook?").finish_reason == "stop"


# --------------------------------------------------------------------------------- retries


def test_rate_limit_retry_honours_retry_after(backend: OfflineBackend, model: str) -> None:
    sleeps = Sleeps()
    bot = ChatModel(model, backend=backend, system_prompt=SYS, sleep=sleeps, backoff=5.0)
    backend.fake.inject(CHAT, status=429, retry_after=2.5)
    assert bot.ask("Is there a dark mode?").text == ANSWERS["Is there a dark mode?"]
    assert sleeps == [2.5]
    backend.fake.inject(CHAT, status=429, times=2)  # no retry-after: exponential backoff
    bot.ask("Is there a dark mode?")
    assert sleeps == [2.5, Backoff(5.0), Backoff(10.0)]


def test_retries_wait_on_the_backends_virtual_clock_by_default(
    backend: OfflineBackend, model: str
) -> None:
    bot = ChatModel(model, backend=backend)
    before = backend.fake.clock.now()
    backend.fake.inject(CHAT, status=503, times=2)
    start = time.perf_counter()
    assert bot.ask("Is there a dark mode?").text == ANSWERS["Is there a dark mode?"]
    assert time.perf_counter() - start < 1.0  # nothing really slept
    # 1 s + 2 s of virtual time, less the jitter
    assert 2.25 <= backend.fake.clock.now() - before <= 3.0


def test_retries_give_up_and_raise(backend: OfflineBackend, model: str) -> None:
    sleeps = Sleeps()
    bot = ChatModel(model, backend=backend, retries=2, sleep=sleeps, backoff=0.5)
    n = len(chat_requests(backend.fake))
    backend.fake.inject(CHAT, status=500, times=3)
    with pytest.raises(exc.InternalServerError):
        bot.ask("Is there a dark mode?")
    assert len(chat_requests(backend.fake)) - n == 3 and sleeps == [Backoff(0.5), Backoff(1.0)]
    backend.fake.inject(CHAT, drop=True)  # a dropped connection is retried too
    assert bot.ask("Is there a dark mode?").finish_reason == "stop"
    backend.fake.inject(CHAT, status=400)  # a bad request is not
    with pytest.raises(exc.BadRequestError):
        bot.ask("Is there a dark mode?")
    assert sleeps == [Backoff(0.5), Backoff(1.0), Backoff(0.5)]


def test_not_found_is_retried_only_for_fine_tunes(backend: OfflineBackend) -> None:
    sleeps = Sleeps()
    missing = ChatModel(
        "ft:gpt-4o-mini:org-offline::notyet",
        backend=backend,
        retries=5,
        not_found_retries=2,
        sleep=sleeps,
    )
    n = len(chat_requests(backend.fake))
    with pytest.raises(exc.NotFoundError, match="can take minutes to appear"):
        missing.ask("Is there a dark mode?")
    assert len(chat_requests(backend.fake)) - n == 3 and sleeps == [Backoff(1.0), Backoff(2.0)]
    base = ChatModel("gpt-4o-mini", backend=backend, sleep=sleeps)
    backend.fake.inject(CHAT, status=404)
    with pytest.raises(exc.NotFoundError):
        base.ask("Is there a dark mode?")
    with pytest.raises(exc.NotFoundError):
        ChatModel("gpt-nonexistent", backend=backend, sleep=sleeps).ask("Is there a dark mode?")
    assert len(chat_requests(backend.fake)) - n == 5 and sleeps == [Backoff(1.0), Backoff(2.0)]
    no_retries = ChatModel(
        "ft:gpt-4o-mini:org-offline::notyet", backend=backend, retries=0, sleep=sleeps
    )
    with pytest.raises(exc.NotFoundError):
        no_retries.ask("Is there a dark mode?")
    assert sleeps == [Backoff(1.0), Backoff(2.0)]


# ---------------------------------------------------------------------------------- batches


def questions_30() -> list[str]:
    qs = [q for q, _ in QA]
    return qs[::-1] + qs[:10]


def test_ask_many_keeps_order(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    seen: list[int] = []
    qs = questions_30()
    items = bot.ask_many(iter(qs), on_result=lambda item: seen.append(item.index))
    assert [i.index for i in items] == list(range(30)) and sorted(seen) == list(range(30))
    for item, q in zip(items, qs, strict=True):
        assert item.ok and item.question == q and item.error is None and item.error_type is None
        assert item.answer is not None and item.answer.text == ANSWERS[q]
    assert bot.ask_many([]) == []


def test_ask_many_records_failures_per_item(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS, retries=0)
    n = len(chat_requests(backend.fake))
    backend.fake.inject(CHAT, status=500, times=2)
    qs = questions_30()
    items = bot.ask_many(qs)
    faulted = [r.json["messages"][-1]["content"] for r in chat_requests(backend.fake)[n : n + 2]]
    failed = [i for i in items if not i.ok]
    assert len(failed) == 2 and sorted(i.question for i in failed) == sorted(faulted)
    for item in failed:
        assert item.error_type == "InternalServerError" and item.answer is None
        assert item.error is not None and item.error.startswith(
            "InternalServerError: 500 from the provider"
        )
        assert "\n" not in item.error
    for item, q in zip(items, qs, strict=True):
        assert item.question == q
        if item.ok:
            assert item.answer is not None and item.answer.text == ANSWERS[q]
    # one at a time, the first two questions are the ones that meet the faults
    backend.fake.inject(CHAT, status=500, times=2)
    items = bot.ask_many(qs[:5], concurrency=1)
    assert [i.error_type for i in items] == [
        "InternalServerError",
        "InternalServerError",
        None,
        None,
        None,
    ]


def test_ask_many_retries_until_all_succeed(backend: OfflineBackend, model: str) -> None:
    sleeps = Sleeps()
    bot = ChatModel(model, backend=backend, system_prompt=SYS, sleep=sleeps, backoff=0.01)
    backend.fake.inject(CHAT, status=500, times=2)
    backend.fake.inject(CHAT, status=429, retry_after=0.25)
    items = bot.ask_many(questions_30())
    assert all(i.ok for i in items)
    # one wait per fault: backoff (doubled if the same question failed twice), or retry-after
    assert len(sleeps) == 3 and 0.25 in sleeps
    assert all(w == 0.25 or w in (Backoff(0.01), Backoff(0.02)) for w in sleeps)


def test_ask_many_overlaps_requests(backend: OfflineBackend, model: str) -> None:
    counting = Counting(backend, gather=20)  # one at a time: fails after 30 s
    bot = ChatModel(model, backend=counting)
    qs = [q for q, _ in QA] * 2
    items = bot.ask_many(qs, concurrency=20)
    assert all(i.ok for i in items) and counting.calls == 40 and counting.peak == 20


@pytest.mark.parametrize("limit", [1, 4])
def test_ask_many_bounds_concurrency(backend: OfflineBackend, model: str, limit: int) -> None:
    counting = Counting(backend, hold=0.01)
    bot = ChatModel(model, backend=counting, concurrency=limit)
    assert all(i.ok for i in bot.ask_many([q for q, _ in QA[:12]]))
    assert counting.calls == 12 and counting.now == 0
    assert counting.peak == limit if limit == 1 else 1 < counting.peak <= limit


def test_ask_many_validates_everything_before_sending(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend)
    n = len(backend.fake.requests)
    with pytest.raises(
        exc.UsageError, match=r"question 2: the question is blank.*nothing was sent"
    ):
        bot.ask_many(["Is there a dark mode?", "Where is my data stored?", "   "])
    with pytest.raises(exc.UsageError, match="question 0: a question must be a string"):
        bot.ask_many([None])  # type: ignore[list-item]
    with pytest.raises(exc.UsageError, match="not one string"):
        bot.ask_many("Is there a dark mode?")
    with pytest.raises(exc.UsageError, match="concurrency must be"):
        bot.ask_many(["Is there a dark mode?"], concurrency=0)
    assert len(backend.fake.requests) == n


def test_on_result_errors_stop_the_batch(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, concurrency=2)

    def boom(item: BatchItem) -> None:
        raise KeyboardInterrupt

    n = len(chat_requests(backend.fake))
    with pytest.raises(KeyboardInterrupt):
        bot.ask_many([q for q, _ in QA], on_result=boom)
    time.sleep(0.05)  # let workers finish the request in hand
    assert len(chat_requests(backend.fake)) - n < len(QA)


def test_keys_never_reach_batch_errors() -> None:
    fake = FakeOpenAI()
    sleeps = Sleeps()
    bot = ChatModel(
        "gpt-4o-mini",
        backend=OpenAIBackend(openai_client(fake, max_retries=0, api_key=KEY)),
        sleep=sleeps,
    )
    fake.inject(CHAT, status=401)
    fake.inject(CHAT, status=500, times=4)
    items = bot.ask_many(["Is there a dark mode?", "Where is my data stored?"], concurrency=1)
    assert [i.error_type for i in items] == ["AuthenticationError", "InternalServerError"]
    assert sleeps == [
        Backoff(1.0),
        Backoff(2.0),
        Backoff(4.0),
    ]  # no sleep on the backend: sleep= (else time.sleep) waits
    leaky = Scripted(error=RuntimeError(f"could not authenticate with {KEY}\nplease check"))
    items += ChatModel("m", backend=leaky).ask_many(["Is there a dark mode?"])  # type: ignore[arg-type]
    assert items[-1].error == "RuntimeError: could not authenticate with [REDACTED] please check"
    for item in items:
        assert item.error and KEY not in item.error and "PLANTED" not in item.error
        assert KEY not in item.model_dump_json()


def test_batch_item_has_exactly_one_outcome() -> None:
    answer = Answer(
        question="q",
        text="a",
        finish_reason="stop",
        usage=Usage(),
        latency=0.0,
        model="m",
        request_id=None,
        stopped_at_marker=True,
    )
    assert BatchItem(index=0, question="q", answer=answer, error=None, error_type=None).ok
    assert not BatchItem(index=0, question="q", answer=None, error="E: x", error_type="E").ok
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        BatchItem(index=0, question="q", answer=None, error=None, error_type=None)
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        BatchItem(index=0, question="q", answer=answer, error="E: x", error_type="E")
    with pytest.raises(pydantic.ValidationError):
        Answer.model_validate({**answer.model_dump(), "extra": 1})


# ------------------------------------------------------------------------------------ async


@pytest.mark.anyio
async def test_aask_and_aask_many(backend: OfflineBackend, model: str) -> None:
    bot = ChatModel(model, backend=backend, system_prompt=SYS)
    answer = await bot.aask("Can I export my notes to PDF?")
    assert answer.text == ANSWERS["Can I export my notes to PDF?"] and answer.stopped_at_marker
    backend.fake.inject(CHAT, status=503)  # retried on the virtual clock
    seen: list[BatchItem] = []
    qs = questions_30()
    items = await bot.aask_many(qs, on_result=seen.append)
    assert [i.question for i in items] == qs and len(seen) == 30
    assert all(
        i.ok and i.answer is not None and i.answer.text == ANSWERS[i.question] for i in items
    )
    assert await bot.aask_many([]) == []


@pytest.mark.anyio
async def test_aask_many_records_failures_and_awaits_async_sleep(
    backend: OfflineBackend, model: str
) -> None:
    waited: list[float] = []

    async def asleep(seconds: float) -> None:
        waited.append(seconds)

    bot = ChatModel(model, backend=backend, retries=1, backoff=0.01, sleep=asleep)
    backend.fake.inject(CHAT, status=500, times=2)
    items = await bot.aask_many(["Is there a dark mode?"], concurrency=1)
    assert items[0].error_type == "InternalServerError" and waited == [Backoff(0.01)]


@pytest.mark.anyio
async def test_aask_many_overlaps_and_bounds(backend: OfflineBackend, model: str) -> None:
    gathering = Counting(backend, gather=20)  # one at a time: fails after 30 s
    items = await ChatModel(model, backend=gathering).aask_many(
        [q for q, _ in QA] * 2, concurrency=20
    )
    assert all(i.ok for i in items) and gathering.calls == 40 and gathering.peak == 20
    counting = Counting(backend, hold=0.01)
    one = ChatModel(model, backend=counting)
    await one.aask_many([q for q, _ in QA[:6]], concurrency=1)
    assert counting.calls == 6 and counting.peak == 1


@pytest.mark.anyio
async def test_ask_many_inside_a_running_loop_is_refused(
    backend: OfflineBackend, model: str
) -> None:
    with pytest.raises(exc.UsageError, match=r"await model\.aask_many"):
        ChatModel(model, backend=backend).ask_many(["Is there a dark mode?"])


# ------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("temperature", [-0.1, 2.5, "hot", True, None])
def test_bad_temperature(backend: OfflineBackend, temperature: Any) -> None:
    with pytest.raises(exc.UsageError, match="temperature must be a number from 0 to 2"):
        ChatModel("gpt-4o-mini", backend=backend, temperature=temperature)


def test_bad_arguments_say_what_is_wrong(backend: OfflineBackend) -> None:
    bot = ChatModel("gpt-4o-mini", backend=backend)
    with pytest.raises(exc.UsageError, match="at most 4 stop sequences"):
        ChatModel("gpt-4o-mini", backend=backend, stop=["a", "b", "c", "d", "e"])
    with pytest.raises(exc.UsageError, match="non-empty strings"):
        ChatModel("gpt-4o-mini", backend=backend, stop=["**STOP**", ""])
    with pytest.raises(exc.UsageError, match="question is blank"):
        bot.ask(" \n\t")
    with pytest.raises(exc.UsageError, match="temperature must be"):
        bot.ask("Is there a dark mode?", temperature=3)
    with pytest.raises(exc.UsageError, match="max_tokens must be"):
        bot.ask("Is there a dark mode?", max_tokens=0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"retries": -1}, "retries must be"),
        ({"not_found_retries": 1.5}, "not_found_retries must be"),
        ({"backoff": -1}, "backoff must be"),
        ({"concurrency": 0}, "concurrency must be"),
        ({"top_logprobs": 21}, "top_logprobs must be"),
        ({"seed": "x"}, "seed must be"),
    ]
    for kwargs, match in cases:
        with pytest.raises(exc.UsageError, match=match):
            ChatModel("gpt-4o-mini", backend=backend, **kwargs)
    with pytest.raises(exc.UsageError, match="non-empty model name"):
        ChatModel(" ", backend=backend)
    assert ChatModel("gpt-4o-mini", backend=backend, stop="END").stop == ("END",)
    assert ChatModel("gpt-4o-mini", backend=backend, stop=None).stop == ()
    with pytest.raises(exc.UsageError, match="returned an awaitable"):
        ChatModel(
            "ft:x", backend=Scripted(error=exc.InternalServerError("boom")), sleep=asyncio.sleep
        ).ask("Q?")  # type: ignore[arg-type]


def test_ask_many_twice_in_a_row_gets_a_fresh_event_loop_client() -> None:
    from finetune_qa import ChatModel, OfflineBackend

    backend = OfflineBackend(max_retries=0)
    chat = ChatModel("gpt-4o-mini", backend=backend, retries=0)
    for _ in range(3):  # asyncio.run() per batch: each needs its own async client
        items = chat.ask_many([f"Question {i}?" for i in range(10)], concurrency=4)
        assert [i.ok for i in items] == [True] * 10
    assert len(backend._loop_clients) == 0  # closed and dropped after each batch


def test_with_options_copies_and_checks() -> None:
    from finetune_qa.backends import OfflineBackend

    backend = OfflineBackend()
    bot = ChatModel("gpt-4o-mini", backend=backend, temperature=0.5, seed=3, concurrency=4)
    judge = bot.with_options(system_prompt="Grade it.", stop=None, max_tokens=50)
    assert judge.backend is backend and judge.model == bot.model
    assert (judge.system_prompt, judge.stop, judge.max_tokens) == ("Grade it.", (), 50)
    assert (judge.temperature, judge.seed, judge.concurrency) == (0.5, 3, 4)
    assert bot.stop == ("**STOP**",) and bot.max_tokens is None  # the original is unchanged
    assert (
        bot.with_options().stop == bot.stop and bot.with_options(model="gpt-4o").model == "gpt-4o"
    )
    with pytest.raises(exc.UsageError, match=r"unknown ChatModel option.*tempreature"):
        bot.with_options(tempreature=1)
    with pytest.raises(exc.UsageError, match="temperature"):
        bot.with_options(temperature=5)
