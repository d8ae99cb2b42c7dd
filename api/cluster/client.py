"""The Dask client of a run: an existing scheduler by address, else a LocalCluster."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from distributed import Client

__all__ = ["ClusterOptions", "add_cluster_options", "dask_client", "positive_int"]

log = logging.getLogger(__name__)

SCHEDULER_ENV = "PES_DASK_SCHEDULER"
"""Read when `--scheduler` is not given: production points every run at its cluster once."""

CONNECT_TIMEOUT = "10s"
"""How long a run keeps retrying a `--scheduler` that does not answer before it gives up."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where a run's tasks go.

    `scheduler` is a Dask scheduler's address (`tcp://host:8786`); without one a
    `LocalCluster` of `workers` processes (one thread each) is started for the run and
    closed after it. `memory_limit` bounds each local worker (Dask's own syntax, `"2GiB"`);
    Dask spills, then pauses, then restarts a worker that passes it.
    """

    scheduler: str | None = None
    workers: int = 2
    memory_limit: str = "auto"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1; got {self.workers}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClusterOptions:
        """The options of a command line parsed with `add_cluster_options`."""
        scheduler = args.scheduler or os.environ.get(SCHEDULER_ENV) or None
        return cls(scheduler=scheduler, workers=args.workers, memory_limit=args.memory_limit)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (workers, partition sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add `--scheduler`, `--workers` and `--memory-limit` to a command."""
    group = parser.add_argument_group("cluster (Dask)")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=(
            "an existing Dask scheduler (tcp://host:8786); default: $"
            f"{SCHEDULER_ENV}, else a LocalCluster started for this run"
        ),
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help="worker processes of the LocalCluster (default 2; ignored with --scheduler)",
    )
    group.add_argument(
        "--memory-limit",
        default="auto",
        metavar="SIZE",
        help="memory per local worker, e.g. 2GiB (default: the machine's memory / N)",
    )


@contextmanager
def dask_client(options: ClusterOptions) -> Iterator[Client]:
    """A Dask client for the run; a LocalCluster started here is closed on the way out.

    Raises
    ------
    RuntimeError
        Dask is not installed (the `cluster` extra), or the scheduler cannot be reached;
        the message says which.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the extra is part of dev
        raise RuntimeError(
            "Dask is not installed: pip install 'policy-enforcement-service[cluster]'"
        ) from exc
    if options.scheduler is not None:
        log.info("connecting to the Dask scheduler at %s", options.scheduler)
        try:
            client = Client(options.scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise RuntimeError(
                f"cannot reach the Dask scheduler at {options.scheduler}: {exc}"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    log.info("starting a LocalCluster of %d worker processes", options.workers)
    cluster = LocalCluster(
        n_workers=options.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=options.memory_limit,
        # Dask's HTTP routes on a free local port: with its default (8787) a second run on
        # the same host finds the port taken (a warning, and a socket left open).
        dashboard_address="127.0.0.1:0",
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
