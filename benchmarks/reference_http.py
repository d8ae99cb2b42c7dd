"""HTTP check-only latency with the instruments (and risk model) inline or by reference.

    python -m benchmarks.reference_http [--n 500] [--requests 500] [--forms A,B]
        [--mode validate|adjust] [--traded fixed|varying] [--output FILE]

One uvicorn server (as in `benchmarks.http_load`: SQLite in a temporary directory, events
off, one worker) and one keep-alive httpx client on loopback. The universe of the case and
its factor model are registered once (`PUT /api/v1/universes/bench-N`,
`PUT /api/v1/risk-models/bench-N`); then every request i of the case is sent in each of
these forms, round-robin (so that load from elsewhere on the machine hits every form
alike), each with a unique `decision_id` and `mode: validate`:

- `inline`: the benchmark's own request, every instrument inline (policy set twenty);
- `universe+prices`: the universe by id and the request's prices as a `prices` map;
- `universe`: the universe by id, its registered prices (the smallest body; its prices are
  request 0's, so its answers differ from the others' after request 0);
- `cones inline` / `cones by reference`: policy set cones (volatility and tracking error),
  with the factor model inline, or universe + risk model by id + `prices`.

`universe+prices` and `cones by reference` must give the same verdict and violations as
their inline forms for the same i (checked on every request), and every
validation is stored, as in production. Prints a Markdown table (body size, p50, p99, max
latency, the engine's own `timings_ms.total` p50) and writes the numbers as JSON, with the
server's CPU time per timed request (user + system, all forms together, read from `/proc`
on Linux: another process's load disturbs it far less than the latency). `--forms` limits
the run to some forms (answers are compared where both forms of a pair run).

By default every request trades the case's same 20 names and only checks. `--traded
varying` draws the traded names anew per request (`benchmarks.cases`), as a coordination
engine's decisions come, and `--mode adjust` asks for `scale_back` adjustment: together they
make most requests compile a problem of their own, which is what exercises the service's
caches and its heap settlements (`api/heap.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.cases import Case, Traded, build_case
from benchmarks.http_load import _free_port, _start, _stop, _wait_ready
from benchmarks.policies import PolicySet
from benchmarks.report import git_commit

__all__ = ["main"]


@dataclass(frozen=True)
class Decisions:
    """What the requests ask: check only or `scale_back`, the same or other names traded."""

    mode: Literal["validate", "adjust"] = "validate"
    traded: Traded = "fixed"


Form = Callable[[Case, int, str, Decisions], dict[str, Any]]


def _body(
    case: Case, i: int, decision_id: str, policy_set: PolicySet, decisions: Decisions
) -> dict[str, Any]:
    """The benchmark's request, limited to its policy set (both sets are stored)."""
    body = case.body(
        i,
        policy_set=policy_set,
        mode=decisions.mode,
        adjustment="scale_back",
        decision_id=decision_id,
        traded=decisions.traded,
    )
    body["applicable_policies"] = [p.policy_name for p in case.policies[policy_set]]
    return body


def _inline(policy_set: PolicySet) -> Form:
    def build(case: Case, i: int, decision_id: str, decisions: Decisions) -> dict[str, Any]:
        return _body(case, i, decision_id, policy_set, decisions)

    return build


def _by_reference(policy_set: PolicySet, *, prices: bool, risk_model: bool) -> Form:
    def build(case: Case, i: int, decision_id: str, decisions: Decisions) -> dict[str, Any]:
        body = _body(case, i, decision_id, policy_set, decisions)
        state = body["portfolio_state"]
        instruments = state.pop("instruments")
        state["universe"] = {"id": f"bench-{case.n}"}
        if prices:
            state["prices"] = {inst["symbol"]: inst["price"] for inst in instruments}
        if risk_model:
            state["risk_model"] = {"id": f"bench-{case.n}"}
        return body

    return build


FORMS: dict[str, Form] = {
    "inline": _inline("twenty"),
    "universe+prices": _by_reference("twenty", prices=True, risk_model=False),
    "universe": _by_reference("twenty", prices=False, risk_model=False),
    "cones inline": _inline("cones"),
    "cones by reference": _by_reference("cones", prices=True, risk_model=True),
}
"""Request forms, by name."""

SAME_ANSWER = {"universe+prices": "inline", "cones by reference": "cones inline"}
"""Forms whose answers must equal another form's (`universe` keeps registered prices)."""


def _register(client: Any, case: Case) -> None:
    """Store the policies, the case's universe (request 0's prices) and factor model."""
    for policy_set in ("twenty", "cones"):
        for policy in case.policies[policy_set]:
            definition = policy.model_dump(mode="json", exclude_none=True)
            r = client.post("/api/v1/policies", json=definition)
            if r.status_code != 409:  # the sets share the base policies
                r.raise_for_status()
    zero = case.body(0, policy_set="cones", mode="validate")["portfolio_state"]
    universe = {"id": f"bench-{case.n}", "instruments": zero["instruments"]}
    client.put(f"/api/v1/universes/bench-{case.n}", json=universe).raise_for_status()
    model = {"id": f"bench-{case.n}", "risk_model": zero["risk_model"]}
    client.put(f"/api/v1/risk-models/bench-{case.n}", json=model).raise_for_status()


def _verdict(answer: dict[str, Any]) -> tuple[Any, ...]:
    return (
        answer["is_compliant"],
        [(v["policy_name"], v["subject"], round(v["observed"], 12)) for v in answer["violations"]],
    )


def _server_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the server process, or None where /proc is not."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    n: int,
    requests: int,
    warmup: int = 5,
    forms: list[str] | None = None,
    decisions: Decisions = Decisions(),
) -> dict[str, Any]:
    """Time the forms (default: all) on `requests` requests of the n-name case; the summary."""
    import httpx

    chosen = set(forms or FORMS)
    selected = {name: form for name, form in FORMS.items() if name in chosen}
    same = {a: b for a, b in SAME_ANSWER.items() if a in selected and b in selected}
    case = build_case(n)
    token = uuid.uuid4().hex[:8]
    latencies: dict[str, list[float]] = {name: [] for name in selected}
    engine_ms: dict[str, list[float]] = {name: [] for name in selected}
    sizes: dict[str, list[int]] = {name: [] for name in selected}
    cpu: list[float | None] = []
    headers = {"Content-Type": "application/json"}
    with tempfile.TemporaryDirectory(prefix="pes-ref-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            port = _free_port()
            server = _start(Path(tmp) / "bench.db", port, log)
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
                    _wait_ready(client, server, log_path, timeout=60.0)
                    _register(client, case)
                    for i in range(warmup + requests):
                        if i == warmup:
                            cpu.append(_server_cpu_s(server.pid))
                        answers: dict[str, dict[str, Any]] = {}
                        for name, form in selected.items():
                            body = json.dumps(
                                form(case, i, f"ref-{token}-{name}-{i}", decisions)
                            ).encode()
                            t0 = time.perf_counter()
                            response = client.post(
                                "/api/v1/validate", content=body, headers=headers
                            )
                            content = response.read()
                            elapsed = 1000 * (time.perf_counter() - t0)
                            if response.status_code != 200:
                                raise RuntimeError(
                                    f"{name}: {response.status_code} {content[:500]!r}"
                                )
                            answers[name] = json.loads(content)
                            if i >= warmup:
                                latencies[name].append(elapsed)
                                engine_ms[name].append(answers[name]["timings_ms"]["total"])
                                sizes[name].append(len(body))
                        for name, base in same.items():
                            if _verdict(answers[name]) != _verdict(answers[base]):
                                raise RuntimeError(f"request {i}: {name} answered differently")
                    cpu.append(_server_cpu_s(server.pid))
            finally:
                _stop(server)
    return {
        "n": n,
        "requests": requests,
        "mode": decisions.mode,
        "traded": decisions.traded,
        "git": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "forms": {
            name: {
                "request_bytes_p50": int(np.percentile(sizes[name], 50)),
                "p50_ms": round(float(np.percentile(latencies[name], 50)), 2),
                "p99_ms": round(float(np.percentile(latencies[name], 99)), 2),
                "max_ms": round(float(np.max(latencies[name])), 2),
                "engine_total_p50_ms": round(float(np.percentile(engine_ms[name], 50)), 2),
            }
            for name in selected
        },
        "server_cpu_ms_per_request": (
            None
            if cpu[0] is None or cpu[1] is None
            else round(1000 * (cpu[1] - cpu[0]) / (requests * len(selected)), 3)
        ),
        "server": (
            "uvicorn api.http.app:create_app --factory, 1 worker, SQLite (temp dir), events none"
        ),
        "client": "httpx.Client, keep-alive, one request at a time, forms round-robin, loopback",
    }


def table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| form | request body | p50 ms | p99 ms | max ms | engine p50 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in summary["forms"].items():
        lines.append(
            f"| {name} | {row['request_bytes_p50'] / 1000:.1f} KB | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['max_ms']} | {row['engine_total_p50_ms']} |"
        )
    if summary.get("server_cpu_ms_per_request") is not None:
        lines.append("")
        lines.append(f"Server CPU per request: {summary['server_cpu_ms_per_request']} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reference_http", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per form")
    parser.add_argument("--forms", help=f"comma-separated forms (default all: {', '.join(FORMS)})")
    parser.add_argument(
        "--mode",
        choices=["validate", "adjust"],
        default="validate",
        help="check only (default) or adjust with scale_back",
    )
    parser.add_argument(
        "--traded",
        choices=["fixed", "varying"],
        default="fixed",
        help="the case's same 20 names in every request (default) or drawn per request",
    )
    parser.add_argument("--output", type=Path, help="write the summary JSON here")
    args = parser.parse_args(argv)
    forms = None if args.forms is None else [f.strip() for f in args.forms.split(",")]
    unknown = sorted(set(forms or ()) - set(FORMS))
    if unknown:
        parser.error(f"unknown forms: {', '.join(unknown)}")
    summary = run(args.n, args.requests, forms=forms, decisions=Decisions(args.mode, args.traded))
    print(table(summary))
    if args.output is not None:
        args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
