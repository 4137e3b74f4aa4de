"""CLI command modules. Each module here defines ``register(cli: click.Group)``;
``consentgate.cli`` calls every one, so adding a command never edits a shared list."""

from __future__ import annotations

import importlib
import pkgutil

import click

__all__ = ["register_all"]


def register_all(cli: click.Group) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(cli)
