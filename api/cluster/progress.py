"""A progress bar on standard error for long work (firm-wide checks, back-tests)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """`label [#####.....] done/total  elapsed` redrawn in place on a terminal.

    On a stream that is not a terminal (a log file, CI) it writes a plain line at each
    tenth of the work instead of carriage returns, so logs stay readable. `enabled=False`
    writes nothing.
    """

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.label, self.total, self.done = label, max(int(total), 0), 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._start = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1

    def advance(self, count: int = 1) -> None:
        """Count `count` more units of work done and redraw."""
        self.done = min(self.done + count, self.total) if self.total else self.done + count
        self._draw()

    def close(self) -> None:
        """The last line (the bar at its final count, then a newline on a terminal)."""
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        if not self.total:
            return f"{self.label}: {self.done} done  {elapsed:.1f}s"
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total}  {elapsed:.1f}s"

    def _draw(self) -> None:
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()
            return
        tenth = 10 * self.done // self.total if self.total else self.done
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(self._line() + "\n")
            self.stream.flush()
