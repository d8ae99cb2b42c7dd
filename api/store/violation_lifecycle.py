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

The records and their rows are `api.store.violation_records`; listing and reading them, and
the reviewers' actions, are the store's (`api.store.violations`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.store.errors import Conflict
from api.store.tables import event_outbox, policy_violations, violation_transitions
from api.store.violation_records import (
    LIVE,
    StoredViolation,
    ViolationStatus,
    new_violation_row,
    violation_of,
)

__all__ = ["TRANSITION_EVENT", "move_violation", "record_transition", "track_violations"]

TRANSITION_EVENT = "violation_status_changed"

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


def _key_of(policy_name: str, violation_type: str, subject: str | None) -> tuple[str, str, str]:
    return policy_name, violation_type, subject or ""


def _stored_key() -> sa.Tuple:
    """A violation's key in SQL, as `_key_of` makes it (a null subject is "")."""
    t = policy_violations
    return sa.tuple_(t.c.policy_name, t.c.violation_type, sa.func.coalesce(t.c.subject, ""))


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


def move_violation(
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
    return violation_of(conn.execute(sa.select(t).where(t.c.id == v.id)).one())


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
    # Only the live violations this validation touches are read: those of a passive breach's
    # key (counted on the first of them) and those to cure (a checked policy, a key found
    # compliant). Reading every live violation of the portfolio made each validation cost
    # in proportion to the breaches of the decisions before it: active breaches are
    # recorded per decision and stay live while their key keeps breaching.
    seen_keys = {_key_of(v["policy_name"], v["violation_type"], v["subject"]) for v in violations}
    passive_keys = {
        _key_of(v["policy_name"], v["violation_type"], v["subject"])
        for v in violations
        if v["breach"] == "passive"
    }
    live = (t.c.portfolio_id == portfolio_id) & t.c.status.in_(LIVE)
    open_by_key: dict[tuple[str, str, str], int] = {}
    if passive_keys:
        for r in conn.execute(
            sa.select(t.c.id, t.c.policy_name, t.c.violation_type, t.c.subject)
            .where(live, _stored_key().in_(sorted(passive_keys)))
            .order_by(t.c.id)
            .with_for_update()
        ):
            open_by_key.setdefault(_key_of(r.policy_name, r.violation_type, r.subject), r.id)
    to_cure = [
        violation_of(r)
        for r in conn.execute(
            sa.select(t)
            .where(
                live,
                t.c.policy_name.in_(sorted(set(policies_checked))),
                _stored_key().not_in(sorted(seen_keys)),
            )
            .order_by(t.c.id)
            .with_for_update()
        )
    ]
    touched: list[int] = []
    for v_data in violations:
        key = _key_of(v_data["policy_name"], v_data["violation_type"], v_data["subject"])
        known = open_by_key.get(key)
        if v_data["breach"] == "passive" and known is not None:
            conn.execute(
                t.update()
                .where(t.c.id == known)
                .values(
                    occurrences=t.c.occurrences + 1,
                    last_seen_at=now,
                    last_decision_id=decision_id,
                    observed=v_data["observed"],
                    limit_value=v_data["limit"],
                    severity=v_data["severity"],
                )
            )
            touched.append(known)
            continue
        opened = violation_of(
            conn.execute(
                t.insert()
                .values(new_violation_row(v_data, validation_id, decision_id, portfolio_id, now))
                .returning(*t.c)
            ).one()
        )
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
        touched.append(opened.id)
    for v in to_cure:
        move_violation(
            conn,
            v,
            "cured",
            actor="system",
            reason=f"decision {decision_id} found it compliant",
            now=now,
            decision_id=decision_id,
        )
    return touched
