"""The service's export runs the engine's front stages: its layout cache, under its lock."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from models import PolicyDefinition
from models.export import ConstraintSetRequest
from tests.api.conftest import example_request, services_of

URL = "/api/v1/constraints"


def _state() -> dict[str, Any]:
    state: dict[str, Any] = example_request("small-rebalance")["portfolio_state"]
    return state


def _create(client: TestClient, policies: list[dict[str, Any]]) -> None:
    for body in policies:
        r = client.post("/api/v1/policies", json=body)
        assert r.status_code == 201, r.text


def test_the_export_compiles_through_the_engines_layout_cache(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    _create(client, core)
    engine = services_of(client).engine
    before = engine.cache_stats()
    answers = [client.post(URL, json={"portfolio_state": _state()}) for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 200], answers[0].text
    assert answers[0].json() == answers[1].json()
    after = engine.cache_stats()
    assert after.layout_misses - before.layout_misses == 1
    assert after.layout_hits - before.layout_hits == 1


def test_the_export_waits_for_the_engine_lock(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    services = services_of(client)
    policies = [PolicyDefinition.model_validate(p) for p in core]
    request = ConstraintSetRequest.model_validate({"portfolio_state": _state()})
    done = threading.Event()

    def export() -> None:
        services.export(request, policies)
        done.set()

    with services.engine_lock:
        worker = threading.Thread(target=export)
        worker.start()
        assert not done.wait(0.3), "the export ran while another request held the engine"
    worker.join(timeout=30)
    assert done.is_set()
