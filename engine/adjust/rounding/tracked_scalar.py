"""Single-row blocks that follow a one-weight move without evaluating the whole block.

- `NormTracker` (`NormBlock`): keeps the factor exposures `F'y` and the specific sum
  `sum (d y)^2`; a move of `w_i` adds row `i` of `P'F` to the exposures and changes the
  specific terms of the names `P e_i` reaches.
- `LargestTracker` (`SumLargestAbsBlock`): keeps the magnitudes sorted and the sum of the `k`
  largest; replacing one magnitude needs the k-th and (k+1)-th largest only.
- `CVaRTracker` (`CVaRBlock`): keeps the scenario losses; a move adds one column of `-R` and
  the CVaR is taken from the moved losses (a sort over scenarios, no product).
- `GroupSumTracker` (`CappedSumBlock`, `PositivePartSumBlock`, `AboveThresholdSumBlock`): keeps
  the group weights `G w + c`; a move changes the groups holding the name.

Each keeps its row's value between moves, and takes it from the block itself on `reset`.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
import scipy.sparse as sp

from engine.adjust.rounding.tracked_parts import (
    HALF_TOLERANCE,
    Change,
    TrackedPart,
    column_lists,
    sign_of,
)
from engine.compile.blocks import Block
from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock, cvar_of_losses
from engine.compile.piecewise import (
    THRESHOLD_TOLERANCE,
    AboveThresholdSumBlock,
    CappedSumBlock,
    PositivePartSumBlock,
)
from models.typing import BoolArray, FloatArray

__all__ = [
    "AboveThresholdTracker",
    "CVaRTracker",
    "CappedSumTracker",
    "GroupSumTracker",
    "LargestTracker",
    "NormTracker",
    "PositivePartTracker",
    "ScalarTracker",
]


class ScalarTracker(TrackedPart):
    """One row with its value kept; a subclass says how a move changes the value."""

    def __init__(self, block: Block, sense: str, bound: FloatArray) -> None:
        self.block = block
        self.sign = sign_of(sense)
        self.bound = float(np.asarray(bound, dtype=float)[0])
        self.value = 0.0

    def _penalty(self, value: float) -> float:
        excess = value - self.bound if self.sign > 0 else self.bound - value
        return max(excess - HALF_TOLERANCE, 0.0)

    @abstractmethod
    def _start(self, w: FloatArray) -> None:
        """Set the kept state from `w`."""

    @abstractmethod
    def _moved(self, i: int, old: float, new: float) -> float:
        """The row's value with weight `i` at `new` instead of `old` (state unchanged)."""

    @abstractmethod
    def _apply(self, i: int, old: float, new: float) -> float:
        """Move weight `i` in the kept state; the row's new value."""

    def reset(self, w: FloatArray) -> None:
        """Take the state from `w`, and the value from the block itself."""
        self._start(w)
        self.value = float(self.block.values(w)[0])
        penalty = self._penalty(self.value)
        self._settle(penalty, int(penalty > 0.0))

    def trial(self, i: int, old: float, new: float) -> Change:
        """The penalty change of the moved value."""
        penalty = self._penalty(self._moved(i, old, new))
        return penalty - self.penalty, int(penalty > 0.0) - self.positive

    def commit(self, i: int, old: float, new: float) -> None:
        """Apply the move and keep the new value."""
        self.value = self._apply(i, old, new)
        penalty = self._penalty(self.value)
        self._settle(penalty, int(penalty > 0.0))


class NormTracker(ScalarTracker):
    r"""`s sqrt(|F'y|^2 + |d y|^2)`, `y = P w + c`, with `F'y` and `|d y|^2` kept."""

    def __init__(self, block: NormBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(block, sense, bound)
        self.norm = block
        n = int(block.P.shape[1])
        self.exposure_moves = np.asarray(sp.csc_matrix(block.P).T @ block.F, dtype=float)
        # |e + d m_i|^2 = |e|^2 + 2 d (e . m_i) + d^2 |m_i|^2: a trial needs one dot product
        # and these, not a moved copy of the exposures.
        self.move_sq = np.einsum("ij,ij->i", self.exposure_moves, self.exposure_moves).tolist()
        self.exposure_sq = 0.0
        self.specific_sq = None if block.d is None else (np.asarray(block.d) ** 2).tolist()
        self.names_of = column_lists(block.P, n)
        self.exposures = np.zeros(block.F.shape[1])
        self.y: list[float] = []
        self.specific = 0.0

    def columns(self, n: int) -> BoolArray:
        """The weights `P` maps into the risk universe."""
        return np.array([bool(names) for names in self.names_of])

    def _start(self, w: FloatArray) -> None:
        block = self.norm
        y = np.asarray(block.P @ w, dtype=float).ravel() + block.c
        self.exposures = np.asarray(block.F.T @ y, dtype=float)
        self.exposure_sq = float(self.exposures @ self.exposures)
        self.y = y.tolist()
        self.specific = 0.0 if block.d is None else float(np.sum((block.d * y) ** 2))

    def _specific_after(self, i: int, d: float) -> float:
        specific = self.specific
        if self.specific_sq is not None:
            y, sq = self.y, self.specific_sq
            for j, p in self.names_of[i]:
                specific += sq[j] * ((y[j] + p * d) ** 2 - y[j] ** 2)
        return specific

    def _value(self, exposure_sq: float, specific: float) -> float:
        return self.norm.scale * math.sqrt(max(exposure_sq + specific, 0.0))

    def _moved(self, i: int, old: float, new: float) -> float:
        d = new - old
        along = float(self.exposures @ self.exposure_moves[i])
        exposure_sq = self.exposure_sq + d * (2.0 * along + d * self.move_sq[i])
        return self._value(exposure_sq, self._specific_after(i, d))

    def _apply(self, i: int, old: float, new: float) -> float:
        d = new - old
        self.exposures = self.exposures + self.exposure_moves[i] * d
        self.exposure_sq = float(self.exposures @ self.exposures)  # exact, not accumulated
        self.specific = self._specific_after(i, d)
        for j, p in self.names_of[i]:
            self.y[j] += p * d
        return self._value(self.exposure_sq, self.specific)


class LargestTracker(ScalarTracker):
    """The sum of the `k` largest `|w_i|`, with the magnitudes kept in ascending order."""

    def __init__(self, block: SumLargestAbsBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(block, sense, bound)
        self.top_k = block.top_k
        self.ordered = np.zeros(0)
        self.k = 0

    def columns(self, n: int) -> BoolArray:
        """Every weight."""
        return np.ones(n, dtype=bool)

    def _start(self, w: FloatArray) -> None:
        self.ordered = np.sort(np.abs(np.asarray(w, dtype=float)))
        self.k = min(self.top_k, len(w))

    def _moved(self, i: int, old: float, new: float) -> float:
        n, k = len(self.ordered), self.k
        if k <= 0:
            return 0.0
        a, b = abs(old), abs(new)
        if k >= n:
            return self.value - a + b
        # Take `a` out: if it is among the k largest, the (k+1)-th largest comes in. Then
        # put `b` in: it enters if it beats the k-th largest of what is left.
        kth, next_ = float(self.ordered[n - k]), float(self.ordered[n - k - 1])
        rest, floor = (self.value - a + next_, next_) if a >= kth else (self.value, kth)
        return rest + max(b - floor, 0.0)

    def _apply(self, i: int, old: float, new: float) -> float:
        value = self._moved(i, old, new)
        a, b = abs(old), abs(new)
        ordered = self.ordered
        out = int(np.searchsorted(ordered, a))
        into = int(np.searchsorted(ordered, b))
        if into > out:
            ordered[out : into - 1] = ordered[out + 1 : into]
            ordered[into - 1] = b
        else:
            ordered[into + 1 : out + 1] = ordered[into:out]
            ordered[into] = b
        return value


class CVaRTracker(ScalarTracker):
    """Scenario CVaR with the losses `-R w` kept."""

    def __init__(self, block: CVaRBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(block, sense, bound)
        self.R, self.beta = block.R, block.beta
        self.loss_moves = np.ascontiguousarray(-np.asarray(block.R, dtype=float).T)
        self.losses = np.zeros(len(block.R))

    def columns(self, n: int) -> BoolArray:
        """The weights some scenario returns."""
        return np.asarray(np.any(self.loss_moves != 0.0, axis=1))

    def _start(self, w: FloatArray) -> None:
        self.losses = -(self.R @ w)

    def _moved(self, i: int, old: float, new: float) -> float:
        return cvar_of_losses(self.losses + self.loss_moves[i] * (new - old), self.beta)

    def _apply(self, i: int, old: float, new: float) -> float:
        self.losses = self.losses + self.loss_moves[i] * (new - old)
        return cvar_of_losses(self.losses, self.beta)


class GroupSumTracker(ScalarTracker):
    """`a'w + k + sum_g f_g(y_g)` over group weights `y = G w + c`, the `y` kept."""

    def __init__(
        self,
        block: Block,
        sense: str,
        bound: FloatArray,
        *,
        G: sp.spmatrix,
        shift: FloatArray,
        a: FloatArray | None = None,
    ) -> None:
        super().__init__(block, sense, bound)
        n = int(G.shape[1])
        self.G = G
        self.shift = np.asarray(shift, dtype=float)
        self.a = [0.0] * n if a is None else np.asarray(a, dtype=float).tolist()
        self.groups_of = column_lists(G, n)
        self.y: list[float] = []

    @abstractmethod
    def _term(self, g: int, y: float) -> float:
        """`f_g(y)`."""

    def columns(self, n: int) -> BoolArray:
        """The weights with an affine coefficient or a group."""
        return np.array([bool(a or g) for a, g in zip(self.a, self.groups_of, strict=True)])

    def _start(self, w: FloatArray) -> None:
        self.y = (np.asarray(self.G @ w, dtype=float).ravel() + self.shift).tolist()

    def _moved(self, i: int, old: float, new: float) -> float:
        d = new - old
        value = self.value + self.a[i] * d
        y, term = self.y, self._term
        for g, entry in self.groups_of[i]:
            value += term(g, y[g] + entry * d) - term(g, y[g])
        return value

    def _apply(self, i: int, old: float, new: float) -> float:
        value = self._moved(i, old, new)
        d = new - old
        for g, entry in self.groups_of[i]:
            self.y[g] += entry * d
        return value


class CappedSumTracker(GroupSumTracker):
    """`a'w + k + sum_g min(y_g, cap_g)` (`CappedSumBlock`)."""

    def __init__(self, block: CappedSumBlock, sense: str, bound: FloatArray) -> None:
        groups = block.G.shape[0]
        super().__init__(block, sense, bound, G=block.G, shift=np.zeros(groups), a=block.a)
        self.cap: list[float] = np.asarray(block.cap, dtype=float).tolist()

    def _term(self, g: int, y: float) -> float:
        return min(y, self.cap[g])


class PositivePartTracker(GroupSumTracker):
    """`sum_g max(y_g, 0)` with `y = G w + c` (`PositivePartSumBlock`)."""

    def __init__(self, block: PositivePartSumBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(block, sense, bound, G=block.G, shift=block.c)

    def _term(self, g: int, y: float) -> float:
        return max(y, 0.0)


class AboveThresholdTracker(GroupSumTracker):
    """`sum_g y_g [y_g > threshold + tolerance]` (`AboveThresholdSumBlock`)."""

    def __init__(self, block: AboveThresholdSumBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(block, sense, bound, G=block.G, shift=np.zeros(block.G.shape[0]))
        self.cut = block.threshold + THRESHOLD_TOLERANCE

    def _term(self, g: int, y: float) -> float:
        return y if y > self.cut else 0.0
