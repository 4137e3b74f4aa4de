"""Pages of an in-process ASGI app rewritten for the visitor's consent.

:class:`HTMLRewriting` wraps an ASGI app (the built-in demo site, or the app inside
:class:`consentgate.middleware.ConsentGateMiddleware`) so every ``text/html`` response
is rewritten for the visitor's consent, streaming responses included.

Raw ASGI, shaped like Starlette's ``GZipMiddleware``: ``http.response.start`` is held
until the first body message. A response whose whole body arrives in that message gets
an exact ``Content-Length``; a streamed one loses it. The ``ETag`` of a rewritten page
becomes weak and names the decision it was rewritten for (``Decision.token``);
``Vary: Cookie`` (plus ``Sec-GPC`` and the region headers) is added. ``Set-Cookie``
headers of every response are filtered like the proxy's: a cookie of a category the
visitor may not receive now (``consentgate.regions.decide_scope``) is dropped.
Compressed (``Content-Encoding``) HTML is passed through untouched: put compression
outside this middleware.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Site
from .cookies import CookiePolicy
from .proxy.headers import merge_vary
from .regions import Decision, decide_scope, vary_fields
from .visit import Runtime, cookie_value

__all__ = ["HTMLRewriting", "rewrite_html"]

log = logging.getLogger("consentgate.middleware")

_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_\-]+)'")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_\-:.]+)", re.I)


def rewrite_html(app: ASGIApp, runtime: Runtime) -> ASGIApp:
    """Wrap ``app`` so its HTML responses are rewritten (used for the demo site)."""
    return HTMLRewriting(app, runtime)


class HTMLRewriting:
    """The rewriting half of the middleware, usable on its own with a ``Runtime``."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "HEAD":
            await self.app(scope, receive, send)
            return
        responder = _Responder(self.runtime, scope, send)
        await self.app(scope, receive, responder.send)


class _Responder:
    def __init__(self, runtime: Runtime, scope: Scope, send: Send) -> None:
        self.runtime = runtime
        self.scope = scope
        self.downstream = send
        self.start: Message | None = None
        self.rewriter: Any = None
        self.site: Site | None = None
        self.decision: Decision | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            message = self.start = self._filter_cookies(message)
            self.rewriter = self._rewriter_for(message)
            if self.rewriter is None:
                self.start = None
                await self.downstream(message)
            return
        if kind != "http.response.body" or self.rewriter is None:
            await self._flush_start(None)
            await self.downstream(message)
            return
        more = bool(message.get("more_body", False))
        out = self.rewriter.feed(message.get("body", b""))
        if not more:
            out += self.rewriter.finish()
            self._count()
        await self._flush_start(None if more else len(out))
        if out or not more:
            await self.downstream({"type": "http.response.body", "body": out, "more_body": more})

    async def _flush_start(self, length: int | None) -> None:
        if self.start is None:
            return
        start, self.start = self.start, None
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await self.downstream({**start, "headers": headers})

    def _rewriter_for(self, start: Message) -> Any:
        headers = list(start.get("headers", []))
        ctype = b""
        csp = b""
        for k, v in headers:
            name = k.lower()
            if name == b"content-type":
                ctype = v
            elif name == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                return None
            elif name == b"content-security-policy":
                csp = v
        if start.get("status", 200) in (204, 304) or not ctype.lower().startswith(b"text/html"):
            return None
        from .injection import head_snippet_for
        from .rewriter import RewritePolicy, StreamRewriter

        site, decision = self._decision()
        policy = RewritePolicy(
            granted=decision.granted, catalog=_catalog(self.runtime, site), site=site
        )
        nonce = _NONCE.search(csp.decode("latin-1"))
        charset = _CHARSET.search(ctype.decode("latin-1"))
        rewriter = StreamRewriter(
            policy,
            head_snippet_for(
                self.runtime, site, decision.consent, self.scope.get("headers") or [], decision
            ),
            nonce=nonce.group(1) if nonce else None,
            charset=charset.group(1) if charset else None,
        )
        start["headers"] = _vary_etag(headers, decision.token, vary_fields(self.runtime.settings))
        return rewriter

    def _decision(self) -> tuple[Site, Decision]:
        """The site and the visitor's decision (region, regime, GPC, consent), once."""
        if self.decision is None:
            site = self.site = self.runtime.site_for(self.scope)
            consent = self.runtime.consent_from_cookie(cookie_value(self.scope), site)
            self.decision = decide_scope(self.runtime, site, self.scope, consent)
        assert self.site is not None
        return self.site, self.decision

    def _filter_cookies(self, start: Message) -> Message:
        """Drop the app's ``Set-Cookie`` of categories the visitor may not receive now."""
        headers = start.get("headers") or []
        if not any(k.lower() == b"set-cookie" for k, _ in headers):
            return start
        site, decision = self._decision()
        policy = CookiePolicy(site, decision.granted, self.runtime.undeclared)
        kept = [
            (k, v) for k, v in headers if k.lower() != b"set-cookie" or policy.filter_set_cookie(v)
        ]
        return {**start, "headers": kept}

    def _count(self) -> None:
        metrics = self.runtime.metrics
        if self.site is not None:
            metrics.rewrites.labels(site=self.site.id).inc()
        for category, n in self.rewriter.stats.items():
            metrics.neutralized.labels(category=category).inc(n)


def _catalog(runtime: Runtime, site: Site) -> Any:
    from .catalog import load_catalog

    return load_catalog(site)


def _vary_etag(
    headers: list[tuple[bytes, bytes]], token: str, fields: tuple[bytes, ...] = ()
) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for k, v in headers:
        if k.lower() == b"etag":
            opaque = v.strip()
            if opaque.startswith(b"W/"):
                opaque = opaque[2:]
            opaque = opaque.strip(b'"')
            v = b'W/"' + opaque + b"-cg" + token.encode() + b'"'
        out.append((k.lower(), v))
    for field in (b"Cookie", *fields):  # the page depends on these request headers
        merge_vary(out, field)
    return out
