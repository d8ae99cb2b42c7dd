"""Every block type owns its representations: it implements each one or opts out explicitly.

A block hands itself to a stage's builder for its kind (`forms.affine(block)`, ...) or to
the builder's `unsupported` (engine.compile.representations). These tests enumerate every
`Block` subclass the engine defines and check, for every representation, that the block
calls a builder the representation's protocol has exactly when it lists the representation
in `representations`, that every stage's builder implements its whole protocol, and that
each stage's opt-out is the one it relies on.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import engine.compile.blocks
import engine.compile.conic_blocks
import engine.compile.language.block
import engine.compile.piecewise
from engine.adjust.conic import ColumnCache, _Builder
from engine.adjust.rounding.search import _CountForms, _Program
from engine.adjust.rounding.tracked_parts import WholeBlock
from engine.adjust.rounding.tracker import _Parts
from engine.adjust.separable.fold import Box, Coupling
from engine.adjust.separable.qp import _Folds
from engine.adjust.traded_rows import AllTraded, _Views
from engine.batch.parts import BatchParts, Fallback
from engine.compile import representations
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.representations import Representation
from engine.export.constraints import _Writer
from engine.export.rows import ExportRowBuilder
from engine.report import _Shifts

MODULES = (
    engine.compile.blocks,
    engine.compile.conic_blocks,
    engine.compile.piecewise,
    engine.compile.language.block,
)

PROTOCOLS: dict[Representation, type] = {
    Representation.RESTRICTED: representations.RestrictedForms,
    Representation.SEPARABLE: representations.SeparableForms,
    Representation.TRACKER: representations.TrackerForms,
    Representation.INTEGER: representations.IntegerForms,
    Representation.EXPORT: representations.ExportForms,
    Representation.ROW_SHIFT: representations.RowShiftForms,
    Representation.CONIC: representations.ConicForms,
    Representation.BATCH: representations.BatchForms,
}
"""Each representation's builder protocol (the method of `Block` has the same name)."""


def _block_types() -> list[type[Block]]:
    """Every concrete Block subclass the engine defines (test subclasses left out)."""
    found: list[type[Block]] = []
    todo = list(Block.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("engine.") and not inspect.isabstract(cls):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.__name__)


BLOCK_TYPES = _block_types()


def _builders(protocol: type) -> set[str]:
    return {
        name
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


class _Recorder:
    """A builder for every representation: answers the name of the method called."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda block: name


def _bare(cls: type[Block]) -> Block:
    """An instance without data: the representation methods only choose a builder."""
    return cls.__new__(cls)


def test_the_engine_defines_the_block_types_we_know() -> None:
    names = {cls.__name__ for cls in BLOCK_TYPES}
    assert names == {
        "AbsSumBlock",
        "AboveThresholdSumBlock",
        "AffineBlock",
        "CVaRBlock",
        "CappedSumBlock",
        "ExpressionBlock",
        "NormBlock",
        "OpenCountBlock",
        "PositivePartSumBlock",
        "SumLargestAbsBlock",
    }
    assert {cls.__module__ for cls in BLOCK_TYPES} == {m.__name__ for m in MODULES}


def test_every_representation_has_a_protocol_and_a_block_method() -> None:
    assert set(PROTOCOLS) == set(Representation)
    for representation, protocol in PROTOCOLS.items():
        assert callable(getattr(Block, representation.value))
        assert "unsupported" in _builders(protocol), protocol.__name__


@pytest.mark.parametrize("cls", BLOCK_TYPES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("representation", list(Representation), ids=str)
def test_a_block_implements_a_representation_or_opts_out(
    cls: type[Block], representation: Representation
) -> None:
    called = getattr(_bare(cls), representation.value)(_Recorder())
    builders = _builders(PROTOCOLS[representation])
    assert called in builders, f"{cls.__name__}.{representation} calls {called}, not a builder"
    if representation in cls.representations:
        assert called != "unsupported", f"{cls.__name__} lists {representation} but opts out"
    else:
        assert called == "unsupported", f"{cls.__name__} implements {representation} unlisted"


@pytest.mark.parametrize("cls", BLOCK_TYPES, ids=lambda cls: cls.__name__)
def test_every_block_type_has_its_math_in_its_docstring(cls: type[Block]) -> None:
    assert ".. math::" in (cls.__doc__ or ""), cls.__name__


def test_values_and_expression_are_implemented_by_every_block_type() -> None:
    for cls in BLOCK_TYPES:
        for method in (
            "values",
            "expression",
            "structure",
            "declare",
            "fill",
            "perturbation_bound",
        ):
            assert getattr(cls, method) is not getattr(Block, method), (cls.__name__, method)


def _stage_builders() -> dict[Representation, Any]:
    """One builder object of each stage, over a 3-name universe."""
    w = np.zeros(3)
    return {
        Representation.RESTRICTED: _Views((0, 1), sp.identity(3, format="csr")),
        Representation.SEPARABLE: _Folds({}, None, w, Box(w - 1, w + 1), Coupling()),
        Representation.TRACKER: _Parts(),
        Representation.INTEGER: _CountForms(w, np.arange(3), np.ones(3), _Program(w - 1, w + 1)),
        Representation.EXPORT: _Writer(ExportRowBuilder(3), ("A", "B", "C"), w, linearize=True),
        Representation.ROW_SHIFT: _Shifts(0, w, np.arange(2), np.ones(2)),
        Representation.CONIC: _Builder(w, [0, 1], ColumnCache()),
        Representation.BATCH: BatchParts(),
    }


@pytest.mark.parametrize("representation", list(Representation), ids=str)
def test_every_stage_builds_every_kind_its_protocol_names(representation: Representation) -> None:
    builder = _stage_builders()[representation]
    for name in _builders(PROTOCOLS[representation]):
        assert callable(getattr(builder, name, None)), f"{type(builder).__name__}.{name}"


def _opting_out(representation: Representation) -> list[type[Block]]:
    return [cls for cls in BLOCK_TYPES if representation not in cls.representations]


def test_the_opt_outs_are_what_the_stages_expect() -> None:
    builders = _stage_builders()
    # scale_back keeps every row of a block it cannot restrict.
    for cls in _opting_out(Representation.RESTRICTED):
        assert type(_bare(cls).restricted(builders[Representation.RESTRICTED])) is AllTraded
    # The separable solver gives up (returns None) on a block it cannot fold.
    for cls in _opting_out(Representation.SEPARABLE):
        assert _bare(cls).separable(builders[Representation.SEPARABLE]) is False
    # The tracker evaluates the whole block.
    for cls in _opting_out(Representation.TRACKER):
        assert type(_bare(cls).tracker(builders[Representation.TRACKER])) is WholeBlock
    # The integer search leaves the rows to the exact check, the report keeps every change.
    for cls in _opting_out(Representation.INTEGER):
        assert _bare(cls).integer(builders[Representation.INTEGER]) is None
    for cls in _opting_out(Representation.ROW_SHIFT):
        assert _bare(cls).row_shift(builders[Representation.ROW_SHIFT]) is None
    # The direct conic solve gives up (the cvxpy chain solves the problem).
    for cls in _opting_out(Representation.CONIC):
        assert _bare(cls).conic(builders[Representation.CONIC]) is False
    # The batch checker evaluates the block one vector at a time (custom expressions).
    for cls in _opting_out(Representation.BATCH):
        assert type(_bare(cls).batch(builders[Representation.BATCH])) is Fallback
    assert [cls.__name__ for cls in _opting_out(Representation.BATCH)] == ["ExpressionBlock"]


def test_a_block_without_an_export_is_an_error() -> None:
    opting_out = _opting_out(Representation.EXPORT)
    # Both are exact rules that are not convex: the export writes their restrictions.
    assert [cls.__name__ for cls in opting_out] == ["AboveThresholdSumBlock", "OpenCountBlock"]
    writer = _stage_builders()[Representation.EXPORT]

    class _Rows:
        violation_type = "ucits.aggregate"

    writer.rowset = _Rows()
    with pytest.raises(TypeError, match="no export for AboveThresholdSumBlock"):
        _bare(opting_out[0]).export(writer)


def test_a_subclass_with_values_of_its_own_leaves_the_incremental_tracker() -> None:
    class Doubled(AffineBlock):
        def values(self, w: Any) -> Any:
            return 2.0 * super().values(w)

    parts = _Parts()
    assert type(Doubled(A=np.eye(2), c=np.zeros(2)).tracker(parts)) is WholeBlock
    assert AffineBlock(A=np.eye(2), c=np.zeros(2)).tracker(parts) is None  # collected as linear
    assert AbsSumBlock(A=np.eye(2), c=np.zeros(2)).tracker(parts) is None
    assert len(parts.linear) == 2
