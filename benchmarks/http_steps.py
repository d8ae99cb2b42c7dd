"""The steps of one `POST /api/v1/validate` by reference, timed in process, one by one.

    python -m benchmarks.http_steps [--n 500] [--requests 300] [--form universe+prices]

The app runs in process (SQLite in a temporary directory, events off); the case's policies,
universe and factor model are registered through it. Then the route's steps are called in
its order on each request of the form (`benchmarks.reference_http`): parse the body, the
request hash, the look-up of an earlier validation of the decision id, the stored policies,
the portfolio lineage, the reference data (timed alone, then again inside
`Services.validate` with the engine), and the stored write. Each step is timed by the
thread's CPU clock, which load from elsewhere on the machine disturbs less than wall time;
the write is also timed by the wall clock (its fsync waits without CPU). Prints the median
of each step in ms, the first 20 requests left out. Uvicorn, FastAPI and the middleware
are not in these figures: `benchmarks.reference_http` times the whole request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.cases import build_case
from benchmarks.reference_http import FORMS, Decisions, _register

__all__ = ["main", "run"]

T = TypeVar("T")
_WARMUP = 20


def run(n: int, requests: int, form: str) -> dict[str, float]:
    """Median ms of each step over `requests` requests of the form."""
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from api.http.app import create_app
    from api.http.routes.validate import request_hash
    from api.settings import Settings
    from models import PolicyValidationRequest

    case = build_case(n)
    token = uuid.uuid4().hex[:8]
    bodies = [
        json.dumps(FORMS[form](case, i, f"steps-{token}-{i}", Decisions())).encode()
        for i in range(_WARMUP + requests)
    ]
    times: dict[str, list[float]] = {}

    def timed(name: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        t0 = time.thread_time()
        result = step(*args, **kwargs)
        times.setdefault(name, []).append(1000 * (time.thread_time() - t0))
        return result

    def policies(store: Any) -> list[Any]:
        return [p.definition for p in store.policies.list()]

    with tempfile.TemporaryDirectory(prefix="pes-steps-") as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'steps.db'}", events="none")
        app = create_app(settings)
        with TestClient(app) as client:
            _register(client, case)
            # No platform limits: the cases are a fund's decisions (see
            # `benchmarks.http_load.NO_GLOBAL_LIMITS`); the policy is still applied.
            lifted = {"max_risk_per_trade": None, "max_positions": None}
            lifted["global_min_confidence"] = None
            client.patch("/api/v1/policy", json=lifted).raise_for_status()
            services = app.state.services
            store = services.store
            for body in bodies:
                request = timed("parse", PolicyValidationRequest.model_validate_json, body)
                digest = timed("request hash", request_hash, request)
                decision = request.decision
                timed("earlier validation", store.validations.find, decision.decision_id)
                stored = timed("stored policies", policies, store)
                lineage = timed("lineage", services.lineage, decision.portfolio_id, registered=True)
                timed("reference data", services.resolved, request)
                response = timed(
                    "reference data + engine", services.validate, request, stored, lineage
                )
                times.setdefault("engine timings_ms.total (wall)", []).append(
                    response.timings_ms["total"]
                )
                started = time.perf_counter()
                timed(
                    "stored write (CPU)",
                    store.validations.record,
                    response,
                    portfolio_id=decision.portfolio_id,
                    request_hash=digest,
                    actor="bench",
                )
                times.setdefault("stored write (wall, fsync included)", []).append(
                    1000 * (time.perf_counter() - started)
                )
    return {name: round(statistics.median(xs[_WARMUP:]), 3) for name, xs in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Run and print the median of each step."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_steps", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    parser.add_argument("--requests", type=int, default=300, help="timed requests (300)")
    parser.add_argument("--form", choices=list(FORMS), default="universe+prices")
    parser.add_argument("--output", type=Path, help="write the medians as JSON here")
    args = parser.parse_args(argv)
    medians = run(args.n, args.requests, args.form)
    print("| step | median ms |\n|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value} |")
    if args.output is not None:
        args.output.write_text(json.dumps(medians, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
