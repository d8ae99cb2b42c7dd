"""`project` with risk cones: over a working set of names, and without the cones first.

A working set's answer (`engine.adjust.screening`) is accepted only when the optimality
conditions hold for every name left out; the tests hold it to the whole problem's optimum
solved directly and to the problem written in cvxpy here (an independent formulation,
solved by Clarabel through cvxpy), on seeded sparse problems (a turnover limit, most names
untraded) and on drawn ones. The relaxation (the separable solver on the problem without
its cones, `FastSolvers.separable_solve`) answers only when its optimum holds every cone.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from engine import PolicyEngine
from engine.adjust import screening
from engine.adjust.adjuster import SEPARABLE
from engine.adjust.conic import ColumnCache, assemble
from engine.adjust.problems import OBJECTIVE_SCALE
from engine.adjust.screening import screened_solve, violations
from models.typing import FloatArray
from solvers import CLARABEL_DIRECT, DirectClarabel, SolveStatus
from tests.builders import policy, request
from tests.engine.adjust.test_conic import RISK_MODEL, _conic_case, _reference, _worst_excess
from tests.engine.adjust.test_separable_qp import _Case
from tests.engine.compile.test_kinds import BASE
from tests.strategies import ConicProblem, SeparableProblem, conic_problems


@pytest.fixture
def always_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small problems: let the working set grow to every name, never give up early."""
    monkeypatch.setattr(screening, "MAX_SHARE", 1.0)
    monkeypatch.setattr(screening, "EVERY_NAME", 2.0)


def _screened(case: _Case) -> screening.Screened | None:
    return screened_solve(
        case.layout,  # type: ignore[arg-type]  # the solve reads w0 and the row sets only
        list(range(len(case.layout.rowsets))),
        case.bounds,
        case.d,
        scale=OBJECTIVE_SCALE,
        solve=DirectClarabel().solve,
        cache=ColumnCache(),
        time_left=lambda: math.inf,
    )


def _whole(case: _Case, columns: list[int] | None = None) -> tuple[FloatArray, Any]:
    """The direct solve over `columns` (every name when None): x over V and the assembly."""
    d = case.d if columns is None else case.d[columns]
    assembly = assemble(
        case.layout,  # type: ignore[arg-type]
        list(range(len(case.layout.rowsets))),
        case.bounds,
        columns=columns,
        target=d,
        box=None,
        scale=OBJECTIVE_SCALE,
        constant=True,
    )
    assert assembly is not None
    solved = DirectClarabel().solve(assembly.data)
    assert solved.outcome.status is SolveStatus.OPTIMAL and solved.x is not None
    x = np.zeros(len(case.d))
    x[slice(None) if columns is None else columns] = solved.x[: assembly.columns]
    return x, (assembly, solved)


def _objective(case: _Case, x: FloatArray) -> float:
    return OBJECTIVE_SCALE * float(np.sum((x - case.d) ** 2))


def _sparse_problem(seed: int, n: int = 40) -> ConicProblem:
    """Most names untraded, a binding turnover limit, volatility at its pre-trade value."""
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(0.005, 0.04, n)
    d = np.zeros(n)
    traded = rng.choice(n, 5, replace=False)
    d[traded] = rng.normal(0.0, 0.03, 5)
    base = SeparableProblem(
        w0=w0,
        d=d,
        cap_slack=np.full(n, 0.02),
        floor_slack=w0,
        groups=[i % 4 for i in range(n)],
        group_slack=rng.uniform(0.0, 0.02, 4),
        net=np.ones(n),
        net_slack=0.0,
        trade_limit=np.full(n, 0.05),
        turnover=float(rng.uniform(0.4, 0.9)),
        gross=None,
        gross_slack=np.zeros(1),
        columns=None,
    )
    return ConicProblem(
        base=base,
        extra=1,
        F=rng.normal(0.0, 0.2, (n + 1, 3)),
        specific=rng.uniform(0.1, 0.3, n + 1),
        benchmark=rng.uniform(0.0, 0.05, n + 1),
        vol_slack=0.0,
        te_slack=float(rng.uniform(0.0, 0.01)),
        risk=True,
    )


@pytest.mark.usefixtures("always_finish")
def test_a_working_set_finds_the_whole_problems_optimum() -> None:
    screened_out = referenced = sparse = 0
    for seed in range(40):
        case = _conic_case(_sparse_problem(seed))
        found = _screened(case)
        assert found is not None, seed
        whole, _ = _whole(case)
        status, _point, reference = _reference(case)
        assert _worst_excess(case, found.x) <= 1e-7
        assert _objective(case, found.x) == pytest.approx(_objective(case, whole), rel=1e-6)
        if status == cp.OPTIMAL:  # Clarabel through cvxpy is sometimes only "inaccurate"
            assert _objective(case, found.x) == pytest.approx(reference, rel=1e-6)
            referenced += 1
        assert found.outcome.status is SolveStatus.OPTIMAL
        screened_out += found.columns < len(case.d)
        sparse += found.columns <= len(case.d) // 2
    # Not vacuous: most of these problems leave names out of the last working set.
    assert screened_out >= 20
    assert sparse >= 4  # some keep at most half the names
    assert referenced >= 30


@pytest.mark.usefixtures("always_finish")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=conic_problems())
def test_a_working_set_on_drawn_problems_is_optimal_or_gives_way(problem: ConicProblem) -> None:
    # A drawn problem in project's space with every other name untraded.
    d = problem.base.d.copy()
    d[1::2] = 0.0
    problem = replace(problem, base=replace(problem.base, d=d, columns=None))
    case = _conic_case(problem)
    found = _screened(case)
    status, _point, reference = _reference(case)
    if found is None or status != cp.OPTIMAL:
        return  # no answer from the working set: the whole problem is solved (engine tests)
    assert _worst_excess(case, found.x) <= 1e-7
    assert _objective(case, found.x) == pytest.approx(reference, rel=1e-6, abs=1e-8)


def test_a_name_held_out_that_should_move_is_found() -> None:
    """Solve without one name the optimum moves: the conditions name it as far from optimal."""
    found = 0
    for seed in range(10):
        case = _conic_case(_sparse_problem(seed))
        whole, _ = _whole(case)
        moving = np.flatnonzero(np.abs(whole) > 1e-5)
        held_out = [j for j in moving if case.d[j] == 0]
        if not held_out:
            continue
        j = held_out[0]
        columns = [int(i) for i in moving if i != j]
        x, (assembly, solved) = _whole(case, columns)
        inside = np.zeros(len(case.d), dtype=bool)
        inside[columns] = True
        distances = violations(
            case.layout,  # type: ignore[arg-type]
            list(range(len(case.layout.rowsets))),
            assembly.duals(solved.z),
            case.layout.snap.w0 + x,
            inside,
        )
        assert distances is not None
        assert distances.far[j] > 0, seed
        found += 1
    assert found >= 3


@pytest.mark.usefixtures("always_finish")
def test_the_answer_and_its_duals_certify_every_name_left_out() -> None:
    """The returned weights and duals (over every row set) pass the check again: no name
    held at its current weight is away from optimal, and those names are exactly held."""
    for seed in range(5):
        case = _conic_case(_sparse_problem(seed))
        found = _screened(case)
        assert found is not None
        moved = (found.x != 0) | (case.d != 0)
        assert int(moved.sum()) <= found.columns
        distances = violations(
            case.layout,  # type: ignore[arg-type]
            list(range(len(case.layout.rowsets))),
            found.duals,
            case.layout.snap.w0 + found.x,
            moved,
        )
        assert distances is not None
        assert not (distances.far > 0).any(), seed


# -- the engine: relaxation first, and the working set's threshold ---------------------------

VOL_LOOSE = policy("vol", {"kind": "volatility", "max": 0.5}, policy_type="RISK_LIMIT")
VOL_TIGHT = policy("vol", {"kind": "volatility", "max": 0.14}, policy_type="RISK_LIMIT")
CAP = policy("cap", {"kind": "weight_bounds", "max": 0.25})


def _adjusted(engine: PolicyEngine, policies: list[dict[str, Any]]) -> Any:
    body = request(
        BASE,
        [("AAA", "BUY", 150), ("DDD", "BUY", 100)],
        cash=60_000,
        policies=policies,
        risk_model=RISK_MODEL,
        adjustment="project",
    )
    adjusted = engine.validate(body).adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    return adjusted


def _without_relaxation() -> PolicyEngine:
    engine = PolicyEngine()
    engine.adjuster.fast.relax_cones = False
    return engine


def _relaxing() -> PolicyEngine:
    engine = PolicyEngine()
    engine.adjuster.fast.relax_cones_from = 0
    return engine


def test_a_cone_the_linear_answer_holds_is_answered_without_it() -> None:
    relaxed = _adjusted(_relaxing(), [CAP, VOL_LOOSE])
    assert [(a.solver, a.status) for a in relaxed.solver_attempts] == [(SEPARABLE, "optimal")]
    direct = _adjusted(_without_relaxation(), [CAP, VOL_LOOSE])
    assert direct.solver == CLARABEL_DIRECT
    assert relaxed.distance == pytest.approx(direct.distance, rel=1e-6)


def test_small_problems_are_not_relaxed() -> None:
    adjusted = _adjusted(PolicyEngine(), [CAP, VOL_LOOSE])
    assert adjusted.solver == CLARABEL_DIRECT


def test_a_binding_cone_leaves_the_relaxation_unanswered() -> None:
    adjusted = _adjusted(_relaxing(), [VOL_TIGHT])
    # The relaxation's optimum breaks the cone: no attempt is recorded for it.
    assert [(a.solver, a.status) for a in adjusted.solver_attempts] == [
        (CLARABEL_DIRECT, "optimal")
    ]


@pytest.mark.usefixtures("always_finish")
def test_the_engine_answers_from_a_working_set_as_from_the_whole_problem() -> None:
    from benchmarks.cases import build_case
    from models import PolicyValidationRequest

    n = 200
    case = build_case(n)
    policies = case.policies["cones20"]
    screened, whole = _without_relaxation(), _without_relaxation()
    screened.adjuster.fast.screen_from = 0
    whole.adjuster.fast.screening = False
    fewer = 0
    for i in range(8):
        body = case.body(
            i, policy_set="cones20", mode="adjust", adjustment="project", traded="varying"
        )
        answers = [
            engine.validate(PolicyValidationRequest.model_validate(body), policies)
            for engine in (screened, whole)
        ]
        first, second = (answer.adjusted_decision for answer in answers)
        assert first is not None and second is not None
        assert first.is_compliant and second.is_compliant
        # The continuous optima agree to the solver's tolerance; lot rounding may then
        # round a name either way (a few shares of 2,000 names).
        assert first.distance == pytest.approx(second.distance, rel=1e-4)
        assert second.solver_attempts[-1].message == "Solved"
        fewer += f"of {n} of {n} names" not in first.solver_attempts[-1].message
    # Not vacuous: some answers come from a working set of fewer names than V.
    assert fewer >= 3


def test_no_working_set_is_solved_once_the_time_is_up() -> None:
    case = _conic_case(_sparse_problem(1))
    solves: list[int] = []

    def counted(data: Any) -> Any:
        solves.append(1)
        return DirectClarabel().solve(data)

    found = screened_solve(
        case.layout,  # type: ignore[arg-type]
        list(range(len(case.layout.rowsets))),
        case.bounds,
        case.d,
        scale=OBJECTIVE_SCALE,
        solve=counted,
        cache=ColumnCache(),
        time_left=lambda: 0.0,
    )
    assert found is None and not solves
