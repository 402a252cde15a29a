"""How worker processes are started."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from multiprocessing.context import BaseContext


def mp_context() -> BaseContext:
    """The start method for worker processes.

    ``fork`` where it exists and this process runs a single thread: workers start in
    milliseconds and, unlike ``spawn``, do not re-import the caller's ``__main__`` (a
    script that calls ``build()`` at module level without an ``if __name__ ==
    "__main__"`` guard would otherwise fail). With other threads running, forking can
    copy a lock held by one of them, so ``spawn`` is used instead, as it is on macOS
    and Windows.
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
