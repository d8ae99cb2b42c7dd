"""Portfolios: the firm → fund → portfolio tree and each node's effective policies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status

from api.http.deps import Admin, Reader, ServicesDep
from api.http.hierarchy_schemas import (
    PORTFOLIO_EXAMPLES,
    EffectivePolicyPublic,
    OverriddenPolicyPublic,
    PortfolioPoliciesPublic,
    PortfolioPublic,
)
from api.http.json_body import documented_body, json_body
from api.http.schemas import ERROR_RESPONSES, ErrorResponse
from api.store import Invalid, NotFound, StoredPortfolio
from engine.resolve.hierarchy import Lineage, resolve
from models import PortfolioNode

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/portfolios", tags=["portfolios"], responses=ERROR_RESPONSES)

PortfolioId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-:]*$",
        description="The node's id (the `portfolio_id` decisions carry).",
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such portfolio"}
}


def _public(stored: StoredPortfolio, path: list[str], children: list[str]) -> PortfolioPublic:
    return PortfolioPublic(
        portfolio=stored.node,
        path=path,
        children=children,
        revision=stored.revision,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


def _described(services: ServicesDep, stored: StoredPortfolio) -> PortfolioPublic:
    portfolios = services.store.portfolios
    chain = portfolios.lineage(stored.node.portfolio_id)
    path = [n.portfolio_id for n in reversed(chain)]
    return _public(stored, path, portfolios.children(stored.node.portfolio_id))


@router.get("", response_model=list[PortfolioPublic], summary="List portfolios")
def list_portfolios(services: ServicesDep, _caller: Reader) -> list[PortfolioPublic]:
    """Every node of the hierarchy, by id, with its path from the root and its children."""
    stored = services.store.portfolios.list()
    parents = {s.node.portfolio_id: s.node.parent_id for s in stored}
    children: dict[str, list[str]] = {}
    for s in stored:
        if s.node.parent_id is not None:
            children.setdefault(s.node.parent_id, []).append(s.node.portfolio_id)
    out = []
    for s in stored:
        path: list[str] = []
        node_id: str | None = s.node.portfolio_id
        while node_id is not None and node_id not in path:  # the store keeps it acyclic
            path.append(node_id)
            node_id = parents.get(node_id)
        out.append(_public(s, path[::-1], sorted(children.get(s.node.portfolio_id, []))))
    return out


@router.get(
    "/{portfolio_id}",
    response_model=PortfolioPublic,
    summary="Get a portfolio",
    responses=NOT_FOUND,
)
def get_portfolio(
    portfolio_id: PortfolioId, services: ServicesDep, _caller: Reader
) -> PortfolioPublic:
    """The node, its path from the root and its children."""
    return _described(services, services.store.portfolios.get(portfolio_id))


@router.put(
    "/{portfolio_id}",
    response_model=PortfolioPublic,
    summary="Create or replace a portfolio",
    responses={
        200: {"description": "replaced (or unchanged)"},
        201: {"description": "created"},
        409: {"model": ErrorResponse, "description": "the parent would make a cycle"},
    },
    openapi_extra=documented_body(PortfolioNode, PORTFOLIO_EXAMPLES),
)
def put_portfolio(
    portfolio_id: PortfolioId,
    response: Response,
    services: ServicesDep,
    caller: Admin,  # before the body: an unauthorized caller is refused unread
    node: Annotated[PortfolioNode, Depends(json_body(PortfolioNode))],
) -> PortfolioPublic:
    """Create the node (201) or replace it (200); the parent must already exist.

    Moving a node (a new `parent_id`) moves its subtree with it; a parent that is the node
    itself or one of its descendants is refused (409). An unchanged body keeps the revision.
    """
    if node.portfolio_id != portfolio_id:
        raise Invalid(
            "portfolio_id",
            f"{node.portfolio_id!r} in the body differs from {portfolio_id!r} in the path",
        )
    outcome, stored = services.store.portfolios.put(node, actor=caller.name)
    if outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    return _described(services, stored)


@router.delete(
    "/{portfolio_id}",
    response_model=PortfolioPublic,
    summary="Delete a portfolio",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "the portfolio has children"},
    },
)
def delete_portfolio(
    portfolio_id: PortfolioId, services: ServicesDep, caller: Admin
) -> PortfolioPublic:
    """Remove a node without children; returns it as it was.

    Policies scoped to its id are kept: they then bind a portfolio of that id as an
    unregistered one (scope by id).
    """
    path = [n.portfolio_id for n in reversed(services.store.portfolios.lineage(portfolio_id))]
    stored = services.store.portfolios.delete(portfolio_id)
    return _public(stored, path, [])


@router.get(
    "/{portfolio_id}/policies",
    response_model=PortfolioPoliciesPublic,
    summary="A portfolio's effective policies and where they come from",
    responses=NOT_FOUND,
)
def effective_policies(
    portfolio_id: PortfolioId, services: ServicesDep, _caller: Reader
) -> PortfolioPoliciesPublic:
    """The enabled policies scoped to the portfolio or any ancestor, overrides applied.

    All of them hold together, so the strictest of overlapping limits is the one that bites.
    Each says where it is scoped (`scoped_at`), whether it is inherited and which ancestor
    policy it replaces; `overridden` lists the policies replaced for this portfolio and by
    whom. A broken override (of a policy that is not overridable) is a 422 naming both.
    """
    chain = services.store.portfolios.lineage(portfolio_id)
    if not chain:
        raise NotFound(f"no portfolio {portfolio_id!r}")
    stored = {p.definition.policy_name: p for p in services.store.policies.list()}
    resolution = resolve([p.definition for p in stored.values()], Lineage.of(portfolio_id, chain))
    return PortfolioPoliciesPublic(
        portfolio_id=portfolio_id,
        path=[n.portfolio_id for n in reversed(chain)],
        policies=[
            EffectivePolicyPublic(
                policy=placed.policy,
                version=stored[placed.policy.policy_name].version,
                scoped_at=placed.scoped_at,
                inherited=placed.inherited,
                overrides=placed.overrides,
            )
            for placed in resolution.applied
        ],
        overridden=[
            OverriddenPolicyPublic(
                policy_name=o.policy.policy_name,
                scoped_at=o.scoped_at,
                overridden_by=list(o.overridden_by),
            )
            for o in resolution.overridden
        ],
    )
