"""A change made through one worker is applied by another within a second.

Two real `pes serve` processes share one database (a SQLite file, or a PostgreSQL schema).
A change is made through one; the other is polled (its GET /api/policy, then a validation's
`global_policy_version`) until it shows the new version. The bound is the design's
(docs/global-policy.md): each worker asks for the latest version number at most every
`PES_GLOBAL_POLICY_REFRESH_S` (0.5 s), so a change is applied within 0.5 s plus a query;
the test allows the 1 s the issue states. On PostgreSQL the workers also listen for the
writer's NOTIFY; a test with a 30 s refresh shows that it alone meets the bound. It is a
behaviour bound, not a benchmark: the measured delays are printed (`pytest -s`), never
compared to anything tighter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import example_request
from tests.serving import pes_serve

REPO = Path(__file__).resolve().parents[2]
READY_S = 60.0
BOUND_S = 1.0
ROUNDS = 3
INLINE = [
    {
        "policy_name": "cap",
        "policy_type": "POSITION_LIMIT",
        "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.5}]},
    }
]


@contextmanager
def _server(database_url: str, log: Path, **pes: str) -> Iterator[str]:
    """`pes serve --port 0` as a process on `database_url`, healthy: its base URL.

    `pes` are settings (`refresh_s="5"` → `PES_GLOBAL_POLICY_REFRESH_S=5`).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env["PES_GC_FREEZE"] = "false"
    env.update({f"PES_GLOBAL_POLICY_{k.upper()}": v for k, v in pes.items()})
    with pes_serve(database_url, "none", env, log, ready_s=READY_S, stop="terminate") as (
        _,
        base,
    ):
        yield base


def _validation_version(http: httpx.Client, base: str, k: int) -> int:
    body = example_request("small-rebalance")
    body["decision"]["decision_id"] = f"worker-check-{k}"
    body["policies"] = INLINE  # a what-if run: answered with the global policy, not stored
    r = http.post(f"{base}/api/v1/validate", json=body)
    assert r.status_code == 200, r.text
    version: int = r.json()["global_policy_version"]
    return version


def _seen_after(http: httpx.Client, base: str, version: int) -> float:
    """Seconds until `base` answers `version` (polled), failing past the bound."""
    start = time.monotonic()
    while True:
        got = http.get(f"{base}/api/policy").json()["version"]
        elapsed = time.monotonic() - start
        if got >= version:
            return elapsed
        assert elapsed < BOUND_S, f"version {version} not seen after {elapsed:.3f} s (got {got})"
        time.sleep(0.01)


def _propagation(database_url: str, tmp_path: Path, **pes: str) -> list[float]:
    delays: list[float] = []
    with (
        _server(database_url, tmp_path / "a.log", **pes) as a,
        _server(database_url, tmp_path / "b.log", **pes) as b,
        httpx.Client(timeout=10) as http,
    ):
        # Both have read the current version (and so cached it) before the change.
        assert http.get(f"{a}/api/policy").json()["version"] == 1
        assert http.get(f"{b}/api/policy").json()["version"] == 1
        for k in range(ROUNDS):
            writer, reader = (a, b) if k % 2 == 0 else (b, a)
            time.sleep(0.3)  # the readers' refresh phases differ from round to round
            r = http.patch(f"{writer}/api/policy", json={"max_positions": 10 + k})
            assert r.status_code == 200, r.text
            version = r.json()["version"]
            sent = time.monotonic()
            delays.append(_seen_after(http, reader, version))
            assert _validation_version(http, reader, k) == version
            assert time.monotonic() - sent < BOUND_S + 1.0  # the validation's own time
            assert http.get(f"{reader}/api/policy").json()["max_positions"] == 10 + k
    print(f"\nglobal policy change seen by the other worker after (s): {delays}")
    return delays


def test_a_change_reaches_the_other_worker_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    delays = _propagation(database_url, tmp_path)
    assert len(delays) == ROUNDS and max(delays) < BOUND_S


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgresql_a_notification_carries_the_change(database_url: str, tmp_path: Path) -> None:
    """With a 30 s refresh, polling cannot explain a change seen within a second: each
    worker's listener hears the writer's NOTIFY and reads the new version at once."""
    delays = _propagation(database_url, tmp_path, refresh_s="30")
    assert len(delays) == ROUNDS and max(delays) < BOUND_S


def test_the_refresh_setting_is_the_bound(tmp_path: Path) -> None:
    """With a 5 s refresh the other worker still shows the old version a second later."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    with (
        _server(url, tmp_path / "a.log", refresh_s="5") as a,
        _server(url, tmp_path / "b.log", refresh_s="5") as b,
        httpx.Client(timeout=10) as http,
    ):
        assert http.get(f"{b}/api/policy").json()["version"] == 1
        r = http.patch(f"{a}/api/policy", json={"max_positions": 42})
        assert r.status_code == 200, r.text
        time.sleep(1.0)
        assert http.get(f"{b}/api/policy").json()["version"] == 1
        assert http.get(f"{a}/api/policy").json()["version"] == 2  # its own change: at once
