"""Row sets: a block of rows with its limits, sense, subjects and provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engine.compile.blocks import Block
from engine.weights.portfolio import MAX_WEIGHT, Snapshot
from models import EnforcementLevel, PolicyDefinition
from models.typing import BoolArray, FloatArray

__all__ = ["BOUNDS", "OpenSupport", "Provenance", "RowSet", "Sense", "Unit"]

Sense = Literal["le", "ge"]
Unit = Literal["weight", "risk", "loss", "count"]

BOUNDS: tuple[tuple[str, Sense], ...] = (("max", "le"), ("min", "ge"))
"""A constraint's `max` bounds rows from above, its `min` from below."""


@dataclass(frozen=True)
class Provenance:
    """Where a row set comes from: the policy and the index of its constraint."""

    policy: PolicyDefinition
    constraint_index: int
    kind: str

    @property
    def policy_name(self) -> str:
        """Name of the policy."""
        return self.policy.policy_name

    @property
    def strict(self) -> bool:
        """True when a breach blocks the decision."""
        return self.policy.enforcement_level is EnforcementLevel.STRICT


@dataclass
class RowSet:
    """Rows `block.values(w) <= limits` (or `>=` for sense "ge").

    `describe(subject)` names what a row measures ("AAPL weight", "sector Energy gross
    weight"). `always_active` rows (turnover, trade limits) are active whenever breached.
    A rule that is not convex has exact `block.values` for the checker and a `restriction`
    the adjuster solves with (see `Layout.for_solver`).
    """

    block: Block
    sense: Sense
    limits: FloatArray
    subjects: list[str | None]
    violation_type: str
    describe: Callable[[str | None], str]
    unit: Unit = "weight"
    always_active: bool = False
    provenance: Provenance | None = field(default=None, repr=False)
    refresh: Callable[[Snapshot], None] | None = field(default=None, repr=False)
    """Re-derive the parts that depend on the snapshot's weights, prices or NAV (offsets,
    limits), so a cached layout serves a new request with the same structure."""
    encoding: str | None = None
    """How the solver's form encodes a rule that is not convex ("restriction: ..."); None when
    the rows are the rule itself."""
    pre_shift: FloatArray | None = field(default=None, repr=False)
    """What the decision's fixed parts (its FX trades) add to each row at every weight: the
    pre-trade values are `block.values(w0) - pre_shift`. None (the rule) when nothing does;
    a layout with a shift is checked, never adjusted (see `Layout.shifted`)."""
    restriction: list[RowSet] = field(default_factory=list, repr=False)
    """Convex rows that together imply these rows; the adjuster solves with them in place of
    these (whose block then has exact numeric values but no cvxpy form). Empty when the
    block's cvxpy form is the rule itself. `refresh` keeps them current."""
    support: OpenSupport | None = field(default=None, repr=False)
    """For a cap on open positions: how the adjuster chooses the names its restriction lets
    be open (`engine.adjust.cardinality`); None for every other rule."""

    def __post_init__(self) -> None:
        self.limits = np.asarray(self.limits, dtype=float)
        if len(self.limits) != self.block.rows or len(self.subjects) != self.block.rows:
            raise ValueError(
                f"{self.violation_type}: {self.block.rows} rows but {len(self.limits)} limits "
                f"and {len(self.subjects)} subjects"
            )

    @classmethod
    def portfolio_cap(
        cls,
        block: Block,
        limit: float,
        violation_type: str,
        what: str,
        *,
        unit: Unit = "weight",
        always_active: bool = False,
        refresh: Callable[[Snapshot], None] | None = None,
    ) -> RowSet:
        """One portfolio-wide row `value(w) <= limit` (subject null)."""
        return cls(
            block,
            "le",
            np.array([limit]),
            [None],
            violation_type,
            lambda _subject: what,
            unit=unit,
            always_active=always_active,
            refresh=refresh,
        )

    @property
    def rows(self) -> int:
        """Number of rows."""
        return self.block.rows

    def excess(self, values: FloatArray) -> FloatArray:
        """By how much each row exceeds its limit (negative: inside the limit)."""
        return values - self.limits if self.sense == "le" else self.limits - values


@dataclass
class OpenSupport:
    """A cap on the number of open positions, restricted to a chosen set of names.

    `closed` is one row `|w_i| <= limit_i` per name of V (part of the owner's
    `restriction`): limit `MAX_WEIGHT` lets the name be open, 0 closes it. `stated(snap)`
    is the stated restriction's choice for a snapshot (a mask over V and its encoding);
    the adjuster may replace it per request by a better one (`allow`), and the owner's
    `refresh` restores the stated one for the next request.
    """

    closed: RowSet
    stated: Callable[[Snapshot], tuple[BoolArray, str]]

    def allow(self, owner: RowSet, allowed: BoolArray, encoding: str) -> None:
        """Let the names of `allowed` be open, close the others; `encoding` says why."""
        self.closed.limits = np.where(allowed, MAX_WEIGHT, 0.0)
        owner.encoding = encoding

    def allowed(self) -> BoolArray:
        """The names the restriction lets be open now."""
        return np.asarray(self.closed.limits > 0.0)
