"""Where the monitored book's rules come from, and whether they changed while it runs.

The book is built from the enabled stored policies, the registered portfolio tree (each
portfolio's effective set) and one registered universe. `StoredSource.fingerprint()` reads
a small value that changes whenever any of the three does (each policy's name, version and
enabled flag; each portfolio's id and revision; the universe's latest version); the monitor
compares it every `--reload-s` seconds and rebuilds its book when it differs
(`Monitor.reload`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import sqlalchemy as sa

from api.store import Store
from api.store.tables import portfolio_policies, portfolios
from models import Instrument, PolicyDefinition

__all__ = ["BookRules", "StoredSource"]


@dataclass(frozen=True)
class BookRules:
    """What a book is built from: the enabled policies and the universe's instruments."""

    policies: list[PolicyDefinition]
    instruments: list[Instrument]


class StoredSource:
    """The rules of the book from the store: `universe_id`'s latest version."""

    def __init__(self, store: Store, universe_id: str) -> None:
        self.store = store
        self.universe_id = universe_id

    def fingerprint(self) -> Hashable:
        """A value equal between two calls iff policies, tree and universe are unchanged."""
        p, t = portfolio_policies, portfolios
        with self.store.engine.connect() as conn:
            policies = tuple(
                tuple(row)
                for row in conn.execute(
                    sa.select(p.c.policy_name, p.c.version, p.c.enabled).order_by(p.c.policy_name)
                )
            )
            tree = tuple(
                tuple(row)
                for row in conn.execute(
                    sa.select(t.c.portfolio_id, t.c.revision).order_by(t.c.portfolio_id)
                )
            )
        return policies, tree, self.store.universes.latest_version(self.universe_id)

    def rules(self) -> BookRules:
        """The enabled policies and the universe's latest instruments.

        Raises `api.store.NotFound` when the universe is gone.
        """
        universe = self.store.universes.get(self.universe_id).definition
        policies = [s.definition for s in self.store.policies.list(enabled=True)]
        return BookRules(policies, list(universe.instruments))
