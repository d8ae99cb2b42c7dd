"""Compile stage, numeric half: policies + request -> row sets with provenance."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.context import CompileContext
from engine.kinds import REGISTRY
from engine.portfolio import Snapshot
from engine.rows import Provenance, RowSet
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray

__all__ = ["Layout", "LayoutCache", "build_layout", "layout_key"]


@dataclass
class Layout:
    """Every row of every applicable policy for one request, with pre-trade values."""

    snap: Snapshot
    rowsets: list[RowSet]
    policies: list[PolicyDefinition]
    pre_values: list[FloatArray] = field(default_factory=list)

    _structures: dict[tuple[int, ...], tuple[Any, ...]] = field(default_factory=dict, repr=False)
    _solver: Layout | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.pre_values = [rs.block.values(self.snap.w0) for rs in self.rowsets]

    def rebind(self, snap: Snapshot) -> None:
        """Serve a new request with the same structure: new weights, prices and NAV."""
        for rowset in self.rowsets:
            if rowset.refresh is not None:
                rowset.refresh(snap)
        self.snap = snap
        self.pre_values = [rs.block.values(snap.w0) for rs in self.rowsets]

    def for_solver(self) -> Layout:
        """The layout the adjustment problems are built from.

        Every row set with a `restriction` (a rule that is not convex) is replaced by its
        restriction's convex rows, which imply it; the layout itself when there is none.
        Points feasible for the solver's layout are therefore compliant with this one, and
        the adjuster re-checks its answers against this one all the same.
        """
        if not any(rs.restriction for rs in self.rowsets):
            return self
        if self._solver is None:
            rowsets = [part for rs in self.rowsets for part in (rs.restriction or [rs])]
            self._solver = Layout(snap=self.snap, rowsets=rowsets, policies=self.policies)
        elif self._solver.snap is not self.snap:
            # `rebind` refreshed the restriction rows through their owners' `refresh`.
            self._solver.snap = self.snap
            self._solver.pre_values = [rs.block.values(self.snap.w0) for rs in self._solver.rowsets]
        return self._solver

    def strict(self) -> list[int]:
        """Indices of the row sets of strict policies (the ones that constrain adjustment)."""
        return [k for k, rs in enumerate(self.rowsets) if _provenance(rs).strict]

    def structure(self, indices: Sequence[int]) -> tuple[Any, ...]:
        """Structure key of the chosen row sets (see `Block.structure`); `rebind` keeps it."""
        key = tuple(indices)
        if key not in self._structures:
            self._structures[key] = tuple(
                (self.rowsets[k].block.structure(), self.rowsets[k].sense) for k in indices
            )
        return self._structures[key]


def _provenance(rowset: RowSet) -> Provenance:
    assert rowset.provenance is not None
    return rowset.provenance


def build_layout(
    policies: Sequence[PolicyDefinition], request: PolicyValidationRequest, snap: Snapshot
) -> Layout:
    """Compile every constraint of `policies` against the request's universe."""
    ctx = CompileContext(snap=snap, request=request)
    rowsets: list[RowSet] = []
    for policy in policies:
        ctx.policy_name = policy.policy_name
        for j, spec in enumerate(policy.rules.constraints):
            ctx.constraint_path = f"rules.constraints[{j}] ({spec.kind})"
            for rowset in REGISTRY[spec.kind].compile(spec, ctx):
                rowset.provenance = Provenance(policy=policy, constraint_index=j, kind=spec.kind)
                for part in rowset.restriction:
                    part.provenance = rowset.provenance
                rowsets.append(rowset)
    return Layout(snap=snap, rowsets=rowsets, policies=list(policies))


def layout_key(
    policies: Sequence[PolicyDefinition], request: PolicyValidationRequest, snap: Snapshot
) -> tuple[Any, ...]:
    """Everything a layout is built from except weights, prices and NAV (see `rebind`)."""
    static = request.portfolio_state.model_dump_json(
        exclude={
            "positions": True,
            "cash": True,
            "as_of": True,
            "instruments": {"__all__": {"price", "lot_size"}},
        }
    )
    return (tuple(p.model_dump_json() for p in policies), snap.symbols, static)


class LayoutCache:
    """Layouts by `layout_key`, least recently used first out; a hit is rebound."""

    def __init__(self, max_entries: int = 32) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], Layout] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        policies: Sequence[PolicyDefinition],
        request: PolicyValidationRequest,
        snap: Snapshot,
    ) -> Layout:
        """The layout of this request, built on a miss, rebound to `snap` on a hit."""
        key = layout_key(policies, request, snap)
        layout = self._entries.get(key)
        if layout is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            layout.rebind(snap)
            return layout
        self.misses += 1
        layout = build_layout(policies, request, snap)
        self._entries[key] = layout
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return layout
