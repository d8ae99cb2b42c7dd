"""docs/monitor.md shows the committed load-test runs through the generated table only."""

from __future__ import annotations

import json

from benchmarks import monitor, monitor_table


def test_the_monitor_page_shows_the_committed_runs() -> None:
    runs = json.loads(monitor.RESULTS.read_text(encoding="utf-8"))["runs"]
    assert runs, "no committed run in benchmarks/results/monitor.json"
    text = monitor_table.DOC.read_text(encoding="utf-8")
    shown = text[
        text.index(monitor_table.START) + len(monitor_table.START) : text.index(monitor_table.END)
    ]
    assert shown.strip() == monitor_table.table(runs).strip(), (
        "docs/monitor.md is out of date: python -m benchmarks.monitor ... --write-docs"
    )
    assert all(run["results"]["lost"] == 0 for run in runs)


def test_bad_sizes_exit_2() -> None:
    assert monitor.main(["--portfolios", "0"]) == 2
    assert monitor.main(["--symbols", "5"]) == 2
