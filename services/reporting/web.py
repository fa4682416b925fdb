"""GET /dashboard: the page, its script and its style, all served by the service itself (the users' machines
may have no internet). The page reads the same report endpoints as BI tools do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

ASSETS = Path(__file__).parent / "dashboard"
_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: Literal["dashboard.js", "dashboard.css"]) -> FileResponse:
    return FileResponse(ASSETS / name, media_type=_TYPES[name], headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard")
