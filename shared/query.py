"""Strict query strings: a request naming a query parameter its route does not declare is refused (422), so a
misspelt filter (`?distrct=4010`) is not silently ignored and answered with every row.

One app-level dependency does it for every API route of every service (`create_service_app`). The route's
declared parameters are its own and those of its dependencies (their aliases), worked out once per route. Routes
left out of the API schema (the dashboard page and its assets, whose page reads its own query in the browser,
`/metrics`) and FastAPI's own `/docs`, `/redoc` and `/openapi.json` accept any query.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.errors import Unprocessable


def declared_query_parameters(dependant: Dependant) -> frozenset[str]:
    """The query parameter names (aliases) a route takes: its own, and its dependencies', nested."""
    names: set[str] = set()
    stack, seen = [dependant], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for field in current.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a model of query parameters
                names.update(f.alias or name for name, f in annotation.model_fields.items())
            else:
                names.add(field.alias)
        stack.extend(current.dependencies)
    return frozenset(names)


_UNSET = object()


def _declared_for(route: Any) -> frozenset[str] | None:
    """The names `route` takes, worked out on its first request and kept on the route itself (not by id(route):
    an app built and dropped, as tests do, frees ids that a later route may get). None: it takes any query."""
    declared = getattr(route, "_declared_query_parameters", _UNSET)
    if declared is _UNSET:
        strict = isinstance(route, APIRoute) and route.include_in_schema
        declared = declared_query_parameters(route.dependant) if strict else None
        if route is not None:
            route._declared_query_parameters = declared
    return declared  # type: ignore[return-value]


async def refuse_unknown_query_parameters(request: Request) -> None:
    """FastAPI dependency (app-wide): 422 naming each query parameter the matched route does not declare."""
    if not request.query_params:
        return
    declared = _declared_for(request.scope.get("route"))
    if declared is None:
        return
    unknown = sorted({name for name in request.query_params if name not in declared})
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise Unprocessable(
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown[:20])}"
            f"{' …' if len(unknown) > 20 else ''} "
            f"(this operation takes: {allowed}).",
            errors=[{"field": f"query.{name}", "message": "unknown query parameter", "code": "unknown"}
                    for name in unknown[:100]])
