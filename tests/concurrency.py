"""Real concurrency for the store tests: work started on several threads at one moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["together"]

T = TypeVar("T")


def together(count: int, work: Callable[[int], T]) -> list[T]:
    """`work(0..count-1)` on `count` threads released at the same moment, in order."""
    start = threading.Barrier(count)

    def run(k: int) -> T:
        start.wait()
        return work(k)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))
