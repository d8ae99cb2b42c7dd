"""Violation figures: opened per day, time to resolution, live ones by severity.

Opened per day by policy and by portfolio, hours from opening to resolution or cure, and
the open or acknowledged violations by severity (the `pes_open_violations` gauge).

The window is bounded (days), so the rows are aggregated here rather than with each
database's own date functions: the same code on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.tables import policy_violations
from api.store.violations import LIVE

__all__ = ["DailyCounts", "ResolutionTimes", "ViolationTrends"]


@dataclass(frozen=True)
class DailyCounts:
    """Violations opened per UTC day, oldest day first, per policy and per portfolio."""

    days: list[date]
    by_policy: dict[str, list[int]]
    by_portfolio: dict[str, list[int]]

    @property
    def total(self) -> list[int]:
        """Every policy together, per day."""
        return [sum(day) for day in zip(*self.by_policy.values(), strict=True)] or [
            0 for _ in self.days
        ]


@dataclass(frozen=True)
class ResolutionTimes:
    """Hours from opening to resolution (by hand) or cure, per policy."""

    hours: dict[str, list[float]]

    def summary(self) -> list[tuple[str, int, float, float]]:
        """(policy, closed count, median hours, 90th percentile hours), by policy name."""
        rows = []
        for name in sorted(self.hours):
            values = sorted(self.hours[name])
            rows.append((name, len(values), _quantile(values, 0.5), _quantile(values, 0.9)))
        return rows


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted `values` (linear between neighbours)."""
    if not values:
        return 0.0
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


class ViolationTrends:
    """Read-only figures over the violations table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def daily(self, *, days: int, today: date, policy_name: str | None = None) -> DailyCounts:
        """Opened per day over the `days` days ending with `today` (UTC)."""
        first = today - timedelta(days=days - 1)
        start = datetime.combine(first, time(), tzinfo=UTC)
        t = policy_violations
        query = sa.select(t.c.created_at, t.c.policy_name, t.c.portfolio_id).where(
            t.c.created_at >= start
        )
        if policy_name is not None:
            query = query.where(t.c.policy_name == policy_name)
        by_policy: dict[str, list[int]] = defaultdict(lambda: [0] * days)
        by_portfolio: dict[str, list[int]] = defaultdict(lambda: [0] * days)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                index = (row.created_at.date() - first).days
                if 0 <= index < days:
                    by_policy[row.policy_name][index] += 1
                    by_portfolio[row.portfolio_id][index] += 1
        return DailyCounts(
            [first + timedelta(days=i) for i in range(days)],
            dict(sorted(by_policy.items())),
            dict(sorted(by_portfolio.items())),
        )

    def resolution_times(self, *, since: datetime) -> ResolutionTimes:
        """Time to resolution of the violations closed since `since`, per policy."""
        t = policy_violations
        query = sa.select(t.c.policy_name, t.c.created_at, t.c.resolved_at).where(
            t.c.status.in_(("resolved", "cured")), t.c.resolved_at >= since
        )
        hours: dict[str, list[float]] = defaultdict(list)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                took = (row.resolved_at - row.created_at).total_seconds() / 3600
                hours[row.policy_name].append(max(took, 0.0))
        return ResolutionTimes(dict(hours))

    def open_by_severity(self) -> dict[str, int]:
        """Live (open or acknowledged) violations per severity."""
        t = policy_violations
        query = (
            sa.select(t.c.severity, sa.func.count())
            .where(t.c.status.in_(LIVE))
            .group_by(t.c.severity)
        )
        with self.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}
