"""Per-symbol kinds: weight bounds, restricted lists, allowed universe, trade limits."""

from __future__ import annotations

import numpy as np

from engine.compile.blocks import AbsSumBlock, AffineBlock
from engine.compile.context import IGNORED, CompileContext
from engine.compile.kinds.base import Kind, bound_of, register, select_where
from engine.compile.kinds.format import of_subject
from engine.compile.rows import BOUNDS, RowSet
from engine.weights.portfolio import Snapshot
from models import AllowedUniverse, Restricted, TradeLimit, WeightBounds
from models.contextual import concrete

__all__ = ["AllowedUniverseKind", "RestrictedKind", "TradeLimitKind", "WeightBoundsKind"]


def _in_universe(ctx: CompileContext, symbols: list[str]) -> list[int]:
    """Indices in V of the listed symbols that are in V, in V's order."""
    wanted = set(symbols)
    return [i for i, s in enumerate(ctx.snap.symbols) if s in wanted]


@register
class WeightBoundsKind(Kind):
    r"""Per-symbol weight bounds.

    .. math:: \mathrm{min}_i \le w_i \le \mathrm{max}_i

    for every selected symbol of V (all of V unless `symbols` is given); `per_symbol`
    overrides the bounds of the symbols it names.
    """

    name = "weight_bounds"

    def compile(self, spec: WeightBounds, ctx: CompileContext) -> list[RowSet]:
        per_symbol = spec.per_symbol or {}
        listed = spec.symbols if spec.symbols is not None else list(ctx.snap.symbols)
        idx = _in_universe(ctx, [*listed, *per_symbol])
        out = []
        for bound, sense in BOUNDS:
            rows, limits = [], []
            for i in idx:
                symbol = ctx.snap.symbols[i]
                limit = bound_of(per_symbol.get(symbol), spec, bound)
                if limit is not None:
                    rows.append(i)
                    limits.append(limit)
            if rows:
                block = AffineBlock(A=ctx.selection(rows), c=np.zeros(len(rows)))
                out.append(
                    RowSet(
                        block=block,
                        sense=sense,
                        limits=np.array(limits),
                        subjects=[ctx.snap.symbols[i] for i in rows],
                        violation_type=f"weight_bounds.{bound}",
                        describe=of_subject("{subject} weight"),
                    )
                )
        return out


def _selected(ctx: CompileContext, spec: Restricted | AllowedUniverse) -> list[str]:
    if spec.symbols is not None:
        return [s for s in ctx.snap.symbols if s in set(spec.symbols)]
    if spec.all_except is not None:
        return [s for s in ctx.snap.symbols if s not in set(spec.all_except)]
    assert spec.where is not None
    return select_where(ctx, spec.where, spec.missing, ctx.snap.symbols)


def _zero_rows(ctx: CompileContext, symbols: list[str], violation_type: str, what: str) -> RowSet:
    """Rows `|w_i| <= 0`: the symbols may not be held at all."""
    idx = [ctx.snap.index[s] for s in symbols]
    return RowSet(
        block=AbsSumBlock(A=ctx.selection(idx), c=np.zeros(len(idx))),
        sense="le",
        limits=np.zeros(len(idx)),
        subjects=list(symbols),
        violation_type=violation_type,
        describe=of_subject(what),
    )


@register
class RestrictedKind(Kind):
    r"""Restricted list, by mode, for each selected symbol of V.

    .. math::
        \text{no\_holding: } |w_i| \le 0 \quad \text{no\_buy: } w_i \le w^0_i \quad
        \text{no\_sell: } w_i \ge w^0_i \quad \text{no\_short: } w_i \ge 0 \quad
        \text{no\_trade: } |w_i - w^0_i| \le 0
    """

    name = "restricted"

    def compile(self, spec: Restricted, ctx: CompileContext) -> list[RowSet]:
        symbols = _selected(ctx, spec)
        if not symbols:
            return []
        vtype = f"restricted.{spec.mode}"
        if spec.mode == "no_holding":
            return [_zero_rows(ctx, symbols, vtype, "{subject} holding (restricted)")]
        idx = [ctx.snap.index[s] for s in symbols]
        select = ctx.selection(idx)
        w0 = ctx.snap.w0[idx]
        if spec.mode == "no_trade":
            block = AbsSumBlock(A=select, c=-w0)
            rowset = RowSet(
                block,
                "le",
                np.zeros(len(idx)),
                list(symbols),
                vtype,
                of_subject("{subject} weight change (no trade)"),
                always_active=True,
            )

            def refresh_offsets(snap: Snapshot) -> None:
                block.c = -snap.w0[idx]

            rowset.refresh = refresh_offsets
            return [rowset]
        affine = AffineBlock(A=select, c=np.zeros(len(idx)))
        if spec.mode in ("no_buy", "no_sell"):
            buy = spec.mode == "no_buy"
            what = "no buy above pre-trade" if buy else "no sale below pre-trade"
            rowset = RowSet(
                affine,
                "le" if buy else "ge",
                w0,
                list(symbols),
                vtype,
                of_subject("{subject} weight (" + what + ")"),
            )

            def refresh_limits(snap: Snapshot) -> None:
                rowset.limits = snap.w0[idx].copy()

            rowset.refresh = refresh_limits
            return [rowset]
        return [
            RowSet(
                affine,
                "ge",
                np.zeros(len(idx)),
                list(symbols),
                vtype,
                of_subject("{subject} weight (no short)"),
            )
        ]


@register
class AllowedUniverseKind(Kind):
    r"""Only selected symbols may be held.

    .. math:: |w_i| \le 0 \quad \text{for every } i \in V \text{ not selected}
    """

    name = "allowed_universe"

    def compile(self, spec: AllowedUniverse, ctx: CompileContext) -> list[RowSet]:
        allowed = set(_selected(ctx, spec))
        outside = [s for s in ctx.snap.symbols if s not in allowed]
        if not outside:
            return []
        return [
            _zero_rows(
                ctx, outside, "allowed_universe.outside", "{subject} holding (outside universe)"
            )
        ]


@register
class TradeLimitKind(Kind):
    r"""Per-symbol trade size limits (always active).

    .. math::
        |w_i - w^0_i| \le \mathrm{max\_weight\_change}, \qquad
        |w_i - w^0_i| \le f \cdot \mathrm{adv}_i \, p_i / \mathrm{NAV}
    """

    name = "trade_limit"

    def compile(self, spec: TradeLimit, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        idx = _in_universe(ctx, spec.symbols) if spec.symbols is not None else list(range(snap.n))
        out = []
        if spec.max_weight_change is not None and idx:
            out.append(
                self._rows(
                    ctx,
                    idx,
                    np.full(len(idx), concrete(spec.max_weight_change)),
                    "trade_limit.max_weight_change",
                )
            )
        if spec.max_adv_fraction is not None:
            adv_idx, advs = [], []
            for i in idx:
                adv = ctx.numeric_attribute(snap.symbols[i], "adv", spec.missing)
                if adv is IGNORED:
                    continue
                adv_idx.append(i)
                advs.append(adv)
            if adv_idx:
                fraction, adv_shares = concrete(spec.max_adv_fraction), np.array(advs)

                def adv_limits(snap: Snapshot) -> np.ndarray:
                    return np.asarray(fraction * adv_shares * snap.prices[adv_idx] / snap.nav)

                rowset = self._rows(ctx, adv_idx, adv_limits(snap), "trade_limit.max_adv_fraction")
                refresh_offsets = rowset.refresh
                assert refresh_offsets is not None

                def refresh(snap: Snapshot) -> None:
                    refresh_offsets(snap)
                    rowset.limits = adv_limits(snap)

                rowset.refresh = refresh
                out.append(rowset)
        return out

    @staticmethod
    def _rows(ctx: CompileContext, idx: list[int], limits: np.ndarray, vtype: str) -> RowSet:
        block = AbsSumBlock(A=ctx.selection(idx), c=-ctx.snap.w0[idx])

        def refresh(snap: Snapshot) -> None:
            block.c = -snap.w0[idx]

        return RowSet(
            block,
            "le",
            limits,
            [ctx.snap.symbols[i] for i in idx],
            vtype,
            of_subject("{subject} weight change"),
            always_active=True,
            refresh=refresh,
        )
