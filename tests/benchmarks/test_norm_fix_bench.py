"""The norm fix comparison runs, finds the benchmark requests the fix changes, and restores it."""

from __future__ import annotations

import re

import pytest

from benchmarks.norm_fix import main
from engine.adjust.rounding import norm_fixup, passes


def test_the_comparison_reports_the_requests_the_fix_answers_closer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Of requests 0-2 at n = 500 (cones) the fix answers request 2
    # (tests/engine/adjust/test_norm_fixup.py).
    assert main(["--n", "500", "--policy-set", "cones", "--requests", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"request 2: distance [\d.e-]+ without, [\d.e-]+ with \(-[\d.e-]+ relative\)", out
    )
    assert "3 requests: changed 1, closer 1, farther 0" in out
    assert passes.norm_fixup is norm_fixup.norm_fixup  # put back after the comparison


def test_the_comparison_refuses_a_non_positive_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "0"]) == 2
    assert "--n and --requests must be positive" in capsys.readouterr().err
