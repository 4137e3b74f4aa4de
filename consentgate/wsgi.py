"""``ConsentGateWSGI``: consentgate inside a Django or Flask (any WSGI) application.

```python
# Django: wsgi.py
from django.core.wsgi import get_wsgi_application
from consentgate.config import load_settings
from consentgate.wsgi import ConsentGateWSGI

application = ConsentGateWSGI(get_wsgi_application(), load_settings("consentgate.toml"))

# Flask
app.wsgi_app = ConsentGateWSGI(app.wsgi_app, load_settings("consentgate.toml"))
```

The same two halves as the ASGI :class:`~consentgate.middleware.ConsentGateMiddleware`,
and the same code behind them; this module only carries WSGI to them:

* **consentgate's endpoints** (``/_consent/*``, ``/.well-known/gpc.json``) are the
  ASGI app itself (:class:`~consentgate.app.ConsentGateApp`), run on an event loop in
  a thread of each worker process (started on the process's first request, so a
  pre-forking server such as gunicorn gets one per worker; the consent log is opened
  there). The request body is read from ``wsgi.input`` as the endpoint asks for it,
  the response is streamed back.
* **pages** of the wrapped application are planned by the page pipeline the ASGI
  middleware uses (site, the visitor's decision, ``Set-Cookie`` policy, rewriter and
  banner snippet, CSP nonce, ``Vary``/``ETag``), in the WSGI thread: the rewriter is
  plain synchronous code. Bodies stream: each block of the application's iterable is
  rewritten and handed on before the next one is asked for (a list or tuple body is
  rewritten whole and gets an exact ``Content-Length``). ``close()`` of the
  application's iterable is always called. ``HEAD`` gets the headers a ``GET`` would
  (cookies filtered, no ``Content-Length`` for a page whose length rewriting changes)
  and no body.

Fail closed: a page this adapter cannot make safe for a visitor who has not granted
every category (compressed HTML, a charset the rewriter must pass through, or any
internal error while planning or rewriting it) is refused with the proxy's ``502``
page, never forwarded; an error after the first bytes went out cuts the response
(the server closes the connection). The application's own exceptions propagate to
the server unchanged.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol

from starlette.types import Message, Scope

from .app import GPC_WELL_KNOWN, ConsentGateApp, Runtime
from .config import Settings
from .consent import CATEGORIES
from .middleware import _Responder
from .proxy.pages import UNSAFE_PAGE, error_body

__all__ = ["ConsentGateWSGI", "asgi_scope"]

log = logging.getLogger("consentgate.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Headers = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_ALL = frozenset(CATEGORIES)
_READ = 64 * 1024


def asgi_scope(environ: dict[str, Any]) -> Scope:
    """The ASGI ``http`` scope of a WSGI request (PEP 3333 -> ASGI 3)."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    raw_path = environ.get("PATH_INFO", "").encode("latin-1")  # PEP 3333: bytes as latin-1
    client = None
    if environ.get("REMOTE_ADDR"):
        client = (environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0))
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": protocol.partition("/")[2] or "1.1",
        "method": environ.get("REQUEST_METHOD", "GET").upper(),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "headers": headers,
        "client": client,
        "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
        "state": {},
    }


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _str_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _refuse(start_response: StartResponse, exc_info: ExcInfo | None = None) -> list[bytes]:
    body = error_body(502, "Bad Gateway", UNSAFE_PAGE)
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    start_response("502 Bad Gateway", headers, exc_info)
    return [body]


class _Loop:
    """One event loop thread per process, with consentgate's lifespan open on it."""

    def __init__(self, gate: ConsentGateApp) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="consentgate-wsgi", daemon=True
        )
        self.thread.start()
        self.lifespan = gate.lifespan()
        try:
            self.run(self.lifespan.__aenter__()).result()
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    def run(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        try:
            self.run(self.lifespan.__aexit__(None, None, None)).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            if not self.thread.is_alive():
                self.loop.close()


class _Process:
    """What one process of the server holds: its own :class:`ConsentGateApp` (store,
    chain segment, metrics) and, once an endpoint was asked for, its event loop. A
    pre-forking server (gunicorn ``--preload``) builds the middleware in its master; each
    worker then builds its own here, never sharing the master's chain segment."""

    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.gate = ConsentGateApp(settings)
        self.loop: _Loop | None = None


class ConsentGateWSGI:
    """Serve ``/_consent/*`` and rewrite the wrapped WSGI application's HTML pages."""

    def __init__(self, app: WSGIApp, settings: Settings | None = None) -> None:
        if settings is None:
            from .config import load_settings

            settings = load_settings()
        self.app = app
        self.settings = settings
        self.prefix = settings.prefix
        self._lock = threading.Lock()
        self._process = _Process(settings)  # settings mistakes surface at import time

    def _here(self) -> _Process:
        process = self._process
        if process.pid == os.getpid():
            return process
        with self._lock:
            if self._process.pid != os.getpid():  # forked: a fresh gate for this process
                self._process = _Process(self.settings)
            return self._process

    @property
    def runtime(self) -> Runtime:
        """This process's runtime (settings, codec, store, metrics)."""
        return self._here().gate.runtime

    # -- consentgate's own endpoints, on the event loop ----------------------------------
    def _event_loop(self) -> tuple[ConsentGateApp, _Loop]:
        process = self._here()
        if process.loop is None:
            with self._lock:
                if process.loop is None:
                    process.loop = _Loop(process.gate)
                    atexit.register(process.loop.close)
        return process.gate, process.loop

    def close(self) -> None:
        """Close the consent log and stop the event loop (also run at process exit)."""
        process = self._here()
        with self._lock:
            loop, process.loop = process.loop, None
        if loop is not None:
            atexit.unregister(loop.close)
            loop.close()

    def _owns(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return True
        return path == GPC_WELL_KNOWN and self.runtime.site_for(scope).gpc_well_known

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        scope = asgi_scope(environ)
        if self._owns(scope):
            return self._endpoint(scope, environ, start_response)
        return _Page(self, scope, environ, start_response)

    def _endpoint(
        self, scope: Scope, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        gate, loop = self._event_loop()
        messages: queue.SimpleQueue[Message | BaseException | None] = queue.SimpleQueue()
        body = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        left: int | None = int(length) if length.isdigit() else None
        if left is None and not environ.get("wsgi.input_terminated"):
            left = 0  # no Content-Length and no framing the server ends for us: no body
        done = False

        async def receive() -> Message:
            nonlocal left, done
            if done:
                return {"type": "http.disconnect"}
            size = _READ if left is None else min(_READ, left)
            chunk = await loop.loop.run_in_executor(None, body.read, size) if size else b""
            if left is not None:
                left -= len(chunk)
            done = not chunk or left == 0
            return {"type": "http.request", "body": chunk, "more_body": not done}

        async def send(message: Message) -> None:
            messages.put(message)

        async def serve() -> None:
            try:
                await gate(scope, receive, send)
            except BaseException as exc:
                messages.put(exc)
                raise
            finally:
                messages.put(None)

        task = loop.run(serve())
        first = messages.get()
        if not isinstance(first, dict) or first["type"] != "http.response.start":
            task.cancel()
            log.error("consentgate endpoint %s failed before answering: %r", scope["path"], first)
            error = b'{"error":{"code":"internal_error","message":"internal error"}}'
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "application/json"), ("Content-Length", str(len(error)))],
            )
            return [error]
        start_response(_status_line(first["status"]), _str_headers(first.get("headers", [])))
        return _EndpointBody(messages, task)


class _EndpointBody:
    """The body of an endpoint's ASGI response, as the loop sends it."""

    def __init__(self, messages: queue.SimpleQueue[Any], task: Future[None]) -> None:
        self.messages = messages
        self.task = task

    def __iter__(self) -> Iterator[bytes]:
        while True:
            message = self.messages.get()
            if message is None:
                return
            if isinstance(message, BaseException):
                raise RuntimeError("consentgate endpoint failed mid-response") from message
            if message["type"] == "http.response.body":
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

    def close(self) -> None:
        self.task.cancel()


class _Held:
    """What the application passed to ``start_response``, held until the plan is made."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: Headers = []
        self.sent = False
        self.written: list[bytes] = []  # the legacy write() callable's bytes

    def start_response(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: too late to change
        if self.status and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers = status, list(headers)
        return self.written.append


class _Page:
    """One page of the wrapped application, streamed through the page pipeline."""

    def __init__(
        self,
        gate: ConsentGateWSGI,
        scope: Scope,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self.gate = gate
        self.scope = scope
        self.downstream = start_response
        self.held = _Held()
        self.head = scope["method"] == "HEAD"
        # the wrapped application runs here, in the server's thread, as it would alone
        self.result: Iterable[bytes] = gate.app(environ, self.held.start_response)
        self.plan = _Responder(gate.runtime, scope, _no_send)  # this process's runtime
        self.rewriter: Any = None
        self.declared: int | None = None  # the application's Content-Length
        self.full = False

    def __iter__(self) -> Iterator[bytes]:
        blocks = _AppBlocks(self.result)
        first: list[bytes] = []
        # PEP 3333: start_response may come with the first block of a generator
        try:
            while not self.held.status and (block := next(blocks, None)) is not None:
                first.append(block)
        except _AppFailed as failed:
            raise failed.error from None
        if not self.held.status:
            raise RuntimeError("the WSGI application returned without calling start_response")
        source = itertools.chain(self.held.written, first, blocks)
        ready: list[bytes] = []  # rewritten bytes before the headers go out
        ended = False
        try:
            headers = self._plan()
            if self.rewriter is not None and not self.head:
                # Rewrite until there is output before the headers go out, so a page
                # found unsafe while sniffing is still refused; a body known to be
                # whole (a list, or the declared Content-Length read) is rewritten all
                # at once and gets an exact Content-Length.
                whole = isinstance(self.result, list | tuple) or _single(self.result)
                fed, ended = 0, True
                for block in source:
                    fed += len(block)
                    if out := self._rewrite(block, final=False):
                        ready.append(out)
                    if self.declared is not None and fed >= self.declared:
                        break
                    if out and not whole:
                        ended = False
                        break
                if ended:
                    ready.append(self._rewrite(b"", final=True))
                    headers.append(("Content-Length", str(sum(map(len, ready)))))
        except _AppFailed as failed:
            raise failed.error from None  # the application's own error, as it raised it
        except _Refused:
            yield from _refuse(self.downstream)
            return
        except Exception:
            if self.full:
                raise
            log.exception("page %s could not be made safe; refused", self.scope["path"])
            yield from _refuse(self.downstream, sys.exc_info())  # type: ignore[arg-type]
            return
        self.downstream(self.held.status, headers)
        self.held.sent = True
        if self.head:
            yield b""  # the headers go out as they are (no Content-Length: 0 added)
            return
        if self.rewriter is None:
            yield from source
            return
        yield from ready
        if ended:
            return
        try:
            for block in source:
                yield self._rewrite(block, final=False)
            yield self._rewrite(b"", final=True)
        except _AppFailed as failed:
            raise failed.error from None
        # any other error here propagates: the server cuts the response

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()

    def _plan(self) -> Headers:
        """Cookie policy, decision and rewriter for the held headers (the ASGI pipeline)."""
        status = int(self.held.status.split(None, 1)[0])
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.held.headers]
        start: Message = {"type": "http.response.start", "status": status, "headers": raw}
        start = self.plan._filter_cookies(start)
        _site, decision = self.plan._decision()
        self.full = decision.granted >= _ALL
        self.rewriter = self.plan.rewriter = self.plan._rewriter_for(start)
        self.declared = _content_length(raw)
        headers = start["headers"]
        if self.rewriter is None:
            if not self.full and _compressed_html(status, headers):
                log.error("compressed HTML from the application cannot be rewritten; refused")
                raise _Refused
            return _str_headers(headers)
        return _str_headers((k, v) for k, v in headers if k != b"content-length")

    def _rewrite(self, block: bytes, final: bool) -> bytes:
        rewriter = self.rewriter
        out = rewriter.feed(block)
        if final:
            out += rewriter.finish()
            self.plan._count()
        if rewriter.passthrough_reason and not self.full:
            log.error("page cannot be rewritten (%s); refused", rewriter.passthrough_reason)
            raise _Refused
        return bytes(out)


class _Refused(Exception):
    """The page cannot be made safe for this visitor (handled inside this module)."""


class _AppFailed(Exception):
    """The wrapped application's iterable raised ``error`` (re-raised unchanged)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _AppBlocks:
    """The application's blocks; its own errors come out wrapped in :class:`_AppFailed`
    so they are told apart from consentgate's."""

    def __init__(self, result: Iterable[bytes]) -> None:
        self.blocks = iter(result)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.blocks)
        except StopIteration:
            raise
        except Exception as exc:
            raise _AppFailed(exc) from exc


def _single(result: Iterable[bytes]) -> bool:
    """PEP 3333: an iterable with a length of 1 is the whole body in one block."""
    try:
        return len(result) == 1  # type: ignore[arg-type]
    except TypeError:
        return False


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k == b"content-length" and v.strip().isdigit():
            return int(v)
    return None


def _compressed_html(status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    html = encoded = False
    for k, v in headers:
        if k == b"content-type":
            html = v.lower().lstrip().startswith(b"text/html")
        elif k == b"content-encoding":
            encoded = v.strip().lower() not in (b"", b"identity")
    return html and encoded and status not in (204, 304)


async def _no_send(message: Message) -> None:  # pragma: no cover - never called
    raise AssertionError("the WSGI adapter sends through start_response")
