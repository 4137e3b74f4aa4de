"""The site behind consentgate: the configured upstream (proxy) or the built-in demo.

HTML responses are rewritten for the visitor's consent (the proxy's page writer, or
:mod:`consentgate.rewriting` around the demo).
"""

from __future__ import annotations

from starlette.types import ASGIApp

from .demo import demo_app
from .proxy import ProxyApp
from .rewriting import rewrite_html
from .visit import Runtime

__all__ = ["build_site_app"]


def build_site_app(runtime: Runtime) -> ASGIApp:
    demo = rewrite_html(demo_app(runtime), runtime)  # trackers blocked, banner injected
    if any(site.upstream for site in runtime.settings.sites):
        return ProxyApp(runtime, fallback=demo)
    return demo
