"""Turning validation and engine errors into one-line messages naming the field.

Formatting only, no exception tree: the errors themselves live in `engine.errors` (the
engine), `api.store.errors` (the store) and the edges' own modules, and `api.http.errors`
is the one place any of them becomes an HTTP status.
"""

from __future__ import annotations

from pydantic import ValidationError

from engine.errors import InputError

__all__ = ["describe_validation_error", "field_messages"]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def field_messages(exc: ValidationError | InputError, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs for a pydantic or engine input error."""
    if isinstance(exc, InputError):
        field = f"{prefix}.{exc.field}" if prefix else exc.field
        return [(field, exc.message)]
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # Discriminated unions add the tag as a path element: keep it, it says which kind.
        path = _path(loc)
        out.append(
            (f"{prefix}.{path}" if prefix and path != "(root)" else prefix or path, err["msg"])
        )
    return out


def describe_validation_error(exc: ValidationError | InputError, prefix: str = "") -> str:
    """All messages of `exc`, one `field: message` per line."""
    return "\n".join(f"{field}: {msg}" for field, msg in field_messages(exc, prefix))
