"""GET /api/v1/monitor: the status of every `pes monitor` (docs/monitor.md#status)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.http.deps import Reader, ServicesDep
from api.http.schemas import ERROR_RESPONSES, MonitorStatusPublic
from api.store import STALE_AFTER_S, MonitorStatus, read_monitor_status

__all__ = ["public_status", "router"]

router = APIRouter(prefix="/api/v1/monitor", tags=["review"], responses=ERROR_RESPONSES)


def public_status(s: MonitorStatus, now: datetime) -> MonitorStatusPublic:
    """The wire form of a monitor's status row, with its health at `now`."""
    return MonitorStatusPublic(
        consumer=s.consumer,
        state=s.state,
        health=s.health(now),
        stale_after_s=STALE_AFTER_S,
        heartbeat_age_s=max((now - s.heartbeat_at).total_seconds(), 0.0),
        started_at=s.started_at,
        heartbeat_at=s.heartbeat_at,
        last_update_at=s.last_update_at,
        lag=s.lag,
        portfolios=s.portfolios,
        **s.counters(),
    )


@router.get("", response_model=list[MonitorStatusPublic], summary="The monitors' status")
def monitor_status(services: ServicesDep, _caller: Reader) -> list[MonitorStatusPublic]:
    """Every monitor that has run against this store, by consumer name.

    Its health (running, stopped, or stale when its heartbeat is older than
    `stale_after_s`), lag and counters. An empty list when no monitor has run.
    """
    now = datetime.now(UTC)
    return [public_status(s, now) for s in read_monitor_status(services.store.engine)]
