"""docs/performance.md quotes the committed benchmark results through generated tables only.

The block between the markers must be exactly what `python -m benchmarks.tables` renders from
`benchmarks/results/`; after a new run, regenerate it (`python -m benchmarks.tables`) and
commit the results with the page.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import tables


def test_the_performance_page_shows_the_committed_results() -> None:
    text = tables.DOC.read_text(encoding="utf-8")
    expected = tables.replace_block(text, tables.render(tables.RESULTS))
    assert text == expected, "docs/performance.md is stale: run python -m benchmarks.tables"


def test_the_readme_shows_the_committed_targets() -> None:
    text = tables.README.read_text(encoding="utf-8")
    summary = tables.render_summary(tables.RESULTS)
    assert text == tables.replace_block(text, summary), "README is stale: run benchmarks.tables"
    assert "| target |" in summary


def test_check_mode_catches_a_changed_result(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(tables.RESULTS, results, ignore=shutil.ignore_patterns("*.png"))
    doc = tmp_path / "performance.md"
    shutil.copy(tables.DOC, doc)
    readme = tmp_path / "README.md"
    shutil.copy(tables.README, readme)
    pages = ["--results", str(results), "--doc", str(doc), "--readme", str(readme)]
    assert tables.main(["--check", *pages]) == 0

    latest = json.loads((results / "latest.json").read_text(encoding="utf-8"))
    n = str(latest["config"]["sizes"][0])
    latest["paths"]["engine_check"]["results"][n]["p50_ms"] = 123.456
    latest["paths"]["engine_check"]["results"]["500"]["p99_ms"] = 0.5
    (results / "latest.json").write_text(json.dumps(latest), encoding="utf-8")
    assert tables.main(["--check", *pages]) == 1
    assert tables.main(pages) == 0
    assert "123 / " in doc.read_text(encoding="utf-8")
    assert "0.50 ms: met" in readme.read_text(encoding="utf-8")
    assert tables.main(["--check", *pages]) == 0


def test_the_block_needs_both_markers_once() -> None:
    with pytest.raises(ValueError):
        tables.replace_block("no markers here", "x")
    with pytest.raises(ValueError):
        tables.replace_block(f"{tables.END}\n{tables.BEGIN}", "x")
    text = f"before\n{tables.BEGIN}\nold\n{tables.END}\nafter\n"
    assert (
        tables.replace_block(text, "new\n") == f"before\n{tables.BEGIN}\nnew\n{tables.END}\nafter\n"
    )
