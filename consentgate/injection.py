"""The markup placed early in ``<head>`` of every rewritten page (proxy and middleware).

:func:`head_snippet_for` gives, first, the runtime guard inline (``static/banner/guard.js``
with the site's data and the visitor's categories, docs/guard.md), so that it runs before
any other script on the page; then ``consentgate.banner.head_snippet`` (Consent Mode
default + banner tag). The result is a callable taking the page's CSP nonce (the guard's
``<script>`` carries it too), as :class:`~consentgate.rewriter.StreamRewriter` expects.
:class:`consentgate.page.SnippetCache` shares it between visitors who have not decided.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from .banner import _header_map, assets, head_snippet
from .config import Site
from .consent import Consent
from .guard import guard_script
from .regions import UNKNOWN, Decision, decide, gpc_from_headers
from .rewriter import HeadSnippet
from .visit import Runtime

__all__ = ["head_snippet_for"]

Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]] | None


def head_snippet_for(
    runtime: Runtime,
    site: Site,
    consent: Consent | None,
    headers: Headers,
    decision: Decision | None = None,
) -> HeadSnippet:
    """``decision`` (:func:`consentgate.regions.decide_scope`) gives the banner the
    visitor's regime and the guard the categories granted now; without it the site's
    default regime applies."""
    if decision is None:
        decision = decide(site, UNKNOWN, consent, gpc_from_headers(_header_map(headers)))
    guard = guard_script(assets(runtime).guard(site), decision.granted)
    banner = head_snippet(runtime, site, consent, headers, decision)

    def render(nonce: str | None) -> bytes:
        n = f' nonce="{html.escape(nonce)}"' if nonce else ""
        return f"<script{n}>{guard}</script>".encode() + banner(nonce)

    return render
