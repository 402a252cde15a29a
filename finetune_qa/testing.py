"""Tools for testing your own pipeline offline: the fake OpenAI API and its wiring.

The offline backend is a product feature; these are its parts, for code that takes an
``openai`` client of its own or needs to inject faults and move time:

* :class:`FakeOpenAI`: the stateful fake API (``inject()`` faults, ``run_job()``,
  ``fail_job()``, ``clock``);
* :class:`VirtualClock` and :class:`JobDurations`: its time and pacing;
* :func:`openai_client`: a real ``openai.OpenAI`` / ``AsyncOpenAI`` wired to a fake;
* :func:`serve` / :func:`run_server`: the fake as a local HTTP server under ``/v1``.

Example:
    >>> from finetune_qa.testing import FakeOpenAI, openai_client
    >>> fake = FakeOpenAI()
    >>> fake.inject("GET /models", status=503)
    >>> client = openai_client(fake, max_retries=0)
"""

from finetune_qa.backends._fake import FakeOpenAI, JobDurations, VirtualClock
from finetune_qa.backends._wire import openai_client, run_server, serve

__all__ = ["FakeOpenAI", "JobDurations", "VirtualClock", "openai_client", "run_server", "serve"]
