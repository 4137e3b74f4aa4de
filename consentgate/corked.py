"""The HTTP/1.1 edge: uvicorn's httptools protocol, owned, hardened and corked.

consentgate faces the public internet, so the protocol that reads requests enforces
what nginx enforces before any request reaches the app (figures: docs/proxy.md):

* **limits as bytes arrive**: the request line (414), the header bytes and the header
  count (431) are checked while the head is read, and no more than the head limit is
  ever handed to the parser, so a 32 MiB header costs 40 KiB of parsing, not seconds;
  a chunked body's trailer section likewise (its fields are then dropped);
* **time limits**: a request's headers must arrive within ``request_header_timeout``
  (counted from the connection for the first request: a connection that never sends
  anything is closed), a body may not stall for ``request_body_timeout`` nor average
  below ``request_body_min_rate`` after that (408); idle keep-alive connections close
  after ``keepalive_timeout`` (uvicorn's own timer);
* **one framing**: llhttp (strict) already refuses CL+TE, duplicate or list
  Content-Length, obs-fold and bare LF; here a Transfer-Encoding other than exactly
  ``chunked`` (or in HTTP/1.0), missing, repeated or malformed Host, other HTTP
  versions, CONNECT/TRACE and upgrade requests with a body are refused too;
* **refusals** are the documented JSON error (``{"error": {"code", "message"}}``),
  then the connection closes: the write side is shut and what the client still sends
  is read and dropped for a few seconds (a lingering close), so the answer is not
  lost to a reset while the client is still sending.

And it writes each response with one socket write instead of two: uvicorn writes the
head on ``http.response.start`` and the body with the next message; the
:class:`CorkedTransport` holds a small write (a head) until the next write or the end
of the event-loop iteration, and :class:`LeanCycle` renders a response head with two
regular-expression checks instead of two per header, memoized.

This builds on uvicorn's ``HttpToolsProtocol`` and ``RequestResponseCycle``, which are
not a public API: the supported uvicorn versions are pinned in pyproject.toml and
:data:`UVICORN_FINGERPRINT` is the hash of the uvicorn code this module relies on
(:func:`uvicorn_fingerprint`); tests/test_edge_protocol.py fails when it moves, so an
upgrade is a reviewed change, never a silent one.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from .config import EDGE_LIMITS
from .visitor import valid_host

__all__ = [
    "HOLD_MAX",
    "UVICORN_FINGERPRINT",
    "CorkedTransport",
    "EdgeLimits",
    "EdgeProtocol",
    "protocol_class",
    "uvicorn_fingerprint",
]

#: Writes up to this size are held for the next write (response heads are smaller).
HOLD_MAX = 16 * 1024

#: sha256 of the uvicorn code this module subclasses or copies (uvicorn 0.55.0).
UVICORN_FINGERPRINT = "8b77d05308d7e6b14e79d6735a20ef2afdead31ab457d2964b944b4318c91e7d"

#: Methods answered 405 at the edge: CONNECT (this is not a forward proxy) and TRACE
#: (it would reflect the request, cookies included).
_REFUSED_METHODS = frozenset({b"CONNECT", b"TRACE", b"TRACK"})
_ALLOW = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def uvicorn_fingerprint() -> str:
    """sha256 over the source of the uvicorn code :class:`EdgeProtocol` relies on."""
    parts: list[Any] = [
        HttpToolsProtocol.__init__,
        HttpToolsProtocol.connection_made,
        HttpToolsProtocol.connection_lost,
        HttpToolsProtocol.data_received,
        HttpToolsProtocol.handle_websocket_upgrade,
        HttpToolsProtocol.on_message_begin,
        HttpToolsProtocol.on_url,
        HttpToolsProtocol.on_header,
        HttpToolsProtocol.on_headers_complete,
        HttpToolsProtocol.on_body,
        HttpToolsProtocol.on_message_complete,
        HttpToolsProtocol.on_response_complete,
        HttpToolsProtocol._unset_keepalive_if_required,
        HttpToolsProtocol._should_upgrade,
        RequestResponseCycle.__init__,
        RequestResponseCycle.run_asgi,
        RequestResponseCycle.send,
        RequestResponseCycle.receive,
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(inspect.getsource(part).encode())
    digest.update(HEADER_RE.pattern + HEADER_VALUE_RE.pattern)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The edge's limits and timeouts (settings of the same names, docs/proxy.md)."""

    max_request_line: int = 8192
    max_request_header_bytes: int = 32768
    max_request_headers: int = 100
    request_header_timeout: float = 60.0
    request_body_timeout: float = 60.0
    request_body_min_rate: int = 240
    #: seconds a refused connection is still read (and dropped) before it is closed
    linger: float = 5.0

    @classmethod
    def of(cls, settings: Any) -> EdgeLimits:
        """The limits of ``settings`` (a :class:`~consentgate.config.Settings`); the
        defaults for what it does not set (an app without settings: all defaults)."""
        default = cls()
        return cls(*[getattr(settings, name, getattr(default, name)) for name in _SETTING_NAMES])

    @property
    def head_bytes(self) -> int:
        """Bytes of a request head handed to the parser at most (line, fields, CRLFs)."""
        return self.max_request_line + self.max_request_header_bytes + 4 * self.max_request_headers


#: the settings EdgeLimits reads (uvicorn itself applies keepalive_timeout)
_SETTING_NAMES = tuple(name for name in EDGE_LIMITS if name != "keepalive_timeout")


class CorkedTransport:
    """Wraps an asyncio transport; holds one small write for the next (see module)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif 0 < len(data) <= HOLD_MAX and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def __getattr__(self, name: str) -> Any:  # anything else: the real transport's
        return getattr(self._transport, name)


def protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's ``http=`` option: the edge protocol (httptools is required)."""
    return EdgeProtocol


def _status_line(status: Any) -> bytes:
    """The status line; never raises: a status outside 100-599 (an app's mistake, or an
    upstream's passed on) is written as 502."""
    return STATUS_LINE.get(status) or STATUS_LINE[502]


class LeanCycle(RequestResponseCycle):
    """uvicorn's request/response cycle with a cheaper response head.

    uvicorn checks every header name and value with two regular-expression searches
    (~30 per proxied page) and serializes them one by one; here the same characters
    are refused with one search over all names and one over all values (the patterns
    match single bytes, so this is the same test), and a header list seen before (a
    proxied page's headers repeat) is not checked or serialized again. The rest of
    the head logic is uvicorn 0.55's ``send`` (pinned, see the module docstring).
    """

    async def send(self, message: Any) -> None:
        if self.response_started or self.disconnected or self.flow.write_paused:
            await super().send(message)
            return
        if message["type"] != "http.response.start":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
            )
        status_code = message["status"]
        if status_code not in STATUS_LINE:  # (see _status_line)
            message = {**message, "status": 502}
            status_code = 502
        if self.access_log:  # uvicorn logs the line: let it write the head too
            await super().send(message)
            return
        content = [_status_line(status_code)]
        has_connection_close = False
        chunked, length = self.chunked_encoding, self.expected_content_length
        for lines, events in (
            _rendered(self.default_headers),
            _rendered(message.get("headers", ())),
        ):
            content.append(lines)
            for event, value in events:
                if event == _LENGTH:
                    if chunked is None:
                        length = int(value.decode())
                        chunked = False
                elif event == _CHUNKED:
                    length = 0
                    chunked = True
                else:  # Connection: close
                    self.keep_alive = False
                    has_connection_close = True
        self.response_started = True  # only now: a bad header above gets uvicorn's 500
        self.waiting_for_100_continue = False
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if chunked is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            chunked = True
            content.append(b"transfer-encoding: chunked\r\n")
        self.chunked_encoding, self.expected_content_length = chunked, length
        content.append(b"\r\n")
        self.transport.write(b"".join(content))


_LENGTH, _CHUNKED, _CLOSE = 0, 1, 2
_Rendered = tuple[bytes, tuple[tuple[int, bytes], ...]]
#: header lists already checked and serialized (a proxied page's headers repeat)
_RENDERED: dict[tuple[Any, ...], _Rendered] = {}


def _rendered(headers: Any) -> _Rendered:
    """``name: value`` lines of ``headers`` (names lower-cased), checked as uvicorn
    checks them, and what uvicorn's ``send`` reads from them, in order; memoized."""
    key = tuple(headers)
    try:
        found = _RENDERED.get(key)
    except TypeError:  # [name, value] lists: valid ASGI, not hashable
        return _render(key)
    if found is None:
        found = _render(key)
        if len(_RENDERED) >= 256:
            _RENDERED.clear()
        _RENDERED[key] = found
    return found


def _render(headers: tuple[Any, ...]) -> _Rendered:
    if HEADER_RE.search(b"".join([n for n, _ in headers])):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(b"".join([v for _, v in headers])):
        raise RuntimeError("Invalid HTTP header value.")
    lines: list[bytes] = []
    events: list[tuple[int, bytes]] = []
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            events.append((_LENGTH, value))
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            events.append((_CHUNKED, b""))
        elif name == b"connection" and b"close" in [
            token.lower().strip() for token in value.split(b",")
        ]:
            events.append((_CLOSE, b""))
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines), tuple(events)


class _Refused(Exception):
    """Raised from a parser callback; the refusal is in ``EdgeProtocol._refusal``."""


_Refusal = tuple[int, str, str, tuple[tuple[bytes, bytes], ...]]

# Where the connection is in the current request.
_IDLE, _HEAD, _BODY = 0, 1, 2
# What the connection's timer is for.
_NO_TIMER, _HEAD_TIMER, _BODY_TIMER, _LINGER_TIMER = 0, 1, 2, 3


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the edge's limits, timeouts and framing rules
    (see the module). Module level, so ``--workers`` can hand it to its workers."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = EdgeLimits.of(getattr(self.app, "settings", None))
        self._phase = _IDLE
        self._stopped = False  # refused or handed over: what still arrives is dropped
        self._refusal: _Refusal | None = None
        self._heads_done = 0
        self._head_seen = 0  # bytes handed to the parser for the current head
        self._url_bytes = 0
        self._header_bytes = 0
        self._hosts = 0
        self._host = b""
        self._te: bytes | None = None
        self._length: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = _NO_TIMER
        # request body progress (checked by the body timer)
        self._body_seen = 0
        self._idle_bytes = 0  # body-phase bytes in a row that brought no body
        self._body_base = 0
        self._body_checked = 0
        self._body_start = 0.0
        self._body_last = 0.0

    # -- connection ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport, self.loop))  # type: ignore[arg-type]
        # the first request's head is due within the header timeout of the connection
        self._arm(_HEAD_TIMER, self.limits.request_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._stopped = True
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        self._unset_keepalive_if_required()
        while data:
            if self._phase == _BODY:
                self._feed_body(data)
                break
            room = self.limits.head_bytes - self._head_seen
            if len(data) <= room:
                self._head_seen += len(data)
                self._feed(data)
                break
            # More than a head may hold: the parser gets the head's allowance only,
            # and the rest only if a head ended within it.
            heads = self._heads_done
            self._feed(data[:room])
            if self._stopped:
                return
            if self._heads_done == heads:  # (a long line was refused by on_url already)
                self._refuse(431, "headers_too_large", "the request headers are too large")
                return
            data = data[room:]
        if not self._stopped:
            self._watch()

    def _feed_body(self, data: bytes) -> None:
        """Body bytes. A chunked body ends with a trailer section the parser gathers
        like a head (quadratically, by concatenation): bytes that bring no body are
        capped like a head's."""
        seen = self._body_seen
        self._feed(data)
        if self._te is None or self._stopped or self._phase != _BODY:
            return
        if self._body_seen != seen:
            self._idle_bytes = 0
            return
        self._idle_bytes += len(data)
        if self._idle_bytes > self.limits.head_bytes:
            self._refuse(431, "headers_too_large", "the request trailers are too large")

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade()
        except httptools.HttpParserCallbackError:
            refusal = self._refusal or (400, "bad_request", "malformed HTTP request", ())
            self._refuse(*refusal)
        except httptools.HttpParserError as exc:
            self._refuse(400, "bad_request", f"malformed HTTP request: {exc}")

    def _upgrade(self) -> None:
        self._stopped = True
        self._cancel_timer()
        if self._should_upgrade():
            self.handle_websocket_upgrade()
        elif self.cycle is not None:
            # An upgrade we do not perform (h2c...): served as a plain request (it has
            # no body, see _check), and the connection ends with it.
            self.cycle.keep_alive = False

    # -- parser callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._url_bytes = self._header_bytes = self._hosts = 0
        self._te = self._length = None

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_request_line:
            self._refusal = (414, "uri_too_long", "the request line is too long", ())
            raise _Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.limits
        self._header_bytes += len(name) + len(value) + 4
        if (
            self._header_bytes > limits.max_request_header_bytes
            or len(self.headers) >= limits.max_request_headers
        ):
            self._refusal = (431, "headers_too_large", "the request headers are too large", ())
            raise _Refused
        if self._phase == _BODY:
            return  # a trailer field: counted, then dropped (never forwarded, never seen
            # by the app: uvicorn would append it to the request's headers)
        super().on_header(name, value)
        lowered = self.headers[-1][0]
        if lowered == b"host":
            self._hosts += 1
            self._host = value
        elif lowered == b"transfer-encoding":
            self._te = value if self._te is None else self._te + b"," + value
        elif lowered == b"content-length":
            self._length = value

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._head_seen = 0
        self._cancel_timer()
        refusal = self._check()
        if refusal is not None:
            self._refusal = refusal
            raise _Refused
        self._phase = _BODY
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle and type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = LeanCycle
        self._body_seen = self._body_base = self._body_checked = self._idle_bytes = 0

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _IDLE
        if self._timer_kind == _BODY_TIMER:
            self._cancel_timer()

    def _check(self) -> _Refusal | None:
        """Why this request head is refused, or None."""
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            return (505, "http_version_not_supported", "only HTTP/1.1 and 1.0 are served", ())
        method = parser.get_method()
        if method in _REFUSED_METHODS:
            message = f"{method.decode('ascii')} is not allowed"
            return (405, "method_not_allowed", message, ((b"allow", _ALLOW),))
        if self._hosts > 1:
            return (400, "bad_request", "more than one Host header", ())
        if self._hosts == 0 and version == "1.1":
            return (400, "bad_request", "an HTTP/1.1 request needs a Host header", ())
        if self._hosts and not valid_host(self._host.strip()):
            return (400, "bad_request", "the Host header is not a valid host[:port]", ())
        te = self._te
        if te is not None:
            if version == "1.0":
                return (400, "bad_request", "Transfer-Encoding in an HTTP/1.0 request", ())
            if te.strip().lower() != b"chunked":
                return (400, "bad_request", "only Transfer-Encoding: chunked is accepted", ())
        if parser.should_upgrade() and (te is not None or self._length not in (None, b"0")):
            return (400, "bad_request", "an upgrade request cannot carry a body", ())
        return None

    # -- timers -------------------------------------------------------------------------
    def _arm(self, kind: int, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_kind = kind
        self._timer = self.loop.call_later(seconds, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_kind = _NO_TIMER

    def _watch(self) -> None:
        """After the bytes of one read: time the part of a request still due."""
        phase, kind = self._phase, self._timer_kind
        if phase == _HEAD and kind != _HEAD_TIMER:
            self._arm(_HEAD_TIMER, self.limits.request_header_timeout)
        elif phase == _BODY and kind != _BODY_TIMER:
            self._body_start = self._body_last = self.loop.time()
            self._body_base = self._body_checked = self._body_seen
            self._arm(_BODY_TIMER, self._body_tick)

    @property
    def _body_tick(self) -> float:
        """How often a body's progress is checked: a timeout fires at most a second late."""
        return max(0.05, min(1.0, self.limits.request_body_timeout / 4))

    def _on_timer(self) -> None:
        kind = self._timer_kind
        self._timer = None
        self._timer_kind = _NO_TIMER
        if kind == _LINGER_TIMER or self.transport.is_closing():
            self.transport.close()
        elif kind == _HEAD_TIMER:
            if self._phase == _HEAD:
                self._refuse(408, "request_timeout", "the request headers took too long")
            else:  # a connection that never started a request
                self._stopped = True
                self.transport.close()
        elif kind == _BODY_TIMER and self._phase == _BODY:
            self._check_body()

    def _check_body(self) -> None:
        limits = self.limits
        now = self.loop.time()
        if self.flow.read_paused:  # we stopped reading (the app is behind): not stalled
            self._body_start = self._body_last = now
            self._body_base = self._body_seen
        elif self._body_seen != self._body_checked:
            self._body_last = now
        self._body_checked = self._body_seen
        late = now - self._body_start - limits.request_body_timeout
        stalled = now - self._body_last >= limits.request_body_timeout
        slow = late > 0 and self._body_seen - self._body_base < late * limits.request_body_min_rate
        if stalled or slow:
            self._refuse(408, "request_timeout", "the request body is too slow")
        else:
            self._arm(_BODY_TIMER, self._body_tick)

    # -- refusing -------------------------------------------------------------------------
    def _refuse(
        self, status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        """Answer ``status`` with the JSON error and close; nothing more is parsed."""
        self._stopped = True
        self._cancel_timer()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and self._phase == _BODY:
            self.transport.close()  # answered already; the rest of its body never came
            return
        if cycle is not None and not cycle.response_complete:
            if self._phase != _BODY:
                # a pipelined request went wrong while the one before it is answered:
                # that answer completes, then the connection closes
                cycle.keep_alive = False
                return
            if cycle.response_started:  # its body broke after the answer began
                self.transport.close()
                return
            cycle.disconnected = True  # the app sees http.disconnect; its sends are void
            cycle.message_event.set()
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        head = [
            _status_line(status),
            *[name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers],
            *[name + b": " + value + b"\r\n" for name, value in headers],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"cache-control: no-store\r\n",
            b"connection: close\r\n\r\n",
        ]
        transport = self.transport
        transport.write(b"".join(head) + body)
        if transport.can_write_eof():
            # Lingering close: our side is done; what the client still sends is read
            # and dropped until it closes or ``linger`` passes, so the answer is not
            # lost to a reset (closing with unread bytes sends RST).
            transport.write_eof()
            self.flow.resume_reading()
            self._arm(_LINGER_TIMER, self.limits.linger)
        else:
            transport.close()
