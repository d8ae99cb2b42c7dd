"""Liveness, readiness and metrics.

`/healthz` runs on the event loop and touches nothing shared: it answers while the database
hangs and every worker thread waits on it. `/readyz` runs its checks in a thread of its own
and answers 503 when they take longer than `readyz_timeout_s`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.http.deps import ServicesDep
from api.http.services import Services
from models.enums import EnforcementLevel

__all__ = ["router"]

router = APIRouter(tags=["operations"])

ENFORCING = (EnforcementLevel.STRICT, EnforcementLevel.ADVISORY)


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up (never waits on the database)."""
    return {"status": "ok"}


def _events(services: Services) -> str:
    """The relay's state: ok, disconnected (with the events waiting), or none."""
    relay = services.relay
    if relay is None:
        return "none"
    if relay.healthy:
        return "ok"
    try:
        pending = f"{services.store.outbox.counts()[0]} pending"
    except Exception as exc:
        pending = f"pending unknown: {exc.__class__.__name__}"
    return f"disconnected ({pending})"


def _policies(services: Services) -> tuple[str, bool]:
    """What the policy check says, and whether validations can be answered."""
    stored = services.store.policies.list()
    enforcing = [
        p for p in stored if p.definition.enabled and p.definition.enforcement_level in ENFORCING
    ]
    if enforcing:
        return f"ok ({len(stored)} loaded)", True
    if services.settings.approve_when_no_policy_applies:
        return f"ok ({len(stored)} loaded, none enforcing; approve_when_no_policy_applies)", True
    return (
        f"no enabled strict or advisory policy ({len(stored)} loaded): validations are "
        "refused; create one or set PES_APPROVE_WHEN_NO_POLICY_APPLIES",
        False,
    )


def _global_policy(services: Services) -> tuple[str, bool]:
    """The global-policy check: its current version can be had (as a validation needs it)."""
    cache = services.global_policy
    assert cache is not None
    try:
        stored = cache.current()
    except Exception as exc:  # Unavailable (a database error), or anything unforeseen
        return f"error: {exc}", False
    return f"ok (version {stored.version}, {stored.policy.risk_mode.value})", True


def _propagation(services: Services) -> str:
    listening = services.listening()
    if listening is None:
        return f"polling every {services.settings.global_policy_refresh_s:g} s"
    if listening:
        return "notify (LISTEN), polling as the safety net"
    return "polling (the listener is reconnecting)"


def _global_policy_report(services: Services) -> dict[str, Any] | None:
    """The worker's copy of the global policy: version, risk mode, ages; None if none.

    `age_s`: seconds since the version was written; `checked_s`: since this worker last
    confirmed it is the latest (by polling or a notification).
    """
    assert services.global_policy is not None
    stored, checked_s = services.global_policy.peek()
    if stored is None:
        return None
    age_s = (datetime.now(UTC) - stored.last_updated).total_seconds()
    return {
        "version": stored.version,
        "risk_mode": stored.policy.risk_mode.value,
        "last_updated": stored.last_updated.isoformat(),
        "age_s": round(max(0.0, age_s), 3),
        "checked_s": None if checked_s is None else round(checked_s, 3),
        "propagation": _propagation(services),
    }


def _check(services: Services) -> tuple[dict[str, str], bool]:
    checks: dict[str, str] = {}
    try:
        with services.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
        checks["policies"], ready = _policies(services)
    except Exception as exc:
        checks.setdefault("database", f"error: {exc.__class__.__name__}")
        checks.setdefault("policies", f"error: {exc.__class__.__name__}")
        ready = False
    # A validation cannot run without the global policy's current version (not asked for
    # when the database is out: the answer is known, and the thread would wait again).
    if checks["database"] == "ok":
        checks["global_policy"], loaded = _global_policy(services)
        ready = ready and loaded
    else:
        checks["global_policy"] = "unknown: the database cannot be reached"
    # A broker that is down is reported but does not make the service unready: events
    # wait in the outbox and are relayed when it is back.
    checks["events"] = _events(services)
    return checks, ready


@router.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers, an enforcing policy is stored, the global policy loads.

    Without an enforcing policy the service is ready only when
    `approve_when_no_policy_applies` is on. `global_policy` reports this worker's copy
    (version, risk mode, `age_s` since it was written, `checked_s` since it was last
    confirmed current, how changes reach it), null when it was never loaded. The event
    relay's state is reported and does not affect readiness.
    """
    services: Services = request.app.state.services
    timeout = services.settings.readyz_timeout_s
    try:
        # Not the shared thread pool: when the database hangs, every worker thread may
        # be waiting on it.
        checks, ready = await asyncio.wait_for(asyncio.to_thread(_check, services), timeout)
    except TimeoutError:
        late = f"error: no answer within {timeout:g} s"
        checks = {"database": late, "policies": late, "global_policy": late, "events": "unknown"}
        ready = False
    body = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "global_policy": _global_policy_report(services),
    }
    if not ready:
        return JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Counters and histograms in the Prometheus text format."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
