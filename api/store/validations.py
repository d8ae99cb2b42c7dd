"""Validations, their violations and their events, written in one transaction.

A validation's breaches enter the violation lifecycle (`api.store.violation_lifecycle`) in the
transaction that stores it: new violations opened, persisting passive breaches counted on
their open violation, violations the validation found compliant cured.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.store.decision_log import DecisionLogStore, LoggedRequest
from api.store.errors import Conflict, NotFound
from api.store.tables import event_outbox, validations
from api.store.violations import (
    StoredViolation,
    ViolationFilter,
    ViolationStore,
    track_violations,
)
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
                track_violations(
                    conn,
                    violations=body["violations"],
                    policies_checked=body["policies_checked"],
                    validation_id=validation_id,
                    decision_id=response.decision_id,
                    portfolio_id=portfolio_id,
                    actor=actor,
                    now=now,
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

    def violations(self, where: ViolationFilter) -> tuple[list[StoredViolation], int]:
        """A page of violations, newest first, and the total count matching the filter."""
        return ViolationStore(self.engine).page(where)
