"""The batch benchmark runs end to end in quick mode. No test here asserts a time."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.batch import main


def test_quick_run_writes_a_well_formed_table(tmp_path: Path) -> None:
    out = tmp_path / "batch.json"
    argv = ["--quick", "--k", "300", "--chunk", "128", "--loop", "50", "--single", "2"]
    assert main([*argv, "--no-progress", "--output", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [(row["policies"], row["vectors"]) for row in results["results"]] == [
        ("caps", "breaching"),
        ("caps", "holdings"),
        ("caps+vol", "breaching"),
        ("caps+vol", "holdings"),
    ]
    for row in results["results"]:
        assert row["k"] == 300 and row["n"] == 500
        assert row["batch_numpy_per_s"] > 0 and row["single_request_per_s"] > 0
        assert 0.0 <= row["compliant_fraction"] <= 1.0
        assert 0.0 <= row["breaching_fraction"] <= 1.0
        assert row.get("backends_agree", True)
    assert results["targets"] == {"caps": 200000, "caps+vol": 20000}


def test_the_documented_table_is_the_results_files() -> None:
    from benchmarks.batch import RESULTS, table

    root = Path(__file__).parents[2]
    doc = (root / "docs" / "batch.md").read_text(encoding="utf-8")
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    start, end = "<!-- batch-table -->\n", "<!-- /batch-table -->"
    documented = doc[doc.index(start) + len(start) : doc.index(end)].strip()
    assert documented.startswith(table(results))
