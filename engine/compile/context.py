"""The typed context every constraint kind compiles against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.compile.risk import RiskFactors, risk_factors
from engine.errors import MissingDataError, PolicyResolutionError
from engine.weights.portfolio import Snapshot
from models import Instrument, MissingDefault, PolicyValidationRequest
from models.typing import FloatArray

__all__ = ["IGNORED", "CompileContext"]

IGNORED: Any = object()

PER_REQUEST_FIELDS = frozenset({"price", "lot_size"})
"""Instrument fields that change from request to request and are left out of the layout
cache key (engine.compile.layout), so no constraint may be built from them."""
"""Returned by `CompileContext.attribute` for an instrument the constraint leaves out."""

STRATEGY = "strategy"
"""The attribute a position's strategy sleeve answers (`Position.strategy`; a name the
decision opens takes the decision's `strategy`), ahead of an instrument attribute of that
name."""


@dataclass
class CompileContext:
    """What a kind needs to build its rows: the snapshot, the request and the policy at hand.

    One context serves one request; `policy_name` and `constraint_path` are set per
    constraint so that errors name the policy and the constraint.
    """

    snap: Snapshot
    request: PolicyValidationRequest
    policy_name: str = ""
    constraint_path: str = ""
    _risk: dict[tuple[str, ...], RiskFactors] = field(default_factory=dict)
    _instrument_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._instrument_index = {
            inst.symbol: k for k, inst in enumerate(self.request.portfolio_state.instruments)
        }

    def where(self) -> str:
        """`policy 'x', rules.constraints[i]` for error messages."""
        return f"policy {self.policy_name!r}, {self.constraint_path}"

    def attribute_path(self, symbol: str, name: str) -> str:
        """Where attribute `name` of `symbol` lives in the request."""
        k = self._instrument_index.get(symbol)
        if k is None:  # a benchmark name with no instrument
            return f"portfolio_state.instruments (no instrument for {symbol})"
        where = name if name in Instrument.model_fields else f"attributes.{name}"
        return f"portfolio_state.instruments[{k}].{where}"

    def attribute(self, symbol: str, name: str, missing: Any) -> Any:
        """Attribute `name` of `symbol`, honouring the constraint's `missing` rule."""
        if name in PER_REQUEST_FIELDS:
            # A cached layout is reused across requests whose prices and lots differ, so a
            # row built from them would silently keep the first request's values.
            raise PolicyResolutionError(
                f"policies[{self.policy_name}].{self.constraint_path}",
                f"{self.where()} reads {name!r}, which changes with every request; a "
                "constraint may only read reference data (sector, issuer, adv, attributes...)",
            )
        instrument = self.snap.instruments.get(symbol)
        value = None if instrument is None else instrument.attribute(name)
        if name == STRATEGY and symbol in self.snap.strategies:
            value = self.snap.strategies[symbol]  # the position's sleeve
        if value is not None:
            return value
        if isinstance(missing, MissingDefault):
            return missing.default
        if missing == "ignore":
            return IGNORED
        raise MissingDataError(
            self.attribute_path(symbol, name),
            f"{self.where()} needs attribute {name!r} of {symbol}, which has none; add it "
            f'or set "missing": "ignore" (or {{"default": ...}}) on the constraint',
        )

    def numeric_attribute(self, symbol: str, name: str, missing: Any) -> Any:
        """Like `attribute`, but the value must be a number."""
        value = self.attribute(symbol, name, missing)
        if value is IGNORED:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MissingDataError(
                self.attribute_path(symbol, name),
                f"{self.where()} needs a numeric {name!r} for {symbol}, got {value!r}",
            )
        return float(value)

    def selection(self, indices: list[int]) -> sp.csr_matrix:
        """0/1 matrix picking the symbols at `indices` out of V (one row each)."""
        n = self.snap.n
        data = np.ones(len(indices))
        return sp.csr_matrix((data, (np.arange(len(indices)), indices)), shape=(len(indices), n))

    def benchmark_required(self) -> dict[str, float]:
        """The benchmark weights, or an error naming the constraint that needs them."""
        if self.request.portfolio_state.benchmark is None:
            raise MissingDataError(
                "portfolio_state.benchmark", f"{self.where()} needs benchmark weights"
            )
        return self.snap.benchmark

    def risk(self, universe: tuple[str, ...]) -> RiskFactors:
        """Risk factors over `universe`, computed once per request and universe."""
        if universe not in self._risk:
            model = self.request.portfolio_state.risk_model
            if model is None:
                raise MissingDataError(
                    "portfolio_state.risk_model", f"{self.where()} needs a risk model"
                )
            self._risk[universe] = risk_factors(model, universe, needed_by=self.where())
        return self._risk[universe]

    def scenario_returns(self) -> FloatArray:
        """Scenario returns as an S x n matrix over V."""
        scenarios = self.request.portfolio_state.scenarios
        if scenarios is None:
            raise MissingDataError(
                "portfolio_state.scenarios", f"{self.where()} needs scenario returns"
            )
        column = {s: j for j, s in enumerate(scenarios.symbols)}
        absent = [s for s in self.snap.symbols if s not in column]
        if absent:
            raise MissingDataError(
                "portfolio_state.scenarios.symbols",
                f"{self.where()} needs scenario returns for {', '.join(absent)}",
            )
        returns = np.asarray(scenarios.returns, dtype=float)
        return returns[:, [column[s] for s in self.snap.symbols]]
