"""The first-party reverse proxy (``consentgate serve --upstream URL``).

Transport only: what a page is and what a visitor may receive of it is decided by
:mod:`consentgate.page`, shared with the middleware. Modules: :mod:`.app` (the ASGI
proxy, ``ProxyApp``), :mod:`.client` (upstream HTTP/1.1 client and keep-alive pool),
:mod:`.headers` (header rules), :mod:`.encoding` (content codings), :mod:`.pages`
(response bodies), :mod:`.cache` (recorded rewrites), :mod:`.websocket` (upgrades).
"""

from __future__ import annotations

from ..cookies import list_undeclared_cookies

__all__ = ["list_undeclared_cookies"]
