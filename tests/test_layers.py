"""The package's import layers, read from the source (every import statement, those
inside functions and ``if TYPE_CHECKING:`` included).

Dependency direction: cli -> server -> app -> features -> page -> visit -> pure core.
``app`` only assembles; nothing it imports (directly or not) may import it back.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import consentgate

PACKAGE = Path(consentgate.__file__).parent


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


@functools.cache
def _imports(module: str, *, typing_only: bool) -> set[str]:
    """Package modules ``module`` imports; ``typing_only=False`` leaves out what is
    imported under ``if TYPE_CHECKING:`` (not an import at run time)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                if node.module:
                    base.append(node.module)
                name = ".".join(base)
            else:
                name = node.module or ""
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                names.add(sub if sub in MODULES else name)
    out: set[str] = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("consentgate") and name != module:
            out.add(name)
    return out


@functools.cache
def _closure(start: str, *, typing_only: bool) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for found in _imports(todo.pop(), typing_only=typing_only):
            if found not in seen:
                seen.add(found)
                todo.append(found)
    return seen


def test_the_module_walk_sees_the_package() -> None:
    assert {"consentgate.app", "consentgate.visit", "consentgate.proxy.app"} <= set(MODULES)
    assert "consentgate.visit" in _imports("consentgate.api", typing_only=False)
    assert "consentgate.app" in _imports("consentgate.server", typing_only=False)


def test_nothing_below_app_imports_app() -> None:
    below = _closure("consentgate.app", typing_only=True)
    assert "consentgate.api" in below and "consentgate.proxy.app" in below
    offenders = sorted(m for m in below if "consentgate.app" in _imports(m, typing_only=True))
    assert offenders == [], f"modules below app.py import consentgate.app: {offenders}"


def test_features_import_visit_not_app() -> None:
    features = ["api", "banner", "admin", "demo", "site", "openapi", "page", "rewriting"]
    features += [
        m.removeprefix("consentgate.") for m in MODULES if m.startswith("consentgate.proxy")
    ]
    for name in features:
        imported = _imports(f"consentgate.{name}", typing_only=True)
        assert "consentgate.app" not in imported, name
        assert "consentgate.middleware" not in imported, name


def test_no_import_circle_through_the_web_layer() -> None:
    """No module of the web layer (visit and everything above it) is in an import
    circle, at run time or for the type checker."""
    web = {
        m
        for m in MODULES
        if m == "consentgate.visit" or "consentgate.visit" in _closure(m, typing_only=True)
    }
    assert {"consentgate.app", "consentgate.api", "consentgate.proxy.pages"} <= web
    circles = sorted(m for m in web if m in _closure(m, typing_only=True))
    assert circles == [], f"in an import circle: {circles}"
