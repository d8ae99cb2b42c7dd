"""Drift from the target weights of the state (`portfolio_state.target_weights`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock
from engine.compile.context import CompileContext
from engine.compile.kinds.base import Kind, register
from engine.compile.kinds.format import fixed, of_subject
from engine.compile.rows import RowSet
from engine.errors import MissingDataError
from models import TargetDrift
from models.contextual import concrete

__all__ = ["TargetDriftKind"]


@register
class TargetDriftKind(Kind):
    r"""Drift from target per name (`max`) and in total (`max_total`); absent names target 0.

    .. math:: |w_i - t_i| \le \mathrm{max} \quad (i \in V \text{ or } symbols), \qquad
              \sum_{i \in V} |w_i - t_i| + \sum_{j \in T \setminus V} |t_j|
              \le \mathrm{max\_total}

    Target names outside V are not in the decision: their drift is a constant of the total.
    """

    name = "target_drift"

    def compile(self, spec: TargetDrift, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        target = snap.target
        if target is None:
            raise MissingDataError(
                "portfolio_state.target_weights",
                f"{ctx.where()} needs the target weights (portfolio_state.target_weights)",
            )
        t = np.array([target.get(s, 0.0) for s in snap.symbols])
        out = []
        if spec.max is not None:
            chosen = list(range(snap.n))
            if spec.symbols is not None:
                wanted = set(spec.symbols)
                chosen = [i for i, s in enumerate(snap.symbols) if s in wanted]
            if chosen:
                block = AbsSumBlock(A=ctx.selection(chosen), c=-t[chosen])
                out.append(
                    RowSet(
                        block,
                        "le",
                        np.full(len(chosen), concrete(spec.max)),
                        [snap.symbols[i] for i in chosen],
                        "target_drift.max",
                        of_subject("{subject} drift from target"),
                    )
                )
        if spec.max_total is not None:
            outside = sum(abs(x) for s, x in target.items() if s not in snap.index)
            block = AbsSumBlock(
                A=sp.identity(snap.n, format="csr"),
                c=-t,
                G=sp.csr_matrix(np.ones((1, snap.n))),
                k=np.array([outside]),
            )
            out.append(
                RowSet(
                    block,
                    "le",
                    np.array([concrete(spec.max_total)]),
                    [None],
                    "target_drift.max_total",
                    fixed("total drift from target"),
                )
            )
        return out
