"""Results: the targets of issue 13, the ratios, machine info and the plot.

Targets and ratios are evaluated from the paths' results (`evaluate_targets`, `ratios`),
so a results file is judged by the targets of the code that renders it. The Markdown
tables are in `benchmarks.markdown`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "ADJUST_PATHS",
    "MAIN_PATHS",
    "RATIO_ENGINES",
    "RATIO_PEERS",
    "RATIO_TARGET",
    "TARGETS",
    "RatioTarget",
    "Target",
    "cell",
    "evaluate_targets",
    "git_commit",
    "machine_info",
    "plot",
    "ratios",
]

MAIN_PATHS = (
    "engine_check",
    "engine_scale_back",
    "engine_project",
    "engine_scale_back_cones",
    "engine_project_cones",
)
"""The main table's engine paths (20 traded names drawn anew per request)."""

ADJUST_PATHS = MAIN_PATHS[1:]
RATIO_ENGINES = ("engine_project", "engine_scale_back")
RATIO_PEERS = (
    "cvxportfolio_clarabel",
    "cvxportfolio_default",
    "clarabel_direct",
    "osqp_direct",
    "naive_cvxpy",
    "osqp_direct_tight",
)


@dataclass(frozen=True)
class Target:
    """A p99 latency target of issue 13: `p99_ms[n]` for the path at size n."""

    label: str
    path: str
    p99_ms: dict[int, float]


@dataclass(frozen=True)
class RatioTarget:
    """engine path p99 / peer path p99 at most `at_most`, at every measured n."""

    label: str
    engine: str
    peer: str
    at_most: float


TARGETS = (
    Target("check only, in process, by reference", "engine_check", {500: 1.0, 2000: 3.0}),
    Target("scale_back, linear rows", "engine_scale_back", {500: 5.0, 2000: 10.0}),
    Target("project, linear rows, lots", "engine_project", {500: 8.0, 2000: 25.0}),
    Target(
        "scale_back with volatility + tracking error",
        "engine_scale_back_cones",
        {500: 10.0, 2000: 30.0},
    ),
    Target(
        "project with volatility + tracking error",
        "engine_project_cones",
        {500: 20.0, 2000: 60.0},
    ),
)
"""Issue 13's p99 targets (2 cores, one run, traded names varying)."""

RATIO_TARGET = RatioTarget(
    "project / cvxportfolio + Clarabel", "engine_project", "cvxportfolio_clarabel", 0.3
)

TARGET_SIZES = (500, 2000)


def cell(paths: dict[str, Any], path: str, n: int | str) -> dict[str, Any] | None:
    """The results of `path` at size n, or None."""
    result: dict[str, Any] | None = paths.get(path, {}).get("results", {}).get(str(n))
    return result


def _latency_verdict(target: Target, n: int, found: dict[str, Any] | None) -> dict[str, Any]:
    goal = target.p99_ms[n]
    if found is None:
        return {"p99_target_ms": goal, "measured": False}
    p99 = float(found["p99_ms"])
    return {
        "p99_target_ms": goal,
        "measured": True,
        "p99_ms": p99,
        "samples": found["count"],
        "met": p99 <= goal,
        "times_target": round(p99 / goal, 2),
        "missed_by_ms": round(max(0.0, p99 - goal), 3),
    }


def _ratio_verdict(paths: dict[str, Any]) -> dict[str, Any]:
    t = RATIO_TARGET
    per_n: dict[str, Any] = {}
    for n in paths.get(t.engine, {}).get("results", {}):
        a, b = cell(paths, t.engine, n), cell(paths, t.peer, n)
        if a is None or b is None:
            continue
        ratio = float(a["p99_ms"]) / float(b["p99_ms"])
        per_n[n] = {
            "p99_ratio": round(ratio, 3),
            "p50_ratio": round(float(a["p50_ms"]) / float(b["p50_ms"]), 3),
            "met": ratio <= t.at_most,
            "times_target": round(ratio / t.at_most, 2),
        }
    return {
        "target": t.label,
        "ratio_at_most": t.at_most,
        "engine": t.engine,
        "peer": t.peer,
        "measured": bool(per_n),
        "met": bool(per_n) and all(c["met"] for c in per_n.values()),
        "sizes": per_n,
    }


def _compliance_verdict(paths: dict[str, Any]) -> dict[str, Any]:
    adjusted = compliant = 0
    for path in ADJUST_PATHS:
        for found in paths.get(path, {}).get("results", {}).values():
            outcomes = found.get("outcomes", {})
            adjusted += int(outcomes.get("adjusted", 0))
            compliant += int(outcomes.get("adjusted_compliant", 0))
    return {
        "target": "every adjusted decision compliant after lot rounding (main paths)",
        "measured": adjusted > 0,
        "adjusted": adjusted,
        "adjusted_compliant": compliant,
        "met": adjusted > 0 and adjusted == compliant,
    }


def evaluate_targets(paths: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target: per size its measured p99, met or not, and by how much it is missed."""
    out: list[dict[str, Any]] = [
        {
            "target": t.label,
            "path": t.path,
            "sizes": {str(n): _latency_verdict(t, n, cell(paths, t.path, n)) for n in t.p99_ms},
        }
        for t in TARGETS
    ]
    out.append(_ratio_verdict(paths))
    out.append(_compliance_verdict(paths))
    return out


def ratios(paths: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Engine adjust paths (linear rows) over every peer on the same requests, per n."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for engine in RATIO_ENGINES:
        for peer in RATIO_PEERS:
            for n in paths.get(engine, {}).get("results", {}):
                a, b = cell(paths, engine, n), cell(paths, peer, n)
                if a is None or b is None:
                    continue
                out.setdefault(f"{engine}/{peer}", {})[n] = {
                    "p50": round(a["p50_ms"] / b["p50_ms"], 3),
                    "p99": round(a["p99_ms"] / b["p99_ms"], 3),
                }
    return out


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
    packages += ["cvxportfolio", "pandas"]
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
    """Latency against n (log-log), p50 solid and p99 dashed; False without matplotlib.

    The main engine paths and the peers; the fixed-set paths are in the tables only.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullLocator
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(12, 6.5))
    cmap = plt.get_cmap("tab20")
    colors = [cmap(j) for j in (*range(0, 20, 2), *range(1, 20, 2))]
    shown = [p for p in results["paths"] if p in MAIN_PATHS or p in RATIO_PEERS]
    for k, path in enumerate(shown):
        data = results["paths"][path]
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
    sizes = results["config"]["sizes"]
    for t in TARGETS:
        goals = [(n, ms) for n, ms in t.p99_ms.items() if n in sizes]
        xs, ys = [n for n, _ in goals], [ms for _, ms in goals]
        ax.plot(xs, ys, "_", color="red", markersize=14, markeredgewidth=2)
    ax.plot([], [], "_", color="red", markersize=14, markeredgewidth=2, label="p99 targets")
    ax.set_xscale("log")
    ax.set_yscale("log")
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
