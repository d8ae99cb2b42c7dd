"""The check-all benchmark's documented table is its results file. No test asserts a time."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.check_all import RESULTS, table


def test_the_documented_table_is_the_results_file() -> None:
    root = Path(__file__).parents[2]
    doc = (root / "docs" / "check-all.md").read_text(encoding="utf-8")
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    start, end = "<!-- check-all-table -->\n", "<!-- /check-all-table -->"
    documented = doc[doc.index(start) + len(start) : doc.index(end)].strip()
    assert documented == table(results)
    assert {r["breaching_fraction"] for r in results["runs"]} == {0.05, 0.5}
