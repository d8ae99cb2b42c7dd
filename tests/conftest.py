"""Configuration shared by every test package."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import settings

# --- the global policy's defaults -----------------------------------------------------------
# A store without a global policy starts from the QT_* variables, whose defaults (at most 5
# positions, 1% risk per trade, confidence 0.70 required) would refuse most decisions the
# tests were written for before the global policy existed. So the whole session runs with
# those limits lifted ("none": no limit), and the existing tests keep their meaning; the
# global policy's own tests build their stores and apps with explicit environments, the
# real defaults included (tests/api/test_global_policy*.py). Set here, at import, so that
# pytest-xdist workers and the processes the tests start (`pes serve`, spawned workers)
# inherit it.
for _variable in ("QT_MAX_RISK_PER_TRADE", "QT_MAX_POSITIONS", "QT_CONFIDENCE_THRESHOLD"):
    os.environ[_variable] = "none"
os.environ.pop("QT_RISK_MODE", None)
# --- end of the global policy's defaults ----------------------------------------------------

# --- hypothesis profiles -------------------------------------------------------------------
# `ci` (loaded when the environment has CI=true): derandomized, so that every run of one
# commit draws the same examples and a red build is reproducible; no example database (CI
# starts clean anyway; nothing to keep); a deadline generous enough for a loaded two-core
# runner, so that only a real slowdown fails it; the reproduction blob printed with every
# failure (`@reproduce_failure`). `dev` (everywhere else): hypothesis's defaults, random
# draws and the local example database, which replays past failures first. A test's own
# `@settings(...)` still overrides either profile (most set `deadline=None`).
# Select one explicitly with `pytest --hypothesis-profile=ci`.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    print_blob=True,
)
settings.register_profile("dev")
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
# --- end of hypothesis profiles ------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--screenshots DIR`: where the browser tests save their screenshots (default: a
    pytest temporary directory)."""
    parser.addoption(
        "--screenshots",
        default=None,
        help="directory for the browser tests' screenshots (default: a pytest tmp dir)",
    )
