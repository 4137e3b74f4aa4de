"""Response bodies: streamed through untouched, or decoded, rewritten and re-encoded.

Two ways to rewrite a page:

- **whole**: an upstream 200 with a ``Content-Length`` up to ``CACHED_PAGE_MAX`` is
  read, decoded and looked up in the :class:`~.cache.RewriteCache` (a page already
  rewritten for the same categories costs a hash and a copy); the visitor gets it
  with a ``Content-Length``.
- **streaming**: anything else (chunked, progressive, big pages) goes through the
  streaming rewriter chunk by chunk; memory stays bounded whatever the page size.

A page the proxy cannot make safe (undecodable, or one the rewriter has to pass
through) is never sent to a visitor who has not granted everything: 502 and a log line.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from html import escape
from typing import Any

from starlette.types import Send

from ..config import Site
from ..consent import CATEGORIES
from ..regions import Decision
from .cache import CachedPage, MarkerSnippet, RewriteCache
from .client import UpstreamError, UpstreamResponse
from .encoding import DecodeError, Decoder, Encoder, decoder_for, encoder_for
from .rewrite import PageRewriter, make_rewriter, page_inputs, page_snippet

__all__ = ["CACHED_PAGE_MAX", "PageWriter", "error_page", "header", "stream_body"]

log = logging.getLogger("consentgate.proxy")

#: Largest page (Content-Length) rewritten whole and cached.
CACHED_PAGE_MAX = 1024 * 1024
_ALL = frozenset(CATEGORIES)
_UNSAFE = "The page could not be made safe."


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None


def accepts(accept_encoding: bytes | None, coding: bytes) -> bool:
    """Does the visitor's Accept-Encoding allow ``coding``?"""
    if not accept_encoding:
        return False
    for item in accept_encoding.lower().split(b","):
        token, _, params = item.partition(b";")
        if token.strip() not in (coding, b"*"):
            continue
        q = params.replace(b" ", b"").partition(b"q=")[2]
        try:
            if not q or float(q) > 0:
                return True
        except ValueError:
            continue
    return False


async def error_page(send: Send, status: int, title: str, detail: str) -> None:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status} {escape(title)}</title>"
        f"<h1>{status} {escape(title)}</h1><p>{escape(detail)}</p></html>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def stream_body(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    resp: UpstreamResponse,
    bodyless: bool,
) -> None:
    """Send the upstream's body as it is (a failure before the first byte -> 502/504)."""
    try:
        first = b"" if bodyless else await resp.read()
    except UpstreamError as exc:
        log.warning("upstream failed before the body: %s", exc)
        title = "Gateway Timeout" if exc.status == 504 else "Bad Gateway"
        await error_page(send, exc.status, title, "The site sent a broken answer.")
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if bodyless or resp.complete:
        await send({"type": "http.response.body", "body": first})
        return
    try:
        await send({"type": "http.response.body", "body": first, "more_body": True})
        while chunk := await resp.read():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as exc:  # truncated: leave the response incomplete
        log.warning("upstream failed mid-body, response cut: %s", exc)
        return
    await send({"type": "http.response.body", "body": b""})


@dataclass
class _Codecs:
    decoder: Decoder | None
    encoder: Encoder | None
    headers: list[tuple[bytes, bytes]]


class PageWriter:
    """Writes one rewritten HTML response."""

    def __init__(self, runtime: Any, cache: RewriteCache | None) -> None:
        self.runtime = runtime
        self.cache = cache

    async def serve(
        self,
        request_headers: list[tuple[bytes, bytes]],
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
    ) -> None:
        codecs = self._codecs(request_headers, site, headers, resp)
        if codecs is None:
            if decision.granted >= _ALL:  # nothing to hold back for this visitor
                await stream_body(send, status, headers, resp, False)
            else:
                await error_page(send, 502, "Bad Gateway", _UNSAFE)
            return
        snippet = page_snippet(self.runtime, site, decision, request_headers)
        length = header(resp.headers, b"content-length") or b""
        whole = (
            self.cache is not None
            and status == 200
            and length.isdigit()
            and int(length) <= CACHED_PAGE_MAX
        )
        self.runtime.metrics.rewrites.labels(site=site.id).inc()
        if whole:
            await self._whole(send, site, decision, status, codecs, resp, snippet)
        else:
            await self._streaming(send, site, decision, status, codecs, resp, snippet)

    def _codecs(
        self,
        request_headers: list[tuple[bytes, bytes]],
        site: Site,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
    ) -> _Codecs | None:
        coding = (header(resp.headers, b"content-encoding") or b"").strip().lower()
        if not coding or coding == b"identity":
            return _Codecs(None, None, headers)
        decoder = decoder_for(coding.decode("latin-1"))
        if decoder is None:
            log.error("site %s: HTML in content coding %r cannot be decoded", site.id, coding)
            return None
        if accepts(header(request_headers, b"accept-encoding"), coding):
            return _Codecs(decoder, encoder_for(coding.decode("latin-1")), headers)
        return _Codecs(decoder, None, [(n, v) for n, v in headers if n != b"content-encoding"])

    async def _whole(
        self,
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        codecs: _Codecs,
        resp: UpstreamResponse,
        snippet: Any,
    ) -> None:
        try:
            chunks = []
            while chunk := await resp.read():
                chunks.append(chunk)
            page = b"".join(chunks)
            if codecs.decoder is not None:
                page = codecs.decoder.decode(page) + codecs.decoder.flush()
        except (UpstreamError, DecodeError) as exc:
            log.error("site %s: page could not be read or decoded, not served: %s", site.id, exc)
            await error_page(send, 502, "Bad Gateway", _UNSAFE)
            return
        assert self.cache is not None
        charset, nonce = page_inputs(resp.headers)
        key = (site.id, decision.granted, charset, nonce, hashlib.sha256(page).digest())
        entry = self.cache.get(key)
        if entry is None:
            marker = MarkerSnippet()
            rewriter = make_rewriter(site, decision, marker if snippet else None, charset, nonce)
            output = rewriter.feed(page) + rewriter.finish()
            reason = getattr(rewriter, "passthrough_reason", None)
            try:
                entry = CachedPage.split(output, marker, reason)
            except ValueError:  # the marker was in the page itself: do not cache
                rewriter = make_rewriter(site, decision, snippet, charset, nonce)
                entry = CachedPage((rewriter.feed(page) + rewriter.finish(),), None, reason)
            else:
                self.cache.put(key, entry)
        if entry.passthrough and not decision.granted >= _ALL:
            log.error(
                "site %s: page cannot be rewritten (%s), not served", site.id, entry.passthrough
            )
            await error_page(send, 502, "Bad Gateway", _UNSAFE)
            return
        body = entry.render(snippet)
        if codecs.encoder is not None:
            body = codecs.encoder.encode(body) + codecs.encoder.flush()
        headers = [*codecs.headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _streaming(
        self,
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        codecs: _Codecs,
        resp: UpstreamResponse,
        snippet: Any,
    ) -> None:
        charset, nonce = page_inputs(resp.headers)
        rewriter = make_rewriter(site, decision, snippet, charset, nonce)
        decoder, encoder = codecs.decoder, codecs.encoder
        try:
            first = _process(await resp.read(), decoder, rewriter, encoder)
            if resp.complete:
                first += _finish(decoder, rewriter, encoder)
        except (UpstreamError, DecodeError) as exc:
            log.error("site %s: page could not be read or decoded, not served: %s", site.id, exc)
            await error_page(send, 502, "Bad Gateway", _UNSAFE)
            return
        reason = getattr(rewriter, "passthrough_reason", None)
        if reason and not decision.granted >= _ALL:
            log.error("site %s: page cannot be rewritten (%s), not served", site.id, reason)
            await error_page(send, 502, "Bad Gateway", _UNSAFE)
            return
        await send({"type": "http.response.start", "status": status, "headers": codecs.headers})
        if resp.complete:
            await send({"type": "http.response.body", "body": first})
            return
        try:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            while chunk := await resp.read():
                out = _process(chunk, decoder, rewriter, encoder)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = _finish(decoder, rewriter, encoder)
        except (UpstreamError, DecodeError) as exc:
            log.error("site %s: page failed mid-body, response cut: %s", site.id, exc)
            return
        await send({"type": "http.response.body", "body": tail})


def _process(
    chunk: bytes, decoder: Decoder | None, rewriter: PageRewriter, encoder: Encoder | None
) -> bytes:
    if decoder is not None:
        chunk = decoder.decode(chunk)
    out = rewriter.feed(chunk)
    if encoder is not None:
        out = encoder.encode(out)
    return out


def _finish(decoder: Decoder | None, rewriter: PageRewriter, encoder: Encoder | None) -> bytes:
    out = rewriter.feed(decoder.flush()) if decoder is not None else b""
    out += rewriter.finish()
    if encoder is not None:
        out = encoder.encode(out) + encoder.flush()
    return out
