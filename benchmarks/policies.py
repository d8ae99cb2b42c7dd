"""The benchmark's policy sets: baseline (4 policies), twenty (20), cones and cones20 (6 each)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from benchmarks.universe import Name
from models import PolicyDefinition

__all__ = ["BASE_LIMITS", "POLICY_SETS", "Limits", "PolicySet", "policy_sets"]

PolicySet = Literal["base", "twenty", "cones", "cones20"]
POLICY_SETS: tuple[PolicySet, ...] = ("base", "twenty", "cones", "cones20")


@dataclass(frozen=True)
class Limits:
    """The baseline policies' limits."""

    name_max: float = 0.06
    sector_max: float = 0.30
    cash_min: float = 0.01
    turnover_max: float = 0.08


BASE_LIMITS = Limits()


def _policy(
    name: str, policy_type: str, *constraints: dict[str, Any], level: str = "strict"
) -> dict[str, Any]:
    return {
        "policy_name": name,
        "policy_type": policy_type,
        "enforcement_level": level,
        "rules": {"constraints": list(constraints)},
    }


def _base(limits: Limits) -> list[dict[str, Any]]:
    return [
        _policy(
            "single-name-cap",
            "POSITION_LIMIT",
            {"kind": "weight_bounds", "max": limits.name_max},
        ),
        _policy(
            "sector-caps",
            "SECTOR_LIMIT",
            {"kind": "group_limit", "attribute": "sector", "max": limits.sector_max},
        ),
        _policy("cash-floor", "INVESTMENT_MANDATE", {"kind": "cash", "min": limits.cash_min}),
        _policy(
            "turnover-limit", "INVESTMENT_MANDATE", {"kind": "turnover", "max": limits.turnover_max}
        ),
    ]


def _more(names: Sequence[Name]) -> list[dict[str, Any]]:
    """Sixteen more policies of most kinds, for the 20-policy set."""
    watch = [nm.symbol for nm in names[5:8]]
    stress = {
        "tech-crash": {
            "by": "sector",
            "shocks": {"Information Technology": -0.30, "Communication Services": -0.20},
            "default": -0.05,
        },
        "rates-up": {
            "by": "sector",
            "shocks": {"Utilities": -0.15, "Real Estate": -0.20, "Financials": 0.05},
            "default": -0.03,
        },
    }
    return [
        _policy(
            "issuer-cap", "REGULATORY", {"kind": "group_limit", "attribute": "issuer", "max": 0.12}
        ),
        _policy(
            "sub-industry-caps",
            "SECTOR_LIMIT",
            {"kind": "group_limit", "attribute": "sub_industry", "max": 0.20},
        ),
        _policy("gross-exposure", "RISK_LIMIT", {"kind": "gross_exposure", "max": 1.0}),
        _policy("net-exposure", "RISK_LIMIT", {"kind": "net_exposure", "min": 0.90, "max": 1.0}),
        _policy(
            "beta-band",
            "RISK_LIMIT",
            {"kind": "exposure", "attribute": "beta", "min": 0.8, "max": 1.3},
            level="advisory",
        ),
        _policy(
            "esg-floor",
            "INVESTMENT_MANDATE",
            {"kind": "exposure", "attribute": "esg", "min": 4.0},
            level="advisory",
        ),
        _policy(
            "top10-concentration",
            "POSITION_LIMIT",
            {"kind": "concentration", "top_k": 10, "max": 0.50},
            level="advisory",
        ),
        _policy(
            "trade-size", "POSITION_LIMIT", {"kind": "trade_limit", "max_weight_change": 0.016}
        ),
        _policy("liquidity", "REGULATORY", {"kind": "trade_limit", "max_adv_fraction": 0.2}),
        _policy(
            "tobacco-no-buy",
            "INVESTMENT_MANDATE",
            {"kind": "restricted", "where": {"sub_industry": ["Tobacco"]}, "mode": "no_buy"},
        ),
        _policy(
            "no-short",
            "INVESTMENT_MANDATE",
            {"kind": "restricted", "where": {"asset_class": ["equity"]}, "mode": "no_short"},
        ),
        _policy(
            "usd-only",
            "INVESTMENT_MANDATE",
            {"kind": "allowed_universe", "where": {"currency": ["USD"]}},
        ),
        _policy(
            "active-sector-bets",
            "RISK_LIMIT",
            {
                "kind": "group_limit",
                "attribute": "sector",
                "active": True,
                "min": -0.10,
                "max": 0.10,
            },
            level="advisory",
        ),
        _policy(
            "stress-tests", "RISK_LIMIT", {"kind": "stress", "scenarios": stress, "max_loss": 0.25}
        ),
        _policy(
            "cash-ceiling", "INVESTMENT_MANDATE", {"kind": "cash", "max": 0.10}, level="advisory"
        ),
        _policy(
            "watch-list",
            "POSITION_LIMIT",
            {"kind": "weight_bounds", "symbols": watch, "max": 0.055},
            level="monitor",
        ),
    ]


def _cones(cone_limits: tuple[float, float]) -> list[dict[str, Any]]:
    vol_max, te_max = cone_limits
    return [
        _policy("volatility-limit", "RISK_LIMIT", {"kind": "volatility", "max": vol_max}),
        _policy("tracking-error-limit", "RISK_LIMIT", {"kind": "tracking_error", "max": te_max}),
    ]


def policy_sets(
    names: Sequence[Name],
    limits: Limits,
    cone_limits: tuple[float, float],
    wide_cone_limits: tuple[float, float] | None = None,
) -> dict[str, list[PolicyDefinition]]:
    """The policy sets of a case; cone limits are (volatility max, tracking-error max).

    `cone_limits` go with the sector factor model (`cones`), `wide_cone_limits` with the
    20-factor model (`cones20`, absent when None).
    """
    raw: dict[str, list[dict[str, Any]]] = {
        "base": _base(limits),
        "twenty": _base(limits) + _more(names),
        "cones": _base(limits) + _cones(cone_limits),
    }
    if wide_cone_limits is not None:
        raw["cones20"] = _base(limits) + _cones(wide_cone_limits)
    return {k: [PolicyDefinition.model_validate(p) for p in v] for k, v in raw.items()}
