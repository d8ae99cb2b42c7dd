"""The policy store's parse memo: reused only for the very JSON it was parsed from."""

from __future__ import annotations

from pathlib import Path

from api.store import Store
from api.store.tables import portfolio_policies
from models import PolicyDefinition
from tests.api.conftest import core_policies


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'pes.db'}")


def test_list_reuses_a_parse_only_while_the_stored_json_is_the_same(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for policy in core_policies():
        store.policies.create(PolicyDefinition.model_validate(policy), actor="test")
    first = {p.definition.policy_name: p.definition for p in store.policies.list()}
    again = {p.definition.policy_name: p.definition for p in store.policies.list()}
    assert all(again[name] is first[name] for name in first)  # parsed once

    name = next(iter(first))
    changed = first[name].model_copy(update={"description": "tightened"})
    store.policies.replace(name, changed, actor="test")
    listed = {p.definition.policy_name: p for p in store.policies.list()}
    assert listed[name].definition.description == "tightened"
    assert listed[name].version == 2

    # A row edited outside the store (same version, same time) is parsed afresh.
    edited = listed[name].definition.model_dump(mode="json") | {"description": "by hand"}
    with store.engine.begin() as conn:
        conn.execute(
            portfolio_policies.update()
            .where(portfolio_policies.c.policy_name == name)
            .values(definition=edited)
        )
    by_hand = {p.definition.policy_name: p.definition for p in store.policies.list()}
    assert by_hand[name].description == "by hand"
