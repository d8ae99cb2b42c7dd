"""Stored violations: named `PolicyViolation` on the wire, and stored whole, with their
`suggested_adjustment` (migration 0004; rows stored before it read as without one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.pool import NullPool

from api.http.app import create_app
from api.settings import Settings
from api.store.db import alembic_config
from api.store.tables import policy_violations
from tests.api.old_rows import old_validation

RequestLoader = Callable[[str], dict[str, Any]]
REF = "#/components/schemas/PolicyViolation"


def test_the_violation_schema_is_named_policy_violation(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "PolicyViolation" in schemas and "Violation" not in schemas
    assert "suggested_adjustment" in schemas["PolicyViolation"]["properties"]
    assert schemas["PolicyValidationResponse"]["properties"]["violations"]["items"]["$ref"] == REF
    assert schemas["ViolationPublic"]["properties"]["violation"]["$ref"] == REF


def test_a_stored_violation_keeps_its_suggested_adjustment(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    for policy in core:
        assert client.post("/api/v1/policies", json=policy).status_code == 201
    r = client.post("/api/v1/validate", json=load_request("aapl-overweight"))
    assert r.status_code == 200, r.text
    answered = r.json()["violations"]
    assert any(v["suggested_adjustment"] for v in answered), answered

    listed = client.get("/api/v1/violations").json()["items"]
    stored = [item["violation"] for item in listed]
    assert sorted(stored, key=_row) == sorted(answered, key=_row)


def _row(violation: dict[str, Any]) -> tuple[str, str, str]:
    return violation["policy_name"], violation["violation_type"], violation["subject"] or ""


def _at_revision(url: str, revision: str) -> sa.Engine:
    engine = sa.create_engine(url, poolclass=NullPool)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def test_rows_stored_before_the_column_read_as_without_a_suggestion(database_url: str) -> None:
    engine = _at_revision(database_url, "0003")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        validation_id = old_validation(conn)
        conn.execute(  # every column but the new one
            policy_violations.insert().values(
                validation_id=validation_id,
                decision_id="dec-old",
                portfolio_id="pf-1",
                policy_name="cap",
                policy_type="POSITION_LIMIT",
                violation_type="weight_bounds.max",
                severity="HIGH",
                breach="active",
                enforcement_level="strict",
                subject="AAPL",
                observed=0.12,
                limit_value=0.1,
                pre_trade=0.08,
                description="AAPL above its cap",
                created_at=now,
                resolved=False,
            )
        )
    engine.dispose()

    app = create_app(Settings(database_url=database_url, events="none"))  # migrates to head
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/violations")
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert item["violation"]["suggested_adjustment"] is None
        assert item["violation"]["observed"] == 0.12

    # And the migration reverts cleanly.
    engine = sa.create_engine(database_url, poolclass=NullPool)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("policy_violations")}
    engine.dispose()
    assert "suggested_adjustment" not in columns and "description" in columns
