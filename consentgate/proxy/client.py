"""A small HTTP/1.1 client for the upstream: asyncio Protocol + httptools.

The proxy talks to a handful of configured origins, so a general-purpose client buys
nothing but overhead. Each connection is an :class:`asyncio.Protocol` whose bytes go
straight into an ``httptools`` (llhttp) response parser; body chunks are queued on the
:class:`UpstreamResponse` (with read-side back-pressure) and connections that end a
message cleanly return to the per-origin idle pool (:mod:`.pool`).

Exceptions::

    UpstreamError              anything that went wrong talking to the upstream
    ├── UpstreamConnectError   could not connect (refused, unreachable)       -> 502
    ├── UpstreamTimeout        connect or read timed out (``phase`` says which) -> 504
    └── UpstreamProtocolError  garbage, oversized headers, reset mid-message    -> 502
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httptools

if TYPE_CHECKING:
    from .pool import UpstreamPool

from ..errors import ConsentGateError

__all__ = [
    "Deadlines",
    "Origin",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "sweep_tick",
]

MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEADER_BYTES = 64 * 1024
#: Buffered body bytes above which the upstream socket stops being read.
HIGH_WATER = 256 * 1024
#: Response heads remembered per pool (byte for byte; see ``_Connection._known_head``).
MAX_KNOWN_HEADS = 256
#: A longer response head is not remembered (nor looked up).
MAX_KNOWN_HEAD_BYTES = 4096


class UpstreamError(ConsentGateError):
    """Talking to the upstream failed."""

    status = 502


class UpstreamConnectError(UpstreamError):
    """No connection could be made."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time; ``phase`` is ``connect`` or ``read``."""

    status = 504

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"upstream {phase} timed out after {seconds:g}s")
        self.phase = phase
        self.seconds = seconds


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not a valid HTTP/1.1 response, or hung up."""


@dataclass(frozen=True)
class Origin:
    """A configured upstream: where to connect and the path prefix to add."""

    scheme: str
    host: str
    port: int
    base_path: str = ""

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be http://host[:port][/path], got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def sweep_tick(timeout: float) -> float:
    """How often :class:`Deadlines` checks: an eighth of the timeout, 10-250 ms."""
    return min(0.25, max(0.01, timeout / 8))


class Deadlines:
    """Read timeouts of the responses being waited for, checked by one periodic sweep.

    A timer per wait (``call_later`` + ``cancel``, twice per proxied request) costs more
    than the sweep: waiting registers a deadline in a dict, and while any are
    registered one callback every ``tick`` seconds fails those that are due. A timeout
    fires between its deadline and one tick later.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop = self._loop = loop
        self.tick = tick
        self._due: dict[UpstreamResponse, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, resp: UpstreamResponse, seconds: float) -> None:
        self._due[resp] = self._loop.time() + seconds
        if self._handle is None:
            self._handle = self._loop.call_later(self.tick, self._sweep)

    def unwatch(self, resp: UpstreamResponse) -> None:
        self._due.pop(resp, None)

    def _sweep(self) -> None:
        self._handle = None
        now = self._loop.time()
        for resp in [r for r, due in self._due.items() if due <= now]:
            del self._due[resp]
            resp._timeout()
        if self._due:
            self._handle = self._loop.call_later(self.tick, self._sweep)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due.clear()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class UpstreamResponse:
    """Status, headers (names lower-cased) and a streamed body from :meth:`read`."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_deadlines",
        "_done",
        "_error",
        "_head_waiter",
        "_header_bytes",
        "_loop",
        "_waiter",
        "eof_framed",
        "head_request",
        "headers",
        "known",
        "read_timeout",
        "status",
    )

    def __init__(
        self,
        conn: _Connection,
        read_timeout: float,
        head_request: bool,
        deadlines: Deadlines | None = None,
    ) -> None:
        self._conn: _Connection | None = conn
        self._loop = asyncio.get_running_loop()
        self._deadlines = deadlines or Deadlines(self._loop, sweep_tick(read_timeout))
        self.read_timeout = read_timeout
        self.head_request = head_request
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head_waiter: asyncio.Future[None] = self._loop.create_future()
        #: True when the body is delimited by the upstream closing the connection.
        self.eof_framed = False
        #: the remembered head this response started with (the same object for the same
        #: head bytes), None when it was parsed
        self.known: object | None = None

    # -- parser callbacks (called from _Connection.data_received) --------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if len(self.headers) >= MAX_RESPONSE_HEADERS or self._header_bytes > (
            MAX_RESPONSE_HEADER_BYTES
        ):
            raise UpstreamProtocolError("upstream response headers too large")
        self.headers.append((name.lower(), value))

    def on_headers_complete(self, status: int) -> None:
        if 100 <= status < 200:  # interim response (100 Continue, 103): skip it
            self.headers = []
            self._header_bytes = 0
            return
        self.status = status
        framed = status in (204, 304) or self.head_request
        if not framed:
            framed = any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers)
        self.eof_framed = not framed
        if not self._head_waiter.done():
            self._head_waiter.set_result(None)

    def on_known_head(self, status: int) -> None:
        """The head was a known one (a final status, framed by its Content-Length)."""
        self.status = status
        if not self._head_waiter.done():
            self._head_waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()
        self._wake()

    def on_complete(self) -> None:
        if self._error is not None:  # failed first (timeout, given up): stays failed, so a
            return  # close-delimited body cut short is never taken for a whole one
        self._done = True
        self._wake()

    def fail(self, error: UpstreamError) -> None:
        if self._done or self._error is not None:
            return
        self._error = error
        if not self._head_waiter.done():
            self._head_waiter.set_exception(error)
            self._head_waiter.exception()  # mark retrieved
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side ----------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self._done

    @property
    def got_headers(self) -> bool:
        return self.status != 0

    async def wait_headers(self) -> None:
        if self._head_waiter.done():
            self._head_waiter.result()
            return
        self._deadlines.watch(self, self.read_timeout)
        try:
            await self._head_waiter
        finally:
            self._deadlines.unwatch(self)

    def _timeout(self) -> None:
        self.fail(UpstreamTimeout("read", self.read_timeout))
        if self._conn is not None:
            self._conn.abort()

    async def read(self) -> bytes:
        """The next body chunk (all buffered bytes joined); ``b""`` at the end."""
        data = await self._read(None)
        assert data is not None
        return data

    async def read_or_idle(self, idle: float) -> bytes | None:
        """Like :meth:`read`, but None when nothing arrived within ``idle`` seconds."""
        return await self._read(idle)

    async def _read(self, idle: float | None) -> bytes | None:
        while True:
            if self._chunks:
                if len(self._chunks) == 1:
                    data = self._chunks.popleft()
                else:
                    data = b"".join(self._chunks)
                    self._chunks.clear()
                self._buffered = 0
                if self._conn is not None and not self._done:
                    self._conn.resume_reading()
                return data
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self._loop.create_future()
            timer = None
            if idle is None:
                self._deadlines.watch(self, self.read_timeout)
            else:
                timer = self._loop.call_later(min(idle, self.read_timeout), _wake, waiter)
            try:
                await waiter
            finally:
                if timer is None:
                    self._deadlines.unwatch(self)
                else:
                    timer.cancel()
                self._waiter = None
            if idle is not None and not self._chunks and not self._done:
                if self._error is not None:
                    raise self._error
                return None

    def unread(self, data: bytes) -> None:
        """Put back a chunk taken with :meth:`read` (to peek at the start of a body)."""
        if data:
            self._chunks.appendleft(data)
            self._buffered += len(data)

    async def iter_body(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    def close(self) -> None:
        """Give up on the rest of the body (closes the connection if unfinished); a read
        after this raises instead of ending the body as if it were complete."""
        conn = self._conn
        if conn is not None and not self._done:
            self.fail(UpstreamProtocolError("the rest of the response was given up"))
            conn.abort()
        self._conn = None


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity
class _KnownHead:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    length: int  # Content-Length
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One upstream connection; serves one request at a time."""

    def __init__(self, pool: UpstreamPool, key: Origin) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.reusable = True
        self.response: UpstreamResponse | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self._paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._head: bytes | None = None  # the first bytes of the response, for its head
        self._left = 0  # body bytes still due of a response framed without the parser
        self._keep_alive = False
        self._interim = False  # a 1xx came first: the first bytes are not the final head
        self._head_fed = 0  # bytes of the response fed before its final head was whole
        #: the request body is still being written: never back to the pool meanwhile
        self.sending = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # bytes while idle: not reusable
            self.abort()
            return
        if self._left:
            self._body(resp, data)
            return
        if self.parser is None:
            if self._known_head(resp, data):
                return
            self.parser = httptools.HttpResponseParser(self)
            self._head = data
        try:
            self.parser.feed_data(data)
            if not resp.got_headers:
                # the parser gathers a header by concatenation (quadratic): a head that
                # does not end within the limit is cut off here, not after it is whole
                self._head_fed += len(data)
                if self._head_fed > MAX_RESPONSE_HEADER_BYTES:
                    raise UpstreamProtocolError("upstream response headers too large")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, UpstreamError) else UpstreamProtocolError(str(exc))
            resp.fail(error)
            self.abort()
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            resp.fail(UpstreamProtocolError(f"invalid upstream response: {exc}"))
            self.abort()
        except UpstreamError as exc:
            resp.fail(exc)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        resp = self.response
        self.response = None
        if resp is not None and not resp.complete:
            if resp.got_headers and resp.eof_framed:
                resp.on_complete()
            else:
                resp.fail(UpstreamProtocolError("upstream closed the connection mid-response"))
        waiter = self._drain
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamProtocolError("upstream closed while we were sending"))
            waiter.exception()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.response is None:  # bytes after the end of the response: never reuse
            self.abort()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.on_header(name, value)

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is None or self.parser is None:
            return
        resp.on_headers_complete(self.parser.get_status_code())
        if resp.status < 200:
            self._interim = True
        if resp.head_request and resp.status >= 200:
            # A HEAD response has no body whatever its headers say.
            self._finish(resp, keep_alive=self.parser.should_keep_alive())
            return
        head, self._head = self._head, None
        if head is not None and resp.status >= 200:
            self._remember_head(resp, head)

    # A response head the parser has seen before, byte for byte, parses the same way:
    # its result (status, headers, Content-Length) is kept, and the next response that
    # starts with the same bytes is framed by its Content-Length without the parser.
    def _remember_head(self, resp: UpstreamResponse, data: bytes) -> None:
        # The key must be this final response's head and nothing else: not after blank
        # lines (llhttp skips CR/LF before a status line, and "\r\n\r\n" would key
        # every such response), not after a 1xx, not one visitor's Set-Cookie, not big.
        if self._interim or not data.startswith(b"HTTP/1."):
            return
        end = data.find(b"\r\n\r\n", 0, MAX_KNOWN_HEAD_BYTES)
        if end < 0 or resp.status in (204, 304) or self.parser is None:
            return
        if any(n == b"set-cookie" for n, _ in resp.headers):
            return
        lengths = [v for n, v in resp.headers if n == b"content-length"]
        if len(lengths) != 1 or not lengths[0].strip().isdigit():
            return
        if any(n == b"transfer-encoding" for n, _ in resp.headers):
            return
        heads = self.pool.heads
        if len(heads) >= MAX_KNOWN_HEADS:
            heads.clear()
        heads[data[: end + 4]] = _KnownHead(
            resp.status,
            tuple(resp.headers),
            int(lengths[0].strip()),
            self.parser.should_keep_alive(),
        )

    def _known_head(self, resp: UpstreamResponse, data: bytes) -> bool:
        """Start a response whose head was parsed before; False when it was not."""
        if resp.head_request or not data.startswith(b"HTTP/1."):
            return False
        end = data.find(b"\r\n\r\n", 0, MAX_KNOWN_HEAD_BYTES)
        if end < 0:
            return False
        known = self.pool.heads.get(data[: end + 4])
        if known is None:
            return False
        resp.headers = list(known.headers)
        resp.known = known
        self._keep_alive = known.keep_alive
        self._left = known.length
        resp.on_known_head(known.status)
        if known.length == 0:
            self._left = 0
            self._body(resp, data[end + 4 :], done=True)
        elif end + 4 < len(data):
            self._body(resp, data[end + 4 :])
        return True

    def _body(self, resp: UpstreamResponse, data: bytes, done: bool = False) -> None:
        """Body bytes of a response framed by its known Content-Length."""
        left = self._left
        if len(data) > left:  # more than the response: the connection is not reusable
            self.reusable = False
            data = data[:left]
        if data:
            left = self._left = left - len(data)
            resp.on_body(data)
        if left == 0 or done:
            self._left = 0
            self._finish(resp, keep_alive=self._keep_alive)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response.on_body(body)

    def on_message_complete(self) -> None:
        resp = self.response
        if resp is None or self.parser is None or resp.status == 0:
            return  # end of an interim (1xx) response
        self._finish(resp, keep_alive=self.parser.should_keep_alive())

    # helpers
    def _finish(self, resp: UpstreamResponse, keep_alive: bool) -> None:
        self.response = None
        self.parser = None
        resp._conn = None
        resp.on_complete()
        if self._paused:
            self.resume_reading()
        if keep_alive and self.reusable and not self.sending and not self.closed:
            self.pool._release(self)
        else:
            self.abort()

    def start(self, resp: UpstreamResponse) -> None:
        self.response = resp
        self.parser = None  # made on the first bytes, unless the head is a known one
        self._head = None
        self._left = 0
        self._interim = False
        self._head_fed = 0

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamProtocolError("upstream connection closed")
        self.transport.write(data)
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            timeout = self.pool.read_timeout
            try:
                await asyncio.wait_for(self._drain, timeout)
            except TimeoutError:
                self.abort()
                raise UpstreamTimeout("write", timeout) from None
            finally:
                self._drain = None

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
