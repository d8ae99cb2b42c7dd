"""The benchmark's Markdown tables, from a results document (`latest.json`).

Printed by `python -m benchmarks` and written into docs/performance.md by
`python -m benchmarks.tables`: the main table (traded names drawn anew per request), the
fixed-set table, the peers (latency, then solver statuses and the largest violation of
their answers), the ratios engine / peer, the targets (met, or by how much missed), and
the engine's stage medians. Targets and ratios are evaluated here from the paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.report import (
    ADJUST_PATHS,
    MAIN_PATHS,
    RATIO_PEERS,
    TARGETS,
    cell,
    evaluate_targets,
    ratios,
)

__all__ = ["STAGES", "markdown", "targets_markdown"]

STAGES = ("references", "resolve", "weights", "compile", "check", "adjust", "verify", "report")
STAGES_TOTAL = "total"


def ms(x: float) -> str:
    """A latency in ms with 3 significant figures at most."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _header(first: str, sizes: Sequence[int]) -> list[str]:
    return [
        f"| {first} | " + " | ".join(f"n={n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]


def _latency_table(
    title: str, paths: dict[str, Any], names: Sequence[str], sizes: Sequence[int]
) -> list[str]:
    present = [p for p in names if p in paths]
    if not present:
        return []
    lines = ["", title, "", *_header("path", sizes)]
    for path in present:
        cells = []
        for n in sizes:
            c = cell(paths, path, n)
            cells.append(
                "—" if c is None else f"{ms(c['p50_ms'])} / {ms(c['p99_ms'])} / {ms(c['max_ms'])}"
            )
        lines.append(f"| `{path}` | " + " | ".join(cells) + " |")
    return lines


def _violation(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def _peer_outcomes(paths: dict[str, Any], sizes: Sequence[int]) -> list[str]:
    """How each peer's solves ended, per n (their times are only as good as this)."""
    present = [p for p in RATIO_PEERS if p in paths]
    if not present:
        return []
    lines = [
        "",
        "Peers: solver statuses (count) and the largest limit violation of their answers "
        "(weight units, measured by the benchmark's numpy code):",
        "",
        *_header("path", sizes),
    ]
    for path in present:
        cells = []
        for n in sizes:
            c = cell(paths, path, n)
            if c is None:
                cells.append("—")
                continue
            statuses = ", ".join(f"{k} ({v})" for k, v in sorted(c["statuses"].items()))
            cells.append(f"{statuses}; {_violation(float(c['max_violation']))}")
        lines.append(f"| `{path}` | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(paths: dict[str, Any], sizes: Sequence[int]) -> list[str]:
    table = ratios(paths)
    if not table:
        return []
    lines = ["", "Ratios engine / peer, p50 (p99), on the same requests:", ""]
    lines += _header("ratio", sizes)
    for key, per_n in table.items():
        cells = [
            f"{per_n[str(n)]['p50']:.2g} ({per_n[str(n)]['p99']:.2g})" if str(n) in per_n else "—"
            for n in sizes
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def _verdict(v: dict[str, Any]) -> str:
    if not v.get("measured"):
        return "not measured"
    if v["met"]:
        return f"{ms(v['p99_ms'])} ms: met"
    return (
        f"{ms(v['p99_ms'])} ms: missed by {ms(v['missed_by_ms'])} ms "
        f"({v['times_target']:.3g} times the target)"
    )


def _targets_table(paths: dict[str, Any]) -> list[str]:
    sizes = sorted({n for t in TARGETS for n in t.p99_ms})
    lines = ["", "Targets (p99, one run, traded names varying):", ""]
    lines += [
        "| target | " + " | ".join(f"n={n}: target | measured" for n in sizes) + " |",
        "|---|" + "---|---|" * len(sizes),
    ]
    for t in evaluate_targets(paths):
        if "path" in t:
            cells = []
            for n in sizes:
                v = t["sizes"].get(str(n))
                cells += ["—", "—"] if v is None else [f"{v['p99_target_ms']:g} ms", _verdict(v)]
            lines.append(f"| {t['target']} (`{t['path']}`) | " + " | ".join(cells) + " |")
        elif "ratio_at_most" in t:
            per_n = t["sizes"]
            measured = ", ".join(f"n={n}: {c['p99_ratio']:.2g}" for n, c in per_n.items())
            if not t["measured"]:
                verdict = "not measured"
            elif t["met"]:
                verdict = "met at every n"
            else:
                worst = max(per_n.values(), key=lambda c: c["p99_ratio"])
                missed = [n for n, c in per_n.items() if not c["met"]]
                verdict = (
                    f"missed at n={', '.join(missed)} (worst {worst['p99_ratio']:.2g}, "
                    f"{worst['times_target']:.3g} times the target)"
                )
            lines.append(
                f"| {t['target']} ≤ {t['ratio_at_most']:g} at every n (p99 ratio) | "
                f"{measured or '—'}; {verdict} |" + " |" * (2 * len(sizes) - 1)
            )
        else:
            verdict = "met" if t["met"] else "missed" if t["measured"] else "not measured"
            lines.append(
                f"| {t['target']} | {t['adjusted_compliant']} of {t['adjusted']}: {verdict} |"
                + " |" * (2 * len(sizes) - 1)
            )
    return lines


def _cache_line(paths: dict[str, Any]) -> list[str]:
    misses = {
        f"{path}@{n}": c["cache"]["misses"]
        for path in ADJUST_PATHS
        if path in paths
        for n, c in paths[path]["results"].items()
        if c.get("cache", {}).get("misses")
    }
    text = ", ".join(f"`{k}` {v}" for k, v in misses.items()) or "none"
    return [
        "",
        f"Compile-cache misses while timed, main adjust paths (path@n: misses): {text}.",
    ]


def _stage_table(paths: dict[str, Any], sizes: Sequence[int]) -> list[str]:
    n = 500 if 500 in sizes else sizes[-1]
    columns = (*STAGES, STAGES_TOTAL)
    lines = [
        "",
        f"Engine stages at n={n}, p50 in ms (`references`: the benchmark's own "
        "`resolve_references` call; the rest the engine's `timings_ms`):",
        "",
        "| path | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for path, data in paths.items():
        found = data["results"].get(str(n))
        if found is None or "stages_p50_ms" not in found:
            continue
        stages = found["stages_p50_ms"]
        lines.append(
            f"| `{path}` | "
            + " | ".join(ms(stages[s]) if s in stages else "—" for s in columns)
            + " |"
        )
    return lines


def _http_line(http: dict[str, Any] | None) -> list[str]:
    if not http:
        return []
    return [
        "",
        f"HTTP end to end, check only, n={http['n']}, {http['policies']} policies inline "
        f"instruments, {http['count']} requests: p50 {ms(http['p50_ms'])} ms, p99 "
        f"{ms(http['p99_ms'])} ms, max {ms(http['max_ms'])} ms, {http['requests_per_s']} "
        f"requests/s (engine's own `timings_ms.total` p50 {ms(http['engine_total_p50_ms'])} "
        f"ms); errors: {http['errors'] or 'none'}.",
    ]


def targets_markdown(results: dict[str, Any]) -> str:
    """The targets table alone (the README's summary), from the same results."""
    return "\n".join(_targets_table(results["paths"])).strip("\n")


def markdown(results: dict[str, Any]) -> str:
    """Every table of the module docstring, as Markdown."""
    paths: dict[str, Any] = results["paths"]
    sizes: list[int] = results["config"]["sizes"]
    fixed = [p for p in paths if p.endswith("_fixed")]
    lines = ["p50 / p99 / max latency in ms (samples per cell in `latest.json`)."]
    lines += _latency_table(
        "Main table: engine paths, 20 traded names drawn anew per request:",
        paths,
        MAIN_PATHS,
        sizes,
    )
    lines += _latency_table(
        "Secondary table: engine paths, the same 20 traded names in every request:",
        paths,
        fixed,
        sizes,
    )
    lines += _latency_table(
        "Peers and floors: the baseline `project` QP of the main table's requests:",
        paths,
        RATIO_PEERS,
        sizes,
    )
    lines += _peer_outcomes(paths, sizes)
    lines += _ratio_table(paths, sizes)
    lines += _targets_table(paths)
    lines += _cache_line(paths)
    lines += _stage_table(paths, sizes)
    lines += _http_line(results.get("http"))
    return "\n".join(lines).strip("\n")
