"""POST /api/v1/constraints with registered reference data: a universe and a risk model by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.http.reference_schemas import RISK_MODEL_EXAMPLES, UNIVERSE_EXAMPLES
from models.export import ConstraintSet
from tests.api.conftest import TestClient

URL = "/api/v1/constraints"
POLICIES: list[dict[str, Any]] = [
    {
        "policy_name": "single-name-cap",
        "policy_type": "POSITION_LIMIT",
        "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.4}]},
    },
    {
        "policy_name": "vol-cap",
        "policy_type": "RISK_LIMIT",
        "rules": {"constraints": [{"kind": "volatility", "max": 0.25}]},
    },
]


def _register(client: TestClient) -> None:
    universe = UNIVERSE_EXAMPLES["universe"]["value"]
    risk_model = RISK_MODEL_EXAMPLES["factor"]["value"]
    assert client.put("/api/v1/universes/us-large", json=universe).status_code == 201
    assert client.put("/api/v1/risk-models/us-2f", json=risk_model).status_code == 201


def _state(**reference: Any) -> dict[str, Any]:
    return {
        "portfolio_id": "global-equity",
        "cash": 1_000_000.0,
        "positions": [{"symbol": "AAPL", "quantity": 2000}, {"symbol": "MSFT", "quantity": 1000}],
        "prices": {"AAPL": 191.4, "MSFT": 409.8},
        **reference,
    }


def test_a_registered_universe_and_risk_model_by_id_are_exported(client: TestClient) -> None:
    _register(client)
    state = _state(universe={"id": "us-large"}, risk_model={"id": "us-2f", "version": 1})
    body = {"portfolio_state": state, "policies": POLICIES, "universe": ["JPM"]}
    r = client.post(URL, json=body)
    assert r.status_code == 200, r.text
    exported = ConstraintSet.model_validate(r.json())
    # JPM comes from the registered universe, the prices from the request.
    assert exported.variables.symbols == ["AAPL", "JPM", "MSFT"]
    assert exported.variables.prices[:1] == [191.4]
    assert exported.nav == 1_000_000.0 + 2000 * 191.4 + 1000 * 409.8
    assert [c.info.policy_name for c in exported.cones] == ["vol-cap"]  # the factor model


def test_an_unknown_registered_universe_is_422_naming_it(client: TestClient) -> None:
    body = {"portfolio_state": _state(universe={"id": "nope"}), "policies": POLICIES}
    r = client.post(URL, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "portfolio_state.universe.id"


def test_the_export_doc_says_registered_data_works() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "constraint-export.md").read_text()
    assert "not available yet" not in doc
    assert "portfolio_state.universe.id" in doc
