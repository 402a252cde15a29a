"""One retry policy for every request finetune_qa repeats: jobs, uploads and chat alike.

The rules, in the order they are applied to a failed request:

1. only transient failures are retried: rate limits, 5xx errors and dropped connections
   (plus whatever a caller's ``retry_also`` admits, e.g. chat's "model not found yet");
2. a quota or billing error (``insufficient_quota``) is never retried: waiting buys none;
3. at most ``attempts`` tries in all, the first included;
4. the wait is the provider's ``Retry-After`` when it sends one (zero included: retry at
   once), else an exponential backoff with jitter; never more than ``max_wait`` seconds;
5. before a request that may have been carried out unheard (no answer, or a 5xx) is
   sent again, or given up on, ``lookup`` is asked for what it made: a create whose
   response was lost is found instead of duplicated.

Waiting goes through the ``sleep`` the caller passes (the backend's, when it has a clock
of its own: the offline backend's virtual clock), so tests never sleep on the real clock.
The built-in backends send creates (uploads, jobs) and chat completions with their SDK
client's own retries off, so for those this policy's are the only ones; reads keep the
client's retries underneath (they change nothing when repeated).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from finetune_qa.exceptions import (
    APIConnectionError,
    BackendError,
    InternalServerError,
    RateLimitError,
)

__all__ = [
    "ATTEMPTS",
    "MAX_WAIT",
    "RETRYABLE",
    "RetryPolicy",
    "is_quota_error",
    "may_have_been_carried_out",
]

T = TypeVar("T")

ATTEMPTS = 4
"""Tries of one request by default, the first included."""

MAX_WAIT = 60.0
"""The longest single wait between two tries, in seconds (``Retry-After`` included)."""

RETRYABLE: tuple[type[BackendError], ...] = (
    APIConnectionError,
    RateLimitError,
    InternalServerError,
)
"""Failures worth another try: a rate limit, a 5xx error, no answer."""

_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})


def is_quota_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a rate limit that waiting cannot lift (quota or billing)."""
    if not isinstance(exc, RateLimitError):
        return False
    code = (exc.code or "").lower()
    return code in _QUOTA_CODES or "quota" in code or "billing" in code


def may_have_been_carried_out(exc: BaseException) -> bool:
    """Whether a failed request may still have been carried out (no answer, or a 5xx)."""
    return isinstance(exc, APIConnectionError | InternalServerError)


@dataclass
class RetryPolicy:
    """When to try a failed request again and how long to wait first.

    Args:
        attempts: tries in all, the first included (at least 1).
        backoff: seconds before the first retry without a ``Retry-After``; doubled for
            each one after it.
        max_wait: the cap on any one wait, ``Retry-After`` included.
        jitter: the fraction of a backoff wait drawn at random (0: none), so that many
            clients failing together do not retry together; a wait never exceeds its
            nominal value.
        rng: where the jitter comes from.
    """

    attempts: int = ATTEMPTS
    backoff: float = 1.0
    max_wait: float = MAX_WAIT
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.attempts = max(1, int(self.attempts))

    def wait(self, exc: BackendError, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first) after ``exc``."""
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return min(self.max_wait, max(0.0, exc.retry_after))
        nominal = min(self.max_wait, self.backoff * 2.0**retry)
        return nominal * (1.0 - self.jitter * self.rng.random())

    def retryable(
        self, exc: BackendError, retry_also: Callable[[BackendError], bool] | None = None
    ) -> bool:
        """Whether ``exc`` is worth another try at all (the count aside)."""
        if is_quota_error(exc):
            return False
        if isinstance(exc, RETRYABLE):
            return True
        return retry_also is not None and retry_also(exc)

    def call(
        self,
        fn: Callable[[], T],
        *,
        sleep: Callable[[float], object],
        lookup: Callable[[], T | None] | None = None,
        retry_also: Callable[[BackendError], bool] | None = None,
        unsettled_hint: str | None = None,
        maybe_done: bool = False,
    ) -> T:
        """``fn()``, tried again by the rules above; its last error is raised.

        Args:
            fn: the request.
            sleep: how to wait, called with seconds (the backend's clock).
            lookup: for a request that creates something: what an earlier try made, or
                None. Asked before a try is sent again, and before giving up, once a try
                may have been carried out unheard; what it finds is returned.
            retry_also: admits more errors as transient (called once per such error).
            unsettled_hint: added to the error raised when a try may have been carried
                out and ``lookup`` found nothing.
            maybe_done: an earlier run's try may have been carried out unheard: ask
                ``lookup`` before the first try too.
        """
        unsettled = maybe_done
        retry = 0
        while True:
            if unsettled and lookup is not None:
                found = lookup()
                if found is not None:
                    return found
            try:
                return fn()
            except BackendError as exc:
                unsettled = unsettled or may_have_been_carried_out(exc)
                if not self._again(exc, retry, retry_also):
                    if unsettled and lookup is not None:
                        found = lookup()
                        if found is not None:
                            return found
                        _add_hint(exc, unsettled_hint)
                    raise
                delay = self.wait(exc, retry)
            retry += 1
            sleep(delay)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], object],
        retry_also: Callable[[BackendError], bool] | None = None,
    ) -> T:
        """The async twin of :meth:`call` (for requests that create nothing).

        ``sleep`` may return an awaitable (``asyncio.sleep``), which is awaited.
        """
        retry = 0
        while True:
            try:
                return await fn()
            except BackendError as exc:
                if not self._again(exc, retry, retry_also):
                    raise
                delay = self.wait(exc, retry)
            retry += 1
            waited = sleep(delay)
            if inspect.isawaitable(waited):
                await waited

    def _again(
        self, exc: BackendError, retry: int, retry_also: Callable[[BackendError], bool] | None
    ) -> bool:
        # the count first: ``retry_also`` may spend a budget of its own when asked
        return retry + 1 < self.attempts and self.retryable(exc, retry_also)


def _add_hint(exc: BackendError, hint: str | None) -> None:
    """Add ``hint`` to the message of ``exc`` (its class and fields stay as they are)."""
    if hint:
        exc.args = (f"{exc} {hint}",)
