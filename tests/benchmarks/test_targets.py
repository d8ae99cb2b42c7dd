"""Issue 13's targets are judged from the paths' results: met, or missed by how much."""

from __future__ import annotations

from typing import Any

from benchmarks.markdown import markdown
from benchmarks.report import RATIO_TARGET, TARGETS, evaluate_targets


def _cell(p50: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {"count": 200, "p50_ms": p50, "p99_ms": p99, "max_ms": p99} | extra


def _paths() -> dict[str, Any]:
    adjusted = {"outcomes": {"adjusted": 200, "adjusted_compliant": 200}}
    solved = {"statuses": {"CLARABEL: optimal": 200}, "max_violation": 0.0}
    return {
        "engine_check": {"results": {"500": _cell(0.5, 0.9), "2000": _cell(2.0, 4.5)}},
        "engine_project": {
            "results": {"500": _cell(5.0, 6.0, **adjusted), "2000": _cell(20.0, 24.0, **adjusted)}
        },
        "cvxportfolio_clarabel": {
            "results": {
                "500": _cell(40.0, 30.0, **solved),
                "2000": _cell(60.0, 60.0, **solved),
            }
        },
    }


def test_every_target_is_judged_at_both_sizes() -> None:
    targets = {t["target"]: t for t in evaluate_targets(_paths())}
    check = targets[TARGETS[0].label]["sizes"]
    assert check["500"]["met"] and check["500"]["missed_by_ms"] == 0
    assert not check["2000"]["met"]
    assert check["2000"]["missed_by_ms"] == 1.5 and check["2000"]["times_target"] == 1.5
    scale_back = targets[TARGETS[1].label]["sizes"]
    assert scale_back["500"] == {"p99_target_ms": 5.0, "measured": False}


def test_the_ratio_target_holds_at_every_size_or_not_at_all() -> None:
    ratio = next(t for t in evaluate_targets(_paths()) if t["target"] == RATIO_TARGET.label)
    assert ratio["sizes"]["500"]["p99_ratio"] == 0.2 and ratio["sizes"]["500"]["met"]
    assert ratio["sizes"]["2000"]["p99_ratio"] == 0.4 and not ratio["sizes"]["2000"]["met"]
    assert ratio["measured"] and not ratio["met"]


def test_the_compliance_target_counts_the_adjusted_decisions() -> None:
    compliance = evaluate_targets(_paths())[-1]
    assert compliance["adjusted"] == 400 and compliance["met"]


def test_the_targets_table_says_by_how_much_a_target_is_missed() -> None:
    results = {"paths": _paths(), "config": {"sizes": [500, 2000]}}
    text = markdown(results)
    assert "4.50 ms: missed by 1.50 ms (1.5 times the target)" in text
    assert "0.90 ms: met" in text
    assert "missed at n=2000" in text
