"""Snapshot the engine's answers, to prove a refactoring changed no behaviour.

``python -m benchmarks.snapshot write FILE`` validates every example request against the
example policies (as `pes validate --policies examples/policies` does) and a grid of
benchmark cases (sizes, policy sets, modes, adjustment methods, several requests each), and
writes every response as JSON with what legitimately varies between runs removed: stage
timings and solver attempt durations. ``python -m benchmarks.snapshot compare A B`` reports
every response that differs, field by field, and exits 1 if any does.

Run `write` before a change and after it, then `compare`: identical files mean the
responses are field-for-field identical (floats compared exactly, as JSON text).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.files.policy_files import load_policies
from benchmarks.cases import build_case
from benchmarks.policies import PolicySet
from engine import PolicyEngine
from models import PolicyDefinition, PolicyValidationRequest

__all__ = ["main", "responses"]

REPO = Path(__file__).resolve().parents[1]
SIZES = (50, 200, 500)
REQUESTS_PER_CASE = 3
GRID: tuple[tuple[PolicySet, str, str], ...] = (
    ("base", "validate", "auto"),
    ("twenty", "adjust", "scale_back"),
    ("twenty", "adjust", "project"),
    ("cones", "adjust", "scale_back"),
    ("cones", "adjust", "project"),
)
"""(policy set, mode, adjustment) of the benchmark requests snapshotted at every size."""

_VARYING = ("timings_ms",)
"""Top-level response fields that differ between identical runs (wall-clock times)."""


def _stable(response: dict[str, Any]) -> dict[str, Any]:
    """`response` without wall-clock figures."""
    for key in _VARYING:
        response.pop(key, None)
    adjusted = response.get("adjusted_decision") or {}
    for attempt in adjusted.get("solver_attempts") or []:
        attempt.pop("seconds", None)
    return response


def _cases() -> Iterator[tuple[str, PolicyValidationRequest, list[PolicyDefinition]]]:
    examples = load_policies(REPO / "examples" / "policies")
    for path in sorted((REPO / "examples" / "requests").glob("*.json")):
        request = PolicyValidationRequest.model_validate_json(path.read_bytes())
        yield f"examples/{path.name}", request, examples
    for n in SIZES:
        case = build_case(n)
        for policy_set, mode, adjustment in GRID:
            for i in range(REQUESTS_PER_CASE):
                request = case.request(i, policy_set=policy_set, mode=mode, adjustment=adjustment)
                name = f"bench/n={n}/{policy_set}/{mode}/{adjustment}/{i}"
                yield name, request, case.policies[policy_set]


def responses(*, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Every snapshotted response by name, wall-clock figures removed.

    A request the engine refuses is recorded as its error (type and message), so a change in
    what is refused shows too.
    """
    engine = PolicyEngine()
    out: dict[str, dict[str, Any]] = {}
    cases = list(_cases())
    for k, (name, request, policies) in enumerate(cases, 1):
        if progress:
            print(f"\rsnapshot {k}/{len(cases)} {name:<48}", end="", file=sys.stderr, flush=True)
        try:
            response = engine.validate(request, policies)
        except Exception as exc:  # recorded, not raised: refusals are behaviour too
            out[name] = {"error": type(exc).__name__, "message": str(exc)}
            continue
        out[name] = _stable(response.model_dump(mode="json"))
    if progress:
        print(file=sys.stderr)
    return out


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f"{path}.{key}: only in {'B' if key not in a else 'A'}"
            else:
                yield from _differences(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{path}[{k}]")
    elif a != b:
        yield f"{path}: {json.dumps(a)[:120]} != {json.dumps(b)[:120]}"


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per differing field of two snapshots (empty: identical)."""
    return list(_differences(a, b))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``write FILE`` or ``compare A B``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.snapshot",
        description="Snapshot the engine's responses (timings removed) and compare snapshots.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write the snapshot of the code as it is now")
    write.add_argument("file", type=Path)
    diff = commands.add_parser("compare", help="compare two snapshots; exit 1 if they differ")
    diff.add_argument("a", type=Path)
    diff.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        snapshot = responses()
        args.file.write_text(json.dumps(snapshot, indent=1, sort_keys=True), encoding="utf-8")
        print(f"{len(snapshot)} responses written to {args.file}")
        return 0
    lines = compare(
        json.loads(args.a.read_text(encoding="utf-8")),
        json.loads(args.b.read_text(encoding="utf-8")),
    )
    for line in lines:
        print(line)
    print("identical" if not lines else f"{len(lines)} differences", file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
