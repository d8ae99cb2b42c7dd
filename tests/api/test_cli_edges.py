"""The command line at its edges: bad settings, a closed pipe, a request on standard input.

Each runs `python -m api.cli` in a subprocess, as a shell would, with a time limit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import CORE_POLICIES, REPO, REQUESTS

REQUEST = REQUESTS / "aapl-overweight.json"
POLICIES = ("--policies", str(CORE_POLICIES))
LIMIT_S = 120


def _environment(**variables: str) -> dict[str, str]:
    """This process's environment without PES_* settings, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    return {**env, "PYTHONPATH": str(REPO), **variables}


def _pes(
    *args: str, cwd: Path, env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=LIMIT_S,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PES_PORT", "abc", "valid integer"),
        ("PES_PORT", "-1", "greater than or equal to 0"),  # 0: a free port
        ("PES_PORT", "70000", "less than or equal to 65535"),
        ("PES_API_KEYS", "notjson", "not valid JSON"),
        ("PES_API_KEYS", '{"s3cret-key": "boss"}', "'reader', 'validator' or 'admin'"),
        ("PES_EVENTS", "kafka", "'none', 'log', 'nats' or 'pulsar'"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = _environment(**{variable: value})
    done = _pes("serve", cwd=tmp_path, env=env)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"pes serve: {variable}: "), err
    assert says in err
    assert "Traceback" not in err
    assert "s3cret" not in err  # an API key is never echoed
    assert not (tmp_path / "pes.db").exists()


def test_a_bad_option_is_named_as_the_option(tmp_path: Path) -> None:
    env = _environment()
    done = _pes("serve", "--port", "70000", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert (
        done.stderr.decode() == "pes serve: --port: Input should be less than or equal to 65535\n"
    )


def test_workers_below_one_are_refused_naming_the_option(tmp_path: Path) -> None:
    done = _pes("serve", "--workers", "0", cwd=tmp_path, env=_environment())
    assert done.returncode == 2
    assert (
        done.stderr.decode() == "pes serve: --workers: Input should be greater than or equal to 1\n"
    )


def test_serve_with_two_workers_answers_from_two_processes(tmp_path: Path) -> None:
    """`pes serve --workers 2`: the options reach both worker processes (their database)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database = tmp_path / "two.db"
    command = [sys.executable, "-m", "api.cli", "serve", "--workers", "2", "--port", str(port)]
    command += ["--database-url", f"sqlite:///{database}", "--events", "none"]
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=_environment(), stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + LIMIT_S
        workers: list[int] = []
        while time.monotonic() < deadline and server.poll() is None:
            workers = _spawned_children(server.pid)
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.TransportError:
                ready = 0
            if ready == 200 and len(workers) == 2:
                break
            time.sleep(0.2)
        assert server.poll() is None, log.read_text(errors="replace")
        assert len(workers) == 2
        assert database.exists()  # --database-url reached the workers
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/policies", timeout=10)
        assert answer.status_code == 200 and answer.json() == []
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _spawned_children(pid: int) -> list[int]:
    """uvicorn's worker processes (spawned through multiprocessing) under `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_closed_pipe_ends_quietly_with_141(tmp_path: Path) -> None:
    # 30 pretty responses are ~150 KB, more than a pipe holds: writes go on after the
    # reader has gone.
    files = [str(REQUEST)] * 30
    env = _environment()
    with subprocess.Popen(
        [sys.executable, "-m", "api.cli", "validate", *files, "--pretty", *POLICIES],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(1) == b"{"
        process.stdout.close()  # what `| head -c1` does
        err = process.stderr.read().decode()
        status = process.wait(timeout=LIMIT_S)
    assert status == 141, err
    assert err == "", err  # no traceback, no "Exception ignored"


def test_a_request_on_standard_input(tmp_path: Path) -> None:
    env = _environment()
    done = _pes("validate", "-", *POLICIES, cwd=tmp_path, env=env, stdin=REQUEST.read_bytes())
    assert done.returncode == 1, done.stderr.decode()  # the example is not compliant
    response = json.loads(done.stdout)
    assert response["decision_id"] == json.loads(REQUEST.read_text())["decision"]["decision_id"]
    assert done.stderr == b""


def test_bad_input_on_standard_input_is_named_stdin(tmp_path: Path) -> None:
    env = _environment()
    done = _pes(
        "validate", "-", "--policies", str(CORE_POLICIES), cwd=tmp_path, env=env, stdin=b"{"
    )
    assert done.returncode == 2
    assert done.stderr.decode().startswith("pes validate: <stdin>: not valid JSON")
    assert done.stdout == b""
