"""How worker processes are started, and how they end with their parent.

A worker pool's processes wait on a queue for work; when the parent is killed
(SIGKILL, or SIGTERM before it could shut the pool down) nothing tells them, and they
sleep forever holding the parent's stdout and stderr open, so a caller waiting for
those to close (``subprocess.run(..., timeout=...)``) hangs too. :func:`worker_pool`
starts every worker with a watcher thread that ends the worker as soon as its parent
is gone (it is re-parented: ``os.getppid()`` changes).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

_WATCH_SECONDS = 0.2
_HELD = {signal.SIGINT, signal.SIGTERM}


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


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: nobody will read this worker's results
        time.sleep(_WATCH_SECONDS)


def _init_worker(
    parent: int, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
) -> None:
    if os.getppid() != parent:  # the parent died while this worker started
        os._exit(1)
    if threading.current_thread() is threading.main_thread():
        # a forked worker inherits the CLI's SIGTERM handler; the default ends it at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int,
    *,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A process pool (see :func:`mp_context`) whose workers end when this process ends.

    With ``fork``, every worker is started here, with SIGINT and SIGTERM held: a handler
    that raises (Ctrl-C, the CLI's SIGTERM) would otherwise run inside the interpreter's
    at-fork hooks, where the exception is printed and dropped and the signal is lost.
    """
    ctx = mp_context()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    if (
        ctx.get_start_method() == "fork"
        and hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is threading.main_thread()
    ):
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        try:
            pool.submit(_noop)  # with fork, the first submit starts every worker
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held signal arrives now
    return pool


def _noop() -> None:
    """A task that starts the pool's workers."""
