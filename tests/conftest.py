"""Configuration shared by every test package."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import settings

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
