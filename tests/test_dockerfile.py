"""The Dockerfile and .dockerignore, checked without Docker: Python 3.11 slim, a non-root user, the package
without its dev extras, local state and secrets kept out of the build context."""

from __future__ import annotations

import re

from tests.kit.compose import DOCKERFILE, REPO

DOCKERIGNORE = REPO / ".dockerignore"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_uses_python_311_slim_and_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms
    for base in froms:
        assert re.match(r"python:3\.11(\.\d+)?-slim\b", base), base
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[last_from:] if keyword == "USER"]
    assert users, "the runtime stage must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_installs_the_package_without_dev_extras() -> None:
    runs = " ".join(rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install[^&;]*\s\.(\s|$)", runs), runs
    assert "[dev]" not in DOCKERFILE.read_text(encoding="utf-8")


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "var"} <= patterns
    for needed in ("pyproject.toml", "README.md", "shared", "services"):
        assert needed not in patterns
