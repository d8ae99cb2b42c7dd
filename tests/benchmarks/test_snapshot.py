from __future__ import annotations

from benchmarks.snapshot import _stable, compare


def test_identical_snapshots_have_no_differences() -> None:
    a = {"r": {"is_compliant": True, "violations": [{"observed": 0.1}]}}
    assert compare(a, a) == []


def test_every_differing_field_is_named() -> None:
    a = {"r": {"is_compliant": True, "violations": [{"observed": 0.1}]}, "s": {}}
    b = {"r": {"is_compliant": False, "violations": [{"observed": 0.1000001}]}}
    assert compare(a, b) == [
        ".r.is_compliant: true != false",
        ".r.violations[0].observed: 0.1 != 0.1000001",
        ".s: only in A",
    ]


def test_wall_clock_figures_are_removed() -> None:
    response = {
        "timings_ms": {"total": 1.0},
        "adjusted_decision": {"solver_attempts": [{"solver": "CLARABEL", "seconds": 0.01}]},
    }
    assert _stable(response) == {"adjusted_decision": {"solver_attempts": [{"solver": "CLARABEL"}]}}
