"""The consent API: ``/_consent/api/consent`` (POST record, GET current, DELETE withdraw)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from .app import Runtime

__all__ = ["routes"]


def routes(runtime: Runtime) -> list[BaseRoute]:
    return []
