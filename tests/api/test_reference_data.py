"""Registered universes and risk models through the HTTP service, on SQLite and PostgreSQL.

The equivalence tests send the same decision twice, once with every instrument (and the
risk model) inline and once naming the registered data, and require the same verdict,
violations and adjusted decision.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from httpx import Response

from api.http.app import create_app
from api.settings import Settings
from api.store import Store, connect
from api.store.db import alembic_config
from models import PortfolioNode
from tests.api.conftest import services_of
from tests.builders import instrument, policy, request

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
RISK: dict[str, Any] = {
    "factor_loadings": {"AAA": [1.2], "BBB": [1.0], "CCC": [0.8], "DDD": [0.5], "EEE": [0.9]},
    "factor_covariance": [[0.04]],
    "specific_variance": dict.fromkeys(SYMBOLS, 0.02),
}
POLICIES = [
    policy("cap", {"kind": "weight_bounds", "max": 0.25}),
    policy(
        "sectors",
        {"kind": "group_limit", "attribute": "sector", "max": 0.45},
        policy_type="SECTOR_LIMIT",
    ),
    policy("beta", {"kind": "exposure", "attribute": "beta", "max": 0.8}),
]
VOL = policy("vol", {"kind": "volatility", "max": 0.12}, policy_type="RISK_LIMIT")


def _universe(prices: dict[str, float] | None = None) -> dict[str, Any]:
    prices = prices or {}
    return {
        "id": "core",
        "description": "five names",
        "instruments": [instrument(s, prices.get(s, 100.0)) for s in SYMBOLS],
    }


def _inline(decision_id: str, **fields: Any) -> dict[str, Any]:
    """A decision breaching the cap, sector and beta limits; every instrument inline."""
    fields.setdefault("cash", 30_000.0)  # NAV 75,000: AAA 26.7% before, 40% after
    req = request({"AAA": 200, "BBB": 150, "CCC": 100}, [("AAA", "BUY", 100)], **fields)
    body: dict[str, Any] = req.model_dump(mode="json", exclude_none=True)
    body["decision"]["decision_id"] = decision_id
    return body


def _by_reference(inline: dict[str, Any], decision_id: str, **state: Any) -> dict[str, Any]:
    """`inline` naming the universe `core` (latest unless `state` says otherwise)."""
    body = copy.deepcopy(inline)
    body["decision"]["decision_id"] = decision_id
    del body["portfolio_state"]["instruments"]
    body["portfolio_state"].update({"universe": {"id": "core"}, **state})
    return body


def _verdict(body: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the data arrived (no ids, times or solver timings)."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("decision_id", "timings_ms")}
    out.pop("reference_data", None)
    adjusted = out.get("adjusted_decision")
    if adjusted is not None:
        for attempt in adjusted["solver_attempts"]:
            attempt.pop("seconds")
        # Shadow prices are the solver's dual values: with two limits binding together they
        # are not unique, and a warm-started solve lands on a neighbour within its tolerance.
        for binding in adjusted["binding"]:
            binding["shadow_price"] = round(binding["shadow_price"], 6)
    return out


def _ok(r: Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _field_error(r: Response, field: str) -> str:
    body = _ok(r, 422)
    assert {"error", "message", "detail"} <= body.keys()
    fields = [d["field"] for d in body["detail"]]
    assert field in fields, body
    message: str = body["detail"][fields.index(field)]["message"]
    return message


@pytest.fixture
def stored(client: TestClient) -> TestClient:
    """The client with policies, the universe `core` (v1) and the risk model `one` (v1)."""
    for body in POLICIES:
        _ok(client.post("/api/v1/policies", json=body), 201)
    _ok(client.put("/api/v1/universes/core", json=_universe()), 201)
    _ok(client.put("/api/v1/risk-models/one", json={"id": "one", "risk_model": RISK}), 201)
    return client


# --- registering -----------------------------------------------------------------------------


def test_put_versions_changes_and_keeps_unchanged_content(client: TestClient) -> None:
    first = client.put("/api/v1/universes/core", json=_universe())
    assert _ok(first, 201)["version"]["version"] == 1
    assert first.headers["X-PES-Change"] == "created"
    again = client.put("/api/v1/universes/core", json=_universe())
    assert _ok(again)["version"]["version"] == 1
    assert again.headers["X-PES-Change"] == "unchanged"
    changed = _universe({"AAA": 120.0})
    changed["instruments"] = [*changed["instruments"][:4], instrument("FFF")]
    second = client.put("/api/v1/universes/core", json=changed, headers={"X-Actor": "ana"})
    info = _ok(second)["version"]
    assert (info["version"], second.headers["X-PES-Change"]) == (2, "replaced")
    assert info["created_by"] == "ana"
    assert info["changes"]["added_symbols"] == ["FFF"]
    assert info["changes"]["removed_symbols"] == ["EEE"]
    assert info["changes"]["changed_symbols"] == ["AAA"]

    latest = _ok(client.get("/api/v1/universes/core"))
    assert latest["version"]["version"] == 2
    assert latest["universe"]["instruments"][0]["price"] == 120.0
    old = _ok(client.get("/api/v1/universes/core", params={"version": 1}))
    assert old["universe"] == _ok(first, 201)["universe"]
    versions = _ok(client.get("/api/v1/universes/core/versions"))
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["digest"] != versions[1]["digest"]
    assert [(u["id"], u["version"]) for u in _ok(client.get("/api/v1/universes"))] == [("core", 2)]


def test_risk_models_are_versioned_the_same_way(client: TestClient) -> None:
    body = {"id": "one", "risk_model": RISK}
    assert _ok(client.put("/api/v1/risk-models/one", json=body), 201)["version"]["version"] == 1
    assert _ok(client.put("/api/v1/risk-models/one", json=body))["version"]["version"] == 1
    wider = copy.deepcopy(body)
    wider["risk_model"]["factor_covariance"] = [[0.09]]
    info = _ok(client.put("/api/v1/risk-models/one", json=wider))["version"]
    assert info["version"] == 2 and info["changes"]["fields"] == ["factor_covariance"]
    got = _ok(client.get("/api/v1/risk-models/one", params={"version": 1}))
    assert got["risk_model"]["risk_model"]["factor_covariance"] == [[0.04]]
    assert len(_ok(client.get("/api/v1/risk-models/one/versions"))) == 2


def test_bad_definitions_and_unknown_ids_are_refused(client: TestClient) -> None:
    _field_error(client.put("/api/v1/universes/other", json=_universe()), "id")
    twice = _universe()
    twice["instruments"].append(instrument("AAA"))
    assert "listed twice" in _field_error(
        client.put("/api/v1/universes/core", json=twice), "instruments"
    )
    nested = {"id": "one", "risk_model": {"id": "two"}}
    _field_error(client.put("/api/v1/risk-models/one", json=nested), "risk_model")
    assert _ok(client.get("/api/v1/universes/none"), 404)["error"] == "not_found"
    _ok(client.put("/api/v1/universes/core", json=_universe()), 201)
    assert _ok(client.get("/api/v1/universes/core?version=7"), 404)["error"] == "not_found"
    assert client.get("/api/v1/risk-models/none/versions").status_code == 404


# --- validating by reference ----------------------------------------------------------------


def test_validation_by_reference_equals_the_inline_request(stored: TestClient) -> None:
    inline = _ok(stored.post("/api/v1/validate", json=_inline("d-inline")))
    assert not inline["is_compliant"] and inline["adjusted_decision"] is not None
    assert {v["policy_name"] for v in inline["violations"]} == {"cap", "sectors", "beta"}
    ref = _ok(stored.post("/api/v1/validate", json=_by_reference(_inline("x"), "d-ref")))
    assert _verdict(ref) == _verdict(inline)
    assert ref["reference_data"] == {"universe": {"id": "core", "version": 1}, "risk_model": None}
    assert inline["reference_data"] is None
    # The stored answer (what GET and an idempotent replay return) records the version too.
    assert _ok(stored.get("/api/v1/validations/d-ref"))["reference_data"]["universe"] == {
        "id": "core",
        "version": 1,
    }


def test_an_explicit_version_keeps_answering_as_that_version(stored: TestClient) -> None:
    _ok(stored.put("/api/v1/universes/core", json=_universe({"AAA": 400.0})))
    pinned = _by_reference(_inline("x"), "d-v1", universe={"id": "core", "version": 1})
    latest = _by_reference(_inline("x"), "d-v2")
    v1 = _ok(stored.post("/api/v1/validate", json=pinned))
    v2 = _ok(stored.post("/api/v1/validate", json=latest))
    assert v1["reference_data"]["universe"]["version"] == 1
    assert v2["reference_data"]["universe"]["version"] == 2
    inline_v1 = _ok(stored.post("/api/v1/validate", json=_inline("d-i1")))
    inline_v2 = _ok(stored.post("/api/v1/validate", json=_inline("d-i2", prices={"AAA": 400.0})))
    assert _verdict(v1) == _verdict(inline_v1)
    assert _verdict(v2) == _verdict(inline_v2)
    assert _verdict(v1) != _verdict(v2)


def test_price_overrides_and_inline_instruments_win_over_the_universe(stored: TestClient) -> None:
    prices = {"AAA": 104.5, "CCC": 97.0}
    inline = _ok(stored.post("/api/v1/validate", json=_inline("d-i", prices=prices)))
    ref = _by_reference(_inline("x"), "d-p", prices=prices)
    assert _verdict(_ok(stored.post("/api/v1/validate", json=ref))) == _verdict(inline)

    # An inline BBB in another sector replaces the universe's BBB as a whole.
    moved = instrument("BBB", sector="Utilities")
    inline_all = _inline("d-i2")
    inline_all["portfolio_state"]["instruments"][1] = moved
    expected = _ok(stored.post("/api/v1/validate", json=inline_all))
    ref = _by_reference(_inline("x"), "d-m")
    ref["portfolio_state"]["instruments"] = [moved]
    got = _ok(stored.post("/api/v1/validate", json=ref))
    assert _verdict(got) == _verdict(expected)
    names = {v["policy_name"] for v in got["violations"]}
    assert "cap" in names and "sectors" not in names  # Tech is AAA alone now: 40% < 45%


def test_a_referenced_risk_model_gives_the_inline_answer(stored: TestClient) -> None:
    inline = _inline("d-ri", policies=[VOL], risk_model=RISK)
    expected = _ok(stored.post("/api/v1/validate", json=inline))
    assert [v["violation_type"] for v in expected["violations"]] == ["volatility.max"]
    ref = _by_reference(inline, "d-rr", risk_model={"id": "one"})
    got = _ok(stored.post("/api/v1/validate", json=ref))
    assert _verdict(got) == _verdict(expected)
    assert got["reference_data"]["risk_model"] == {"id": "one", "version": 1}


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"universe": {"id": "nope"}}, "portfolio_state.universe.id"),
        ({"universe": {"id": "core", "version": 3}}, "portfolio_state.universe.version"),
        ({"risk_model": {"id": "nope"}}, "portfolio_state.risk_model.id"),
        ({"risk_model": {"id": "one", "version": 2}}, "portfolio_state.risk_model.version"),
        ({"prices": {"ZZZ": 10.0}}, "portfolio_state.prices.ZZZ"),
        ({"universe": {"id": "bad id"}}, "portfolio_state.universe.id"),
        ({"prices": {"AAA": -1.0}}, "portfolio_state.prices.AAA"),
    ],
)
def test_unknown_references_are_422_naming_the_field(
    stored: TestClient, state: dict[str, Any], field: str
) -> None:
    body = _by_reference(_inline("x"), "d-bad")
    body["portfolio_state"].update(state)
    _field_error(stored.post("/api/v1/validate", json=body), field)
    assert stored.get("/api/v1/validations/d-bad").status_code == 404  # nothing stored


def test_symbols_in_neither_and_missing_attributes_are_named(stored: TestClient) -> None:
    body = _by_reference(_inline("x"), "d-zzz")
    body["portfolio_state"]["positions"].append({"symbol": "ZZZ", "quantity": 5})
    assert "ZZZ" in _field_error(
        stored.post("/api/v1/validate", json=body), "portfolio_state.positions[3].symbol"
    )
    esg = policy("esg", {"kind": "exposure", "attribute": "esg", "min": 3})
    body = _by_reference(_inline("x", policies=[esg]), "d-esg")
    # The first name of V lacking `esg` is AAA, entry 0 of the stored universe.
    _field_error(
        stored.post("/api/v1/validate", json=body),
        "portfolio_state.universe.instruments[0].attributes.esg",
    )


def test_capacity_accepts_references(stored: TestClient) -> None:
    state = _by_reference(_inline("x"), "unused")["portfolio_state"]
    got = _ok(stored.post("/api/v1/capacity", json={"portfolio_state": state}))
    inline_state = _inline("x")["portfolio_state"]
    expected = _ok(stored.post("/api/v1/capacity", json={"portfolio_state": inline_state}))
    assert got["symbols"] == expected["symbols"]


def test_the_constraint_export_accepts_references(stored: TestClient) -> None:
    state = _by_reference(_inline("x"), "unused")["portfolio_state"]
    got = _ok(stored.post("/api/v1/constraints", json={"portfolio_state": state}))
    inline_state = _inline("x")["portfolio_state"]
    expected = _ok(stored.post("/api/v1/constraints", json={"portfolio_state": inline_state}))
    assert got == expected and got["linear"]["rows"]
    state["universe"] = {"id": "nope"}
    _field_error(
        stored.post("/api/v1/constraints", json={"portfolio_state": state}),
        "portfolio_state.universe.id",
    )


def test_referenced_data_is_parsed_once_and_hits_the_layout_cache(stored: TestClient) -> None:
    services = services_of(stored)
    assert services.references is not None
    cache = services.references.cache
    for k in range(4):
        body = _by_reference(_inline("x"), f"d-c{k}", prices={"AAA": 100.0 + k})
        _ok(stored.post("/api/v1/validate", json=body))
    assert (cache.misses, cache.hits) == (1, 3)
    stats = services.engine.cache_stats()
    assert stats.layout_misses == 1 and stats.layout_hits == 3


def test_a_new_version_with_new_sectors_is_compiled_anew(stored: TestClient) -> None:
    services = services_of(stored)
    v1 = _ok(stored.post("/api/v1/validate", json=_by_reference(_inline("x"), "d-s1")))
    assert "sectors" in {v["policy_name"] for v in v1["violations"]}
    moved = _universe()
    moved["instruments"][0] = instrument("AAA", sector="Utilities")
    _ok(stored.put("/api/v1/universes/core", json=moved))
    v2 = _ok(stored.post("/api/v1/validate", json=_by_reference(_inline("x"), "d-s2")))
    assert v2["reference_data"]["universe"]["version"] == 2
    # The layout is keyed by (universe, version): version 2 is compiled, not served stale.
    assert "sectors" not in {v["policy_name"] for v in v2["violations"]}
    pinned = _by_reference(_inline("x"), "d-s3", universe={"id": "core", "version": 1})
    assert _verdict(_ok(stored.post("/api/v1/validate", json=pinned))) == _verdict(v1)
    stats = services.engine.cache_stats()
    assert (stats.layout_misses, stats.layout_hits) == (2, 1)


# --- security, sizes, migration -----------------------------------------------------------


@pytest.fixture
def keyed(database_url: str) -> Iterator[TestClient]:
    keys = {"a-key": "admin", "v-key": "validator", "r-key": "reader"}
    app = create_app(Settings(database_url=database_url, events="none", api_keys=keys))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_only_admins_register_and_readers_read(keyed: TestClient) -> None:
    url = "/api/v1/universes/core"
    assert keyed.put(url, json=_universe()).status_code == 401
    for key in ("r-key", "v-key"):
        r = keyed.put(url, json=_universe(), headers={"X-API-Key": key})
        assert _ok(r, 403)["error"] == "forbidden"
    _ok(keyed.put(url, json=_universe(), headers={"X-API-Key": "a-key"}), 201)
    _ok(keyed.get(url, headers={"X-API-Key": "r-key"}))
    assert keyed.get(url).status_code == 401


def test_uploads_have_their_own_body_limit(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        events="none",
        max_body_bytes=1024,
        max_reference_body_bytes=200_000,
    )
    big = _universe()
    big["instruments"] += [instrument(f"S{k:04d}") for k in range(200)]  # ~40 KB
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        _ok(c.put("/api/v1/universes/core", json=big), 201)
        assert c.post("/api/v1/validate", json=_inline("d-big")).status_code == 413
        huge = copy.deepcopy(big)
        huge["instruments"] += [instrument(f"T{k:04d}") for k in range(1500)]
        assert _ok(c.put("/api/v1/universes/core", json=huge), 413)["error"] == "payload_too_large"


def test_a_2000_name_universe_and_30_factor_model_are_accepted(client: TestClient) -> None:
    rng = np.random.default_rng(42)
    names = [f"N{k:04d}" for k in range(2000)]
    universe = {
        "id": "wide",
        "instruments": [
            instrument(s, float(rng.uniform(10, 500)), sector=f"S{k % 11}")
            for k, s in enumerate(names)
        ],
    }
    factors = rng.normal(size=(30, 30)) * 0.02
    model = {
        "id": "wide-30",
        "risk_model": {
            "factor_loadings": {s: rng.normal(size=30).round(6).tolist() for s in names},
            "factor_covariance": (factors @ factors.T).tolist(),
            "specific_variance": {s: float(rng.uniform(0.01, 0.05)) for s in names},
        },
    }
    _ok(client.put("/api/v1/universes/wide", json=universe), 201)
    _ok(client.put("/api/v1/risk-models/wide-30", json=model), 201)
    held = {s: 100.0 for s in names[:40]}
    req = request(held, [(names[0], "BUY", 50)], instruments=[], cash=50_000.0)
    body: dict[str, Any] = req.model_dump(mode="json", exclude_none=True)
    body["portfolio_state"].update(universe={"id": "wide"}, risk_model={"id": "wide-30"})
    body["policies"] = [policy("vol", {"kind": "volatility", "max": 5.0}, policy_type="RISK_LIMIT")]
    got = _ok(client.post("/api/v1/validate", json=body))
    assert got["is_compliant"] and got["reference_data"]["risk_model"]["version"] == 1


def test_a_0002_database_is_upgraded_keeping_its_portfolios(database_url: str) -> None:
    engine = connect(database_url)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    old = Store.open(database_url, migrate_schema=False)
    old.portfolios.put(PortfolioNode(portfolio_id="acme", name="Acme"), actor="a")
    with engine.connect() as conn:
        assert "reference_data_versions" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    old.engine.dispose()

    with TestClient(create_app(Settings(database_url=database_url, events="none"))) as client:
        with services_of(client).store.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == ScriptDirectory.from_config(config).get_current_head()
        assert _ok(client.get("/api/v1/portfolios/acme"))["portfolio"]["name"] == "Acme"
        _ok(client.put("/api/v1/universes/core", json=_universe()), 201)


def test_two_writers_racing_for_a_version_get_a_conflict(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(client.put("/api/v1/universes/core", json=_universe()), 201)
    store = services_of(client).store.universes
    # The other writer read the table before version 1 was committed: it also writes 1.
    monkeypatch.setattr(store, "_row", lambda *_args: None)
    r = client.put("/api/v1/universes/core", json=_universe({"AAA": 99.0}))
    assert "concurrently" in _ok(r, 409)["message"]
    monkeypatch.undo()
    assert [v["version"] for v in _ok(client.get("/api/v1/universes/core/versions"))] == [1]
