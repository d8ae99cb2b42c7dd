"""The monitor's summary line: rounds, updates per second, round times, lag (every 10 s).

An operator reads from it whether the monitor keeps up: `busy` near 100% with a growing lag
means updates arrive faster than one process applies them (docs/monitor.md#load-test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["RoundSummary"]


@dataclass
class RoundSummary:
    """Rounds and updates since the last summary line (logged every `every_s`)."""

    every_s: float = 10.0
    since: float = field(default_factory=time.monotonic)
    rounds: int = 0
    updates: int = 0
    busy_s: float = 0.0
    longest_s: float = 0.0

    def add(self, updates: int, took_s: float) -> None:
        """Count one round of `updates` that took `took_s` seconds."""
        self.rounds += 1
        self.updates += updates
        self.busy_s += took_s
        self.longest_s = max(self.longest_s, took_s)

    def due(self) -> bool:
        """Whether `every_s` has passed since this summary started."""
        return time.monotonic() - self.since >= self.every_s

    def line(self) -> str:
        """The summary line."""
        elapsed = time.monotonic() - self.since
        return (
            f"{self.updates} updates in {self.rounds} rounds over {elapsed:.1f} s "
            f"({self.updates / elapsed:.0f}/s); rounds {1000 * self.busy_s / self.rounds:.1f} ms "
            f"on average, longest {1000 * self.longest_s:.1f} ms, busy {self.busy_s / elapsed:.0%}"
        )
