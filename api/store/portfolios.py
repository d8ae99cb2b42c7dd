"""The portfolio hierarchy: nodes with a parent, kept acyclic, read as ancestor chains."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.store.errors import Conflict, Invalid, NotFound
from api.store.tables import portfolios
from models import PortfolioNode

__all__ = ["MAX_DEPTH", "PortfolioStore", "StoredPortfolio"]

MAX_DEPTH = 32
"""The deepest chain a node may have (root = 1); a guard against runaway trees."""


@dataclass(frozen=True)
class StoredPortfolio:
    """A node as stored: its definition, revision and last change."""

    node: PortfolioNode
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str


def _node(row: sa.Row[Any]) -> PortfolioNode:
    return PortfolioNode.model_validate(
        {
            "portfolio_id": row.portfolio_id,
            "name": row.name,
            "parent_id": row.parent_id,
            "description": row.description,
            "benchmark": row.benchmark,
        }
    )


def _stored(row: sa.Row[Any]) -> StoredPortfolio:
    return StoredPortfolio(_node(row), row.revision, row.created_at, row.updated_at, row.updated_by)


def _chain_query() -> sa.Select[Any]:
    """The recursive query of a portfolio's chain, built once (every validation runs it).

    Building the statement cost ~1 ms a request, more than running it; the portfolio id
    is a bound parameter.
    """
    start = sa.select(portfolios, sa.literal(0).label("depth")).where(
        portfolios.c.portfolio_id == sa.bindparam("start_id")
    )
    chain = start.cte("chain", recursive=True)
    parent = portfolios.alias("parent")
    chain = chain.union_all(
        sa.select(parent, (chain.c.depth + 1).label("depth")).where(
            parent.c.portfolio_id == chain.c.parent_id, chain.c.depth < MAX_DEPTH
        )
    )
    return sa.select(chain).order_by(chain.c.depth)


_CHAIN_QUERY = _chain_query()


class PortfolioStore:
    """Create, replace, delete and read hierarchy nodes; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self) -> builtins.list[StoredPortfolio]:
        """Every node, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(portfolios).order_by(portfolios.c.portfolio_id))
            return [_stored(row) for row in rows]

    def get(self, portfolio_id: str) -> StoredPortfolio:
        """The node `portfolio_id`, or NotFound."""
        with self.engine.connect() as conn:
            row = self._row(conn, portfolio_id)
        if row is None:
            raise NotFound(f"no portfolio {portfolio_id!r}")
        return _stored(row)

    def children(self, portfolio_id: str) -> builtins.list[str]:
        """Ids of the direct children of `portfolio_id`, sorted."""
        with self.engine.connect() as conn:
            return self._children(conn, portfolio_id)

    def ids(self) -> builtins.list[str]:
        """Every registered portfolio id, sorted (empty when no tree is registered)."""
        with self.engine.connect() as conn:
            query = sa.select(portfolios.c.portfolio_id).order_by(portfolios.c.portfolio_id)
            return [str(row.portfolio_id) for row in conn.execute(query)]

    def lineage(self, portfolio_id: str) -> builtins.list[PortfolioNode]:
        """`portfolio_id` and its ancestors, nearest first; empty when not registered."""
        with self.engine.connect() as conn:
            return [_node(row) for row in self._chain(conn, portfolio_id)]

    def put(self, node: PortfolioNode, *, actor: str) -> tuple[str, StoredPortfolio]:
        """Create or replace `node`: ("created" | "replaced" | "unchanged", stored node).

        The parent must exist and must not be the node or one of its descendants; the
        chain may not grow deeper than `MAX_DEPTH`. Raises `Invalid` or `Conflict`.
        """
        (result,) = self.put_many([node], actor=actor)
        return result

    def put_many(
        self, nodes: Sequence[PortfolioNode], *, actor: str
    ) -> builtins.list[tuple[str, StoredPortfolio]]:
        """`put` each node in order, all in one transaction (all or nothing).

        Parents must come before their children (or already be stored).
        """
        with self.engine.begin() as conn:
            self._lock(conn)
            return [self._put(conn, node, actor=actor) for node in nodes]

    def delete(self, portfolio_id: str) -> StoredPortfolio:
        """Remove a node that has no children; NotFound or Conflict otherwise."""
        with self.engine.begin() as conn:
            self._lock(conn)
            current = self._row(conn, portfolio_id)
            if current is None:
                raise NotFound(f"no portfolio {portfolio_id!r}")
            children = self._children(conn, portfolio_id)
            if children:
                raise Conflict(
                    f"portfolio {portfolio_id!r} has children ({', '.join(children)}): "
                    "move or delete them first"
                )
            conn.execute(portfolios.delete().where(portfolios.c.portfolio_id == portfolio_id))
            return _stored(current)

    # --- inside a transaction ---------------------------------------------------------------

    def _put(
        self, conn: Connection, node: PortfolioNode, *, actor: str
    ) -> tuple[str, StoredPortfolio]:
        current = self._row(conn, node.portfolio_id)
        if current is not None and _node(current) == node:
            return "unchanged", _stored(current)
        depth = self._check_parent(conn, node)
        if depth + self._height(conn, node.portfolio_id) > MAX_DEPTH:
            raise Conflict(
                f"moving {node.portfolio_id!r} under {node.parent_id!r} makes the tree "
                f"deeper than {MAX_DEPTH} levels"
            )
        return self._write(conn, node, current, actor=actor)

    @staticmethod
    def _lock(conn: Connection) -> None:
        # Cycle and depth checks read the whole chain: serialise tree writers so two moves
        # cannot each pass the check and together close a loop. Readers are not blocked.
        # (SQLite serialises writers by itself.)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("LOCK TABLE portfolios IN SHARE ROW EXCLUSIVE MODE"))

    @staticmethod
    def _row(conn: Connection, portfolio_id: str) -> sa.Row[Any] | None:
        query = sa.select(portfolios).where(portfolios.c.portfolio_id == portfolio_id)
        return conn.execute(query).first()

    @staticmethod
    def _children(conn: Connection, portfolio_id: str) -> builtins.list[str]:
        query = (
            sa.select(portfolios.c.portfolio_id)
            .where(portfolios.c.parent_id == portfolio_id)
            .order_by(portfolios.c.portfolio_id)
        )
        return list(conn.execute(query).scalars())

    @staticmethod
    def _chain(conn: Connection, portfolio_id: str) -> builtins.list[sa.Row[Any]]:
        """Rows of `portfolio_id` and its ancestors, nearest first (one recursive query)."""
        return list(conn.execute(_CHAIN_QUERY, {"start_id": portfolio_id}))

    def _check_parent(self, conn: Connection, node: PortfolioNode) -> int:
        """Depth of the node's new position (root = 1), after checking its parent."""
        if node.parent_id is None:
            return 1
        ancestors = [row.portfolio_id for row in self._chain(conn, node.parent_id)]
        if not ancestors:
            raise Invalid(
                "parent_id",
                f"no portfolio {node.parent_id!r}: create the parent first",
            )
        if node.portfolio_id in ancestors:
            loop = [node.portfolio_id, *ancestors[: ancestors.index(node.portfolio_id) + 1]]
            raise Conflict(
                f"parent_id {node.parent_id!r} would make a cycle: " + " → ".join(reversed(loop))
            )
        return len(ancestors) + 1

    def _height(self, conn: Connection, portfolio_id: str) -> int:
        """Levels in the subtree under `portfolio_id` (0 for a leaf or a new node)."""
        frontier, height = [portfolio_id], 0
        while frontier and height <= MAX_DEPTH:
            query = sa.select(portfolios.c.portfolio_id).where(portfolios.c.parent_id.in_(frontier))
            frontier = list(conn.execute(query).scalars())
            height += bool(frontier)
        return height

    @staticmethod
    def _write(
        conn: Connection, node: PortfolioNode, current: sa.Row[Any] | None, *, actor: str
    ) -> tuple[str, StoredPortfolio]:
        now = datetime.now(UTC)
        values = {
            "name": node.name,
            "parent_id": node.parent_id,
            "description": node.description,
            "benchmark": None if node.benchmark is None else node.benchmark.model_dump(mode="json"),
            "updated_at": now,
            "updated_by": actor,
        }
        if current is None:
            conn.execute(
                portfolios.insert().values(
                    portfolio_id=node.portfolio_id, revision=1, created_at=now, **values
                )
            )
            return "created", StoredPortfolio(node, 1, now, now, actor)
        revision = current.revision + 1
        conn.execute(
            portfolios.update()
            .where(portfolios.c.portfolio_id == node.portfolio_id)
            .values(revision=revision, **values)
        )
        return "replaced", StoredPortfolio(node, revision, current.created_at, now, actor)
