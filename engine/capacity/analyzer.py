"""Capacity: the largest additional buy and sale per symbol before a strict policy binds.

For symbol i and a direction (buy +1, sell -1), trading k more lots on top of the base
(the current portfolio, or the portfolio after a proposed decision) gives the trades
`t_base + sign k lot e_i` and the weights `(q + t) p / NAV` (SPEC section 2: NAV fixed, the
cash moves by the traded value). The answer is the largest k for which the checker finds
no blocking breach of a strict policy, exactly as `validate` would with the extra trade
added to the decision: rows already in breach before trading may not get worse, turnover
and trade limits bind at their limits.

Every strict row is convex in w (a `max` row convex, a `min` row concave), so the compliant
k form an interval that contains 0 when the base is compliant: bisection on the checker's
verdict is sound. The compiled LP of `engine.capacity.lp` gives an estimate first (usually
exact to the lot, leaving two checks: k and k + 1); a gallop and a bisection on the
checker finish the answer, so solver tolerance never reaches it. If the solver fails, the
search starts from 0 alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.adjust.bounds import solve_bounds
from engine.capacity.lp import CapacityProblemCache
from engine.check.checker import CheckResult, check
from engine.compile.layout import Layout, LayoutCache
from engine.compile.prepared import prepare
from engine.deadline import NO_DEADLINE, Deadline
from engine.errors import InputError, UnknownSymbolError
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceKey
from engine.tolerances import FRACTIONAL_SHARE_STEP, LOT_UNITS_SNAP
from engine.weights.portfolio import MAX_WEIGHT
from models import (
    CoordinatedTradingDecision,
    PolicyDefinition,
    PolicyValidationRequest,
    PortfolioNode,
    ValidationMode,
)
from models.capacity import (
    CapacityBinding,
    CapacityLimit,
    CapacityRequest,
    CapacityResponse,
    CapacityStatus,
    SymbolCapacity,
)
from solvers import SolverChain

__all__ = ["FRACTIONAL_STEP", "MAX_LOTS", "CapacityAnalyzer", "largest_feasible"]

FRACTIONAL_STEP = FRACTIONAL_SHARE_STEP
"""Resolution, in shares, of the answer for an instrument traded in fractions (lot 0)."""

MAX_LOTS = 2**52
"""Most lots searched in one direction: beyond it a lot count is no longer exact in floats."""


def largest_feasible(feasible: Callable[[int], bool], guess: int, cap: int) -> int:
    """The largest k in [0, cap] with `feasible(k)`, for a feasible set [0, k*].

    `feasible(0)` must hold. Starting from `guess`, gallops up (or down) to bracket the
    boundary and bisects; with an exact guess it costs two calls (guess and guess + 1).
    """
    k = min(max(guess, 0), cap)
    if k == 0 or feasible(k):
        lo, hi, stride = k, cap + 1, 1
        while lo < cap:
            probe = min(lo + stride, cap)
            if not feasible(probe):
                hi = probe
                break
            lo, stride = probe, stride * 2
        if lo == cap:
            return cap
    else:
        lo, hi, stride = 0, k, 1
        while True:
            probe = max(hi - stride, 0)
            if probe == 0 or feasible(probe):
                lo = probe
                break
            hi, stride = probe, stride * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class _Direction:
    sign: int
    verb: str


_BUY, _SELL = _Direction(1, "buy"), _Direction(-1, "sell")


class CapacityAnalyzer:
    """Answers capacity requests with the engine's layouts, checker and solver chain."""

    def __init__(self, chain: SolverChain, layouts: LayoutCache, cache_size: int = 16) -> None:
        self.chain = chain
        self.layouts = layouts
        self.problems = CapacityProblemCache(cache_size)

    def run(
        self,
        request: CapacityRequest,
        policies: Sequence[PolicyDefinition] = (),
        *,
        lineage: Sequence[PortfolioNode] = (),
        deadline: Deadline = NO_DEADLINE,
        reference: ReferenceKey | None = None,
        controls: GlobalControls | None = None,
    ) -> CapacityResponse:
        """Capacity of every requested symbol (default: every symbol held or traded).

        Raises `engine.errors.InputError` naming the field for input that cannot be used,
        and `DeadlineExceeded` (`RequestCancelled`) when `deadline` passes (is cancelled)
        before every symbol is sized: a partial answer would be mistaken for a whole one.
        """
        prepared = prepare(
            self.layouts,
            _probe(request),
            policies,
            lineage=lineage,
            deadline=deadline,
            compile=False,
            reference=reference,
            controls=controls,
            gates=False,
        )
        timer, base_snap = prepared.timer, prepared.snapshot
        with timer.stage("weights"):
            symbols = _symbols(request, prepared.request, base_snap.symbols)
        out: list[SymbolCapacity] = []
        base_compliant = True
        for group in _universes(symbols, base_snap.symbols):
            layout = prepared.layout_with(group[1]) if group[1] else prepared.layout
            strict = layout.strict()
            with timer.stage("check"):
                compliant = _verdict(layout, layout.snap.w_hat, strict).is_compliant
            base_compliant = base_compliant and compliant
            with timer.stage("capacity"):
                out += self._size(layout, strict, group[0], compliant=compliant, deadline=deadline)
        order = {s: k for k, s in enumerate(symbols)}
        out.sort(key=lambda c: order[c.symbol])
        return CapacityResponse(
            portfolio_id=request.target_portfolio,
            base="decision" if request.decision is not None else "portfolio",
            base_compliant=base_compliant,
            nav=base_snap.nav,
            symbols=out,
            policies_checked=[p.policy_name for p in prepared.policies],
            timings_ms=timer.finish(),
        )

    def _size(
        self,
        layout: Layout,
        strict: list[int],
        symbols: Sequence[str],
        *,
        compliant: bool,
        deadline: Deadline,
    ) -> list[SymbolCapacity]:
        snap = layout.snap
        problem = None
        if compliant and strict:
            # The solver's estimate comes from the convex rows (a rule that is not convex
            # enters through its restriction, which implies it); the exact search below
            # then runs on the exact rows.
            convex = layout.for_solver()
            rows = convex.strict()
            problem = self.problems.get_problem(convex, rows)
            problem.fill(convex, rows, [solve_bounds(convex, k, cure_passive=False) for k in rows])
        out = []
        for symbol in symbols:
            deadline.check(f"sizing {symbol}")
            i = snap.index[symbol]
            limits = []
            for direction in (_BUY, _SELL):
                if not compliant:
                    limits.append(_not_evaluated())
                    continue
                estimate = None
                if problem is not None:
                    cap = MAX_WEIGHT - direction.sign * float(snap.w_hat[i])
                    estimate = problem.largest_step(
                        self.chain,
                        symbol=i,
                        sign=direction.sign,
                        cap=cap,
                        time_left=deadline.time_left,
                    )
                limits.append(_exact(layout, strict, i, direction, estimate))
            out.append(
                SymbolCapacity(
                    symbol=symbol,
                    price=float(snap.prices[i]),
                    lot_size=float(snap.lots[i]),
                    quantity=float(snap.q[i] + snap.t[i]),
                    weight=float(snap.w_hat[i]),
                    buy=limits[0],
                    sell=limits[1],
                )
            )
        return out


def _probe(request: CapacityRequest) -> PolicyValidationRequest:
    """The validate request whose decision is the capacity base."""
    decision = request.decision or CoordinatedTradingDecision(
        decision_id="capacity", portfolio_id=request.target_portfolio
    )
    if decision.fx_trades:
        # The capacity solves hold rows at their value without trades; FX trades move the
        # currency rows by themselves, which that premise leaves out (docs/not-yet-built.md).
        raise InputError(
            "decision.fx_trades",
            "capacity is not measured beyond FX trades yet: execute them in the state's "
            "cash (portfolio_state.cash by currency) and send the decision without them",
        )
    return PolicyValidationRequest(
        decision=decision,
        portfolio_state=request.portfolio_state,
        applicable_policies=request.applicable_policies,
        policies=request.policies,
        context=request.context,
        mode=ValidationMode.VALIDATE,
    )


def _symbols(
    request: CapacityRequest, probe: PolicyValidationRequest, universe: Sequence[str]
) -> list[str]:
    if request.symbols is None:
        return list(universe)
    known = {inst.symbol for inst in probe.portfolio_state.instruments}
    for k, symbol in enumerate(request.symbols):
        if symbol not in known:
            raise UnknownSymbolError(f"symbols[{k}]", f"no instrument (with a price) for {symbol}")
    return list(request.symbols)


def _universes(symbols: Sequence[str], base: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """(symbols to size, extra symbols of V) per universe.

    Symbols in the base universe share it; a symbol neither held nor traded gets a universe
    of its own (the base plus that symbol), as validate would build for a decision buying it.
    """
    inside = [s for s in symbols if s in base]
    groups: list[tuple[list[str], list[str]]] = [(inside, [])] if inside else []
    groups += [([s], [s]) for s in symbols if s not in base]
    return groups


def _verdict(layout: Layout, w: np.ndarray, strict: list[int]) -> CheckResult:
    return check(layout, w, cure_passive=False, indices=strict)


def _not_evaluated() -> CapacityLimit:
    return CapacityLimit(
        status=CapacityStatus.NOT_EVALUATED,
        reason="the base decision is not compliant; capacity is measured from a compliant "
        "base (validate the decision first)",
    )


def _exact(
    layout: Layout,
    strict: list[int],
    i: int,
    direction: _Direction,
    estimate: tuple[float, str] | None,
) -> CapacityLimit:
    """The exact lot count along `direction` of symbol i, seeded by the solver's estimate."""
    snap = layout.snap
    lot = float(snap.lots[i]) if snap.lots[i] > 0 else FRACTIONAL_STEP
    lot_weight = lot * float(snap.prices[i]) / snap.nav
    room = MAX_WEIGHT - direction.sign * float(snap.w_hat[i])
    cap = int(min(max(np.floor(room / lot_weight), 0), MAX_LOTS))

    def trades(k: int) -> np.ndarray:
        t = snap.t.copy()
        t[i] += direction.sign * k * lot
        return t

    def verdict(k: int) -> CheckResult:
        return _verdict(layout, snap.weights_from_trades(trades(k)), strict)

    def feasible(k: int) -> bool:
        return verdict(k).is_compliant

    guess = 0 if estimate is None else int(np.floor(estimate[0] / lot_weight + LOT_UNITS_SNAP))
    k = largest_feasible(feasible, guess, cap)
    solver = None if estimate is None else estimate[1]
    noun = "buy" if direction.sign > 0 else "sale"
    if k == cap:
        return CapacityLimit(
            status=CapacityStatus.UNLIMITED,
            reason=f"no strict policy limits a {noun} of {snap.symbols[i]} before the "
            f"position reaches {MAX_WEIGHT:,.0f} x NAV (the largest position accepted)",
            solver=solver,
        )
    shares = k * lot
    weight = shares * float(snap.prices[i]) / snap.nav
    binding = _binding(verdict(k + 1))
    names = ", ".join(
        f"{b.policy_name} ({b.violation_type}{'' if b.subject is None else ' ' + b.subject})"
        for b in binding
    )
    return CapacityLimit(
        status=CapacityStatus.LIMITED,
        shares=shares,
        weight=weight,
        post_weight=float(snap.w_hat[i]) + direction.sign * weight,
        binding=binding,
        reason=f"one lot more ({lot:g} {'share' if lot == 1 else 'shares'}) would breach {names}",
        solver=solver,
    )


def _binding(result: CheckResult) -> list[CapacityBinding]:
    out = []
    for rc in result.checks:
        provenance = rc.rowset.provenance
        assert provenance is not None
        for r in np.flatnonzero(rc.blocking):
            out.append(
                CapacityBinding(
                    policy_name=provenance.policy_name,
                    policy_type=provenance.policy.policy_type,
                    constraint_kind=provenance.kind,
                    violation_type=rc.rowset.violation_type,
                    subject=rc.rowset.subjects[r],
                    limit=float(rc.rowset.limits[r]),
                    observed=float(rc.post[r]),
                )
            )
    return out
