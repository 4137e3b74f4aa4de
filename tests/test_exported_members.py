"""The public API of ``consentgate`` is what ``__all__`` says, and it is pinned here:
adding or removing a name is a deliberate change of this test."""

from __future__ import annotations

import types

import consentgate

PUBLIC = [
    "CATEGORIES",
    "ApiError",
    "ConfigError",
    "Consent",
    "ConsentCodec",
    "ConsentGateError",
    "CookieRejected",
    "Settings",
    "Site",
    "__version__",
    "load_settings",
]


def test_all_is_pinned() -> None:
    assert consentgate.__all__ == PUBLIC


def test_exported_members() -> None:
    """Every public name of the package is in ``__all__`` (submodules aside), every
    name in ``__all__`` exists, and the classes and functions come from the package."""
    names = {
        name
        for name, value in vars(consentgate).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert names == set(PUBLIC) - {"__version__"}
    for name in PUBLIC:
        member = getattr(consentgate, name)
        module = getattr(member, "__module__", "consentgate")
        assert module.startswith("consentgate"), (name, module)


def test_exceptions_hang_from_one_root() -> None:
    """Every exception class the package defines derives from ConsentGateError, whose
    module docstring draws the tree."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.walk_packages(consentgate.__path__, "consentgate."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not value.__name__.startswith("_")
            ):
                found.append(value)
    assert found, "no exception class found: the walk is broken"
    strays = [
        f"{c.__module__}.{c.__name__}"
        for c in found
        if not issubclass(c, consentgate.ConsentGateError)
    ]
    assert strays == []
    tree = consentgate.errors.__doc__ or ""
    missing = [c.__name__ for c in found if c.__name__ not in tree]
    assert missing == [], "add them to the tree in consentgate/errors.py"
