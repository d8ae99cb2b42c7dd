"""One layout's rows as a batch program: values and verdicts of a chunk of weight vectors.

`Program.of(layout, backend)` asks every row set's block for its batch form
(`engine.batch.parts`); `Program.evaluate(W, cure_passive)` evaluates a `(K, n)` chunk:
the batched rows through the backend (compiled once per chunk shape under JAX), the
fallback rows one vector at a time through their blocks' `values`, then the verdict of
SPEC §5 with the single-request checker's formulas (`engine.check.checker.check`); then
`Program.recheck` answers every vector that sits within float rounding of a threshold
(`BATCH_RECHECK_BAND`), or has a value that is not a number, through the single-request
checker itself.

When every row is batched, a chunk is first screened (`_screen`): one maximum per part of
each vector's excesses, reduced as the part's values are made, tells which vectors are
clear (every excess below the tolerance by more than the re-check band: compliant, no
breach, nothing to re-check) without laying the (K, rows) values end to end. Most
portfolios of a monitoring run are clear, and their rows are never needed. Only the other
vectors are evaluated in full for their verdict and breach coordinates; when most of a
chunk is not clear, the whole chunk is (`DENSE_BREACHES`), and the chunk after such a
crowded one is evaluated whole at once, without the screen (`ChunkVerdict.crowded`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.batch.backend import Backend
from engine.batch.parts import Array, BatchParts, Fallback, Ops, Part
from engine.check.checker import check
from engine.compile.checkstack import CheckStack
from engine.compile.layout import Layout
from engine.tolerances import BATCH_RECHECK_BAND, TOLERANCE
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["DENSE_BREACHES", "ChunkVerdict", "Program"]

DENSE_BREACHES = 0.25
"""Above this fraction of breaching vectors in a chunk, its rows are evaluated for the whole
chunk rather than for the breaching vectors alone (gathering and padding a subset costs
about what evaluating it does)."""

SMALLEST_SUBSET = 16
"""Under JAX a subset is padded to a power of two at least this large: one compiled shape
per size class instead of one per count."""


@dataclass
class ChunkVerdict:
    """The verdict of a chunk of K vectors over the layout's R rows.

    Row values are kept only for `vectors`: every vector of the chunk with a breached row
    (and the re-checked ones), not necessarily only those.
    """

    vectors: IntArray
    """The vectors (indices into the chunk) whose rows `post`, `breached`, `active` hold."""
    post: FloatArray
    """(len(vectors), R) every row's value."""
    breached: BoolArray
    """(len(vectors), R)."""
    active: BoolArray
    """(len(vectors), R)."""
    is_compliant: BoolArray
    """(K,)."""
    rechecked: IntArray
    """The vectors (indices into the chunk) answered by the single-request checker."""
    crowded: bool = False
    """More than `DENSE_BREACHES` of the chunk breaches: the next chunk likely does too."""

    def breaches(self) -> tuple[IntArray, IntArray, FloatArray, BoolArray]:
        """Per breached row, in vector then row order: where and what.

        The vector (an index into the chunk), the row, its value, whether it is active.
        """
        flat = np.flatnonzero(self.breached)  # one pass; np.nonzero of 2-D is ten times slower
        at, row = np.divmod(flat, max(self.breached.shape[1], 1))
        return self.vectors[at], row, np.take(self.post, flat), np.take(self.active, flat)


def _values(parts: list[Part]) -> Callable[[Ops, tuple[Any, ...], Array], tuple[Array, Array]]:
    """`(ops, data, W) -> (values (K, rows), fragile (K,))` of the batched parts."""
    evaluators = [p.evaluate for p in parts]
    fragiles = [(j, p.fragile) for j, p in enumerate(parts) if p.fragile is not None]

    def run(ops: Ops, data: tuple[Any, ...], W: Array) -> tuple[Array, Array]:
        xp = ops.xp
        columns = [ev(ops, d, W) for ev, d in zip(evaluators, data, strict=True)]
        values = xp.concatenate(columns, axis=1) if columns else xp.zeros((W.shape[0], 0))
        fragile = xp.zeros(W.shape[0], dtype=bool)
        for j, test in fragiles:
            fragile = fragile | test(ops, data[j], W)
        return values, fragile

    return run


def _verdict(
    ops: Ops, post: Array, statics: tuple[Array, ...], fragile: Array, W: Array, cure: bool
) -> tuple[Array, ...]:
    """The checker's verdict (`engine.check.checker.check`) on every vector.

    Also which vectors to re-check: within `BATCH_RECHECK_BAND` of a threshold, fragile, or
    with a value that is not a number.
    """
    xp = ops.xp
    limits, sign, pre_excess, always_active, strict = statics
    excess = (post - limits) * sign
    breached = excess > TOLERANCE
    worsened = excess > pre_excess + TOLERANCE
    active = breached & (worsened | always_active)
    blocking = (breached if cure else active) & strict
    band = (BATCH_RECHECK_BAND * (1.0 + xp.sum(xp.abs(W), axis=1)))[:, None]
    near = (xp.abs(excess - TOLERANCE) <= band) | (
        breached & (xp.abs(excess - (pre_excess + TOLERANCE)) <= band)
    )
    bad = ~xp.isfinite(xp.sum(post, axis=1))  # an inf or a NaN anywhere in the vector's rows
    recheck = xp.any(near, axis=1) | fragile | bad
    return post, breached, active, ~xp.any(blocking, axis=1), recheck, xp.any(breached, axis=1)


def _screen(
    ops: Ops,
    parts: list[Part],
    data: tuple[Any, ...],
    statics: tuple[tuple[Array, Array], ...],
    W: Array,
    band: Array,
) -> Array:
    """(K,) True where a vector is clear: compliant, breaching nothing, not to re-check.

    Clear is every row's excess below `TOLERANCE` by more than `band`, every value finite
    and no threshold rule fragile. With `band` at least each vector's re-check band, no row
    is then breached (so none blocks) and none is near a threshold: `_verdict`'s answer for
    the vector, without computing it. One maximum per part (`statics`: its rows' limits
    and signs), reduced as the part's values are made: no (K, rows) array of flags.
    """
    xp = ops.xp
    K = W.shape[0]
    top = xp.full(K, -xp.inf)
    fragile = xp.zeros(K, dtype=bool)
    for part, d, (limits, sign) in zip(parts, data, statics, strict=True):
        if part.rows:
            # A value that is not finite counts as breaching: the vector goes to `_verdict`.
            top = xp.maximum(top, ops.top_excess(part.evaluate(ops, d, W), limits, sign))
        if part.fragile is not None:
            fragile = fragile | part.fragile(ops, d, W)
    return (top < TOLERANCE - band) & ~fragile


def _screen_band(W: FloatArray, largest: float | None = None) -> float:
    """A re-check band at least every vector's of the chunk `W` (K, n), in one number.

    `BATCH_RECHECK_BAND x (1 + ||w||_1)` with `||w||_1 <= n max|w|`: `_screen` then needs no
    pass over the weights of its own. `largest`: max|w| when known (the weights' check
    computes it); a weight within float rounding of it changes the band by ~1e-27.
    """
    if largest is None:
        largest = float(max(W.max(initial=0.0), -W.min(initial=0.0)))
    return BATCH_RECHECK_BAND * (1.0 + int(W.shape[1]) * float(largest))


def _padded(size: int, limit: int) -> int:
    """The compiled size a subset of `size` vectors is padded to (at most `limit`)."""
    return min(max(SMALLEST_SUBSET, 1 << (size - 1).bit_length()), max(limit, size))


def _signature(parts: list[Part]) -> tuple[Any, ...]:
    """What a compiled evaluator depends on besides the data's values (`Program.bound`)."""
    return tuple(
        (p.evaluate.__qualname__, p.rows, tuple(np.shape(d) for d in p.data)) for p in parts
    )


@dataclass
class Program:
    """A layout's rows as batched parts and per-vector fallbacks, over one backend.

    Build with `Program.of`; after `Layout.rebind` (a new pre-trade portfolio) call
    `bound()` to re-read the rows' numbers (the compiled evaluator is kept while the parts'
    shapes stay the same).
    """

    layout: Layout
    backend: Backend
    stack: CheckStack
    batched: IntArray
    """Columns (rows of the layout) the parts fill, in order."""
    fallbacks: list[tuple[int, slice]]
    """Row sets evaluated one vector at a time, and their columns."""
    parts: list[Part] = field(default_factory=list)
    statics: tuple[Any, ...] = ()
    data: tuple[Any, ...] = ()
    _signature: tuple[Any, ...] | None = None
    _values: Callable[..., Any] | None = None
    _verdict: Callable[..., Any] | None = None
    _fused: Callable[..., Any] | None = None
    """Values and verdict in one compiled function (no fallback rows to splice in)."""
    _screen: Callable[..., Any] | None = None
    """Which vectors are clear (`_screen`), compiled (no fallback rows)."""
    part_statics: tuple[Any, ...] = ()
    """Each part's rows' limits and signs (what `_screen` reads)."""

    @classmethod
    def of(cls, layout: Layout, backend: Backend) -> Program:
        """The program of `layout` (bound to its pre-trade weights) on `backend`."""
        stack = layout.row_stack(range(len(layout.rowsets)))
        forms = BatchParts()
        batched: list[IntArray] = []
        fallbacks: list[tuple[int, slice]] = []
        for j, rowset in enumerate(layout.rowsets):
            columns = slice(int(stack.offsets[j]), int(stack.offsets[j + 1]))
            if isinstance(rowset.block.batch(forms), Fallback) or not stack.plain:
                fallbacks.append((j, columns))
            else:
                batched.append(np.arange(columns.start, columns.stop))
        ops = backend.ops
        program = cls(
            layout=layout,
            backend=backend,
            stack=stack,
            batched=np.concatenate(batched) if batched else np.zeros(0, dtype=np.int64),
            fallbacks=fallbacks,
            _verdict=backend.compile(
                lambda post, statics, fragile, W, cure: _verdict(
                    ops, post, statics, fragile, W, cure
                ),
                static_argnums=(4,),
            ),
        )
        return program.bound()

    def bound(self) -> Program:
        """Re-read the numbers of the layout's rows (after `Layout.rebind` to a new w0)."""
        stack, layout = self.stack, self.layout
        limits = np.concatenate([rs.limits for rs in layout.rowsets] or [np.zeros(0)])
        pre = np.concatenate(layout.pre_values or [np.zeros(0)])
        with np.errstate(invalid="ignore"):
            pre_excess = (pre - limits) * stack.sign
        statics = (limits, stack.sign, pre_excess, stack.always_active, stack.strict)
        skipped = {j for j, _ in self.fallbacks}
        forms = BatchParts()
        parts = [rs.block.batch(forms) for j, rs in enumerate(layout.rowsets) if j not in skipped]
        self.parts = [p for p in parts if isinstance(p, Part)]
        assert len(self.parts) == len(parts)
        signature = _signature(self.parts)
        if signature != self._signature:
            ops, values = self.backend.ops, _values(self.parts)
            self._values = self.backend.compile(lambda data, W: values(ops, data, W))

            def fused(
                data: tuple[Any, ...], statics: tuple[Any, ...], W: Array, cure: bool
            ) -> tuple[Array, ...]:
                post, fragile = values(ops, data, W)
                return _verdict(ops, post, statics, fragile, W, cure)

            self._fused = self.backend.compile(fused, static_argnums=(3,))
            parts_now = list(self.parts)
            self._screen = self.backend.compile(
                lambda data, statics, W, band: _screen(ops, parts_now, data, statics, W, band)
            )
            self._signature = signature
        if not self.fallbacks:
            edges = np.cumsum([0] + [p.rows for p in self.parts])
            self.part_statics = self.backend.put(
                tuple((limits[a:b], stack.sign[a:b]) for a, b in itertools.pairwise(edges.tolist()))
            )
        self.statics = self.backend.put(statics)
        self.data = self.backend.put(tuple(p.data for p in self.parts))
        return self

    @property
    def rows(self) -> int:
        """Rows of the layout."""
        return int(self.stack.offsets[-1])

    def evaluate(
        self,
        W: FloatArray,
        *,
        cure_passive: bool,
        valid: int | None = None,
        every_row: bool = False,
        dense: bool = False,
        largest: float | None = None,
    ) -> ChunkVerdict:
        """The batch verdicts of the chunk `W` (K, n), before any re-check.

        `valid`: only the first `valid` vectors are wanted (the rest pad the chunk to a
        shape already compiled). `every_row`: the rows of every vector, breaching or not
        (`ChunkVerdict.vectors` is then every vector in order). `dense`: most vectors are
        expected to breach (the chunk before did, `ChunkVerdict.crowded`): the rows of the
        whole chunk are evaluated at once, without `_screen` first. `largest`: max|w| over
        the chunk's valid vectors, when known (`_screen_band`). Reads the layout only,
        so chunks may be evaluated on several threads at once (between two `bound`s).
        """
        m = W.shape[0] if valid is None else valid
        # W goes to the compiled functions as it is: JAX reads a host array in place where
        # its alignment allows (`backend.put` would copy it every time).
        screened = self._screen is not None and self._fused is not None and not self.fallbacks
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if not screened:
                verdict = self._spliced(W, m, cure_passive)
            elif every_row or dense:
                assert self._fused is not None
                verdict = tuple(self._fused(self.data, self.statics, W, cure_passive))
            else:
                assert self._screen is not None and self._fused is not None
                band = _screen_band(W[:m], largest)
                clear = np.asarray(self._screen(self.data, self.part_statics, W, band))[:m]
                wanted = np.flatnonzero(~clear)
                if len(wanted) > DENSE_BREACHES * m:
                    verdict = tuple(self._fused(self.data, self.statics, W, cure_passive))
                else:
                    return self._subset(W, wanted, m, cure_passive)
        post, breached, active, compliant, recheck, breaching = (np.asarray(x)[:m] for x in verdict)
        busy = np.count_nonzero(breaching | recheck)
        return ChunkVerdict(
            np.arange(m), post, breached, active, compliant, np.flatnonzero(recheck),
            crowded=bool(busy > DENSE_BREACHES * m),
        )  # fmt: skip

    def recheck(self, rows: FloatArray, verdict: ChunkVerdict, cure_passive: bool) -> ChunkVerdict:
        """`verdict` with its re-checked vectors answered by the single-request checker.

        `rows` are the weights of `verdict.rechecked`, in order. Not thread-safe (the
        single-request checker caches its row stacks on the layout): call it on one thread.
        """
        if not len(verdict.rechecked):
            return verdict
        post, breached, active = verdict.post.copy(), verdict.breached.copy(), verdict.active.copy()
        compliant = verdict.is_compliant.copy()
        at = np.searchsorted(verdict.vectors, verdict.rechecked)  # both increasing
        for k, j, w in zip(verdict.rechecked.tolist(), at.tolist(), rows, strict=True):
            exact = check(self.layout, w, cure_passive=cure_passive)
            post[j], breached[j], active[j] = exact.post, exact.breached, exact.active
            compliant[k] = exact.is_compliant
        return replace(verdict, post=post, breached=breached, active=active, is_compliant=compliant)

    def _subset(self, W: FloatArray, wanted: IntArray, m: int, cure_passive: bool) -> ChunkVerdict:
        """The verdict of a chunk whose vectors are clear (`_screen`) but `wanted`.

        Those are evaluated alone (padded under JAX); the others comply, breaching nothing.
        """
        compliant = np.ones(m, dtype=bool)
        recheck = np.zeros(m, dtype=bool)
        if not len(wanted):
            none = np.zeros((0, self.rows), dtype=bool)
            return ChunkVerdict(wanted, np.zeros((0, self.rows)), none, none, compliant, wanted)
        assert self._fused is not None
        subset = W[wanted]
        if self.backend.name == "jax":
            size = _padded(len(wanted), W.shape[0])
            subset = np.concatenate([subset, np.zeros((size - len(wanted), W.shape[1]))])
        verdict = self._fused(self.data, self.statics, subset, cure_passive)
        post, breached, active, compliant[wanted], recheck[wanted] = (
            np.asarray(x)[: len(wanted)] for x in verdict[:5]
        )
        return ChunkVerdict(wanted, post, breached, active, compliant, np.flatnonzero(recheck))

    def _spliced(self, W: FloatArray, m: int, cure_passive: bool) -> tuple[Any, ...]:
        """The verdict with the fallback rows evaluated one vector at a time."""
        assert self._values is not None and self._verdict is not None
        Wd = self.backend.put(W)
        values, fragile = self._values(self.data, Wd)
        if self.fallbacks:
            post = np.zeros((W.shape[0], self.rows))
            post[:, self.batched] = np.asarray(values)
            for j, columns in self.fallbacks:
                block = self.layout.rowsets[j].block
                for k in range(m):
                    post[k, columns] = block.values(W[k])
            values = self.backend.put(post)
        return tuple(self._verdict(values, self.statics, fragile, Wd, cure_passive))
