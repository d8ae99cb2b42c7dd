"""What a block can be turned into, beyond its values and its cvxpy form.

Every stage after compile reads a block in its own form: the scale_back problem its rows
over the traded names (`restricted`), the exact separable QP a fold into intervals and
coupling rows (`separable`), lot rounding an incremental tracker (`tracker`), the integer
search linear rows over lot counts (`integer`), the export solver-neutral rows (`export`),
the report the shift of one row per trade change (`row_shift`), the direct conic
solves numeric cone rows (`conic`) and the batch checker the rows over many weight vectors
at once (`batch`).

A block chooses its form by method: `block.restricted(forms)` calls `forms.affine(block)`,
`forms.abs_sum(block)`, ... for the kinds that have the form, and `forms.unsupported(block)`
for the others, an explicit opt-out whose meaning the stage decides (keep every row,
evaluate the whole block, no fold, no export). The stage supplies the forms (one object
per representation, the protocols below), so compile never imports a later stage, and a
block declares what it implements in `Block.representations`; a registry test holds the
two together for every block type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
    from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock
    from engine.compile.language.block import ExpressionBlock
    from engine.compile.piecewise import (
        AboveThresholdSumBlock,
        CappedSumBlock,
        OpenCountBlock,
        PositivePartSumBlock,
    )

__all__ = [
    "BatchForms",
    "ConicForms",
    "ExportForms",
    "IntegerForms",
    "Representation",
    "RestrictedForms",
    "RowShiftForms",
    "SeparableForms",
    "TrackerForms",
]

T = TypeVar("T", covariant=True)


class Representation(StrEnum):
    """The forms of a block that a stage may ask for (besides `values` and `expression`)."""

    RESTRICTED = "restricted"
    """scale_back: only the rows the traded names move (`engine.adjust.traded_rows`)."""
    SEPARABLE = "separable"
    """Intervals and coupling rows of the exact QP (`engine.adjust.separable`)."""
    TRACKER = "tracker"
    """An incremental part of the lot-rounding tracker (`engine.adjust.rounding`)."""
    INTEGER = "integer"
    """Rows over lot counts of the integer search (`engine.adjust.rounding.search`)."""
    EXPORT = "export"
    """Solver-neutral rows of the constraint export (`engine.export`)."""
    ROW_SHIFT = "row_shift"
    """Estimated shift of one row per trade change (`engine.report`)."""
    CONIC = "conic"
    """Numeric cone rows of the direct solves, without cvxpy (`engine.adjust.conic`)."""
    BATCH = "batch"
    """The rows over a stack of weight vectors at once (`engine.batch`)."""


class RestrictedForms(Protocol[T]):
    """Builders of the scale_back view; `unsupported`: every row, through `expression`."""

    def affine(self, block: AffineBlock) -> T:
        """Affine rows cut to the traded columns."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Absolute-value rows cut to the terms the traded columns move."""

    def unsupported(self, block: Block) -> T:
        """Any other block: all its rows."""


class SeparableForms(Protocol[T]):
    """Folds into the separable QP; `unsupported`: the QP does not apply."""

    def affine(self, block: AffineBlock) -> T:
        """Affine rows: intervals of one-name rows, coupling rows else."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Sums of one-name absolute terms."""

    def unsupported(self, block: Block) -> T:
        """Any other block."""


class TrackerForms(Protocol[T]):
    """Parts of the violation tracker; `unsupported`: re-evaluate the whole block per move."""

    def affine(self, block: AffineBlock) -> T:
        """Affine rows (kept with the other linear rows)."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Absolute-value rows (kept with the other linear rows)."""

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> T:
        """Top-k magnitudes, kept sorted."""

    def norm(self, block: NormBlock) -> T:
        """A risk norm, through its factor exposures."""

    def cvar(self, block: CVaRBlock) -> T:
        """Scenario CVaR, through its losses."""

    def capped_sum(self, block: CappedSumBlock) -> T:
        """Capped group weights."""

    def positive_part_sum(self, block: PositivePartSumBlock) -> T:
        """Positive parts of group weights."""

    def above_threshold(self, block: AboveThresholdSumBlock) -> T:
        """Group weights above a threshold."""

    def unsupported(self, block: Block) -> T:
        """Any other block (custom expressions, a subclass with values of its own)."""


class IntegerForms(Protocol[T]):
    """Rows of the integer search; `unsupported`: left to the exact check afterwards."""

    def affine(self, block: AffineBlock) -> T:
        """Affine rows over the lot counts."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Absolute-value rows (convex when bounded above)."""

    def unsupported(self, block: Block) -> T:
        """Any other block."""


class ExportForms(Protocol[T]):
    """Solver-neutral export; `unsupported`: an error (a block the export cannot write)."""

    def affine(self, block: AffineBlock) -> T:
        """Linear rows."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Two-sided rows, or auxiliaries and a named block when terms are summed."""

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> T:
        """Linearized top-k, or a named block."""

    def norm(self, block: NormBlock) -> T:
        """A second-order cone."""

    def cvar(self, block: CVaRBlock) -> T:
        """The Rockafellar-Uryasev rows, or a named block."""

    def capped_sum(self, block: CappedSumBlock) -> T:
        """Linearized capped sums, or a named block."""

    def positive_part_sum(self, block: PositivePartSumBlock) -> T:
        """Linearized positive parts, or a named block."""

    def expression(self, block: ExpressionBlock) -> T:
        """The conic canonical form (cvxpy's)."""

    def unsupported(self, block: Block) -> T:
        """Any other block (the non-convex threshold rule is exported by its restriction)."""


class RowShiftForms(Protocol[T]):
    """The report's per-change row shift; `unsupported`: no estimate (every change kept)."""

    def affine(self, block: AffineBlock) -> T:
        """A matrix row times the moves."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Moved absolute terms, summed through the group matrix."""

    def norm(self, block: NormBlock) -> T:
        """The risk norm with one weight moved, from the kept exposures (O(k) a change)."""

    def unsupported(self, block: Block) -> T:
        """Any other block."""


class ConicForms(Protocol[T]):
    """Rows of the direct conic problem; `unsupported`: the cvxpy chain solves instead."""

    def affine(self, block: AffineBlock) -> T:
        """Linear rows (nonnegative cone)."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Absolute terms as pairs of linear rows, summed through auxiliaries."""

    def norm(self, block: NormBlock) -> T:
        """A second-order cone over the factor exposures and the moved specific terms."""

    def unsupported(self, block: Block) -> T:
        """Any other block."""


class BatchForms(Protocol[T]):
    """The rows over K weight vectors at once; `unsupported`: one vector at a time."""

    def affine(self, block: AffineBlock) -> T:
        """Linear rows."""

    def abs_sum(self, block: AbsSumBlock) -> T:
        """Absolute terms, summed through the group matrix."""

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> T:
        """The top-k magnitudes of each vector."""

    def norm(self, block: NormBlock) -> T:
        """A risk norm, through the factor exposures (never the n x n covariance)."""

    def cvar(self, block: CVaRBlock) -> T:
        """Scenario CVaR of each vector's losses."""

    def capped_sum(self, block: CappedSumBlock) -> T:
        """Capped group weights."""

    def positive_part_sum(self, block: PositivePartSumBlock) -> T:
        """Positive parts of group weights."""

    def above_threshold(self, block: AboveThresholdSumBlock) -> T:
        """Group weights above a threshold."""

    def open_count(self, block: OpenCountBlock) -> T:
        """Open positions counted."""

    def unsupported(self, block: Block) -> T:
        """Any other block (custom expressions, a subclass with values of its own)."""
