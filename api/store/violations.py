"""The violation lifecycle: open → acknowledged → resolved or cured; escalation on top.

Resolved is by hand (with a reason and the actor); cured is automatic, when a later
validation finds the violation's policy and subject compliant.

::

    opened ──▶ open ──acknowledge──▶ acknowledged
                │                          │
                ├──resolve (reason)────────┤──▶ resolved ─┐
                └──cure (a later check)────┘──▶ cured ────┴─reopen──▶ open

Every transition is one row of `violation_transitions` (who, when, why, and the decision
that caused it) and, for every transition after the opening, one
`violation_status_changed` event in the outbox, in the transaction that changes the
status. The opening is announced by the validation's own `policy_validation_completed`
event, written in the same transaction.

A violation is identified across validations by its key: portfolio, policy, violation
type and subject. A *passive* breach (one that existed before the trade) found again while
its violation is still open updates that violation (`occurrences`, `last_seen_at`,
`last_decision_id`, the latest observed value) instead of adding one. An *active* breach
is the decision's own and is recorded per decision. A validation that checks a policy and
finds a key compliant cures the open violations of that key on its portfolio.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.store.errors import Conflict, NotFound
from api.store.tables import event_outbox, policy_violations, violation_transitions

__all__ = [
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

TRANSITION_EVENT = "violation_status_changed"


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

_MOVES: dict[str, tuple[tuple[str, ...], ViolationStatus]] = {
    "acknowledged": ((ViolationStatus.OPEN.value,), ViolationStatus.ACKNOWLEDGED),
    "resolved": (LIVE, ViolationStatus.RESOLVED),
    "cured": (LIVE, ViolationStatus.CURED),
    "reopened": (
        (ViolationStatus.RESOLVED.value, ViolationStatus.CURED.value),
        ViolationStatus.OPEN,
    ),
}
"""Each action: the statuses it may start from, and where it leads."""


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


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk action changed, and what it left as it was (id → why)."""

    changed: list[StoredViolation]
    skipped: dict[int, str]


def _violation(row: sa.Row[Any]) -> StoredViolation:
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


def _key_of(policy_name: str, violation_type: str, subject: str | None) -> tuple[str, str, str]:
    return policy_name, violation_type, subject or ""


def record_transition(
    conn: Connection,
    v: StoredViolation,
    *,
    action: str,
    to_status: ViolationStatus,
    level: int,
    actor: str,
    reason: str | None,
    decision_id: str | None,
    now: datetime,
    announce: bool = True,
    notify: str | None = None,
) -> None:
    """One history row and (unless `announce` is False: the opening) its outbox event.

    `notify`: the broker subject an escalation rule names; the event carries it and the
    NATS publisher sends it there, under its prefix (api/events/publishers.py).
    """
    from_status = None if action == "opened" else v.status.value
    conn.execute(
        violation_transitions.insert().values(
            violation_id=v.id,
            action=action,
            from_status=from_status,
            to_status=to_status.value,
            escalation_level=level,
            actor=actor,
            reason=reason,
            decision_id=decision_id,
            at=now,
        )
    )
    if not announce:
        return
    event_id = str(uuid.uuid4())
    payload = {
        "event_id": event_id,
        "event_type": TRANSITION_EVENT,
        "timestamp": now.isoformat(),
        "violation": {
            "id": v.id,
            "portfolio_id": v.portfolio_id,
            "policy_name": v.violation["policy_name"],
            "violation_type": v.violation["violation_type"],
            "subject": v.violation["subject"],
            "severity": v.violation["severity"],
            "status": to_status.value,
            "escalation_level": level,
        },
        "transition": {
            "action": action,
            "from": from_status,
            "to": to_status.value,
            "actor": actor,
            "reason": reason,
            "decision_id": decision_id,
        },
    }
    if notify is not None:
        payload["notify"] = notify
    conn.execute(
        event_outbox.insert().values(
            event_id=event_id,
            event_type=TRANSITION_EVENT,
            payload=payload,
            created_at=now,
            attempts=0,
        )
    )


def _move(
    conn: Connection,
    v: StoredViolation,
    action: str,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    decision_id: str | None = None,
) -> StoredViolation:
    """Apply `action` to `v` (locked by the caller), or Conflict when its status forbids it."""
    starts, to_status = _MOVES[action]
    if v.status.value not in starts:
        raise Conflict(
            f"violation {v.id} is {v.status.value}; it cannot be {action} "
            f"(only a violation that is {' or '.join(starts)})"
        )
    values: dict[str, Any] = {"status": to_status.value, "resolved": to_status.closed}
    if action == "acknowledged":
        values |= {"acknowledged_at": now, "acknowledged_by": actor}
    elif action in ("resolved", "cured"):
        values |= {"resolved_at": now, "resolved_by": actor, "resolution_note": reason}
    else:  # reopened
        values |= {"resolved_at": None, "resolved_by": None, "resolution_note": None}
    t = policy_violations
    conn.execute(t.update().where(t.c.id == v.id).values(**values))
    record_transition(
        conn,
        v,
        action=action,
        to_status=to_status,
        level=v.escalation_level,
        actor=actor,
        reason=reason,
        decision_id=decision_id,
        now=now,
    )
    return _violation(conn.execute(sa.select(t).where(t.c.id == v.id)).one())


def track_violations(
    conn: Connection,
    *,
    violations: Sequence[dict[str, Any]],
    policies_checked: Iterable[str],
    validation_id: int,
    decision_id: str,
    portfolio_id: str,
    actor: str,
    now: datetime,
) -> list[int]:
    """Record one validation's breaches in the lifecycle, inside its transaction.

    Opens a violation per new breach (a passive breach whose violation is still open is
    counted on it instead), then cures the open violations of every checked policy whose
    key this validation found compliant. Returns the ids of the violations it opened or
    found again (the ones escalation rules look at).
    """
    t = policy_violations
    if conn.dialect.name == "postgresql":
        # FOR UPDATE below locks live violations only: with none yet, concurrent validations
        # of one portfolio would each see none and open the same passive breach twice. One
        # transaction-scoped lock per portfolio orders them (SQLite has one writer anyway).
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"pes.violations:{portfolio_id}"},
        )
    live = [
        _violation(r)
        for r in conn.execute(
            sa.select(t)
            .where(t.c.portfolio_id == portfolio_id, t.c.status.in_(LIVE))
            .order_by(t.c.id)
            .with_for_update()
        )
    ]
    open_by_key: dict[tuple[str, str, str], StoredViolation] = {}
    for v in live:
        f = v.violation
        open_by_key.setdefault(_key_of(f["policy_name"], f["violation_type"], f["subject"]), v)
    seen_keys: set[tuple[str, str, str]] = set()
    touched: list[int] = []
    for v_data in violations:
        key = _key_of(v_data["policy_name"], v_data["violation_type"], v_data["subject"])
        seen_keys.add(key)
        known = open_by_key.get(key)
        if v_data["breach"] == "passive" and known is not None:
            conn.execute(
                t.update()
                .where(t.c.id == known.id)
                .values(
                    occurrences=t.c.occurrences + 1,
                    last_seen_at=now,
                    last_decision_id=decision_id,
                    observed=v_data["observed"],
                    limit_value=v_data["limit"],
                    severity=v_data["severity"],
                )
            )
            touched.append(known.id)
            continue
        new_id = conn.execute(
            t.insert()
            .values(new_violation_row(v_data, validation_id, decision_id, portfolio_id, now))
            .returning(t.c.id)
        ).scalar_one()
        opened = _violation(conn.execute(sa.select(t).where(t.c.id == new_id)).one())
        record_transition(
            conn,
            opened,
            action="opened",
            to_status=ViolationStatus.OPEN,
            level=0,
            actor=actor,
            reason=None,
            decision_id=decision_id,
            now=now,
            announce=False,
        )
        touched.append(new_id)
    checked = set(policies_checked)
    for v in live:
        f = v.violation
        key = _key_of(f["policy_name"], f["violation_type"], f["subject"])
        if f["policy_name"] in checked and key not in seen_keys:
            _move(
                conn,
                v,
                "cured",
                actor="system",
                reason=f"decision {decision_id} found it compliant",
                now=now,
                decision_id=decision_id,
            )
    return touched


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
    return _violation(row)


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
        return [_violation(r) for r in rows], int(total)

    def get(self, violation_id: int) -> StoredViolation:
        """One violation, or NotFound."""
        with self.engine.connect() as conn:
            return read_violation(conn, violation_id)

    def live(self) -> list[StoredViolation]:
        """Every open or acknowledged violation, oldest first."""
        t = policy_violations
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.status.in_(LIVE)).order_by(t.c.id))
            return [_violation(r) for r in rows]

    def history(self, violation_id: int) -> list[Transition]:
        """The violation's transitions, oldest first (NotFound for an unknown id)."""
        t = violation_transitions
        with self.engine.connect() as conn:
            read_violation(conn, violation_id)
            rows = conn.execute(
                sa.select(t).where(t.c.violation_id == violation_id).order_by(t.c.id)
            ).all()
        return [
            Transition(
                r.action,
                r.from_status,
                r.to_status,
                r.escalation_level,
                r.actor,
                r.reason,
                r.decision_id,
                r.at,
            )
            for r in rows
        ]

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
            v = read_violation(conn, violation_id, lock=True)
            return _move(conn, v, action, actor=actor, reason=reason, now=datetime.now(UTC))

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
            for violation_id in dict.fromkeys(violation_ids):
                try:
                    v = read_violation(conn, violation_id, lock=True)
                    changed.append(_move(conn, v, action, actor=actor, reason=reason, now=now))
                except (NotFound, Conflict) as exc:
                    skipped[violation_id] = str(exc)
        return BulkOutcome(changed, skipped)
