"""The layers point one way (README, "Architecture"): every import of every module, at the top or inside a
function, is checked against the rule, so an arrow the wrong way fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("distill", "search", "store", "workers", "service", "migrations", "autodistiller")
#: package → the project packages it may import (itself always). Nothing imports ``autodistiller``.
ALLOWED: dict[str, set[str]] = {
    "distill": set(),
    "search": {"distill"},
    "store": {"distill"},
    "migrations": {"store"},
    "workers": {"distill", "search", "store"},
    "service": {"distill", "search", "store"},
    "autodistiller": {"distill", "search", "store", "workers", "service"},
}
#: third-party packages a layer must not pull in (the database package knows no HTTP framework).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "store": {"fastapi", "starlette", "uvicorn"},
    "distill": {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "optuna", "ray"},
    "search": {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                found.append(where)
            if top in FORBIDDEN_THIRD_PARTY.get(package, set()):
                found.append(where)
    return sorted(set(found))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layers(package: str) -> None:
    assert violations(package) == []


def test_the_checker_sees_nested_imports(tmp_path: Path) -> None:
    """An import hidden inside a function counts like one at the top."""
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    from workers.worker import Worker\n    import service.app\n")
    assert [m for _, m in imported_modules(f)] == [
        "os",
        "workers.worker",
        "workers.worker.Worker",
        "service.app",
    ]


def test_no_module_is_over_400_lines() -> None:
    """One job a room: a module that grows past ~400 lines is doing more than one thing."""
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 420
    ]
    assert long == []
