"""The request deadline and cancellation (engine.deadline): checked between stages, handed
to every solver, and never turning a late answer into "compliant"."""

from __future__ import annotations

import threading
from typing import Any

import cvxpy as cp
import pytest

import engine.adjust.adjuster as adjust_module
import engine.adjust.rounding.passes as passes_module
import engine.adjust.rounding.search as search_module
from engine import Deadline, DeadlineExceeded, PolicyEngine, RequestCancelled
from engine.adjust.rounding.search import TIME_LIMIT_S
from models import AdjustmentMethod, PolicyValidationRequest
from models.capacity import CapacityRequest
from solvers import ClarabelAdapter, SolveOutcome, SolverAdapter, SolverChain, SolveStatus
from tests.builders import policy, request
from tests.engine.adjust.test_lot_search import POLICIES as LOT_POLICIES
from tests.engine.adjust.test_lot_search import _request as lot_request
from tests.engine.adjust.test_lot_search import round_to_nearest
from tests.engine.compile.test_kinds import BASE

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.25})
LIMIT_S = 5.0


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Slow(SolverAdapter):
    """A solver that uses up `seconds` of the fake clock (and may cancel) without solving."""

    name = "SLOW"
    package = "cvxpy"
    supports_socp = True

    def __init__(
        self, clock: FakeClock, seconds: float, cancel: threading.Event | None = None
    ) -> None:
        self.clock, self.seconds, self.cancel = clock, seconds, cancel
        self.calls: list[dict[str, object]] = []

    def solve(self, problem: cp.Problem, **options: object) -> SolveOutcome:
        self.calls.append(options)
        self.clock.now += self.seconds
        if self.cancel is not None:
            self.cancel.set()
        return SolveOutcome(self.name, SolveStatus.ERROR, self.seconds, message="too slow")


class Recording(ClarabelAdapter):
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def solve(self, problem: cp.Problem, **options: object) -> SolveOutcome:
        self.calls.append(options)
        return super().solve(problem, **options)  # type: ignore[arg-type]


def _engine(*adapters: SolverAdapter) -> PolicyEngine:
    engine = PolicyEngine(chain=SolverChain(qp=list(adapters), socp=list(adapters)))
    # The separable solver would answer before the chain; these tests are about the chain.
    engine.adjuster.fast.separable = False
    return engine


def _breach() -> PolicyValidationRequest:
    """A decision that breaches the 25% cap and needs adjusting."""
    return request(BASE, [("AAA", "BUY", 100)], cash=30_000, policies=[CAP])


def test_deadline_passing_during_adjustment_is_not_compliant_with_the_reason() -> None:
    clock = FakeClock()
    slow, after = Slow(clock, seconds=2 * LIMIT_S), Recording()
    engine = _engine(slow, after)
    response = engine.validate(_breach(), deadline=Deadline(LIMIT_S, clock=clock))
    assert not response.is_compliant
    assert response.adjusted_decision is None
    error = response.adjustment_error
    assert error is not None and "timed out after 10 s" in error and "deadline 5 s" in error
    assert "cancelling every trade would comply" in error
    assert any("timed out" in r for r in response.recommendations)
    # The first solver got the whole budget; none started after it was spent.
    assert slow.calls[0]["time_limit"] == pytest.approx(LIMIT_S)
    assert after.calls == []


def test_every_solver_gets_the_time_left_as_its_limit() -> None:
    clock = FakeClock()
    slow, after = Slow(clock, seconds=1.5), Recording()
    engine = _engine(slow, after)
    response = engine.validate(_breach(), deadline=Deadline(LIMIT_S, clock=clock))
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant and adjusted.solver == "CLARABEL"
    assert after.calls[0]["time_limit"] == pytest.approx(LIMIT_S - 1.5)


def test_a_deadline_passed_before_the_check_is_an_error_not_an_answer() -> None:
    clock = FakeClock()
    deadline = Deadline(LIMIT_S, clock=clock)
    clock.now += LIMIT_S  # e.g. the request waited for the engine that long
    with pytest.raises(DeadlineExceeded) as raised:
        PolicyEngine().validate(_breach(), deadline=deadline)
    assert raised.value.stage == "resolve" and raised.value.limit == LIMIT_S
    with pytest.raises(DeadlineExceeded):
        PolicyEngine().validate(_breach(), deadline=Deadline(0.0))


def test_a_passed_check_stays_compliant_without_adjusting() -> None:
    compliant = request(BASE, [("DDD", "BUY", 10)], cash=30_000, policies=[CAP])
    clock = FakeClock()
    engine = _engine(Slow(clock, seconds=2 * LIMIT_S))
    response = engine.validate(compliant, deadline=Deadline(LIMIT_S, clock=clock))
    assert response.is_compliant and response.adjustment_error is None


def test_a_cancelled_request_stops_its_work() -> None:
    cancel = threading.Event()
    clock = FakeClock()
    slow, after = Slow(clock, seconds=0.1, cancel=cancel), Recording()
    engine = _engine(slow, after)
    with pytest.raises(RequestCancelled):
        engine.validate(_breach(), deadline=Deadline(LIMIT_S, cancel=cancel, clock=clock))
    assert len(slow.calls) == 1 and after.calls == []  # nothing ran after the cancel
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RequestCancelled):
        PolicyEngine().validate(_breach(), deadline=Deadline(None, cancel=cancel))


def test_deadline_arithmetic() -> None:
    clock = FakeClock()
    deadline = Deadline(2.0, clock=clock)
    assert deadline.remaining() == 2.0 and not deadline.expired()
    clock.now += 0.5
    assert deadline.elapsed() == 0.5 and deadline.time_left() == 1.5
    clock.now += 2.0
    assert deadline.remaining() == 0.0 and deadline.expired()
    unbounded = Deadline(None, clock=clock)
    clock.now += 1e9
    assert not unbounded.expired() and unbounded.remaining() == float("inf")
    unbounded.check("anything")  # never raises


def _integer_solves(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The time limits the integer lot search's solves are given (recorded as they run)."""
    limits: list[float] = []
    solve = search_module.solve_highs

    def spy(**kwargs: Any) -> Any:
        limits.append(kwargs["time_limit"])
        return solve(**kwargs)

    monkeypatch.setattr(search_module, "solve_highs", spy)
    return limits


def test_the_integer_lot_search_is_capped_by_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = _integer_solves(monkeypatch)
    # Rounding each trade to its nearest share fails here, so the integer search runs.
    round_to_nearest(monkeypatch)
    request = lot_request(15e6)
    clock = FakeClock()
    response = PolicyEngine().validate(
        request, LOT_POLICIES, deadline=Deadline(TIME_LIMIT_S / 2, clock=clock)
    )
    assert response.adjusted_decision is not None
    assert limits == [TIME_LIMIT_S / 2]
    PolicyEngine().validate(request, LOT_POLICIES)  # no deadline: the search's own limit
    assert limits[-1] == TIME_LIMIT_S


@pytest.mark.parametrize("late", ["before", "during set-up"])
def test_a_deadline_passing_before_the_integer_search_solves_stops_it(
    monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    limits = _integer_solves(monkeypatch)
    round_to_nearest(monkeypatch)
    clock = FakeClock()
    if late == "before":
        search = passes_module.integer_rounding

        def expire_first(*args: Any, **kwargs: Any) -> Any:
            clock.now += 10.0
            return search(*args, **kwargs)

        monkeypatch.setattr(passes_module, "integer_rounding", expire_first)
    else:
        affine = search_module._CountForms.affine

        def slow_rows(self: Any, block: Any) -> Any:
            clock.now += 10.0
            return affine(self, block)

        monkeypatch.setattr(search_module._CountForms, "affine", slow_rows)
    response = PolicyEngine().validate(
        lot_request(15e6), LOT_POLICIES, deadline=Deadline(5.0, clock=clock)
    )
    assert limits == []  # the search never reached its solve
    assert not response.is_compliant and response.adjusted_decision is None
    assert response.adjustment_error is not None and "timed out" in response.adjustment_error


def test_a_deadline_passing_before_the_conflict_search_ends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    floor = policy("floor", {"kind": "weight_bounds", "min": 0.3, "symbols": ["AAA"]})
    conflicting = request(
        BASE, [("AAA", "BUY", 100)], cash=30_000, policies=[CAP, floor], cure_passive=True
    )
    clock = FakeClock()
    attempt = adjust_module.Adjuster.attempt

    def slow_attempt(self: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = attempt(self, *args, **kwargs)
        if args[1] == AdjustmentMethod.PROJECT:
            clock.now += LIMIT_S  # neither method found a solution, and they took all the time
        return outcome

    unbounded = PolicyEngine().validate(conflicting)
    assert unbounded.infeasible is not None  # the case is a conflict
    monkeypatch.setattr(adjust_module.Adjuster, "attempt", slow_attempt)
    response = PolicyEngine().validate(conflicting, deadline=Deadline(LIMIT_S, clock=clock))
    assert not response.is_compliant and response.infeasible is None
    error = response.adjustment_error
    assert error is not None and "timed out" in error and "conflict search" in error


def test_capacity_is_refused_not_partial_when_the_deadline_passes() -> None:
    state = request(BASE, [], cash=30_000).portfolio_state
    capacity = CapacityRequest(portfolio_state=state, policies=_breach().policies)
    clock = FakeClock()
    slow = Slow(clock, seconds=2 * LIMIT_S)
    engine = _engine(slow, Recording())
    with pytest.raises(DeadlineExceeded) as raised:
        engine.capacity(capacity, deadline=Deadline(LIMIT_S, clock=clock))
    assert raised.value.stage.startswith("sizing ")
    assert slow.calls[0]["time_limit"] == pytest.approx(LIMIT_S)
    answered = PolicyEngine().capacity(capacity, deadline=Deadline(LIMIT_S, clock=FakeClock()))
    assert len(answered.symbols) == len(BASE)
