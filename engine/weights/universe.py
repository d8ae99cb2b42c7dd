"""A registered universe's instruments as arrays, built once per stored version.

A request that names a registered universe (and sends no instruments of its own) gets the
stored version's instruments, every one of them, on every request. The snapshot reads a
listed price, a lot size and a currency from each instrument of V: at n = 2000 that is
6,000 attribute reads of models scattered in memory, most of a millisecond. Stored
versions are immutable (`engine.resolve.references.ReferenceKey`), so those fields are
read once per version into arrays here, and a request's snapshot indexes them
(`engine.weights.portfolio.snapshot_of`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.lru import LruCache
from engine.resolve.references import ReferenceKey
from models import Instrument
from models.typing import AnyArray, FloatArray, IntArray

__all__ = ["UniverseArrays", "UniverseCache"]

_fields = operator.attrgetter("symbol", "price", "lot_size", "currency")


@dataclass(frozen=True)
class UniverseArrays:
    """The static fields of a universe's instruments, in the universe's order."""

    by_symbol: dict[str, Instrument]
    rank: dict[str, int]
    """Each symbol's place in symbol order."""
    ordered: AnyArray
    """The symbols in symbol order (an object array)."""
    position: IntArray
    """The universe position of each symbol in symbol order."""
    prices: FloatArray
    lots: FloatArray
    currencies: AnyArray
    """Each instrument's `currency` (None: the portfolio's base), an object array."""
    first: str
    last: str

    @classmethod
    def of(cls, instruments: Sequence[Instrument]) -> UniverseArrays | None:
        """The arrays of `instruments`; None when empty or a symbol is listed twice."""
        if not instruments:
            return None
        symbols, prices, lots, currencies = zip(*map(_fields, instruments), strict=True)
        by_symbol = dict(zip(symbols, instruments, strict=True))
        if len(by_symbol) != len(instruments):
            return None  # the snapshot names the duplicate, from the request
        held: AnyArray = np.empty(len(instruments), dtype=object)
        held[:] = currencies
        position = np.argsort(np.array(symbols, dtype=object), kind="stable")
        ordered: AnyArray = np.empty(len(symbols), dtype=object)
        ordered[:] = [symbols[k] for k in position]
        return cls(
            by_symbol=by_symbol,
            rank={symbol: r for r, symbol in enumerate(ordered.tolist())},
            ordered=ordered,
            position=position.astype(np.int64),
            prices=np.array(prices, dtype=float),
            lots=np.array(lots, dtype=float),
            currencies=held,
            first=symbols[0],
            last=symbols[-1],
        )

    def matches(self, instruments: Sequence[Instrument]) -> bool:
        """True when `instruments` look like this universe's (length, first and last)."""
        return (
            len(instruments) == len(self.by_symbol)
            and instruments[0].symbol == self.first
            and instruments[-1].symbol == self.last
        )


class UniverseCache:
    """`UniverseArrays` by stored universe version, least recently used first out."""

    def __init__(self, max_entries: int = 8) -> None:
        self._lru: LruCache[UniverseArrays] = LruCache(max_entries)

    def arrays(
        self, reference: ReferenceKey | None, instruments: Sequence[Instrument]
    ) -> UniverseArrays | None:
        """The arrays of the universe `reference` names, or None.

        None unless the state's instruments are all that universe's (none sent inline).
        """
        if reference is None or reference.universe is None or reference.inline != 0:
            return None
        found = self._lru.lookup(reference.universe)
        if found is None:
            found = UniverseArrays.of(instruments)
            if found is None:
                return None
            self._lru.put(reference.universe, found)
        return found if found.matches(instruments) else None
