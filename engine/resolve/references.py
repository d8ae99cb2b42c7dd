"""Registered reference data in a request: merge it into a plain portfolio state.

A request may name a registered universe (`portfolio_state.universe`) and risk model
(`portfolio_state.risk_model.id`) and give current `prices` by symbol. The edges look the
data up (through a `ReferenceSource`) and `resolve_references` turns the request into the
plain form the engine evaluates:

- instruments = the inline `instruments`, then every universe instrument whose symbol is
  not among them (an inline instrument replaces the universe's entry as a whole);
- `prices` stay in the state, checked here to name only symbols of those instruments (a
  symbol in neither is an error naming `portfolio_state.prices.<symbol>`): the engine
  applies them when it reads prices (`engine.weights.portfolio.snapshot_of`), so that a
  request repricing 2,000 names copies no instrument;
- a referenced risk model is replaced by its registered data;
- a referenced FX snapshot (`portfolio_state.fx_snapshot`) becomes the state's `fx_rates`
  (its base currency must be the state's).

The engine itself never looks anything up: `require_resolved` rejects a state that still
names registered data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from engine.errors import InputError
from models import DataReference, Instrument, PortfolioState, ReferenceDataUsed, RiskModel

__all__ = [
    "FxSnapshotData",
    "ReferenceKey",
    "ReferenceNotFound",
    "ReferenceSource",
    "Resolution",
    "RiskModelData",
    "UniverseData",
    "require_resolved",
    "resolve_references",
    "unknown_prices",
]


@dataclass(frozen=True)
class UniverseData:
    """One stored version of a universe, ready to merge (shared between requests)."""

    id: str
    version: int
    instruments: tuple[Instrument, ...]
    symbols: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """The instruments' symbols (derived; a set to check a request's `prices` against)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", frozenset(i.symbol for i in self.instruments))


@dataclass(frozen=True)
class RiskModelData:
    """One stored version of a risk model (shared between requests)."""

    id: str
    version: int
    model: RiskModel


@dataclass(frozen=True)
class FxSnapshotData:
    """One stored version of an FX snapshot (shared between requests)."""

    id: str
    version: int
    base_currency: str
    rates: Mapping[str, float]


class ReferenceNotFound(LookupError):
    """The source has no such id (`part` = "id") or no such version (`part` = "version")."""

    def __init__(self, part: Literal["id", "version"], message: str) -> None:
        super().__init__(message)
        self.part = part
        self.message = message


class ReferenceSource(Protocol):
    """Where registered reference data comes from (the service's store, or nothing)."""

    def universe(self, ref: DataReference) -> UniverseData:
        """The universe `ref` names (latest version when it has none), or ReferenceNotFound."""
        ...

    def risk_model(self, ref: DataReference) -> RiskModelData:
        """The risk model `ref` names (latest when it has no version), or ReferenceNotFound."""
        ...

    def fx_snapshot(self, ref: DataReference) -> FxSnapshotData:
        """The FX snapshot `ref` names (latest when it has no version), or ReferenceNotFound."""
        ...


_T_co = TypeVar("_T_co", covariant=True)


@dataclass(frozen=True)
class ReferenceKey:
    """The stored versions a resolved state's reference data came from: a cache key for it.

    Stored versions are immutable, so `universe` (id, version) stands for the static fields
    of every instrument the state took from it (all but the first `inline`, which the
    request sent itself), and `risk_model` (id, version) for the whole risk model. The
    layout cache keys by these instead of reading 500 instruments on every request; prices
    and lots are re-read anyway (`Layout.rebind`).
    """

    universe: tuple[str, int] | None
    risk_model: tuple[str, int] | None
    inline: int


_INSTRUMENT_PATH = re.compile(r"^portfolio_state\.instruments\[(\d+)\](.*)$", re.DOTALL)


@dataclass(frozen=True)
class Resolution:
    """A resolved state, the versions it used, and where its instruments came from.

    `state.instruments[k]` for `k >= inline` came from the universe, at index
    `from_universe[k - inline]` of the stored version.
    """

    state: PortfolioState
    used: ReferenceDataUsed | None = None
    inline: int = 0
    from_universe: tuple[int, ...] = field(default=())
    key: ReferenceKey | None = None
    """What the engine's layout cache may key the reference data by (None: by content)."""

    def field_path(self, path: str) -> str:
        """`path` of an engine error, pointing into the universe or FX snapshot it lies in."""
        fx = "portfolio_state.fx_rates"
        if path.startswith(fx) and self.used is not None and self.used.fx_snapshot is not None:
            return "portfolio_state.fx_snapshot.rates" + path[len(fx) :]
        match = _INSTRUMENT_PATH.match(path)
        if match is None or self.used is None or self.used.universe is None:
            return path
        k = int(match.group(1))
        if k < self.inline or k - self.inline >= len(self.from_universe):
            return path
        return f"portfolio_state.universe.instruments[{self.from_universe[k - self.inline]}]" + (
            match.group(2)
        )

    @contextmanager
    def located(self) -> Iterator[None]:
        """Re-raise an engine `InputError` about a universe's instrument as pointing there.

        The engine sees the merged instruments list; its paths (`instruments[37]`) mean
        nothing to a caller who sent a universe id, so they are rewritten with `field_path`.
        """
        try:
            yield
        except InputError as exc:
            field = self.field_path(exc.field)
            if field == exc.field:
                raise
            raise type(exc)(field, exc.message) from exc


def names_references(state: PortfolioState) -> bool:
    """True when `state` names registered data (a universe, risk model or FX snapshot by id)."""
    model = state.risk_model
    return (
        state.universe is not None
        or state.fx_snapshot is not None
        or (model is not None and model.id is not None)
    )


def require_resolved(state: PortfolioState) -> None:
    """Refuse a state that still names registered data (the engine cannot look it up)."""
    if not names_references(state):
        return
    where = (
        "portfolio_state.universe"
        if state.universe is not None
        else "portfolio_state.fx_snapshot"
        if state.fx_snapshot is not None
        else "portfolio_state.risk_model.id"
    )
    raise InputError(
        where,
        "registered reference data is resolved before the engine runs: send the request to "
        "the service, or run `pes validate --database-url URL`",
    )


def resolve_references(state: PortfolioState, source: ReferenceSource) -> Resolution:
    """The plain state of the module docstring, or InputError naming the field."""
    if not names_references(state):
        if state.prices is not None:
            unknown_prices(state.prices, state.instruments)
        return Resolution(state)
    instruments = list(state.instruments)
    from_universe: tuple[int, ...] = ()
    universe_used = risk_used = None
    universe_key = risk_key = None
    if state.universe is not None:
        data = _lookup(source.universe, state.universe, "portfolio_state.universe")
        universe_used = DataReference(id=data.id, version=data.version)
        universe_key = (data.id, data.version)
        inline = {inst.symbol for inst in instruments}
        if inline & data.symbols:
            kept = [k for k, inst in enumerate(data.instruments) if inst.symbol not in inline]
            instruments.extend(data.instruments[k] for k in kept)
            from_universe = tuple(kept)
        else:  # the common case: nothing replaced, the stored tuple taken whole
            instruments.extend(data.instruments)
            from_universe = tuple(range(len(data.instruments)))
        if state.prices is not None and not state.prices.keys() <= data.symbols | inline:
            unknown_prices(state.prices, instruments)
    elif state.prices is not None:
        unknown_prices(state.prices, instruments)
    model = state.risk_model
    if model is not None and model.id is not None:
        ref = DataReference(id=model.id, version=model.version)
        risk = _lookup(source.risk_model, ref, "portfolio_state.risk_model")
        risk_used = DataReference(id=risk.id, version=risk.version)
        risk_key = (risk.id, risk.version)
        model = risk.model
    update: dict[str, object] = {"instruments": instruments, "universe": None, "risk_model": model}
    fx_used = None
    if state.fx_snapshot is not None:
        fx = _lookup(source.fx_snapshot, state.fx_snapshot, "portfolio_state.fx_snapshot")
        if fx.base_currency != state.base_currency:
            raise InputError(
                "portfolio_state.fx_snapshot",
                f"FX snapshot {fx.id!r} version {fx.version} quotes rates in "
                f"{fx.base_currency}, the portfolio's base_currency is {state.base_currency}",
            )
        fx_used = DataReference(id=fx.id, version=fx.version)
        update.update(fx_rates=dict(fx.rates), fx_snapshot=None)
    resolved = state.model_copy(update=update)
    used = key = None
    if universe_used is not None or risk_used is not None or fx_used is not None:
        used = ReferenceDataUsed(universe=universe_used, risk_model=risk_used, fx_snapshot=fx_used)
    if universe_used is not None or risk_used is not None:
        key = ReferenceKey(
            universe=universe_key, risk_model=risk_key, inline=len(state.instruments)
        )
    return Resolution(resolved, used, len(state.instruments), from_universe, key)


class _Getter(Protocol[_T_co]):
    def __call__(self, ref: DataReference, /) -> _T_co: ...


def _lookup(get: _Getter[_T_co], ref: DataReference, path: str) -> _T_co:
    try:
        return get(ref)
    except ReferenceNotFound as exc:
        raise InputError(f"{path}.{exc.part}", exc.message) from exc


def unknown_prices(prices: Mapping[str, float], instruments: Sequence[Instrument]) -> None:
    """Raise InputError naming the first price whose symbol none of `instruments` has."""
    if len(prices) == 0:
        return
    known = {inst.symbol for inst in instruments}
    for symbol in prices:
        if symbol not in known:
            raise InputError(
                f"portfolio_state.prices.{symbol}",
                f"no instrument {symbol} in the universe or the instruments",
            )
