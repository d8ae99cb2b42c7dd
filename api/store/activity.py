"""One UTC day's activity, for the daily report (read-only).

Validations, breaches opened by rule, escalations and resolutions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.tables import policy_violations, validations, violation_transitions

__all__ = ["DayActivity", "DayTransition", "day_activity"]


@dataclass(frozen=True)
class DayTransition:
    """An escalation or a resolution of the day, with its violation's facts."""

    at: datetime
    action: str
    violation_id: int
    portfolio_id: str
    policy_name: str
    subject: str | None
    severity: str
    level: int
    actor: str
    reason: str | None
    open_hours: float
    """From the violation's opening to this transition."""


@dataclass(frozen=True)
class DayActivity:
    """What happened on `day` (UTC)."""

    day: date
    validations: int
    compliant: int
    by_portfolio: list[tuple[str, int, int]]
    """(portfolio, validations, not compliant), by portfolio id."""
    breaches: list[tuple[str, str, str, int]]
    """(policy, rule, severity, violations opened), most first."""
    escalations: list[DayTransition]
    resolutions: list[DayTransition]


def day_activity(engine: Engine, day: date) -> DayActivity:
    """The activity of `day` from the validations, violations and their transitions."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    v, pv, tr = validations, policy_violations, violation_transitions
    with engine.connect() as conn:
        checked = conn.execute(
            sa.select(v.c.portfolio_id, v.c.is_compliant).where(
                v.c.created_at >= start, v.c.created_at < end
            )
        ).all()
        opened = conn.execute(
            sa.select(pv.c.policy_name, pv.c.violation_type, pv.c.severity).where(
                pv.c.created_at >= start, pv.c.created_at < end
            )
        ).all()
        moves = conn.execute(
            sa.select(tr, pv.c.portfolio_id, pv.c.policy_name, pv.c.subject, pv.c.severity)
            .join(pv, pv.c.id == tr.c.violation_id)
            .add_columns(pv.c.created_at.label("opened_at"))
            .where(
                tr.c.at >= start,
                tr.c.at < end,
                tr.c.action.in_(("escalated", "resolved", "cured")),
            )
            .order_by(tr.c.at, tr.c.id)
        ).all()
    per_portfolio: dict[str, list[int]] = {}
    for row in checked:
        counts = per_portfolio.setdefault(row.portfolio_id, [0, 0])
        counts[0] += 1
        counts[1] += not row.is_compliant
    breaches = Counter((r.policy_name, r.violation_type, r.severity) for r in opened)
    transitions = [
        DayTransition(
            at=r.at,
            action=r.action,
            violation_id=r.violation_id,
            portfolio_id=r.portfolio_id,
            policy_name=r.policy_name,
            subject=r.subject,
            severity=r.severity,
            level=r.escalation_level,
            actor=r.actor,
            reason=r.reason,
            open_hours=max((r.at - r.opened_at).total_seconds() / 3600, 0.0),
        )
        for r in moves
    ]
    return DayActivity(
        day=day,
        validations=len(checked),
        compliant=sum(1 for r in checked if r.is_compliant),
        by_portfolio=[(p, c[0], c[1]) for p, c in sorted(per_portfolio.items())],
        breaches=[(p, rule, s, n) for (p, rule, s), n in breaches.most_common()],
        escalations=[t for t in transitions if t.action == "escalated"],
        resolutions=[t for t in transitions if t.action != "escalated"],
    )
