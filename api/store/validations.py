"""Validations, their violations and their events, written in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.store.decision_log import DecisionLogStore, LoggedRequest
from api.store.errors import Conflict, NotFound
from api.store.tables import event_outbox, policy_violations, validations
from models import PolicyValidationResponse

__all__ = ["EVENT_TYPE", "StoredViolation", "ValidationStore", "ViolationFilter", "event_of"]

EVENT_TYPE = "policy_validation_completed"


def event_of(response: PolicyValidationResponse, *, now: datetime) -> dict[str, Any]:
    """The seed's `policy_validation_completed` event for a response."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": EVENT_TYPE,
        "timestamp": now.isoformat(),
        "policy_validation": {
            "decision_id": response.decision_id,
            "is_compliant": response.is_compliant,
            "compliance_score": response.compliance_score,
            "violations": sorted({v.policy_name for v in response.violations}),
            "policies_checked": response.policies_checked,
        },
    }


@dataclass(frozen=True)
class ViolationFilter:
    """Filters and paging of the violations list."""

    portfolio_id: str | None = None
    policy_name: str | None = None
    severity: str | None = None
    resolved: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class StoredViolation:
    """A recorded violation and its review state."""

    id: int
    decision_id: str
    portfolio_id: str
    created_at: datetime
    resolved: bool
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    violation: dict[str, Any]


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
        row.id,
        row.decision_id,
        row.portfolio_id,
        row.created_at,
        row.resolved,
        row.resolved_at,
        row.resolved_by,
        row.resolution_note,
        fields,
    )


class ValidationStore:
    """Durable validations with idempotency by decision id, and the violation review."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, decision_id: str) -> tuple[str, dict[str, Any]] | None:
        """(request hash, stored response) of a decision validated before, or None."""
        with self.engine.connect() as conn:
            return self._find(conn, decision_id)

    @staticmethod
    def _find(conn: Connection, decision_id: str) -> tuple[str, dict[str, Any]] | None:
        row = conn.execute(
            sa.select(validations.c.request_hash, validations.c.response).where(
                validations.c.decision_id == decision_id
            )
        ).first()
        return None if row is None else (row.request_hash, row.response)

    def get(self, decision_id: str) -> dict[str, Any]:
        """The stored response for `decision_id`, or NotFound."""
        found = self.find(decision_id)
        if found is None:
            raise NotFound(f"no validation for decision {decision_id!r}")
        return found[1]

    def record(
        self,
        response: PolicyValidationResponse,
        *,
        portfolio_id: str,
        request_hash: str,
        actor: str,
        log: LoggedRequest | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store the validation, its violations, its event and its log in one transaction.

        Returns (the stored response, True) — or, when the decision id was validated before
        with the same request, (that earlier response, False). A different request under a
        used decision id is a Conflict. The response is dumped once: the stored answer, the
        violation rows and the event are all read from that dump. The decision id's unique
        key decides between two requests racing with one id: the second insert fails and
        that request answers from the first one's row. `log` is the request as the decision
        log keeps it (`api.store.decision_log`); None logs nothing.
        """
        now = datetime.now(UTC)
        body = response.model_dump(mode="json")
        try:
            with self.engine.begin() as conn:
                validation_id = conn.execute(
                    validations.insert()
                    .values(
                        decision_id=response.decision_id,
                        portfolio_id=portfolio_id,
                        request_hash=request_hash,
                        is_compliant=response.is_compliant,
                        compliance_score=response.compliance_score,
                        response=body,
                        actor=actor,
                        created_at=now,
                    )
                    .returning(validations.c.id)
                ).scalar_one()
                if log is not None:
                    DecisionLogStore.write(conn, validation_id, log, now)
                if body["violations"]:
                    conn.execute(
                        policy_violations.insert(),
                        [
                            self._violation_row(
                                v, validation_id, response.decision_id, portfolio_id, now
                            )
                            for v in body["violations"]
                        ],
                    )
                event = event_of(response, now=now)
                conn.execute(
                    event_outbox.insert().values(
                        event_id=event["event_id"],
                        event_type=EVENT_TYPE,
                        payload=event,
                        created_at=now,
                        attempts=0,
                    )
                )
        except IntegrityError:
            # The decision id was stored first by another request (or a constraint broke).
            existing = self.find(response.decision_id)
            if existing is None:
                raise
            return self._replay(existing, request_hash, response.decision_id), False
        return body, True

    @staticmethod
    def _replay(
        existing: tuple[str, dict[str, Any]], request_hash: str, decision_id: str
    ) -> dict[str, Any]:
        stored_hash, stored = existing
        if stored_hash != request_hash:
            raise Conflict(
                f"decision_id {decision_id!r} was already validated with a different request"
            )
        return stored

    @staticmethod
    def _violation_row(
        v: dict[str, Any], validation_id: int, decision_id: str, portfolio_id: str, now: datetime
    ) -> dict[str, Any]:
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
        }

    def violations(self, where: ViolationFilter) -> tuple[list[StoredViolation], int]:
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

    def resolve(
        self, violation_id: int, *, resolved: bool, note: str | None, actor: str
    ) -> StoredViolation:
        """Mark a violation resolved (or reopen it), with a note and the actor."""
        t = policy_violations
        with self.engine.begin() as conn:
            updated = conn.execute(
                t.update()
                .where(t.c.id == violation_id)
                .values(
                    resolved=resolved,
                    resolved_at=datetime.now(UTC) if resolved else None,
                    resolved_by=actor,
                    resolution_note=note,
                )
            )
            if updated.rowcount == 0:
                raise NotFound(f"no violation with id {violation_id}")
            row = conn.execute(sa.select(t).where(t.c.id == violation_id)).one()
        return _violation(row)
