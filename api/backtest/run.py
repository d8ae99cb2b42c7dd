"""The back-test's work: each portfolio's days under each policy set, one task per portfolio.

For every policy set and day, a portfolio's recorded holdings are checked (the breaches of
that day, all passive), then each of the day's decisions is validated in adjust mode against
the holdings as the set would have left them by then (earlier decisions of the day applied as
proposed if compliant, as adjusted if adjusted, not at all if blocked without an adjustment).
A blocked decision's cost of compliance is its adjustment's `distance` and, with the next
day's prices, the return of the proposed post-trade portfolio minus that of the adjusted one
(as a fraction of the day's NAV; positive: compliance cost performance).

A task builds its own `PolicyEngine` per policy set, so its answers do not depend on which
worker ran it or what it ran before: one worker or many give the same results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from api.backtest.history import Day, History, PortfolioHistory
from api.cluster import ProgressBar
from engine import InputError
from models import PolicyDefinition, PolicyValidationRequest, PolicyValidationResponse

if TYPE_CHECKING:  # pragma: no cover - typing only
    from distributed import Client

    from engine import PolicyEngine

__all__ = ["PolicySet", "Results", "run_backtest", "run_portfolio"]


@dataclass(frozen=True)
class PolicySet:
    """A named policy set (A, B, …) the history is run under."""

    name: str
    policies: tuple[PolicyDefinition, ...]


@dataclass
class Results:
    """One row per breached policy per portfolio-day (`breaches`) and one per decision.

    `days` is one row per portfolio-day and set (NAV, breached rows); `levels` each set's
    policies and their enforcement levels. Rows are plain dicts,
    sorted so that the same history gives the same results however it was partitioned.
    """

    sets: list[str]
    levels: dict[str, dict[str, str]] = field(default_factory=dict)
    days: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Results) -> None:
        """Add another partition's rows."""
        self.days += other.days
        self.breaches += other.breaches
        self.decisions += other.decisions

    def sort(self) -> None:
        """Set, portfolio, date order (decisions in the day's order)."""
        rank = {name: k for k, name in enumerate(self.sets)}

        def key(row: dict[str, Any]) -> tuple[Any, ...]:
            return (rank[row["policy_set"]], row["portfolio_id"], row["date"], row.get("seq", 0))

        self.days.sort(key=key)
        self.breaches.sort(key=lambda r: (*key(r), r["policy_name"]))
        self.decisions.sort(key=key)


def _request(
    pid: str,
    decision_id: str,
    trades: Sequence[tuple[str, float]],
    day: Day,
    positions: Mapping[str, float],
    cash: float,
    instruments: Mapping[str, Mapping[str, Any]],
    *,
    mode: str,
) -> PolicyValidationRequest:
    return PolicyValidationRequest.model_validate(
        {
            "decision": {
                "decision_id": decision_id,
                "portfolio_id": pid,
                "trades": [
                    {"symbol": s, "side": "BUY" if q > 0 else "SELL", "quantity": abs(q)}
                    for s, q in trades
                ],
            },
            "portfolio_state": {
                "portfolio_id": pid,
                "cash": cash,
                "positions": [{"symbol": s, "quantity": q} for s, q in positions.items() if q],
                "instruments": [
                    {"symbol": s, "price": p, **instruments[s]} for s, p in day.prices.items()
                ],
            },
            "mode": mode,
        }
    )


def _net(response_trades: Sequence[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in response_trades:
        signed = t.quantity if t.side.value == "BUY" else -t.quantity
        out[t.symbol] = out.get(t.symbol, 0.0) + signed
    return out


def _blocking(response: PolicyValidationResponse) -> list[str]:
    return sorted(
        {
            v.policy_name
            for v in response.violations
            if v.enforcement_level.value == "strict" and v.breach.value == "active"
        }
    )


def _check_day(
    engine: PolicyEngine, pset: PolicySet, pid: str, day: Day, instruments: Any, out: Results
) -> None:
    nav = day.cash + sum(q * day.prices[s] for s, q in day.positions.items())
    row: dict[str, Any] = {"policy_set": pset.name, "portfolio_id": pid, "date": day.date}
    try:
        request = _request(
            pid, "holdings", (), day, day.positions, day.cash, instruments, mode="validate"
        )
        response = engine.validate(request, pset.policies)
    except (InputError, ValidationError) as exc:
        out.days.append({**row, "nav": nav, "breached_rows": 0, "error": str(exc)})
        return
    rows: dict[str, list[Any]] = {}
    for v in response.violations:
        rows.setdefault(v.policy_name, []).append(v)
    out.days.append({**row, "nav": nav, "breached_rows": len(response.violations), "error": None})
    for name, breached in rows.items():
        out.breaches.append(
            {
                **row,
                "policy_name": name,
                "enforcement_level": breached[0].enforcement_level.value,
                "rows": len(breached),
                "max_excess": max(abs(v.observed - v.limit) for v in breached),
            }
        )


def _value_change(quantities: Mapping[str, float], day: Day, next_day: Day | None) -> float | None:
    """Σ q_i (p'_i - p_i): a name the next day does not price keeps its price."""
    if next_day is None:
        return None
    return sum(
        q * (next_day.prices.get(s, day.prices[s]) - day.prices[s]) for s, q in quantities.items()
    )


def _decisions_of_day(
    engine: PolicyEngine,
    pset: PolicySet,
    pid: str,
    day: Day,
    next_day: Day | None,
    instruments: Any,
    out: Results,
) -> None:
    positions, cash = dict(day.positions), day.cash
    nav = cash + sum(q * day.prices[s] for s, q in positions.items())
    for seq, decision in enumerate(day.decisions):
        proposed: dict[str, float] = {}
        for s, q in decision.trades:
            proposed[s] = proposed.get(s, 0.0) + q
        row: dict[str, Any] = {
            "policy_set": pset.name,
            "portfolio_id": pid,
            "date": day.date,
            "seq": seq,
            "decision_id": decision.decision_id,
            "trades": len(decision.trades),
        }
        try:
            request = _request(
                pid,
                decision.decision_id,
                decision.trades,
                day,
                positions,
                cash,
                instruments,
                mode="adjust",
            )
            response = engine.validate(request, pset.policies)
        except (InputError, ValidationError) as exc:
            out.decisions.append({**row, "outcome": "failed", "error": str(exc)})
            continue  # fail closed: nothing of it executes
        adjusted = response.adjusted_decision
        if response.is_compliant:
            executed, outcome = proposed, "allowed"
        elif adjusted is not None and adjusted.is_compliant:
            executed, outcome = _net(adjusted.trades), "adjusted"
        else:
            executed, outcome = {}, "cancelled"
        difference = {
            s: proposed.get(s, 0.0) - executed.get(s, 0.0) for s in set(proposed) | set(executed)
        }
        pnl = 0.0 if outcome == "allowed" else _value_change(difference, day, next_day)
        out.decisions.append(
            {
                **row,
                "outcome": outcome,
                "compliant": response.is_compliant,
                "blocking_policies": _blocking(response),
                "violations": len(response.violations),
                "active_breaches": sum(v.breach.value == "active" for v in response.violations),
                "method": adjusted.method.value if adjusted is not None else None,
                "distance": 0.0
                if outcome == "allowed"
                else (adjusted.distance if outcome == "adjusted" and adjusted else None),
                "nav": nav,
                "cost_pnl": pnl,
                "cost": None if pnl is None else pnl / nav,
                "error": response.adjustment_error,
            }
        )
        for s, q in executed.items():
            positions[s] = positions.get(s, 0.0) + q
            cash -= q * day.prices[s]


def run_portfolio(
    portfolio: PortfolioHistory,
    instruments: Mapping[str, Mapping[str, Any]],
    sets: Sequence[PolicySet],
) -> Results:
    """Every day of one portfolio under every policy set (one Dask task)."""
    # Imported here: the engine brings the compiler and cvxpy, which `pes backtest --help`
    # (and every other command, importing this module for its parser) need not load.
    from engine import PolicyEngine

    out = Results([s.name for s in sets])
    for pset in sets:
        engine = PolicyEngine()
        days = portfolio.days
        for k, day in enumerate(days):
            _check_day(engine, pset, portfolio.portfolio_id, day, instruments, out)
            next_day = days[k + 1] if k + 1 < len(days) else None
            _decisions_of_day(engine, pset, portfolio.portfolio_id, day, next_day, instruments, out)
    return out


def run_backtest(
    history: History,
    sets: Sequence[PolicySet],
    *,
    client: Client | None = None,
    progress: bool = True,
) -> Results:
    """Run `history` under every set: one Dask task per portfolio on `client`, else here.

    Results are sorted (set, portfolio, date), so they do not depend on the order in which
    tasks finished.
    """
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"policy set names must differ; got {names}")
    results = Results(names)
    results.levels = {
        s.name: {p.policy_name: p.enforcement_level.value for p in s.policies} for s in sets
    }
    total = len(history.portfolios)
    with ProgressBar("back-test (portfolios)", total, enabled=progress) as bar:
        if client is None:
            for portfolio in history.portfolios:
                results.extend(run_portfolio(portfolio, history.instruments, list(sets)))
                bar.advance()
        else:
            from distributed import as_completed

            shared = client.scatter([dict(history.instruments), list(sets)], broadcast=True)
            futures = [
                client.submit(run_portfolio, p, shared[0], shared[1], pure=False)
                for p in history.portfolios
            ]
            for future in as_completed(futures):
                results.extend(future.result())
                bar.advance()
    results.sort()
    return results
