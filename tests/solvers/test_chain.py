"""The solver chain: status mapping, fallback order, rejection of inaccurate answers."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from solvers import (
    ClarabelAdapter,
    ECOSAdapter,
    HiGHSAdapter,
    OSQPAdapter,
    SolveOutcome,
    SolverAdapter,
    SolverChain,
    SolveStatus,
    default_chain,
)
from solvers.base import MIN_TIME_LIMIT_S, MIN_UNTIMED_S
from solvers.chain import DPP_CELL_BUDGET, dpp_cells


def _qp(infeasible: bool = False) -> tuple[cp.Problem, cp.Variable]:
    x = cp.Variable(3)
    constraints = [cp.sum(x) == 1, x >= 0]
    if infeasible:
        constraints.append(cp.sum(x) >= 2)
    return cp.Problem(cp.Minimize(cp.sum_squares(x - [0.5, 0.4, 0.3])), constraints), x


class _Scripted(SolverAdapter):
    """Reports a fixed status without solving."""

    name = "SCRIPTED"
    package = "cvxpy"
    certifies_infeasibility = True

    def __init__(self, status: SolveStatus) -> None:
        self.status = status
        self.calls = 0

    def solve(self, problem: cp.Problem, **_options: object) -> SolveOutcome:
        self.calls += 1
        return SolveOutcome(self.name, self.status, 0.0, message="scripted")


@pytest.mark.parametrize(
    "adapter",
    [OSQPAdapter(), HiGHSAdapter(), ClarabelAdapter(), ECOSAdapter()],
    ids=lambda a: a.name,
)
def test_each_adapter_solves_a_qp_exactly(adapter: SolverAdapter) -> None:
    problem, x = _qp()
    outcome = adapter.solve(problem)
    assert outcome.status is SolveStatus.OPTIMAL and outcome.solver == adapter.name
    # ECOS, the last resort, is the least accurate; every answer is verified by the engine.
    tolerance = 1e-5 if adapter.name == "ECOS" else 1e-7
    assert x.value == pytest.approx([0.4 + 0.1 / 3, 0.3 + 0.1 / 3, 0.2 + 0.1 / 3], abs=tolerance)


@pytest.mark.parametrize(
    "adapter",
    [OSQPAdapter(), HiGHSAdapter(), ClarabelAdapter(), ECOSAdapter()],
    ids=lambda a: a.name,
)
def test_each_adapter_reports_infeasibility(adapter: SolverAdapter) -> None:
    problem, _ = _qp(infeasible=True)
    assert adapter.solve(problem).status is SolveStatus.INFEASIBLE


def test_status_table_maps_inaccurate_to_failure() -> None:
    assert SolverAdapter.STATUS_MAP[cp.OPTIMAL_INACCURATE] is SolveStatus.INACCURATE
    assert SolverAdapter.STATUS_MAP[cp.USER_LIMIT] is SolveStatus.INACCURATE


def test_chain_falls_back_and_records_every_attempt() -> None:
    broken = _Scripted(SolveStatus.ERROR)
    chain = SolverChain(qp=[broken, ClarabelAdapter()], socp=[ClarabelAdapter()])
    problem, _ = _qp()
    result = chain.solve(problem, needs_socp=False)
    assert result.optimal and result.solver == "CLARABEL"
    assert [a.status for a in result.attempts] == [SolveStatus.ERROR, SolveStatus.OPTIMAL]


def test_chain_rejects_a_solution_the_verifier_refuses() -> None:
    chain = SolverChain(qp=[OSQPAdapter(), ClarabelAdapter()], socp=[ClarabelAdapter()])
    problem, _ = _qp()
    verdicts = iter(["breaks a limit by 1e-4", None])
    result = chain.solve(problem, needs_socp=False, verify=lambda: next(verdicts))
    assert result.solver == "CLARABEL"
    assert result.attempts[0].status is SolveStatus.INACCURATE
    assert "breaks a limit" in result.attempts[0].message


def test_uncertified_infeasibility_is_confirmed_by_the_next_solver() -> None:
    class Suspicious(_Scripted):
        certifies_infeasibility = False

    chain = SolverChain(
        qp=[Suspicious(SolveStatus.INFEASIBLE), ClarabelAdapter()], socp=[ClarabelAdapter()]
    )
    problem, _ = _qp()
    result = chain.solve(problem, needs_socp=False)
    assert result.optimal and result.solver == "CLARABEL"


def test_every_solver_failing_is_an_error_not_an_answer() -> None:
    chain = SolverChain(
        qp=[_Scripted(SolveStatus.INACCURATE), _Scripted(SolveStatus.ERROR)],
        socp=[ClarabelAdapter()],
    )
    problem, _ = _qp()
    result = chain.solve(problem, needs_socp=False)
    assert result.status is SolveStatus.ERROR and not result.optimal and result.solver is None
    assert len(result.attempts) == 2


def test_cone_problems_go_to_cone_solvers_only() -> None:
    osqp = _Scripted(SolveStatus.OPTIMAL)
    chain = SolverChain(qp=[osqp], socp=[ClarabelAdapter()])
    x = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(cp.norm(x - [1, 2], 2)), [x <= 0])
    assert chain.solve(problem, needs_socp=True).solver == "CLARABEL"
    assert osqp.calls == 0


def test_chain_refuses_a_non_conic_solver_for_cones() -> None:
    with pytest.raises(ValueError, match="support cones"):
        SolverChain(qp=[OSQPAdapter()], socp=[OSQPAdapter()])


def test_default_chain_order() -> None:
    chain = default_chain()
    assert [a.name for a in chain.qp] == ["CLARABEL", "HIGHS", "OSQP", "ECOS"]
    assert [a.name for a in chain.socp] == ["CLARABEL", "ECOS"]
    assert OSQPAdapter.settings["polishing"] is True


def test_the_highs_banner_never_reaches_standard_output() -> None:
    # `pes validate` writes JSON on standard output; HiGHS prints a banner on fd 1 the first
    # time it is built, which importing the solvers package must have absorbed.
    import subprocess
    import sys

    code = (
        "import solvers, cvxpy as cp\n"
        "x = cp.Variable(2, integer=True)\n"
        "cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1]).solve(solver=cp.HIGHS)\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "done\n"  # and no banner


class _Recording(ClarabelAdapter):
    """Clarabel that records the options of every solve."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def solve(self, problem: cp.Problem, **options: object) -> SolveOutcome:
        self.calls.append(options)
        return super().solve(problem, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("adapter", "option"),
    [
        (ClarabelAdapter(), "time_limit"),
        (HiGHSAdapter(), "time_limit"),
        (OSQPAdapter(), "time_limit"),
    ],
    ids=lambda a: getattr(a, "name", str(a)),
)
def test_each_timed_solver_gets_the_time_left_as_its_limit(
    adapter: SolverAdapter, option: str
) -> None:
    # No deadline is the solver's explicit "no limit", never an absent setting.
    assert adapter.options(None) == {**adapter.settings, option: adapter.no_time_limit}
    assert adapter.options(float("inf")) == adapter.options(None)
    assert adapter.options(2.5) == {**adapter.settings, option: 2.5}
    # OSQP refuses a zero limit: never hand one down.
    assert adapter.options(0.0) == {**adapter.settings, option: MIN_TIME_LIMIT_S}
    problem, _ = _qp()
    assert adapter.solve(problem, time_limit=5.0).status is SolveStatus.OPTIMAL


def test_a_solver_without_a_time_limit_is_not_started_when_time_is_short() -> None:
    ecos = ECOSAdapter()
    assert ecos.options(None) == ecos.settings
    assert ecos.options(MIN_UNTIMED_S) == ecos.settings
    assert ecos.options(MIN_UNTIMED_S / 2) is None
    problem, x = _qp()
    outcome = ecos.solve(problem, time_limit=MIN_UNTIMED_S / 2)
    assert outcome.status is SolveStatus.ERROR and "no time limit" in outcome.message
    assert x.value is None


def test_chain_hands_the_time_left_to_every_solver_and_stops_when_it_is_gone() -> None:
    first, second = _Scripted(SolveStatus.ERROR), _Recording()
    chain = SolverChain(qp=[first, second], socp=[ClarabelAdapter()])
    problem, _ = _qp()
    left = iter([3.0, 2.0])
    result = chain.solve(problem, needs_socp=False, time_left=lambda: next(left))
    assert result.optimal and second.calls[0]["time_limit"] == 2.0
    late = _Recording()
    chain = SolverChain(qp=[late], socp=[ClarabelAdapter()])
    result = chain.solve(problem, needs_socp=False, time_left=lambda: 0.0)
    assert not result.optimal and late.calls == []
    assert result.attempts[0].message == "deadline passed"


def test_large_cone_problems_skip_the_parametrized_compile() -> None:
    small_x = cp.Variable(2)
    small = cp.Problem(cp.Minimize(cp.norm(small_x - [1, 2], 2)), [small_x <= 0])
    n = 3000
    x, F = cp.Variable(n), cp.Parameter((n, 5), value=np.ones((n, 5)))
    large = cp.Problem(cp.Minimize(cp.sum_squares(x - 1.0)), [cp.norm(F.T @ x, 2) <= 1.0])
    assert dpp_cells(small) <= DPP_CELL_BUDGET < dpp_cells(large)
    for problem, ignored in ((small, False), (large, True)):
        recording = _Recording()
        chain = SolverChain(qp=[recording], socp=[recording])
        assert chain.solve(problem, needs_socp=True).optimal
        assert recording.calls[0]["ignore_dpp"] is ignored
    # A QP never reaches cvxpy's cone restructuring: it keeps the parametrized form.
    recording = _Recording()
    qp, _ = _qp()
    SolverChain(qp=[recording], socp=[recording]).solve(qp, needs_socp=False)
    assert recording.calls[0]["ignore_dpp"] is False


def test_a_time_limit_does_not_outlive_its_solve() -> None:
    # cvxpy keeps a warm-started solver's settings between solves of one problem: a tight
    # limit for one request must not stay for the next one, which has none.
    rng = np.random.default_rng(42)
    n = 3000
    x = cp.Variable(n)
    loadings = rng.random((n, 20))
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(x - rng.random(n))),
        [cp.norm(loadings.T @ x, 2) <= 0.1, cp.sum(x) == 1],
    )
    clarabel = ClarabelAdapter()
    # Setting up a 3000-variable cone problem alone takes longer than the smallest limit.
    late = clarabel.solve(problem, time_limit=0.0, ignore_dpp=True)
    assert late.status is SolveStatus.INACCURATE and late.message == cp.USER_LIMIT
    assert clarabel.solve(problem, ignore_dpp=True).status is SolveStatus.OPTIMAL
