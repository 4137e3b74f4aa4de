"""The site behind consentgate: the configured upstream (proxy) or the built-in demo.

HTML responses are rewritten for the visitor's consent by the rewriting middleware.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .app import Runtime

__all__ = ["build_site_app"]


def build_site_app(runtime: Runtime) -> ASGIApp:
    async def demo(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = HTMLResponse("<!doctype html><title>consentgate demo</title><h1>demo</h1>")
        await response(scope, receive, send)

    if any(site.upstream for site in runtime.settings.sites):
        from .proxy import ProxyApp

        return ProxyApp(runtime, fallback=demo)
    return demo
