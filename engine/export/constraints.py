"""The constraint-set export: a policy set compiled to solver-neutral rows over weights `w`.

The export is built from the same row sets the checker and the adjuster use
(`engine.compile.layout.build_layout`), with the adjuster's bounds
(`engine.adjust.bounds.solve_bounds`: rows breached before trading may not get worse unless
`cure_passive`), tightened by the requested margin the way the adjuster's tightened rounds
are (`engine.adjust.bounds.shifted`: never past the pre-trade value, so not trading stays
feasible). An optimizer that stays inside the exported set (to within the margin) proposes a
decision the service accepts.

Per block type (`engine.compile.blocks`), over `x = [w, aux]`, as each block chooses by
`Block.export` (a block without an export, which a solver layout never holds, is an error):

- ``AffineBlock``: one linear row per row, `A w` within `bound - c`.
- ``AbsSumBlock`` without a group matrix (no-holding, no-trade, trade limits): each term
  `|a_j w + c_j| <= bound_j` is the two-sided row `-bound_j <= a_j w + c_j <= bound_j`; a
  single weight pinned this way (to 0, or to w0 by no-trade) is also listed in `fixed`.
- ``AbsSumBlock`` with a group matrix (gross exposure, turnover, gross group limits): an
  auxiliary `t_j >= |a_j w + c_j|` per term (two rows), and `G t <= bound - k` (linearized),
  or a named ``abs_sum`` block.
- ``SumLargestAbsBlock``: `k s + sum(u) <= bound`, `u_i >= |w_i| - s`, `u >= 0` (linearized),
  or a named ``sum_largest_abs`` block.
- ``CVaRBlock``: `zeta + sum(z) / ((1 - beta) S) <= bound`, `z_s >= -r_s w - zeta`, `z >= 0`
  (Rockafellar-Uryasev, linearized), or a named ``cvar`` block.
- ``NormBlock``: a second-order cone `||M w + m||_2 <= bound / scale`.
- ``CappedSumBlock``, ``PositivePartSumBlock`` (regulatory rules): linearized over
  auxiliaries, or named ``capped_sum`` / ``positive_part_sum`` blocks
  (`engine.export.piecewise`).
- ``ExpressionBlock`` (custom expressions): cvxpy's conic canonical form, in both forms:
  linear rows over new auxiliaries plus second-order `conic` rows (`engine.export.conic`).

A rule that is not convex (the UCITS 40% aggregate) is exported as the convex restriction
the adjuster solves with (`Layout.for_solver`), its rows flagged `exact: false` with the
restriction's encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from engine.adjust.bounds import shifted, solve_bounds
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock
from engine.compile.language.block import ExpressionBlock
from engine.compile.layout import Layout, LayoutCache
from engine.compile.piecewise import CappedSumBlock, PositivePartSumBlock
from engine.compile.prepared import prepare
from engine.compile.rows import RowSet
from engine.export.blocks import (
    linearize_abs_sum,
    linearize_cvar,
    linearize_sum_largest_abs,
    named_abs_sum,
    named_cvar,
    named_sum_largest_abs,
)
from engine.export.conic import canonical_rows
from engine.export.piecewise import (
    linearize_capped_sum,
    linearize_positive_part_sum,
    named_capped_sum,
    named_positive_part_sum,
)
from engine.export.rows import ExportRowBuilder, sparse_of
from engine.resolve.global_policy import GlobalControls
from engine.resolve.references import ReferenceKey
from engine.tolerances import MARGIN_MOVED_FRACTION, TOLERANCE
from models import (
    CoordinatedTradingDecision,
    EnforcementLevel,
    PolicyDefinition,
    PolicyValidationRequest,
    PortfolioNode,
    ValidationMode,
)
from models.export import (
    ConicRows,
    ConstraintSet,
    ConstraintSetRequest,
    LinearConstraints,
    NamedBlock,
    SecondOrderCone,
    Variables,
)
from models.typing import FloatArray

__all__ = ["export_constraints", "policy_revision"]


def policy_revision(policies: Sequence[PolicyDefinition]) -> str:
    """sha256 of the policies' canonical JSON (sorted by name, sorted keys)."""
    dumped = [p.model_dump(mode="json") for p in sorted(policies, key=lambda p: p.policy_name)]
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validation_request(request: ConstraintSetRequest) -> PolicyValidationRequest:
    """The request as the compiler reads it: the same portfolio, no trades."""
    portfolio_id = request.portfolio_id or request.portfolio_state.portfolio_id
    return PolicyValidationRequest(
        decision=CoordinatedTradingDecision(
            decision_id="constraint-export", portfolio_id=portfolio_id
        ),
        portfolio_state=request.portfolio_state,
        applicable_policies=request.applicable_policies,
        policies=request.policies,
        context=dict(request.context),
        mode=ValidationMode.VALIDATE,
        cure_passive=request.options.cure_passive,
    )


def export_constraints(
    request: ConstraintSetRequest,
    stored: Sequence[PolicyDefinition] = (),
    *,
    lineage: Sequence[PortfolioNode] = (),
    layouts: LayoutCache | None = None,
    reference: ReferenceKey | None = None,
    controls: GlobalControls | None = None,
) -> ConstraintSet:
    """Compile the effective policies of `request` into the solver-neutral form.

    `stored` are the stored policies (the request's inline `policies` replace them).
    `lineage` is the portfolio and its ancestors in the hierarchy, nearest first (empty: not
    registered), exactly as for `PolicyEngine.validate`: the export holds the same
    effective set (inherited policies, overrides, the request's context, the default
    benchmark), prepared by the same front stages (`engine.compile.prepared.prepare`).
    `layouts` is the layout cache to compile through (the engine's; default: none kept);
    `reference` is as for `engine.compile.prepared.prepare`.
    Raises `engine.errors.InputError` (naming the field) for input that cannot be
    compiled.
    """
    options = request.options
    levels = [EnforcementLevel.STRICT]
    if options.include_advisory:
        levels.append(EnforcementLevel.ADVISORY)
    prepared = prepare(
        LayoutCache(1) if layouts is None else layouts,
        _validation_request(request),
        stored,
        lineage=lineage,
        include=request.universe,
        levels=levels,
        reference=reference,
        controls=controls,
        gates=False,
    )
    validation, snap, exact = prepared.request, prepared.snapshot, prepared.layout
    effective, chosen = prepared.policies, prepared.compiled
    # The adjuster's convex rows: a rule that is not convex enters as its restriction,
    # whose every point satisfies the rule; the restriction's rows carry its encoding.
    layout = exact.for_solver()
    encodings = {id(part): owner.encoding for owner in exact.rowsets for part in owner.restriction}

    rows = ExportRowBuilder(snap.n)
    writer = _Writer(rows, snap.symbols, snap.w0, linearize=options.form == "linearized")
    for k, rowset in enumerate(layout.rowsets):
        base = solve_bounds(layout, k, cure_passive=options.cure_passive)
        bound = shifted(layout, [k], [base], [np.full(len(base), options.margin)])[0]
        # Moved by the whole margin (shifted stops at the pre-trade value short of it).
        full = (options.margin > 0) & (
            np.abs(bound - base) >= (1 - MARGIN_MOVED_FRACTION) * options.margin
        )
        encoding = encodings.get(id(rowset), rowset.encoding)
        rows.start(layout, k, tightened=full, encoding=encoding)
        writer.rowset, writer.bound = rowset, bound
        rowset.block.export(writer)
    cones, conic, blocks = writer.cones, writer.conic, writer.blocks
    count = snap.n + len(rows.auxiliary)
    notes = _notes(request, layout, [p.policy_name for p in effective if p not in chosen])
    notes += _restriction_notes(layout, encodings)
    return ConstraintSet(
        policy_revision=policy_revision(chosen),
        portfolio_id=validation.decision.portfolio_id,
        policies=[p.policy_name for p in chosen],
        enforcement_levels=levels,
        form=options.form,
        margin=options.margin,
        cure_passive=options.cure_passive,
        nav=snap.nav,
        variables=Variables(
            symbols=list(snap.symbols),
            w0=snap.w0.tolist(),
            prices=snap.prices.tolist(),
            auxiliary=rows.auxiliary,
            count=count,
        ),
        fixed=rows.fixed_weights(snap.symbols),
        linear=LinearConstraints(
            matrix=rows.matrix(), lower=rows.lower, upper=rows.upper, rows=rows.infos
        ),
        cones=cones,
        conic=[_widened(c, count) for c in conic],
        blocks=blocks,
        notes=notes,
    )


class _Writer:
    """Each block kind's export (`engine.compile.representations.ExportForms`).

    Writes the current row set (`rowset`, held to `bound`) into the collector, or appends
    a cone, conic rows or a named block; a kind without an export is an error.
    """

    def __init__(
        self, rows: ExportRowBuilder, symbols: tuple[str, ...], w0: FloatArray, *, linearize: bool
    ) -> None:
        self.rows, self.symbols, self.w0, self.linearize = rows, symbols, w0, linearize
        self.cones: list[SecondOrderCone] = []
        self.conic: list[ConicRows] = []
        self.blocks: list[NamedBlock] = []
        self.rowset: RowSet | None = None
        self.bound = np.zeros(0)

    @property
    def _rowset(self) -> RowSet:
        assert self.rowset is not None
        return self.rowset

    def affine(self, block: AffineBlock) -> None:
        _affine(self.rows, block, self._rowset, self.bound)

    def abs_sum(self, block: AbsSumBlock) -> None:
        if block.G is None:
            _absolute(self.rows, block, self.bound, self.symbols)
            return
        _require_upper(self._rowset)
        if self.linearize:
            linearize_abs_sum(self.rows, block, self.bound, self.symbols)
        else:
            self.blocks.append(named_abs_sum(self.rows, block, self.bound))

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> None:
        _require_upper(self._rowset)
        if self.linearize:
            linearize_sum_largest_abs(self.rows, block, self.bound, self.symbols)
        else:
            self.blocks.append(named_sum_largest_abs(self.rows, block, self.bound))

    def cvar(self, block: CVaRBlock) -> None:
        _require_upper(self._rowset)
        if self.linearize:
            linearize_cvar(self.rows, block, self.bound)
        else:
            self.blocks.append(named_cvar(self.rows, block, self.bound))

    def norm(self, block: NormBlock) -> None:
        _require_upper(self._rowset)
        self.cones.append(_cone(self.rows, block, self.bound))

    def capped_sum(self, block: CappedSumBlock) -> None:
        if self.linearize:
            linearize_capped_sum(self.rows, block, self._rowset, self.bound, self.symbols)
        else:
            self.blocks.append(named_capped_sum(self.rows, block, self.bound))

    def positive_part_sum(self, block: PositivePartSumBlock) -> None:
        if self.linearize:
            linearize_positive_part_sum(self.rows, block, self._rowset, self.bound, self.symbols)
        else:
            self.blocks.append(named_positive_part_sum(self.rows, block, self.bound))

    def expression(self, block: ExpressionBlock) -> None:
        rowset = self._rowset
        field = _constraint_field(rowset)
        self.conic += canonical_rows(self.rows, rowset, self.w0, self.bound, field=field)

    def unsupported(self, block: Block) -> None:
        raise TypeError(f"{self._rowset.violation_type}: no export for {type(block).__name__}")


def _constraint_field(rowset: RowSet) -> str:
    """The field path of a row set's constraint, for error messages."""
    assert rowset.provenance is not None
    provenance = rowset.provenance
    return f"policies[{provenance.policy_name}].rules.constraints[{provenance.constraint_index}]"


def _widened(cone: ConicRows, count: int) -> ConicRows:
    """`cone` with its matrix as wide as the final `x` (auxiliaries came after it)."""
    matrix = cone.matrix.model_copy(update={"shape": (cone.matrix.shape[0], count)})
    return cone.model_copy(update={"matrix": matrix})


def _restriction_notes(layout: Layout, encodings: dict[int, str | None]) -> list[str]:
    """One note per rule exported as its convex restriction."""
    seen: dict[str, str] = {}
    for rowset in layout.rowsets:
        encoding = encodings.get(id(rowset))
        if encoding is not None and rowset.provenance is not None:
            seen.setdefault(rowset.provenance.policy_name, encoding)
    return [
        f"{name}: not convex; exported as a convex restriction (rows exact: false), {text}. "
        "A portfolio inside it satisfies the rule; one outside may satisfy it too."
        for name, text in sorted(seen.items())
    ]


def _require_upper(rowset: RowSet) -> None:
    if rowset.sense != "le":  # models reject these (not convex); an engine bug otherwise
        raise ValueError(f"{rowset.violation_type}: a lower bound on a convex function")


def _affine(rows: ExportRowBuilder, block: AffineBlock, rowset: RowSet, bound: FloatArray) -> None:
    A = sp.csr_matrix(block.A)
    for r in range(block.rows):
        entries = {int(j): float(v) for j, v in zip(A[r].indices, A[r].data, strict=True)}
        rhs = float(bound[r] - block.c[r])
        if rowset.sense == "le":
            rows.add(r, entries, None, rhs)
        else:
            rows.add(r, entries, rhs, None)


def _absolute(
    rows: ExportRowBuilder, block: AbsSumBlock, bound: FloatArray, symbols: tuple[str, ...]
) -> None:
    """Terms `|a_j w + c_j| + k_j <= bound_j`, each a two-sided linear row."""
    A = sp.csr_matrix(block.A)
    k = np.zeros(block.rows) if block.k is None else block.k
    for j in range(block.rows):
        entries = {int(i): float(v) for i, v in zip(A[j].indices, A[j].data, strict=True)}
        room = float(bound[j] - k[j])
        rows.add(j, entries, -room - float(block.c[j]), room - float(block.c[j]))
        if room == 0.0 and len(entries) == 1:
            ((i, a),) = entries.items()
            rows.fix(i, -float(block.c[j]) / a)


def _cone(rows: ExportRowBuilder, block: NormBlock, bound: FloatArray) -> SecondOrderCone:
    P = sp.csr_matrix(block.P)
    parts = [sp.csr_matrix(np.asarray(P.T @ block.F).T)]  # F' P: k x n
    offsets = [block.F.T @ block.c]
    if block.d is not None:
        # diag(d) P stays sparse: a dense copy would be the |U| x n matrix the factor form
        # exists to avoid.
        parts.append(sp.csr_matrix(P.multiply(block.d[:, None])))
        offsets.append(block.d * block.c)
    matrix = sp.vstack(parts, format="csr")
    matrix.sum_duplicates()  # sorted, row-major entries, as from the dense form before
    return SecondOrderCone(
        matrix=sparse_of(matrix, columns=rows.n),
        offset=np.concatenate(offsets).tolist(),
        bound=float(bound[0]) / block.scale,
        scale=float(block.scale),
        info=rows.info(0, "limit"),
    )


def _notes(request: ConstraintSetRequest, layout: Layout, left_out: list[str]) -> list[str]:
    snap = layout.snap
    notes = [
        "Weights of instruments outside variables.symbols (not held, not in universe) are 0 "
        "and may not be traded by a decision built on this set."
    ]
    outside = sorted(s for s in snap.benchmark if s not in snap.index)
    if outside:
        notes.append(
            f"Benchmark names outside the variables enter as constants (weight 0): "
            f"{', '.join(outside)}."
        )
    if left_out:
        notes.append(f"Not exported (enforcement level): {', '.join(left_out)}.")
    if (snap.lots > 0).any():
        notes.append(
            "Weights are continuous; rounding the trades to lot sizes can move a row past its "
            "bound: validate the rounded decision (mode adjust returns a compliant one)."
        )
    passive = [
        rs.provenance.policy_name
        for k, rs in enumerate(layout.rowsets)
        if rs.provenance is not None and (rs.excess(layout.pre_values[k]) > TOLERANCE).any()
    ]
    if passive:
        rule = (
            "held to their limits (cure_passive)"
            if request.options.cure_passive
            else "bounded by their pre-trade values"
        )
        notes.append(f"Rows breached before trading are {rule}: {', '.join(sorted(set(passive)))}.")
    return notes
