"""Policy resolution down the firm → fund → portfolio tree (engine.resolve.hierarchy).

Tree: firm ─┬─ fund-a ─┬─ pf-1
            │          └─ pf-2
            └─ fund-b ─── pf-3
Base portfolio (NAV 100,000, every price 100): AAA 20%, cash 80%.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import PolicyEngine, PolicyResolutionError
from engine.errors import MissingDataError
from engine.resolve.hierarchy import FIRM_WIDE, Lineage, resolve, with_default_benchmark
from models import PolicyDefinition, PortfolioNode
from tests.builders import policy, request

NODES = {
    "firm": PortfolioNode(portfolio_id="firm", name="The Firm"),
    "fund-a": PortfolioNode(portfolio_id="fund-a", name="Fund A", parent_id="firm"),
    "fund-b": PortfolioNode(portfolio_id="fund-b", name="Fund B", parent_id="firm"),
    "pf-1": PortfolioNode(portfolio_id="pf-1", name="Portfolio 1", parent_id="fund-a"),
    "pf-2": PortfolioNode(portfolio_id="pf-2", name="Portfolio 2", parent_id="fund-a"),
    "pf-3": PortfolioNode(portfolio_id="pf-3", name="Portfolio 3", parent_id="fund-b"),
}


def chain(portfolio_id: str) -> list[PortfolioNode]:
    """The node and its ancestors, nearest first."""
    out = [NODES[portfolio_id]]
    while out[-1].parent_id is not None:
        out.append(NODES[out[-1].parent_id])
    return out


def lineage(portfolio_id: str) -> Lineage:
    return Lineage.of(portfolio_id, chain(portfolio_id))


def cap(name: str, limit: float, scope: list[str], **fields: Any) -> PolicyDefinition:
    body = policy(name, {"kind": "weight_bounds", "max": limit}, scope={"portfolios": scope})
    body.update(fields)
    return PolicyDefinition.model_validate(body)


def in_portfolio(portfolio_id: str, buy_aaa: float, **fields: Any) -> Any:
    """Buy `buy_aaa` shares of AAA (10 shares = 1% of NAV) in `portfolio_id`."""
    req = request({"AAA": 200}, [("AAA", "BUY", buy_aaa)], cash=80_000.0, **fields)
    decision = req.decision.model_copy(update={"portfolio_id": portfolio_id})
    state = req.portfolio_state.model_copy(update={"portfolio_id": portfolio_id})
    return req.model_copy(update={"decision": decision, "portfolio_state": state})


# --- inheritance ---------------------------------------------------------------------------


def test_a_portfolio_inherits_from_every_ancestor_and_the_firm_wide_scope() -> None:
    policies = [
        cap("everywhere", 0.5, ["*"]),
        cap("firm-cap", 0.4, ["firm"]),
        cap("fund-a-cap", 0.3, ["fund-a"]),
        cap("pf-1-cap", 0.25, ["pf-1"]),
        cap("fund-b-cap", 0.2, ["fund-b"]),
        cap("pf-2-cap", 0.2, ["pf-2"]),
    ]
    got = resolve(policies, lineage("pf-1"))
    placed = {p.policy.policy_name: (p.scoped_at, p.level, p.inherited) for p in got.applied}
    assert placed == {
        "everywhere": (FIRM_WIDE, 3, True),
        "firm-cap": ("firm", 2, True),
        "fund-a-cap": ("fund-a", 1, True),
        "pf-1-cap": ("pf-1", 0, False),
    }
    assert got.overridden == ()
    assert [p.policy_name for p in resolve(policies, lineage("pf-3")).policies()] == [
        "everywhere",
        "firm-cap",
        "fund-b-cap",
    ]
    # A fund is a node too: it gets what is scoped to it and above, not to its children.
    assert [p.policy_name for p in resolve(policies, lineage("fund-a")).policies()] == [
        "everywhere",
        "firm-cap",
        "fund-a-cap",
    ]


def test_disabled_policies_do_not_bind_anywhere() -> None:
    policies = [cap("firm-cap", 0.4, ["firm"], enabled=False), cap("fund-a-cap", 0.3, ["fund-a"])]
    assert [p.policy_name for p in resolve(policies, lineage("pf-2")).policies()] == ["fund-a-cap"]


def test_the_nearest_scoped_node_is_where_a_policy_comes_from() -> None:
    (placed,) = resolve([cap("multi", 0.3, ["*", "firm", "fund-a"])], lineage("pf-1")).applied
    assert (placed.scoped_at, placed.level) == ("fund-a", 1)


def test_an_unregistered_portfolio_keeps_scope_by_id_or_star() -> None:
    policies = [cap("all", 0.5, ["*"]), cap("own", 0.3, ["loose"]), cap("fund", 0.2, ["fund-a"])]
    got = resolve(policies, Lineage("loose"))
    assert not got.lineage.registered
    assert {p.policy.policy_name: p.scoped_at for p in got.applied} == {"all": "*", "own": "loose"}


def test_a_broken_chain_is_refused() -> None:
    with pytest.raises(PolicyResolutionError, match="starts at 'pf-2'"):
        Lineage.of("pf-1", chain("pf-2"))
    with pytest.raises(PolicyResolutionError, match="broken portfolio chain"):
        Lineage.of("pf-1", [NODES["pf-1"], NODES["fund-b"], NODES["firm"]])
    with pytest.raises(PolicyResolutionError, match="incomplete portfolio chain"):
        Lineage.of("pf-1", [NODES["pf-1"], NODES["fund-a"]])


def test_all_inherited_policies_hold_together_so_the_strictest_bites() -> None:
    engine = PolicyEngine()
    stored = [cap("firm-cap", 0.10, ["firm"]), cap("fund-a-cap", 0.25, ["fund-a"])]
    # AAA goes from 20% to 27%. With a 30% firm cap only fund A's 25% cap bites in fund A,
    # and nothing in fund B; with a 10% firm cap both are breached in fund A.
    loose_firm = [cap("firm-cap", 0.30, ["firm"]), cap("fund-a-cap", 0.25, ["fund-a"])]
    r = engine.validate(in_portfolio("pf-1", 70), loose_firm, lineage=chain("pf-1"))
    assert not r.is_compliant
    assert {v.policy_name for v in r.violations} == {"fund-a-cap"}
    assert r.adjusted_decision is not None and r.adjusted_decision.is_compliant
    assert r.adjusted_decision.trades[0].quantity == pytest.approx(50, abs=1e-6)

    r = engine.validate(in_portfolio("pf-1", 70), stored, lineage=chain("pf-1"))
    assert {v.policy_name for v in r.violations} == {"firm-cap", "fund-a-cap"}
    assert r.policies_checked == ["firm-cap", "fund-a-cap"]

    r = engine.validate(in_portfolio("pf-3", 70), loose_firm, lineage=chain("pf-3"))
    assert r.is_compliant and r.policies_checked == ["firm-cap"]


# --- overrides -----------------------------------------------------------------------------


def test_an_override_replaces_an_overridable_ancestor_policy_for_its_subtree_only() -> None:
    policies = [
        cap("fund-a-cap", 0.25, ["fund-a"], overridable=True),
        cap("pf-1-cap", 0.30, ["pf-1"], overrides="fund-a-cap"),
    ]
    got = resolve(policies, lineage("pf-1"))
    (applied,) = got.applied
    assert (applied.policy.policy_name, applied.overrides) == ("pf-1-cap", "fund-a-cap")
    (gone,) = got.overridden
    assert (gone.policy.policy_name, gone.scoped_at, gone.overridden_by) == (
        "fund-a-cap",
        "fund-a",
        ("pf-1-cap",),
    )
    assert resolve(policies, lineage("pf-2")).policies() == [policies[0]]

    engine = PolicyEngine()
    assert engine.validate(in_portfolio("pf-1", 70), policies, lineage=chain("pf-1")).is_compliant
    sibling = engine.validate(in_portfolio("pf-2", 70), policies, lineage=chain("pf-2"))
    assert [v.policy_name for v in sibling.violations] == ["fund-a-cap"]


def test_an_override_does_not_lift_other_ancestor_policies() -> None:
    policies = [
        cap("firm-cap", 0.26, ["firm"]),
        cap("fund-a-cap", 0.25, ["fund-a"], overridable=True),
        cap("pf-1-cap", 0.30, ["pf-1"], overrides="fund-a-cap"),
    ]
    r = PolicyEngine().validate(in_portfolio("pf-1", 70), policies, lineage=chain("pf-1"))
    assert [v.policy_name for v in r.violations] == ["firm-cap"]


def test_a_fund_may_override_a_firm_wide_policy() -> None:
    policies = [
        cap("house-cap", 0.10, ["*"], overridable=True),
        cap("fund-b-cap", 0.20, ["fund-b"], overrides="house-cap"),
    ]
    assert [p.policy_name for p in resolve(policies, lineage("pf-3")).policies()] == ["fund-b-cap"]
    assert [p.policy_name for p in resolve(policies, lineage("pf-1")).policies()] == ["house-cap"]


def test_overriding_a_policy_that_is_not_overridable_is_refused_naming_both() -> None:
    policies = [
        cap("fund-a-cap", 0.25, ["fund-a"]),
        cap("pf-1-cap", 0.3, ["pf-1"], overrides="fund-a-cap"),
    ]
    with pytest.raises(PolicyResolutionError) as err:
        resolve(policies, lineage("pf-1"))
    assert err.value.field == "policies[pf-1-cap].overrides"
    assert "'pf-1-cap' cannot override 'fund-a-cap'" in err.value.message
    assert "not overridable" in err.value.message


def test_regulatory_policies_are_never_overridable() -> None:
    with pytest.raises(ValueError, match="REGULATORY policies can never be overridable"):
        cap("ucits", 0.10, ["*"], policy_type="REGULATORY", overridable=True)
    policies = [
        cap("ucits", 0.10, ["*"], policy_type="REGULATORY"),
        cap("pf-1-cap", 0.3, ["pf-1"], overrides="ucits"),
    ]
    with pytest.raises(PolicyResolutionError, match="REGULATORY policies can never be overridden"):
        resolve(policies, lineage("pf-1"))


def test_a_policy_cannot_override_itself() -> None:
    with pytest.raises(ValueError, match="cannot override itself"):
        cap("pf-1-cap", 0.3, ["pf-1"], overrides="pf-1-cap")


def test_an_override_must_be_scoped_strictly_below_what_it_replaces() -> None:
    same_level = [
        cap("fund-a-cap", 0.25, ["fund-a"], overridable=True),
        cap("fund-a-loose", 0.3, ["fund-a"], overrides="fund-a-cap"),
    ]
    with pytest.raises(PolicyResolutionError, match="strictly below"):
        resolve(same_level, lineage("pf-1"))
    upwards = [
        cap("pf-1-cap", 0.25, ["pf-1"], overridable=True),
        cap("fund-a-cap", 0.3, ["fund-a"], overrides="pf-1-cap"),
    ]
    with pytest.raises(PolicyResolutionError, match="scoped at 'fund-a'"):
        resolve(upwards, lineage("pf-1"))
    # Where the target does not bind, the override has nothing to replace: no error.
    assert len(resolve(upwards, lineage("pf-2")).applied) == 1


def test_an_override_of_an_unknown_policy_is_refused() -> None:
    with pytest.raises(PolicyResolutionError, match="'nope', which does not exist"):
        resolve([cap("pf-1-cap", 0.3, ["pf-1"], overrides="nope")], lineage("pf-1"))


def test_a_disabled_override_restores_the_ancestor_policy() -> None:
    policies = [
        cap("fund-a-cap", 0.25, ["fund-a"], overridable=True),
        cap("pf-1-cap", 0.30, ["pf-1"], overrides="fund-a-cap", enabled=False),
    ]
    assert [p.policy_name for p in resolve(policies, lineage("pf-1")).policies()] == ["fund-a-cap"]


def test_a_replaced_override_keeps_what_it_replaced_replaced() -> None:
    policies = [
        cap("house", 0.10, ["*"], overridable=True),
        cap("fund-a-cap", 0.20, ["fund-a"], overridable=True, overrides="house"),
        cap("pf-1-cap", 0.30, ["pf-1"], overrides="fund-a-cap"),
    ]
    got = resolve(policies, lineage("pf-1"))
    assert got.policies() == [policies[2]]
    assert {o.policy.policy_name: o.overridden_by for o in got.overridden} == {
        "house": ("fund-a-cap",),
        "fund-a-cap": ("pf-1-cap",),
    }


def test_inline_policies_resolve_against_the_same_tree() -> None:
    inline = [
        cap("fund-a-cap", 0.25, ["fund-a"], overridable=True).model_dump(mode="json"),
        cap("pf-1-cap", 0.30, ["pf-1"], overrides="fund-a-cap").model_dump(mode="json"),
    ]
    r = PolicyEngine().validate(
        in_portfolio("pf-2", 70, policies=inline), [], lineage=chain("pf-2")
    )
    assert r.policies_checked == ["fund-a-cap"] and not r.is_compliant


def test_applicable_policies_narrow_the_effective_set() -> None:
    stored = [cap("firm-cap", 0.10, ["firm"]), cap("fund-a-cap", 0.25, ["fund-a"])]
    req = in_portfolio("pf-1", 70, applicable_policies=["fund-a-cap"])
    r = PolicyEngine().validate(req, stored, lineage=chain("pf-1"))
    assert r.policies_checked == ["fund-a-cap"]


# --- default benchmark ---------------------------------------------------------------------


def test_the_nearest_benchmark_up_the_tree_is_the_default() -> None:
    bench = {"name": "Tech heavy", "weights": {"AAA": 0.3, "BBB": 0.3}}
    nodes = [
        NODES["pf-1"],
        PortfolioNode.model_validate({**NODES["fund-a"].model_dump(), "benchmark": bench}),
        PortfolioNode.model_validate(
            {**NODES["firm"].model_dump(), "benchmark": {"name": "x", "weights": {"CCC": 1.0}}}
        ),
    ]
    line = Lineage.of("pf-1", nodes)
    req = with_default_benchmark(in_portfolio("pf-1", 1), line)
    assert req.portfolio_state.benchmark == {"AAA": 0.3, "BBB": 0.3}
    own = in_portfolio("pf-1", 1, benchmark={"DDD": 1.0})
    assert with_default_benchmark(own, line).portfolio_state.benchmark == {"DDD": 1.0}

    active = policy(
        "active-sector",
        {"kind": "group_limit", "attribute": "sector", "active": True, "min": -0.05, "max": 0.05},
    )
    engine = PolicyEngine()
    defs = [PolicyDefinition.model_validate(active)]
    with pytest.raises(MissingDataError):
        engine.validate(in_portfolio("pf-1", 1), defs, lineage=chain("pf-1"))
    # Tech: 20% held vs a 60% benchmark weight: 40% under, beyond the 5% band.
    r = engine.validate(in_portfolio("pf-1", 1), defs, lineage=nodes)
    (v,) = r.violations
    assert (v.policy_name, v.subject, v.violation_type) == (
        "active-sector",
        "Tech",
        "group_limit.min",
    )
    assert v.observed == pytest.approx(0.201 - 0.6, abs=1e-9)
