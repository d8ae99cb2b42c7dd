"""The monitor load test's runs as the Markdown table of docs/monitor.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DOC", "END", "START", "runs_in", "same_case", "table", "write_docs"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "monitor.md"
START, END = "<!-- monitor-table -->", "<!-- /monitor-table -->"


def table(runs: list[dict[str, Any]]) -> str:
    """The runs' figures as a Markdown table, one row a run."""

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:,.0f}"

    lines = [
        "| portfolios | asked /s | published /s | seconds | published | processed | lost | "
        "processed /s | caught up after (s) | events | latency p50 (ms) | p99 (ms) | "
        "p99 to the commit (ms) | p99 commit to event (ms) | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        c, r = run["config"], run["results"]
        lat = r["latency_ms"]
        lines.append(
            f"| {c['portfolios']:,} | {c['rate_per_s']:,.0f} | {r['publish_rate_per_s']:,.0f} | "
            f"{c['seconds']:g} | "
            f"{r['published']:,} | {r['processed']:,} | {r['lost']:,} | "
            f"{r['processed_rate_per_s']:,.0f} | {r['caught_up_s_after_last_publish']:.1f} | "
            f"{lat['events']:,} | {ms(lat['p50'])} | {ms(lat['p99'])} | "
            f"{ms(lat.get('to_commit_p99'))} | {ms(lat.get('commit_to_event_p99'))} | "
            f"{run.get('load_average', '-')} |"
        )
    return "\n".join(lines)


def runs_in(path: Path) -> list[dict[str, Any]]:
    """The runs kept in a results file (none when it does not exist)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data.get("runs", []))


def same_case(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs are of the same portfolios, rate and length (the newer replaces)."""
    keys = ("portfolios", "rate_per_s", "seconds")
    return all(a["config"][k] == b["config"][k] for k in keys)


def write_docs(runs: list[dict[str, Any]], doc: Path = DOC) -> None:
    """Put the table between the markers of docs/monitor.md."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(START) + len(START), text.index(END)
    doc.write_text(text[:start] + "\n" + table(runs) + "\n" + text[end:], encoding="utf-8")
