"""OfflineBackend: the whole lifecycle with no key and no network.

It is :class:`~finetune_qa.backends.openai.OpenAIBackend` itself, over a real ``openai``
client whose transport is a stateful, deterministic fake of the OpenAI API
(:class:`~finetune_qa.backends._fakeapi.FakeOpenAI`): files and uploads, fine-tuning
jobs that validate their files and move through the real statuses on a virtual clock,
events, metrics, results files, checkpoints, models and chat completions. Code that
works here takes the same path through the openai SDK as it does against OpenAI.

Example:
    >>> from finetune_qa.backends import OfflineBackend
    >>> backend = OfflineBackend()
    >>> backend.list_jobs()
    []
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetune_qa.backends._fakeapi import FakeOpenAI
from finetune_qa.backends._wire import openai_client
from finetune_qa.backends.openai import OpenAIBackend

if TYPE_CHECKING:
    import openai

__all__ = ["OfflineBackend"]


class OfflineBackend(OpenAIBackend):
    """An :class:`OpenAIBackend` wired to an in-process fake of the OpenAI API.

    Args:
        fake: the fake to serve (to share state, inject faults or move its clock);
            a new one when omitted.
        seed: seed of a new fake (ids, losses, answer phrasing).
        max_retries: retries of the openai clients (the SDK's own backoff, as online) for
            requests that create nothing; uploads and job creation are sent once and
            retried by :class:`~finetune_qa.jobs.FineTuneJob`, as with any ``OpenAIBackend``.

    Attributes:
        fake: the fake API; ``fake.inject(...)`` injects faults, ``fake.clock`` is the
            virtual clock that :meth:`sleep` advances.
    """

    name = "offline"

    def __init__(
        self, fake: FakeOpenAI | None = None, *, seed: int = 0, max_retries: int = 2
    ) -> None:
        self.fake = fake or FakeOpenAI(seed=seed)
        super().__init__(openai_client(self.fake, max_retries=max_retries))

        def make_async() -> openai.AsyncOpenAI:
            return openai_client(self.fake, async_=True, max_retries=max_retries)

        self._async_factory = make_async

    @property
    def endpoint(self) -> str:
        """The fake API this backend serves (its instance id): journals keep fakes apart."""
        return f"offline:{getattr(self.fake, 'instance_id', f'{id(self.fake):x}')}"

    def monotonic(self) -> float:
        """The virtual clock's time, for timeouts measured in the same time as :meth:`sleep`."""
        return self.fake.clock.now()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time: jobs progress, nothing actually sleeps."""
        self.fake.clock.sleep(seconds)

    def __repr__(self) -> str:
        return (
            f"OfflineBackend(seed={self.fake.seed!r})"
            if hasattr(self.fake, "seed")
            else "OfflineBackend()"
        )
