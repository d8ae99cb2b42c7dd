"""End-to-end HTTP run: the real service under uvicorn, one keep-alive client on loopback.

The server is `api.http.app:create_app` under uvicorn in a subprocess, on a free port of
127.0.0.1, with a SQLite database in a temporary directory and events off. The policies
are stored through the API; then one client (httpx, keep-alive) POSTs check-only
(`mode: validate`) requests one after another, each with a unique `decision_id`. Every
validation is stored by the service (one database transaction per request), so the
numbers include that write. The run is bounded by a request count and a time limit, and
the server is always stopped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from benchmarks.cases import Case
from benchmarks.policies import PolicySet
from benchmarks.report import git_commit
from benchmarks.timing import Progress

if TYPE_CHECKING:
    import httpx

__all__ = ["run_http"]

_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NO_GLOBAL_LIMITS = {
    "QT_MAX_RISK_PER_TRADE": "none",
    "QT_MAX_POSITIONS": "none",
    "QT_CONFIDENCE_THRESHOLD": "none",
}
"""The benchmark servers' initial global policy: no platform limits. The cases are a fund's
decisions (20 trades over hundreds of names, no confidence); the platform's defaults (5
positions, 1% risk per trade, confidence 0.70) would stop each at a gate and the run would
time refusals, not checks. The global policy is still read and applied on every request."""


def _start(database: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env |= NO_GLOBAL_LIMITS
    env |= {
        "PES_DATABASE_URL": f"sqlite:///{database}",
        "PES_EVENTS": "none",
        "PES_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.http.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return subprocess.Popen(command, cwd=_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _wait_ready(
    client: httpx.Client, server: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the server exited with status {server.returncode}: {err}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.split()[-1])
    return None


def run_http(
    case: Case,
    *,
    requests: int,
    time_limit: float,
    warmup: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the HTTP load and return its latency summary."""
    import httpx

    policy_set: PolicySet = "twenty"
    commit = git_commit()  # the server imports the code as it is now
    token = uuid.uuid4().hex[:8]
    bodies = [
        json.dumps(
            case.body(i, policy_set=policy_set, mode="validate", decision_id=f"http-{token}-{i}")
        ).encode()
        for i in range(warmup + requests)
    ]
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    engine_ms: list[float] = []
    errors: dict[str, int] = {}
    with (
        tempfile.TemporaryDirectory(prefix="pes-bench-") as tmp,
        (Path(tmp) / "server.log").open("wb") as log,
    ):
        port = _free_port()
        server = _start(Path(tmp) / "bench.db", port, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
                _wait_ready(client, server, Path(tmp) / "server.log", timeout=60.0)
                for policy in case.policies[policy_set]:
                    definition = policy.model_dump(mode="json", exclude_none=True)
                    client.post("/api/v1/policies", json=definition).raise_for_status()
                for body in bodies[:warmup]:
                    client.post("/api/v1/validate", content=body, headers=headers)
                started = time.perf_counter()
                for k, body in enumerate(bodies[warmup:]):
                    t0 = time.perf_counter()
                    response = client.post("/api/v1/validate", content=body, headers=headers)
                    content = response.read()
                    latencies.append(1000 * (time.perf_counter() - t0))
                    if response.status_code != 200:
                        errors[str(response.status_code)] = (
                            errors.get(str(response.status_code), 0) + 1
                        )
                    else:
                        engine_ms.append(float(json.loads(content)["timings_ms"]["total"]))
                    if progress is not None:
                        progress(f"n={case.n} http", k + 1, requests)
                    if time.perf_counter() - started > time_limit:
                        break
                wall = time.perf_counter() - started
                metrics = client.get("/metrics").text
        finally:
            _stop(server)
    a = np.asarray(latencies)
    e = np.asarray(engine_ms) if engine_ms else np.zeros(1)
    return {
        "n": case.n,
        "policies": len(case.policies[policy_set]),
        "count": len(a),
        "errors": errors,
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "max_ms": round(float(a.max()), 4),
        "mean_ms": round(float(a.mean()), 4),
        "requests_per_s": round(len(a) / wall, 2),
        "engine_total_p50_ms": round(float(np.percentile(e, 50)), 4),
        "engine_total_p99_ms": round(float(np.percentile(e, 99)), 4),
        "request_bytes_p50": int(np.percentile([len(b) for b in bodies], 50)),
        "cache": {
            "hits": _metric(metrics, "pes_compile_cache_hits"),
            "misses": _metric(metrics, "pes_compile_cache_misses"),
        },
        "git": commit,
        "server": (
            "uvicorn api.http.app:create_app --factory, 1 worker, SQLite (temp dir), events none"
        ),
        "client": "httpx.Client, keep-alive, one request at a time, loopback",
    }
