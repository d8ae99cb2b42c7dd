"""`BatchResult`: the verdicts of K weight vectors, breaches kept sparse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models import Violation
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["BatchResult", "RowLabel"]


@dataclass(frozen=True)
class RowLabel:
    """What one row of the batch measures (a column of `BatchResult.breaches`)."""

    policy_name: str
    kind: str
    """The constraint kind (`weight_bounds`, `volatility`, ...)."""
    violation_type: str
    """`<kind>.<max|min|...>`, as a violation reports it."""
    subject: str | None


@dataclass
class BatchResult:
    """The check of K weight vectors against every row of the compiled policies.

    Breaches are kept as coordinates (most vectors breach few rows): `breaches` builds the
    dense `(K, rows)` array on demand. `violations(k)` reports the k-th vector through the
    single-request checker and report, so its violations are that checker's own.
    """

    labels: tuple[RowLabel, ...]
    is_compliant: BoolArray
    """(K,) False iff a strict policy has a blocking breach (SPEC §5)."""
    breach_vector: IntArray
    """Per breach: the vector (0..K-1), in vector then row order."""
    breach_row: IntArray
    """Per breach: the row (a column of `breaches`, an index into `labels`)."""
    observed: FloatArray
    """Per breach: the row's value."""
    active: BoolArray
    """Per breach: active (the decision creates or worsens it) or passive."""
    rechecked: IntArray
    """Vectors answered by the single-request checker (near a threshold, or fallback)."""
    backend: str
    _report: Callable[[int], list[Violation]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.is_compliant)

    @property
    def breaches(self) -> BoolArray:
        """(K, rows) True where a row is breached."""
        dense = np.zeros((len(self.is_compliant), len(self.labels)), dtype=bool)
        dense[self.breach_vector, self.breach_row] = True
        return dense

    def breached_rows(self, k: int) -> list[tuple[RowLabel, float, bool]]:
        """The k-th vector's breached rows: label, observed value, active."""
        picked = np.flatnonzero(self.breach_vector == self._index(k))
        return [
            (self.labels[int(self.breach_row[j])], float(self.observed[j]), bool(self.active[j]))
            for j in picked
        ]

    def violations(self, k: int) -> list[Violation]:
        """The k-th vector's violations, exactly as the single-request checker reports them."""
        return self._report(self._index(k))

    def _index(self, k: int) -> int:
        size = len(self.is_compliant)
        if not -size <= k < size:
            raise IndexError(f"vector {k} out of range: the batch holds {size}")
        return k % size
