"""``ConsentGateMiddleware``: consentgate inside a Starlette/FastAPI (any ASGI) app.

```python
from consentgate.config import load_settings
from consentgate.middleware import ConsentGateMiddleware

app = ConsentGateMiddleware(app, settings=load_settings("consentgate.toml"))
```

Requests under the prefix (``/_consent``) go to consentgate's own endpoints (banner,
consent API, declaration); every other response of the wrapped app that is
``text/html`` is rewritten for the visitor's consent, streaming responses included.

The rewriting half is :class:`consentgate.rewriting.HTMLRewriting` (also used on its own
around the built-in demo site); this module only adds consentgate's endpoints and the
lifespan around the wrapped app.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .app import ConsentGateApp
from .config import Settings
from .rewriting import HTMLRewriting, rewrite_html
from .visit import Runtime

__all__ = ["ConsentGateMiddleware", "HTMLRewriting", "rewrite_html"]


class ConsentGateMiddleware:
    """Serve ``/_consent/*`` and rewrite the wrapped app's HTML responses."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        if settings is None:
            from .config import load_settings

            settings = load_settings()
        self.gate = ConsentGateApp(settings)
        self.runtime: Runtime = self.gate.runtime
        self.app = app
        # the gate routes the prefix to consentgate's endpoints, the rest to the site
        self.gate.site_app = HTMLRewriting(app, self.runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.gate(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Open consentgate's store around the wrapped app's own lifespan."""
        state = {"started": False, "startup_seen": False, "shutdown_seen": False}

        async def receive_(*_: Any) -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                state["startup_seen"] = True
            elif message["type"] == "lifespan.shutdown":
                state["shutdown_seen"] = True
            return message

        async def send_(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                state["started"] = True
            await send(message)

        async with self.gate.lifespan():
            with contextlib.suppress(Exception):
                await self.app(scope, receive_, send_)
            if state["started"] and state["shutdown_seen"]:
                return
            # the wrapped app does not speak lifespan: answer for it
            if not state["startup_seen"]:
                await receive()
            if not state["started"]:
                await send({"type": "lifespan.startup.complete"})
            if not state["shutdown_seen"]:
                await receive()
            await send({"type": "lifespan.shutdown.complete"})
