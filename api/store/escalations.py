"""Escalation: the versioned rules, raising a violation's level, and webhook deliveries.

Raising a level is one transaction: the violation's new level, its `escalated` transition,
the transition's outbox event (carrying the rule's broker subject when it names one) and,
when the rule names a webhook, a pending delivery. The deliveries are sent later by the
escalation worker (api/escalation), so neither a slow receiver nor a validation waits on
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.tables import escalation_rule_versions, policy_violations, webhook_deliveries
from api.store.violations import LIVE, StoredViolation, read_violation, record_transition
from models import EscalationRule, EscalationRules

__all__ = ["Delivery", "EscalationStore", "StoredRules"]


@dataclass(frozen=True)
class StoredRules:
    """One version of the escalation rules."""

    version: int
    rules: EscalationRules
    actor: str
    changed_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One webhook call: what is sent where, and how it went."""

    id: int
    violation_id: int
    rule: str
    url: str
    payload: dict[str, Any]
    status: str  # pending | delivered | failed
    attempts: int
    last_error: str | None
    last_status_code: int | None
    next_attempt_at: datetime
    delivered_at: datetime | None


def _rules(row: sa.Row[Any]) -> StoredRules:
    return StoredRules(
        row.version, EscalationRules.model_validate(row.content), row.actor, row.changed_at
    )


def _delivery(row: sa.Row[Any]) -> Delivery:
    return Delivery(
        row.id,
        row.violation_id,
        row.rule,
        row.url,
        row.payload,
        row.status,
        row.attempts,
        row.last_error,
        row.last_status_code,
        row.next_attempt_at,
        row.delivered_at,
    )


class EscalationStore:
    """The rules' versions, escalations and the webhook deliveries they ask for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def current(self) -> StoredRules | None:
        """The latest version, or None before any was applied."""
        t = escalation_rule_versions
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).order_by(t.c.version.desc()).limit(1)).first()
        return None if row is None else _rules(row)

    def versions(self) -> list[StoredRules]:
        """Every version, oldest first."""
        t = escalation_rule_versions
        with self.engine.connect() as conn:
            return [_rules(r) for r in conn.execute(sa.select(t).order_by(t.c.version))]

    def apply(
        self, rules: EscalationRules, *, actor: str, now: datetime
    ) -> tuple[StoredRules, bool]:
        """Store `rules` as the next version: (it, True); the same as the current: (it, False).

        Two applies racing for one version number: the second's insert fails on the
        unique version and raises (run it again).
        """
        t = escalation_rule_versions
        content = rules.model_dump(mode="json")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t).order_by(t.c.version.desc()).limit(1)).first()
            if row is not None and row.content == content:
                return _rules(row), False
            version = 1 if row is None else row.version + 1
            conn.execute(
                t.insert().values(version=version, content=content, actor=actor, changed_at=now)
            )
        return StoredRules(version, rules, actor, now), True

    def repeats(self, *, since: datetime) -> dict[tuple[str, str, str, str], int]:
        """Validations that found each (portfolio, policy, type, subject) breached.

        Counted as the occurrences of its violations last seen at or after `since`.
        """
        t = policy_violations
        subject = sa.func.coalesce(t.c.subject, "")
        query = (
            sa.select(
                t.c.portfolio_id,
                t.c.policy_name,
                t.c.violation_type,
                subject,
                sa.func.sum(t.c.occurrences),
            )
            .where(sa.func.coalesce(t.c.last_seen_at, t.c.created_at) >= since)
            .group_by(t.c.portfolio_id, t.c.policy_name, t.c.violation_type, subject)
        )
        with self.engine.connect() as conn:
            return {(r[0], r[1], r[2], r[3]): int(r[4]) for r in conn.execute(query)}

    def escalate(
        self,
        violation_id: int,
        rule: EscalationRule,
        *,
        actor: str,
        reason: str,
        now: datetime,
    ) -> StoredViolation | None:
        """Raise a live violation to `rule.level`, announce it, queue the rule's webhook.

        None when nothing changed: the violation is no longer live, or already at or above
        the level.
        """
        t = policy_violations
        with self.engine.begin() as conn:
            v = read_violation(conn, violation_id, lock=True)
            if v.status.value not in LIVE or v.escalation_level >= rule.level:
                return None
            conn.execute(t.update().where(t.c.id == v.id).values(escalation_level=rule.level))
            record_transition(
                conn,
                v,
                action="escalated",
                to_status=v.status,
                level=rule.level,
                actor=actor,
                reason=reason,
                decision_id=None,
                now=now,
                notify=rule.notify,
            )
            if rule.webhook is not None:
                conn.execute(
                    webhook_deliveries.insert().values(
                        violation_id=v.id,
                        rule=rule.name,
                        url=rule.webhook,
                        payload=_webhook_body(v, rule, reason, now),
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            return read_violation(conn, v.id)

    def due(self, *, now: datetime, limit: int = 50) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first."""
        t = webhook_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t)
                .where(t.c.status == "pending", t.c.next_attempt_at <= now)
                .order_by(t.c.id)
                .limit(limit)
            ).all()
        return [_delivery(r) for r in rows]

    def deliveries(self, violation_id: int | None = None) -> list[Delivery]:
        """Every delivery (of one violation), oldest first."""
        t = webhook_deliveries
        query = sa.select(t).order_by(t.c.id)
        if violation_id is not None:
            query = query.where(t.c.violation_id == violation_id)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        now: datetime,
        status_code: int | None,
        error: str | None,
        retry_in: timedelta | None,
    ) -> None:
        """One attempt's outcome.

        Delivered (no error), retried after `retry_in`, or failed for good (`retry_in` None).
        """
        t = webhook_deliveries
        values: dict[str, Any] = {
            "attempts": t.c.attempts + 1,
            "last_status_code": status_code,
            "last_error": None if error is None else error[:2000],
        }
        if error is None:
            values |= {"status": "delivered", "delivered_at": now}
        elif retry_in is None:
            values |= {"status": "failed"}
        else:
            values |= {"next_attempt_at": now + retry_in}
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.id == delivery_id).values(**values))


def _webhook_body(
    v: StoredViolation, rule: EscalationRule, reason: str, now: datetime
) -> dict[str, Any]:
    f = v.violation
    return {
        "event_type": "violation_escalated",
        "timestamp": now.isoformat(),
        "rule": rule.name,
        "level": rule.level,
        "reason": reason,
        "violation": {
            "id": v.id,
            "portfolio_id": v.portfolio_id,
            "policy_name": f["policy_name"],
            "violation_type": f["violation_type"],
            "subject": f["subject"],
            "severity": f["severity"],
            "status": v.status.value,
            "observed": f["observed"],
            "limit": f["limit"],
            "opened_at": v.created_at.isoformat(),
            "occurrences": v.occurrences,
        },
    }
