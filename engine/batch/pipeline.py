"""Chunks evaluated on several threads, their results taken in order (`in_order`).

A chunk's arithmetic runs in compiled XLA code (JAX) or in NumPy's loops, both of which
release the GIL: two chunks on two threads use two cores. The results are consumed in the
order of the chunks, on the calling thread, so what follows a chunk (re-checks through the
single-request checker, the breach coordinates, `progress`) runs there, one at a time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

__all__ = ["MAX_THREADS", "in_order", "usable_cores"]

R = TypeVar("R")

MAX_THREADS = 8
"""The most threads a check uses by default: memory is O(threads x chunk x (n + rows))."""

AHEAD = 2
"""Chunks queued per thread, so that a thread finds the next chunk while the calling thread
consumes the last one."""


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS reports one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def in_order(tasks: Iterable[Callable[[], R]], threads: int) -> Iterator[R]:
    """Every task's result, in the tasks' order, with up to `threads` running at once.

    Tasks are taken from `tasks` only as results are consumed (at most `AHEAD` per thread
    queued), so a task may read what the results before it decided. A task's exception is
    raised where its result is consumed; the tasks not yet started are then dropped.
    """
    if threads <= 1:
        for task in tasks:
            yield task()
        return
    source = iter(tasks)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="batch")
    pending: deque[Future[R]] = deque()
    try:
        pending.extend(pool.submit(task) for task in islice(source, AHEAD * threads))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(task) for task in islice(source, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
