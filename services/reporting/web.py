"""GET /dashboard: the page, its script and its style, all served by the service itself (the users' machines
may have no internet). The page reads the same report endpoints as BI tools do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

# -- routes --

ASSETS = Path(__file__).parent / "dashboard"
_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
# The page runs only its own script and style, fetches only this service, is framed by nobody (clickjacking)
# and sends no address elsewhere (the Referer would carry it).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: Literal["dashboard.js", "dashboard.css"]) -> FileResponse:
    return FileResponse(ASSETS / name, media_type=_TYPES[name], headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard")
