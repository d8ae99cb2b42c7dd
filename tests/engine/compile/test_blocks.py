"""The numeric form of every row agrees with its cvxpy form (the source of truth)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from engine.compile.conic_blocks import cvar_of_losses
from engine.compile.layout import build_layout
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import snapshot_of
from tests.builders import policy, request
from tests.engine.compile.test_kinds import ALL_CASES, BASE, BENCH, RISK, SCENARIOS, TARGET


def _layout():
    constraints = [c for _, c, _, _ in ALL_CASES]
    trades = [("AAA", "BUY", 10), ("EEE", "BUY", 20), ("BBB", "SELL", 30)]
    req = request(
        BASE,
        trades,
        cash=30_000,
        policies=[policy(f"p{k}", c) for k, c in enumerate(constraints)],
        benchmark=BENCH,
        risk_model=RISK,
        scenarios=SCENARIOS,
        target_weights=TARGET,
    )
    snap = snapshot_of(req)
    return build_layout(effective_policies(req, []), req, snap)


def _solver_layout():
    """The rows the adjuster solves with (restrictions in place of non-convex rules)."""
    return _layout().for_solver()


@pytest.mark.parametrize("seed", range(5))
def test_numeric_rows_equal_cvxpy_rows(seed: int) -> None:
    layout = _solver_layout()
    rng = np.random.default_rng(seed)
    w = layout.snap.w0 + rng.normal(0, 0.1, layout.snap.n)
    delta = w - layout.snap.w0
    for rowset in layout.rowsets:
        params = rowset.block.declare()
        rowset.block.fill(params, layout.snap.w0)
        expr = rowset.block.expression(cp.Constant(delta), params)
        if expr.variables():  # CVaR: the row is the minimum over its auxiliary variable
            cp.Problem(cp.Minimize(cp.sum(expr))).solve(solver="CLARABEL")
        np.testing.assert_allclose(
            expr.value, rowset.block.values(w), rtol=1e-7, atol=1e-9, err_msg=rowset.violation_type
        )


@pytest.mark.parametrize("seed", range(5))
def test_perturbation_bound_covers_every_perturbation(seed: int) -> None:
    layout = _layout()
    rng = np.random.default_rng(seed)
    eps = rng.uniform(0, 0.01, layout.snap.n)
    w = layout.snap.w0 + rng.normal(0, 0.05, layout.snap.n)
    for rowset in layout.rowsets + layout.for_solver().rowsets:
        bound = rowset.block.perturbation_bound(eps)
        for _ in range(20):
            e = eps * rng.choice([-1.0, 1.0], size=eps.shape) * rng.uniform(0, 1, eps.shape)
            moved = np.abs(rowset.block.values(w + e) - rowset.block.values(w))
            assert (moved <= bound + 1e-12).all(), rowset.violation_type


def test_cvar_matches_rockafellar_uryasev_minimum() -> None:
    rng = np.random.default_rng(42)
    for beta in (0.5, 0.9, 0.95, 0.975):
        losses = rng.normal(size=37)
        brute = min(z + np.mean(np.maximum(losses - z, 0)) / (1 - beta) for z in losses)
        assert cvar_of_losses(losses, beta) == pytest.approx(brute, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("space", ["scale_back", "project", "elastic"])
def test_every_kind_compiles_to_a_dpp_problem(space: str) -> None:
    from engine.adjust.problems import ProblemCache

    layout = _solver_layout()
    compiled = ProblemCache().get_problem(space, layout, list(range(len(layout.rowsets))))  # type: ignore[arg-type]
    assert compiled.problem.is_dcp(dpp=True)
    assert compiled.needs_socp
