"""A request's deadline and cancellation, checked between stages and handed to solvers.

The edge decides how long a request may take (`api.settings.Settings.request_deadline_s`)
and whether its caller is still there; the engine never reads a clock setting of its own.
A `Deadline` starts when it is made, so the time a request waits for the engine counts.

- Before the check has a verdict, running out of time is `DeadlineExceeded` (the decision
  is not validated; HTTP 503).
- During the adjustment it ends the adjustment only: the verdict stands (not compliant) and
  `adjustment_error` says the adjustment timed out.
- A cancelled request (`Cancellation.is_set()`, e.g. the HTTP client went away) is
  `RequestCancelled` wherever it is noticed: nobody reads the answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from engine.errors import DeadlineExceeded, RequestCancelled

__all__ = ["NO_DEADLINE", "Cancellation", "Deadline"]


class Cancellation(Protocol):
    """Set by the edge when the request's work should be abandoned (`threading.Event`)."""

    def is_set(self) -> bool:
        """True once the request is abandoned."""
        ...


class Deadline:
    """Seconds a request may still take, and whether its caller abandoned it.

    Parameters
    ----------
    seconds
        The request's time budget from now; None means no limit.
    cancel
        Set when the request is abandoned; None means it never is.
    clock
        Monotonic seconds (tests inject their own).
    """

    def __init__(
        self,
        seconds: float | None = None,
        *,
        cancel: Cancellation | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.cancel = cancel
        self.clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        """Seconds since the deadline was made."""
        return self.clock() - self.started

    def cancelled(self) -> bool:
        """True once the request is abandoned."""
        return self.cancel is not None and self.cancel.is_set()

    def remaining(self) -> float:
        """Seconds left (infinite without a limit; 0 once passed or cancelled)."""
        if self.cancelled():
            return 0.0
        if self.seconds is None:
            return math.inf
        return max(self.seconds - self.elapsed(), 0.0)

    def time_left(self) -> float:
        """`remaining`, for a solver chain (`solvers.chain.TimeLeft`)."""
        return self.remaining()

    def expired(self) -> bool:
        """True once the deadline has passed or the request is abandoned."""
        return self.remaining() <= 0.0

    def check(self, stage: str) -> None:
        """Raise if the request must stop before `stage` (cancelled first, then late).

        Raises
        ------
        RequestCancelled
            The request was abandoned.
        DeadlineExceeded
            The deadline has passed.
        """
        if self.cancelled():
            raise RequestCancelled(stage)
        if self.seconds is not None and self.elapsed() >= self.seconds:
            raise DeadlineExceeded(stage, self.elapsed(), self.seconds)


NO_DEADLINE = Deadline()
"""A deadline that never passes (the default of engine calls without one)."""
