"""The markup placed early in ``<head>`` of every rewritten page.

:func:`head_snippet_for` uses ``consentgate.banner.head_snippet`` (Consent Mode
default + banner tag) when the banner module provides it, and otherwise
:func:`fallback_snippet`, a bare banner ``<script>`` tag. Either way the result is a
callable taking the page's CSP nonce, as :class:`~consentgate.rewriter.StreamRewriter`
expects.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .rewriter import HeadSnippet

if TYPE_CHECKING:
    from .config import Site
    from .consent import Consent
    from .regions import Decision
    from .visit import Runtime

__all__ = ["fallback_snippet", "head_snippet_for"]

Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]] | None


def head_snippet_for(
    runtime: Runtime,
    site: Site,
    consent: Consent | None,
    headers: Headers,
    decision: Decision | None = None,
) -> HeadSnippet:
    """``decision`` (:func:`consentgate.regions.decide_scope`) gives the banner the
    visitor's regime; without it the site's default regime applies."""
    try:
        from .banner import head_snippet
    except ImportError:
        return fallback_snippet(runtime.settings.prefix, site)
    return head_snippet(runtime, site, consent, headers, decision)


def fallback_snippet(prefix: str, site: Site) -> HeadSnippet:
    """``<script src="{prefix}/banner.js?site=ID" defer nonce=...>`` (ASCII only)."""
    src = html.escape(f"{prefix}/banner.js?site={site.id}")

    def render(nonce: str | None) -> bytes:
        n = f' nonce="{html.escape(nonce)}"' if nonce else ""
        return f'<script src="{src}" defer{n}></script>'.encode("ascii", "xmlcharrefreplace")

    return render
