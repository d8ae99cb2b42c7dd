"""Currency kinds: cash per currency and net currency exposure (docs/currencies.md).

Every amount is in base-currency units over NAV (`engine.weights.currencies`). A trade
settles in its instrument's currency c, so moving weight `w_i - w0_i` of a name priced in c
takes the same weight out of c's cash:

    cash_c(w) = (m_c + f_c) / NAV - sum_{i in c} (w_i - w0_i)

with `m_c` the cash held in c and `f_c` what the decision's FX trades add to it. The net
exposure to c, positions plus cash (plus hedges `h_c`), is then

    x_c(w) = sum_{i in c} w_i + cash_c(w) + h_c / NAV = sum_{i in c} w0_i + (m_c + f_c + h_c) / NAV

which trades in securities do not move (buying a yen stock with yen leaves the yen exposure
as it was): only FX trades do. Both are affine rows; the FX trades enter as constants with a
`pre_shift`, so a row they worsen is an active breach.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AffineBlock
from engine.compile.context import CompileContext
from engine.compile.kinds.base import Kind, bound_of, register
from engine.compile.rows import BOUNDS, RowSet
from engine.weights.portfolio import Snapshot
from models import Bounds, Cash, CurrencyExposure
from models.typing import FloatArray

__all__ = ["CurrencyExposureKind", "cash_by_currency"]


def _membership(snap: Snapshot, currencies: list[str]) -> sp.csr_matrix:
    """0/1 rows: the names of V priced in each currency."""
    position = {c: r for r, c in enumerate(currencies)}
    entries = [(position[c], i) for i, c in enumerate(snap.money.currencies) if c in position]
    return sp.csr_matrix(
        (np.ones(len(entries)), ([r for r, _ in entries], [i for _, i in entries])),
        shape=(len(currencies), snap.n),
    )


def _per_currency(snap: Snapshot, amounts: dict[str, float], currencies: list[str]) -> FloatArray:
    return np.array([amounts.get(c, 0.0) for c in currencies]) / snap.nav


def _rows(
    block: AffineBlock,
    currencies: list[str],
    bounds: Callable[[str, str], float | None],
    violation_type: str,
    what: Callable[[str | None], str],
    shift: Callable[[], FloatArray | None],
) -> list[RowSet]:
    """One row set per bound, over the currencies that have that bound.

    Each row set views the rows of its currencies through its own block (a row selection of
    `block`'s A and c); `refresh` of the caller updates `block`, and each set's
    `sync` re-selects.
    """
    out = []
    for bound, sense in BOUNDS:
        picked = [r for r, c in enumerate(currencies) if bounds(c, bound) is not None]
        if not picked:
            continue
        limits = [bounds(currencies[r], bound) for r in picked]
        part = AffineBlock(A=sp.csr_matrix(block.A)[picked], c=block.c[picked])
        whole = shift()
        rowset = RowSet(
            part,
            sense,
            np.array(limits, dtype=float),
            [currencies[r] for r in picked],
            f"{violation_type}.{bound}",
            what,
            pre_shift=None if whole is None else whole[picked],
        )
        rowset.refresh = _resync(rowset, part, block, picked, shift)
        out.append(rowset)
    return out


def _resync(
    rowset: RowSet,
    part: AffineBlock,
    whole: AffineBlock,
    picked: list[int],
    shift: Callable[[], FloatArray | None],
) -> Callable[[Snapshot], None]:
    def refresh(_snap: Snapshot) -> None:
        part.c = whole.c[picked]
        shifted = shift()
        rowset.pre_shift = None if shifted is None else shifted[picked]

    return refresh


class _Flows:
    """The constants of a request's currency rows, recomputed when a layout is rebound."""

    def __init__(self, snap: Snapshot, currencies: list[str], *, hedges: bool) -> None:
        self.currencies, self.hedges = currencies, hedges
        self.update(snap)

    def update(self, snap: Snapshot) -> None:
        """Read the cash, flows and hedges of `snap` (in base units, over NAV)."""
        money = snap.money
        self.cash = _per_currency(snap, money.cash, self.currencies)
        self.flows = _per_currency(snap, money.flows, self.currencies)
        self.hedge = (
            _per_currency(snap, money.hedges, self.currencies)
            if self.hedges
            else np.zeros(len(self.currencies))
        )
        self.held = np.asarray(_membership(snap, self.currencies) @ snap.w0).ravel()

    def shift(self) -> FloatArray | None:
        """The FX trades' part of every row (None when the decision has none)."""
        return self.flows if self.flows.any() else None


def cash_by_currency(spec: Cash, ctx: CompileContext) -> list[RowSet]:
    r"""Cash per currency c, after the decision, in base units over NAV.

    .. math:: \mathrm{min}_c \le \frac{m_c + f_c}{NAV} - \sum_{i \in c} (w_i - w^0_i)
              \le \mathrm{max}_c

    `min` defaults to 0: no overdraft. Rows for the base currency and every currency in use.
    """
    snap = ctx.snap
    currencies = snap.money.in_use()
    flows = _Flows(snap, currencies, hedges=False)
    members = _membership(snap, currencies)
    block = AffineBlock(A=-members, c=flows.cash + flows.flows + flows.held)

    def bounds(currency: str, bound: str) -> float | None:
        limit = bound_of((spec.per_currency or {}).get(currency), spec, bound)
        return 0.0 if limit is None and bound == "min" else limit

    rowsets = _rows(block, currencies, bounds, "cash", lambda c: f"{c} cash", flows.shift)
    return _refreshed(rowsets, snap, flows, block, lambda f: f.cash + f.flows + f.held)


def _refreshed(
    rowsets: list[RowSet],
    snap: Snapshot,
    flows: _Flows,
    block: AffineBlock,
    offset: Callable[[_Flows], FloatArray],
) -> list[RowSet]:
    """Chain each row set's refresh after one update of the shared constants."""
    done: dict[str, Snapshot] = {"snap": snap}

    def update(new: Snapshot) -> None:
        if done["snap"] is not new:
            done["snap"] = new
            flows.update(new)
            block.c = offset(flows)

    for rowset in rowsets:
        own = rowset.refresh
        assert own is not None

        def refresh(new: Snapshot, own: Callable[[Snapshot], None] = own) -> None:
            update(new)
            own(new)

        rowset.refresh = refresh
    return rowsets


@register
class CurrencyExposureKind(Kind):
    r"""Net exposure to each currency (or to every non-base currency together).

    .. math:: \mathrm{min}_c \le \sum_{i \in c} w_i + \frac{\mathrm{cash}_c + h_c}{NAV}
              = \sum_{i \in c} w^0_i + \frac{m_c + f_c + h_c}{NAV} \le \mathrm{max}_c

    `h_c` is the state's FX forwards in c (when `hedges`); security trades settle in their
    own currency and leave the exposure unchanged, FX trades (`f_c`) move it.
    """

    name = "currency_exposure"

    def compile(self, spec: CurrencyExposure, ctx: CompileContext) -> list[RowSet]:
        snap = ctx.snap
        base = snap.money.base
        foreign = [c for c in snap.money.in_use() if c != base]
        if spec.total:
            currencies = foreign
        else:
            currencies = list(dict.fromkeys(spec.currencies)) if spec.currencies else foreign
        if not currencies:
            return []
        flows = _Flows(snap, currencies, hedges=spec.hedges)

        def exposure(f: _Flows) -> FloatArray:
            return f.held + f.cash + f.flows + f.hedge

        if spec.total:
            values, shift = exposure(flows), flows.shift
            block = AffineBlock(A=sp.csr_matrix((1, snap.n)), c=np.array([values.sum()]))

            def total_shift() -> FloatArray | None:
                part = shift()
                return None if part is None else np.array([part.sum()])

            rowsets = _rows(
                block,
                ["non-base"],
                lambda _c, bound: bound_of(None, spec, bound),
                "currency_exposure",
                lambda _c: f"non-{base} currency exposure",
                total_shift,
            )
            for rowset in rowsets:
                rowset.subjects = [None]
            return _refreshed(rowsets, snap, flows, block, lambda f: np.array([exposure(f).sum()]))
        block = AffineBlock(A=sp.csr_matrix((len(currencies), snap.n)), c=exposure(flows))
        per: dict[str, Bounds] = spec.per_currency or {}
        rowsets = _rows(
            block,
            currencies,
            lambda c, bound: bound_of(per.get(c), spec, bound),
            "currency_exposure",
            lambda c: f"{c} currency exposure",
            flows.shift,
        )
        return _refreshed(rowsets, snap, flows, block, exposure)
