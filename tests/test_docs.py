"""The documents point at tests that exist: every `tests/<file>.py::<test>` that README.md, SECURITY.md and docs/
cite (and every `::<test>` that continues the file cited before it) names a test function in that file, and every
source path they cite in backquotes exists. Moving a test or a module without updating the documents fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared.settings import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", REPO_ROOT / "SECURITY.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)")
PATH = re.compile(r"`((?:services|shared|ops|tests|bench)/[\w/.-]+\.(?:py|toml))")


def _functions(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_cited_tests_exist() -> None:
    missing: list[str] = []
    cited = 0
    for document in DOCUMENTS:
        current: str | None = None
        for match in REFERENCE.finditer(document.read_text(encoding="utf-8")):
            current = match.group(1) or current
            assert current, f"{document.name}: ::{match.group(2)} follows no test file"
            cited += 1
            path = REPO_ROOT / current
            if not path.is_file() or match.group(2) not in _functions(path):
                missing.append(f"{document.name}: {current}::{match.group(2)}")
    assert cited > 30  # the documents were read
    assert missing == []


def test_cited_source_paths_exist() -> None:
    missing = [f"{document.name}: {match.group(1)}" for document in DOCUMENTS
               for match in PATH.finditer(document.read_text(encoding="utf-8"))
               if not (REPO_ROOT / match.group(1)).exists()]
    assert missing == []
