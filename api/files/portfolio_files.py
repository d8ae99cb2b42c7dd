"""Reading portfolio hierarchy nodes from YAML/JSON files or directories of them."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from api.field_messages import describe_validation_error
from api.files.policy_files import PolicyFileError, read_documents, supported_files
from models import PortfolioNode

__all__ = ["PortfolioFileError", "load_portfolios", "parents_first"]


class PortfolioFileError(Exception):
    """A portfolio file cannot be read or does not hold valid PortfolioNodes."""


def _from_file(path: Path) -> list[PortfolioNode]:
    try:
        data = read_documents(path)
    except PolicyFileError as exc:
        raise PortfolioFileError(str(exc)) from exc
    items = data if isinstance(data, list) else [data]
    out = []
    for k, item in enumerate(items):
        where = f"{path}[{k}]" if isinstance(data, list) else str(path)
        try:
            out.append(PortfolioNode.model_validate(item))
        except ValidationError as exc:
            lines = describe_validation_error(exc).splitlines()
            raise PortfolioFileError("\n".join(f"{where}: {line}" for line in lines)) from exc
    return out


def parents_first(nodes: list[PortfolioNode]) -> list[PortfolioNode]:
    """`nodes` reordered so that a parent in the list comes before its children.

    Parents outside the list are left to the store (they must exist there). Raises
    `PortfolioFileError` for a cycle among the nodes.
    """
    by_id = {n.portfolio_id: n for n in nodes}
    placed: dict[str, PortfolioNode] = {}
    for node in nodes:
        pending: list[PortfolioNode] = []
        current: PortfolioNode | None = node
        while current is not None and current.portfolio_id not in placed:
            if any(n.portfolio_id == current.portfolio_id for n in pending):
                loop = " → ".join([n.portfolio_id for n in pending] + [current.portfolio_id])
                raise PortfolioFileError(f"the parent_id values make a cycle: {loop}")
            pending.append(current)
            current = by_id.get(current.parent_id) if current.parent_id is not None else None
        for item in reversed(pending):
            placed[item.portfolio_id] = item
    return list(placed.values())


def load_portfolios(path: Path) -> list[PortfolioNode]:
    """Every PortfolioNode in a file or a directory's files, parents first.

    Ids must be unique across all files.
    """
    try:
        files = supported_files(path)
    except PolicyFileError as exc:
        raise PortfolioFileError(str(exc)) from exc
    nodes: list[PortfolioNode] = []
    seen: dict[str, Path] = {}
    for file in files:
        for node in _from_file(file):
            if node.portfolio_id in seen:
                raise PortfolioFileError(
                    f"{file}: portfolio {node.portfolio_id!r} is also defined in "
                    f"{seen[node.portfolio_id]}"
                )
            seen[node.portfolio_id] = file
            nodes.append(node)
    return parents_first(nodes)
