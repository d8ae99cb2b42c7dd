"""/docs and /redoc load everything from the service itself: no CDN, no web fonts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.http.app import create_app
from api.settings import Settings
from tests.api.conftest import TestClient

REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
ABSOLUTE = re.compile(r"""["'(]\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'pes.db'}", events="none")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_docs_page_needs_is_served_here(app_client: TestClient, page: str) -> None:
    r = app_client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not ABSOLUTE.search(html), ABSOLUTE.search(html)
    references = REFERENCE.findall(html)
    assert len(references) >= 2, html  # the script and the favicon at least
    for url in references:
        asset = app_client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert app_client.get("/openapi.json").json()["paths"]


def test_swagger_ui_is_a_version_that_reads_openapi_3_1(app_client: TestClient) -> None:
    # FastAPI writes OpenAPI 3.1; Swagger UI before 5 shows "no valid version field".
    assert app_client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = app_client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "OpenAPI 3.1" in bundle or "openapi31" in bundle.lower()
