"""`pes policies docs`: every stored policy in plain words, as Markdown.

For each policy: its description, type, enforcement and severity, when it applies, its
scope and where that puts it in the portfolio tree, and each constraint (what its kind
limits, from the kind's own summary) with its limits under each risk mode: a limit written
per `risk_mode` gets one value per mode, a plain number the same in every mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.reports.scope import where_it_applies
from api.store import StoredPolicy, StoredPortfolio
from models import RiskMode

__all__ = ["policy_docs"]

MODES = [m.value for m in RiskMode]


def _kind_summary(kind: str) -> str:
    # Imported here: the kinds are the compiler's and bring cvxpy, which the command line
    # (importing this module for `pes policies`'s parser) need not load until docs are made.
    from engine.compile.kinds import REGISTRY

    found = REGISTRY.get(kind)
    doc = (type(found).__doc__ or "").strip().splitlines() if found is not None else []
    return doc[0].rstrip(".") if doc else kind


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _per_mode(value: Any) -> list[str] | None:
    """The value under each risk mode, or None when the field is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return [_number(value)] * len(MODES)
    if isinstance(value, dict) and set(value) >= {"by", "values"}:
        default = value.get("default")
        if value["by"] == "risk_mode":
            return [
                _number(value["values"].get(m, default))
                if value["values"].get(m, default) is not None
                else "refused"
                for m in MODES
            ]
        listed = ", ".join(f"{k}: {_number(v)}" for k, v in value["values"].items())
        shown = f"by {value['by']} ({listed}" + (
            f"; otherwise {_number(default)})" if default is not None else ")"
        )
        return [shown] * len(MODES)
    return None


def _constraint(spec: dict[str, Any]) -> list[str]:
    """Markdown rows for one constraint: its limits per mode, then its other settings."""
    kind = spec.get("kind", "?")
    limits, other = [], []
    for field, value in spec.items():
        if field == "kind" or value is None:
            continue
        modes = _per_mode(value)
        if modes is not None:
            limits.append(f"| `{kind}` | {field} | " + " | ".join(modes) + " |")
        else:
            other.append(f"{field}: `{value}`")
    head = f"- **{kind}**: {_kind_summary(kind)}" + (f" ({'; '.join(other)})" if other else "")
    return [head, *limits]


def _tree_lines(tree: list[dict[str, Any]], depth: int = 0) -> list[str]:
    lines = []
    for node in tree:
        lines.append(f"{'  ' * depth}- `{node['id']}` {node['name']}: {node['state']}")
        lines += _tree_lines(node["children"], depth + 1)
    return lines


def policy_docs(policies: Sequence[StoredPolicy], nodes: Sequence[StoredPortfolio]) -> str:
    """Every policy of `policies` in plain words, as one Markdown document."""
    definitions = [s.definition for s in policies]
    out = ["# Policies", "", f"{len(definitions)} stored policies, by name.", ""]
    for stored in policies:
        p = stored.definition
        severity = p.severity.value if p.severity else "derived from each breach's size"
        out += [
            f"## {p.policy_name}",
            "",
            p.description,
            "",
            f"- {p.policy_type.value}, {p.enforcement_level.value}, severity {severity}, "
            f"{'enabled' if p.enabled else 'disabled'}; version {stored.version}, by "
            f"{stored.updated_by}.",
            f"- Applies when: `{p.when}`." if p.when else "- Applies always.",
            f"- Scope: {', '.join(f'`{s}`' for s in p.scope.portfolios)}"
            + (f"; replaces `{p.overrides}` there." if p.overrides else ".")
            + (" Lower nodes may override it." if p.overridable else ""),
        ]
        tree, outside = where_it_applies(p.policy_name, p, definitions, list(nodes))
        if tree:
            out += ["", "In the portfolio tree:", "", *_tree_lines(tree)]
        if outside:
            out += ["", f"Also scoped to {', '.join(outside)} (not in the tree)."]
        out += ["", "Constraints, and their limits under each risk mode:", ""]
        rows: list[str] = []
        for spec in p.model_dump(mode="json")["rules"]["constraints"]:
            head, *limits = _constraint(spec)
            out.append(head)
            rows += limits
        if rows:
            out += [
                "",
                "| constraint | limit | " + " | ".join(MODES) + " |",
                "|---|---|" + "---|" * len(MODES),
                *rows,
            ]
        out.append("")
    return "\n".join(out)
