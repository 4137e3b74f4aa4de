"""The bridge from the proxy to the streaming rewriter and the banner snippet.

Kept apart so the proxy's HTTP code does not care how a page rewriter is built.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..config import Site
from ..regions import Decision

__all__ = ["PageRewriter", "make_rewriter"]

log = logging.getLogger("consentgate.proxy")


class PageRewriter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _PassThrough:
    """Stand-in used only when the rewriter package is absent."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def make_rewriter(
    runtime: Any, site: Site, decision: Decision, headers: list[tuple[bytes, bytes]]
) -> PageRewriter:
    """A fresh streaming rewriter for one page and one visitor (``decision`` from
    :func:`consentgate.regions.decide_scope`: what the visitor may receive now)."""
    try:
        from ..rewriter import RewritePolicy, StreamRewriter
    except ImportError:
        return _PassThrough()
    policy = RewritePolicy(granted=decision.granted, catalog=_catalog(runtime), site=site)
    return StreamRewriter(policy, head_snippet=_head_snippet(runtime, site, decision, headers))


def _catalog(runtime: Any) -> Any:
    catalog = runtime.extras.get("catalog")
    if catalog is None:
        from .. import catalog as catalog_module

        loader = getattr(catalog_module, "load_catalog", None)
        catalog = loader() if loader else catalog_module
        runtime.extras["catalog"] = catalog
    return catalog


def _head_snippet(
    runtime: Any, site: Site, decision: Decision, headers: list[tuple[bytes, bytes]]
) -> Any:
    try:
        from ..banner import head_snippet
    except ImportError:
        return None
    return head_snippet(runtime, site, decision.consent, headers, decision)
