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
from api.store.inserts import inserted_ids
from api.store.tables import event_outbox, policy_violations, violation_transitions
from api.store.violation_keys import ids_to_cure, live_of_keys, lock_portfolios
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


_COUNT_AGAIN = (
    policy_violations.update()
    .where(policy_violations.c.id == sa.bindparam("violation"))
    .values(
        occurrences=policy_violations.c.occurrences + 1,
        last_seen_at=sa.bindparam("seen_at"),
        last_decision_id=sa.bindparam("seen_in"),
        observed=sa.bindparam("seen_observed"),
        limit_value=sa.bindparam("seen_limit"),
        severity=sa.bindparam("seen_severity"),
    )
)
"""A passive breach found again, counted on its open violation (one row per parameter set)."""


def _seen_again(v: dict[str, Any], decision_id: str, now: datetime) -> dict[str, Any]:
    """`_COUNT_AGAIN`'s parameters for the report's violation `v`."""
    return {
        "seen_at": now,
        "seen_in": decision_id,
        "seen_observed": v["observed"],
        "seen_limit": v["limit"],
        "seen_severity": v["severity"],
    }


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
    transition, event = _transition_rows(
        v,
        action=action,
        to_status=to_status,
        level=level,
        actor=actor,
        reason=reason,
        decision_id=decision_id,
        now=now,
        notify=notify,
    )
    # Rows go in as parameters of a statement built once (SQLAlchemy caches its compiled
    # form); `.values(...)` per row coerced every value into a new statement.
    conn.execute(violation_transitions.insert(), transition)
    if announce:
        conn.execute(event_outbox.insert(), event)


def _transition_rows(
    v: StoredViolation,
    *,
    action: str,
    to_status: ViolationStatus,
    level: int,
    actor: str,
    reason: str | None,
    decision_id: str | None,
    now: datetime,
    notify: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The history row of a transition of `v`, and the outbox row announcing it."""
    from_status = None if action == "opened" else v.status.value
    transition = _transition_row(
        v.id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        level=level,
        actor=actor,
        reason=reason,
        decision_id=decision_id,
        now=now,
    )
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
    event = {
        "event_id": event_id,
        "event_type": TRANSITION_EVENT,
        "payload": payload,
        "created_at": now,
        "attempts": 0,
    }
    return transition, event


def _transition_row(
    violation_id: int,
    *,
    action: str,
    from_status: str | None,
    to_status: ViolationStatus,
    level: int,
    actor: str,
    reason: str | None,
    decision_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """One `violation_transitions` row."""
    return {
        "violation_id": violation_id,
        "action": action,
        "from_status": from_status,
        "to_status": to_status.value,
        "escalation_level": level,
        "actor": actor,
        "reason": reason,
        "decision_id": decision_id,
        "at": now,
    }


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
    moved = conn.execute(t.update().where(t.c.id == v.id).returning(*t.c), values).one()
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
    return violation_of(moved)


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
    # FOR UPDATE below locks live violations only: with none yet, concurrent validations of
    # one portfolio would each see none and open the same passive breach twice.
    lock_portfolios(conn, [portfolio_id])
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
    # No ORDER BY in SQL: it would make SQLite walk the portfolio's index in id order
    # (every violation the portfolio ever had) instead of the covering index by portfolio,
    # status and key (0009); the ids are sorted here.
    open_by_key: dict[tuple[str, str, str], int] = {}
    found = live_of_keys(conn, portfolio_id, passive_keys, keyed=True)
    for r in sorted(found, key=lambda r: r.id):
        open_by_key.setdefault(_key_of(r.policy_name, r.violation_type, r.subject), r.id)
    cure_ids = ids_to_cure(conn, portfolio_id, policies_checked, seen_keys)
    # Most validations cure nothing: no second query then.
    to_cure = (
        [
            violation_of(r)
            for r in conn.execute(sa.select(t).where(t.c.id.in_(cure_ids)).order_by(t.c.id))
        ]
        if cure_ids
        else []
    )
    # Passive breaches found again are counted on their violation; the others open one
    # each. Both in one statement each (executemany), in the breaches' order.
    counted, opening = [], []
    touched: list[int | None] = []
    for v_data in violations:
        key = _key_of(v_data["policy_name"], v_data["violation_type"], v_data["subject"])
        known = open_by_key.get(key) if v_data["breach"] == "passive" else None
        if known is not None:
            counted.append({"violation": known, **_seen_again(v_data, decision_id, now)})
        else:
            opening.append(new_violation_row(v_data, validation_id, decision_id, portfolio_id, now))
        touched.append(known)
    if counted:
        conn.execute(_COUNT_AGAIN, counted)
    opened = inserted_ids(conn, t, opening)
    if opened:
        conn.execute(
            violation_transitions.insert(),
            [
                _transition_row(
                    violation_id,
                    action="opened",
                    from_status=None,
                    to_status=ViolationStatus.OPEN,
                    level=0,
                    actor=actor,
                    reason=None,
                    decision_id=decision_id,
                    now=now,
                )
                for violation_id in opened
            ],
        )
    new_ids = iter(opened)
    ids = [next(new_ids) if known is None else known for known in touched]
    _cure(conn, to_cure, decision_id=decision_id, now=now)
    return ids


def _cure(
    conn: Connection, violations: Sequence[StoredViolation], *, decision_id: str, now: datetime
) -> None:
    """Cure `violations` (live, their portfolio locked by the caller) in three statements.

    As `move_violation(..., "cured")` one by one, which took three statements each: the
    update, its history row and its outbox event.
    """
    if not violations:
        return
    starts, to_status = _MOVES["cured"]
    for v in violations:
        if v.status.value not in starts:
            raise Conflict(f"violation {v.id} is {v.status.value}; it cannot be cured")
    reason = f"decision {decision_id} found it compliant"
    t = policy_violations
    conn.execute(
        t.update().where(t.c.id.in_([v.id for v in violations])),
        {
            "status": to_status.value,
            "resolved": to_status.closed,
            "resolved_at": now,
            "resolved_by": "system",
            "resolution_note": reason,
        },
    )
    rows = [
        _transition_rows(
            v,
            action="cured",
            to_status=to_status,
            level=v.escalation_level,
            actor="system",
            reason=reason,
            decision_id=decision_id,
            now=now,
        )
        for v in violations
    ]
    conn.execute(violation_transitions.insert(), [transition for transition, _ in rows])
    conn.execute(event_outbox.insert(), [event for _, event in rows])
