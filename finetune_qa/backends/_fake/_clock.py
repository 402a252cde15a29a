"""The fake API's time: a virtual clock and how long each phase of a job takes."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from finetune_qa.exceptions import UsageError

__all__ = ["EPOCH_START", "JobDurations", "VirtualClock"]


EPOCH_START = 1_767_225_600
"""Where every :class:`VirtualClock` starts by default: 2026-01-01T00:00:00Z."""


class VirtualClock:
    """Seconds since the Unix epoch, moved by hand (or with real time, sped up).

    Args:
        start: the first value of :meth:`now` (default 2026-01-01T00:00:00Z).

    Example:
        >>> clock = VirtualClock()
        >>> clock.sleep(30)  # returns at once; the clock is 30 s later
        >>> clock.now() - EPOCH_START
        30.0
    """

    def __init__(self, start: float = EPOCH_START) -> None:
        self._lock = threading.Lock()
        self._base = float(start)
        self._speedup = 0.0
        self._real0 = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _now(self) -> float:
        if self._speedup:
            return self._base + (time.monotonic() - self._real0) * self._speedup
        return self._base

    def now(self) -> float:
        """The current virtual time."""
        with self._lock:
            return self._now()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise UsageError(f"a clock cannot go backwards (advance by {seconds})")
        with self._lock:
            self._base += seconds
            return self._now()

    def sleep(self, seconds: float) -> None:
        """A drop-in for :func:`time.sleep` that only advances the clock."""
        self.advance(max(0.0, seconds))

    def run_realtime(self, speedup: float = 60.0) -> None:
        """From now on, advance by ``speedup`` virtual seconds per real second as well.

        Used by the HTTP server mode, where clients poll with real sleeps.
        """
        if not (math.isfinite(speedup) and speedup > 0):
            raise UsageError(f"speedup must be a positive finite number, got {speedup}")
        with self._lock:
            self._base = self._now()
            self._real0 = time.monotonic()
            self._speedup = speedup

    def freeze(self) -> None:
        """Stop following real time; the clock keeps its current value."""
        with self._lock:
            self._base = self._now()
            self._speedup = 0.0

    @property
    def realtime(self) -> bool:
        """True while the clock follows real time."""
        return bool(self._speedup)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now():.1f}, realtime={self.realtime})"


@dataclass(frozen=True)
class JobDurations:
    """How long a fine-tuning job spends in each phase, in virtual seconds.

    Attributes:
        validating_files: from creation to the files being checked.
        queued: waiting for capacity before training starts (also after a resume).
        seconds_per_step: one training step.
        finalizing: from the last step to ``succeeded`` (saving and evaluating the model).
    """

    validating_files: float = 10.0
    queued: float = 20.0
    seconds_per_step: float = 1.0
    finalizing: float = 5.0
