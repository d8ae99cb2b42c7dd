"""The monitors' status rows: each monitor's health, lag and counters (docs/monitor.md#status).

`pes monitor` writes its row (`monitor_status`, keyed by consumer name) in every round's
transaction and at least every second (`api.store.monitor`); the service reads the rows for
`GET /api/v1/monitor`, the dashboard's Monitor page and the `pes_monitor_*` metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.tables import monitor_status

__all__ = ["COUNTERS", "STALE_AFTER_S", "MonitorStatus", "read_monitor_status"]

STALE_AFTER_S = 10.0
"""A running monitor writes its status at least every second: ten missed heartbeats mean
it is gone or stuck (a long round on a loaded machine stays well inside)."""


@dataclass(frozen=True)
class MonitorStatus:
    """One monitor's status row (see docs/monitor.md#status)."""

    consumer: str
    state: str
    started_at: datetime
    heartbeat_at: datetime
    last_update_at: datetime | None
    lag: int
    portfolios: int
    consumed: int
    duplicates: int
    rejected: int
    checks: int
    breaches_opened: int
    breaches_cleared: int

    def health(self, now: datetime, stale_after_s: float = STALE_AFTER_S) -> str:
        """`running`, `stopped` (a clean exit) or `stale`.

        Stale: said to be running, but its heartbeat is older than `stale_after_s` (it
        died, or a round is stuck).
        """
        if self.state != "running":
            return self.state
        age = (now - self.heartbeat_at).total_seconds()
        return "stale" if age > stale_after_s else "running"

    def counters(self) -> dict[str, int]:
        """The counters by name (for metrics)."""
        return {
            "consumed": self.consumed,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "checks": self.checks,
            "breaches_opened": self.breaches_opened,
            "breaches_cleared": self.breaches_cleared,
        }


COUNTERS = ("consumed", "duplicates", "rejected", "checks", "breaches_opened", "breaches_cleared")


def read_monitor_status(engine: Engine, consumer: str | None = None) -> list[MonitorStatus]:
    """Every monitor's status row (or the one of `consumer`), by consumer name.

    A monitor whose `heartbeat_at` is older than a few heartbeats (docs/monitor.md: every
    second while running) has stopped or is stuck; `state` says `stopped` after a clean exit.
    """
    t = monitor_status
    query = sa.select(t).order_by(t.c.consumer)
    if consumer is not None:
        query = query.where(t.c.consumer == consumer)
    with engine.connect() as conn:
        return [
            MonitorStatus(
                consumer=r.consumer,
                state=r.state,
                started_at=r.started_at,
                heartbeat_at=r.heartbeat_at,
                last_update_at=r.last_update_at,
                lag=int(r.lag),
                portfolios=int(r.portfolios),
                **{name: int(getattr(r, name)) for name in COUNTERS},
            )
            for r in conn.execute(query)
        ]
