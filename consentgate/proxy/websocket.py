"""WebSocket upgrades forwarded to the site's upstream (uvicorn side: ASGI websocket).

The upstream side is a ``websockets`` client connection to the configured origin (the
TCP connection always goes there; the Host header is what the site expects). Frames
are pumped both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..config import Settings, Site
from .client import Origin
from .headers import Visitor, request_headers_for_upstream

__all__ = ["forward_websocket"]

log = logging.getLogger("consentgate.proxy")

#: Handshake headers the websockets client writes itself.
_OWN = frozenset(
    {
        b"host",
        b"origin",
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"accept-encoding",
        b"user-agent",
    }
)


async def forward_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    site: Site,
    origin: Origin,
    *,
    visitor: Visitor,
    target: str,
    settings: Settings,
) -> None:
    """Relay one WebSocket to ``origin`` (``target``: the upstream request target)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    fwd = request_headers_for_upstream(
        scope["headers"], visitor, site.upstream_host_header or "", consent_token=""
    )
    host = site.upstream_host_header or visitor.host or origin.netloc
    secure = origin.scheme == "https"
    uri_host = origin.netloc if secure else host
    uri = f"{'wss' if secure else 'ws'}://{uri_host}{target}"
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in fwd if n not in _OWN]
    req_origin = next((v for n, v in scope["headers"] if n == b"origin"), None)
    user_agent = next((v for n, v in scope["headers"] if n == b"user-agent"), None)
    try:
        upstream = await connect(
            uri,
            host=origin.host,
            port=origin.port,
            origin=req_origin.decode("latin-1") if req_origin else None,  # type: ignore[arg-type]
            subprotocols=scope.get("subprotocols") or None,
            additional_headers=headers,
            user_agent_header=user_agent.decode("latin-1") if user_agent else None,
            compression=None,
            proxy=None,
            open_timeout=settings.upstream_connect_timeout,
            max_size=None,
            ping_interval=None,
        )
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        detail = f"status {exc.response.status_code}" if isinstance(exc, InvalidStatus) else exc
        log.warning("websocket upstream %s for site %s: %s", origin.url, site.id, detail)
        await _refuse(scope, send, exc)
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _pump(upstream, receive, send)


async def _pump(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    async def visitor_to_upstream() -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "websocket.disconnect":
                code = _sendable(message.get("code", 1000))
                await upstream.close(code, message.get("reason") or "")
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    async def upstream_to_visitor() -> None:
        try:
            async for data in upstream:
                if isinstance(data, bytes):
                    await send({"type": "websocket.send", "bytes": data})
                else:
                    await send({"type": "websocket.send", "text": data})
        except ConnectionClosed:
            pass
        code = _sendable(upstream.close_code or 1000)
        reason = upstream.close_reason or ""
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})

    tasks = [
        asyncio.create_task(visitor_to_upstream()),
        asyncio.create_task(upstream_to_visitor()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
                await task


def _sendable(code: int) -> int:
    """A close code that may go in a close frame: 1005 (none given) and 1006 (no close
    frame at all) are reserved for reporting; they become 1000 and 1011."""
    return {1005: 1000, 1006: 1011}.get(code, code)


async def _refuse(scope: Scope, send: Send, exc: BaseException) -> None:
    """The visitor's handshake fails as the upstream's did: an HTTP answer with the
    upstream's status (a 401 stays a 401), or 502 when it could not be reached. Without
    the server's ``websocket.http.response`` extension: a close before accepting."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1011})
        return
    status = 502
    if isinstance(exc, InvalidStatus) and 400 <= exc.response.status_code < 600:
        status = exc.response.status_code
    body = json.dumps(
        {"error": {"code": "upstream_refused", "message": f"the site answered {status}"}}
        if status != 502
        else {"error": {"code": "bad_gateway", "message": "the site could not be reached"}}
    ).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})
