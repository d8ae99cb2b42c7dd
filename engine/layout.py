"""Compile stage, numeric half: policies + request -> row sets with provenance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.context import CompileContext
from engine.kinds import REGISTRY
from engine.portfolio import Snapshot
from engine.rows import Provenance, RowSet
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray

__all__ = ["Layout", "build_layout"]


@dataclass
class Layout:
    """Every row of every applicable policy for one request, with pre-trade values."""

    snap: Snapshot
    rowsets: list[RowSet]
    policies: list[PolicyDefinition]
    pre_values: list[FloatArray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pre_values = [rs.block.values(self.snap.w0) for rs in self.rowsets]

    def strict(self) -> list[int]:
        """Indices of the row sets of strict policies (the ones that constrain adjustment)."""
        return [k for k, rs in enumerate(self.rowsets) if _provenance(rs).strict]

    def structure(self, indices: Sequence[int]) -> tuple[Any, ...]:
        """Structure key of the chosen row sets (see `Block.structure`)."""
        return tuple((self.rowsets[k].block.structure(), self.rowsets[k].sense) for k in indices)


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
                rowsets.append(rowset)
    return Layout(snap=snap, rowsets=rowsets, policies=list(policies))
