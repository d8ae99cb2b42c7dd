"""A small structural diff of JSON documents, for the policy audit trail."""

from __future__ import annotations

from typing import Any

__all__ = ["json_diff", "merge_patch"]


def json_diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Every changed leaf as `{"path", "old", "new"}` (absent values are None)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out += json_diff(old.get(key), new.get(key), sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for k, (a, b) in enumerate(zip(old, new, strict=True)):
            out += json_diff(a, b, f"{path}[{k}]")
        return out
    return [] if old == new else [{"path": path or "(root)", "old": old, "new": new}]


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396): objects merge, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
