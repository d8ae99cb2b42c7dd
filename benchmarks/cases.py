"""Deterministic benchmark cases: a portfolio over `n` names, 20 proposed trades, policies.

One `Case` per universe size `n` fixes what production keeps fixed between requests: the
names, the holdings, the policy sets and the risk model. Each request `i` then varies what
changes from one decision to the next: prices move a little (about 0.2%) and every trade's
size is scaled by a factor in [0.75, 1.25]. Which names are traded is `Traded`:

- ``varying`` (as a coordination engine sends them): request `i` draws its own 20 names in
  the same roles (the 3 over-cap buys among the 8 largest holdings, the 3 sector buys among
  the heaviest sector's names, 8 small buys anywhere, 6 sells among the 60 largest
  holdings), so consecutive requests trade different sets of names;
- ``fixed``: every request trades the same 20 names (the case's `traded`), so every request
  after the first reuses the compiled problem of the first.

The holdings are market-cap weights, capped below the single-name and sector limits (so
the portfolio starts compliant) and 97% invested. The 20 trades are: 3 buys of the largest
holdings that push them over the single-name cap, 3 buys in the heaviest sector, 8 smaller
buys and 6 sells; together they also take cash below its floor and turnover above its
limit, so an adjustment has real work to do.

Policy sets (`POLICY_SETS`):

- ``base``: the issue's baseline: per-name cap, GICS sector caps, cash floor, turnover.
- ``twenty``: the baseline plus 16 more policies of most kinds (issuer and sub-industry
  caps, exposures, concentration, trade and liquidity limits, restricted lists, active
  sector bets, stress tests), strict, advisory and monitor: the check-only target's set.
- ``cones``: the baseline plus a volatility and a tracking-error limit, with a factor risk
  model of one factor per GICS sector and specific risk.
- ``cones20``: the same two limits with a wider factor model (`wide_factor_model`): one
  factor per GICS sector plus 9 style factors (size, value, momentum, quality, low
  volatility, growth, dividend yield, leverage, liquidity), 20 factors at n >= 200, and the
  same specific risk. It is drawn from its own seed after everything else, so the other
  sets' requests are unchanged by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from benchmarks.policies import BASE_LIMITS, POLICY_SETS, Limits, PolicySet, policy_sets
from benchmarks.universe import Name, universe
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray

__all__ = [
    "BASE_LIMITS",
    "NAV",
    "STYLE_FACTORS",
    "FactorModel",
    "POLICY_SETS",
    "Case",
    "Limits",
    "PolicySet",
    "Traded",
    "build_case",
    "wide_factor_model",
]

Traded = Literal["varying", "fixed"]

NAV = 1_000_000_000.0
INVESTED = 0.97
TRADES = 20
SEED = 42
STYLE_FACTORS = (
    "size",
    "value",
    "momentum",
    "quality",
    "low_volatility",
    "growth",
    "dividend_yield",
    "leverage",
    "liquidity",
)
"""The style factors of the 20-factor model, after one factor per GICS sector."""


@dataclass(frozen=True)
class FactorModel:
    """A factor risk model `Sigma = X F X' + diag(d)` over the case's names."""

    loadings: FloatArray
    covariance: FloatArray
    specific_variance: FloatArray

    def risk(self, w: FloatArray, b: FloatArray | None = None) -> float:
        """Volatility of `w`, or tracking error against `b`."""
        y = w if b is None else w - b
        f = self.loadings.T @ y
        return float(np.sqrt(f @ self.covariance @ f + np.sum(self.specific_variance * y**2)))

    def wire(self, names: tuple[Name, ...]) -> dict[str, Any]:
        """The request's inline `risk_model` field."""
        return {
            "factor_loadings": {
                nm.symbol: [float(x) for x in row]
                for nm, row in zip(names, self.loadings, strict=True)
            },
            "factor_covariance": self.covariance.tolist(),
            "specific_variance": {
                nm.symbol: float(v) for nm, v in zip(names, self.specific_variance, strict=True)
            },
        }


@dataclass
class Case:
    """Everything fixed across the requests of one universe size."""

    n: int
    names: tuple[Name, ...]
    quantities: FloatArray
    cash: float
    start_weights: FloatArray
    traded: list[int]
    trade_weights: FloatArray
    benchmark: dict[str, float]
    loadings: FloatArray
    factor_covariance: FloatArray
    specific_variance: FloatArray
    sectors: list[str]
    limits: Limits = BASE_LIMITS
    policies: dict[str, list[PolicyDefinition]] = field(default_factory=dict)
    cone_limits: tuple[float, float] = (0.0, 0.0)
    wide_model: FactorModel | None = None
    """The 20-factor model of policy set ``cones20``."""
    wide_cone_limits: tuple[float, float] = (0.0, 0.0)

    @property
    def sector_model(self) -> FactorModel:
        """The one-factor-per-sector model of policy set ``cones``."""
        return FactorModel(self.loadings, self.factor_covariance, self.specific_variance)

    def body(
        self,
        i: int,
        *,
        policy_set: PolicySet,
        mode: str,
        adjustment: str = "auto",
        decision_id: str | None = None,
        traded: Traded = "fixed",
    ) -> dict[str, Any]:
        """Request `i` as JSON-ready data (the wire form; no inline policies)."""
        prices, trades = self.variation(i, traded)
        instruments = [
            {
                "symbol": nm.symbol,
                "price": float(p),
                "sector": nm.sector,
                "issuer": nm.issuer,
                "country": "US",
                "asset_class": "equity",
                "currency": "USD",
                "adv": nm.adv,
                "lot_size": 1,
                "attributes": {
                    "sub_industry": nm.sub_industry,
                    "beta": round(nm.beta, 4),
                    "esg": round(nm.esg, 3),
                },
            }
            for nm, p in zip(self.names, prices, strict=True)
        ]
        state: dict[str, Any] = {
            "portfolio_id": f"bench-{self.n}",
            "cash": self.cash,
            "positions": [
                {"symbol": nm.symbol, "quantity": float(q)}
                for nm, q in zip(self.names, self.quantities, strict=True)
            ],
            "instruments": instruments,
        }
        if policy_set != "base":
            state["benchmark"] = self.benchmark
        if policy_set == "cones":
            state["risk_model"] = self.sector_model.wire(self.names)
        elif policy_set == "cones20":
            assert self.wide_model is not None, "built by build_case"
            state["risk_model"] = self.wide_model.wire(self.names)
        return {
            "decision": {
                "decision_id": decision_id or f"bench-{self.n}-{policy_set}-{i}",
                "portfolio_id": f"bench-{self.n}",
                "trades": trades,
                "strategy": "benchmark",
            },
            "portfolio_state": state,
            "mode": mode,
            "adjustment": adjustment,
        }

    def request(
        self,
        i: int,
        *,
        policy_set: PolicySet,
        mode: str,
        adjustment: str = "auto",
        traded: Traded = "fixed",
    ) -> PolicyValidationRequest:
        """Request `i` as a validated model (what the engine takes)."""
        return PolicyValidationRequest.model_validate(
            self.body(i, policy_set=policy_set, mode=mode, adjustment=adjustment, traded=traded)
        )

    def trade_set(self, i: int, traded: Traded = "fixed") -> tuple[list[int], FloatArray]:
        """The names request `i` trades and their proposed signed weight changes."""
        if traded == "fixed":
            return self.traded, self.trade_weights
        rng = np.random.default_rng((SEED, self.n, i, 1))
        sectors = [nm.sector for nm in self.names]
        count = min(TRADES, self.n)
        return _trades(rng, self.start_weights, sectors, count, self.limits, draw=True)

    def variation(
        self, i: int, traded: Traded = "fixed"
    ) -> tuple[FloatArray, list[dict[str, Any]]]:
        """Request `i`'s prices and trades: small price moves, trade sizes scaled."""
        rng = np.random.default_rng((SEED, self.n, i))
        base = np.array([nm.price for nm in self.names])
        prices = np.round(base * (1.0 + rng.normal(0.0, 0.002, self.n)), 2)
        names, changes = self.trade_set(i, traded)
        scale = rng.uniform(0.75, 1.25, len(names))
        trades = []
        for k, dw, s in zip(names, changes, scale, strict=True):
            shares = max(1.0, float(np.round(abs(dw) * s * NAV / prices[k])))
            if dw < 0:
                shares = min(shares, float(self.quantities[k]))
            trades.append(
                {
                    "symbol": self.names[k].symbol,
                    "side": "BUY" if dw > 0 else "SELL",
                    "quantity": shares,
                }
            )
        return prices, trades

    def weights(self, i: int, traded: Traded = "fixed") -> tuple[FloatArray, FloatArray]:
        """Pre-trade and proposed weights of request `i` (over the case's names)."""
        prices, trades = self.variation(i, traded)
        nav = self.cash + float(self.quantities @ prices)
        index = {nm.symbol: k for k, nm in enumerate(self.names)}
        q_hat = self.quantities.copy()
        for t in trades:
            sign = 1.0 if t["side"] == "BUY" else -1.0
            q_hat[index[t["symbol"]]] += sign * t["quantity"]
        return self.quantities * prices / nav, q_hat * prices / nav


def _capped(caps: FloatArray, sectors: list[str], name_max: float, sector_max: float) -> FloatArray:
    """Weights summing to 1, proportional to `caps` but within the name and sector caps."""
    w = caps / caps.sum()
    groups = np.array(sectors)
    for _ in range(200):
        fixed = w >= name_max - 1e-15
        w = np.minimum(w, name_max)
        for s in set(sectors):
            members = groups == s
            total = w[members].sum()
            if total > sector_max:
                w[members] *= sector_max / total
                fixed |= members
        free = ~fixed
        room = 1.0 - w[fixed].sum()
        if not free.any() or w[free].sum() <= 0:
            break
        w[free] *= room / w[free].sum()
        if w.max() <= name_max + 1e-12:
            worst = max(w[groups == s].sum() for s in set(sectors))
            if worst <= sector_max + 1e-12 and abs(w.sum() - 1.0) < 1e-12:
                break
    return np.asarray(w / max(w.sum(), 1.0), dtype=float)


def _trades(
    rng: np.random.Generator,
    w: FloatArray,
    sectors: list[str],
    count: int,
    limits: Limits,
    *,
    draw: bool = False,
) -> tuple[list[int], FloatArray]:
    """Indices of the traded names and their proposed signed weight changes.

    `draw=False` takes the 3 largest holdings and the next 3 of the heaviest sector (the
    fixed set); `draw=True` draws them among the 8 largest and the heaviest sector's names.
    """
    n = len(w)
    order = [int(k) for k in np.argsort(-w, kind="stable")]
    chosen: list[int] = []
    changes: list[float] = []

    def add(k: int, change: float) -> None:
        if len(chosen) < count and k not in chosen:
            chosen.append(k)
            changes.append(change)

    largest = _drawn(rng, order[:8], 3) if draw else order[:3]
    for k in largest:  # large holdings, pushed over the single-name cap
        add(k, 1.25 * (limits.name_max - float(w[k])) + 0.004)
    totals = {s: float(w[[k for k in range(n) if sectors[k] == s]].sum()) for s in set(sectors)}
    heaviest = max(sorted(totals), key=lambda s: totals[s])
    pairs = zip(chosen, changes, strict=True)
    so_far = totals[heaviest] + sum(c for k, c in pairs if sectors[k] == heaviest)
    each = max(0.005, (1.4 * (limits.sector_max - so_far) + 0.006) / 3)
    in_heaviest = [k for k in order if sectors[k] == heaviest and k not in chosen]
    sector_buys = _drawn(rng, in_heaviest[1:], 3) if draw else in_heaviest[1:4]
    for k in sector_buys:  # more of the heaviest sector, over its cap
        add(k, each)
    rest = [int(k) for k in rng.permutation(n) if int(k) not in chosen]
    for k in rest[:8]:
        add(k, float(rng.uniform(0.0015, 0.004)))
    large = [k for k in order if k not in chosen][:60]
    for k in [large[int(j)] for j in rng.permutation(len(large))]:
        # sells among the larger holdings, of at most half the holding
        add(k, -min(float(rng.uniform(0.002, 0.006)), 0.5 * float(w[k])))
    return chosen, np.array(changes)


def _drawn(rng: np.random.Generator, items: list[int], k: int) -> list[int]:
    """`k` of `items` drawn without replacement, in `items`' order."""
    if len(items) <= k:
        return list(items)
    keep = sorted(int(j) for j in rng.choice(len(items), k, replace=False))
    return [items[j] for j in keep]


def _factor_model(
    rng: np.random.Generator, names: tuple[Name, ...], sectors: list[str]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One factor per sector (loading = beta), correlated factors, specific variances."""
    k = len(sectors)
    position = {s: j for j, s in enumerate(sectors)}
    loadings = np.zeros((len(names), k))
    for i, nm in enumerate(names):
        loadings[i, position[nm.sector]] = round(nm.beta, 4)
    vols = rng.uniform(0.15, 0.30, k)
    corr = 0.5 * np.ones((k, k)) + 0.5 * np.eye(k)
    cov = np.round(np.outer(vols, vols) * corr, 8)
    specific = np.round(rng.uniform(0.15, 0.35, len(names)) ** 2, 6)
    return loadings, cov, specific


def wide_factor_model(
    names: tuple[Name, ...], sectors: list[str], specific: FloatArray
) -> FactorModel:
    """One factor per sector (loading = beta) plus `STYLE_FACTORS`, from its own seed.

    Style exposures are standard-normal scores scaled by 0.3 (a name's loading on a style);
    sector factors are correlated as in the sector model (0.5), style factors have
    volatilities of 2-6% and weak correlations (0.1) with each other and none with sectors.
    """
    rng = np.random.default_rng((SEED, len(names), 20))
    k, m = len(sectors), len(STYLE_FACTORS)
    position = {s: j for j, s in enumerate(sectors)}
    loadings = np.zeros((len(names), k + m))
    for i, nm in enumerate(names):
        loadings[i, position[nm.sector]] = round(nm.beta, 4)
    loadings[:, k:] = np.round(0.3 * rng.standard_normal((len(names), m)), 4)
    sector_vols = rng.uniform(0.15, 0.30, k)
    style_vols = rng.uniform(0.02, 0.06, m)
    cov = np.zeros((k + m, k + m))
    cov[:k, :k] = np.outer(sector_vols, sector_vols) * (0.5 + 0.5 * np.eye(k))
    cov[k:, k:] = np.outer(style_vols, style_vols) * (0.1 + 0.9 * np.eye(m))
    return FactorModel(loadings, np.round(cov, 8), specific)


def _risk(case: Case, w: FloatArray, b: FloatArray | None = None) -> float:
    return case.sector_model.risk(w, b)


def build_case(n: int) -> Case:
    """The case of universe size `n` (deterministic)."""
    names = universe(n)
    rng = np.random.default_rng((SEED, n))
    sector_of = [nm.sector for nm in names]
    caps = np.array([nm.market_cap for nm in names])
    limits = BASE_LIMITS
    w = INVESTED * _capped(caps, sector_of, 0.9 * limits.name_max, 0.9 * limits.sector_max)
    prices = np.array([nm.price for nm in names])
    quantities = np.maximum(np.round(w * NAV / prices), 1.0)
    cash = NAV - float(quantities @ prices)
    start = quantities * prices / NAV
    traded, changes = _trades(rng, start, sector_of, min(TRADES, n), limits)
    sectors = sorted(set(sector_of))
    loadings, factor_cov, specific = _factor_model(rng, names, sectors)
    bench = caps / caps.sum()
    case = Case(
        n=n,
        names=names,
        quantities=quantities,
        cash=cash,
        start_weights=start,
        traded=traded,
        trade_weights=changes,
        benchmark={nm.symbol: round(float(b), 10) for nm, b in zip(names, bench, strict=True)},
        loadings=loadings,
        factor_covariance=factor_cov,
        specific_variance=specific,
        sectors=sectors,
    )
    w0, w_hat = case.weights(0)
    b = np.array(list(case.benchmark.values()))
    case.cone_limits = (
        _between(_risk(case, w0), _risk(case, w_hat)),
        _between(_risk(case, w0, b), _risk(case, w_hat, b)),
    )
    wide = wide_factor_model(names, sectors, specific)
    case.wide_model = wide
    case.wide_cone_limits = (
        _between(wide.risk(w0), wide.risk(w_hat)),
        _between(wide.risk(w0, b), wide.risk(w_hat, b)),
    )
    case.policies = policy_sets(names, limits, case.cone_limits, case.wide_cone_limits)
    return case


def _between(pre: float, post: float) -> float:
    """A limit the proposal breaches when it raises the risk measure (half-way up)."""
    limit = pre + 0.5 * (post - pre) if post > pre else 1.01 * pre
    return round(limit, 6)
