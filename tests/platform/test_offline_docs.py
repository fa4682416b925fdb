"""/docs and /redoc work on a network without internet: every script, style and icon they reference is served by
the service itself (shared/docs.py), with its content type; nothing is loaded from a CDN or Google Fonts."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from services import SERVICES, load
from tests.kit.apps import make_settings
from tests.kit.env import NO_BROKER

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl\s*:\s*'([^']+)'""")
_EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


def _references(html: str) -> list[str]:
    return [first or second for first, second in _REFERENCE.findall(html)]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize(("page", "expected"), [
    ("/docs", {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/favicon.png",
               "/openapi.json"}),
    ("/redoc", {"/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"}),
])
async def test_docs_pages_load_only_same_origin_assets(name: str, page: str, expected: set[str],
                                                       tmp_path: Path) -> None:
    settings = make_settings(name, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", NO_BROKER)
    app = load(name).create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(page)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        references = _references(html)
        assert expected <= set(references), references
        # Same origin only: a path on this service, no scheme, no protocol-relative //host.
        assert all(ref.startswith("/") and not ref.startswith("//") for ref in references), references
        assert "http://" not in html and "https://" not in html, "the page names another origin"
        for ref in references:
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
            suffix = Path(ref).suffix
            assert asset.headers["content-type"].startswith(_EXPECTED_TYPES[suffix]), (ref, asset.headers)
            assert len(asset.content) > 1000, ref
        if page == "/redoc":
            assert "fonts.googleapis.com" not in html


async def test_unknown_docs_asset_is_404_and_oauth2_redirect_page_is_served(tmp_path: Path) -> None:
    settings = make_settings("registry", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", NO_BROKER)
    app = load("registry").create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for name in ("../settings.py", "swagger-ui-bundle.js.map", "%2e%2e%2fcore.py"):
            response = await client.get(f"/docs/assets/{name}")
            assert response.status_code in (404, 422), (name, response.status_code)
        # Swagger UI's OAuth2 redirect page, which the authorization flow returns to with ?code=…&state=….
        response = await client.get("/docs/oauth2-redirect?code=abc&state=xyz")
        assert response.status_code == 200
        assert "oauth2" in response.text.lower()
