"""The first-party reverse proxy as a raw ASGI app.

Every request outside ``/_consent`` for a site with an ``upstream`` is forwarded to
that upstream, and only there: the target is always the configured origin plus the
request path (absolute-URI targets, CONNECT and Host games cannot pick another host).
What comes back is classified by :mod:`consentgate.page` (the browser's rules: every
``Content-Type``, sniffing on the decoded body, ``nosniff``): a page is decoded,
rewritten for the visitor's consent (signed cookie) and re-encoded, or refused;
``Set-Cookie`` of unconsented categories is dropped; everything else streams through
byte for byte. A status HTTP/1.1 cannot relay (< 100, >= 600) becomes a 502.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Site
from ..cookies import CookiePolicy
from ..errors import ConsentGateError
from ..mime import SNIFF_BYTES
from ..page import (
    BYTES_HEADERS,
    Kind,
    content_coding,
    error_page,
    filter_link,
    full_consent,
    opaque_frames_policy,
    read_head,
    refresh_headers,
    refuse,
    relayable_status,
    sniff_kind,
)
from ..regions import Decision, decide_scope, vary_fields
from ..visit import Runtime, cookie_value
from ..visitor import TrustedProxies
from .cache import RewriteCache
from .client import Origin, UpstreamError, UpstreamResponse
from .encoding import DecodeError, decoder_for
from .headers import (
    HOP_BY_HOP,
    PublicOrigin,
    Visitor,
    connection_tokens,
    consent_etag,
    merge_vary,
    request_headers_for_upstream,
    rewrite_location,
    visitor_of,
)
from .pages import PageWriter, VisitorWatch, header, stream_body
from .pool import UpstreamPool
from .websocket import forward_websocket

__all__ = ["ProxyApp"]

log = logging.getLogger("consentgate.proxy")

#: Response headers the server in front sets itself (uvicorn writes ``Date`` on every
#: response): the upstream's copy would make a second one.
_SERVER_SET = frozenset({b"date"})
#: Response headers that describe the upstream's exact bytes (wrong once rewritten).
_DROP = HOP_BY_HOP | _SERVER_SET


class ClientGone(ConsentGateError):
    """The visitor disconnected while we were forwarding their request body."""


class ProxyApp:
    """Forward to the upstream of the site chosen by Host; ``fallback`` serves the rest."""

    def __init__(self, runtime: Runtime, fallback: ASGIApp) -> None:
        self.runtime = runtime
        self.fallback = fallback
        settings = runtime.settings
        self.pool = UpstreamPool(settings.upstream_connect_timeout, settings.upstream_read_timeout)
        self.origins: dict[str, Origin] = {
            s.id: Origin.parse(s.upstream) for s in settings.sites if s.upstream
        }
        self.undeclared = runtime.undeclared
        self.trusted = TrustedProxies(settings.trusted_proxies)
        #: the origins a Location from the upstream may name, per site id
        self.upstream_origins: dict[str, tuple[str, ...]] = {}
        for s in settings.sites:
            if s.upstream:
                o = self.origins[s.id]
                named = s.upstream_host_header
                extra = (f"{o.scheme}://{named}",) if named else ()
                self.upstream_origins[s.id] = (o.url, *extra)
        self.vary = (b"Cookie", *vary_fields(settings))
        #: each site's declared public origins: Location, cookie Domain and Forwarded
        #: name these, never a Host as sent
        self.public: dict[str, tuple[PublicOrigin, ...]] = {
            s.id: tuple(o for o in map(PublicOrigin.parse, s.origins) if o) for s in settings.sites
        }
        self._sites: dict[bytes | None, Site] = {}  # Host header -> site (bounded)
        #: response headers for a known upstream head (see respond), bounded
        self._heads: dict[tuple[object, ...], tuple[Kind, tuple[tuple[bytes, bytes], ...]]] = {}
        cache_mb = settings.rewrite_cache_mb
        self.pages = PageWriter(runtime, RewriteCache(cache_mb * 1024 * 1024) if cache_mb else None)
        runtime.on_shutdown.append(self.aclose)
        runtime.declarations_changed.append(self.forget)

    def forget(self) -> None:
        """A site's declarations changed (a classification in the console): drop what
        was decided with the old ones."""
        self._heads.clear()
        self.pages.snippets = type(self.pages.snippets)(self.runtime)
        if self.pages.cache is not None:
            self.pages.cache.clear()

    def site_for(self, scope: Scope) -> Site:
        """The site for the request's ``Host`` (as :meth:`Runtime.site_for`, memoized)."""
        host = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value  # the last one, as Runtime.site_for
        site = self._sites.get(host)
        if site is None:
            site = self.runtime.settings.site_for_host(host.decode("latin-1") if host else None)
            if len(self._sites) >= 1024:
                self._sites.clear()
            self._sites[host] = site
        return site

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.fallback(scope, receive, send)
            return
        site = self.site_for(scope)
        origin = self.origins.get(site.id)
        if origin is None:
            await self.fallback(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await forward_websocket(
                scope,
                receive,
                send,
                site,
                origin,
                visitor=self.visitor(scope, site),
                target=self.target(scope, origin).decode("latin-1"),
                settings=self.runtime.settings,
            )
            return
        await self.forward(scope, receive, send, site, origin)

    # -- request side ---------------------------------------------------------
    def visitor(self, scope: Scope, site: Site) -> Visitor:
        client = scope.get("client") or ("", 0)
        return visitor_of(
            client[0] or "",
            scope.get("scheme", "http"),
            scope["headers"],
            self.trusted,
            self.public.get(site.id, ()),
        )

    def target(self, scope: Scope, origin: Origin) -> bytes:
        path = scope.get("raw_path") or scope["path"].encode("utf-8")
        if not path.startswith(b"/"):  # absolute-form or authority-form: never forwarded
            path = b"/" + path
        target = origin.base_path.encode("utf-8") + path
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        return target

    def _shadows_prefix(self, path: str) -> bool:
        """A path the upstream could resolve to consentgate's own (``//_consent/x``,
        ``/a/../_consent/x``): never forwarded."""
        if "//" not in path and "/." not in path:
            return False
        normal = posixpath.normpath("/" + path.lstrip("/"))
        prefix = self.runtime.settings.prefix
        return normal == prefix or normal.startswith(prefix + "/")

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, site: Site, origin: Origin
    ) -> None:
        method: str = scope["method"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if method == "CONNECT":
            await error_page(send, 405, "Method Not Allowed", "This is not a forward proxy.")
            return
        limits = self.runtime.settings  # (the server in front enforces them first)
        if len(headers) > limits.max_request_headers or sum(len(n) + len(v) for n, v in headers) > (
            limits.max_request_header_bytes
        ):
            await error_page(send, 431, "Request Header Fields Too Large", "Too many headers.")
            return
        if self._shadows_prefix(scope["path"]):
            await error_page(send, 404, "Not Found", "No such page.")
            return
        consent = self.runtime.consent_from_cookie(cookie_value(scope), site)
        decision = decide_scope(self.runtime, site, scope, consent)  # region + regime + GPC
        token = decision.token
        visitor = self.visitor(scope, site)
        up_headers = request_headers_for_upstream(
            headers, visitor, site.upstream_host_header or "", consent_token=token
        )
        if not visitor.host and not site.upstream_host_header:
            netloc = origin.netloc.encode()
            up_headers = [(n, netloc if n == b"host" else v) for n, v in up_headers]
        body, chunked = self._request_body(headers, receive, up_headers)
        target = self.target(scope, origin)
        try:
            resp = await self.pool.request(origin, method, target, up_headers, body, chunked)
            ranged = resp.status == 206 and body is None
            measure = method == "HEAD" and resp.status == 200
            # a page, or maybe one (sniffed): read only when it matters (hot path)
            page = (ranged or measure) and read_head(resp.headers).page
            if ranged and page:
                # A byte range of a page cannot be rewritten: fetch the whole page.
                resp.close()
                up_headers = [(n, v) for n, v in up_headers if n not in (b"range", b"if-range")]
                resp = await self.pool.request(origin, method, target, up_headers)
            elif measure and page:
                # A page's length is that of the page as rewritten: fetch it to measure.
                resp.close()
                resp = await self.pool.request(origin, "GET", target, up_headers)
        except ClientGone:
            return
        except UpstreamError as exc:
            log.warning("upstream %s for site %s: %s", origin.url, site.id, exc)
            if exc.status == 504:
                await error_page(send, 504, "Gateway Timeout", "The site did not answer in time.")
            else:
                await error_page(send, 502, "Bad Gateway", "The site could not be reached.")
            return
        if not relayable_status(resp.status):
            resp.close()
            log.warning("upstream %s for site %s: status %d", origin.url, site.id, resp.status)
            await error_page(send, 502, "Bad Gateway", "The site sent a status HTTP cannot relay.")
            return
        watch = VisitorWatch(receive) if body is None else None
        try:
            await self.respond(scope, send, site, origin, visitor, decision, resp, target, watch)
        finally:
            if watch is not None:
                watch.stop()
            resp.close()

    def _request_body(
        self, headers: list[tuple[bytes, bytes]], receive: Receive, up: list[tuple[bytes, bytes]]
    ) -> tuple[Any, bool]:
        # The body is framed for the upstream here, from what the server read (it
        # refused any ambiguous framing): never the visitor's framing headers.
        length = header(headers, b"content-length")
        chunked = header(headers, b"transfer-encoding") is not None
        if chunked:
            up.append((b"transfer-encoding", b"chunked"))
        elif length is None:
            return None, False
        elif length.strip().isdigit():
            up.append((b"content-length", b"%d" % int(length)))
            if int(length) == 0:
                return None, False
        else:  # (the edge refuses this; an in-process server may not)
            chunked = True
            up.append((b"transfer-encoding", b"chunked"))

        async def stream() -> Any:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone()
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        return stream(), chunked

    # -- response side --------------------------------------------------------
    async def respond(
        self,
        scope: Scope,
        send: Send,
        site: Site,
        origin: Origin,
        visitor: Visitor,
        decision: Decision,
        resp: UpstreamResponse,
        target: bytes,
        watch: VisitorWatch | None = None,
    ) -> None:
        token = decision.token
        status = resp.status
        bodyless = scope["method"] == "HEAD" or status in (204, 304)
        inm = header(scope["headers"], b"if-none-match")
        tagged = inm is not None and f"-cg{token}".encode() in inm  # a 304 for this visitor
        # A response head seen before (resp.known) gives the same headers for the same
        # site, consent token and request kind, unless it carries cookies or a Location
        # (those depend on the visitor, and cookies are recorded): memoized.
        key = (resp.known, site.id, token, tagged, bodyless) if resp.known is not None else None
        found = self._heads.get(key) if key is not None else None
        if found is not None:
            kind, template = found
            out = list(template)
        else:
            page = target.split(b"?", 1)[0].decode("latin-1")
            cookies = CookiePolicy(site, decision.granted, self.undeclared, page)
            try:
                kind, out, same = await self._headers(
                    site, visitor, resp, cookies, token, tagged, bodyless
                )
            except Exception as exc:  # nothing went out yet: fail closed
                if full_consent(decision):
                    raise
                log.exception("site %s: internal error on a response head", site.id)
                await refuse(send, site, f"internal error: {exc!r}")
                return
            if key is not None and same:
                if len(self._heads) >= 512:
                    self._heads.clear()
                self._heads[key] = (kind, tuple(out))
        if kind is Kind.PASS:
            await stream_body(send, status, out, resp, bodyless, watch)
            return
        cookie_header = header(scope["headers"], b"cookie")
        if cookie_header:
            cookies = CookiePolicy(site, decision.granted, self.undeclared)
            out.extend(
                (b"set-cookie", v) for v in cookies.expire_refused(cookie_header, visitor.host)
            )
        if bodyless:
            if not resp.head_request and status == 200:  # HEAD of a page fetched whole
                measured = _LengthOnly(send)
                await self.pages.serve(
                    scope["headers"], measured, site, decision, 200, out, resp, kind=kind
                )
                if not measured.sent:
                    await error_page(send, 502, "Bad Gateway", "The page could not be served.")
                return
            await stream_body(send, status, out, resp, True)
            return
        await self.pages.serve(
            scope["headers"], send, site, decision, status, out, resp, target, watch, kind
        )

    async def _headers(
        self,
        site: Site,
        visitor: Visitor,
        resp: UpstreamResponse,
        cookies: CookiePolicy,
        token: str,
        tagged: bool,
        bodyless: bool,
    ) -> tuple[Kind, list[tuple[bytes, bytes]], bool]:
        """(the page kind, the response headers for the visitor, whether they depend
        only on the upstream's head and the token: no cookies, no Location, no sniffing)."""
        status = resp.status
        drop = _DROP
        for name, _ in resp.headers:
            if name == b"connection":
                drop = _DROP | connection_tokens(resp.headers)
        kind = read_head(resp.headers).kind
        same = kind is not Kind.SNIFF
        if kind is Kind.SNIFF:  # the browser decides from the body: so do we
            no_body = status in (204, 304) or resp.head_request
            kind = Kind.PASS if no_body else await self._sniff(resp)
        html = kind is not Kind.PASS
        upstream_origins = self.upstream_origins[site.id]
        out: list[tuple[bytes, bytes]] = []
        for name, value in resp.headers:
            if name in drop:
                continue
            if name == b"set-cookie":
                same = False
                if not cookies.filter_set_cookie(value):
                    continue
            elif name in (b"location", b"content-location"):
                same = False
                value = rewrite_location(value, upstream_origins, visitor)
            elif html or (status == 304 and name == b"etag" and tagged):
                if name in BYTES_HEADERS:
                    continue
                if name == b"etag":
                    value = consent_etag(value, token)
                elif name == b"link" and html:
                    link = filter_link(value, site, cookies.granted)
                    if link is None:
                        continue
                    value = link
            out.append((name, value))
        out = refresh_headers(out, site, cookies.granted)
        if not html:
            if status == 304:
                merge_vary(out, b"Cookie")
        else:
            for field in self.vary:
                merge_vary(out, field)
            # the console's discovery: browsers report the third-party hosts a page
            # loads (a policy of its own beside the site's, which stays as it is)
            if self.runtime.discovery is not None:
                out.append(
                    (b"content-security-policy-report-only", self.runtime.discovery.report_only)
                )
            out += opaque_frames_policy(cookies.granted)
        return kind, out, same

    @staticmethod
    async def _sniff(resp: UpstreamResponse) -> Kind:
        """The kind of a body of unknown type, as the browser sniffs it: from the first
        :data:`~consentgate.mime.SNIFF_BYTES` *decoded* bytes, across as many reads as
        they take (put back for the writer). A body that cannot be decoded or read is
        taken for a page: the page writer then refuses it (without full consent) or
        reports the failure."""
        coding = content_coding(resp.headers)
        decoder = None
        if coding and coding != b"identity":
            decoder = decoder_for(coding.decode("latin-1"))
            if decoder is None:
                return Kind.HTML
        raw: list[bytes] = []
        decoded = b""
        try:
            while chunk := await resp.read():
                raw.append(chunk)
                decoded += decoder.decode(chunk) if decoder is not None else chunk
                if len(decoded) >= SNIFF_BYTES or resp.complete:
                    break
            if decoder is not None and resp.complete:
                decoded += decoder.flush()  # a body cut short is undecodable: not sniffed
        except (UpstreamError, DecodeError):
            return Kind.HTML
        finally:
            resp.unread(b"".join(raw))
        return sniff_kind(decoded)


class _LengthOnly:
    """``send`` for a HEAD of a page: the head the GET would get, its Content-Length the
    length of the body as rewritten; no body."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._length = 0
        self.sent = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        self._length += len(message.get("body", b""))
        if message.get("more_body", False) or self._start is None:
            return
        framing = (b"content-length", b"transfer-encoding")
        headers = [(n, v) for n, v in self._start.get("headers", ()) if n not in framing]
        headers.append((b"content-length", b"%d" % self._length))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": b""})
        self.sent = True
