"""The validation store's idempotency: the decision id's unique key decides a race."""

from __future__ import annotations

import pytest

from api.store import Conflict, Store
from api.store.validations import ViolationFilter
from engine import PolicyEngine
from models import PolicyValidationRequest, PolicyValidationResponse
from tests.builders import policy, request
from tests.concurrency import together

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})


def _breaching(decision_id: str) -> PolicyValidationResponse:
    positions: dict[str, float] = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
    body = request(
        positions, [("AAA", "BUY", 200.0)], cash=30_000.0, policies=[CAP], mode="validate"
    ).model_dump(mode="json")
    body["decision"]["decision_id"] = decision_id
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(body))


def test_a_second_record_of_one_decision_replays_or_conflicts(database_url: str) -> None:
    """Recorded again with the same hash: the first answer, nothing written twice; another
    hash: Conflict. (The route finds earlier validations first; this is the race.)"""
    store = Store.open(database_url)
    try:
        response = _breaching("d-1")
        assert response.violations
        first, created = store.validations.record(
            response, portfolio_id="p-1", request_hash="h-1", actor="a"
        )
        assert created
        again, created = store.validations.record(
            response, portfolio_id="p-1", request_hash="h-1", actor="a"
        )
        assert not created and again == first
        with pytest.raises(Conflict):
            store.validations.record(response, portfolio_id="p-1", request_hash="h-2", actor="a")
        stored, total = store.validations.violations(ViolationFilter(portfolio_id="p-1"))
        assert total == len(response.violations)
        assert sorted(v.violation["policy_name"] for v in stored) == sorted(
            v["policy_name"] for v in first["violations"]
        )
        assert store.outbox.counts()[0] == 1
    finally:
        store.engine.dispose()


def test_racing_records_of_one_decision_store_it_once(database_url: str) -> None:
    """Four threads record one decision at once: one creates it, three replay its answer."""
    store = Store.open(database_url)
    try:
        response = _breaching("d-race")
        results = together(
            4,
            lambda _k: store.validations.record(
                response, portfolio_id="p-1", request_hash="h", actor="a"
            ),
        )
        assert sorted(created for _, created in results) == [False, False, False, True]
        assert all(body == results[0][0] for body, _ in results)
        _, total = store.validations.violations(ViolationFilter(portfolio_id="p-1"))
        assert total == len(response.violations)
        assert store.outbox.counts()[0] == 1
    finally:
        store.engine.dispose()
