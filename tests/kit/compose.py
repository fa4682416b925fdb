"""docker-compose.yml as the Compose tests read it (tests/test_compose_schema.py, test_compose_services.py,
test_dockerfile.py): where the files are, the four app services and their ports, variable interpolation as
`docker compose` does it, a service's environment as a mapping. Its fixtures (`raw_text`, `raw_compose`,
`compose`) are in fixtures/compose.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

APP_SERVICES = {"registry": 8001, "assessment": 8002, "assistance": 8003, "reporting": 8004}

# $$ | ${NAME} | ${NAME:-default} ${NAME-default} ${NAME:?err} ${NAME?err} ${NAME:+alt} | $NAME
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate_string(value: str, env: dict[str, str]) -> str:
    """One string with Compose's `$$`, `$NAME` and `${NAME...}` forms resolved from `env`."""
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current  # type: ignore[return-value]
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise ValueError(f"required variable {name} is unset: {arg}")
            return current
        if op in (":+", "+"):
            present = current is not None and (op == "+" or current != "")
            return arg if present else ""
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def interpolate(node: Any, env: dict[str, str] | None = None) -> Any:
    """Resolve Compose `${VAR:-default}` interpolation in every string value, as `docker compose` does."""
    env = env or {}
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def environment_of(service: dict[str, Any]) -> dict[str, Any]:
    """A service's `environment`, list or mapping form, as a mapping."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in environment)
        return {name: value for name, value in pairs}
    return dict(environment)


def container_environment(raw_compose: dict[str, Any], service: str, shell: dict[str, str]) -> dict[str, str]:
    """The environment `docker compose up` gives a service's container when run from a shell (or `.env`) holding
    `shell`: every `${VAR…}` resolved from it, and each variable listed without a value passed through from it
    when set there, left out when not."""
    environment = environment_of(interpolate(raw_compose, shell)["services"][service])
    resolved: dict[str, str] = {}
    for name, value in environment.items():
        if value is None:
            if name in shell:
                resolved[name] = shell[name]
        else:
            resolved[name] = str(value)
    return resolved
