"""The monitored book: each portfolio's holdings, the prices, and the check of the holdings.

`Book` keeps the latest position snapshot of every portfolio and the latest price of every
symbol, an index from symbol to the portfolios holding it, and one `BatchChecker` per
distinct effective policy set. `check(touched)` re-checks the given portfolios, grouped by
policy set, each group in one batch, and compares what is breached now with the live
violations it knows of: new breaches become `Opening`s, breaches the monitor opened that
are gone become `Clearing`s.

What a breach is here (SPEC §5 without a decision): the holdings are checked as they are,
with no trade. A row is breached when the current weights exceed its limit by more than
the verdict tolerance; there is no active or passive (nothing is proposed), and a breach
is stored as `passive` with its observed value as pre-trade. Rows that only a decision can
breach are not monitored: `turnover`, `trade_limit`, `trade_risk`, and `restricted` with
`no_buy`, `no_sell` or `no_trade`; nor the kinds the batch checker cannot take (cash by
currency, `currency_exposure`, `target_drift`). A policy left with no constraint is not
monitored at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from api.store.monitor import BreachKey, Clearing, Opening
from engine.batch import BatchChecker
from engine.errors import PolicyResolutionError
from engine.resolve.hierarchy import Lineage, resolve
from engine.weights.portfolio import MAX_WEIGHT
from models import Instrument, PolicyDefinition, PortfolioNode
from models.policy import PolicyScope
from models.typing import FloatArray, IntArray

__all__ = ["DECISION_ONLY", "Book", "Holding", "holdings_policies"]

log = logging.getLogger("pes.monitor")

DECISION_ONLY = frozenset({"turnover", "trade_limit", "trade_risk"})
"""Constraint kinds that measure a trade, not holdings: never breached without a decision."""
_DECISION_MODES = frozenset({"no_buy", "no_sell", "no_trade"})
_NOT_BATCHED = frozenset({"currency_exposure", "target_drift"})


def _monitored(constraint: object) -> bool:
    kind = getattr(constraint, "kind", "")
    if kind in DECISION_ONLY or kind in _NOT_BATCHED:
        return False
    if kind == "restricted" and getattr(constraint, "mode", "") in _DECISION_MODES:
        return False
    return not (kind == "cash" and getattr(constraint, "by_currency", False))


def holdings_policies(policies: Iterable[PolicyDefinition]) -> list[PolicyDefinition]:
    """The policies with only their holdings constraints (policies left empty dropped)."""
    kept = []
    for p in policies:
        constraints = [c for c in p.rules.constraints if _monitored(c)]
        if len(constraints) < len(p.rules.constraints):
            log.info(
                "policy %r: %d of its constraints measure trades or need currencies; the "
                "monitor checks the other %d",
                p.policy_name,
                len(p.rules.constraints) - len(constraints),
                len(constraints),
            )
        if constraints:
            rules = p.rules.model_copy(update={"constraints": constraints})
            kept.append(p.model_copy(update={"rules": rules}))
    return kept


@dataclass
class Holding:
    """One portfolio's latest snapshot: quantities by symbol and cash (base currency)."""

    seq: int
    cash: float
    quantities: dict[str, float]
    columns: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """The held symbols' positions in the book's universe (set by `Book.set_holding`)."""
    amounts: FloatArray = field(default_factory=lambda: np.zeros(0))
    """The quantities in `columns` order."""


@dataclass
class _Group:
    """The portfolios sharing one effective policy set, and its checker (None: unusable)."""

    checker: BatchChecker | None
    policy_names: frozenset[str]
    column: IntArray
    """The checker's column of each of the book's symbols (the checker's own order)."""


@dataclass(frozen=True)
class CheckOutcome:
    """What one re-check found: breaches to open, violations to cure, portfolios checked."""

    openings: list[Opening]
    clearings: list[Clearing]
    checked: int


Lineages = Callable[[str], Sequence[PortfolioNode]]


class Book:
    """The monitored state and its check (see the module docstring)."""

    def __init__(
        self,
        policies: Sequence[PolicyDefinition],
        instruments: Sequence[Instrument],
        lineage: Lineages,
    ) -> None:
        self.policies = holdings_policies(policies)
        self.instruments = list(instruments)
        self.symbols = frozenset(i.symbol for i in self.instruments)
        self._position = {i.symbol: k for k, i in enumerate(self.instruments)}
        self.lineage = lineage
        self.holdings: dict[str, Holding] = {}
        self.prices: dict[str, tuple[float, int]] = {
            i.symbol: (float(i.price), 0) for i in self.instruments if i.price is not None
        }
        # The prices again as one array in the book's symbol order (NaN: no price yet), so
        # that a group's holdings are valued with a few array operations, not a loop a name.
        self._price = np.full(len(self.instruments), np.nan)
        for symbol, (price, _) in self.prices.items():
            self._price[self._position[symbol]] = price
        self.holders: dict[str, set[str]] = {}
        self.live: dict[str, dict[BreachKey, tuple[int, str]]] = {}
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._group_of: dict[str, tuple[str, ...]] = {}

    def rebuilt(
        self, policies: Sequence[PolicyDefinition], instruments: Sequence[Instrument]
    ) -> Book:
        """A book of new rules holding this one's state (holdings, prices, live violations).

        Holdings of a symbol the new universe lacks cannot be checked: left out, logged.
        Prices ticked so far stay; a symbol new to the universe starts at its own price.
        """
        book = Book(policies, instruments, self.lineage)
        for symbol, (price, seq) in self.prices.items():
            if symbol in book.symbols:
                book.set_price(symbol, price, seq)
        for pid, h in self.holdings.items():
            try:
                book.set_holding(pid, Holding(h.seq, h.cash, h.quantities))
            except ValueError as exc:
                log.warning("holdings of %r not monitored under the new universe: %s", pid, exc)
        book.live = self.live
        return book

    # -- state ------------------------------------------------------------------------------

    def unknown_symbols(self, symbols: Iterable[str]) -> list[str]:
        """The symbols the universe does not hold (an update naming one is rejected)."""
        return sorted(s for s in symbols if s not in self.symbols)

    def knows(self, symbols: Iterable[str]) -> bool:
        """Whether the universe holds every one of `symbols` (a set operation, no list)."""
        return self.symbols.issuperset(symbols)

    def set_holding(self, portfolio_id: str, holding: Holding) -> bool:
        """Replace a portfolio's snapshot; False (nothing changed) for an older one."""
        known = self.holdings.get(portfolio_id)
        if known is not None and known.seq > holding.seq:
            return False
        position = self._position
        try:
            holding.columns = np.array([position[s] for s in holding.quantities], dtype=np.int64)
        except KeyError:
            unknown = self.unknown_symbols(holding.quantities)
            raise ValueError(f"symbols not in the universe: {', '.join(unknown[:5])}") from None
        holding.amounts = np.array(list(holding.quantities.values()), dtype=float)
        # A portfolio's next snapshot mostly holds the same names: the index stays as it is.
        if known is None or known.quantities.keys() != holding.quantities.keys():
            if known is not None:
                for s in known.quantities:
                    self.holders.get(s, set()).discard(portfolio_id)
            for s in holding.quantities:
                self.holders.setdefault(s, set()).add(portfolio_id)
        self.holdings[portfolio_id] = holding
        return True

    def set_price(self, symbol: str, price: float, seq: int) -> set[str] | None:
        """Set a price; the portfolios holding the symbol, or None for an older tick."""
        known = self.prices.get(symbol)
        if known is not None and known[1] > seq:
            return None
        self.prices[symbol] = (price, seq)
        self._price[self._position[symbol]] = price
        return set(self.holders.get(symbol, ()))

    # -- the check --------------------------------------------------------------------------

    def check(self, touched: dict[str, str]) -> CheckOutcome:
        """Re-check the portfolios of `touched` (portfolio -> the update that touched it)."""
        by_group: dict[tuple[str, ...], list[str]] = {}
        for pid in sorted(touched):
            if pid in self.holdings:
                by_group.setdefault(self._group_key(pid), []).append(pid)
        openings: list[Opening] = []
        clearings: list[Clearing] = []
        checked = 0
        for key, members in by_group.items():
            group = self._group(key, members[0])
            if group.checker is None:
                continue
            try:
                checked += self._check_group(group, members, touched, openings, clearings)
            except (ValueError, ArithmeticError):
                # A check that cannot run must not block every later update (its round would
                # be retried forever): logged with the portfolios, which stay as they were.
                log.exception("check of %d portfolios failed (%s, ...)", len(members), members[0])
        return CheckOutcome(openings, clearings, checked)

    def _check_group(
        self,
        group: _Group,
        members: list[str],
        touched: dict[str, str],
        openings: list[Opening],
        clearings: list[Clearing],
    ) -> int:
        checker = group.checker
        assert checker is not None
        held = [self.holdings[pid] for pid in members]
        # Every member's positions in one scatter: row k, the checker's column of each name.
        rows = np.repeat(np.arange(len(held)), [len(h.columns) for h in held])
        columns = np.concatenate([h.columns for h in held])
        amounts = np.concatenate([h.amounts for h in held])
        values = np.zeros((len(held), len(checker.symbols)))
        values[rows, group.column[columns]] = amounts * self._price[columns]
        cash = np.fromiter((h.cash for h in held), float, len(held))
        nav = values.sum(axis=1) + cash
        with np.errstate(invalid="ignore"):
            keep = (nav > 0) & ~(np.abs(values).max(axis=1, initial=0.0) > MAX_WEIGHT * nav)
        for bad in np.flatnonzero(~keep).tolist():
            log.warning("portfolio %r: NAV %.6g cannot be checked; skipped", members[bad], nav[bad])
        members = [m for m, ok in zip(members, keep, strict=True) if ok]
        if not members:
            return 0
        result = checker.check(values[keep], cash=cash[keep])
        breached: dict[int, dict[BreachKey, None]] = {}
        for k, row in zip(result.breach_vector.tolist(), result.breach_row.tolist(), strict=True):
            label = result.labels[row]
            key = (label.policy_name, label.violation_type, label.subject or "")
            breached.setdefault(k, {})[key] = None
        for k, pid in enumerate(members):
            now = breached.get(k, {})
            live = self.live.get(pid, {})
            if not now and not live:
                continue  # compliant, and nothing of it to cure: the common case
            fresh = [key for key in now if key not in live]
            if fresh:
                wanted = set(fresh)
                for v in result.violations(k):
                    key = (v.policy_name, v.violation_type, v.subject or "")
                    if key in wanted:
                        data = v.model_dump(mode="json")
                        data |= {"breach": "passive", "pre_trade": data["observed"]}
                        openings.append(Opening(pid, touched[pid], data))
                        wanted.discard(key)
            # A later check that finds the key compliant cures its live violation, whoever
            # opened it (a validation cures a monitor's violation the same way).
            for key, (violation_id, _source) in live.items():
                if key[0] in group.policy_names and key not in now:
                    clearings.append(Clearing(pid, touched[pid], violation_id))
        return len(members)

    def _group_key(self, pid: str) -> tuple[str, ...]:
        key = self._group_of.get(pid)
        if key is None:
            try:
                chain = Lineage.of(pid, self.lineage(pid))
                key = tuple(p.policy_name for p in resolve(self.policies, chain).policies())
            except PolicyResolutionError as exc:
                log.warning("portfolio %r: its policies cannot be resolved: %s", pid, exc)
                key = ()
            self._group_of[pid] = key
        return key

    def _group(self, key: tuple[str, ...], pid: str) -> _Group:
        group = self._groups.get(key)
        if group is not None:
            return group
        checker: BatchChecker | None = None
        by_name = {p.policy_name: p for p in self.policies}
        chosen = [
            by_name[name].model_copy(update={"scope": PolicyScope(portfolios=["*"])})
            for name in key
        ]
        if not chosen:
            log.warning("portfolio %r (and its like): no policy to monitor applies", pid)
        else:
            try:
                checker = BatchChecker(
                    [p.model_copy(update={"overrides": None}) for p in chosen],
                    self.instruments,
                    portfolio_id=pid,
                    backend="numpy",
                )
            except (ValueError, PolicyResolutionError) as exc:
                log.error("policies %s cannot be monitored: %s", ", ".join(key), exc)
        column = np.zeros(len(self.instruments), dtype=np.int64)
        if checker is not None:
            order = {s: i for i, s in enumerate(checker.symbols)}
            column = np.array([order[i.symbol] for i in self.instruments], dtype=np.int64)
        group = _Group(checker, frozenset(key), column)
        self._groups[key] = group
        return group
