"""What runs in a Dask task: one chunk of a group's portfolios, screened then reported.

The chunk's portfolios are checked as weight vectors by the batch checker over the group's
universe (`engine.batch.BatchChecker`, compiled once per group in each worker process and
kept), with the group's screen policies (`api.check_all.plan.screen_policies`). Every
portfolio the screen finds in breach, every portfolio the screen cannot take (NAV not
positive) and every portfolio of a group without a screen is then checked by the
single-request engine (`PolicyEngine.validate`, a decision with no trades, mode
validate): its violations are that engine's own, as `pes validate` would print them.
A portfolio the engine refuses is returned as an error naming it and the field.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from api.check_all.plan import Group
from engine import InputError
from engine.weights.portfolio import MAX_WEIGHT
from models import PolicyValidationRequest, Violation

if TYPE_CHECKING:
    from engine import PolicyEngine
    from engine.batch import BatchChecker

__all__ = ["Breach", "Chunk", "ChunkResult", "check_chunk", "request_of"]

log = logging.getLogger(__name__)

_CHECKERS: OrderedDict[str, BatchChecker | None] = OrderedDict()
_KEEP = 8
"""Compiled screens kept per worker process (one per group, least recently used out)."""
_ENGINE: list[PolicyEngine] = []


@dataclass(frozen=True)
class Chunk:
    """A bounded slice of one group's portfolios: ids, positions and cash."""

    portfolios: list[str]
    positions: list[dict[str, float]]
    cash: list[float]


@dataclass(frozen=True)
class Breach:
    """One violation of one portfolio's current holdings (a row of the output)."""

    portfolio_id: str
    policy_name: str
    policy_type: str
    kind: str
    violation_type: str
    enforcement_level: str
    severity: str
    breach: str
    subject: str | None
    observed: float
    limit: float | None
    description: str

    @classmethod
    def of(cls, portfolio_id: str, v: Violation) -> Breach:
        """The row of violation `v` of `portfolio_id`."""
        return cls(
            portfolio_id=portfolio_id,
            policy_name=v.policy_name,
            policy_type=str(v.policy_type.value),
            kind=v.violation_type.split(".", 1)[0],
            violation_type=v.violation_type,
            enforcement_level=str(v.enforcement_level.value),
            severity=str(v.severity.value),
            breach=str(v.breach.value),
            subject=v.subject,
            observed=float(v.observed),
            limit=None if v.limit is None else float(v.limit),
            description=v.description,
        )


@dataclass
class ChunkResult:
    """What a task returns: counts, the breaches, and the portfolios refused."""

    checked: int = 0
    screened: int = 0
    """Portfolios the batch screen answered (compliant) without the single-request engine."""
    rechecked: int = 0
    """Portfolios checked by the single-request engine."""
    breaches: list[Breach] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(portfolio_id, "field: message") for each portfolio that could not be checked."""


def request_of(group: Group, portfolio_id: str, positions: dict[str, float], cash: float) -> Any:
    """The request of a check of `portfolio_id`'s holdings: no trades, mode validate."""
    state: dict[str, Any] = {
        "portfolio_id": portfolio_id,
        "cash": cash,
        "positions": [{"symbol": s, "quantity": q} for s, q in sorted(positions.items())],
        "instruments": list(group.instruments),
        "benchmark": group.benchmark,
        "risk_model": group.risk_model,
    }
    return PolicyValidationRequest.model_validate(
        {
            "decision": {"decision_id": "check-all", "portfolio_id": portfolio_id, "trades": []},
            "portfolio_state": state,
            "mode": "validate",
        }
    )


def _engine() -> PolicyEngine:
    # The engine and the batch checker are imported where a task first needs them: they
    # bring the compiler and cvxpy, which the command line (importing this module through
    # `api.check_all` for `pes check-all`'s parser) need not load.
    from engine import PolicyEngine

    if not _ENGINE:
        _ENGINE.append(PolicyEngine())
    return _ENGINE[0]


def _checker(group: Group, backend: str) -> BatchChecker | None:
    """The group's compiled screen in this process (None: the group has none)."""
    if group.key in _CHECKERS:
        _CHECKERS.move_to_end(group.key)
        return _CHECKERS[group.key]
    from engine.batch import BatchChecker  # see _engine: loaded on first use

    checker: BatchChecker | None = None
    if group.screen is not None and group.instruments:
        try:
            checker = BatchChecker(
                group.screen,
                group.instruments,
                benchmark=group.benchmark,
                risk_model=group.risk_model,
                portfolio_id="check-all",
                backend=backend,  # type: ignore[arg-type]
                threads=1,  # a Dask worker is one process of one thread per core already
            )
        except (InputError, ValueError) as exc:
            # The group's universe cannot be compiled as one (an attribute a name lacks,
            # a risk model that misses a name): each portfolio is checked on its own and
            # the single-request engine names the problem where it is one.
            log.info("group %s: no batch screen: %s", group.key[:8], exc)
    _CHECKERS[group.key] = checker
    while len(_CHECKERS) > _KEEP:
        _CHECKERS.popitem(last=False)
    return checker


def _screen(checker: BatchChecker, group: Group, chunk: Chunk) -> np.ndarray:
    """Indexes of the chunk's portfolios the screen cannot call compliant."""
    column = {s: i for i, s in enumerate(checker.symbols)}
    price = {i.symbol: i.price for i in group.instruments}
    value = np.zeros((len(chunk.portfolios), len(checker.symbols)))
    for k, book in enumerate(chunk.positions):
        for symbol, quantity in book.items():
            value[k, column[symbol]] = quantity * price[symbol]
    cash = np.asarray(chunk.cash, dtype=float)
    nav = value.sum(axis=1) + cash
    # A NAV that is not positive, or a position beyond MAX_WEIGHT x NAV: the single-request
    # engine refuses the portfolio naming the field, so it is sent there.
    ok = (nav > 0) & (np.abs(value).max(axis=1, initial=0.0) <= MAX_WEIGHT * nav)
    flagged = set(np.flatnonzero(~ok).tolist())
    if ok.any():
        chosen = np.flatnonzero(ok)
        result = checker.check(value[chosen], cash=cash[chosen])
        flagged |= {int(chosen[k]) for k in np.unique(result.breach_vector)}
    return np.array(sorted(flagged), dtype=np.int64)


def check_chunk(group: Group, chunk: Chunk, backend: str = "numpy") -> ChunkResult:
    """Check a chunk of `group`'s portfolios (see the module docstring)."""
    result = ChunkResult(checked=len(chunk.portfolios))
    checker = _checker(group, backend)
    if checker is None:
        todo = np.arange(len(chunk.portfolios))
    else:
        todo = _screen(checker, group, chunk)
    result.screened = len(chunk.portfolios) - len(todo)
    result.rechecked = len(todo)
    engine = _engine()
    for k in todo.tolist():
        pid = chunk.portfolios[k]
        try:
            request = request_of(group, pid, chunk.positions[k], chunk.cash[k])
            response = engine.validate(request, list(group.policies))
        except InputError as exc:
            result.errors.append((pid, f"{exc.field}: {exc.message}"))
            continue
        result.breaches.extend(Breach.of(pid, v) for v in response.violations)
    return result
