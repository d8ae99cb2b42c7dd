"""The run: chunks submitted to a Dask client, a progress bar, the breaches and the summary."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.check_all.plan import Group
from api.check_all.tasks import Breach, Chunk, ChunkResult, check_chunk
from api.cluster import ProgressBar

if TYPE_CHECKING:  # pragma: no cover - typing only
    from distributed import Client

__all__ = ["BREACH_COLUMNS", "CheckAllResult", "run_check_all", "write_breaches"]

log = logging.getLogger(__name__)

BREACH_COLUMNS = (
    "portfolio_id",
    "policy_name",
    "policy_type",
    "kind",
    "violation_type",
    "enforcement_level",
    "severity",
    "breach",
    "subject",
    "observed",
    "limit",
    "description",
)


@dataclass
class CheckAllResult:
    """Every portfolio's check: counts, breaches (in portfolio order) and refusals."""

    portfolios: int = 0
    groups: int = 0
    partitions: int = 0
    screened: int = 0
    rechecked: int = 0
    breaches: list[Breach] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def in_breach(self) -> list[str]:
        """The portfolios with at least one breach, sorted."""
        return sorted({b.portfolio_id for b in self.breaches})

    def summary(self) -> dict[str, Any]:
        """The summary as JSON-ready data (what `--format json` prints)."""
        per_policy: dict[str, dict[str, int]] = {}
        portfolios: dict[str, set[str]] = {}
        for b in self.breaches:
            entry = per_policy.setdefault(b.policy_name, {"breaches": 0, "portfolios": 0})
            entry["breaches"] += 1
            portfolios.setdefault(b.policy_name, set()).add(b.portfolio_id)
        for name, ids in portfolios.items():
            per_policy[name]["portfolios"] = len(ids)
        return {
            "portfolios_checked": self.portfolios,
            "portfolios_in_breach": len(self.in_breach),
            "breaches": len(self.breaches),
            "breaches_by_policy": dict(sorted(per_policy.items())),
            "breaches_by_severity": dict(
                sorted(Counter(b.severity for b in self.breaches).items())
            ),
            "groups": self.groups,
            "partitions": self.partitions,
            "screened_compliant": self.screened,
            "checked_by_single_request_engine": self.rechecked,
            "seconds": round(self.seconds, 3),
            "portfolios_per_second": round(self.portfolios / self.seconds, 1)
            if self.seconds > 0
            else None,
        }


def _chunks(
    group: Group,
    positions: Mapping[str, Mapping[str, float]],
    cash: Mapping[str, float],
    size: int,
) -> list[Chunk]:
    ids = group.portfolios
    return [
        Chunk(
            portfolios=ids[start : start + size],
            positions=[dict(positions[p]) for p in ids[start : start + size]],
            cash=[float(cash.get(p, 0.0)) for p in ids[start : start + size]],
        )
        for start in range(0, len(ids), size)
    ]


def run_check_all(
    client: Client,
    groups: Sequence[Group],
    positions: Mapping[str, Mapping[str, float]],
    cash: Mapping[str, float],
    *,
    partition_size: int = 200,
    backend: str = "numpy",
    progress: bool = True,
) -> CheckAllResult:
    """Check every group's portfolios on `client`, `partition_size` portfolios a task.

    Each group is sent to the cluster once (scattered); each task takes one chunk of it.
    Breaches come back in portfolio order, then as the single-request engine lists them.
    """
    from distributed import as_completed

    start = time.perf_counter()
    work = [(g, _chunks(g, positions, cash, partition_size)) for g in groups]
    result = CheckAllResult(
        portfolios=sum(len(g.portfolios) for g in groups),
        groups=len(groups),
        partitions=sum(len(chunks) for _, chunks in work),
    )
    log.info(
        "%d portfolios in %d groups, %d partitions",
        result.portfolios,
        result.groups,
        result.partitions,
    )
    parts: list[ChunkResult] = []
    with ProgressBar("check-all", result.partitions, enabled=progress) as bar:
        futures = []
        for group, chunks in work:
            shared = client.scatter(group, hash=False)
            futures += [
                client.submit(check_chunk, shared, chunk, backend, pure=False) for chunk in chunks
            ]
        for future in as_completed(futures):
            parts.append(future.result())
            bar.advance()
    for part in parts:
        result.screened += part.screened
        result.rechecked += part.rechecked
        result.breaches.extend(part.breaches)
        result.errors.extend(part.errors)
    order = {p: k for k, p in enumerate(sorted(positions))}
    result.breaches.sort(key=lambda b: order.get(b.portfolio_id, -1))
    result.errors.sort(key=lambda e: order.get(e[0], -1))
    result.seconds = time.perf_counter() - start
    return result


def write_breaches(path: Path, breaches: Sequence[Breach]) -> None:
    """The breaches as a Parquet file, one row each (`BREACH_COLUMNS`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (name, pa.float64() if name in ("observed", "limit") else pa.string())
            for name in BREACH_COLUMNS
        ]
    )
    columns = {name: [getattr(b, name) for b in breaches] for name in BREACH_COLUMNS}
    pq.write_table(pa.table(columns, schema=schema), path)
