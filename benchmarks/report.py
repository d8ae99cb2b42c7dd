"""Results: targets, ratios, the Markdown tables, machine info and the plot."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "TARGETS",
    "Target",
    "evaluate_targets",
    "git_commit",
    "machine_info",
    "markdown",
    "plot",
    "ratios",
]

STAGES = ("resolve", "weights", "compile", "check", "adjust", "verify", "total")


@dataclass(frozen=True)
class Target:
    """A p99 latency target of the Performance issue."""

    label: str
    path: str
    n: int
    p99_ms: float


TARGETS = (
    Target("check only (validate), 20 policies, n=500", "engine_check", 500, 0.5),
    Target("adjust scale_back, n=500", "engine_scale_back", 500, 5.0),
    Target("adjust project, n=500", "engine_project", 500, 10.0),
    Target("adjust project, n=2000", "engine_project", 2000, 25.0),
    Target("adjust scale_back, n=2000", "engine_scale_back", 2000, 25.0),
    Target("adjust with volatility + tracking-error cones, n=500", "engine_cones", 500, 15.0),
    Target("HTTP end to end, check only, n=500", "http", 500, 10.0),
)


def _cell(paths: dict[str, Any], path: str, n: int) -> dict[str, Any] | None:
    result: dict[str, Any] | None = paths.get(path, {}).get("results", {}).get(str(n))
    return result


def evaluate_targets(paths: dict[str, Any], http: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every target with its measured p99, whether it is met, and measured / target."""
    out = []
    for t in TARGETS:
        cell = http if t.path == "http" else _cell(paths, t.path, t.n)
        if cell is None or (t.path == "http" and cell.get("n") != t.n):
            out.append({"target": t.label, "p99_target_ms": t.p99_ms, "measured": False})
            continue
        p99 = float(cell["p99_ms"])
        out.append(
            {
                "target": t.label,
                "path": t.path,
                "n": t.n,
                "p99_target_ms": t.p99_ms,
                "p99_ms": p99,
                "samples": cell["count"],
                "met": p99 <= t.p99_ms,
                "times_target": round(p99 / t.p99_ms, 2),
            }
        )
    recompiles = {
        f"{path}@{n}": cell["cache"]["misses"]
        for path, data in paths.items()
        for n, cell in data["results"].items()
        if "cache" in cell and path != "engine_check" and path != "engine_check_base"
    }
    if recompiles:
        out.append(
            {
                "target": "no recompilation after the first request (cache misses while timed)",
                "misses": recompiles,
                "met": all(m == 0 for m in recompiles.values()),
                "measured": True,
            }
        )
    return out


def ratios(paths: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Engine adjust paths over the naive cvxpy run and over the OSQP floor, per n."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for engine in ("engine_project", "engine_scale_back"):
        for base in ("naive_cvxpy", "osqp_direct", "osqp_direct_tight"):
            key = f"{engine}/{base}"
            for n in paths.get(engine, {}).get("results", {}):
                a, b = _cell(paths, engine, int(n)), _cell(paths, base, int(n))
                if a is None or b is None:
                    continue
                out.setdefault(key, {})[n] = {
                    "p50": round(a["p50_ms"] / b["p50_ms"], 3),
                    "p99": round(a["p99_ms"] / b["p99_ms"], 3),
                }
    return out


def _ms(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """The latency table, ratios, stages and targets as Markdown."""
    paths: dict[str, Any] = results["paths"]
    sizes: list[int] = results["config"]["sizes"]
    lines = [
        "p50 / p99 / max latency in ms (samples per cell in `latest.json`):",
        "",
        "| path | " + " | ".join(f"n={n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for path in paths:
        cells = []
        for n in sizes:
            c = _cell(paths, path, n)
            cells.append(
                "—"
                if c is None
                else f"{_ms(c['p50_ms'])} / {_ms(c['p99_ms'])} / {_ms(c['max_ms'])}"
            )
        lines.append(f"| `{path}` | " + " | ".join(cells) + " |")
    http = results.get("http")
    if http:
        lines += [
            "",
            f"HTTP end to end, check only, n={http['n']}, {http['policies']} policies, "
            f"{http['count']} requests: p50 {_ms(http['p50_ms'])} ms, p99 "
            f"{_ms(http['p99_ms'])} ms, max {_ms(http['max_ms'])} ms, "
            f"{http['requests_per_s']} requests/s (engine's own `timings_ms.total` p50 "
            f"{_ms(http['engine_total_p50_ms'])} ms); errors: {http['errors'] or 'none'}.",
        ]
    lines += ["", "Ratios, p50 (p99): engine adjust path / reference path", ""]
    lines += [
        "| ratio | " + " | ".join(f"n={n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for key, per_n in results["ratios"].items():
        cells = [
            f"{per_n[str(n)]['p50']:.2g} ({per_n[str(n)]['p99']:.2g})" if str(n) in per_n else "—"
            for n in sizes
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += _stage_table(paths, sizes)
    lines += ["", "| target (p99) | measured p99 | met |", "|---|---|---|"]
    for t in results["targets"]:
        if "misses" in t:
            bad = {k: v for k, v in t["misses"].items() if v}
            lines.append(
                f"| {t['target']} | misses: {bad or 'none'} | {'yes' if t['met'] else 'no'} |"
            )
        elif not t.get("measured", True):
            lines.append(f"| {t['target']} ≤ {t['p99_target_ms']} ms | not measured | — |")
        else:
            verdict = "yes" if t["met"] else f"no ({t['times_target']} times the target)"
            lines.append(
                f"| {t['target']} ≤ {t['p99_target_ms']} ms | {_ms(t['p99_ms'])} ms "
                f"({t['samples']} samples) | {verdict} |"
            )
    return "\n".join(lines)


def _stage_table(paths: dict[str, Any], sizes: Sequence[int]) -> list[str]:
    n = 500 if 500 in sizes else sizes[-1]
    lines = [
        "",
        f"Engine stages at n={n}, p50 of `timings_ms` (ms):",
        "",
        "| path | " + " | ".join(STAGES) + " |",
        "|---|" + "---|" * len(STAGES),
    ]
    for path, data in paths.items():
        cell = data["results"].get(str(n))
        if cell is None or "stages_p50_ms" not in cell:
            continue
        stages = cell["stages_p50_ms"]
        lines.append(
            f"| `{path}` | "
            + " | ".join(_ms(stages[s]) if s in stages else "—" for s in STAGES)
            + " |"
        )
    return lines


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    """The checked-out commit, `+modified` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+modified" if dirty else "")


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and library versions, date, git commit."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    packages = ["numpy", "scipy", "cvxpy", "osqp", "clarabel", "ecos", "highspy", "pydantic"]
    packages += ["fastapi", "uvicorn", "httpx"]
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in packages},
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_commit(),
    }


def plot(results: dict[str, Any], target: Path) -> bool:
    """Latency against n (log-log), p50 solid and p99 dashed; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullLocator
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(12, 6.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (path, data) in enumerate(results["paths"].items()):
        cells = sorted((int(n), c) for n, c in data["results"].items())
        if not cells:
            continue
        xs = [n for n, _ in cells]
        color = colors[k % len(colors)]
        ax.plot(xs, [c["p50_ms"] for _, c in cells], "-o", color=color, label=f"{path} p50")
        ax.plot(xs, [c["p99_ms"] for _, c in cells], "--", color=color, label=f"{path} p99")
    http = results.get("http")
    if http:
        ax.plot([http["n"]], [http["p50_ms"]], "s", color="black", label="http p50")
        ax.plot([http["n"]], [http["p99_ms"]], "x", color="black", label="http p99")
    for t in TARGETS:
        ax.plot([t.n], [t.p99_ms], "_", color="red", markersize=14, markeredgewidth=2)
    ax.plot([], [], "_", color="red", markersize=14, markeredgewidth=2, label="p99 targets")
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = results["config"]["sizes"]
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("n (symbols in the portfolio)")
    ax.set_ylabel("latency per request (ms)")
    machine = results["machine"]
    ax.set_title(f"Policy Enforcement Service latency — {machine['cpu']}, {machine['cores']} cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return True
