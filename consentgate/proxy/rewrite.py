"""The bridge from the proxy to the streaming rewriter and the banner snippet.

Kept apart so the proxy's HTTP code does not care how a page rewriter is built.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..config import Site
from ..consent import CATEGORIES, Consent

__all__ = ["PageRewriter", "consent_token", "granted_of", "make_rewriter"]

log = logging.getLogger("consentgate.proxy")


class PageRewriter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


def granted_of(consent: Consent | None) -> frozenset[str]:
    """Categories the visitor granted; only ``necessary`` before a decision."""
    return consent.granted if consent is not None else frozenset({"necessary"})


def consent_token(consent: Consent | None) -> str:
    """A short tag naming what a rewritten page was rewritten for (used in ETags)."""
    if consent is None:
        return "x"
    return "".join(c[0] for c in CATEGORIES if c in consent.granted)


class _PassThrough:
    """Stand-in used only when the rewriter package is absent."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def make_rewriter(
    runtime: Any, site: Site, consent: Consent | None, headers: list[tuple[bytes, bytes]]
) -> PageRewriter:
    """A fresh streaming rewriter for one page and one visitor."""
    try:
        from ..rewriter import RewritePolicy, StreamRewriter
    except ImportError:
        return _PassThrough()
    policy = RewritePolicy(granted=granted_of(consent), catalog=_catalog(runtime), site=site)
    return StreamRewriter(policy, head_snippet=_head_snippet(runtime, site, consent, headers))


def _catalog(runtime: Any) -> Any:
    catalog = runtime.extras.get("catalog")
    if catalog is None:
        from .. import catalog as catalog_module

        loader = getattr(catalog_module, "load_catalog", None)
        catalog = loader() if loader else catalog_module
        runtime.extras["catalog"] = catalog
    return catalog


def _head_snippet(
    runtime: Any, site: Site, consent: Consent | None, headers: list[tuple[bytes, bytes]]
) -> Any:
    try:
        from ..banner import head_snippet
    except ImportError:
        return None
    return head_snippet(runtime, site, consent, headers)
