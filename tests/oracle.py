"""Response variants served the same way to a browser directly and through consentgate.

A :class:`Variant` is what an upstream answers: status, header lines (duplicates and
odd values kept as they are), the body as sent on the wire (content-coded, possibly
broken) and how it is framed and cut into writes. :class:`RawUpstream` serves variants
over a real loopback socket, byte for byte (a plain HTTP server would normalise what
matters here); :func:`variant_app` replays the same variant as an ASGI app, for the
middleware. Both look the variant up by request path in one shared registry.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import brotli
from starlette.types import Receive, Scope, Send

TRACKER = "https://www.googletagmanager.com/gtag/js?id=G-ORACLE"
#: the page's tracker: a script loaded from Google's host, answered by a local fake
HTML_TRACKER = f'<script src="{TRACKER}"></script>'
XHTML_NS = "http://www.w3.org/1999/xhtml"


@dataclass
class Variant:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    framing: str = "length"  # length | chunked | close
    pieces: tuple[int, ...] = ()  # sizes of the first writes (the rest in one)
    reason: str = "OK"

    def chunks(self) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        for size in self.pieces:
            if pos >= len(self.body):
                break
            out.append(self.body[pos : pos + size])
            pos += size
        if pos < len(self.body) or not out:
            out.append(self.body[pos:])
        return out


def encode(body: bytes, coding: str) -> tuple[bytes, list[tuple[str, str]]]:
    """The body in a content coding (``broken-gzip`` is gzip cut short) and its header."""
    if coding == "identity":
        return body, []
    if coding == "gzip":
        return gzip.compress(body), [("Content-Encoding", "gzip")]
    if coding == "br":
        return brotli.compress(body), [("Content-Encoding", "br")]
    if coding == "deflate":
        return zlib.compress(body), [("Content-Encoding", "deflate")]
    if coding == "deflate-raw":
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return c.compress(body) + c.flush(), [("Content-Encoding", "deflate")]
    if coding == "broken-gzip":
        whole = gzip.compress(body)
        return whole[: len(whole) // 2], [("Content-Encoding", "gzip")]
    if coding == "unknown":
        return body, [("Content-Encoding", "x-unheard-of")]
    raise ValueError(coding)


class Registry:
    def __init__(self) -> None:
        self._variants: dict[str, Variant] = {}
        self._n = 0
        self._lock = threading.Lock()

    def add(self, variant: Variant) -> str:
        with self._lock:
            self._n += 1
            path = f"/v{self._n}"
            self._variants[path] = variant
        return path

    def get(self, path: str) -> Variant | None:
        return self._variants.get(path.split("?", 1)[0])


class RawUpstream:
    """A loopback HTTP/1.1 server writing each variant's bytes exactly."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            socket.create_connection(self.sock.getsockname(), timeout=1).close()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            conn, _ = self.sock.accept()
            if self._stop:
                conn.close()
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
            method, path = request_line.split(" ")[:2]
            variant = self.registry.get(path)
            try:
                if variant is None:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    self._answer(conn, method, variant)
            except OSError:
                return  # the client went away (a refusal does not read the rest)

    @staticmethod
    def _answer(conn: socket.socket, method: str, v: Variant) -> None:
        head = f"HTTP/1.1 {v.status:03d} {v.reason}\r\n"
        head += "".join(f"{k}: {val}\r\n" for k, val in v.headers)
        if v.framing == "length":
            head += f"Content-Length: {len(v.body)}\r\n"
        elif v.framing == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
        head += "Connection: close\r\n\r\n"
        conn.sendall(head.encode("latin-1"))
        if method == "HEAD":
            return
        chunks = v.chunks()
        for i, chunk in enumerate(chunks):
            if v.framing == "chunked":
                if chunk:
                    conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                conn.sendall(chunk)
            if i + 1 < len(chunks):
                time.sleep(0.01)  # separate reads on the other side
        if v.framing == "chunked":
            conn.sendall(b"0\r\n\r\n")


def variant_app(registry: Registry):  # type: ignore[no-untyped-def]
    """An ASGI app answering each variant as an app would: same status, header lines and
    body bytes, in the same pieces (framing is the server's business)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        variant = registry.get(scope["path"])
        if variant is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in variant.headers]
        if variant.framing == "length":
            headers.append((b"content-length", str(len(variant.body)).encode()))
        await send({"type": "http.response.start", "status": variant.status, "headers": headers})
        chunks = variant.chunks()
        for i, chunk in enumerate(chunks):
            more = i + 1 < len(chunks)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


@contextlib.contextmanager
def running_raw_upstream(registry: Registry) -> Iterator[RawUpstream]:
    server = RawUpstream(registry)
    server.start()
    try:
        yield server
    finally:
        server.close()
