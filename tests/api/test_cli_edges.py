"""The command line at its edges: bad settings, a closed pipe, a request on standard input.

Each runs `python -m api.cli` in a subprocess, as a shell would, with a time limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
