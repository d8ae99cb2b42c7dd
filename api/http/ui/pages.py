"""The dashboard's pages (reader role): violations, one violation, one policy, trends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.escalation import destination
from api.http.security import Caller
from api.http.ui.charts import breach_scale, daily_bars, horizontal_bars
from api.http.ui.render import caller_of, page, redirect, require, services_of
from api.reports import where_it_applies
from api.settings import Role
from api.store import STALE_AFTER_S, NotFound, ViolationFilter, read_monitor_status
from api.store.violations import LIVE
from models import PolicyDefinition, ViolationSeverity

__all__ = ["STATUS_CHOICES", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50
STATUS_CHOICES: dict[str, tuple[str, ...] | None] = {
    "live": LIVE,
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "cured": ("cured",),
    "all": None,
}
"""The status filter's choices; `live` (open or acknowledged) is the default."""
_CSS = resources.files("api.http.ui").joinpath("static/style.css").read_bytes()


def _int(text: str | None, *, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high)


def age(since: datetime, now: datetime) -> str:
    """A short age: 45 min, 5 h, 3 d."""
    seconds = max((now - since).total_seconds(), 0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


@router.get("")
def home() -> Response:
    """The violations list."""
    return redirect("/ui/violations")


@router.get("/static/style.css")
def stylesheet() -> Response:
    """The dashboard's stylesheet, shipped in the package."""
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_page(request: Request, next: str = "/ui/violations") -> Response:
    """The login form (an API key)."""
    if caller_of(request) is not None and services_of(request).settings.api_keys:
        return redirect("/ui/violations")
    return page(request, "login.html", caller=None, next=next, error=None)


@router.get("/violations")
def violations_page(request: Request) -> HTMLResponse:
    """Violations with filters; bulk acknowledge and resolve for admins."""
    caller = require(request, Role.READER)
    services = services_of(request)
    q = request.query_params
    status = q.get("status") or "live"
    status = status if status in STATUS_CHOICES else "live"
    severity = q.get("severity") or ""
    severity = severity if severity in ViolationSeverity.__members__ else ""
    portfolio = (q.get("portfolio") or "").strip()[:200]
    policy = (q.get("policy") or "").strip()[:100]
    min_age = _int(q.get("min_age_days"), default=0, low=0, high=3650)
    number = _int(q.get("page"), default=1, low=1, high=100_000)
    now = datetime.now(UTC)
    filters = {
        "portfolio": portfolio,
        "policy": policy,
        "severity": severity,
        "status": status,
        "min_age_days": min_age,
    }
    items, total = services.store.violations.page(
        ViolationFilter(
            portfolio_id=portfolio or None,
            policy_name=policy or None,
            severity=severity or None,
            status=STATUS_CHOICES[status],
            until=now - timedelta(days=min_age) if min_age else None,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
    )
    kept = {k: v for k, v in filters.items() if v not in ("", 0)}
    return page(
        request,
        "violations.html",
        caller=caller,
        items=items,
        total=total,
        number=number,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        filters=filters,
        query=urlencode(kept),
        policies=[p.definition.policy_name for p in services.store.policies.list()],
        severities=[s.value for s in ViolationSeverity],
        statuses=list(STATUS_CHOICES),
        notice=_notice(q.get("changed"), q.get("skipped")),
        now=now,
        age=age,
    )


def _notice(changed: str | None, skipped: str | None) -> str | None:
    if changed is None:
        return None
    text = f"{_int(changed, default=0, low=0, high=10**6)} changed"
    left = _int(skipped, default=0, low=0, high=10**6)
    return text + (f", {left} left as they were (their status did not allow it)" if left else "")


@router.get("/violations/{violation_id}")
def violation_page(request: Request, violation_id: int) -> HTMLResponse:
    """One violation: the decision, the breach, the suggested adjustment, its history."""
    caller = require(request, Role.READER)
    return violation_view(request, caller, violation_id)


def violation_view(
    request: Request,
    caller: Caller,
    violation_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The violation page, with an error above its forms when an action was refused."""
    services = services_of(request)
    try:
        v = services.store.violations.get(violation_id)
    except NotFound as exc:
        return page(request, "error.html", caller=caller, status=404, message=str(exc))
    found = services.store.validations.find(v.decision_id)
    f = v.violation
    chart = breach_scale(
        observed=f["observed"],
        limit=f["limit"],
        pre_trade=f["pre_trade"],
        passive=f["breach"] == "passive",
        title=f"{f['policy_name']} on {f['subject'] or 'the portfolio'}",
    )
    return page(
        request,
        "violation.html",
        caller=caller,
        status=status,
        v=v,
        f=f,
        decision=None if found is None else found[1],
        history=services.store.violations.history(v.id),
        deliveries=services.store.escalations.deliveries(v.id),
        destination=destination,
        chart=chart,
        error=error,
        now=datetime.now(UTC),
        age=age,
    )


@router.get("/policies/{policy_name}")
def policy_page(request: Request, policy_name: str) -> HTMLResponse:
    """A policy: its versions with their diffs, where it applies, its breach trend."""
    caller = require(request, Role.READER)
    store = services_of(request).store
    versions = list(reversed(store.policies.versions(policy_name)))
    if not versions:
        message = f"no policy named {policy_name!r}"
        return page(request, "error.html", caller=caller, status=404, message=message)
    try:
        current: PolicyDefinition | None = store.policies.get(policy_name).definition
    except NotFound:
        current = None
    policies = [p.definition for p in store.policies.list()]
    tree, outside = where_it_applies(policy_name, current, policies, store.portfolios.list())
    today = datetime.now(UTC).date()
    daily = store.trends.daily(days=30, today=today, policy_name=policy_name)
    return page(
        request,
        "policy.html",
        caller=caller,
        name=policy_name,
        current=current,
        versions=versions,
        tree=tree,
        outside=outside,
        chart=daily_bars(daily.days, daily.total, title=f"{policy_name}: violations per day"),
        opened=sum(daily.total),
    )


@router.get("/trends")
def trends_page(request: Request) -> HTMLResponse:
    """Violations per day by policy and by portfolio; time to resolution."""
    caller = require(request, Role.READER)
    store = services_of(request).store
    days = _int(request.query_params.get("days"), default=30, low=7, high=365)
    now = datetime.now(UTC)
    daily = store.trends.daily(days=days, today=now.date())
    times = store.trends.resolution_times(since=now - timedelta(days=days)).summary()

    def charts(series: dict[str, list[int]], what: str) -> list[tuple[str, Any]]:
        busiest = sorted(series.items(), key=lambda kv: -sum(kv[1]))[:8]
        return [
            (label, daily_bars(daily.days, values, title=f"{what} {label}: violations per day"))
            for label, values in busiest
        ]

    return page(
        request,
        "trends.html",
        caller=caller,
        days=days,
        total_chart=daily_bars(daily.days, daily.total, title="All violations per day"),
        total=sum(daily.total),
        by_policy=charts(daily.by_policy, "Policy"),
        by_portfolio=charts(daily.by_portfolio, "Portfolio"),
        policy_count=len(daily.by_policy),
        portfolio_count=len(daily.by_portfolio),
        times=times,
        times_chart=horizontal_bars(
            [(name, median) for name, _, median, _ in times],
            title="Median hours to resolution, by policy",
            unit="h",
        ),
    )


@router.get("/monitor")
def monitor_page(request: Request) -> HTMLResponse:
    """Each `pes monitor`: running, stopped or stale, its lag and what it has done."""
    caller = require(request, Role.READER)
    store = services_of(request).store
    now = datetime.now(UTC)
    monitors = read_monitor_status(store.engine)
    return page(
        request,
        "monitor.html",
        caller=caller,
        monitors=[(m, m.health(now), age(m.heartbeat_at, now)) for m in monitors],
        stale_after_s=STALE_AFTER_S,
        now=now,
        age=age,
    )
