"""The back-test's plots as PNG bytes (matplotlib, no display): breaches, cost, A vs B."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import date
from typing import Any

from api.backtest.run import Results

__all__ = ["figures"]


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


def _figure(width: float = 11.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def breaches_over_time(results: Results) -> bytes:
    """Portfolios in breach of a strict policy, and decisions blocked, per day and set."""
    fig = _figure()
    left, right = fig.subplots(1, 2)
    dates = sorted({d["date"] for d in results.days})
    for name in results.sets:
        in_breach: Counter[date] = Counter()
        seen = set()
        for b in results.breaches:
            pair = (b["portfolio_id"], b["date"])
            if b["policy_set"] == name and b["enforcement_level"] == "strict" and pair not in seen:
                seen.add(pair)
                in_breach[b["date"]] += 1
        blocked = Counter(
            d["date"]
            for d in results.decisions
            if d["policy_set"] == name and d["outcome"] in ("adjusted", "cancelled")
        )
        left.plot(dates, [in_breach[d] for d in dates], marker=".", label=name)
        right.plot(dates, [blocked[d] for d in dates], marker=".", label=name)
    left.set_title("Portfolios in breach of a strict policy (holdings)")
    right.set_title("Decisions blocked (adjusted or cancelled)")
    for ax in (left, right):
        ax.set_xlabel("date")
        ax.legend(title="policy set")
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def cost_of_compliance(results: Results) -> bytes:
    """Cumulative next-day return given up (bp of NAV, summed), and the adjustments' sizes."""
    fig = _figure()
    left, right = fig.subplots(1, 2)
    dates = sorted({d["date"] for d in results.days})
    sizes = []
    for name in results.sets:
        per_day: defaultdict[date, float] = defaultdict(float)
        for d in results.decisions:
            if d["policy_set"] == name and d.get("cost") is not None:
                per_day[d["date"]] += 1e4 * d["cost"]
        total, cumulative = 0.0, []
        for day in dates:
            total += per_day[day]
            cumulative.append(total)
        left.plot(dates, cumulative, label=name)
        sizes.append(
            [
                d["distance"] ** 0.5 * 100
                for d in results.decisions
                if d["policy_set"] == name and d["outcome"] == "adjusted" and d["distance"]
            ]
        )
    left.axhline(0.0, color="black", lw=0.8)
    left.set_title("Cost of compliance: return given up, cumulative (bp)")
    left.set_xlabel("date")
    left.tick_params(axis="x", labelrotation=30)
    left.legend(title="policy set")
    if any(sizes):
        right.hist(sizes, bins=20, label=results.sets)
        right.legend(title="policy set")
    right.set_title("Adjustment size ‖w - ŵ‖ (% of NAV)")
    right.set_xlabel("% of NAV")
    right.set_ylabel("adjusted decisions")
    return _png(fig)


def a_against_b(results: Results, summary: dict[str, Any]) -> bytes:
    """Per policy: days in breach and decisions blocked under each set; flips per day."""
    fig = _figure(11.0, 4.4)
    left, right = fig.subplots(1, 2)
    names = sorted({p["policy_name"] for s in summary["policy_sets"] for p in s["policies"]})
    width = 0.8 / max(len(summary["policy_sets"]), 1)
    for k, s in enumerate(summary["policy_sets"]):
        by = {p["policy_name"]: p for p in s["policies"]}
        xs = [i + k * width for i in range(len(names))]
        left.bar(
            xs,
            [by.get(n, {}).get("days_in_breach", 0) for n in names],
            width,
            label=f"{s['policy_set']}: days in breach",
        )
        left.bar(
            xs,
            [by.get(n, {}).get("blocked", 0) for n in names],
            width * 0.5,
            label=f"{s['policy_set']}: decisions blocked",
        )
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20)
    left.set_title("Per policy, each set")
    left.legend(fontsize=8)
    dates = sorted({d["date"] for d in results.days})
    for c in summary["comparisons"]:
        flips: dict[str, Counter[str]] = {"newly_blocked": Counter(), "newly_allowed": Counter()}
        for f in c["changed_decisions"]:
            flips[f["change"]][f["date"]] += 1
        iso = [d.isoformat() for d in dates]
        right.bar(
            dates,
            [flips["newly_blocked"][d] for d in iso],
            label=f"{c['candidate']} vs {c['base']}: newly blocked",
        )
        right.bar(
            dates,
            [-flips["newly_allowed"][d] for d in iso],
            label=f"{c['candidate']} vs {c['base']}: newly allowed",
        )
    right.axhline(0.0, color="black", lw=0.8)
    right.set_title("Decisions that change verdict, per day")
    right.tick_params(axis="x", labelrotation=30)
    if summary["comparisons"]:
        right.legend(fontsize=8)
    return _png(fig)


def figures(results: Results, summary: dict[str, Any]) -> dict[str, bytes]:
    """Every plot of the report, by name."""
    return {
        "breaches": breaches_over_time(results),
        "cost": cost_of_compliance(results),
        "comparison": a_against_b(results, summary),
    }
