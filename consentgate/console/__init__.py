"""The web console under ``/_consent/admin/``: what owners and auditors see.

Server-rendered (Jinja2, autoescape), no build step, usable without JavaScript; see
``docs/console.md``. :func:`routes` also plugs discovery into the page pipeline: the
proxy's undeclared ``Set-Cookie`` sightings, the banner's cookie names, the CSP
report endpoint and the report-only policy the proxy adds to pages.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ..config import Site
from ..consent import COOKIE_NAME
from ..cookies import classify
from ..visit import DiscoveryHooks, Runtime
from . import csp, views
from . import openapi as console_openapi
from .discovery import discovery

__all__ = ["routes"]


def routes(runtime: Runtime) -> list[BaseRoute]:
    reg = discovery(runtime)

    def script_cookies(site: Site, names: list[str], page_url: str) -> None:
        path = page_url.split("://", 1)[-1].partition("/")[2]
        for name in names:
            if name != COOKIE_NAME and classify(site, name) is None:
                reg.see(site.id, "script-cookie", name, "/" + path)

    runtime.undeclared.sighting = reg.see
    runtime.discovery = DiscoveryHooks(
        script_cookies, csp.report_only_policy(runtime.settings.prefix)
    )
    runtime.on_startup.append(reg.start)
    runtime.on_shutdown.append(reg.stop)
    runtime.openapi_paths["/csp-report"] = csp.OPENAPI
    runtime.openapi_paths.update(console_openapi.PATHS)
    return [
        *views.routes(runtime),
        Route("/csp-report", csp.endpoint(runtime), methods=["POST"]),
    ]
