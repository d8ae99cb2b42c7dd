"""What a stored violation is, and how its rows map to records and back.

The status of a violation (`ViolationStatus`, `LIVE`), the record read from a
`policy_violations` row (`StoredViolation`, `violation_of`, `read_violation`), the record of
one `violation_transitions` row (`Transition`, `transition_of`), and the row of a newly found
violation (`new_violation_row`). The lifecycle that moves them is
`api.store.violation_lifecycle`; the store over both is `api.store.violations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.store.errors import NotFound
from api.store.tables import policy_violations

__all__ = [
    "LIVE",
    "StoredViolation",
    "Transition",
    "ViolationStatus",
    "new_violation_row",
    "read_violation",
    "transition_of",
    "violation_of",
]


class ViolationStatus(StrEnum):
    """Where a violation is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CURED = "cured"

    @property
    def closed(self) -> bool:
        """True for resolved and cured."""
        return self in (ViolationStatus.RESOLVED, ViolationStatus.CURED)


LIVE = (ViolationStatus.OPEN.value, ViolationStatus.ACKNOWLEDGED.value)
"""The statuses of a violation that still needs attention."""


@dataclass(frozen=True)
class StoredViolation:
    """A recorded violation, its status and its review."""

    id: int
    decision_id: str
    portfolio_id: str
    created_at: datetime
    status: ViolationStatus
    escalation_level: int
    occurrences: int
    last_seen_at: datetime
    last_decision_id: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    violation: dict[str, Any]

    @property
    def resolved(self) -> bool:
        """True once resolved or cured."""
        return self.status.closed


@dataclass(frozen=True)
class Transition:
    """One recorded change of a violation."""

    action: str
    from_status: str | None
    to_status: str
    escalation_level: int
    actor: str
    reason: str | None
    decision_id: str | None
    at: datetime


def violation_of(row: sa.Row[Any]) -> StoredViolation:
    """The record of a `policy_violations` row."""
    fields = {
        "policy_name": row.policy_name,
        "policy_type": row.policy_type,
        "violation_type": row.violation_type,
        "severity": row.severity,
        "breach": row.breach,
        "enforcement_level": row.enforcement_level,
        "subject": row.subject,
        "observed": row.observed,
        "limit": row.limit_value,
        "pre_trade": row.pre_trade,
        "description": row.description,
        "suggested_adjustment": row.suggested_adjustment,
    }
    return StoredViolation(
        id=row.id,
        decision_id=row.decision_id,
        portfolio_id=row.portfolio_id,
        created_at=row.created_at,
        status=ViolationStatus(row.status),
        escalation_level=row.escalation_level,
        occurrences=row.occurrences,
        last_seen_at=row.last_seen_at or row.created_at,
        last_decision_id=row.last_decision_id or row.decision_id,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        resolution_note=row.resolution_note,
        violation=fields,
    )


def transition_of(row: sa.Row[Any]) -> Transition:
    """The record of a `violation_transitions` row."""
    return Transition(
        row.action,
        row.from_status,
        row.to_status,
        row.escalation_level,
        row.actor,
        row.reason,
        row.decision_id,
        row.at,
    )


def new_violation_row(
    v: dict[str, Any], validation_id: int | None, decision_id: str, portfolio_id: str, now: datetime
) -> dict[str, Any]:
    """The `policy_violations` row of a newly found violation `v` (a report's violation)."""
    return {
        "validation_id": validation_id,
        "decision_id": decision_id,
        "portfolio_id": portfolio_id,
        "policy_name": v["policy_name"],
        "policy_type": v["policy_type"],
        "violation_type": v["violation_type"],
        "severity": v["severity"],
        "breach": v["breach"],
        "enforcement_level": v["enforcement_level"],
        "subject": v["subject"],
        "observed": v["observed"],
        "limit_value": v["limit"],
        "pre_trade": v["pre_trade"],
        "description": v["description"],
        "suggested_adjustment": v.get("suggested_adjustment"),
        "created_at": now,
        "resolved": False,
        "status": ViolationStatus.OPEN.value,
        "escalation_level": 0,
        "occurrences": 1,
        "last_seen_at": now,
        "last_decision_id": decision_id,
    }


def read_violation(conn: Connection, violation_id: int, *, lock: bool = False) -> StoredViolation:
    """One violation (locked for the transaction when `lock`), or NotFound."""
    query = sa.select(policy_violations).where(policy_violations.c.id == violation_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no violation with id {violation_id}")
    return violation_of(row)
