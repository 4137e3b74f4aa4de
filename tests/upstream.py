"""A small, real HTTP/1.1 upstream for the proxy tests, run on loopback in a thread.

Raw asyncio streams so tests can make it misbehave on purpose. Routes:

- ``/pages/NNN.html`` a corpus page; ``?enc=gzip|br|deflate|zstd|zz`` (``zz``: an encoding
  nobody can decode), ``?chunked=1``, ``?cookies=1`` (sets ``_ga``, ``PHPSESSID`` and
  ``mystery_pref``), ``?type=none`` (no Content-Type), ``?etag=1`` (ETag + 304),
  ``?csp=1`` (a CSP and a report-only policy of the site's own)
- ``/echo`` JSON with the method, target, headers and body it received
- ``/counter`` a page whose body changes on every request
- ``/redirect`` 302 to its own absolute origin; ``/asset.bin`` 64 KiB binary with Range
- ``/gate/NNN.html`` a corpus page (``?chunked=1``, ``?enc=gzip|zstd``) sent in two halves:
  while the gate is held (:meth:`Upstream.hold_gate`) the second half waits for
  :meth:`Upstream.open_gate`
- ``/slow/NAME`` an 8 MiB body in 16 KiB writes 5 ms apart (HTML when NAME ends in
  ``.html``), for visitors who leave mid-page; :attr:`Upstream.slow` says how much of
  each was sent
- faults: ``/stall`` (never answers), ``/stall-body`` (half a body, then silence),
  ``/reset`` (half a body, then RST; ``?small=1``: a short Content-Length; ``?head=1``:
  RST right after the headers),
  ``/garbage`` (not HTTP), ``/huge-headers``,
  ``/then-close`` (answers, then hangs up on the next request of that connection)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import brotli
import zstandard

from tests.support import CORPUS

PAGES = CORPUS / "pages"
ASSET = bytes(range(256)) * 256  # 64 KiB
SLOW_BYTES = 8 * 1024 * 1024  # the body of /slow/ pages


def page_bytes(name: str) -> bytes:
    return (PAGES / name).read_bytes()


class Upstream:
    def __init__(self) -> None:
        self.port = 0
        self.paths: list[str] = []  # every request target seen
        self.counter = 0
        self.gate_cuts: list[int] = []  # where each /gate/ page was split
        self.slow: list[int] = []  # bytes of each /slow/ body sent before it ended
        self._gate: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)

    def hold_gate(self) -> None:
        """From now on /gate/ pages stop after their first half until open_gate()."""

        async def hold() -> None:
            self._gate = asyncio.Event()

        asyncio.run_coroutine_threadsafe(hold(), self._loop).result(10)

    def open_gate(self) -> None:
        async def release() -> None:
            if self._gate is not None:
                self._gate.set()
            self._gate = None

        asyncio.run_coroutine_threadsafe(release(), self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        drop_next = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if drop_next:  # a keep-alive connection the server gave up on
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(x.split(": ", 1)) for x in lines[1:] if x]
                hdict = {k.lower(): v for k, v in headers}
                body = b""
                if "content-length" in hdict:
                    body = await reader.readexactly(int(hdict["content-length"]))
                elif hdict.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                self.paths.append(target)
                drop_next = target == "/then-close"
                keep = await self._route(method, target, headers, hdict, body, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly
            pass
        finally:
            writer.close()

    async def _route(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        h: dict[str, str],
        body: bytes,
        w: asyncio.StreamWriter,
    ) -> bool:
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/stall":
            await asyncio.sleep(3600)
        if path == "/garbage":
            w.write(b"THIS IS NOT HTTP AT ALL\r\n\r\n<html>")
            return False
        if path == "/huge-headers":
            w.write(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 8000 + b"\r\n" * 1)
            w.write(b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n")
            return False
        if path in ("/stall-body", "/reset"):
            page = page_bytes("005.html")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
            w.write(b"Content-Length: %d\r\n\r\n" % (500_000 if q.get("small") else 10**7))
            if not q.get("head"):
                w.write(page[:3000])
            await w.drain()
            if path == "/stall-body":
                await asyncio.sleep(3600)
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
            return False
        if path == "/counter":
            self.counter += 1
            page = b"<!doctype html><html><head><title>n</title></head><body>%d</body></html>"
            return self._send(w, 200, [("Content-Type", "text/html")], page % self.counter, method)
        if path == "/then-close":
            return self._send(w, 200, [("Content-Type", "text/plain")], b"ok", method)
        if path == "/echo":
            echo = {"method": method, "target": target, "headers": headers}
            echo["body"] = body.decode("latin-1")
            data = json.dumps(echo).encode()
            return self._send(w, 200, [("Content-Type", "application/json")], data, method)
        if path == "/redirect":
            loc = f"http://127.0.0.1:{self.port}/pages/003.html?x=1"
            return self._send(w, 302, [("Location", loc)], b"", method)
        if path == "/asset.bin":
            rng = h.get("range", "")
            if rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                start, end = int(a), int(b) if b else len(ASSET) - 1
                extra = [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", f"bytes {start}-{end}/{len(ASSET)}"),
                ]
                return self._send(w, 206, extra, ASSET[start : end + 1], method)
            extra = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
            return self._send(w, 200, extra, ASSET, method)
        if path.startswith("/pages/"):
            return self._page(path[7:], q, h, method, w)
        if path.startswith("/gate/"):
            return await self._gated(path[6:], q, w)
        if path.startswith("/slow/"):
            return await self._slow(path[6:], w)
        return self._send(w, 404, [("Content-Type", "text/plain")], b"no such page", method)

    def _page(
        self, name: str, q: dict[str, str], h: dict[str, str], method: str, w: asyncio.StreamWriter
    ) -> bool:
        try:
            data = page_bytes(name)
        except OSError:
            return self._send(w, 404, [("Content-Type", "text/plain")], b"no", method)
        extra: list[tuple[str, str]] = []
        if q.get("type") != "none":
            extra.append(("Content-Type", "text/html; charset=utf-8"))
        if q.get("etag"):
            extra.append(("ETag", '"v1"'))
            if h.get("if-none-match") in ('"v1"', 'W/"v1"'):
                return self._send(w, 304, extra, b"", "HEAD")
        if q.get("csp"):  # the site's own policies, enforced and report-only
            extra += [
                ("Content-Security-Policy", "script-src 'self' 'nonce-site0'; object-src 'none'"),
                (
                    "Content-Security-Policy-Report-Only",
                    "img-src 'self'; report-uri /their-reports",
                ),
            ]
        if q.get("cookies"):
            extra += [
                ("Set-Cookie", "_ga=GA1.1.123.456; Path=/; Max-Age=63072000; HttpOnly"),
                ("Set-Cookie", "PHPSESSID=abc123; Path=/; HttpOnly"),
                ("Set-Cookie", "mystery_pref=1; Path=/shop"),
            ]
        enc = q.get("enc")
        if enc == "gzip":
            data = gzip.compress(data)
        elif enc == "br":
            data = brotli.compress(data)
        elif enc == "deflate":
            data = zlib.compress(data)
        elif enc == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
        elif enc == "zz":
            data = b"\x00\x01\x02" + data[:100]
        if enc:
            extra.append(("Content-Encoding", enc))
        if q.get("chunked"):
            head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in extra)
            w.write(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            if method != "HEAD":
                for i in range(0, len(data), 7000):
                    part = data[i : i + 7000]
                    w.write(b"%x\r\n%s\r\n" % (len(part), part))
                w.write(b"0\r\n\r\n")
            return True
        return self._send(w, 200, extra, data, method)

    async def _gated(self, name: str, q: dict[str, str], w: asyncio.StreamWriter) -> bool:
        page = page_bytes(name)
        cut = page.rfind(b">", 0, len(page) // 2) + 1  # after a tag, mid-page
        self.gate_cuts.append(cut)
        data = page
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        if q.get("enc") == "gzip":  # a sync flush at the cut: the first half decodes alone
            z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            first = z.compress(page[:cut]) + z.flush(zlib.Z_SYNC_FLUSH)
            data = first + z.compress(page[cut:]) + z.flush()
            cut = len(first)
            head += "Content-Encoding: gzip\r\n"
        elif q.get("enc") == "zstd":  # a flushed block at the cut
            zc = zstandard.ZstdCompressor().compressobj()
            first = zc.compress(page[:cut]) + zc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            data = first + zc.compress(page[cut:]) + zc.flush()
            cut = len(first)
            head += "Content-Encoding: zstd\r\n"
        if q.get("chunked"):
            w.write(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            halves = [b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:cut], data[cut:])]
            halves[1] += b"0\r\n\r\n"
        else:
            w.write(head.encode() + b"Content-Length: %d\r\n\r\n" % len(data))
            halves = [data[:cut], data[cut:]]
        w.write(halves[0])
        await w.drain()
        if self._gate is not None:
            await asyncio.wait_for(self._gate.wait(), 60)
        w.write(halves[1])
        return True

    async def _slow(self, name: str, w: asyncio.StreamWriter) -> bool:
        """A big body (``SLOW_BYTES``) in 16 KiB writes, 5 ms apart; how many bytes went
        out before the connection broke (or all of them) is appended to :attr:`slow`."""
        html = name.endswith(".html")
        unit = page_bytes("005.html") if html else ASSET
        data = (unit * (SLOW_BYTES // len(unit) + 1))[:SLOW_BYTES]
        ctype = "text/html; charset=utf-8" if html else "application/octet-stream"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n"
        sent = 0
        try:
            w.write(head.encode())
            for i in range(0, len(data), 16384):
                w.write(data[i : i + 16384])
                await w.drain()
                sent = i + len(data[i : i + 16384])
                await asyncio.sleep(0.005)
        except ConnectionError:
            self.slow.append(sent)
            raise
        self.slow.append(sent)
        return True

    @staticmethod
    def _send(
        w: asyncio.StreamWriter,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        method: str,
    ) -> bool:
        reason = {200: "OK", 206: "Partial Content", 302: "Found", 304: "Not Modified"}.get(
            status, "X"
        )
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if status != 304:
            lines.append(f"Content-Length: {len(body)}")
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            w.write(body)
        return True


@contextmanager
def running_upstream() -> Iterator[Upstream]:
    up = Upstream()
    up.start()
    try:
        yield up
    finally:
        up.stop()


def refused_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["ASSET", "PAGES", "Path", "Upstream", "page_bytes", "refused_port", "running_upstream"]


class WebSocketUpstream:
    """An echo WebSocket server (``websockets``) in a thread; records handshake headers."""

    def __init__(self) -> None:
        self.port = 0
        self.handshakes: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: object = None

    async def _handler(self, ws: object) -> None:
        from websockets.asyncio.server import ServerConnection
        from websockets.exceptions import ConnectionClosed

        assert isinstance(ws, ServerConnection)
        assert ws.request is not None
        self.handshakes.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
        try:
            async for message in ws:
                await ws.send(message if message != "bye" else "closing")
                if message == "bye":
                    await ws.close(4001, "bye")
        except ConnectionClosed:
            pass

    def start(self) -> None:
        from websockets.asyncio.server import serve

        async def _start() -> None:
            server = await serve(self._handler, "127.0.0.1", 0, subprotocols=["chat", "other"])
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]

        self._thread.start()
        asyncio.run_coroutine_threadsafe(_start(), self._loop).result(10)

    def stop(self) -> None:
        async def _stop() -> None:
            server = self._server
            server.close()  # type: ignore[attr-defined]
            await server.wait_closed()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def running_ws_upstream() -> Iterator[WebSocketUpstream]:
    up = WebSocketUpstream()
    up.start()
    try:
        yield up
    finally:
        up.stop()
