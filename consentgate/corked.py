"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers the moment the app sends
``http.response.start``, and the body with the next message: two ``send`` syscalls per
response (on loopback each one also runs the receiver's TCP path). Here the transport
holds a small write (a head) until the next write, which then goes out together with it
in one ``writelines`` (one ``writev``), or until the end of the current event-loop
iteration, whichever comes first. Nothing is reordered and nothing waits for I/O.

Used by ``consentgate serve`` (:mod:`.server`); falls back to uvicorn's default when
httptools is not installed.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["HOLD_MAX", "CorkedTransport", "protocol_class"]

#: Writes up to this size are held for the next write (response heads are smaller).
HOLD_MAX = 16 * 1024


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


try:
    from uvicorn.protocols.http.httptools_impl import (
        HEADER_RE,
        HEADER_VALUE_RE,
        STATUS_LINE,
        HttpToolsProtocol,
        RequestResponseCycle,
    )
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def protocol_class() -> type[asyncio.Protocol] | str:
    """uvicorn's ``http=`` option: the corked httptools protocol, or ``"auto"``."""
    return "auto" if HttpToolsProtocol is None else CorkedHttpToolsProtocol


if HttpToolsProtocol is not None:

    class LeanCycle(RequestResponseCycle):
        """uvicorn's request/response cycle with a cheaper response head.

        uvicorn checks every header name and value with two regular-expression searches
        (~30 per proxied page) and serializes them one by one; here the same characters
        are refused with one search over all names and one over all values (the patterns
        match single bytes, so this is the same test), and a header list seen before (a
        proxied page's headers repeat) is not checked or serialized again. Everything
        else is uvicorn's ``send``, unchanged.
        """

        async def send(self, message: Any) -> None:
            if self.response_started or self.disconnected or self.flow.write_paused:
                await super().send(message)
                return
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            if self.access_log:  # uvicorn logs the line: let it write the head too
                await super().send(message)
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            content = [STATUS_LINE[status_code]]
            has_connection_close = False
            for lines, events in (
                _rendered(self.default_headers),
                _rendered(message.get("headers", ())),
            ):
                content.append(lines)
                for event, value in events:
                    if event == _LENGTH:
                        if self.chunked_encoding is None:
                            self.expected_content_length = int(value.decode())
                            self.chunked_encoding = False
                    elif event == _CHUNKED:
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                    else:  # Connection: close
                        self.keep_alive = False
                        has_connection_close = True
            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")
            if (
                self.chunked_encoding is None
                and self.scope["method"] != "HEAD"
                and status_code not in (204, 304)
            ):
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
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

    class CorkedHttpToolsProtocol(HttpToolsProtocol):
        """Module level, so ``--workers`` can hand it to its worker processes."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            corked = CorkedTransport(transport, asyncio.get_running_loop())
            super().connection_made(corked)  # type: ignore[arg-type]

        def on_headers_complete(self) -> None:
            cycle = self.cycle
            super().on_headers_complete()
            if self.cycle is not cycle and type(self.cycle) is RequestResponseCycle:
                self.cycle.__class__ = LeanCycle
