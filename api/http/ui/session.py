"""Dashboard sessions and CSRF tokens.

A login stores the API key in a signed cookie (`pes_session`: HttpOnly, SameSite=Strict,
Secure over HTTPS, path /ui); every request re-checks the key against the configured
ones, so removing a key ends its sessions. The signature is an HMAC-SHA256 under
`PES_UI_SECRET`, or, when that is unset, under a secret derived from the API keys (every
worker derives the same one, and changing the keys ends every session).

Form posts carry a CSRF token that must equal the `pes_csrf` cookie (a random value,
HttpOnly, SameSite=Strict): a page on another site can neither read the cookie nor make
the browser send it with a cross-site post.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets

from api.settings import Settings

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "csrf_matches",
    "new_csrf_token",
    "session_key",
    "sign_session",
]

SESSION_COOKIE = "pes_session"
CSRF_COOKIE = "pes_csrf"
CSRF_FIELD = "csrf_token"
CLOCK_SKEW_S = 60
"""A session issued this far in the future (another worker's clock) is still accepted."""


def _secret(settings: Settings) -> bytes:
    if settings.ui_secret is not None:
        return settings.ui_secret.get_secret_value().encode()
    keys = json.dumps(sorted((k, r.value) for k, r in settings.api_keys.items()))
    return hashlib.sha256(b"pes-ui-session\0" + keys.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(settings: Settings, payload: str) -> str:
    return _b64(hmac.new(_secret(settings), payload.encode(), hashlib.sha256).digest())


def sign_session(settings: Settings, key: str, *, now: float) -> str:
    """The cookie value of a session for `key` issued at `now` (seconds since the epoch)."""
    payload = _b64(json.dumps({"k": key, "t": int(now)}).encode())
    return f"{payload}.{_mac(settings, payload)}"


def session_key(settings: Settings, cookie: str, *, now: float) -> str | None:
    """The API key of a valid, unexpired session cookie, or None."""
    payload, _, mac = cookie.partition(".")
    if not payload or not hmac.compare_digest(mac.encode(), _mac(settings, payload).encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        key, issued = data["k"], data["t"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(key, str) or not isinstance(issued, int):
        return None
    if not issued - CLOCK_SKEW_S <= now < issued + settings.ui_session_hours * 3600:
        return None
    return key


def new_csrf_token() -> str:
    """A fresh random CSRF token."""
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, submitted: str | None) -> bool:
    """True when the form's token equals the cookie's (both present)."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
