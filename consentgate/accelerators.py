"""Which compiled accelerators this installation runs with.

Each accelerator is optional (``setup.py`` builds it when a C compiler is there) and
has a pure-Python twin giving the same bytes, slower. ``consentgate serve`` and
``consentgate --version`` report them, so an owner sees at a glance whether the
install compiled them; ``CONSENTGATE_PURE_PYTHON=1`` turns them all off.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

__all__ = ["Accelerator", "accelerators", "summary"]


@dataclass(frozen=True)
class Accelerator:
    name: str  #: what it speeds up
    module: str  #: the compiled module
    active: bool
    why: str  #: "active", or why not


def _pure_python() -> bool:
    return os.environ.get("CONSENTGATE_PURE_PYTHON", "") not in ("", "0")


def _state(module: str) -> tuple[bool, str]:
    if _pure_python():
        return False, "off (CONSENTGATE_PURE_PYTHON=1)"
    try:
        importlib.import_module(module)
    except ImportError:
        return False, "not compiled (pure Python fallback)"
    return True, "active"


def accelerators() -> list[Accelerator]:
    """The state of every compiled accelerator, in a fixed order."""
    from .store.sqlite_audit import _compiled_pages

    out: list[Accelerator] = []
    for name, module in (
        ("rewriter", "consentgate.rewriter._speedups"),
        ("export encoder", "consentgate.audit._csvenc"),
        ("SQLite export reader", "consentgate.audit._sqlpages"),
    ):
        active, why = _state(module)
        if active and module.endswith("_sqlpages") and _compiled_pages() is None:
            # compiled, but against another SQLite library than Python's sqlite3
            active, why = False, "off (linked to another SQLite than Python's sqlite3)"
        out.append(Accelerator(name, module, active, why))
    return out


def summary() -> str:
    """One line: ``rewriter active, export encoder active, ...``."""
    return ", ".join(f"{a.name} {a.why}" for a in accelerators())
