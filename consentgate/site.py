"""The site behind consentgate: the configured upstream (proxy), the built-in demo, or,
for a site with neither, a plain page saying that only consentgate's endpoints are here.

The demo is served only when asked for: ``consentgate serve`` with no config and no
upstream (the ``demo`` site of :func:`consentgate.config.demo_site`). A configured site
without an upstream (what ``consentgate init`` writes) is a script-tag site: its pages
live elsewhere and embed ``banner.js``, so the page here carries no tracker snippet.
HTML responses are rewritten for the visitor's consent (the proxy's page writer, or
:mod:`consentgate.rewriting` around the demo).
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .demo import demo_app
from .proxy.app import ProxyApp
from .rewriting import rewrite_html
from .visit import Runtime

__all__ = ["build_site_app", "script_tag_page"]


def build_site_app(runtime: Runtime) -> ASGIApp:
    local: ASGIApp = _ScriptTagSite(runtime)
    if any(site.demo for site in runtime.settings.sites):
        demo = rewrite_html(demo_app(runtime), runtime)  # trackers blocked, banner injected
        local = _DemoOrPlain(runtime, demo, local)
    if any(site.upstream for site in runtime.settings.sites):
        return ProxyApp(runtime, fallback=local)
    return local


class _DemoOrPlain:
    """The demo for the demo site, the plain page for any other site without upstream."""

    def __init__(self, runtime: Runtime, demo: ASGIApp, plain: ASGIApp) -> None:
        self.runtime, self.demo, self.plain = runtime, demo, plain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        site = self.runtime.site_for(scope) if scope["type"] != "lifespan" else None
        await (self.demo if site is not None and site.demo else self.plain)(scope, receive, send)


def script_tag_page(site_id: str, prefix: str) -> str:
    """What a site without upstream answers for every page: where its endpoints are."""
    site, tag = (
        escape(site_id),
        escape(f'<script src="{prefix}/banner.js?site={site_id}"></script>'),
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>consentgate: site {site}</title>\n</head>\n<body>\n"
        f"<h1>consentgate is running for site {site}</h1>\n"
        "<p>This site has no <code>upstream</code> in the configuration, so consentgate "
        f"serves only its own endpoints here, under <code>{escape(prefix)}/</code> "
        "(script-tag mode). There are no pages to show.</p>\n"
        "<p>To use it, add this tag to the pages of your site:</p>\n"
        f"<pre><code>{tag}</code></pre>\n"
        "<p>or put consentgate in front of the site: set <code>upstream = "
        '"http://host:port"</code> in its <code>[[sites]]</code> table (proxy mode).</p>\n'
        f'<p><a href="{escape(prefix)}/openapi.json">API description</a> · '
        f'<a href="{escape(prefix)}/declaration">cookie declaration</a></p>\n'
        "</body>\n</html>\n"
    )


class _ScriptTagSite:
    """A site without upstream and without demo: the plain page, 200 at ``/``, 404
    elsewhere; never the demo's tracker snippets."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        site = self.runtime.site_for(scope)
        status = 200 if scope.get("path") in ("/", "/index.html") else 404
        page = script_tag_page(site.id, self.runtime.settings.prefix)
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        await HTMLResponse(page, status_code=status, headers=headers)(scope, receive, send)
