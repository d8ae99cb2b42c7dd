"""The stage profiler runs on a tiny universe and reports every stage. No time is asserted."""

from __future__ import annotations

import re

import pytest

from benchmarks.stages import main


def test_stages_prints_percentiles_stages_and_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "20", "--policy-set", "base", "--requests", "4", "--warmup", "1"]
    assert main([*argv, "--profile", "5"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"n=20 base validate/auto, 4 requests: p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    for stage in ("resolve", "weights", "compile", "check", "report", "total"):
        assert re.search(rf"\b{stage} [\d.]+", out), stage
    assert "cumulative" in out and "validate" in out


def test_stages_refuses_a_non_positive_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "0"]) == 2
    assert "--n and --requests must be positive" in capsys.readouterr().err
