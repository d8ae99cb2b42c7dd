"""Store errors, mapped to HTTP statuses by the app's single error handler.

::

    StoreError
    ├── NotFound       the named policy / validation / violation does not exist   (404)
    ├── Conflict       the change contradicts what is stored                       (409)
    └── Unavailable    the database cannot be reached or read                      (503)
"""

from __future__ import annotations

__all__ = ["Conflict", "NotFound", "StoreError", "Unavailable"]


class StoreError(Exception):
    """Base class of the store's deliberate errors."""


class NotFound(StoreError):
    """The requested record does not exist."""


class Conflict(StoreError):
    """The change contradicts what is stored (duplicate name, reused decision id ...)."""


class Unavailable(StoreError):
    """The database cannot be reached or read."""
