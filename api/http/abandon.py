"""Run a route's blocking work in a worker thread and abandon it when the client leaves.

A synchronous route holds the engine until its work ends, whether or not anyone still
waits for the answer. `run_abandonable` runs the work in a worker thread and polls the
connection meanwhile; when the client disconnects it sets the cancellation token the work
was given (an `engine.Deadline`'s `cancel`), and the engine stops at its next check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import anyio
import anyio.to_thread

__all__ = ["DISCONNECT_POLL_S", "Connection", "run_abandonable"]

T = TypeVar("T")

DISCONNECT_POLL_S = 0.1
"""How often the connection is polled: a departed client's work stops within about this
(plus the engine's time to its next check)."""


class Connection(Protocol):
    """What is needed of the request: `starlette.requests.Request` has it."""

    async def is_disconnected(self) -> bool:
        """True once the client has gone."""
        ...


async def run_abandonable(
    connection: Connection,
    cancel: threading.Event,
    work: Callable[[], T],
    *,
    poll_s: float = DISCONNECT_POLL_S,
) -> T:
    """`work()` in a worker thread; `cancel` is set if the client disconnects before it ends.

    The work's own result or exception is returned or raised (a cancelled engine raises
    `engine.RequestCancelled`).
    """
    finished = anyio.Event()

    async def watch() -> None:
        while not finished.is_set():
            if await connection.is_disconnected():
                cancel.set()
                return
            with anyio.move_on_after(poll_s):
                await finished.wait()

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            result = await anyio.to_thread.run_sync(work)
        except Exception as exc:  # raised below, outside the group: not as an ExceptionGroup
            failure = exc
        finally:
            finished.set()
    if failure is not None:
        raise failure
    return result
