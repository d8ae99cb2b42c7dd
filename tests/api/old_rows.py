"""Rows written straight into a database migrated to an earlier revision (migration tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from api.store.tables import validations

__all__ = ["old_validation"]


def old_validation(conn: Connection, *, decision_id: str = "dec-old") -> int:
    """A stored validation of portfolio pf-1 with an empty response; its id.

    Only columns that every revision from 0001 on has: a test at any earlier revision can
    hang its violations on it.
    """
    return int(
        conn.execute(
            validations.insert()
            .values(
                decision_id=decision_id,
                portfolio_id="pf-1",
                request_hash="0" * 64,
                is_compliant=False,
                compliance_score=0.5,
                response={},
                actor="test",
                created_at=datetime.now(UTC),
            )
            .returning(validations.c.id)
        ).scalar_one()
    )
