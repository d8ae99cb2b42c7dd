"""The measured figures of docs/performance.md, generated from the committed results.

    python -m benchmarks.tables            # rewrite the generated blocks
    python -m benchmarks.tables --check    # exit 1 if a block is not what would be written

Figures are never typed into the documentation by hand: they live in `benchmarks/results/`
(`latest.json`, written by `python -m benchmarks`, and `reference-data.json`, written by
`python -m benchmarks.reference_http`), and this module renders them as Markdown between
marker comments: every table in docs/performance.md, and the targets table alone in the
README's performance section. `tests/benchmarks/test_tables.py` fails when a block differs
from what this module produces, so neither page can drift from the results. After a new
benchmark run, run this module and commit the results with the pages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.markdown import markdown, targets_markdown
from benchmarks.reference_http import table as reference_data_table

__all__ = [
    "BEGIN",
    "END",
    "DOC",
    "README",
    "RESULTS",
    "render",
    "render_summary",
    "replace_block",
    "main",
]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "performance.md"
README = REPO / "README.md"
BEGIN = "<!-- generated: benchmarks.tables begin -->"
END = "<!-- generated: benchmarks.tables end -->"


def _run_line(results: dict[str, Any]) -> str:
    machine = results["machine"]
    versions = machine.get("versions", {})
    libs = ", ".join(
        f"{name} {versions[name]}"
        for name in ("cvxpy", "osqp", "clarabel", "highspy", "cvxportfolio", "pandas")
        if versions.get(name)
    )
    minutes = round(float(results.get("wall_s", 0.0)) / 60)
    return (
        f"Run: `{str(results.get('command') or 'python -m benchmarks').strip()}` on "
        f"{str(machine['date'])[:10]}, {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}, {libs}; engine at commit "
        f"`{machine['git']}`; {minutes} minutes "
        f"(`benchmarks/results/latest.json`: every number, the samples per cell, solver "
        f"attempts and cache counters)."
    )


def _reference_data_table(summary: dict[str, Any]) -> list[str]:
    return [
        "",
        f"Registered reference data over HTTP (`python -m benchmarks.reference_http`), "
        f"n={summary['n']}, {summary['requests']} requests per form, check only; "
        f"{summary['date']}, {summary['machine']}, commit `{summary['git']}` "
        f"(`benchmarks/results/reference-data.json`):",
        "",
        reference_data_table(summary),
    ]


def render(results_dir: Path = RESULTS) -> str:
    """The generated block's content (without the markers) from the results in a folder."""
    results = json.loads((results_dir / "latest.json").read_text(encoding="utf-8"))
    lines = [_run_line(results), "", markdown(results)]
    reference = results_dir / "reference-data.json"
    if reference.exists():
        lines += _reference_data_table(json.loads(reference.read_text(encoding="utf-8")))
    return "\n".join(lines).strip("\n") + "\n"


def render_summary(results_dir: Path = RESULTS) -> str:
    """The README's block: when and where the run was made, and its targets table."""
    results = json.loads((results_dir / "latest.json").read_text(encoding="utf-8"))
    machine = results["machine"]
    return (
        f"Run of {str(machine['date'])[:10]} (`python -m benchmarks`, {machine['cores']} "
        f"cores, engine at commit `{machine['git']}`; every table in "
        f"[docs/performance.md](docs/performance.md#latest-results)):\n\n"
        + targets_markdown(results)
        .removeprefix("Targets (p99, one run, traded names varying):")
        .lstrip("\n")
        + "\n"
    )


def replace_block(text: str, content: str) -> str:
    """`text` with what lies between the markers replaced by `content`."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"expected one {BEGIN!r} followed by one {END!r}")
    return text[: start + len(BEGIN)] + "\n" + content + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tables", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--doc", type=Path, default=DOC, help="the page of every table")
    parser.add_argument(
        "--readme", type=Path, default=README, help="the page of the targets summary"
    )
    args = parser.parse_args(argv)
    stale = False
    for page, content in (
        (args.doc, render(args.results)),
        (args.readme, render_summary(args.results)),
    ):
        text = page.read_text(encoding="utf-8")
        new = replace_block(text, content)
        if new == text:
            continue
        if args.check:
            print(
                f"{page}: generated tables are stale: run python -m benchmarks.tables",
                file=sys.stderr,
            )
            stale = True
        else:
            page.write_text(new, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
