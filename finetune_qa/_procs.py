"""How worker processes are started."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
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


def auto_workers(
    paths: Sequence[str | os.PathLike[str]], processes: int | None, threshold: int
) -> int:
    """Worker processes to use for inputs at ``paths``.

    ``processes`` if given; else one per CPU when the inputs hold at least ``threshold``
    bytes in all, and none below that, where starting workers costs more than it saves.
    """
    if processes is not None:
        return processes
    size = 0
    for path in paths:
        try:
            size += os.path.getsize(path)
        except OSError:
            continue
    return (os.cpu_count() or 1) if size >= threshold else 0
