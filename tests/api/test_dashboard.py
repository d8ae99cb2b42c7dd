"""The dashboard over HTTP (no browser): login, the session cookie, CSRF, roles, every page.

tests/api/test_dashboard_browser.py drives the same pages in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.http.ui.session import session_key, sign_session
from api.settings import Settings
from tests.api.conftest import core_policies, example_request

KEYS = {"a-key-0001": "admin", "r-key-0002": "reader"}
ADMIN = {"X-API-Key": "a-key-0001"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def ui(tmp_path: Any) -> Iterator[TestClient]:
    """The app with keys, two validations stored (violations open and cured)."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    app = create_app(Settings(database_url=url, events="none", api_keys=KEYS))
    with TestClient(app, raise_server_exceptions=False, base_url="http://testserver") as c:
        for policy in core_policies():
            assert c.post("/api/v1/policies", json=policy, headers=ADMIN).status_code == 201
        for name in ("aapl-overweight", "small-rebalance"):
            r = c.post("/api/v1/validate", json=example_request(name), headers=ADMIN)
            assert r.status_code == 200, r.text
        yield c


def _login(client: TestClient, key: str) -> str:
    """Sign in with `key`; the CSRF token of the session's forms."""
    form = client.get("/ui/login")
    token = TOKEN.search(form.text)
    assert token is not None
    r = client.post(
        "/ui/login",
        data={"api_key": key, "csrf_token": token.group(1), "next": "/ui/violations"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/violations"
    return token.group(1)


def _open_id(client: TestClient) -> int:
    items = client.get("/api/v1/violations", params={"status": "open"}, headers=ADMIN).json()
    violation_id: int = items["items"][0]["id"]
    return violation_id


def test_pages_need_a_login_and_come_back_after_it(ui: TestClient) -> None:
    r = ui.get("/ui/violations?status=all", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fviolations%3Fstatus%3Dall"
    page = ui.get(r.headers["location"])
    assert page.status_code == 200 and 'value="/ui/violations?status=all"' in page.text


def test_the_session_cookie_is_signed_httponly_and_strict(ui: TestClient) -> None:
    token = TOKEN.search(ui.get("/ui/login").text)
    assert token is not None
    r = ui.post(
        "/ui/login",
        data={"api_key": "a-key-0001", "csrf_token": token.group(1), "next": "https://evil"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/ui/violations"  # never another site after login
    cookies = [h for k, h in r.headers.multi_items() if k == "set-cookie"]
    (session,) = [c for c in cookies if c.startswith("pes_session=")]
    flags = {part.strip().lower() for part in session.split(";")}
    assert {"httponly", "samesite=strict", "path=/ui"} <= flags
    assert ui.get("/ui/violations").status_code == 200

    value = ui.cookies["pes_session"]
    ui.cookies.set("pes_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/ui")
    assert ui.get("/ui/violations", follow_redirects=False).status_code == 303


def test_sessions_expire_and_end_with_their_key() -> None:
    settings = Settings(api_keys=KEYS, ui_session_hours=1)
    cookie = sign_session(settings, "a-key-0001", now=1000.0)
    assert session_key(settings, cookie, now=1000.0 + 3599) == "a-key-0001"
    assert session_key(settings, cookie, now=1000.0 + 3601) is None
    other = Settings(api_keys={"another-key-9": "admin"})
    assert session_key(other, cookie, now=1000.0) is None  # the keys changed: signed anew


def test_a_bad_key_is_refused_on_the_form(ui: TestClient) -> None:
    token = TOKEN.search(ui.get("/ui/login").text)
    assert token is not None
    r = ui.post("/ui/login", data={"api_key": "nope", "csrf_token": token.group(1)})
    assert r.status_code == 401 and "That key is not valid." in r.text
    assert "pes_session" not in ui.cookies


def test_a_post_without_the_csrf_token_changes_nothing(ui: TestClient) -> None:
    _login(ui, "a-key-0001")
    vid = _open_id(ui)
    r = ui.post(f"/ui/violations/{vid}/acknowledge", data={"reason": "x"})
    assert r.status_code == 403
    r = ui.post(f"/ui/violations/{vid}/acknowledge", data={"reason": "x", "csrf_token": "forged"})
    assert r.status_code == 403
    one = ui.get(f"/api/v1/violations/{vid}", headers=ADMIN).json()
    assert one["status"] == "open"


def test_a_reader_sees_no_buttons_and_may_not_acknowledge(ui: TestClient) -> None:
    token = _login(ui, "r-key-0002")
    vid = _open_id(ui)
    page = ui.get(f"/ui/violations/{vid}")
    assert page.status_code == 200
    assert 'id="acknowledge"' not in page.text and 'name="ids"' not in page.text
    r = ui.post(f"/ui/violations/{vid}/acknowledge", data={"csrf_token": token})
    assert r.status_code == 403 and "needs admin" in r.text
    r = ui.post("/ui/violations/bulk", data={"csrf_token": token, "ids": vid, "action": "x"})
    assert r.status_code == 403


def test_an_admin_acknowledges_resolves_and_bulk_acknowledges(ui: TestClient) -> None:
    token = _login(ui, "a-key-0001")
    vid = _open_id(ui)
    page = ui.get(f"/ui/violations/{vid}")
    assert 'id="acknowledge"' in page.text
    r = ui.post(
        f"/ui/violations/{vid}/acknowledge",
        data={"csrf_token": token, "reason": "on it"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/ui/violations/{vid}"
    page = ui.get(f"/ui/violations/{vid}")
    assert "acknowledged" in page.text and "on it" in page.text

    r = ui.post(f"/ui/violations/{vid}/resolve", data={"csrf_token": token, "reason": " "})
    assert r.status_code == 422 and "Resolving needs a reason." in r.text
    r = ui.post(f"/ui/violations/{vid}/acknowledge", data={"csrf_token": token})
    assert r.status_code == 409 and "cannot be acknowledged" in r.text

    others = ui.get("/api/v1/violations", params={"status": "open"}, headers=ADMIN).json()
    ids = [i["id"] for i in others["items"]]
    r = ui.post(
        "/ui/violations/bulk",
        data={
            "csrf_token": token,
            "ids": [*ids, vid],
            "action": "acknowledge",
            "back": "status=all",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/ui/violations?status=all&changed={len(ids)}&skipped=1"
    listed = ui.get(r.headers["location"])
    assert f"{len(ids)} changed, 1 left as they were" in listed.text


def test_every_page_renders_with_no_external_asset(ui: TestClient) -> None:
    _login(ui, "a-key-0001")
    vid = _open_id(ui)
    pages = [
        "/ui/violations",
        "/ui/violations?status=all&severity=HIGH&policy=single-name-cap&min_age_days=0",
        "/ui/violations?status=nonsense&page=abc",
        f"/ui/violations/{vid}",
        "/ui/policies/single-name-cap",
        "/ui/trends",
        "/ui/trends?days=7",
    ]
    for path in pages:
        r = ui.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path
        assert re.search(r'<main id="main"', r.text)
    assert "<svg" in ui.get("/ui/trends").text
    assert ui.get("/ui/policies/nope").status_code == 404
    assert ui.get("/ui/violations/999999").status_code == 404
    css = ui.get("/ui/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_policy_page_shows_versions_diffs_and_the_tree(ui: TestClient) -> None:
    ui.put(
        "/api/v1/portfolios/firm",
        json={"portfolio_id": "firm", "name": "Firm", "parent_id": None},
        headers=ADMIN,
    )
    ui.put(
        "/api/v1/portfolios/global-equity",
        json={"portfolio_id": "global-equity", "name": "Global equity", "parent_id": "firm"},
        headers=ADMIN,
    )
    r = ui.patch(
        "/api/v1/policies/single-name-cap", json={"description": "Tighter cap"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    _login(ui, "r-key-0002")
    page = ui.get("/ui/policies/single-name-cap").text
    assert "Version 2: patch" in page and "Tighter cap" in page
    assert "global-equity" in page and "applies" in page
