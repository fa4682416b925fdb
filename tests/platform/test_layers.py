"""The import graph points one way: `ops` (operator tools) → `services` → `shared` (the foundation). No module of
the foundation imports a service or an operator tool, no service imports another service or an operator tool, and
no module imports another module's private names. Read from the source (every import statement, including those
inside functions), so a lazy import cannot hide an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.settings import REPO_ROOT

SERVICES = ("registry", "assessment", "assistance", "reporting")


def _modules(package: str) -> dict[str, ast.Module]:
    root = REPO_ROOT / package
    return {str(path.relative_to(REPO_ROOT)): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(root.rglob("*.py"))}


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement in the tree."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _arrows(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {module}" for path, tree in _modules(package).items()
            for module, _ in _imports(tree) if module.split(".")[0] in forbidden]


def test_the_foundation_imports_nothing_above_it() -> None:
    modules = _modules("shared")
    assert len(modules) > 30  # the walk found the package
    assert _arrows("shared", ("services", "ops", "tests", "bench")) == []


def test_services_import_the_foundation_only() -> None:
    assert _arrows("services", ("ops", "tests", "bench")) == []
    crossing = [f"{path} imports {module}" for path, tree in _modules("services").items()
                if path.count("/") >= 2
                for module, _ in _imports(tree)
                if module.startswith("services.") and module.split(".")[1] != path.split("/")[1]]
    assert crossing == []  # services meet only through events


def test_no_module_imports_another_modules_private_names() -> None:
    private = [f"{path}: from {module} import {name}"
               for package in ("shared", "services", "ops")
               for path, tree in _modules(package).items()
               for module, names in _imports(tree)
               for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    """The check itself: an import inside a function, of a service, is seen."""
    tree = ast.parse("def f():\n    from services.registry import app\n    import ops.cli\n")
    assert [module for module, _ in _imports(tree)] == ["services.registry", "ops.cli"]
