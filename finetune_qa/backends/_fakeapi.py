"""Deprecated: the fake API moved to :mod:`finetune_qa.backends._fake` (issue #11).

Kept only so that code written against the old private path still imports; use
:mod:`finetune_qa.testing` (``FakeOpenAI``, ``VirtualClock``, ``JobDurations``) or
:mod:`finetune_qa.backends.offline` (``state_path``, ``load_state``) instead. Saved offline
states do not depend on this module: they name classes without their module.
"""

from finetune_qa.backends._fake import (
    EPOCH_START,
    FakeOpenAI,
    FakeResponse,
    JobDurations,
    RecordedRequest,
    VirtualClock,
)

__all__ = [
    "EPOCH_START",
    "FakeOpenAI",
    "FakeResponse",
    "JobDurations",
    "RecordedRequest",
    "VirtualClock",
]
