"""Reference implementation of SPEC sections 2, 4, 5 and the optimum of section 6.

Written directly from the product specification for use in tests only: the engine is compared
against it. It is deliberately simple (plain loops over plain JSON-like dicts) and never
imports the engine, the solvers or the API.

Every constraint row is written once as a function ``fn(ops, w)`` of the post-trade weights
``w`` (a mapping symbol -> weight over ``V``; symbols outside ``V`` weigh 0). ``ops`` is either
the numeric algebra (floats, used by :func:`rows` and :func:`verdict`) or the cvxpy algebra
(expressions, used by :func:`optimum`), so checker and optimum cannot disagree on meaning.

Decisions taken where SPEC is silent (see the module's tests for worked examples):

- ``V`` holds every symbol with a non-zero position or appearing in a trade (even when that
  symbol's trades net to zero); ``scale_back`` has one ``alpha`` per symbol whose net trade
  is non-zero.
- ``per_symbol`` / ``per_group`` bounds override the constraint's bounds field by field: a
  bound the override leaves out falls back to the constraint's own bound.
- For the adjustment a row counts as "in passive breach" when it is breached pre-trade
  (pre-trade excess > 1e-9); such a row is constrained to "no worse than pre-trade", every
  other strict row to its limit (with ``cure_passive`` every strict row to its limit).
- ``missing`` also governs ``where`` selectors (ignore: the instrument does not match),
  ``max_adv_fraction`` (the instrument's ``adv``) and stress scenarios ``by`` an attribute.
- Group values and stress-shock keys are compared as ``str(value)``.
- ``tracking_error`` and active kinds with no benchmark use ``b = 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import cvxpy as cp
import numpy as np

__all__ = [
    "BREACH_TOL",
    "MissingAttributeError",
    "Row",
    "Verdict",
    "effective_policies",
    "excess",
    "optimum",
    "optimum_weights",
    "portfolio",
    "rows",
    "verdict",
    "weights",
]

BREACH_TOL = 1e-9
"""A row is breached when its excess over the limit exceeds this (SPEC section 5)."""

ALWAYS_ACTIVE = frozenset(
    {
        "turnover.max",
        "trade_limit.max_weight_change",
        "trade_limit.max_adv_fraction",
        "restricted.no_trade",
    }
)
"""Violation types whose breaches are always active."""

_INSTRUMENT_FIELDS = frozenset(
    {"symbol", "price", "sector", "issuer", "country", "asset_class", "currency", "adv", "lot_size"}
)
_SKIP = object()


class MissingAttributeError(ValueError):
    """An instrument lacks an attribute a constraint reads and ``missing`` is ``"error"``."""


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Row:
    """One constraint row evaluated at some weights.

    Attributes
    ----------
    policy_name, enforcement_level : str
        The policy the row belongs to.
    violation_type : str
        ``<kind>.<bound>``, e.g. ``"weight_bounds.max"``.
    subject : str or None
        Symbol, group value or stress scenario name; None for portfolio-wide rows.
    value : float
        The row's quantity at the weights it was evaluated at.
    limit : float
        The bound (``w0_i`` for ``no_buy`` / ``no_sell``).
    sense : str
        ``"le"`` (value <= limit) or ``"ge"`` (value >= limit).
    always_active : bool
        Turnover, trade limits and ``no_trade``: breaches are always active.
    """

    policy_name: str
    enforcement_level: str
    violation_type: str
    subject: str | None
    value: float
    limit: float
    sense: str
    always_active: bool

    @property
    def excess(self) -> float:
        """How far the value is past the limit (negative when within)."""
        return excess(self.value, self.limit, self.sense)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """(policy_name, violation_type, subject)."""
        return (self.policy_name, self.violation_type, self.subject)


@dataclass
class Verdict:
    """The SPEC section 5 verdict on some post-trade weights.

    Attributes
    ----------
    is_compliant : bool
        False iff a strict policy has an active breach (any breach with ``cure_passive``).
    breaches : set of tuple
        ``(policy_name, violation_type, subject, "active" | "passive")`` per breached row.
    pairs : list of tuple of Row
        Every row as ``(pre_trade_row, post_trade_row)``, for debugging.
    """

    is_compliant: bool
    breaches: set[tuple[str, str, str | None, str]]
    pairs: list[tuple[Row, Row]] = field(default_factory=list)


@dataclass(frozen=True)
class _Spec:
    """A row before evaluation: ``fn(ops, w)`` gives its value."""

    policy_name: str
    enforcement_level: str
    violation_type: str
    subject: str | None
    limit: float
    sense: str
    fn: Callable[[Any, Mapping[str, Any]], Any]

    @property
    def always_active(self) -> bool:
        return self.violation_type in ALWAYS_ACTIVE

    def row(self, ops: Any, w: Mapping[str, Any]) -> Row:
        return Row(
            self.policy_name,
            self.enforcement_level,
            self.violation_type,
            self.subject,
            float(self.fn(ops, w)),
            float(self.limit),
            self.sense,
            self.always_active,
        )


@dataclass
class Portfolio:
    """SPEC section 2 arithmetic of one request.

    Attributes
    ----------
    symbols : list of str
        ``V``, sorted.
    w0, w_hat : dict
        Pre-trade and proposed post-trade weights over ``V``.
    nav : float
        ``cash + sum_{i in V} q_i p_i``.
    held, traded : dict
        Signed position quantity and signed net traded quantity per symbol of ``V``.
    instruments : dict
        Instrument dicts by symbol (every instrument of the request).
    benchmark : dict
        Benchmark weights (empty when absent).
    """

    symbols: list[str]
    w0: dict[str, float]
    w_hat: dict[str, float]
    nav: float
    held: dict[str, float]
    traded: dict[str, float]
    prices: dict[str, float]
    instruments: dict[str, dict]
    benchmark: dict[str, float]
    risk_model: dict | None
    scenarios: dict | None


def excess(value: float, limit: float, sense: str) -> float:
    """``value - limit`` for ``"le"`` rows, ``limit - value`` for ``"ge"`` rows."""
    return value - limit if sense == "le" else limit - value


# --------------------------------------------------------------------------- algebras


class _NumOps:
    """Numeric evaluation of row quantities."""

    @staticmethod
    def abs(x: float) -> float:
        return abs(float(x))

    @staticmethod
    def sum_largest(xs: Sequence[float], k: int) -> float:
        return float(sum(sorted((float(x) for x in xs), reverse=True)[:k]))

    @staticmethod
    def norm_sigma(sigma: np.ndarray, xs: Sequence[float]) -> float:
        v = np.asarray([float(x) for x in xs])
        return math.sqrt(max(float(v @ sigma @ v), 0.0)) if len(v) else 0.0

    @staticmethod
    def cvar(losses: Sequence[float], beta: float) -> float:
        """Exact Rockafellar-Uryasev CVaR over equally likely losses.

        ``F(z) = z + sum_s (L_s - z)+ / (N (1 - beta))`` is convex and piecewise linear with
        breakpoints at the losses, decreasing left of them and increasing right of them, so
        its minimum is attained at one of the losses.
        """
        ls = [float(x) for x in losses]
        n = len(ls)
        return min(z + sum(max(x - z, 0.0) for x in ls) / (n * (1.0 - beta)) for z in ls)


def _stack(xs: Sequence[Any]) -> cp.Expression:
    return cp.hstack([x if isinstance(x, cp.Expression) else cp.Constant(float(x)) for x in xs])


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """``M`` with ``M.T @ M == sigma`` (eigenvalues clipped at 0)."""
    lam, u = np.linalg.eigh((sigma + sigma.T) / 2)
    return np.diag(np.sqrt(np.clip(lam, 0.0, None))) @ u.T


class _CvxOps:
    """cvxpy expressions of row quantities (convex for "le" rows, affine for "ge" rows)."""

    @staticmethod
    def abs(x: Any) -> Any:
        return cp.abs(x) if isinstance(x, cp.Expression) else abs(float(x))

    @staticmethod
    def sum_largest(xs: Sequence[Any], k: int) -> Any:
        if not xs:
            return 0.0
        return cp.sum_largest(_stack(xs), min(k, len(xs)))

    @staticmethod
    def norm_sigma(sigma: np.ndarray, xs: Sequence[Any]) -> Any:
        if not xs:
            return 0.0
        return cp.norm(_psd_factor(sigma) @ _stack(xs), 2)

    @staticmethod
    def cvar(losses: Sequence[Any], beta: float) -> Any:
        """RU upper bound with a fresh ``z``: valid in ``<=`` constraints only."""
        z = cp.Variable()
        return z + cp.sum(cp.pos(_stack(losses) - z)) / (len(losses) * (1.0 - beta))


NUM = _NumOps()
CVX = _CvxOps()


# --------------------------------------------------------------------------- section 2


def _net_trades(request: dict) -> tuple[dict[str, float], set[str]]:
    net: dict[str, float] = {}
    for t in request["decision"].get("trades") or []:
        side = str(getattr(t["side"], "value", t["side"]))
        sign = 1.0 if side == "BUY" else -1.0
        if side not in ("BUY", "SELL"):
            raise ValueError(f"trade side {side!r}")
        net[t["symbol"]] = net.get(t["symbol"], 0.0) + sign * float(t["quantity"])
    return net, set(net)


def portfolio(request: dict) -> Portfolio:
    """Build the SPEC section 2 arithmetic of a request.

    Raises
    ------
    ValueError
        NAV <= 0, a missing price or a non-finite number.
    """
    state = request["portfolio_state"]
    instruments = {inst["symbol"]: inst for inst in state.get("instruments") or []}
    held: dict[str, float] = {}
    for pos in state.get("positions") or []:
        held[pos["symbol"]] = held.get(pos["symbol"], 0.0) + float(pos["quantity"])
    net, traded_names = _net_trades(request)
    symbols = sorted({s for s, q in held.items() if q != 0.0} | traded_names)
    prices: dict[str, float] = {}
    for s in symbols:
        if s not in instruments or instruments[s].get("price") is None:
            raise ValueError(f"portfolio_state.instruments: no price for {s}")
        p = float(instruments[s]["price"])
        if not math.isfinite(p) or p <= 0:
            raise ValueError(f"portfolio_state.instruments.{s}.price must be finite and > 0")
        prices[s] = p
    cash = float(state["cash"])
    nav = cash + sum(held.get(s, 0.0) * prices[s] for s in symbols)
    if not math.isfinite(nav) or nav <= 0:
        raise ValueError(f"portfolio_state: NAV {nav} must be > 0")
    w0 = {s: held.get(s, 0.0) * prices[s] / nav for s in symbols}
    w_hat = {s: (held.get(s, 0.0) + net.get(s, 0.0)) * prices[s] / nav for s in symbols}
    return Portfolio(
        symbols=symbols,
        w0=w0,
        w_hat=w_hat,
        nav=nav,
        held={s: held.get(s, 0.0) for s in symbols},
        traded={s: net.get(s, 0.0) for s in symbols},
        prices=prices,
        instruments=instruments,
        benchmark={k: float(v) for k, v in (state.get("benchmark") or {}).items()},
        risk_model=state.get("risk_model"),
        scenarios=state.get("scenarios"),
    )


def weights(request: dict) -> tuple[list[str], dict[str, float], dict[str, float], float]:
    """``V`` (sorted), pre-trade ``w0``, proposed ``w_hat`` (dicts over ``V``) and NAV."""
    pf = portfolio(request)
    return pf.symbols, pf.w0, pf.w_hat, pf.nav


# --------------------------------------------------------------------------- section 4


def effective_policies(request: dict, policies: list[dict]) -> list[dict]:
    """The policies that apply to the request, in their given order.

    The request's inline ``policies`` (when not None) replace ``policies``. Kept: enabled
    policies whose ``scope.portfolios`` holds ``"*"`` or the decision's portfolio id, then
    restricted to ``applicable_policies`` when that is a non-empty list.
    """
    if request.get("policies") is not None:
        policies = request["policies"]
    pid = request["decision"]["portfolio_id"]
    names = request.get("applicable_policies") or None
    out = []
    for p in policies:
        if not p.get("enabled", True):
            continue
        scope = (p.get("scope") or {}).get("portfolios") or ["*"]
        if "*" not in scope and pid not in scope:
            continue
        if names is not None and p["policy_name"] not in names:
            continue
        if p.get("when"):
            raise ValueError(f"policy {p['policy_name']}: conditions are not supported")
        out.append(p)
    return out


def _raw_attr(inst: dict | None, name: str) -> Any:
    if inst is None:
        return None
    if name in _INSTRUMENT_FIELDS:
        return inst.get(name)
    return (inst.get("attributes") or {}).get(name)


def _attr(pf: Portfolio, c: dict, policy: str, sym: str, name: str) -> Any:
    """The attribute's value, ``_SKIP`` (missing="ignore"), or MissingAttributeError."""
    v = _raw_attr(pf.instruments.get(sym), name)
    if v is not None:
        return v
    missing = c.get("missing") or "error"
    if missing == "ignore":
        return _SKIP
    if isinstance(missing, Mapping):
        return missing["default"]
    raise MissingAttributeError(f"policy {policy}: instrument {sym} lacks attribute {name}")


def _w(w: Mapping[str, Any], s: str) -> Any:
    return w.get(s, 0.0)


def _bound(c: dict, override: dict | None, key: str) -> float | None:
    if override is not None and override.get(key) is not None:
        return float(override[key])
    return None if c.get(key) is None else float(c[key])


def _minmax(
    kind: str, c: dict, subject: str | None, fn: Callable, override: dict | None = None
) -> list[tuple]:
    out = []
    hi, lo = _bound(c, override, "max"), _bound(c, override, "min")
    if hi is not None:
        out.append((f"{kind}.max", subject, hi, "le", fn))
    if lo is not None:
        out.append((f"{kind}.min", subject, lo, "ge", fn))
    return out


def _select(pf: Portfolio, c: dict, policy: str) -> list[str]:
    """Symbols of ``V`` picked by ``symbols`` or ``where`` (all attributes must match)."""
    if c.get("symbols") is not None:
        return [s for s in pf.symbols if s in set(c["symbols"])]
    picked = []
    for s in pf.symbols:
        ok = True
        for attr, allowed in c["where"].items():
            v = _attr(pf, c, policy, s, attr)
            if v is _SKIP or v not in list(allowed):
                ok = False
                break
        if ok:
            picked.append(s)
    return picked


def _sigma(pf: Portfolio, syms: list[str], policy: str) -> np.ndarray:
    rm = pf.risk_model
    if rm is None:
        raise ValueError(f"policy {policy}: the request has no risk model")
    if rm.get("covariance") is not None:
        cov = rm["covariance"]
        idx = {s: i for i, s in enumerate(cov["symbols"])}
        for s in syms:
            if s not in idx:
                raise ValueError(f"policy {policy}: risk model lacks {s}")
        m = np.asarray(cov["matrix"], dtype=float)
        return np.array([[m[idx[a], idx[b]] for b in syms] for a in syms]).reshape(
            len(syms), len(syms)
        )
    loadings = rm["factor_loadings"]
    for s in syms:
        if s not in loadings:
            raise ValueError(f"policy {policy}: risk model lacks {s}")
    f = np.asarray(rm["factor_covariance"], dtype=float)
    b = np.asarray([loadings[s] for s in syms], dtype=float).reshape(len(syms), f.shape[0])
    spec = rm.get("specific_variance") or {}
    return b @ f @ b.T + np.diag([float(spec.get(s, 0.0)) for s in syms])


def _constraint_specs(pf: Portfolio, c: dict, policy: str) -> list[tuple]:
    """Rows of one constraint as ``(violation_type, subject, limit, sense, fn)``."""
    kind = c["kind"]
    V = pf.symbols
    bench = pf.benchmark

    if kind == "weight_bounds":
        per = c.get("per_symbol") or {}
        chosen = set(V) if c.get("symbols") is None else set(c["symbols"]) & set(V)
        chosen |= set(per) & set(V)
        out = []
        for s in sorted(chosen):
            out += _minmax(kind, c, s, lambda ops, w, s=s: _w(w, s), per.get(s))
        return out

    if kind == "group_limit":
        attr, active = c["attribute"], bool(c.get("active"))
        gross = c.get("measure", "net") == "gross"
        universe = sorted(set(V) | set(bench)) if active else list(V)
        groups: dict[str, list[str]] = {}
        for s in universe:
            v = _attr(pf, c, policy, s, attr)
            if v is not _SKIP:
                groups.setdefault(str(v), []).append(s)
        per = c.get("per_group") or {}
        out = []
        for g in sorted(groups):
            members = groups[g]

            def fn(ops: Any, w: Mapping[str, Any], members: list[str] = members) -> Any:
                terms = [_w(w, s) - (bench.get(s, 0.0) if active else 0.0) for s in members]
                return sum(ops.abs(x) for x in terms) if gross else sum(terms)

            out += _minmax(kind, c, g, fn, per.get(g))
        return out

    if kind == "gross_exposure":
        return [
            (
                "gross_exposure.max",
                None,
                float(c["max"]),
                "le",
                lambda ops, w: sum(ops.abs(_w(w, s)) for s in V),
            )
        ]

    if kind == "net_exposure":
        return _minmax(kind, c, None, lambda ops, w: sum(_w(w, s) for s in V))

    if kind == "cash":
        return _minmax(kind, c, None, lambda ops, w: 1.0 - sum(_w(w, s) for s in V))

    if kind == "exposure":
        attr, active = c["attribute"], bool(c.get("active"))
        universe = sorted(set(V) | set(bench)) if active else list(V)
        xs = {}
        for s in universe:
            v = _attr(pf, c, policy, s, attr)
            if v is _SKIP:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError(f"policy {policy}: {attr} of {s} is not a number")
            xs[s] = float(v)

        def expo(ops: Any, w: Mapping[str, Any]) -> Any:
            return sum(
                (_w(w, s) - (bench.get(s, 0.0) if active else 0.0)) * x for s, x in xs.items()
            )

        return _minmax(kind, c, None, expo)

    if kind == "concentration":
        k = int(c["top_k"])
        return [
            (
                "concentration.max",
                None,
                float(c["max"]),
                "le",
                lambda ops, w: ops.sum_largest([ops.abs(_w(w, s)) for s in V], k),
            )
        ]

    if kind == "turnover":
        return [
            (
                "turnover.max",
                None,
                float(c["max"]),
                "le",
                lambda ops, w: sum(ops.abs(_w(w, s) - pf.w0[s]) for s in V),
            )
        ]

    if kind == "trade_limit":
        chosen = V if c.get("symbols") is None else [s for s in V if s in set(c["symbols"])]
        out = []
        for s in chosen:

            def change(ops: Any, w: Mapping[str, Any], s: str = s) -> Any:
                return ops.abs(_w(w, s) - pf.w0[s])

            if c.get("max_weight_change") is not None:
                out.append(
                    (
                        "trade_limit.max_weight_change",
                        s,
                        float(c["max_weight_change"]),
                        "le",
                        change,
                    )
                )
            if c.get("max_adv_fraction") is not None:
                adv = _attr(pf, c, policy, s, "adv")
                if adv is _SKIP:
                    continue
                limit = float(c["max_adv_fraction"]) * float(adv) * pf.prices[s] / pf.nav
                out.append(("trade_limit.max_adv_fraction", s, limit, "le", change))
        return out

    if kind == "restricted":
        mode = c.get("mode") or "no_holding"
        out = []
        for s in _select(pf, c, policy):
            if mode == "no_holding":
                out.append(
                    ("restricted.no_holding", s, 0.0, "le", lambda ops, w, s=s: ops.abs(_w(w, s)))
                )
            elif mode == "no_buy":
                out.append(("restricted.no_buy", s, pf.w0[s], "le", lambda ops, w, s=s: _w(w, s)))
            elif mode == "no_sell":
                out.append(("restricted.no_sell", s, pf.w0[s], "ge", lambda ops, w, s=s: _w(w, s)))
            elif mode == "no_short":
                out.append(("restricted.no_short", s, 0.0, "ge", lambda ops, w, s=s: _w(w, s)))
            elif mode == "no_trade":
                out.append(
                    (
                        "restricted.no_trade",
                        s,
                        0.0,
                        "le",
                        lambda ops, w, s=s: ops.abs(_w(w, s) - pf.w0[s]),
                    )
                )
            else:
                raise ValueError(f"policy {policy}: unknown restricted mode {mode}")
        return out

    if kind == "allowed_universe":
        allowed = set(_select(pf, c, policy))
        return [
            ("allowed_universe.outside", s, 0.0, "le", lambda ops, w, s=s: ops.abs(_w(w, s)))
            for s in V
            if s not in allowed
        ]

    if kind in ("volatility", "var"):
        sigma = _sigma(pf, V, policy)
        scale = 1.0
        if kind == "var":
            h = float(c.get("horizon_days") or 1.0)
            scale = NormalDist().inv_cdf(float(c["confidence"])) * math.sqrt(h / 252.0)
        return [
            (
                f"{kind}.max",
                None,
                float(c["max"]),
                "le",
                lambda ops, w: scale * ops.norm_sigma(sigma, [_w(w, s) for s in V]),
            )
        ]

    if kind == "tracking_error":
        universe = sorted(set(V) | set(bench))
        sigma = _sigma(pf, universe, policy)
        return [
            (
                "tracking_error.max",
                None,
                float(c["max"]),
                "le",
                lambda ops, w: ops.norm_sigma(
                    sigma, [_w(w, s) - bench.get(s, 0.0) for s in universe]
                ),
            )
        ]

    if kind == "cvar":
        sc = pf.scenarios
        if sc is None:
            raise ValueError(f"policy {policy}: the request has no scenarios")
        idx = {s: j for j, s in enumerate(sc["symbols"])}
        for s in V:
            if s not in idx:
                raise ValueError(f"policy {policy}: scenarios lack {s}")
        beta = float(c["confidence"])
        returns = [[float(r[idx[s]]) for s in V] for r in sc["returns"]]

        def cvar(ops: Any, w: Mapping[str, Any]) -> Any:
            losses = [-sum(r * _w(w, s) for r, s in zip(row, V, strict=True)) for row in returns]
            return ops.cvar(losses, beta)

        return [("cvar.max", None, float(c["max"]), "le", cvar)]

    if kind == "stress":
        out = []
        for name in sorted(c["scenarios"]):
            scen = c["scenarios"][name]
            by = scen.get("by") or "symbol"
            shocks, default = scen["shocks"], float(scen.get("default") or 0.0)
            coef = {}
            for s in V:
                key = s if by == "symbol" else _attr(pf, c, policy, s, by)
                if key is _SKIP:
                    continue
                coef[s] = float(shocks.get(str(key), default))

            def loss(ops: Any, w: Mapping[str, Any], coef: dict = coef) -> Any:
                return -sum(_w(w, s) * x for s, x in coef.items())

            out.append(("stress.max_loss", name, float(c["max_loss"]), "le", loss))
        return out

    raise ValueError(f"policy {policy}: unsupported constraint kind {kind!r}")


def _specs(pf: Portfolio, request: dict, policies: list[dict]) -> list[_Spec]:
    out = []
    for p in effective_policies(request, policies):
        level = str(
            getattr(p.get("enforcement_level"), "value", None)
            or p.get("enforcement_level")
            or "strict"
        )
        for c in p["rules"]["constraints"]:
            for vt, subject, limit, sense, fn in _constraint_specs(pf, c, p["policy_name"]):
                out.append(_Spec(p["policy_name"], level, vt, subject, limit, sense, fn))
    return out


def rows(request: dict, policies: list[dict], w: Mapping[str, float]) -> list[Row]:
    """Every row of the effective policies evaluated at post-trade weights ``w``.

    Parameters
    ----------
    request : dict
        A PolicyValidationRequest as a JSON-like dict.
    policies : list of dict
        PolicyDefinition dicts (replaced by the request's inline ``policies`` if given).
    w : mapping
        Weights over ``V``; symbols outside ``V`` weigh 0.

    Returns
    -------
    list of Row
        In policy order, then constraint order, then subject order.
    """
    pf = portfolio(request)
    return [s.row(NUM, w) for s in _specs(pf, request, policies)]


# --------------------------------------------------------------------------- section 5


def verdict(
    request: dict,
    policies: list[dict],
    w_post: Mapping[str, float] | None = None,
    cure_passive: bool | None = None,
) -> Verdict:
    """Breaches and compliance of post-trade weights (SPEC section 5).

    Parameters
    ----------
    request, policies
        As for :func:`rows`.
    w_post : mapping, optional
        Post-trade weights over ``V``; defaults to the proposal ``w_hat``.
    cure_passive : bool, optional
        Defaults to ``request["cure_passive"]`` (False when absent).
    """
    pf = portfolio(request)
    if w_post is None:
        w_post = pf.w_hat
    if cure_passive is None:
        cure_passive = bool(request.get("cure_passive", False))
    breaches: set[tuple[str, str, str | None, str]] = set()
    pairs = []
    compliant = True
    for spec in _specs(pf, request, policies):
        pre, post = spec.row(NUM, pf.w0), spec.row(NUM, w_post)
        pairs.append((pre, post))
        if post.excess <= BREACH_TOL:
            continue
        active = spec.always_active or post.excess > pre.excess + BREACH_TOL
        breaches.add((*spec_key(spec), "active" if active else "passive"))
        if spec.enforcement_level == "strict" and (active or cure_passive):
            compliant = False
    return Verdict(is_compliant=compliant, breaches=breaches, pairs=pairs)


def spec_key(spec: _Spec | Row) -> tuple[str, str, str | None]:
    """(policy_name, violation_type, subject) of a row."""
    return (spec.policy_name, spec.violation_type, spec.subject)


# --------------------------------------------------------------------------- section 6

CLARABEL_OPTS = {
    "tol_gap_abs": 1e-10,
    "tol_gap_rel": 1e-10,
    "tol_feas": 1e-10,
    "tol_ktratio": 1e-8,
    "max_iter": 500,
}


def optimum(
    request: dict, policies: list[dict], method: str, cure_passive: bool | None = None
) -> float | None:
    """Optimal distance ``sum_i (w_i - w_hat_i)^2`` of SPEC section 6, or None if infeasible.

    Only strict policies constrain. A row breached pre-trade is constrained to its pre-trade
    value ("no worse"), every other row to its limit; with ``cure_passive`` every row to its
    limit. Lot sizes are ignored (continuous optimum).

    Parameters
    ----------
    request, policies
        As for :func:`rows`.
    method : {"scale_back", "project"}
        ``scale_back``: ``w_i = w0_i + a_i (w_hat_i - w0_i)``, ``a_i`` in [0, 1] per symbol
        with a non-zero net trade, other symbols fixed at ``w0``. ``project``: any ``w``
        over ``V``.
    cure_passive : bool, optional
        Defaults to ``request["cure_passive"]``.
    """
    solved = _solve(request, policies, method, cure_passive)
    return None if solved is None else solved[0]


def optimum_weights(
    request: dict, policies: list[dict], method: str, cure_passive: bool | None = None
) -> dict[str, float] | None:
    """The optimal post-trade weights of :func:`optimum` over ``V``, or None if infeasible."""
    solved = _solve(request, policies, method, cure_passive)
    return None if solved is None else solved[1]


def _solve(
    request: dict, policies: list[dict], method: str, cure_passive: bool | None
) -> tuple[float, dict[str, float]] | None:
    pf = portfolio(request)
    if cure_passive is None:
        cure_passive = bool(request.get("cure_passive", False))
    V = pf.symbols
    cons: list[Any] = []
    if method == "project":
        x = cp.Variable(len(V))
        w: dict[str, Any] = {s: x[i] for i, s in enumerate(V)}
    elif method == "scale_back":
        moving = [s for s in V if pf.traded[s] != 0.0]
        w = dict(pf.w0)
        if moving:
            a = cp.Variable(len(moving))
            cons += [a >= 0, a <= 1]
            for j, s in enumerate(moving):
                w[s] = pf.w0[s] + a[j] * (pf.w_hat[s] - pf.w0[s])
    else:
        raise ValueError(f"unknown method {method!r}")

    for spec in _specs(pf, request, policies):
        if spec.enforcement_level != "strict":
            continue
        pre = float(spec.fn(NUM, pf.w0))
        bound = spec.limit
        if not cure_passive and excess(pre, spec.limit, spec.sense) > BREACH_TOL:
            bound = pre
        expr = spec.fn(CVX, w)
        if not isinstance(expr, cp.Expression) or not expr.variables():
            # the row does not move: every symbol it reads is fixed at w0
            if excess(pre, bound, spec.sense) > BREACH_TOL:
                return None
            continue
        cons.append(expr <= bound if spec.sense == "le" else expr >= bound)

    diffs = [w[s] - pf.w_hat[s] for s in V]
    objective = cp.sum_squares(_stack(diffs)) if diffs else cp.Constant(0.0)
    prob = cp.Problem(cp.Minimize(objective), cons)
    if not prob.is_dcp():
        raise ValueError("the reference optimum needs convex rows (e.g. no gross-measure min)")
    # Clarabel first; an inaccurate or undecided answer is settled by ECOS. An "optimal"
    # point must also satisfy the rows (inaccurate solvers may return a far-off point).
    for solver, options in ((cp.CLARABEL, CLARABEL_OPTS), (cp.ECOS, {})):
        with warnings.catch_warnings():  # the status is checked below
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            try:
                prob.solve(solver=solver, **options)
            except cp.error.SolverError:
                continue
        if prob.status == cp.INFEASIBLE:
            return None
        if prob.status == cp.OPTIMAL or (
            prob.status == cp.OPTIMAL_INACCURATE and _satisfies(prob, 1e-7)
        ):
            return max(float(prob.value), 0.0), {s: _value(w[s]) for s in V}
    if prob.status == cp.INFEASIBLE_INACCURATE:
        return None
    raise RuntimeError(f"reference optimum: solver status {prob.status}")


def _satisfies(prob: cp.Problem, tolerance: float) -> bool:
    """Every constraint of a solved problem holds within `tolerance`."""
    return all(
        float(np.max(np.atleast_1d(c.violation()), initial=0.0)) <= tolerance
        for c in prob.constraints
    )


def _value(x: Any) -> float:
    return float(x.value) if isinstance(x, cp.Expression) else float(x)
