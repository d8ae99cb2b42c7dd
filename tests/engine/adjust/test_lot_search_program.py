"""The integer lot search's program, built as matrices for HiGHS, against a cvxpy statement.

`engine.adjust.rounding.search` writes the program's rows itself (constants split off, a
column per absolute value, `>=` rows negated). Stated again here in cvxpy straight from the
blocks (`A w + c`, `G |A w + c| + k` at `w = w_fixed + S count`), the same program must
have the same optimum: the search's answer holds every row the cvxpy statement holds and
its objective is the cvxpy optimum's, within the MIP gaps both solves stop at.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adjust.rounding.lots import rounding_steps
from engine.adjust.rounding.search import (
    MIP_ABS_GAP,
    MIP_REL_GAP,
    NODE_LIMIT,
    integer_rounding,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.compile.layout import Layout, build_layout
from engine.resolve.resolve import effective_policies
from engine.tolerances import LOT_UNITS_SNAP, MIP_FEASIBILITY
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray
from tests.engine.adjust.rounding_cases import benchmark_layouts
from tests.strategies import random_case, seeds

KINDS = ("weight_bounds", "group_limit", "cash", "turnover", "gross_exposure", "trade_limit")


def _statement(
    layout: Layout, strict: list[int], bounds: list[FloatArray], t: FloatArray, shrink_only: bool
) -> tuple[cp.Problem, cp.Variable, FloatArray, FloatArray]:
    """The program in cvxpy: problem, counts, the free names, and the objective's weights."""
    snap = layout.snap
    lots = snap.lots
    free = np.flatnonzero((lots > 0) & (t != snap.t) & (t != -snap.q))
    units = t[free] / lots[free]
    low, high = np.floor(units + LOT_UNITS_SNAP) - 1, np.ceil(units - LOT_UNITS_SNAP) + 1
    if shrink_only:
        proposal = snap.t[free] / lots[free]
        low = np.maximum(low, np.minimum(proposal, 0))
        high = np.minimum(high, np.maximum(proposal, 0))
    count = cp.Variable(len(free), integer=True, bounds=[low, high])
    fixed = t.copy()
    fixed[free] = 0.0
    scale = lots[free] * snap.prices[free] / snap.nav
    lot_weights = sp.csr_matrix((scale, (free, np.arange(len(free)))), shape=(snap.n, len(free)))
    w = snap.weights_from_trades(fixed) + lot_weights @ count
    rows: list[cp.Constraint] = []
    for k, bound in zip(strict, bounds, strict=True):
        block, upper = layout.rowsets[k].block, layout.rowsets[k].sense == "le"
        if type(block) is AffineBlock:
            value = block.A @ w + block.c
        elif type(block) is AbsSumBlock and upper:
            G = sp.identity(block.A.shape[0]) if block.G is None else block.G
            value = G @ cp.abs(block.A @ w + block.c) + (0.0 if block.k is None else block.k)
        else:
            continue
        rows.append(value <= bound if upper else value >= bound)
    w_star = snap.weights_from_trades(t)
    gradient = 2 * (w_star - snap.w_hat)
    moved = cp.multiply(scale, count) - (w_star[free] - snap.weights_from_trades(fixed)[free])
    objective = gradient[free] @ moved + cp.sum(cp.multiply(2 * scale, cp.abs(moved)))
    return cp.Problem(cp.Minimize(objective), rows), count, free, lots[free]


def _compare(
    layout: Layout, strict: list[int], bounds: list[FloatArray], t: FloatArray, shrink_only: bool
) -> bool:
    """Solve both ways and hold them together; True when the program had a solution."""
    found = integer_rounding(layout, strict, bounds, t, shrink_only=shrink_only)
    problem, count, free, lots = _statement(layout, strict, bounds, t, shrink_only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cvxpy warns of an inaccurate point: not compared
        problem.solve(
            solver=cp.HIGHS,
            mip_max_nodes=NODE_LIMIT,
            mip_rel_gap=MIP_REL_GAP,
            mip_abs_gap=MIP_ABS_GAP,
            mip_feasibility_tolerance=MIP_FEASIBILITY,
            primal_feasibility_tolerance=MIP_FEASIBILITY,
        )
    if problem.status != cp.OPTIMAL:
        assert found is None
        return False
    if not _moved_rows(layout, strict, free):
        assert found is None  # nothing to hold: the search answers None by design
        return False
    assert found is not None
    optimum = float(problem.value)
    # The search's answer, in the cvxpy statement: every row holds, the objective is the
    # optimum's within the gaps of both solves.
    count.value = found[free] / lots
    assert all(float(np.max(c.violation())) <= 10 * MIP_FEASIBILITY for c in problem.constraints)
    gap = max(MIP_ABS_GAP, MIP_REL_GAP * abs(optimum))
    assert float(problem.objective.value) == pytest.approx(optimum, abs=2 * gap)
    return True


def _moved_rows(layout: Layout, strict: list[int], free: FloatArray) -> bool:
    """True when some linear row (or absolute term) has an entry in a free column."""
    for k in strict:
        block = layout.rowsets[k].block
        if type(block) in (AffineBlock, AbsSumBlock) and sp.csr_matrix(block.A)[:, free].nnz:
            return True
    return False


def _tight(layout: Layout, strict: list[int], t: FloatArray) -> list[FloatArray]:
    """Each row's bound at its value at `t`, with room for half of what rounding can move it.

    Rounding each trade to its nearest lot may break such a row; the program has points
    that hold it (or shows that none within one lot of `t` does).
    """
    w = layout.snap.weights_from_trades(t)
    steps = rounding_steps(layout.snap)
    out = []
    for k in strict:
        rowset = layout.rowsets[k]
        room = 0.5 * rowset.block.perturbation_bound(steps)
        value = rowset.block.values(w)
        out.append(value + room if rowset.sense == "le" else value - room)
    return out


def _continuous(layout: Layout, rng: np.random.Generator, shrink_only: bool) -> FloatArray:
    snap = layout.snap
    lots = np.where(snap.lots > 0, snap.lots, 1.0)
    t = snap.t * rng.uniform(0.2, 1.0, snap.n) + rng.uniform(-3, 3, snap.n) * lots
    if shrink_only:
        t = np.clip(np.abs(t), 0, np.abs(snap.t)) * np.sign(snap.t)
    return t


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds(), shrink_only=st.booleans())
def test_the_search_solves_the_program_cvxpy_states(seed: int, shrink_only: bool) -> None:
    _search_against_statement(seed, shrink_only)


@pytest.mark.xfail(
    strict=True,
    reason="known: on this case the direct integer search's optimum is not the cvxpy "
    "statement's (1.37e-5 against -7.87e-6, beyond both gaps, with the node limit and gaps "
    "lifted too): the two programs differ; the answer is still checked exactly, so only "
    "its distance can be worse. Found by a changed hypothesis draw; not yet explained.",
)
def test_the_search_and_the_statement_part_on_a_found_case() -> None:
    _search_against_statement(251272693, shrink_only=False)


def _search_against_statement(seed: int, shrink_only: bool) -> None:
    body, raw = random_case(np.random.default_rng(seed), kinds=KINDS, lot_mode="mixed")
    request = PolicyValidationRequest.model_validate(body)
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    snap = snapshot_of(request)
    layout = build_layout(effective_policies(request, policies), request, snap).for_solver()
    strict = layout.strict()
    t = _continuous(layout, np.random.default_rng(seed), shrink_only)
    if not (snap.lots > 0).any():
        return
    _compare(layout, strict, _tight(layout, strict, t), t, shrink_only)


@pytest.mark.parametrize("policy_set", ["base", "twenty", "cones"])
def test_the_benchmark_programs_are_solved_as_cvxpy_states_them(policy_set: str) -> None:
    solved = 0
    for i, _snap, layout in benchmark_layouts(policy_set, 3):
        strict = layout.strict()
        t = _continuous(layout, np.random.default_rng(i), False)
        bounds = _tight(layout, strict, t)
        solved += _compare(layout, strict, bounds, t, False)
    assert solved  # the comparison is not vacuous
