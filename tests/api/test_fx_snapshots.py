"""Registered FX snapshots: named by `portfolio_state.fx_snapshot` instead of inline rates."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_reference_data import POLICIES, _field_error, _inline, _ok, _verdict

RATES = {"EUR": 1.1, "GBP": 1.3}


def _snapshot(rates: dict[str, float] | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": "eod", "base_currency": "USD", "rates": rates or RATES, **fields}


def _multi(decision_id: str) -> dict[str, Any]:
    """A decision whose NAV holds euro and sterling cash (so the rates matter)."""
    return _inline(decision_id, cash={"USD": 20_000.0, "EUR": 5_000.0, "GBP": 2_000.0})


def _named(inline: dict[str, Any], decision_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(inline)
    body["decision"]["decision_id"] = decision_id
    body["portfolio_state"].pop("fx_rates", None)
    body["portfolio_state"]["fx_snapshot"] = ref
    return body


@pytest.fixture
def stored(client: TestClient) -> TestClient:
    """The client with policies and the FX snapshot `eod` (v1)."""
    for body in POLICIES:
        _ok(client.post("/api/v1/policies", json=body), 201)
    _ok(client.put("/api/v1/fx-snapshots/eod", json=_snapshot()), 201)
    return client


def test_fx_snapshots_are_versioned_like_universes(client: TestClient) -> None:
    r = client.put("/api/v1/fx-snapshots/eod", json=_snapshot())
    assert r.status_code == 201 and r.headers["X-PES-Change"] == "created"
    same = client.put("/api/v1/fx-snapshots/eod", json=_snapshot())
    assert _ok(same)["version"]["version"] == 1 and same.headers["X-PES-Change"] == "unchanged"
    changed = _ok(client.put("/api/v1/fx-snapshots/eod", json=_snapshot({"EUR": 1.2})))
    assert changed["version"]["version"] == 2
    assert changed["version"]["changes"]["changed_symbols"] == ["EUR"]
    assert changed["version"]["changes"]["removed_symbols"] == ["GBP"]
    versions = _ok(client.get("/api/v1/fx-snapshots/eod/versions"))
    assert [v["version"] for v in versions] == [1, 2]
    v1 = _ok(client.get("/api/v1/fx-snapshots/eod", params={"version": 1}))
    assert v1["fx_snapshot"]["rates"] == RATES
    assert [s["id"] for s in _ok(client.get("/api/v1/fx-snapshots"))] == ["eod"]
    assert client.get("/api/v1/fx-snapshots/nope").status_code == 404


def test_bad_snapshots_are_refused_like_inline_rates(client: TestClient) -> None:
    bad = client.put("/api/v1/fx-snapshots/eod", json=_snapshot({"USD": 2.0, "EUR": 1.1}))
    assert bad.status_code == 422, bad.text
    assert client.put("/api/v1/fx-snapshots/eod", json=_snapshot({"EUR": -1})).status_code == 422
    assert client.put("/api/v1/fx-snapshots/x", json=_snapshot()).status_code == 422


def test_validation_by_snapshot_equals_inline_rates(stored: TestClient) -> None:
    inline_body = _multi("d-inline")
    inline_body["portfolio_state"]["fx_rates"] = RATES
    inline = _ok(stored.post("/api/v1/validate", json=inline_body))
    ref = _ok(stored.post("/api/v1/validate", json=_named(inline_body, "d-ref", {"id": "eod"})))
    assert _verdict(ref) == _verdict(inline)
    assert ref["reference_data"]["fx_snapshot"] == {"id": "eod", "version": 1}
    assert inline["reference_data"] is None
    assert not inline["is_compliant"]


def test_a_pinned_version_keeps_its_rates(stored: TestClient) -> None:
    _ok(stored.put("/api/v1/fx-snapshots/eod", json=_snapshot({"EUR": 0.5, "GBP": 0.5})))
    body = _multi("d")
    v1 = _ok(stored.post("/api/v1/validate", json=_named(body, "d1", {"id": "eod", "version": 1})))
    v2 = _ok(stored.post("/api/v1/validate", json=_named(body, "d2", {"id": "eod"})))
    assert v1["reference_data"]["fx_snapshot"]["version"] == 1
    assert v2["reference_data"]["fx_snapshot"]["version"] == 2
    for version, rates in ((v1, RATES), (v2, {"EUR": 0.5, "GBP": 0.5})):
        inline_body = _multi("d-inline-" + str(len(rates)) + str(rates["EUR"]))
        inline_body["portfolio_state"]["fx_rates"] = rates
        inline = _ok(stored.post("/api/v1/validate", json=inline_body))
        assert _verdict(version) == _verdict(inline)


def test_unknown_snapshots_and_both_forms_are_422_naming_the_field(stored: TestClient) -> None:
    body = _multi("d")
    unknown = _named(body, "d1", {"id": "nope"})
    assert "nope" in _field_error(
        stored.post("/api/v1/validate", json=unknown), "portfolio_state.fx_snapshot.id"
    )
    late = _named(body, "d2", {"id": "eod", "version": 9})
    assert "latest is 1" in _field_error(
        stored.post("/api/v1/validate", json=late), "portfolio_state.fx_snapshot.version"
    )
    both = _named(body, "d3", {"id": "eod"})
    both["portfolio_state"]["fx_rates"] = RATES
    assert "not both" in _field_error(
        stored.post("/api/v1/validate", json=both), "portfolio_state.fx_snapshot"
    )
    euro = _named(body, "d4", {"id": "eod"})
    euro["portfolio_state"]["base_currency"] = "EUR"
    euro["portfolio_state"]["cash"] = {"EUR": 20_000.0}
    assert "base_currency" in _field_error(
        stored.post("/api/v1/validate", json=euro), "portfolio_state.fx_snapshot"
    )
