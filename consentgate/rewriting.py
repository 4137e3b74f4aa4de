"""Pages of an in-process ASGI app, through the one page plan (:mod:`consentgate.page`).

:class:`HTMLRewriting` wraps an ASGI app (the built-in demo site, or the app inside
:class:`consentgate.middleware.ConsentGateMiddleware`) and applies to its responses
exactly what the proxy applies to an upstream's: the browser's reading of the type
(every ``Content-Type``, sniffing on the decoded body, ``nosniff``), the rewrite of
HTML, the XML check, the refusal (the documented 502) of what cannot be made safe for
a visitor without full consent, ``Set-Cookie`` filtering, server-side expiry of the
refused categories' cookies, the CSP nonce, ``Vary`` and the consent-tagged ``ETag``.

Raw ASGI, shaped like Starlette's ``GZipMiddleware``: ``http.response.start`` is held
until the body says enough (the first message for a typed page; up to 512 decoded
bytes for one of unknown type; the whole body for XML). A page whose whole body arrives
in one message gets an exact ``Content-Length``; a streamed one is sent in pieces. A
compressed page is decoded, rewritten and sent without ``Content-Encoding`` (identity:
every client accepts it; put compression outside this middleware to compress again).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Site
from .cookies import CookiePolicy
from .mime import SNIFF_BYTES
from .page import (
    XML_MAX_BYTES,
    Head,
    Kind,
    SnippetCache,
    UnsafePage,
    content_coding,
    cookie_headers,
    error_page,
    full_consent,
    guard_escape,
    make_rewriter,
    opaque_frames_policy,
    page_headers,
    read_head,
    refresh_headers,
    refuse,
    relayable_status,
    sniff_kind,
    xml_refusal,
)
from .proxy.encoding import DecodeError, Decoder, decoder_for
from .regions import Decision, decide_scope, vary_fields
from .rewriter import StreamRewriter
from .visit import Runtime

__all__ = ["HTMLRewriting", "rewrite_html"]

log = logging.getLogger("consentgate.middleware")


def rewrite_html(app: ASGIApp, runtime: Runtime) -> ASGIApp:
    """Wrap ``app`` so its pages go through the page plan (used for the demo site)."""
    return HTMLRewriting(app, runtime)


class HTMLRewriting:
    """The page half of the middleware, usable on its own with a ``Runtime``."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.snippets = SnippetCache(runtime)
        self.vary = (b"Cookie", *vary_fields(runtime.settings))
        runtime.declarations_changed.append(self.forget)

    def forget(self) -> None:
        """A site's declarations changed: snippets built with the old ones go."""
        self.snippets = SnippetCache(self.runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Responder(self, scope, send).send)


class _Responder:
    """One response of the wrapped app on its way to the visitor."""

    def __init__(self, owner: HTMLRewriting, scope: Scope, send: Send) -> None:
        self.owner = owner
        self.runtime = owner.runtime
        self.scope = scope
        self.downstream = send
        self.site: Site | None = None
        self.decision: Decision | None = None
        self.started = False  # http.response.start went to the visitor
        self.done = False  # the response is over (refused or finished): ignore the rest
        self.passing = True  # forward messages as they are
        self.status = 200
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: Head | None = None
        self.kind = Kind.PASS
        self.decoder: Decoder | None = None
        self.raw: list[bytes] = []  # what the app sent while the kind was undecided
        self.decoded: list[bytes] = []
        self.size = 0
        self.rewriter: StreamRewriter | None = None

    # -- the visitor -----------------------------------------------------------------
    def _decide(self) -> tuple[Site, Decision]:
        """The site and the visitor's decision (region, regime, GPC, consent), once."""
        if self.site is None or self.decision is None:
            site = self.site = self.runtime.site_for(self.scope)
            consent = self.runtime.consent_of(self.scope, site)
            self.decision = decide_scope(self.runtime, site, self.scope, consent)
        return self.site, self.decision

    def _request_header(self, name: bytes) -> bytes | None:
        for key, value in self.scope.get("headers") or ():
            if key == name:
                return bytes(value)
        return None

    def _cookies(self, headers: list[tuple[bytes, bytes]], page: bool) -> list[tuple[bytes, bytes]]:
        site, decision = self._decide()
        path = str(self.scope.get("path", ""))
        policy = CookiePolicy(site, decision.granted, self.runtime.undeclared, path)
        host = (self._request_header(b"host") or b"").decode("latin-1")
        headers = refresh_headers(headers, site, decision.granted)
        return cookie_headers(headers, policy, self._request_header(b"cookie"), host, page)

    # -- messages from the app ---------------------------------------------------------
    async def send(self, message: Message) -> None:
        if self.done:
            return
        if self.passing and self.started:
            await self.downstream(message)
            return
        try:
            if message["type"] == "http.response.start":
                await self._start(message)
            elif message["type"] == "http.response.body":
                await self._body(message.get("body", b""), bool(message.get("more_body", False)))
            else:
                await self.downstream(message)
        except Exception as exc:
            if self.started or self.site is None or self.decision is None:
                raise  # cut (after the first byte)
            broken = isinstance(exc, DecodeError)  # a page nobody can read: 502 for all
            if not broken and full_consent(self.decision):
                raise  # nothing to hold back from this visitor
            self.done = True
            if not isinstance(exc, UnsafePage | DecodeError):
                log.exception("internal error on a page")
            await refuse(self.downstream, self.site, exc)

    async def _start(self, message: Message) -> None:
        self.status = status = int(message["status"])
        headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers") or ()]
        if not relayable_status(status):
            self.done = True
            log.error("the app answered status %d, which HTTP cannot relay", status)
            await error_page(self.downstream, 502, "Bad Gateway", "The site sent a bad status.")
            return
        self._decide()  # a decision exists from here on: errors below are refusals
        head = self.head = read_head(headers)
        bodyless = self.scope.get("method") == "HEAD" or status in (204, 304)
        kind = head.kind
        if kind is Kind.SNIFF and bodyless:
            kind = Kind.PASS
        self.headers = headers
        if kind is Kind.PASS:
            await self._send_start(self._cookies(headers, page=False))
            return
        if bodyless:
            await self._send_start(self._page_headers(keep_coding=True))
            return
        if kind is Kind.XML and full_consent(self._decide()[1]):
            await self._send_start(self._page_headers(keep_coding=True))  # as it is
            return
        self.kind = kind
        self.passing = False
        coding = content_coding(headers)
        if coding and coding != b"identity":
            self.decoder = decoder_for(coding.decode("latin-1"))
            if self.decoder is None:
                if not full_consent(self._decide()[1]):
                    raise UnsafePage(f"a page in content coding {coding!r}")
                self.kind = Kind.PASS  # streamed as it is to a visitor who granted all
                await self._send_start(self._page_headers(keep_coding=True))
                self.passing = True

    async def _send_start(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self.downstream(
            {"type": "http.response.start", "status": self.status, "headers": headers}
        )

    def _page_headers(self, keep_coding: bool = False) -> list[tuple[bytes, bytes]]:
        site, decision = self._decide()
        out = page_headers(
            self._cookies(self.headers, page=True),
            decision.token,
            self.owner.vary,
            site,
            decision.granted,
        )
        if self.runtime.discovery is not None:  # the console's host discovery (docs/console.md)
            out.append((b"content-security-policy-report-only", self.runtime.discovery.report_only))
        out += opaque_frames_policy(decision.granted)
        if not keep_coding:
            out = [(n, v) for n, v in out if n != b"content-encoding"]
        return out

    async def _body(self, chunk: bytes, more: bool) -> None:
        site, decision = self._decide()
        everything = full_consent(decision)
        data = self.decoder.decode(chunk) if self.decoder is not None and chunk else chunk
        if not more and self.decoder is not None:
            data += self.decoder.flush()
        if self.kind is Kind.SNIFF:
            self.raw.append(chunk)
            self.decoded.append(data)
            self.size += len(data)
            if more and self.size < SNIFF_BYTES:
                return
            sniffed = b"".join(self.decoded)
            self.kind = sniff_kind(sniffed)
            as_sent = self.kind is Kind.PASS or (self.kind is Kind.XML and everything)
            if as_sent:  # not a document, or XML to a visitor who granted all
                self.passing = True
                if self.kind is Kind.PASS:
                    await self._send_start(self._cookies(self.headers, page=False))
                else:
                    await self._send_start(self._page_headers(keep_coding=True))
                await self.downstream(
                    {"type": "http.response.body", "body": b"".join(self.raw), "more_body": more}
                )
                return
            data, self.decoded, self.raw = sniffed, [], []
        if self.kind is Kind.XML:
            await self._xml(data, more, site, decision)
            return
        if self.rewriter is None:
            head = self.head
            assert head is not None
            snippet = self.owner.snippets.get(site, decision, list(self.scope.get("headers") or []))
            self.rewriter = make_rewriter(site, decision, snippet, head.charset, head.nonce)
            self.runtime.metrics.rewrites.labels(site=site.id).inc()
        if not everything:
            guard_escape(data)
        out = self.rewriter.feed(data)
        if not more:
            out += self.rewriter.finish()
            self._count()
        reason = self.rewriter.passthrough_reason
        if reason is not None and not everything:
            if self.started:
                raise UnsafePage(f"page cannot be rewritten ({reason}): response cut")
            raise UnsafePage(f"page cannot be rewritten ({reason})")
        if not self.started:
            headers = self._page_headers()
            if not more:
                headers.append((b"content-length", str(len(out)).encode()))
            await self._send_start(headers)
        if out or not more:
            await self.downstream({"type": "http.response.body", "body": out, "more_body": more})
        if not more:
            self.done = True

    async def _xml(self, data: bytes, more: bool, site: Site, decision: Decision) -> None:
        """An XML document for a visitor without full consent (who granted all gets it
        as it is): whole and decoded, passed only when inert
        (:func:`consentgate.page.xml_refusal`), else refused."""
        self.decoded.append(data)
        self.size += len(data)
        if self.size > XML_MAX_BYTES:
            raise UnsafePage("an XML document too large to check")
        if more:
            return
        body = b"".join(self.decoded)
        self.decoded = []
        assert self.head is not None
        reason = xml_refusal(body, site, decision, self.head.charset)
        if reason is not None:
            raise UnsafePage(reason)
        headers = self._page_headers()
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send_start(headers)
        await self.downstream({"type": "http.response.body", "body": body})
        self.done = True

    def _count(self) -> None:
        metrics = self.runtime.metrics
        assert self.rewriter is not None
        for category, n in self.rewriter.stats.items():
            metrics.neutralized.labels(category=category).inc(n)
