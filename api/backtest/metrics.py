"""The back-test summed up: per policy set, per policy, and set A against set B.

Per set: portfolio-days, decisions and their outcomes (allowed, adjusted, cancelled,
failed), the portfolio-days with a breach of a strict policy, and the cost of compliance:
the adjustments' `distance` (Σ(w - ŵ)², summed and averaged over blocked decisions) and the
next-day return given up (`cost`, in basis points of each decision's NAV, summed).
Per policy: breached rows and portfolio-days in breach of the recorded holdings, the time in
breach (those days over all portfolio-days), the decisions it blocked (an active breach of
it, strict) and its share of their cost (a decision's cost split equally among the policies
that blocked it). Against the first set, each other set: decisions newly blocked, newly
allowed, blocked by both, and the differences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from api.backtest.run import Results

__all__ = ["compare", "summarize", "text_summary"]

BP = 1e4


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def _per_set(results: Results, name: str) -> dict[str, Any]:
    days = [d for d in results.days if d["policy_set"] == name]
    decisions = [d for d in results.decisions if d["policy_set"] == name]
    breaches = [b for b in results.breaches if b["policy_set"] == name]
    outcomes = Counter(d["outcome"] for d in decisions)
    blocked = [d for d in decisions if d["outcome"] in ("adjusted", "cancelled")]
    strict_days = {
        (b["portfolio_id"], b["date"]) for b in breaches if b["enforcement_level"] == "strict"
    }
    costs = [d["cost"] for d in blocked if d.get("cost") is not None]
    distances = [d["distance"] for d in blocked if d.get("distance") is not None]
    policies: dict[str, dict[str, Any]] = {}

    def entry(policy: str, level: str | None) -> dict[str, Any]:
        e = policies.setdefault(
            policy,
            {
                "policy_name": policy,
                "enforcement_level": level,
                "breaches": 0,
                "days_in_breach": 0,
                "blocked": 0,
                "cost_bp": 0.0,
            },
        )
        e["enforcement_level"] = e["enforcement_level"] or level
        return e

    for policy, level in sorted(results.levels.get(name, {}).items()):
        entry(policy, level)
    for b in breaches:
        e = entry(b["policy_name"], b["enforcement_level"])
        e["breaches"] += b["rows"]
        e["days_in_breach"] += 1
    for d in blocked:
        for policy in d["blocking_policies"]:
            e = entry(policy, "strict")
            e["blocked"] += 1
            if d.get("cost") is not None:
                e["cost_bp"] += BP * d["cost"] / len(d["blocking_policies"])
    n_days = len(days)
    for e in policies.values():
        e["time_in_breach"] = _round(e["days_in_breach"] / n_days if n_days else 0.0, 4)
        e["cost_bp"] = _round(e["cost_bp"], 4)
    return {
        "policy_set": name,
        "portfolios": len({d["portfolio_id"] for d in days}),
        "portfolio_days": n_days,
        "decisions": len(decisions),
        "allowed": outcomes["allowed"],
        "adjusted": outcomes["adjusted"],
        "cancelled": outcomes["cancelled"],
        "failed": outcomes["failed"] + sum(d["error"] is not None for d in days),
        "blocked": len(blocked),
        "days_in_breach": len(strict_days),
        "time_in_breach": _round(len(strict_days) / n_days if n_days else 0.0, 4),
        "distance_total": _round(sum(distances), 8),
        "distance_mean": _round(sum(distances) / len(distances) if distances else None, 8),
        "cost_bp": _round(BP * sum(costs), 4),
        "cost_bp_per_blocked": _round(BP * sum(costs) / len(costs) if costs else None, 4),
        "policies": [policies[n] for n in sorted(policies)],
    }


def compare(results: Results, base: str, other: str) -> dict[str, Any]:
    """What set `other` changes against set `base`, decision by decision."""
    key = ("portfolio_id", "date", "decision_id")
    first = {tuple(d[k] for k in key): d for d in results.decisions if d["policy_set"] == base}
    flips: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    cost_change = 0.0
    for d in (d for d in results.decisions if d["policy_set"] == other):
        a = first.get(tuple(d[k] for k in key))
        if a is None or "failed" in (a["outcome"], d["outcome"]):
            counts["failed"] += 1
            continue
        was, now = a["outcome"] != "allowed", d["outcome"] != "allowed"
        change = (
            "newly_blocked"
            if now and not was
            else "newly_allowed"
            if was and not now
            else "both_blocked"
            if now
            else "both_allowed"
        )
        counts[change] += 1
        cost_change += (d.get("cost") or 0.0) - (a.get("cost") or 0.0)
        if change in ("newly_blocked", "newly_allowed"):
            flips.append(
                {
                    "portfolio_id": d["portfolio_id"],
                    "date": d["date"].isoformat(),
                    "decision_id": d["decision_id"],
                    "change": change,
                    "blocking_policies": (d if now else a)["blocking_policies"],
                    "cost_bp": _round(BP * ((d.get("cost") or 0.0) - (a.get("cost") or 0.0)), 4),
                }
            )
    return {
        "base": base,
        "candidate": other,
        **{
            c: counts[c]
            for c in ("newly_blocked", "newly_allowed", "both_blocked", "both_allowed", "failed")
        },
        "cost_bp_difference": _round(BP * cost_change, 4),
        "changed_decisions": flips,
    }


def summarize(results: Results) -> dict[str, Any]:
    """The summary of every set, and each later set against the first."""
    sets = [_per_set(results, name) for name in results.sets]
    comparisons = [compare(results, results.sets[0], other) for other in results.sets[1:]]
    return {"policy_sets": sets, "comparisons": comparisons}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def text_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines of text."""
    lines: list[str] = []
    for s in summary["policy_sets"]:
        lines.append(
            f"{s['policy_set']}: {s['portfolios']} portfolios, {s['portfolio_days']} "
            f"portfolio-days, {s['decisions']} decisions: {s['blocked']} blocked "
            f"({s['adjusted']} adjusted, {s['cancelled']} cancelled), {s['failed']} failed; "
            f"in breach of a strict policy {_pct(s['time_in_breach'])} of days; cost of "
            f"compliance {s['cost_bp']:+.2f} bp, distance {s['distance_total'] or 0:.3g}"
        )
        width = max((len(p["policy_name"]) for p in s["policies"]), default=6)
        for p in s["policies"]:
            lines.append(
                f"  {p['policy_name']:<{width}} {p['enforcement_level'] or '':<8} "
                f"breaches {p['breaches']:>5}  days {p['days_in_breach']:>4} "
                f"({_pct(p['time_in_breach']):>6})  blocked {p['blocked']:>4}  "
                f"cost {p['cost_bp']:+8.2f} bp"
            )
    for c in summary["comparisons"]:
        lines.append(
            f"{c['candidate']} vs {c['base']}: {c['newly_blocked']} newly blocked, "
            f"{c['newly_allowed']} newly allowed, {c['both_blocked']} blocked by both; "
            f"cost of compliance {c['cost_bp_difference']:+.2f} bp"
        )
    return "\n".join(lines)


def policy_names(summary: dict[str, Any]) -> Sequence[str]:
    """Every policy of any set, sorted."""
    return sorted({p["policy_name"] for s in summary["policy_sets"] for p in s["policies"]})
