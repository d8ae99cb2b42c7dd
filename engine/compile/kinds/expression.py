"""The `expression` kind: a custom convex constraint written in the expression language."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from engine.compile.context import CompileContext
from engine.compile.kinds.base import Kind, register
from engine.compile.kinds.format import fixed
from engine.compile.language.bind import bind, universe_of
from engine.compile.language.block import ExpressionBlock
from engine.compile.language.curvature import analyze
from engine.compile.language.expression import ExpressionError
from engine.compile.language.nodes import Constraint
from engine.compile.rows import RowSet, Sense, Unit
from engine.errors import InputError
from engine.weights.portfolio import Snapshot
from models import Expression

__all__ = ["ExpressionKind"]


def _field(ctx: CompileContext) -> str:
    return f"policies[{ctx.policy_name}].{ctx.constraint_path.split(' ')[0]}.expr"


def _confirm_dcp(block: ExpressionBlock, constraint: Constraint, ctx: CompileContext) -> None:
    """Check that cvxpy agrees with the syntactic analysis; if not, refuse (fail closed)."""
    params = block.declare()
    probe = block.expression(cp.Variable(block.bindings.n_v), params)
    convex_ok = constraint.upper is None or probe.is_convex()
    concave_ok = constraint.lower is None or probe.is_concave()
    if not (convex_ok and concave_ok and probe.is_dpp()):
        raise InputError(
            _field(ctx),
            f"{ctx.where()}: {constraint.text} passed the expression checker but cvxpy does "
            "not accept it as convex (DCP/DPP); the policy is refused rather than guessed at",
        )


@register
class ExpressionKind(Kind):
    r"""A custom expression `e` of the weights, bounded above and/or below.

    .. math:: \mathrm{lower} \le e(w, w^0, b, x) \le \mathrm{upper}

    One row per bound (`expression.max`, `expression.min`), subject null.
    """

    name = "expression"

    def compile(self, spec: Expression, ctx: CompileContext) -> list[RowSet]:
        try:
            constraint = analyze(spec.expr)
        except ExpressionError as exc:
            raise InputError(_field(ctx), exc.message) from None
        universe = universe_of(constraint, ctx)
        bindings = bind(constraint, ctx, universe, spec.missing)
        block = ExpressionBlock(constraint=constraint, bindings=bindings, w0=ctx.snap.w0)
        _confirm_dcp(block, constraint, ctx)

        def refresh(snap: Snapshot) -> None:
            block.w0 = snap.w0

        what = fixed(f"expression {constraint.body.text}")
        unit: Unit = "risk" if constraint.needs_cone else "weight"
        rows: list[tuple[str, Sense, float]] = []
        if constraint.upper is not None:
            rows.append(("max", "le", constraint.upper))
        if constraint.lower is not None:
            rows.append(("min", "ge", constraint.lower))
        return [
            RowSet(
                block,
                sense,
                np.array([limit]),
                [None],
                f"expression.{bound}",
                what,
                unit=unit,
                refresh=refresh,
            )
            for bound, sense, limit in rows
        ]
