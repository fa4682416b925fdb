"""Walking the request-body schemas of an OpenAPI document, for tests that try every field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAP = "{}"  # path step for a map's values (answers by indicator code)


def nodes(doc: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...] = (),
          seen: frozenset[str] = frozenset()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every schema in `schema` with its path: `$ref` and anyOf/oneOf/allOf resolved, `0` for an array's
    first item, `{}` for a map's values."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from nodes(doc, doc["components"]["schemas"][name], path, seen | {name})
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from nodes(doc, option, path, seen)
    yield path, schema
    for name, inner in schema.get("properties", {}).items():
        yield from nodes(doc, inner, (*path, name), seen)
    extra = schema.get("additionalProperties")
    for values in [extra] if isinstance(extra, dict) else schema.get("patternProperties", {}).values():
        yield from nodes(doc, values, (*path, MAP), seen)
    if schema.get("type") == "array":
        yield from nodes(doc, schema.get("items", {}), (*path, "0"), seen)


def json_bodies(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, path template, media type, schema) of every JSON request body."""
    for template, item in doc["paths"].items():
        for method, operation in item.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                if media.startswith("application/") and "json" in media:
                    yield method.upper(), template, media, content["schema"]
