"""Response bodies: streamed through untouched, or decoded, rewritten and re-encoded.

A page is rewritten as it streams: each chunk from the upstream is decoded, rewritten
(or answered from a recorded rewrite of the same bytes, :mod:`.cache`), re-encoded and
sent before the next one is read, so memory stays bounded whatever the page size. A
body that is complete before anything was sent gets a ``Content-Length``; otherwise
the response is chunked.

What is a page, and what is refused, is :mod:`consentgate.page`'s plan: a page the
proxy cannot make safe (undecodable, one the rewriter has to pass through, an XML
document that is not inert, any internal error) is never sent to a visitor who has not
granted everything: the documented 502 and a log line, or, when part of it has gone
out already, the response is cut.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive, Send

from ..config import Site
from ..page import (
    XML_MAX_BYTES,
    Kind,
    PageRewriter,
    SnippetCache,
    UnsafePage,
    content_coding,
    error_page,
    full_consent,
    guard_escape,
    make_rewriter,
    merge_vary,
    read_head,
    refuse,
    xml_refusal,
)
from ..regions import Decision
from ..visit import Runtime
from .cache import PageRun, RewriteCache
from .client import UpstreamError, UpstreamResponse
from .encoding import CODINGS, DecodeError, Decoder, Encoder, decoder_for, encoder_for

__all__ = [
    "HOLD_SECONDS",
    "REENCODE",
    "PageWriter",
    "VisitorWatch",
    "error_page",
    "header",
    "stream_body",
]

log = logging.getLogger("consentgate.proxy")

#: How long a replay waits for the rest of a recorded segment before it answers the
#: bytes it has (live from there): the most a stalling upstream delays what arrived.
HOLD_SECONDS = 0.2
#: Codings offered, in this order, to a visitor who does not accept the upstream's.
REENCODE = ("gzip", "br", "zstd", "deflate")


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


class VisitorWatch:
    """Notices the visitor going away while a response streams.

    Started once a response turns out to need more than one read from the upstream: a
    task waits on ``receive`` for ``http.disconnect`` and then closes the upstream
    response, so the connection is dropped (never returned to the pool) and the rest
    of the page is neither read nor rewritten. The streaming loops check :attr:`gone`
    before each read. Not used for requests with a body (their ``receive`` belongs to
    the upload).
    """

    __slots__ = ("_receive", "_task", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self.gone = False

    def start(self, resp: UpstreamResponse) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(resp))

    async def _watch(self, resp: UpstreamResponse) -> None:
        ended = False
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
            if ended:  # a server that does not wait for the disconnect: cannot watch
                return
            ended = not message.get("more_body", False)
        self.gone = True
        resp.close()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


def _gone(watch: VisitorWatch | None, resp: UpstreamResponse) -> bool:
    """Start watching the visitor (the response streams); True once they left."""
    if watch is None:
        return False
    if watch.gone:
        log.info("visitor gone mid-response: upstream connection closed")
        return True
    watch.start(resp)
    return False


async def stream_body(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    resp: UpstreamResponse,
    bodyless: bool,
    watch: VisitorWatch | None = None,
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
        while not _gone(watch, resp) and (chunk := await resp.read()):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as exc:  # truncated: leave the response incomplete
        if not (watch is not None and watch.gone):
            log.warning("upstream failed mid-body, response cut: %s", exc)
        return
    if watch is not None and watch.gone:
        return
    await send({"type": "http.response.body", "body": b""})


@dataclass
class _Codecs:
    decoder: Decoder | None
    encoder: Encoder | None
    headers: list[tuple[bytes, bytes]]
    coding: str = ""  # the visitor's content coding ("" with no encoder)
    upstream: str = ""  # the upstream's content coding ("" with no decoder)


class PageWriter:
    """Writes one rewritten HTML response, streaming (see :mod:`.cache` for the replay)."""

    def __init__(self, runtime: Runtime, cache: RewriteCache | None) -> None:
        self.runtime = runtime
        self.cache = cache
        self.snippets = SnippetCache(runtime)
        self._counters: dict[str, Any] = {}  # site id -> its rewrites counter
        #: (charset, CSP nonce) per known upstream head (see client.py), bounded
        self._inputs: dict[object, tuple[str | None, str | None]] = {}

    async def serve(
        self,
        request_headers: list[tuple[bytes, bytes]],
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
        target: bytes = b"",
        watch: VisitorWatch | None = None,
        kind: Kind = Kind.HTML,
    ) -> None:
        """Send a page (``kind``: HTML, or XML, see :mod:`consentgate.page`). For a
        visitor without full consent any internal error ends in the refusal."""
        if full_consent(decision):
            await self._serve(
                request_headers, send, site, decision, status, headers, resp, target, watch, kind
            )
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._serve(
                request_headers, tracked, site, decision, status, headers, resp, target, watch, kind
            )
        except Exception as exc:
            if started:
                raise  # part of the page went out: the server cuts the response
            log.exception("site %s: internal error on a page", site.id)
            await refuse(send, site, f"internal error: {exc!r}")

    async def _serve(
        self,
        request_headers: list[tuple[bytes, bytes]],
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
        target: bytes,
        watch: VisitorWatch | None,
        kind: Kind,
    ) -> None:
        everything = full_consent(decision)
        if kind is Kind.XML:
            if everything:  # nothing to hold back for this visitor
                await stream_body(send, status, headers, resp, False, watch)
            else:
                await self._xml(send, site, decision, status, headers, resp)
            return
        codecs = self._codecs(request_headers, site, headers, resp)
        if codecs is None:
            if everything:  # nothing to hold back for this visitor
                await stream_body(send, status, headers, resp, False, watch)
            else:
                await refuse(send, site, "a content coding that cannot be decoded")
            return
        snippet = self.snippets.get(site, decision, request_headers)
        known = resp.known  # a head seen before: its charset and nonce are known too
        inputs = self._inputs.get(known) if known is not None else None
        if inputs is None:
            head = read_head(resp.headers)
            inputs = (head.charset, head.nonce)
            if known is not None:
                if len(self._inputs) >= 512:
                    self._inputs.clear()
                self._inputs[known] = inputs
        charset, nonce = inputs
        key = None
        if self.cache is not None and status == 200:
            key = (site.id, target, decision.granted, charset, nonce, snippet is not None)

        def make(snip: Any) -> PageRewriter:
            return make_rewriter(site, decision, snip, charset, nonce)

        counter = self._counters.get(site.id)
        if counter is None:
            counter = self._counters[site.id] = self.runtime.metrics.rewrites.labels(site=site.id)
        counter.inc()
        run = PageRun(self.cache, key, make, snippet)
        try:
            await self._stream(send, site, decision, status, codecs, resp, run, watch)
        finally:
            run.close()

    async def _xml(
        self,
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
    ) -> None:
        """An XML document for a visitor without full consent: read whole (decoded),
        passed only when inert (:func:`consentgate.page.xml_refusal`), else refused."""
        coding = content_coding(resp.headers)
        decoder = None
        if coding and coding != b"identity":
            decoder = decoder_for(coding.decode("latin-1"))
            if decoder is None:
                await refuse(send, site, "an XML document in a content coding we cannot decode")
                return
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await resp.read():
                if decoder is not None:
                    chunk = decoder.decode(chunk)
                parts.append(chunk)
                size += len(chunk)
                if size > XML_MAX_BYTES:
                    await refuse(send, site, "an XML document too large to check")
                    return
            if decoder is not None:
                parts.append(decoder.flush())
        except (UpstreamError, DecodeError) as exc:
            await refuse(send, site, f"an XML document that could not be read: {exc}")
            return
        body = b"".join(parts)
        reason = xml_refusal(body, site, decision, read_head(resp.headers).charset)
        if reason is not None:
            await refuse(send, site, reason)
            return
        out = [(n, v) for n, v in headers if n != b"content-encoding"]
        out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def _codecs(
        self,
        request_headers: list[tuple[bytes, bytes]],
        site: Site,
        headers: list[tuple[bytes, bytes]],
        resp: UpstreamResponse,
    ) -> _Codecs | None:
        """Decoder for the upstream's coding; encoder for the visitor: the same coding
        when they accept it, else another one they accept (:data:`REENCODE`), else none."""
        coding = content_coding(resp.headers)
        if not coding or coding == b"identity":
            return _Codecs(None, None, headers)
        decoder = decoder_for(coding.decode("latin-1"))
        if decoder is None:
            log.error("site %s: HTML in content coding %r cannot be decoded", site.id, coding)
            return None
        merge_vary(headers, b"Accept-Encoding")  # what the visitor gets depends on it
        accept = header(request_headers, b"accept-encoding")
        name = coding.decode("latin-1")
        if b"," not in coding and accepts(accept, coding):  # a list: encoded once again
            return _Codecs(decoder, encoder_for(name), headers, name, name)
        rest = [(n, v) for n, v in headers if n != b"content-encoding"]
        for other in REENCODE:
            if other in CODINGS and accepts(accept, other.encode()):
                rest.append((b"content-encoding", other.encode()))
                return _Codecs(decoder, encoder_for(other), rest, other, name)
        return _Codecs(decoder, None, rest, "", name)

    async def _stream(
        self,
        send: Send,
        site: Site,
        decision: Decision,
        status: int,
        codecs: _Codecs,
        resp: UpstreamResponse,
        run: PageRun,
        watch: VisitorWatch | None = None,
    ) -> None:
        """Chunks out as they come in. A body that arrived whole before the first byte
        went out is answered with a Content-Length; anything else is sent chunked.
        Once the visitor is gone (``watch``), nothing more is read or rewritten."""
        decoder, encoder = codecs.decoder, codecs.encoder
        everything = full_consent(decision)
        started = False
        while True:
            if started and _gone(watch, resp):
                return
            try:
                if run.holding:
                    data = await resp.read_or_idle(HOLD_SECONDS)
                else:
                    data = await resp.read()
                raw = kept = None
                if data is None:  # a replay waited for the rest of a segment: answer now
                    pieces, end = run.release(), False
                else:
                    end = not data or resp.complete
                    if end and not started and encoder is not None and data:
                        raw = data  # the whole body, as the upstream compressed it
                        kept = run.raw_replay(codecs.upstream, raw, codecs.coding)
                    if kept is None:
                        if decoder is not None and data:
                            data = decoder.decode(data)
                        if not everything:
                            guard_escape(data)
                        pieces = run.feed(data)
                        if end:
                            if decoder is not None:
                                tail = decoder.flush()
                                if not everything:
                                    guard_escape(tail)
                                pieces += run.feed(tail)
                            pieces += run.finish()
                # all of a replay in one piece: its compressed form is kept with it
                whole = end and not started and encoder is not None and run.hit
                if kept is not None:
                    body = kept
                elif whole and (kept := run.encoded(codecs.coding)) is not None:
                    body = kept
                    if raw is not None:  # remember what the upstream sent for it
                        run.keep_encoded(codecs.coding, kept, (codecs.upstream, raw))
                else:
                    body = b"".join(pieces) if len(pieces) != 1 else pieces[0]
                    if encoder is not None and end:
                        body = encoder.encode(body) + encoder.flush()
                        if whole:
                            up = (codecs.upstream, raw) if raw is not None else None
                            run.keep_encoded(codecs.coding, body, up)
                    elif encoder is not None and body:  # synced: decodable as it arrives
                        body = encoder.encode(body) + encoder.sync()
            except (UpstreamError, DecodeError, UnsafePage) as exc:
                if watch is not None and watch.gone:
                    return
                if not started:
                    await refuse(send, site, f"page could not be read or made safe: {exc}")
                else:
                    log.error("site %s: page failed mid-body, response cut: %s", site.id, exc)
                return
            if (body or end) and not everything and (reason := run.passthrough):
                if not started:
                    await refuse(send, site, f"page cannot be rewritten ({reason})")
                else:
                    log.error("site %s: page cannot be rewritten (%s), cut", site.id, reason)
                return
            if not started:
                started = True
                if end:
                    length = (b"content-length", str(len(body)).encode())
                    start = {"type": "http.response.start", "status": status}
                    await send({**start, "headers": [*codecs.headers, length]})
                    await send({"type": "http.response.body", "body": body})
                    return
                await send(
                    {"type": "http.response.start", "status": status, "headers": codecs.headers}
                )
            if end:
                await send({"type": "http.response.body", "body": body})
                return
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
