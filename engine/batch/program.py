"""One layout's rows as a batch program: values and verdicts of a chunk of weight vectors.

`Program.of(layout, backend)` asks every row set's block for its batch form
(`engine.batch.parts`); `Program.run(W, cure_passive)` evaluates a `(K, n)` chunk: the
batched rows through the backend (compiled once per chunk shape under JAX), the fallback
rows one vector at a time through their blocks' `values`, then the verdict of SPEC §5 with
the single-request checker's formulas (`engine.check.checker.check`), and finally every
vector that sits within float rounding of a threshold (`BATCH_RECHECK_BAND`), or has a
value that is not a number, through the single-request checker itself.

When every row is batched, a chunk is first reduced to three flags per vector (compliant,
breaching, to re-check), part by part, without laying the (K, rows) values end to end:
most portfolios of a monitoring run breach nothing, and their rows are never needed. Only
the vectors that breach a row (or are re-checked) are evaluated again in full for their
breach coordinates; when most of a chunk breaches, the full evaluation runs on the whole
chunk instead (`DENSE_BREACHES`), so the flags cost at most one extra pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
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
    return post, breached, active, ~xp.any(blocking, axis=1), recheck


def _flags(
    ops: Ops,
    parts: list[Part],
    data: tuple[Any, ...],
    statics: tuple[tuple[Array, ...], ...],
    W: Array,
    cure: bool,
) -> tuple[Array, Array, Array]:
    """`(compliant, breaching, recheck)`, each (K,): `_verdict` reduced part by part.

    The same formulas as `_verdict` over each part's own columns (`statics` split by part),
    so a vector's flags agree with its full verdict wherever it is not re-checked.
    """
    xp = ops.xp
    K = W.shape[0]
    band = (BATCH_RECHECK_BAND * (1.0 + xp.sum(xp.abs(W), axis=1)))[:, None]
    compliant = xp.ones(K, dtype=bool)
    breaching = xp.zeros(K, dtype=bool)
    recheck = xp.zeros(K, dtype=bool)
    for part, d, (limits, sign, pre_excess, always_active, strict) in zip(
        parts, data, statics, strict=True
    ):
        post = part.evaluate(ops, d, W)
        excess = (post - limits) * sign
        breached = excess > TOLERANCE
        active = breached & ((excess > pre_excess + TOLERANCE) | always_active)
        blocking = (breached if cure else active) & strict
        near = (xp.abs(excess - TOLERANCE) <= band) | (
            breached & (xp.abs(excess - (pre_excess + TOLERANCE)) <= band)
        )
        compliant = compliant & ~xp.any(blocking, axis=1)
        breaching = breaching | xp.any(breached, axis=1)
        recheck = recheck | xp.any(near, axis=1) | ~xp.isfinite(xp.sum(post, axis=1))
        if part.fragile is not None:
            recheck = recheck | part.fragile(ops, d, W)
    return compliant, breaching, recheck


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
    _flags: Callable[..., Any] | None = None
    """The per-vector flags of `_flags`, compiled (no fallback rows)."""
    part_statics: tuple[Any, ...] = ()
    """`statics` split by part (the flags' view of the same numbers)."""

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
            self._flags = self.backend.compile(
                lambda data, statics, W, cure: _flags(ops, parts_now, data, statics, W, cure),
                static_argnums=(3,),
            )
            self._signature = signature
        if not self.fallbacks:
            edges = np.cumsum([0] + [p.rows for p in self.parts])
            self.part_statics = self.backend.put(
                tuple(
                    tuple(np.asarray(x)[a:b] for x in statics)
                    for a, b in itertools.pairwise(edges.tolist())
                )
            )
        self.statics = self.backend.put(statics)
        self.data = self.backend.put(tuple(p.data for p in self.parts))
        return self

    @property
    def rows(self) -> int:
        """Rows of the layout."""
        return int(self.stack.offsets[-1])

    def run(
        self,
        W: FloatArray,
        *,
        cure_passive: bool,
        valid: int | None = None,
        every_row: bool = False,
    ) -> ChunkVerdict:
        """Values and verdicts of the chunk `W` (K, n) of validated weight vectors.

        `valid`: only the first `valid` vectors are wanted (the rest pad the chunk to a
        shape already compiled). `every_row`: the rows of every vector, breaching or not
        (`ChunkVerdict.vectors` is then every vector in order).
        """
        m = W.shape[0] if valid is None else valid
        Wd = self.backend.put(W)
        flagged = self._flags is not None and self._fused is not None and not self.fallbacks
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if every_row and flagged:
                assert self._fused is not None
                vectors = np.arange(m)
                verdict = self._fused(self.data, self.statics, Wd, cure_passive)
                post, breached, active, compliant, recheck = (np.array(x[:m]) for x in verdict)
            elif flagged:
                assert self._flags is not None and self._fused is not None
                flags = self._flags(self.data, self.part_statics, Wd, cure_passive)
                compliant, breaching, recheck = (np.array(x[:m]) for x in flags)
                wanted = np.flatnonzero(breaching | recheck)
                if len(wanted) > DENSE_BREACHES * m:
                    vectors = np.arange(m)
                    verdict = self._fused(self.data, self.statics, Wd, cure_passive)
                else:
                    vectors = wanted
                    verdict = self._subset(W, wanted, cure_passive)
                post, breached, active = (np.array(x[: len(vectors)]) for x in verdict[:3])
            else:
                vectors = np.arange(m)
                verdict = self._spliced(W, Wd, m, cure_passive)
                post, breached, active, compliant, recheck = (np.array(x[:m]) for x in verdict)
        rechecked = np.flatnonzero(recheck)
        row_of = {int(k): j for j, k in enumerate(vectors.tolist())}
        for k in rechecked.tolist():
            exact = check(self.layout, W[k], cure_passive=cure_passive)
            j = row_of[k]
            post[j], breached[j], active[j] = exact.post, exact.breached, exact.active
            compliant[k] = exact.is_compliant
        return ChunkVerdict(vectors, post, breached, active, compliant, rechecked)

    def _subset(self, W: FloatArray, wanted: IntArray, cure_passive: bool) -> tuple[Any, ...]:
        """The full verdict of the vectors `wanted` only (padded under JAX)."""
        assert self._fused is not None
        subset = W[wanted]
        if self.backend.name == "jax":
            size = _padded(len(wanted), W.shape[0])
            subset = np.concatenate([subset, np.zeros((size - len(wanted), W.shape[1]))])
        return tuple(self._fused(self.data, self.statics, self.backend.put(subset), cure_passive))

    def _spliced(self, W: FloatArray, Wd: Array, m: int, cure_passive: bool) -> tuple[Any, ...]:
        """The verdict with the fallback rows evaluated one vector at a time."""
        assert self._values is not None and self._verdict is not None
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
