"""`BatchChecker`: one policy set over one universe, checked for K weight vectors at once.

The policies are resolved and compiled once, through the same `prepare` as a single
request (`engine.compile.prepared`), over a universe V of every instrument given (the
`include` of capacity and export). Every check then binds the layout to a pre-trade
portfolio (`Layout.rebind`) and runs its rows' batch program (`engine.batch.program`) over
chunks of the weight vectors.

Weights and cash
----------------
`weights[k, i]` is the k-th portfolio's weight of `symbols[i]`, a fraction of its NAV
(SPEC §2). Without `cash`, each portfolio's cash weight is `1 - sum_i w_ki`. With `cash`
(one number, or one per portfolio), weights and cash are amounts in one unit (market values,
or weights of some other NAV): each vector is divided by its own NAV, `sum_i w_ki + cash_k`,
which must be positive. Rows that read money (`trade_limit`'s ADV fraction, `trade_risk`)
convert weights with the checker's `nav`.

`pre_trade` is the pre-trade weights, one vector for every portfolio (`(n,)`) or one each
(`(K, n)`, checked group by group of equal vectors). Without it the pre-trade portfolio is
all cash (`w0 = 0`): turnover and trade limits measure from cash, and a breach is active or
passive against that portfolio, as for a single request that buys the whole portfolio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from engine.batch.backend import Backend, BackendName
from engine.batch.backend import backend as backend_named
from engine.batch.inputs import finite, numbers, plausible, positive_chunk, thread_count
from engine.batch.pipeline import MAX_THREADS, in_order, usable_cores
from engine.batch.program import ChunkVerdict, Program
from engine.batch.result import BatchResult, RowLabel
from engine.check.checker import check
from engine.compile.language import check_policies
from engine.compile.layout import Layout, LayoutCache
from engine.compile.prepared import prepare
from engine.report import violations_of
from engine.weights.portfolio import Snapshot
from models import (
    Instrument,
    PolicyDefinition,
    PolicyValidationRequest,
    RiskModel,
    ScenarioSet,
    Violation,
)
from models.typing import FloatArray, IntArray

__all__ = ["DEFAULT_CHUNK", "BatchChecker"]

DEFAULT_CHUNK = 2048
"""Vectors evaluated at once. At n = 500 a chunk of 2,048 keeps each (chunk, rows) pass in
the cache: 2.3 times the throughput of 16,384 under JAX in one run of
`python -m benchmarks.batch` (docs/batch.md), and 1,024 was no faster."""


def _refuse_state_kinds(policies: Sequence[PolicyDefinition]) -> None:
    """A clear error for the kinds whose rows need more of the state than weights give.

    Cash by currency, currency exposure and target drift read the portfolio's cash by
    currency, FX rates and hedges, or its target weights: a batch of weight vectors does
    not carry them (not yet built; check such policies through the single-request engine).
    """
    for p, policy in enumerate(policies):
        for c, constraint in enumerate(policy.rules.constraints):
            kind = constraint.kind
            if kind in ("currency_exposure", "target_drift") or (
                kind == "cash" and getattr(constraint, "by_currency", False)
            ):
                what = "cash by currency" if kind == "cash" else kind
                raise ValueError(
                    f"policies[{p}] ({policy.policy_name!r}), rules.constraints[{c}]: "
                    f"{what} is not supported by the batch checker (it needs the "
                    "portfolio's currencies or target weights, which weight vectors do not "
                    "carry); check it through the single-request engine"
                )


"""Vectors evaluated at once: memory is O(chunk x (n + rows)), whatever K."""

Progress = Callable[[int], None]


class BatchChecker:
    """Check many weight vectors against one compiled policy set (see the module docstring).

    Parameters
    ----------
    policies
        The policies (models or their JSON-like dicts); disabled ones, and ones scoped to
        other portfolios than `portfolio_id`, do not apply, as for a request.
    instruments
        The universe: one column of `weights` per instrument, in `symbols` order.
    benchmark, risk_model, scenarios
        As in a request's portfolio state.
    nav
        The NAV (base currency) that rows reading money convert weights with.
    portfolio_id, context
        The portfolio the policies' scopes and the request context their `when` read.
    backend
        "jax" (jit, 64-bit), "numpy", or "auto": JAX when installed.
    chunk_size
        Vectors evaluated at once (memory bound); a check may override it.
    threads
        Chunks evaluated at once, each on its own thread (JAX and NumPy release the GIL);
        default under JAX the cores this process may use, at most `MAX_THREADS`, under
        NumPy 1 (its matrix products use the cores already).
    """

    def __init__(
        self,
        policies: Sequence[PolicyDefinition | Mapping[str, Any]],
        instruments: Sequence[Instrument | Mapping[str, Any]],
        *,
        benchmark: Mapping[str, float] | None = None,
        risk_model: RiskModel | Mapping[str, Any] | None = None,
        scenarios: ScenarioSet | Mapping[str, Any] | None = None,
        nav: float = 1.0,
        portfolio_id: str = "batch",
        context: Mapping[str, Any] | None = None,
        backend: BackendName = "auto",
        chunk_size: int = DEFAULT_CHUNK,
        threads: int | None = None,
    ) -> None:
        models = [PolicyDefinition.model_validate(p) for p in policies]
        check_policies(models, prefix="policies")
        _refuse_state_kinds(models)
        state: dict[str, Any] = {
            "portfolio_id": portfolio_id,
            "cash": nav,
            "positions": [],
            "instruments": [Instrument.model_validate(i) for i in instruments],
            "benchmark": None if benchmark is None else dict(benchmark),
            "risk_model": risk_model,
            "scenarios": scenarios,
        }
        request = PolicyValidationRequest.model_validate(
            {
                "decision": {"decision_id": "batch", "portfolio_id": portfolio_id, "trades": []},
                "portfolio_state": state,
                "context": dict(context or {}),
                "mode": "validate",
            }
        )
        symbols = sorted(i.symbol for i in state["instruments"])
        prepared = prepare(LayoutCache(1), request, models, include=symbols)
        self.policies = prepared.policies
        self._base = prepared.snapshot
        self._layout: Layout = prepared.layout
        self._bound = np.zeros(self._base.n)
        self._layout.rebind(self._snapshot(self._bound))
        self._backend: Backend = backend_named(backend)
        self._program = Program.of(self._layout, self._backend)
        self.chunk_size = positive_chunk(chunk_size)
        # NumPy's products already run on every core (BLAS): more threads would contend.
        default = min(usable_cores(), MAX_THREADS) if self._backend.name == "jax" else 1
        self.threads = default if threads is None else thread_count(threads)
        self.labels = tuple(
            RowLabel(rs.provenance.policy_name, rs.provenance.kind, rs.violation_type, subject)
            for rs in self._layout.rowsets
            if rs.provenance is not None
            for subject in rs.subjects
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        """The columns of `weights`, in order."""
        return self._base.symbols

    @property
    def backend(self) -> str:
        """The backend the batched rows run on ("jax" or "numpy")."""
        return self._backend.name

    @property
    def fallbacks(self) -> list[RowLabel]:
        """The rows checked one vector at a time (their blocks have no batch form)."""
        return [
            self.labels[c]
            for _, cols in self._program.fallbacks
            for c in range(cols.start, cols.stop)
        ]

    def check(
        self,
        weights: Any,
        cash: Any = None,
        pre_trade: Any = None,
        *,
        cure_passive: bool = False,
        chunk_size: int | None = None,
        progress: Progress | None = None,
    ) -> BatchResult:
        """Check every row of `weights` (K, n); see the module docstring for the units.

        `cure_passive` as in a request: passive breaches of strict policies block too.
        `progress(done)` is called after every chunk with the vectors checked so far.
        Raises ValueError naming the argument for a shape, a number or a NAV it cannot take.
        """
        W = self._weights(weights, cash)
        pre = self._pre_trade(pre_trade, W.shape[0])
        chunk = self.chunk_size if chunk_size is None else positive_chunk(chunk_size)
        K = W.shape[0]
        compliant = np.ones(K, dtype=bool)
        found: list[tuple[np.ndarray, ...]] = [
            (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
        ]
        rechecked: list[np.ndarray] = []
        done = 0
        groups = _groups(pre, K)
        for w0, members in groups:
            self._bind(w0)
            for chosen, verdict in self._chunks(W, members, chunk, cure_passive):
                compliant[chosen] = verdict.is_compliant
                at, row, observed, active = verdict.breaches()
                found.append((chosen[at], row, observed, active))
                rechecked.append(chosen[verdict.rechecked])
                done += len(chosen)
                if progress is not None:
                    progress(done)
        vector, row, observed, active = (
            np.concatenate(parts) for parts in zip(*found, strict=True)
        )
        if len(groups) > 1:  # one group's chunks come in vector then row order already
            order = np.lexsort((row, vector))
            vector, row, observed, active = (
                vector[order],
                row[order],
                observed[order],
                active[order],
            )
        return BatchResult(
            labels=self.labels,
            is_compliant=compliant,
            breach_vector=vector.astype(np.int64, copy=False),
            breach_row=row.astype(np.int64, copy=False),
            observed=observed.astype(float, copy=False),
            active=active.astype(bool, copy=False),
            rechecked=np.sort(np.concatenate([np.zeros(0, np.int64), *rechecked])),
            backend=self.backend,
            _report=lambda k: self._violations(
                W[k], pre[k] if pre.ndim == 2 else pre, cure_passive
            ),
        )

    def values(
        self,
        weights: Any,
        cash: Any = None,
        pre_trade: Any = None,
        *,
        chunk_size: int | None = None,
    ) -> FloatArray:
        """(K, rows) every row's value for every vector of `weights`, in `labels` order.

        The numbers the verdict of `check` compares with `limits` (the units as in `check`;
        `pre_trade`, one vector for all, moves only rows measured from it: turnover, trade
        limits). A vector near a threshold is not re-checked here: values agree with the
        single-request checker's to float rounding.
        """
        W = self._weights(weights, cash)
        pre = self._pre_trade(pre_trade, W.shape[0])
        if pre.ndim != 1:
            raise ValueError("values takes one pre_trade vector (n,) for every portfolio")
        chunk = self.chunk_size if chunk_size is None else positive_chunk(chunk_size)
        self._bind(pre)
        K = W.shape[0]
        out = np.zeros((K, len(self.labels)))
        for chosen, verdict in self._chunks(W, np.arange(K), chunk, False, every_row=True):
            out[chosen[verdict.vectors]] = verdict.post
        return out

    @property
    def limits(self) -> FloatArray:
        """(rows,) each row's limit, in `labels` order."""
        return np.concatenate(
            [rs.limits for rs in self._layout.rowsets if rs.provenance is not None] or [np.zeros(0)]
        ).astype(float)

    @property
    def senses(self) -> tuple[str, ...]:
        """(rows,) "le" (value at most the limit) or "ge", in `labels` order."""
        return tuple(
            rs.sense
            for rs in self._layout.rowsets
            if rs.provenance is not None
            for _ in rs.subjects
        )

    # -- one vector, through the single-request checker --------------------------------------

    def _violations(self, w: FloatArray, w0: FloatArray, cure_passive: bool) -> list[Violation]:
        self._bind(w0)
        result = check(self._layout, w, cure_passive=cure_passive)
        return violations_of(result, self._layout.snap, None, cure_passive=cure_passive)

    # -- internals ---------------------------------------------------------------------------

    def _chunks(
        self, W: FloatArray, members: IntArray, chunk: int, cure: bool, *, every_row: bool = False
    ) -> Iterator[tuple[IntArray, ChunkVerdict]]:
        """The verdicts of `W[members]`, chunk by chunk in order, re-checks applied.

        Chunks are evaluated on `threads` threads (one when a row falls back to its own
        `values`, whose code may not be thread-safe); re-checks run on this thread. A chunk
        is evaluated whole at once when the last chunk seen was `crowded`.
        """
        crowded = False

        def task(chosen: IntArray) -> Callable[[], tuple[IntArray, ChunkVerdict]]:
            dense = crowded  # what the chunks consumed so far say, when this one is queued
            return lambda: (chosen, self._evaluate(W, chosen, chunk, cure, every_row, dense))

        tasks = (task(members[s : s + chunk]) for s in range(0, len(members), chunk))
        threads = 1 if self._program.fallbacks or len(members) <= chunk else self.threads
        for chosen, verdict in in_order(tasks, threads):
            crowded = verdict.crowded
            rows = W[chosen[verdict.rechecked]]
            yield chosen, self._program.recheck(rows, verdict, cure)

    def _evaluate(
        self, W: FloatArray, chosen: IntArray, chunk: int, cure: bool, every_row: bool, dense: bool
    ) -> ChunkVerdict:
        """The chunk `W[chosen]`: its weights checked, then evaluated.

        Padded to `chunk` rows under JAX (one compiled shape).
        """
        m = len(chosen)
        first = int(chosen[0])
        contiguous = int(chosen[-1]) - first == m - 1  # chosen is increasing: a view will do
        block = W[first : first + m] if contiguous else W[chosen]
        largest = plausible(block, "weights", chosen)
        if self._backend.name == "jax" and m < chunk and len(W) > chunk:
            block = np.concatenate([block, np.zeros((chunk - m, W.shape[1]))])
        return self._program.evaluate(
            block, cure_passive=cure, valid=m, every_row=every_row, dense=dense, largest=largest
        )

    def _snapshot(self, w0: FloatArray) -> Snapshot:
        base = self._base
        return replace(
            base,
            cash=base.nav * (1.0 - float(w0.sum())),
            q=w0 * base.nav / base.prices,
            t=np.zeros(base.n),
            w0=w0.copy(),
            w_hat=w0.copy(),
        )

    def _bind(self, w0: FloatArray) -> None:
        """Bind the layout and the program to the pre-trade weights `w0`."""
        if np.array_equal(w0, self._bound):
            return
        self._layout.rebind(self._snapshot(w0))
        self._program.bound()
        self._bound = w0.copy()

    def _weights(self, weights: Any, cash: Any) -> FloatArray:
        """`weights` as a (K, n) float array, divided by each vector's NAV given `cash`.

        Whether each weight is finite and plausible is checked chunk by chunk as it is
        evaluated (`_evaluate`): two reductions over what the chunk reads anyway.
        """
        W = numbers(weights, "weights")
        n = self._base.n
        if W.ndim != 2 or W.shape[1] != n:
            raise ValueError(
                f"weights must be a (K, n) array with n = {n} columns (one per symbol of "
                f".symbols); got shape {W.shape}"
            )
        if cash is not None:
            finite(W, "weights")  # before a NAV made of them is judged
            c = finite(numbers(cash, "cash"), "cash")
            if c.ndim > 1 or (c.ndim == 1 and c.shape != (W.shape[0],)):
                raise ValueError(
                    f"cash must be one number or a (K,) array with K = {W.shape[0]}; "
                    f"got shape {c.shape}"
                )
            nav = W.sum(axis=1) + c
            bad = np.flatnonzero(~(nav > 0))
            if len(bad):
                k = int(bad[0])
                raise ValueError(
                    f"portfolio {k}: NAV = sum of weights + cash = {nav[k]:.6g} must be > 0"
                )
            W = W / nav[:, None]
        return W

    def _pre_trade(self, pre_trade: Any, K: int) -> FloatArray:
        n = self._base.n
        if pre_trade is None:
            return np.zeros(n)
        w0 = finite(numbers(pre_trade, "pre_trade"), "pre_trade")
        if w0.shape not in ((n,), (K, n)):
            raise ValueError(
                f"pre_trade must be an (n,) array (every portfolio's) or a (K, n) array with "
                f"K = {K}, n = {n}; got shape {w0.shape}"
            )
        plausible(w0 if w0.ndim == 2 else w0[None, :], "pre_trade")
        return w0


def _groups(pre: FloatArray, K: int) -> list[tuple[FloatArray, np.ndarray]]:
    """The vectors by pre-trade portfolio: one group when one `w0` serves all."""
    if pre.ndim == 1:
        return [(pre, np.arange(K))]
    unique, inverse = np.unique(pre, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return [(unique[u], np.flatnonzero(inverse == u)) for u in range(len(unique))]
