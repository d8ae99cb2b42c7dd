"""Random validation cases: a seeded plain generator and hypothesis strategies built on it.

``random_case(rng)`` returns ``(request, policies)``: a PolicyValidationRequest dict and a
list of PolicyDefinition dicts (JSON-like, valid against :mod:`models`). Cases have 5-30
names in ``V``, long-only or long/short books, 2-6 policies over every constraint kind,
with limits placed from the pre-trade and proposed values so that some rows are breached
pre-trade (passive), some by the trades (active) and some not at all. With ``cure_passive``
some cases carry a pair of strict policies that conflict once passive breaches must be
cured (e.g. a net-exposure min above the max that a cash min forces).

The hypothesis strategy :func:`cases` draws a seed and calls :func:`random_case`, so a
failure reproduces from the seed hypothesis prints (but does not shrink).

The structural strategies below draw the parts of a problem themselves (names, rows,
bounds, targets, moves), so that hypothesis shrinks a failure to a small example: fewer
names, fewer rows, round numbers. :func:`separable_problems` draws problems for the
separable QP solver, :func:`synthetic_rows` row sets for the violation tracker and
:func:`moves` one-weight moves to walk it through. They return plain data (numbers,
lists, NumPy arrays) and never import the engine; the tests build the engine's objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.reference import spec

__all__ = [
    "KINDS",
    "ConicProblem",
    "RISK_KINDS",
    "Move",
    "SeparableProblem",
    "SyntheticRows",
    "cases",
    "conic_problems",
    "moves",
    "random_case",
    "seeds",
    "many_coupling_problems",
    "separable_problems",
    "synthetic_rows",
    "validate_case",
]

KINDS = (
    "weight_bounds",
    "group_limit",
    "gross_exposure",
    "net_exposure",
    "cash",
    "exposure",
    "concentration",
    "turnover",
    "trade_limit",
    "restricted",
    "allowed_universe",
    "volatility",
    "tracking_error",
    "var",
    "cvar",
    "stress",
)
"""Every constraint kind the generator draws."""

RISK_KINDS = frozenset({"volatility", "tracking_error", "var"})
"""Kinds that need a risk model."""

_POLICY_TYPE = {
    "weight_bounds": "POSITION_LIMIT",
    "concentration": "POSITION_LIMIT",
    "gross_exposure": "POSITION_LIMIT",
    "net_exposure": "POSITION_LIMIT",
    "cash": "INVESTMENT_MANDATE",
    "group_limit": "SECTOR_LIMIT",
    "exposure": "RISK_LIMIT",
    "turnover": "REGULATORY",
    "trade_limit": "REGULATORY",
    "restricted": "REGULATORY",
    "allowed_universe": "INVESTMENT_MANDATE",
    "volatility": "RISK_LIMIT",
    "tracking_error": "RISK_LIMIT",
    "var": "RISK_LIMIT",
    "cvar": "RISK_LIMIT",
    "stress": "RISK_LIMIT",
}
_SECTORS = (
    "Information Technology",
    "Financials",
    "Health Care",
    "Energy",
    "Industrials",
    "Consumer Staples",
    "Utilities",
)
_COUNTRIES = ("US", "GB", "DE", "JP", "FR")
_LIQUIDITY = ("highly_liquid", "moderately_liquid", "illiquid")
_OUTCOMES = ("pass", "passive", "active", "tight")
_ENFORCEMENT = ("strict", "advisory", "monitor")


# --------------------------------------------------------------------------- helpers


def _choice(
    rng: np.random.Generator, items: Any, size: int | None = None, replace: bool = False
) -> Any:
    items = list(items)
    if size is None:
        return items[int(rng.integers(len(items)))]
    idx = rng.choice(len(items), size=size, replace=replace)
    return [items[int(i)] for i in idx]


def _round(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits))


def _avoid(limit: float, values: list[float], gap: float = 2e-6) -> float:
    """Move ``limit`` off every value by more than ``gap`` (no knife-edge rows)."""
    for _ in range(50):
        close = [v for v in values if abs(limit - v) <= gap]
        if not close:
            return limit
        limit = _round(limit + 5 * gap)
    return limit


def _pick_upper(rng: np.random.Generator, pairs: list[tuple[float, float]], outcome: str) -> float:
    """A ``max`` for rows with (pre, post) values aiming at an outcome.

    ``pass``: above every value. ``active``: between pre and post of a row the trade grows.
    ``passive``: below the post value of a row the trade does not grow. ``tight``: a
    quantile of all values.
    """
    values = [v for pair in pairs for v in pair]
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.01 * max(abs(hi), abs(lo)), 1e-3)
    if outcome == "active":
        grown = [(a, b) for a, b in pairs if b > a + 1e-5]
        if grown:
            a, b = _choice(rng, grown)
            return _avoid(_round(a + rng.uniform(0.2, 0.8) * (b - a)), values)
        outcome = "tight"
    if outcome == "passive":
        kept = [(a, b) for a, b in pairs if b <= a + 1e-12 and abs(b) > 1e-6]
        if kept:
            a, b = _choice(rng, kept)
            return _avoid(_round(b - rng.uniform(0.05, 0.4) * max(abs(b), 0.1 * span)), values)
        outcome = "tight"
    if outcome == "pass":
        return _avoid(_round(hi + rng.uniform(0.02, 0.3) * span + 1e-4), values)
    return _avoid(_round(float(np.quantile(values, rng.uniform(0.3, 0.9)))), values)


def _pick_lower(rng: np.random.Generator, pairs: list[tuple[float, float]], outcome: str) -> float:
    """A ``min``: :func:`_pick_upper` on the negated values."""
    return -_pick_upper(rng, [(-a, -b) for a, b in pairs], outcome)


def _outcome(rng: np.random.Generator) -> str:
    return _choice(rng, _OUTCOMES)


def _probe(pf: spec.Portfolio, c: dict) -> dict[tuple[str, str | None], tuple[float, float]]:
    """(violation_type, subject) -> (pre, post) values of a constraint's rows."""
    out = {}
    for vt, subject, _limit, _sense, fn in spec._constraint_specs(pf, c, "probe"):
        out[(vt, subject)] = (float(fn(spec.NUM, pf.w0)), float(fn(spec.NUM, pf.w_hat)))
    return out


def _pairs(probe: dict, vt: str) -> list[tuple[float, float]]:
    return [v for (t, _s), v in probe.items() if t == vt]


def _bounds(
    rng: np.random.Generator,
    probe: dict,
    kind: str,
    *,
    want_max: bool,
    want_min: bool,
    nonneg: bool = False,
) -> dict[str, float]:
    """Pick ``min`` / ``max`` for a bounded kind from probed values; keeps ``min <= max``."""
    out: dict[str, float] = {}
    if want_max:
        hi = _pick_upper(rng, _pairs(probe, f"{kind}.max"), _outcome(rng))
        out["max"] = max(hi, 0.0) if nonneg else hi
    if want_min:
        lo = _pick_lower(rng, _pairs(probe, f"{kind}.min"), _outcome(rng))
        if "max" in out and lo > out["max"]:
            lo = _round(out["max"] - rng.uniform(0.0, 0.05))
        out["min"] = lo
    return out


# --------------------------------------------------------------------------- portfolio


def _instruments(rng: np.random.Generator, names: list[str], lot_mode: str) -> list[dict]:
    sectors = _choice(rng, _SECTORS, size=int(rng.integers(3, len(_SECTORS) + 1)))
    countries = _choice(rng, _COUNTRIES, size=int(rng.integers(2, len(_COUNTRIES) + 1)))
    out = []
    for i, s in enumerate(names):
        if lot_mode == "fractional":
            lot = 0.0
        elif lot_mode == "one":
            lot = 1.0
        else:
            lot = float(_choice(rng, (1.0, 100.0)))
        issuer = f"Issuer {s}"
        if i > 0 and rng.random() < 0.15:
            issuer = f"Issuer {names[i - 1]}"  # a second line of the same issuer
        attrs: dict[str, Any] = {
            "beta": _round(rng.uniform(0.3, 1.8), 3),
            "liquidity": _choice(rng, _LIQUIDITY),
        }
        if rng.random() < 0.85:
            attrs["esg"] = _round(rng.uniform(1.0, 10.0), 2)
        out.append(
            {
                "symbol": s,
                "price": _round(math.exp(rng.uniform(math.log(5.0), math.log(500.0))), 2),
                "sector": _choice(rng, sectors),
                "issuer": issuer,
                "country": _choice(rng, countries),
                "asset_class": "equity",
                "currency": "USD",
                "adv": float(round(10 ** rng.uniform(4.0, 7.0))),
                "lot_size": lot,
                "attributes": attrs,
            }
        )
    return out


def _to_quantity(weight: float, nav: float, price: float, lot: float) -> float:
    q = weight * nav / price
    if lot > 0:
        lots = round(abs(q) / lot)
        return math.copysign(max(lots, 1) * lot, q)
    return _round(q, 4) or math.copysign(1e-4, q)


def _positions(
    rng: np.random.Generator, held: list[str], inst: dict[str, dict], nav: float, long_short: bool
) -> list[dict]:
    n = len(held)
    if long_short and n >= 3:
        n_short = int(rng.integers(1, max(2, n // 3) + 1))
        shorts = set(_choice(rng, held, size=n_short))
    else:
        shorts = set()
    longs = [s for s in held if s not in shorts]
    w = {}
    gross_long = rng.uniform(1.0, 1.4) if long_short else rng.uniform(0.85, 0.99)
    for s, x in zip(longs, rng.dirichlet(np.ones(len(longs))), strict=True):
        w[s] = gross_long * x
    if shorts:
        gross_short = rng.uniform(0.1, 0.5)
        for s, x in zip(sorted(shorts), rng.dirichlet(np.ones(len(shorts))), strict=True):
            w[s] = -gross_short * x
    return [
        {"symbol": s, "quantity": _to_quantity(w[s], nav, inst[s]["price"], inst[s]["lot_size"])}
        for s in held
    ]


def _trades(
    rng: np.random.Generator,
    held_q: dict[str, float],
    new: list[str],
    inst: dict[str, dict],
    nav: float,
    long_short: bool,
) -> list[dict]:
    held = sorted(held_q)
    n_held_traded = int(rng.integers(0 if new else 1, min(8, len(held)) + 1))
    traded_held = _choice(rng, held, size=n_held_traded) if n_held_traded else []
    deltas: dict[str, float] = {}  # signed quantity
    for s in new:
        side = -1.0 if long_short and rng.random() < 0.3 else 1.0
        dq = _to_quantity(
            side * rng.uniform(0.005, 0.06), nav, inst[s]["price"], inst[s]["lot_size"]
        )
        deltas[s] = dq
    for s in traded_held:
        q, p, lot = held_q[s], inst[s]["price"], inst[s]["lot_size"]
        action = _choice(
            rng, ("add", "trim", "close", "flip") if long_short else ("add", "add", "trim", "close")
        )
        if action == "add":
            dq = _to_quantity(math.copysign(rng.uniform(0.003, 0.05), q), nav, p, lot)
        elif action == "trim":
            dq = -q * rng.uniform(0.2, 0.8)
            dq = _to_quantity(dq * p / nav, nav, p, lot)
            if abs(dq) >= abs(q):
                dq = -q
        elif action == "close":
            dq = -q
        else:
            dq = -q + _to_quantity(-math.copysign(rng.uniform(0.005, 0.03), q), nav, p, lot)
        deltas[s] = dq
    trades = []
    for s, dq in deltas.items():
        if dq == 0:
            continue
        side = "BUY" if dq > 0 else "SELL"
        if rng.random() < 0.15:  # split into an oversized trade and a partial reversal
            back = abs(dq) * rng.uniform(0.1, 0.5)
            if inst[s]["lot_size"] > 0:
                back = max(1, round(back / inst[s]["lot_size"])) * inst[s]["lot_size"]
            else:
                back = _round(back, 4) or 1e-4
            other = "SELL" if side == "BUY" else "BUY"
            trades.append({"symbol": s, "side": side, "quantity": _round(abs(dq) + back, 4)})
            trades.append({"symbol": s, "side": other, "quantity": back})
        else:
            trades.append({"symbol": s, "side": side, "quantity": _round(abs(dq), 4)})
    order = rng.permutation(len(trades))
    return [trades[int(i)] for i in order]


def _risk_model(rng: np.random.Generator, names: list[str]) -> dict:
    k = int(rng.integers(2, 5))
    vols = rng.uniform(0.05, 0.25, size=k)
    corr = np.eye(k)
    if k > 1:
        a = rng.normal(size=(k, k)) * 0.3
        c = a @ a.T + np.eye(k)
        d = np.sqrt(np.diag(c))
        corr = c / np.outer(d, d)
    f = np.outer(vols, vols) * corr
    f = (f + f.T) / 2
    loadings = {s: [_round(x, 4) for x in rng.normal([1.0] + [0.0] * (k - 1), 0.5)] for s in names}
    spec_var = {s: _round(rng.uniform(0.01, 0.12) ** 2, 8) for s in names}
    if rng.random() < 0.25:  # the full-covariance form
        b = np.array([loadings[s] for s in names])
        sigma = b @ f @ b.T + np.diag([spec_var[s] for s in names])
        sigma = (sigma + sigma.T) / 2
        return {
            "covariance": {"symbols": list(names), "matrix": [[float(x) for x in r] for r in sigma]}
        }
    return {
        "factor_loadings": loadings,
        "factor_covariance": [[float(x) for x in r] for r in f],
        "specific_variance": spec_var,
    }


def _scenarios(rng: np.random.Generator, names: list[str]) -> dict:
    n_s = int(rng.integers(20, 61))
    market = rng.normal(0.0, 0.04, size=n_s) - 0.01 * (rng.random(n_s) < 0.2)
    betas = rng.uniform(0.5, 1.5, size=len(names))
    r = market[:, None] * betas[None, :] + rng.normal(0.0, 0.02, size=(n_s, len(names)))
    return {"symbols": list(names), "returns": [[_round(x, 6) for x in row] for row in r]}


# --------------------------------------------------------------------------- policies


def _constraint(
    rng: np.random.Generator, kind: str, pf: spec.Portfolio, long_short: bool, inst: dict[str, dict]
) -> dict:
    V = pf.symbols
    traded = [s for s in V if pf.traded[s] != 0]
    c: dict[str, Any] = {"kind": kind}
    if kind == "weight_bounds":
        want_min = rng.random() < (0.5 if long_short else 0.3)
        if rng.random() < 0.25:
            c["symbols"] = sorted(_choice(rng, V, size=int(rng.integers(1, min(6, len(V)) + 1))))
        probe = _probe(pf, {**c, "max": 0.0, "min": 0.0})
        c.update(_bounds(rng, probe, kind, want_max=True, want_min=want_min))
        if rng.random() < 0.25:
            per = {}
            for s in _choice(rng, V, size=min(2, len(V))):
                p = {(t, sub): v for (t, sub), v in probe.items() if sub == s}
                if not p:
                    p = _probe(pf, {"kind": kind, "symbols": [s], "max": 0.0, "min": 0.0})
                per[s] = _bounds(rng, p, kind, want_max=True, want_min="min" in c)
            c["per_symbol"] = per
        return c
    if kind == "group_limit":
        c["attribute"] = _choice(rng, ("sector", "sector", "country", "issuer", "liquidity"))
        if long_short and rng.random() < 0.3:
            c["measure"] = "gross"
        if pf.benchmark and rng.random() < 0.4:
            c["active"] = True
        probe = _probe(pf, {**c, "max": 0.0, "min": 0.0})
        want_min = c.get("measure") != "gross" and rng.random() < 0.35
        c.update(_bounds(rng, probe, kind, want_max=True, want_min=want_min))
        if rng.random() < 0.25:
            g = _choice(rng, sorted({sub for _t, sub in probe}))
            p = {(t, sub): v for (t, sub), v in probe.items() if sub == g}
            c["per_group"] = {g: _bounds(rng, p, kind, want_max=True, want_min="min" in c)}
        return c
    if kind == "gross_exposure":
        c.update(
            _bounds(
                rng, _probe(pf, {**c, "max": 0.0}), kind, want_max=True, want_min=False, nonneg=True
            )
        )
        return c
    if kind in ("net_exposure", "cash"):
        which = _choice(rng, ("max", "min", "both"))
        probe = _probe(pf, {**c, "max": 0.0, "min": 0.0})
        c.update(_bounds(rng, probe, kind, want_max=which != "min", want_min=which != "max"))
        return c
    if kind == "exposure":
        if rng.random() < 0.7:
            c["attribute"] = "beta"
        else:
            c["attribute"] = "esg"
            c["missing"] = "ignore" if rng.random() < 0.5 else {"default": 5.0}
        if pf.benchmark and rng.random() < 0.3:
            c["active"] = True
        which = _choice(rng, ("max", "min", "both"))
        probe = _probe(pf, {**c, "max": 0.0, "min": 0.0})
        c.update(_bounds(rng, probe, kind, want_max=which != "min", want_min=which != "max"))
        return c
    if kind == "concentration":
        c["top_k"] = int(rng.integers(1, 6))
    if kind == "var":
        c["confidence"] = float(_choice(rng, (0.95, 0.975, 0.99)))
        if rng.random() < 0.5:
            c["horizon_days"] = float(_choice(rng, (1.0, 5.0, 10.0)))
    if kind == "cvar":
        c["confidence"] = float(_choice(rng, (0.9, 0.95, 0.975)))
    if kind in ("concentration", "turnover", "volatility", "tracking_error", "var", "cvar"):
        c.update(
            _bounds(
                rng, _probe(pf, {**c, "max": 0.0}), kind, want_max=True, want_min=False, nonneg=True
            )
        )
        return c
    if kind == "trade_limit":
        if rng.random() < 0.2:
            c["symbols"] = sorted(_choice(rng, V, size=int(rng.integers(1, len(V) + 1))))
        which = _choice(rng, ("change", "adv", "both"))
        if which != "adv":
            probe = _probe(pf, {**c, "max_weight_change": 0.0})
            pairs = _pairs(probe, "trade_limit.max_weight_change")
            c["max_weight_change"] = max(_pick_upper(rng, pairs, _outcome(rng)), 0.0)
        if which != "change":
            chosen = V if "symbols" not in c else [s for s in V if s in c["symbols"]]
            ratios = [
                (0.0, abs(pf.w_hat[s] - pf.w0[s]) * pf.nav / (inst[s]["adv"] * pf.prices[s]))
                for s in chosen
            ]
            c["max_adv_fraction"] = max(_pick_upper(rng, ratios, _outcome(rng)), 0.0)
        return c
    if kind in ("restricted", "allowed_universe"):
        if kind == "restricted":
            c["mode"] = _choice(
                rng,
                ("no_holding", "no_buy", "no_sell", "no_short", "no_trade")
                if long_short
                else ("no_holding", "no_holding", "no_buy", "no_sell", "no_trade"),
            )
        if rng.random() < 0.3:
            attr = _choice(rng, ("sector", "country", "liquidity"))
            values = sorted({str(spec._raw_attr(inst[s], attr)) for s in V})
            n_pick = 1 if kind == "restricted" else max(1, len(values) - 1)
            key = attr
            c["where"] = {key: _choice(rng, values, size=min(n_pick, len(values)))}
        else:
            untraded = [s for s in V if s not in traded]
            others = [s for s in inst if s not in V]
            pool = _choice(rng, traded, size=min(len(traded), 2)) if traded else []
            pool += _choice(rng, untraded, size=min(len(untraded), 1)) if untraded else []
            pool += _choice(rng, others, size=min(len(others), 1)) if others else []
            if kind == "allowed_universe":
                drop = set(_choice(rng, V, size=int(rng.integers(0, min(3, len(V)) + 1))))
                pool = [s for s in V if s not in drop] + pool[-1:]
            n_keep = int(rng.integers(1, len(pool) + 1)) if kind == "restricted" else len(pool)
            c["symbols"] = sorted(set(_choice(rng, pool, size=n_keep))) or [V[0]]
        return c
    if kind == "stress":
        scen = {}
        for j in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:
                names = _choice(rng, V, size=min(len(V), int(rng.integers(1, 6))))
                scen[f"shock-{j}"] = {
                    "by": "symbol",
                    "shocks": {s: _round(rng.uniform(-0.5, 0.2), 4) for s in names},
                    "default": _round(rng.uniform(-0.1, 0.0), 4),
                }
            else:
                attr = _choice(rng, ("sector", "country"))
                values = sorted({str(spec._raw_attr(inst[s], attr)) for s in V})
                scen[f"{attr}-crash-{j}"] = {
                    "by": attr,
                    "shocks": {
                        v: _round(rng.uniform(-0.4, 0.1), 4) for v in values if rng.random() < 0.7
                    },
                    "default": _round(rng.uniform(-0.05, 0.0), 4),
                }
        c["scenarios"] = scen
        pairs = _pairs(_probe(pf, {**c, "max_loss": 0.0}), "stress.max_loss")
        c["max_loss"] = _pick_upper(rng, pairs, _outcome(rng))
        return c
    raise ValueError(kind)


def _policy(
    rng: np.random.Generator,
    name: str,
    kind: str,
    constraints: list[dict],
    pid: str,
    scoping: bool,
    level: str | None = None,
) -> dict:
    p: dict[str, Any] = {
        "policy_name": name,
        "policy_type": _POLICY_TYPE[kind],
        "enforcement_level": str(rng.choice(_ENFORCEMENT, p=[0.6, 0.25, 0.15])),
        "description": f"generated {kind} policy",
        "rules": {"constraints": constraints},
    }
    if level is not None:
        p["enforcement_level"] = level
    if rng.random() < 0.1:
        p["severity"] = _choice(rng, ("LOW", "MEDIUM", "HIGH", "CRITICAL"))
    if scoping:
        u = rng.random()
        if u < 0.06:
            p["enabled"] = False
        elif u < 0.12:
            p["scope"] = {"portfolios": ["some-other-portfolio"]}
        elif u < 0.3:
            p["scope"] = {"portfolios": [pid, "some-other-portfolio"]}
    return p


def _conflict(rng: np.random.Generator, pf: spec.Portfolio, idx: int) -> list[dict]:
    """Two strict policies, both breached pre-trade, that no portfolio satisfies at once."""
    delta = _round(rng.uniform(0.01, 0.05), 4)
    s0 = sum(pf.w0.values())
    longs = [s for s in pf.symbols if pf.w0[s] > 0.002]
    template = _choice(
        rng, ("net_cash", "hold_restricted", "beta") if longs else ("net_cash", "beta")
    )
    if template == "net_cash":
        return [
            {
                "policy_name": f"conflict-{idx}-net-floor",
                "policy_type": "INVESTMENT_MANDATE",
                "enforcement_level": "strict",
                "rules": {"constraints": [{"kind": "net_exposure", "min": _round(s0 + delta)}]},
            },
            {
                "policy_name": f"conflict-{idx}-cash-floor",
                "policy_type": "INVESTMENT_MANDATE",
                "enforcement_level": "strict",
                "rules": {"constraints": [{"kind": "cash", "min": _round(1 - s0 + delta)}]},
            },
        ]
    if template == "hold_restricted":
        s = _choice(rng, longs)
        return [
            {
                "policy_name": f"conflict-{idx}-core-holding",
                "policy_type": "POSITION_LIMIT",
                "enforcement_level": "strict",
                "rules": {
                    "constraints": [
                        {"kind": "weight_bounds", "symbols": [s], "min": _round(pf.w0[s] / 2, 8)}
                    ]
                },
            },
            {
                "policy_name": f"conflict-{idx}-restricted",
                "policy_type": "REGULATORY",
                "enforcement_level": "strict",
                "rules": {
                    "constraints": [{"kind": "restricted", "symbols": [s], "mode": "no_holding"}]
                },
            },
        ]
    beta0 = sum(pf.w0[s] * pf.instruments[s]["attributes"]["beta"] for s in pf.symbols)
    return [
        {
            "policy_name": f"conflict-{idx}-beta-floor",
            "policy_type": "RISK_LIMIT",
            "enforcement_level": "strict",
            "rules": {
                "constraints": [
                    {"kind": "exposure", "attribute": "beta", "min": _round(beta0 + delta)}
                ]
            },
        },
        {
            "policy_name": f"conflict-{idx}-beta-cap",
            "policy_type": "RISK_LIMIT",
            "enforcement_level": "strict",
            "rules": {
                "constraints": [
                    {"kind": "exposure", "attribute": "beta", "max": _round(beta0 - delta)}
                ]
            },
        },
    ]


# --------------------------------------------------------------------------- public


def random_case(
    rng: np.random.Generator,
    *,
    n_names: int | None = None,
    long_short: bool | None = None,
    n_policies: int | None = None,
    kinds: tuple[str, ...] | list[str] | None = None,
    cure_passive: bool | None = None,
    conflict: bool | None = None,
    benchmark: bool | None = None,
    lot_mode: str | None = None,
    scoping: bool = True,
    applicable: bool = True,
    inline_policies: bool = False,
    mode: str = "adjust",
    adjustment: str = "auto",
    strict_only: bool = False,
) -> tuple[dict, list[dict]]:
    """Draw one ``(request, policies)`` case.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness: the same seed gives the same case.
    n_names : int, optional
        ``|V|``; default uniform in 5..30.
    long_short : bool, optional
        Long/short book (shorts, flips, gross > 1) or long-only; default 40 % long/short.
    n_policies : int, optional
        Number of policies (2..6 by default), conflict pair included.
    kinds : sequence of str, optional
        Constraint kinds to draw from (default :data:`KINDS`).
    cure_passive : bool, optional
        Default: True in 30 % of cases.
    conflict : bool, optional
        Add a pair of strict policies that conflict once passive breaches must be cured.
        Default: in 40 % of ``cure_passive`` cases.
    benchmark : bool, optional
        Attach benchmark weights (default 50 %, always when tracking error is drawn).
    lot_mode : {"fractional", "one", "mixed"}, optional
        Lot sizes: 0 everywhere (default 70 %), 1 everywhere, or a mix of 1 and 100.
    scoping : bool
        Sometimes disable a policy or scope it to another portfolio.
    applicable : bool
        Sometimes set ``applicable_policies`` to a subset of the names.
    inline_policies : bool
        Also put the policies in ``request["policies"]``.
    mode, adjustment : str
        Copied into the request.
    strict_only : bool
        Make every policy strict.

    Returns
    -------
    request : dict
        A PolicyValidationRequest, JSON-like.
    policies : list of dict
        PolicyDefinitions, JSON-like.
    """
    n = int(n_names if n_names is not None else rng.integers(5, 31))
    long_short = bool(rng.random() < 0.4) if long_short is None else long_short
    cure_passive = bool(rng.random() < 0.3) if cure_passive is None else cure_passive
    if conflict is None:
        conflict = cure_passive and bool(rng.random() < 0.4)
    if lot_mode is None:
        lot_mode = str(rng.choice(["fractional", "one", "mixed"], p=[0.7, 0.15, 0.15]))
    n_pol = int(n_policies if n_policies is not None else rng.integers(2, 7))
    n_drawn = max(n_pol - 2, 1) if conflict else n_pol
    kind_pool = tuple(kinds) if kinds is not None else KINDS
    drawn = [_choice(rng, kind_pool) for _ in range(n_drawn)]
    extra_kinds = [[_choice(rng, kind_pool)] if rng.random() < 0.2 else [] for _ in drawn]
    all_kinds = set(drawn) | {k for ks in extra_kinds for k in ks}
    if benchmark is None:
        benchmark = "tracking_error" in all_kinds or bool(rng.random() < 0.5)

    n_extra = int(rng.integers(0, 4))
    names = [f"SYM{i:02d}" for i in range(n + n_extra)]
    instruments = _instruments(rng, names, lot_mode)
    inst = {i["symbol"]: i for i in instruments}
    v_names = names[:n]
    n_new = int(rng.integers(0, max(1, n // 4) + 1))
    n_new = min(n_new, n - 2)
    new = _choice(rng, v_names, size=n_new) if n_new else []
    held = [s for s in v_names if s not in set(new)]
    nav = 10 ** rng.uniform(6.0, 8.5)
    if lot_mode == "mixed":
        nav = max(nav, 2e7)
    positions = _positions(rng, held, inst, nav, long_short)
    held_q = {p["symbol"]: p["quantity"] for p in positions}
    trades = _trades(rng, held_q, new, inst, nav, long_short)
    if n_extra and rng.random() < 0.2:
        positions.append({"symbol": names[n], "quantity": 0.0})
    invested = sum(p["quantity"] * inst[p["symbol"]]["price"] for p in positions)
    pid = _choice(rng, ("global-equity", "us-growth", "multi-strat"))
    state: dict[str, Any] = {
        "portfolio_id": pid,
        "cash": _round(nav - invested, 2),
        "positions": positions,
        "instruments": instruments,
    }
    if benchmark:
        bnames = _choice(rng, names, size=max(2, int(len(names) * rng.uniform(0.4, 0.9))))
        bw = rng.dirichlet(np.ones(len(bnames)))
        state["benchmark"] = {s: _round(x, 6) for s, x in zip(bnames, bw, strict=True)}
    if all_kinds & RISK_KINDS:
        state["risk_model"] = _risk_model(rng, names)
    if "cvar" in all_kinds:
        state["scenarios"] = _scenarios(rng, names)
    request: dict[str, Any] = {
        "decision": {
            "decision_id": f"dec-{int(rng.integers(1 << 40)):011x}",
            "portfolio_id": pid,
            "trades": trades,
            "strategy": "generated",
        },
        "portfolio_state": state,
        "mode": mode,
        "adjustment": adjustment,
        "cure_passive": cure_passive,
    }
    pf = spec.portfolio(request)

    policies = []
    for i, (kind, more) in enumerate(zip(drawn, extra_kinds, strict=True)):
        constraints = [_constraint(rng, k, pf, long_short, inst) for k in [kind, *more]]
        policies.append(
            _policy(
                rng,
                f"{kind.replace('_', '-')}-{i}",
                kind,
                constraints,
                pid,
                scoping,
                "strict" if strict_only else None,
            )
        )
    if conflict:
        policies += _conflict(rng, pf, len(policies))
    order = rng.permutation(len(policies))
    policies = [policies[int(i)] for i in order]
    if applicable and rng.random() < 0.15 and len(policies) > 2:
        keep = _choice(rng, [p["policy_name"] for p in policies], size=len(policies) - 1)
        request["applicable_policies"] = sorted(keep)
    if inline_policies:
        request["policies"] = policies
    return request, policies


def validate_case(request: dict, policies: list[dict]) -> None:
    """Raise pydantic's ValidationError unless the case matches the wire models."""
    from models import PolicyDefinition, PolicyValidationRequest

    PolicyValidationRequest.model_validate(request)
    for p in policies:
        PolicyDefinition.model_validate(p)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for :func:`random_case`."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def cases(**options: Any) -> st.SearchStrategy[tuple[dict, list[dict]]]:
    """Hypothesis strategy of ``(request, policies)``; ``options`` go to :func:`random_case`.

    The case is a function of one drawn seed, so hypothesis reports a reproducible seed.
    """
    return seeds().map(lambda seed: random_case(np.random.default_rng(seed), **options))


def grid(low: float, high: float, steps: int = 1000) -> st.SearchStrategy[float]:
    """Multiples of ``(high - low) / steps`` in [low, high]; they shrink toward 0 (or the
    end nearer to it).

    A grid (not any float) keeps examples readable and makes values tie often.
    """
    step = (high - low) / steps
    first = math.ceil(low / step - 1e-9)
    return st.integers(first, first + steps).map(lambda k: k * step)


def _vector(draw: st.DrawFn, n: int, element: st.SearchStrategy[float]) -> np.ndarray:
    return np.array(draw(st.lists(element, min_size=n, max_size=n)), dtype=float)


@dataclass
class SeparableProblem:
    """A problem of the separable QP solver's kind, as plain numbers.

    Rows over post-trade weights ``w = w0 + z`` (project) or ``w0`` moved on `columns`
    only, inside ``[min(d, 0), max(d, 0)]`` (scale_back); the bounds are given as slacks
    from the pre-trade values, so not trading is always feasible:

    - ``w_i <= w0_i + cap_slack_i`` and ``w_i >= w0_i - floor_slack_i``;
    - group sums (``groups[i]`` is name i's group) at most their pre-trade value plus
      `group_slack`;
    - ``net @ w + 0.1 >= net @ w0 + 0.1 - net_slack``;
    - ``|w_i - w0_i| <= trade_limit_i``;
    - turnover ``sum |w_i - w0_i| <= turnover * sum |d|`` when `turnover` is not None;
    - per-group gross ``sum_{i in g} |w_i| + k_g <= pre-trade + gross_slack_g`` (one
      group per entry of `gross_slack`, ``k = (0.01, 0, 0, ...)``) when `gross` is not None.
    """

    w0: np.ndarray
    d: np.ndarray
    cap_slack: np.ndarray
    floor_slack: np.ndarray
    groups: list[int]
    group_slack: np.ndarray
    net: np.ndarray
    net_slack: float
    trade_limit: np.ndarray
    turnover: float | None
    gross: list[int] | None
    gross_slack: np.ndarray
    columns: list[int] | None


@st.composite
def separable_problems(draw: st.DrawFn, max_names: int = 13) -> SeparableProblem:
    """Problems of the separable QP solver's kind (see :class:`SeparableProblem`)."""
    n = draw(st.integers(1, max_names))
    slack = st.one_of(st.just(0.0), grid(0.0, 0.05))
    count = draw(st.integers(1, 3))
    gross = draw(st.none() | st.lists(st.integers(0, 1), min_size=n, max_size=n))
    scale_back = draw(st.booleans())
    columns = (
        sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))) if scale_back else None
    )
    return SeparableProblem(
        w0=_vector(draw, n, grid(-0.05, 0.2)),
        d=_vector(draw, n, st.one_of(st.just(0.0), grid(-0.25, 0.25))),
        cap_slack=_vector(draw, n, slack),
        floor_slack=_vector(draw, n, slack),
        groups=draw(st.lists(st.integers(0, count - 1), min_size=n, max_size=n)),
        group_slack=_vector(draw, count, slack),
        net=_vector(draw, n, st.sampled_from([1.0, -1.0, 0.5])),
        net_slack=draw(grid(0.0, 0.02)),
        trade_limit=_vector(draw, n, grid(0.0, 0.1)),
        turnover=draw(st.none() | grid(0.0, 1.0)),
        gross=gross,
        gross_slack=_vector(draw, 2, slack),
        columns=columns,
    )


@st.composite
def many_coupling_problems(
    draw: st.DrawFn, max_names: int = 40, max_groups: int = 16
) -> SeparableProblem:
    """Separable problems with many coupling rows (see :class:`SeparableProblem`).

    Every name is in one of up to `max_groups` gross groups and one of up to `max_groups`
    net groups (each group of several names a coupling row, as a gross `group_limit` over
    an attribute with many values makes); the trades mostly add gross, and half the limits
    sit at their pre-trade value, so that many multipliers leave zero and some come back
    to it. Shrinks toward few names and few groups.
    """
    n = draw(st.integers(2, max_names))
    count = draw(st.integers(1, max_groups))
    net_count = draw(st.integers(1, max_groups))
    slack = st.one_of(st.just(0.0), grid(0.0, 0.02))
    scale_back = draw(st.booleans())
    columns = (
        sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))) if scale_back else None
    )
    w0 = _vector(draw, n, grid(-0.05, 0.1))
    # Mostly trades that add gross (away from zero), some toward zero or through it.
    away = _vector(draw, n, st.sampled_from([1.0, 1.0, 1.0, -1.0]))
    d = np.where(w0 < 0, -1.0, 1.0) * away * _vector(draw, n, grid(0.0, 0.1))
    return SeparableProblem(
        w0=w0,
        d=d,
        cap_slack=_vector(draw, n, st.one_of(st.just(1.0), slack)),
        floor_slack=_vector(draw, n, st.one_of(st.just(1.0), slack)),
        groups=draw(st.lists(st.integers(0, net_count - 1), min_size=n, max_size=n)),
        group_slack=_vector(draw, net_count, slack),
        net=_vector(draw, n, st.sampled_from([1.0, -1.0, 0.5])),
        net_slack=draw(grid(0.0, 0.02)),
        trade_limit=_vector(draw, n, st.one_of(st.just(1.0), grid(0.0, 0.1))),
        turnover=draw(st.none() | grid(0.0, 1.0)),
        gross=draw(st.lists(st.integers(0, count - 1), min_size=n, max_size=n)),
        gross_slack=_vector(draw, count, slack),
        columns=columns,
    )


@dataclass
class ConicProblem:
    """A separable problem (:class:`SeparableProblem`) with risk norms added.

    A factor model over the `n` names of V and `extra` benchmark-only names: exposures
    `F` ((n + extra) x factors) and specific volatilities `specific`. When `risk` is set, a
    volatility row ``||[F' P w ; specific o P w]||`` at most its pre-trade value plus
    `vol_slack`, and a tracking-error row of ``P w - benchmark`` at most its pre-trade value
    plus `te_slack` (`P` puts V first in the risk universe).
    """

    base: SeparableProblem
    extra: int
    F: np.ndarray
    specific: np.ndarray
    benchmark: np.ndarray
    vol_slack: float
    te_slack: float
    risk: bool


@st.composite
def conic_problems(draw: st.DrawFn, max_names: int = 10) -> ConicProblem:
    """Problems of the direct conic solve's kind (see :class:`ConicProblem`)."""
    base = draw(separable_problems(max_names=max_names))
    n, extra = len(base.w0), draw(st.integers(0, 2))
    factors = draw(st.integers(1, 3))
    universe = n + extra
    F = np.array(
        [_vector(draw, factors, grid(-0.3, 0.3, 12)) for _ in range(universe)], dtype=float
    ).reshape(universe, factors)
    slack = st.one_of(st.just(0.0), grid(0.0, 0.02, 8))
    return ConicProblem(
        base=base,
        extra=extra,
        F=F,
        specific=_vector(draw, universe, grid(0.0, 0.4, 8)),
        benchmark=_vector(draw, universe, grid(0.0, 0.2, 8)),
        vol_slack=draw(slack),
        te_slack=draw(slack),
        risk=draw(st.booleans()),
    )


@dataclass
class SyntheticRows:
    """Row sets the policy kinds do not build, as plain arrays over `n` weights.

    An absolute-sum block ``G |A w + c| + k`` (`G` None: one row per term; `k` None: no
    constant), an affine block ``A_affine w + c_affine``, a top-`top_k` largest-magnitude
    sum, the sense of each (``"le"``/``"ge"``), the weights to start from, and per row of
    each block an offset of its bound from its value there (0: the row is exactly at its
    bound; most offsets put rows in breach or with room).
    """

    A: np.ndarray
    c: np.ndarray
    G: np.ndarray | None
    k: np.ndarray | None
    A_affine: np.ndarray
    c_affine: np.ndarray
    top_k: int
    senses: list[str]
    w: np.ndarray
    offsets: list[np.ndarray]


def _sparse_matrix(draw: st.DrawFn, rows: int, columns: int) -> np.ndarray:
    """About half the entries zero; the rest on a grid in [-2, 2]."""
    entry = st.one_of(st.just(0.0), grid(-2.0, 2.0, 40))
    return np.array(
        [draw(st.lists(entry, min_size=columns, max_size=columns)) for _ in range(rows)],
        dtype=float,
    ).reshape(rows, columns)


@st.composite
def synthetic_rows(draw: st.DrawFn, n: int) -> SyntheticRows:
    """Synthetic row sets over `n` weights (see :class:`SyntheticRows`)."""
    terms, rows = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    grouped = draw(st.booleans())
    G = _sparse_matrix(draw, rows, terms) if grouped else None
    k = (
        _vector(draw, rows if grouped else terms, grid(-0.05, 0.05, 20))
        if draw(st.booleans())
        else None
    )
    A = _sparse_matrix(draw, terms, n)
    c = _vector(draw, terms, grid(-0.05, 0.05, 20))
    A_affine = _sparse_matrix(draw, rows, n)
    c_affine = _vector(draw, rows, grid(-0.05, 0.05, 20))
    top_k = draw(st.integers(1, n + 1))
    # Weights on a coarse grid, so that magnitudes tie.
    w = _vector(draw, n, grid(-0.3, 0.3, draw(st.sampled_from([6, 600]))))
    offset = st.one_of(st.just(0.0), grid(-0.02, 0.02, 40))
    offsets = [_vector(draw, size, offset) for size in (rows if grouped else terms, rows, 1)]
    senses = draw(st.lists(st.sampled_from(["le", "ge"]), min_size=3, max_size=3))
    return SyntheticRows(A, c, G, k, A_affine, c_affine, top_k, senses, w, offsets)


@dataclass(frozen=True)
class Move:
    """One weight moved: to another weight's value (`to` = "copy" or "negated", of weight
    `other`), to zero, or by `step`; and whether the tracker commits it or only tries it."""

    i: int
    to: str
    other: int
    step: float
    commit: bool

    def value(self, w: np.ndarray) -> float:
        """The moved weight's new value, given the current weights `w`."""
        if self.to == "copy":
            return float(w[self.other])
        if self.to == "negated":
            return -float(w[self.other])
        if self.to == "zero":
            return 0.0
        return float(w[self.i] + self.step)


def moves(n: int, max_size: int = 40) -> st.SearchStrategy[list[Move]]:
    """Lists of one-weight moves over `n` weights; they shrink to fewer, simpler moves."""
    move = st.builds(
        Move,
        i=st.integers(0, n - 1),
        to=st.sampled_from(["zero", "copy", "negated", "step"]),
        other=st.integers(0, n - 1),
        step=grid(-0.1, 0.1, 200),
        commit=st.booleans(),
    )
    return st.lists(move, min_size=1, max_size=max_size)


if __name__ == "__main__":  # self-test: python -m tests.strategies
    for seed in range(500):
        req, pols = random_case(np.random.default_rng(seed))
        validate_case(req, pols)
        spec.verdict(req, pols)
    print("500 generated cases validate against models")
