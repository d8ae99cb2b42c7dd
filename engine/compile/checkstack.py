"""The checker's static view of row sets laid end to end (see `engine.check.checker`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.compile.rows import RowSet
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["CheckStack"]


@dataclass(frozen=True)
class CheckStack:
    """What the checker needs to know about chosen row sets, laid end to end.

    Everything here depends only on the layout's structure (row counts, senses, policies),
    never on a request's numbers, so a layout keeps one per choice of row sets.
    """

    indices: tuple[int, ...]
    offsets: IntArray
    """Row `offsets[j]` is the first row of row set `indices[j]`; one more entry at the end."""
    sign: FloatArray
    """+1 for rows bounded from above (excess = value - limit), -1 from below."""
    always_active: BoolArray
    strict: BoolArray
    plain: bool
    """True when every row set measures its excess as `RowSet.excess` does for "le" and
    "ge"; otherwise the checker asks each row set (a sense or a row set type it does not
    know)."""

    @classmethod
    def of(cls, rowsets: Sequence[RowSet], indices: Sequence[int]) -> CheckStack:
        """The stack of `rowsets[k]` for k in `indices`."""
        chosen = [rowsets[k] for k in indices]
        counts = [rs.rows for rs in chosen]
        provenances = [rs.provenance for rs in chosen]
        assert all(p is not None for p in provenances)
        return cls(
            indices=tuple(indices),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            sign=np.repeat(np.array([1.0 if rs.sense == "le" else -1.0 for rs in chosen]), counts),
            always_active=np.repeat(np.array([rs.always_active for rs in chosen], bool), counts),
            strict=np.repeat(
                np.array([p is not None and p.strict for p in provenances], bool), counts
            ),
            plain=all(
                rs.sense in ("le", "ge") and type(rs).excess is RowSet.excess for rs in chosen
            ),
        )
