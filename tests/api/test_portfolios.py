"""The portfolio hierarchy through the HTTP service, on SQLite and on PostgreSQL.

Tree used below: acme ─┬─ equity ─┬─ pf-1
                       │          └─ pf-2
                       └─ bonds
Every request is built on a portfolio of NAV 100,000 holding AAA at 20% (price 100), so
buying 10 shares of AAA adds 1% of NAV.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from httpx import Response

from api.http.app import create_app
from api.settings import Settings
from api.store import Store, connect
from api.store.db import alembic_config
from models import PolicyDefinition
from tests.api.conftest import services_of
from tests.builders import policy, request

TREE = [
    {"portfolio_id": "acme", "name": "Acme Asset Management"},
    {"portfolio_id": "equity", "name": "Equity Fund", "parent_id": "acme"},
    {"portfolio_id": "bonds", "name": "Bond Fund", "parent_id": "acme"},
    {"portfolio_id": "pf-1", "name": "Portfolio 1", "parent_id": "equity"},
    {"portfolio_id": "pf-2", "name": "Portfolio 2", "parent_id": "equity"},
]


def _put(client: TestClient, node: dict[str, Any]) -> Response:
    r: Response = client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node)
    return r


def _tree(client: TestClient) -> None:
    for node in TREE:
        assert _put(client, node).status_code == 201


def _cap(name: str, limit: float, scope: list[str], **fields: Any) -> dict[str, Any]:
    body = policy(name, {"kind": "weight_bounds", "max": limit}, scope={"portfolios": scope})
    body.update(fields)
    return body


def _create(client: TestClient, *policies: dict[str, Any]) -> None:
    for body in policies:
        r = client.post("/api/v1/policies", json=body)
        assert r.status_code == 201, r.text


def _decision(portfolio_id: str, buy_aaa: float, decision_id: str, **fields: Any) -> dict[str, Any]:
    req = request({"AAA": 200}, [("AAA", "BUY", buy_aaa)], cash=80_000.0, **fields)
    body: dict[str, Any] = req.model_dump(mode="json", exclude_none=True)
    body["decision"].update(portfolio_id=portfolio_id, decision_id=decision_id)
    body["portfolio_state"]["portfolio_id"] = portfolio_id
    return body


def _error(r: Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert {"error", "message", "detail"} <= body.keys()
    return body


# --- the registry ----------------------------------------------------------------------------


def test_put_creates_then_replaces_and_get_shows_the_place_in_the_tree(client: TestClient) -> None:
    _tree(client)
    r = client.get("/api/v1/portfolios/pf-1")
    assert r.status_code == 200
    body = r.json()
    assert body["portfolio"]["parent_id"] == "equity"
    assert (body["path"], body["children"], body["revision"]) == (["acme", "equity", "pf-1"], [], 1)
    assert client.get("/api/v1/portfolios/equity").json()["children"] == ["pf-1", "pf-2"]

    same = _put(client, TREE[3])
    assert (same.status_code, same.json()["revision"]) == (200, 1)
    bench = {"name": "Tech", "weights": {"AAA": 0.3}}
    moved = _put(client, {**TREE[3], "parent_id": "bonds", "benchmark": bench})
    assert moved.status_code == 200
    assert moved.json()["revision"] == 2
    assert moved.json()["path"] == ["acme", "bonds", "pf-1"]
    assert moved.json()["portfolio"]["benchmark"] == bench

    listing = client.get("/api/v1/portfolios").json()
    assert [(p["portfolio"]["portfolio_id"], p["path"]) for p in listing] == [
        ("acme", ["acme"]),
        ("bonds", ["acme", "bonds"]),
        ("equity", ["acme", "equity"]),
        ("pf-1", ["acme", "bonds", "pf-1"]),
        ("pf-2", ["acme", "equity", "pf-2"]),
    ]
    assert _error(client.get("/api/v1/portfolios/nope"), 404)["error"] == "not_found"


def test_unknown_parents_cycles_and_bad_ids_are_refused(client: TestClient) -> None:
    body = _error(_put(client, {"portfolio_id": "pf-9", "name": "x", "parent_id": "ghost"}), 422)
    assert body["detail"] == [
        {"field": "parent_id", "message": "no portfolio 'ghost': create the parent first"}
    ]
    _tree(client)
    cycle = _error(_put(client, {**TREE[0], "parent_id": "pf-1"}), 409)
    assert "would make a cycle: acme → equity → pf-1 → acme" in cycle["message"]
    assert client.get("/api/v1/portfolios/acme").json()["portfolio"].get("parent_id") is None

    own = _error(_put(client, {**TREE[1], "parent_id": "equity"}), 422)
    assert [d["field"] for d in own["detail"]] == ["parent_id"]
    mismatch = _error(client.put("/api/v1/portfolios/pf-1", json=TREE[4]), 422)
    assert mismatch["detail"][0]["field"] == "portfolio_id"
    bad_id = _error(client.put("/api/v1/portfolios/*", json={**TREE[0], "portfolio_id": "*"}), 422)
    assert "portfolio_id" in {d["field"] for d in bad_id["detail"]}
    assert len(client.get("/api/v1/portfolios").json()) == len(TREE)


def test_delete_refuses_while_children_exist(client: TestClient) -> None:
    _tree(client)
    assert "pf-1, pf-2" in _error(client.delete("/api/v1/portfolios/equity"), 409)["message"]
    r = client.delete("/api/v1/portfolios/pf-2")
    assert r.status_code == 200 and r.json()["path"] == ["acme", "equity", "pf-2"]
    _error(client.get("/api/v1/portfolios/pf-2"), 404)
    _error(client.delete("/api/v1/portfolios/pf-2"), 404)


# --- effective sets --------------------------------------------------------------------------


def test_effective_set_says_where_each_policy_comes_from(client: TestClient) -> None:
    _tree(client)
    _create(
        client,
        _cap("house", 0.5, ["*"]),
        _cap("firm-cap", 0.4, ["acme"]),
        _cap("equity-cap", 0.3, ["equity"], overridable=True),
        _cap("pf-1-cap", 0.35, ["pf-1"], overrides="equity-cap"),
        _cap("bonds-cap", 0.1, ["bonds"]),
        _cap("off", 0.1, ["pf-1"], enabled=False),
    )
    body = client.get("/api/v1/portfolios/pf-1/policies").json()
    assert body["path"] == ["acme", "equity", "pf-1"]
    got = {
        p["policy"]["policy_name"]: (p["scoped_at"], p["inherited"], p["overrides"], p["version"])
        for p in body["policies"]
    }
    assert got == {
        "house": ("*", True, None, 1),
        "firm-cap": ("acme", True, None, 1),
        "pf-1-cap": ("pf-1", False, "equity-cap", 1),
    }
    assert body["overridden"] == [
        {"policy_name": "equity-cap", "scoped_at": "equity", "overridden_by": ["pf-1-cap"]}
    ]
    sibling = client.get("/api/v1/portfolios/pf-2/policies").json()
    assert [p["policy"]["policy_name"] for p in sibling["policies"]] == [
        "equity-cap",
        "firm-cap",
        "house",
    ]
    assert sibling["overridden"] == []
    listed = client.get("/api/v1/policies", params={"portfolio_id": "pf-1"}).json()
    assert [p["policy_name"] for p in listed] == ["firm-cap", "house", "pf-1-cap"]
    _error(client.get("/api/v1/portfolios/ghost/policies"), 404)


def test_a_decision_in_a_child_portfolio_breaching_a_firm_policy(client: TestClient) -> None:
    _tree(client)
    _create(client, _cap("firm-cap", 0.25, ["acme"]), _cap("equity-cap", 0.30, ["equity"]))
    r = client.post("/api/v1/validate", json=_decision("pf-1", 70, "dec-child"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policies_checked"] == ["equity-cap", "firm-cap"]
    assert not body["is_compliant"]
    assert [(v["policy_name"], v["subject"]) for v in body["violations"]] == [("firm-cap", "AAA")]
    assert abs(body["violations"][0]["observed"] - 0.27) < 1e-9
    adjusted = body["adjusted_decision"]
    assert adjusted["is_compliant"]
    assert abs(adjusted["trades"][0]["quantity"] - 50) < 1e-6  # fractional lots
    # A portfolio the registered tree lacks is refused: its policies would silently drop.
    outside = client.post("/api/v1/validate", json=_decision("loose", 70, "dec-loose"))
    assert outside.status_code == 422, outside.text
    assert outside.json()["error"] == "unknown_portfolio"
    assert outside.json()["detail"][0]["field"] == "decision.portfolio_id"


def test_an_override_relaxes_an_overridable_fund_policy_for_one_portfolio(
    client: TestClient,
) -> None:
    _tree(client)
    _create(
        client,
        _cap("equity-cap", 0.25, ["equity"], overridable=True),
        _cap("pf-1-relaxed", 0.30, ["pf-1"], overrides="equity-cap"),
    )
    relaxed = client.post("/api/v1/validate", json=_decision("pf-1", 70, "dec-1")).json()
    assert relaxed["is_compliant"] and relaxed["policies_checked"] == ["pf-1-relaxed"]
    sibling = client.post("/api/v1/validate", json=_decision("pf-2", 70, "dec-2")).json()
    assert not sibling["is_compliant"]
    assert [v["policy_name"] for v in sibling["violations"]] == ["equity-cap"]

    # The override cannot be left dangling by making its target not overridable.
    r = client.patch("/api/v1/policies/equity-cap", json={"overridable": False})
    assert "overridden by 'pf-1-relaxed'" in _error(r, 409)["message"]
    # Disabling the override brings the fund's policy back.
    assert client.delete("/api/v1/policies/pf-1-relaxed").status_code == 200
    back = client.post("/api/v1/validate", json=_decision("pf-1", 70, "dec-3")).json()
    assert [v["policy_name"] for v in back["violations"]] == ["equity-cap"]


def test_capacity_is_bounded_by_the_same_inherited_and_overridden_policies(
    client: TestClient,
) -> None:
    _tree(client)
    _create(
        client,
        _cap("firm-cap", 0.25, ["acme"]),
        _cap("equity-cap", 0.22, ["equity"], overridable=True),
        _cap("pf-1-relaxed", 0.24, ["pf-1"], overrides="equity-cap"),
    )

    def buy_room(portfolio_id: str) -> tuple[float, list[str]]:
        state = _decision(portfolio_id, 1, f"cap-{portfolio_id}")["portfolio_state"]
        r = client.post("/api/v1/capacity", json={"portfolio_state": state, "symbols": ["AAA"]})
        assert r.status_code == 200, r.text
        buy = r.json()["symbols"][0]["buy"]
        return round(buy["shares"], 4), [b["policy_name"] for b in buy["binding"]]

    # AAA is at 20%; 10 shares are 1% of NAV (fractional lots, answered to 1e-6 shares).
    assert buy_room("pf-2") == (20.0, ["equity-cap"])  # fund cap 22%, inherited
    assert buy_room("pf-1") == (40.0, ["pf-1-relaxed"])  # fund cap overridden with 24%
    assert buy_room("bonds") == (50.0, ["firm-cap"])  # only the firm's 25%


def test_a_regulatory_policy_can_never_be_overridden(client: TestClient) -> None:
    _tree(client)
    ucits = _cap("ucits-5-10-40", 0.10, ["*"], policy_type="REGULATORY")
    _create(client, ucits)
    r = client.post(
        "/api/v1/policies", json=_cap("pf-1-loose", 0.3, ["pf-1"], overrides="ucits-5-10-40")
    )
    body = _error(r, 409)
    assert "'pf-1-loose' cannot override 'ucits-5-10-40'" in body["message"]
    assert "REGULATORY policies can never be overridden" in body["message"]
    r = client.patch("/api/v1/policies/ucits-5-10-40", json={"overridable": True})
    assert [d["field"] for d in _error(r, 422)["detail"]] == ["overridable"]

    # A dry run with inline policies resolves against the same tree and refuses it too.
    inline = [ucits, _cap("pf-1-loose", 0.3, ["pf-1"], overrides="ucits-5-10-40")]
    dry = client.post("/api/v1/validate", json=_decision("pf-1", 70, "dry", policies=inline))
    body = _error(dry, 422)
    assert body["detail"][0]["field"] == "policies[pf-1-loose].overrides"
    assert "REGULATORY" in body["message"]


def test_an_override_of_a_missing_policy_fails_closed_naming_it(client: TestClient) -> None:
    _tree(client)
    _create(client, _cap("pf-1-cap", 0.3, ["pf-1"], overrides="not-yet"))
    _create(client, _cap("pf-2-cap", 0.9, ["pf-2"]))
    for r in (
        client.get("/api/v1/portfolios/pf-1/policies"),
        client.get("/api/v1/policies", params={"portfolio_id": "pf-1"}),
        client.post("/api/v1/validate", json=_decision("pf-1", 70, "dec-missing")),
    ):
        body = _error(r, 422)
        assert body["detail"] == [
            {
                "field": "policies[pf-1-cap].overrides",
                "message": "'pf-1-cap' overrides 'not-yet', which does not exist",
            }
        ]
    # The sibling is not bound by the broken policy: it validates normally.
    assert client.post("/api/v1/validate", json=_decision("pf-2", 70, "dec-p2")).status_code == 200


def test_inline_policies_inherit_down_the_stored_tree(client: TestClient) -> None:
    _tree(client)
    inline = [_cap("firm-cap", 0.25, ["acme"]), _cap("bonds-cap", 0.05, ["bonds"])]
    r = client.post("/api/v1/validate", json=_decision("pf-2", 70, "dry-2", policies=inline))
    assert r.status_code == 200 and r.headers["X-PES-Dry-Run"] == "true"
    assert r.json()["policies_checked"] == ["firm-cap"]


def test_the_default_benchmark_of_a_fund_is_used_when_a_request_has_none(
    client: TestClient,
) -> None:
    _tree(client)
    _put(client, {**TREE[1], "benchmark": {"name": "Tech", "weights": {"AAA": 0.3, "BBB": 0.3}}})
    active = policy(
        "active-sector",
        {"kind": "group_limit", "attribute": "sector", "active": True, "min": -0.05},
        scope={"portfolios": ["equity"]},
    )
    _create(client, active)
    body = client.post("/api/v1/validate", json=_decision("pf-1", 10, "dec-b")).json()
    assert [(v["policy_name"], v["subject"]) for v in body["violations"]] == [
        ("active-sector", "Tech")
    ]
    assert abs(body["violations"][0]["observed"] - (0.21 - 0.6)) < 1e-9
    own = _decision("pf-1", 10, "dec-own", benchmark={"AAA": 0.2})
    assert client.post("/api/v1/validate", json=own).json()["violations"] == []


# --- migration ---------------------------------------------------------------------------------


def test_a_0001_database_is_upgraded_to_head_keeping_its_policies(database_url: str) -> None:
    engine = connect(database_url)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    old = Store.open(database_url, migrate_schema=False)
    old.policies.create(
        PolicyDefinition.model_validate(_cap("firm-cap", 0.25, ["acme"])), actor="a"
    )
    with engine.connect() as conn:
        assert "portfolios" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    old.engine.dispose()

    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        with services_of(client).store.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            assert version == ScriptDirectory.from_config(config).get_current_head()
        _tree(client)
        r = client.get("/api/v1/portfolios/pf-1/policies")
        assert [p["policy"]["policy_name"] for p in r.json()["policies"]] == ["firm-cap"]
