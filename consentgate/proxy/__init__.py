"""The first-party reverse proxy (``consentgate serve --upstream URL``).

Modules: :mod:`.app` (the ASGI proxy), :mod:`.client` (upstream HTTP/1.1 client and
keep-alive pool), :mod:`.headers` (header rules), :mod:`.encoding` (content codings),
:mod:`.rewrite` (bridge to the page rewriter), :mod:`.websocket` (upgrades).
"""

from __future__ import annotations

from ..cookies import list_undeclared_cookies
from .app import ProxyApp

__all__ = ["ProxyApp", "list_undeclared_cookies"]
