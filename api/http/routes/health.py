"""Liveness, readiness and metrics.

`/healthz` runs on the event loop and touches nothing shared: it answers while the database
hangs and every worker thread waits on it. `/readyz` runs its checks in a thread of its own
and answers 503 when they take longer than `readyz_timeout_s`.
"""

from __future__ import annotations

import asyncio

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
    # A broker that is down is reported but does not make the service unready: events
    # wait in the outbox and are relayed when it is back.
    checks["events"] = _events(services)
    return checks, ready


@router.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers and an enforcing policy is stored.

    Without one the service is ready only when `approve_when_no_policy_applies` is on. The
    event relay's state is reported and does not affect readiness.
    """
    services: Services = request.app.state.services
    timeout = services.settings.readyz_timeout_s
    try:
        # Not the shared thread pool: when the database hangs, every worker thread may
        # be waiting on it.
        checks, ready = await asyncio.wait_for(asyncio.to_thread(_check, services), timeout)
    except TimeoutError:
        late = f"error: no answer within {timeout:g} s"
        checks, ready = {"database": late, "policies": late, "events": "unknown"}, False
    if not ready:
        return JSONResponse(
            {"status": "not ready", "checks": checks},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Counters and histograms in the Prometheus text format."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
