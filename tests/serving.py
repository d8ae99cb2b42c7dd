"""`pes serve` as a real process for tests: started on a free port, healthy, stopped.

The server binds a free port itself (`--port 0`) and the port is read from its log: a port
picked by the test and passed in could be taken by a parallel test in between, and the
health check would then reach that test's server.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import httpx
import pytest

__all__ = ["REPO", "log_tail", "pes_serve"]

REPO = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def log_tail(log: Path, lines: int = 25) -> str:
    """The server log's last lines, tracebacks' frames left out."""
    if not log.exists():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = [line for line in text if line and not line.startswith((" ", "Traceback"))]
    return "\n".join(kept[-lines:])


@contextmanager
def pes_serve(
    database_url: str,
    events: str,
    env: Mapping[str, str],
    log: Path,
    *,
    ready_s: float,
    stop: Literal["kill", "terminate"] = "kill",
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`pes serve` as a process, healthy: the process and its base URL.

    On the way out a process still alive is killed (`stop="kill"`, as a crash would) or
    asked to stop (`"terminate"`, SIGTERM, then killed after 20 s). The log is appended to;
    only what this server writes is searched for its port.
    """
    command = [
        sys.executable, "-m", "api.cli", "serve", "--port", "0",
        "--database-url", database_url, "--events", events,
    ]  # fmt: skip
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + ready_s
        base = None
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pes serve exited with {proc.returncode}:\n{log_tail(log)}")
            if base is None:
                with log.open("rb") as written:
                    written.seek(offset)
                    found = _LISTENING.search(written.read())
                if found is not None:
                    base = f"http://127.0.0.1:{int(found.group(1))}"
            if base is not None:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"pes serve --events {events} not healthy within {ready_s:.0f} s:\n"
                    f"{log_tail(log)}"
                )
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM if stop == "terminate" else signal.SIGKILL)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
