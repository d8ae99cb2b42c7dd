"""Named pipeline stages, each timed (reported as `timings_ms`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StageTimer"]


class StageTimer:
    """Accumulates wall time per stage name, in milliseconds."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block under `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + 1000 * (time.perf_counter() - start)

    def finish(self) -> dict[str, float]:
        """Every stage's time and the total, rounded to microseconds."""
        out = {k: round(v, 3) for k, v in self.ms.items()}
        out["total"] = round(1000 * (time.perf_counter() - self._started), 3)
        return out
