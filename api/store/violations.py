"""The violations store: listed, read with their history, and moved through the lifecycle.

The lifecycle itself (open → acknowledged → resolved or cured, and what each transition
writes) is `api.store.violation_lifecycle`; the records and their rows are
`api.store.violation_records`. This module re-exports the names the rest of the service
imports from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.errors import Conflict, NotFound
from api.store.tables import policy_violations, violation_transitions
from api.store.violation_keys import lock_portfolios, portfolios_of
from api.store.violation_lifecycle import (
    TRANSITION_EVENT,
    move_violation,
    record_transition,
    track_violations,
)
from api.store.violation_records import (
    LIVE,
    StoredViolation,
    Transition,
    ViolationStatus,
    new_violation_row,
    read_violation,
    transition_of,
    violation_of,
)

__all__ = [
    "LIVE",
    "TRANSITION_EVENT",
    "new_violation_row",
    "BulkOutcome",
    "StoredViolation",
    "Transition",
    "ViolationFilter",
    "ViolationStatus",
    "ViolationStore",
    "read_violation",
    "record_transition",
    "track_violations",
]


@dataclass(frozen=True)
class ViolationFilter:
    """Filters and paging of the violations list (`until`: created before)."""

    portfolio_id: str | None = None
    policy_name: str | None = None
    severity: str | None = None
    resolved: bool | None = None
    status: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk action changed, and what it left as it was (id → why)."""

    changed: list[StoredViolation]
    skipped: dict[int, str]


class ViolationStore:
    """The violations: listed, read with their history, and moved through the lifecycle."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(self, where: ViolationFilter) -> tuple[list[StoredViolation], int]:
        """A page of violations, newest first, and the total count matching the filter."""
        t = policy_violations
        conditions = []
        if where.portfolio_id is not None:
            conditions.append(t.c.portfolio_id == where.portfolio_id)
        if where.policy_name is not None:
            conditions.append(t.c.policy_name == where.policy_name)
        if where.severity is not None:
            conditions.append(t.c.severity == where.severity)
        if where.resolved is not None:
            conditions.append(t.c.resolved == where.resolved)
        if where.status is not None:
            conditions.append(t.c.status.in_(where.status))
        if where.since is not None:
            conditions.append(t.c.created_at >= where.since)
        if where.until is not None:
            conditions.append(t.c.created_at < where.until)
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                sa.select(t)
                .where(*conditions)
                .order_by(t.c.created_at.desc(), t.c.id.desc())
                .limit(where.limit)
                .offset(where.offset)
            ).all()
        return [violation_of(r) for r in rows], int(total)

    def get(self, violation_id: int) -> StoredViolation:
        """One violation, or NotFound."""
        with self.engine.connect() as conn:
            return read_violation(conn, violation_id)

    def live(self) -> list[StoredViolation]:
        """Every open or acknowledged violation, oldest first."""
        t = policy_violations
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.status.in_(LIVE)).order_by(t.c.id))
            return [violation_of(r) for r in rows]

    def history(self, violation_id: int) -> list[Transition]:
        """The violation's transitions, oldest first (NotFound for an unknown id)."""
        t = violation_transitions
        with self.engine.connect() as conn:
            read_violation(conn, violation_id)
            rows = conn.execute(
                sa.select(t).where(t.c.violation_id == violation_id).order_by(t.c.id)
            ).all()
        return [transition_of(r) for r in rows]

    def acknowledge(self, violation_id: int, *, actor: str, reason: str | None) -> StoredViolation:
        """Open → acknowledged; Conflict from any other status."""
        return self._one(violation_id, "acknowledged", actor=actor, reason=reason)

    def resolve(self, violation_id: int, *, actor: str, reason: str | None) -> StoredViolation:
        """Open or acknowledged → resolved, with the reason; Conflict otherwise."""
        return self._one(violation_id, "resolved", actor=actor, reason=reason)

    def reopen(self, violation_id: int, *, actor: str, reason: str | None) -> StoredViolation:
        """Resolved or cured → open; Conflict otherwise."""
        return self._one(violation_id, "reopened", actor=actor, reason=reason)

    def _one(
        self, violation_id: int, action: str, *, actor: str, reason: str | None
    ) -> StoredViolation:
        with self.engine.begin() as conn:
            lock_portfolios(conn, portfolios_of(conn, [violation_id]))
            v = read_violation(conn, violation_id, lock=True)
            return move_violation(
                conn, v, action, actor=actor, reason=reason, now=datetime.now(UTC)
            )

    def bulk(
        self, violation_ids: Sequence[int], action: str, *, actor: str, reason: str | None
    ) -> BulkOutcome:
        """Apply `action` (acknowledged | resolved) to each violation its status allows.

        One transaction; a violation that is unknown or whose status forbids the action is
        left as it is and named in `skipped` with the reason.
        """
        if action not in ("acknowledged", "resolved"):
            raise ValueError(f"no bulk action {action!r}")
        changed: list[StoredViolation] = []
        skipped: dict[int, str] = {}
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            lock_portfolios(conn, portfolios_of(conn, violation_ids))
            for violation_id in dict.fromkeys(violation_ids):
                try:
                    v = read_violation(conn, violation_id, lock=True)
                    changed.append(
                        move_violation(conn, v, action, actor=actor, reason=reason, now=now)
                    )
                except (NotFound, Conflict) as exc:
                    skipped[violation_id] = str(exc)
        return BulkOutcome(changed, skipped)
