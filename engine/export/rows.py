"""Collecting the export's linear rows, auxiliary variables and fixed weights."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from engine.compile.layout import Layout
from engine.compile.rows import Provenance, RowSet
from engine.tolerances import TOLERANCE
from models.export import Auxiliary, FixedWeight, RowInfo, SparseMatrix
from models.typing import BoolArray

__all__ = ["ExportRowBuilder", "sparse_of"]


def sparse_of(matrix: sp.spmatrix, *, columns: int) -> SparseMatrix:
    """`matrix` in coordinate form (explicit zeros dropped), `columns` wide."""
    coo = sp.coo_matrix(matrix)
    keep = coo.data != 0.0
    return SparseMatrix(
        shape=(int(coo.shape[0]), columns),
        row=coo.row[keep].astype(int).tolist(),
        col=coo.col[keep].astype(int).tolist(),
        val=coo.data[keep].astype(float).tolist(),
    )


class ExportRowBuilder:
    """Linear rows `lower <= a x <= upper` over `x = [w (n), aux]`, one row set at a time.

    `start` names the row set the next rows come from; `add` appends one of its limit rows,
    `add_auxiliary` a row that defines an auxiliary variable.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.auxiliary: list[Auxiliary] = []
        self.lower: list[float | None] = []
        self.upper: list[float | None] = []
        self.infos: list[RowInfo] = []
        self._entries: list[tuple[int, int, float]] = []
        self._fixed: dict[int, list[tuple[float, str]]] = {}
        self._layout: Layout | None = None
        self._k = -1
        self._tightened: BoolArray = np.zeros(0, dtype=bool)
        self._encoding: str | None = None

    def start(self, layout: Layout, k: int, *, tightened: BoolArray, encoding: str | None) -> None:
        """The following rows come from row set `k` of `layout`.

        `tightened` says per row whether its bound was moved inward by the margin;
        `encoding` names the convex restriction the rows stand for (None: the rule itself).
        """
        self._layout, self._k, self._tightened = layout, k, tightened
        self._encoding = encoding

    @property
    def _rowset(self) -> RowSet:
        assert self._layout is not None
        return self._layout.rowsets[self._k]

    @property
    def _provenance(self) -> Provenance:
        provenance = self._rowset.provenance
        assert provenance is not None
        return provenance

    def info(self, r: int, role: Literal["limit", "auxiliary", "conic"]) -> RowInfo:
        """Provenance of row `r` of the current row set.

        Conic rows carry the limit, pre-trade value and flags of the row they encode.
        """
        assert self._layout is not None
        rowset, provenance = self._rowset, self._provenance
        policy = provenance.policy
        limit_row = role != "auxiliary"
        pre = float(self._layout.pre_values[self._k][r]) if limit_row else None
        subject = rowset.subjects[r] if limit_row else None
        passive = limit_row and bool(rowset.excess(self._layout.pre_values[self._k])[r] > TOLERANCE)
        return RowInfo(
            policy_name=policy.policy_name,
            policy_type=policy.policy_type,
            enforcement_level=policy.enforcement_level,
            kind=provenance.kind,
            constraint_index=provenance.constraint_index,
            violation_type=rowset.violation_type,
            subject=subject,
            role=role,
            limit=float(rowset.limits[r]) if limit_row else None,
            pre_trade=pre,
            passive=passive,
            tightened=limit_row and bool(self._tightened[r]),
            exact=self._encoding is None,
            encoding=self._encoding,
            description=rowset.describe(subject) if limit_row else "",
        )

    def _append(self, entries: dict[int, float], lower: float | None, upper: float | None) -> None:
        row = len(self.infos) - 1
        self._entries += [(row, col, val) for col, val in entries.items() if val != 0.0]
        # (+ 0.0 turns the -0.0 of a negated zero offset into 0.0)
        self.lower.append(None if lower is None else lower + 0.0)
        self.upper.append(None if upper is None else upper + 0.0)

    def add(
        self, r: int, entries: dict[int, float], lower: float | None, upper: float | None
    ) -> None:
        """Append limit row `r` of the current row set: `lower <= sum entries[c] x_c <= upper`."""
        self.infos.append(self.info(r, "limit"))
        self._append(entries, lower, upper)

    def add_auxiliary(self, entries: dict[int, float], lower: float) -> None:
        """Append a row `sum entries[c] x_c >= lower` that defines auxiliary variables."""
        self.infos.append(self.info(0, "auxiliary"))
        self._append(entries, lower, None)

    def add_conic(
        self, r: int, entries: dict[int, float], lower: float | None, upper: float | None
    ) -> None:
        """Append a linear row of the conic form of row `r` of the current row set."""
        self.infos.append(self.info(r, "conic"))
        self._append(entries, lower, upper)

    def auxiliary_variable(
        self, name: str, *, lower: float | None, upper: float | None = None
    ) -> int:
        """A new auxiliary variable of the current row set; returns its column in `x`."""
        provenance = self._provenance
        full = (
            f"{provenance.policy_name}#{provenance.constraint_index}."
            f"{self._rowset.violation_type}.{name}"
        )
        index = self.n + len(self.auxiliary)
        self.auxiliary.append(Auxiliary(name=full, index=index, lower=lower, upper=upper))
        return index

    def fix(self, i: int, value: float) -> None:
        """Record that weight `i` must equal `value` (a zero row of the current row set)."""
        self._fixed.setdefault(i, []).append((value, self._provenance.policy_name))

    def fixed_weights(self, symbols: tuple[str, ...]) -> list[FixedWeight]:
        """Weights held to one value; a weight held to two values is left to the rows."""
        out = []
        for i in sorted(self._fixed):
            values = {value for value, _ in self._fixed[i]}
            if len(values) == 1:
                policies = sorted({name for _, name in self._fixed[i]})
                out.append(
                    FixedWeight(symbol=symbols[i], index=i, value=values.pop(), policies=policies)
                )
        return out

    def matrix(self) -> SparseMatrix:
        """Every row so far, `n + len(auxiliary)` columns wide."""
        shape = (len(self.infos), self.n + len(self.auxiliary))
        if not self._entries:
            return SparseMatrix(shape=shape, row=[], col=[], val=[])
        rows, cols, vals = (np.array(part) for part in zip(*self._entries, strict=True))
        return sparse_of(sp.coo_matrix((vals, (rows, cols)), shape=shape), columns=shape[1])
