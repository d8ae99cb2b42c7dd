"""Compile stage, numeric half: policies + request -> row sets with provenance."""

from __future__ import annotations

import io
import operator
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from engine.compile.checkstack import CheckStack
from engine.compile.context import CompileContext
from engine.compile.kinds import REGISTRY
from engine.compile.rows import Provenance, RowSet
from engine.errors import PolicyEvaluationError
from engine.lru import LruCache
from engine.resolve.references import ReferenceKey
from engine.weights.portfolio import Snapshot
from engine.weights.universe import UniverseCache
from models import (
    Instrument,
    PolicyDefinition,
    PolicyValidationRequest,
    PortfolioState,
    RiskModel,
)
from models.typing import FloatArray

__all__ = [
    "Layout",
    "LayoutCache",
    "build_layout",
    "layout_key",
    "pre_trade_values",
    "row_values",
]


@dataclass
class Layout:
    """Every row of every applicable policy for one request, with pre-trade values."""

    snap: Snapshot
    rowsets: list[RowSet]
    policies: list[PolicyDefinition]
    pre_values: list[FloatArray] = field(default_factory=list)

    _structures: dict[tuple[int, ...], tuple[Any, ...]] = field(default_factory=dict, repr=False)
    _solver: Layout | None = field(default=None, repr=False)
    _stacks: dict[tuple[int, ...], CheckStack] = field(default_factory=dict, repr=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)
    """What later stages derive from the layout's static data once (e.g. the analytics'
    sector codes and risk factors): valid as long as the layout is, since the layout key
    covers that data."""

    def __post_init__(self) -> None:
        self.pre_values = pre_trade_values(self.rowsets, self.snap.w0)

    @property
    def shifted(self) -> bool:
        """True when some row's pre-trade value is not its value at w0 (`RowSet.pre_shift`).

        Only the decision's FX trades do that; the engine adjusts such a decision through
        layouts without them (engine.engine), so the adjuster's premise holds: not trading
        leaves every row at its pre-trade value.
        """
        return any(rs.pre_shift is not None for rs in self.rowsets)

    def rebind(self, snap: Snapshot) -> None:
        """Serve a new request with the same structure: new weights, prices and NAV."""
        for rowset in self.rowsets:
            if rowset.refresh is not None:
                rowset.refresh(snap)
        self.snap = snap
        self.pre_values = pre_trade_values(self.rowsets, snap.w0)

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
            self._solver.pre_values = row_values(self._solver.rowsets, self.snap.w0)
        return self._solver

    def strict(self) -> list[int]:
        """Indices of the row sets of strict policies (the ones that constrain adjustment)."""
        return [k for k, rs in enumerate(self.rowsets) if _provenance(rs).strict]

    def row_stack(self, indices: Iterable[int]) -> CheckStack:
        """The checker's view of the chosen row sets (see `checkstack.CheckStack`)."""
        key = tuple(indices)
        stack = self._stacks.get(key)
        if stack is None:
            stack = self._stacks[key] = CheckStack.of(self.rowsets, key)
        return stack

    def structure(self, indices: Sequence[int]) -> tuple[Any, ...]:
        """Structure key of the chosen row sets (see `Block.structure`); `rebind` keeps it."""
        key = tuple(indices)
        if key not in self._structures:
            self._structures[key] = tuple(
                (self.rowsets[k].block.structure(), self.rowsets[k].sense) for k in indices
            )
        return self._structures[key]


def row_values(rowsets: Sequence[RowSet], w: FloatArray) -> list[FloatArray]:
    """Every row set's values at weights `w`.

    Floating-point faults (overflow, 0/0) give inf or NaN here instead of a warning or an
    exception that depends on the process's warning filters: the checker then refuses the
    row, naming its policy (`engine.check.checker`), whatever the filters say.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return [rs.block.values(w) for rs in rowsets]


def pre_trade_values(rowsets: Sequence[RowSet], w0: FloatArray) -> list[FloatArray]:
    """Every row set's values before the decision: at `w0`, less its `pre_shift`."""
    values = row_values(rowsets, w0)
    for k, rowset in enumerate(rowsets):
        if rowset.pre_shift is not None:
            values[k] = values[k] - rowset.pre_shift
    return values


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
            try:
                compiled = REGISTRY[spec.kind].compile(spec, ctx)
            except ArithmeticError as exc:  # overflow, division by zero: fail closed, named
                raise PolicyEvaluationError(
                    policy.policy_name, ctx.constraint_path, f"cannot be evaluated: {exc}"
                ) from exc
            for rowset in compiled:
                rowset.provenance = Provenance(policy=policy, constraint_index=j, kind=spec.kind)
                for part in rowset.restriction:
                    part.provenance = rowset.provenance
                rowsets.append(rowset)
    return Layout(snap=snap, rowsets=rowsets, policies=list(policies))


_PER_REQUEST_FIELDS = frozenset({"price", "lot_size"})
"""Instrument fields a cached layout re-reads on every request (see `Layout.rebind`)."""

_STATIC_FIELDS = tuple(f for f in Instrument.model_fields if f not in _PER_REQUEST_FIELDS)
_static_fields_of = operator.itemgetter(*_STATIC_FIELDS)
"""Applied to an instrument's `__dict__` (where pydantic keeps the field values): a dict
look-up is twice as fast as attribute access on a model, and this runs 500 times a request."""

_STATE_EXCLUDED = frozenset(
    {"positions", "cash", "as_of", "instruments", "benchmark", "prices", "base_currency"}
)
"""Portfolio state fields keyed by other means (instruments, benchmark; the base currency and
the currencies of cash in `layout_key`) or not at all (positions, cash, as_of, prices:
weights, prices and NAV, re-read by `rebind`)."""


def _reference_data_key(
    state: PortfolioState, reference: ReferenceKey | None = None
) -> tuple[Any, ...]:
    """Key of the state's reference data: every instrument field but price and lot.

    With a `reference` (the state came from registered, immutable versions) the stored
    versions stand for what they supplied: the universe's instruments (all but the first
    `reference.inline`) and the risk model. Everything else is keyed by content.

    The instruments are pickled rather than serialized through pydantic: a request brings
    new instrument objects every time (new prices), so the key is built per request, and
    pickling plain tuples is several times faster than JSON of 500 models. Pickle keeps
    types apart (True, 1 and 1.0 give different bytes, and a group named "1" differs from
    one named "1.0"), so equal bytes mean equal content. A factor risk model sent inline is
    pickled with them (its fields are plain lists and dicts); a full covariance matrix
    goes with the rest of the state, as JSON.
    """
    instruments = state.instruments
    versions: tuple[Any, ...] = ()
    if reference is not None and reference.universe is not None:
        instruments = instruments[: reference.inline]
        versions = ("universe", *reference.universe)
    excluded = set(_STATE_EXCLUDED)
    factor_model = None
    if reference is not None and reference.risk_model is not None:
        excluded.add("risk_model")
        versions = (*versions, "risk_model", *reference.risk_model)
    elif state.risk_model is not None and state.risk_model.covariance is None:
        # A factor model sent inline: its plain lists and dicts pickled with the instruments
        # (0.5 ms at n = 2000 with 20 factors, where its JSON took 1.5-2 ms a request).
        factor_model = _factor_form(state.risk_model)
        excluded.add("risk_model")
    try:
        static = [_static_fields_of(instrument.__dict__) for instrument in instruments]
        benchmark = None if state.benchmark is None else list(state.benchmark.items())
        content = _pickled((static, benchmark, factor_model))
    except (KeyError, pickle.PicklingError, TypeError, AttributeError):
        # A model built without validation (a field unset) or an exotic attribute value:
        # the slow, always-correct form.
        fields: dict[str, Any] = {"instruments": {"__all__": set(_STATIC_FIELDS)}}
        fields["benchmark"] = True
        if factor_model is not None:
            fields["risk_model"] = True
        dumped = state.model_copy(update={"instruments": list(instruments)})
        content = dumped.model_dump_json(include=fields).encode()
    rest = state.model_dump_json(exclude=excluded) if _has_rest(state, excluded) else ""
    return (versions, content, rest)


def _factor_form(model: RiskModel) -> tuple[Any, ...]:
    """A factor risk model's fields as plain values (lists, dicts, floats, strings)."""
    return (
        model.factor_loadings,
        model.factor_covariance,
        model.specific_variance,
        model.id,
        model.version,
    )


def _pickled(obj: object) -> bytes:
    """Pickle without the memo, so the bytes depend on content alone.

    With the memo, a string object seen twice is written once and referenced after, so
    the same content parsed twice (shared or separate string objects) could give different
    bytes: a spurious cache miss. Fast mode writes every object in full (nothing here is
    recursive, which fast mode cannot handle).
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(obj)
    return buffer.getvalue()


def _has_rest(state: PortfolioState, excluded: set[str]) -> bool:
    """True when a state field outside `excluded` other than the id may be set."""
    return any(
        getattr(state, name) is not None
        for name in PortfolioState.model_fields
        if name not in excluded and name != "portfolio_id"
    )


_POLICY_LIST = TypeAdapter(list[PolicyDefinition])


def layout_key(
    policies: Sequence[PolicyDefinition],
    request: PolicyValidationRequest,
    snap: Snapshot,
    reference: ReferenceKey | None = None,
) -> tuple[Any, ...]:
    """Everything a layout is built from except weights, prices and NAV (see `rebind`).

    `reference`: the stored versions the request's reference data came from (see
    `_reference_data_key`).

    Policies are keyed by their JSON, all in one call (≈ 3 us a policy; 0.2 ms for the
    benchmark's twenty at n = 500, whose lists name symbols): they are mutable models, so a
    key by identity would trust every caller never to change one in place. A stored
    revision would not do either: these are the effective policies after the lineage's
    overrides and the request's context, which can change a limit per request.
    """
    state = request.portfolio_state
    return (
        _POLICY_LIST.dump_json(list(policies)),
        snap.symbols,
        state.portfolio_id,
        _reference_data_key(state, reference),
        # The rows per currency and per sleeve: which exist (amounts are re-read by `rebind`).
        tuple(snap.money.in_use()),
        tuple(sorted(snap.strategies.items())),
    )


class LayoutCache:
    """Layouts by `layout_key`, least recently used first out; a hit is rebound."""

    def __init__(self, max_entries: int = 32) -> None:
        self._lru: LruCache[Layout] = LruCache(max_entries)
        # The snapshots' arrays of registered universes, by stored version.
        self.universes = UniverseCache()

    @property
    def max_entries(self) -> int:
        """The most layouts kept."""
        return self._lru.max_entries

    @property
    def hits(self) -> int:
        """Requests answered from the cache."""
        return self._lru.hits

    @property
    def misses(self) -> int:
        """Requests that built their layout."""
        return self._lru.misses

    def __len__(self) -> int:
        return len(self._lru)

    def get(
        self,
        policies: Sequence[PolicyDefinition],
        request: PolicyValidationRequest,
        snap: Snapshot,
        reference: ReferenceKey | None = None,
    ) -> Layout:
        """The layout of this request, built on a miss, rebound to `snap` on a hit.

        `reference` names the stored versions the request's reference data came from
        (`engine.resolve.references.Resolution.key`); the caller vouches that the state's
        instruments after the first `reference.inline` are those versions' own.
        """
        key = layout_key(policies, request, snap, reference)
        layout = self._lru.lookup(key)
        if layout is not None:
            layout.rebind(snap)
            return layout
        layout = build_layout(policies, request, snap)
        self._lru.put(key, layout)
        return layout
