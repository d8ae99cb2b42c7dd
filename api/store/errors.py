"""Store errors, mapped to HTTP statuses by the app's single error handler.

::

    StoreError
    ├── NotFound       the named policy / validation / violation does not exist   (404)
    ├── Conflict       the change contradicts what is stored                       (409)
    ├── PreconditionFailed  the stored version is not the one the caller named     (412)
    ├── Invalid        a field of the change is unusable (unknown parent ...)      (422)
    │   └── UnknownPortfolio  a request names a portfolio the registered tree lacks (422)
    └── Unavailable    the database cannot be reached or read                      (503)
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Invalid",
    "NotFound",
    "PreconditionFailed",
    "StoreError",
    "Unavailable",
    "UnknownPortfolio",
]


class StoreError(Exception):
    """Base class of the store's deliberate errors."""


class NotFound(StoreError):
    """The requested record does not exist."""


class Conflict(StoreError):
    """The change contradicts what is stored (duplicate name, reused decision id ...)."""


class PreconditionFailed(StoreError):
    """The caller's `If-Match` names a version other than the stored one: nothing changed.

    Parameters
    ----------
    message
        What was expected and what is stored.
    current
        The stored version, so the caller can re-read and retry.
    """

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.current = current


class Invalid(StoreError):
    """A field of the change refers to something unusable (e.g. a parent that does not exist).

    Parameters
    ----------
    field
        Path of the offending field, e.g. ``parent_id``.
    message
        What is wrong and what to do about it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Unavailable(StoreError):
    """The database cannot be reached or read."""


class UnknownPortfolio(Invalid):
    """A request names a portfolio id that the registered tree does not hold.

    With a tree registered, an unknown id would silently drop the policies scoped to the
    portfolio and its ancestors (a typo turning a breach into "compliant"), so it is refused.

    Parameters
    ----------
    field
        Where the id was given, e.g. ``decision.portfolio_id``.
    portfolio_id
        The id as given.
    closest
        Registered ids that look like it, best first (may be empty).
    """

    def __init__(self, field: str, portfolio_id: str, closest: list[str]) -> None:
        hint = f"; did you mean {', '.join(repr(c) for c in closest)}?" if closest else ""
        super().__init__(
            field,
            f"no registered portfolio {portfolio_id!r} (the portfolio tree holds others){hint}",
        )
        self.portfolio_id = portfolio_id
        self.closest = closest
