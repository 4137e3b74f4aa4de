"""The site behind consentgate: the configured upstream (proxy) or the built-in demo.

HTML responses are rewritten for the visitor's consent by the rewriting middleware.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from .app import Runtime

__all__ = ["build_site_app"]


def build_site_app(runtime: Runtime) -> ASGIApp:
    from .demo import demo_app
    from .middleware import rewrite_html

    demo = rewrite_html(demo_app(runtime), runtime)  # trackers blocked, banner injected
    if any(site.upstream for site in runtime.settings.sites):
        from .proxy import ProxyApp

        return ProxyApp(runtime, fallback=demo)
    return demo
