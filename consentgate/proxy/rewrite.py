"""The bridge from the proxy to the streaming rewriter and the banner snippet.

Kept apart so the proxy's HTTP code does not care how a page rewriter is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..config import Site
from ..regions import Decision

__all__ = [
    "PageRewriter",
    "Snippet",
    "SnippetCache",
    "make_rewriter",
    "page_inputs",
    "page_snippet",
]

log = logging.getLogger("consentgate.proxy")


Snippet = Callable[[str | None], bytes]


class PageRewriter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _PassThrough:
    """Stand-in used only when the rewriter package is absent."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def page_inputs(response_headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """The page's charset and CSP script nonce, from the upstream's response headers."""
    charset = nonce = None
    for name, value in response_headers:
        if name == b"content-type":
            charset = _param(value, b"charset")
        elif name == b"content-security-policy":
            nonce = _csp_nonce(value)
    return charset, nonce


def make_rewriter(
    site: Site,
    decision: Decision,
    snippet: Snippet | None,
    charset: str | None,
    nonce: str | None,
) -> PageRewriter:
    """A fresh streaming rewriter for one page and one visitor (``decision`` from
    :func:`consentgate.regions.decide_scope`: what the visitor may receive now)."""
    try:
        from ..catalog import load_catalog
        from ..rewriter import RewritePolicy, StreamRewriter
    except ImportError:
        return _PassThrough()
    policy = RewritePolicy.for_site(site, decision.granted, load_catalog(site))
    return StreamRewriter(policy, snippet, nonce=nonce, charset=charset)


def _param(value: bytes, key: bytes) -> str | None:
    for part in value.split(b";")[1:]:
        k, _, v = part.strip().partition(b"=")
        if k.strip().lower() == key:
            return v.strip().strip(b'"').decode("latin-1") or None
    return None


def _csp_nonce(value: bytes) -> str | None:
    """The nonce a page's scripts may carry (``'nonce-...'`` in script-src/default-src)."""
    for directive in value.split(b";"):
        parts = directive.split()
        if parts and parts[0].lower() in (b"script-src", b"script-src-elem", b"default-src"):
            for source in parts[1:]:
                if source.startswith(b"'nonce-") and source.endswith(b"'"):
                    return source[7:-1].decode("latin-1")
    return None


def page_snippet(
    runtime: Any, site: Site, decision: Decision, headers: list[tuple[bytes, bytes]]
) -> Snippet | None:
    """The banner markup for this visitor (``nonce -> bytes``), None without the banner."""
    try:
        from ..banner import head_snippet  # noqa: F401 (without the banner: no snippet)
    except ImportError:
        return None
    from ..injection import head_snippet_for  # the runtime guard first, then the banner

    return head_snippet_for(runtime, site, decision.consent, headers, decision)


class SnippetCache:
    """Banner snippets of visitors who have not decided, by everything they depend on.

    Without a consent the snippet is the same for every visitor with the same site,
    ``Accept-Language``, region, regime and GPC signal, so it is built once (and rendered
    once per CSP nonce); a visitor with a consent gets their own (it carries their
    consent state). Bounded: emptied when ``size`` keys are held.
    """

    def __init__(self, runtime: Any, size: int = 512) -> None:
        self.runtime = runtime
        self.size = size
        self._entries: dict[tuple[object, ...], Snippet | None] = {}

    def get(
        self, site: Site, decision: Decision, headers: list[tuple[bytes, bytes]]
    ) -> Snippet | None:
        if decision.consent is not None:
            return page_snippet(self.runtime, site, decision, headers)
        languages = tuple(v for n, v in headers if n == b"accept-language")
        key = (site.id, languages, decision.region, decision.regime, decision.gpc)
        try:
            return self._entries[key]
        except KeyError:
            pass
        snippet = page_snippet(self.runtime, site, decision, headers)
        found = _rendered_once(snippet) if snippet is not None else None
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = found
        return found


def _rendered_once(snippet: Snippet) -> Snippet:
    rendered: dict[str | None, bytes] = {}

    def render(nonce: str | None) -> bytes:
        found = rendered.get(nonce)
        if found is None:
            if len(rendered) >= 16:  # nonces differ per page view: do not grow
                return snippet(nonce)
            found = rendered[nonce] = snippet(nonce)
        return found

    return render
