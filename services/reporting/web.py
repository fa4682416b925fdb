"""GET /dashboard: the page, its script and its style, all served by the service itself (the users' machines
may have no internet). The page reads the same report endpoints as BI tools do; its map's points come from
`places` (data the project installs), at /dashboard/map/{area}.json."""

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from services.reporting import places
from shared.errors import NotFound

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


@router.get("/dashboard/map/{area}.json", include_in_schema=False)
async def area_map(area: Annotated[str, PathParam(pattern=r"^(\d{2}|\d{4}|\d{6})$")]) -> JSONResponse:
    """The area's names, its ancestors' and its children's, each child with its point (lat/lon) or none.
    Official geography, not survey figures: public like the page itself."""
    found: dict[str, Any] | None = places.area_map(area)
    if found is None:
        raise NotFound(f"No province, district or sub-district has the code {area}.")
    return JSONResponse(found, headers={"Cache-Control": "max-age=86400"})


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard")
