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
  a thread of each worker process (started on the process's first request for one, so
  a pre-forking server such as gunicorn gets one per worker; the consent log is opened
  there). Each process has its own ``ConsentGateApp`` (store, chain segment, metrics),
  also when the middleware was built before the fork. The request body is read from
  ``wsgi.input`` as the endpoint asks for it; the response is streamed back.
* **pages** of the wrapped application go through the one page plan
  (:class:`~consentgate.rewriting.HTMLRewriting` over :mod:`consentgate.page`): the
  browser's reading of the type, rewriting, refusals, ``Set-Cookie`` policy, nonce,
  ``Vary``/``ETag``. Its coroutine is driven step by step in the server's thread
  (it only awaits its ``send``, which collects): a bridge hands it the application's
  response as ASGI messages, one block at a time, pausing after each so what the plan
  sent on reaches the server before the next block is asked for. A body known whole
  (a list or tuple, or one block) is handed over at once and gets an exact
  ``Content-Length``. ``close()`` of the application's iterable is always called;
  ``HEAD`` gets the plan's headers and no body.

Fail closed: what the plan refuses (the documented ``502``) reaches the server as it
is; an error escaping the plan before the headers went out is refused the same way,
never turned into the application's page; after that the response is cut (the server
closes the connection). The application's own exceptions propagate to the server
unchanged.
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
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
from concurrent.futures import Future
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol

from starlette.types import Message, Receive, Scope, Send

from .app import GPC_WELL_KNOWN, ConsentGateApp
from .config import Settings
from .page import REFUSAL, error_page
from .rewriting import HTMLRewriting
from .visit import Runtime

__all__ = ["ConsentGateWSGI", "asgi_scope"]

log = logging.getLogger("consentgate.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Headers = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

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
    path = environ.get("PATH_INFO", "").encode("latin-1")  # PEP 3333: bytes as latin-1
    # the path as sent (still percent-encoded), when the server says: gunicorn's RAW_URI,
    # uWSGI's and Apache's REQUEST_URI
    sent = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    raw_path = sent.partition("?")[0].encode("latin-1") if sent.startswith("/") else path
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
        "path": path.decode("utf-8", "replace"),
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
    """The page plan's refusal (the documented 502 page), given to the server."""
    out: list[Message] = []

    async def send(message: Message) -> None:
        out.append(message)

    _run_now(error_page(send, 502, "Bad Gateway", REFUSAL))
    start, body = out
    start_response(_status_line(start["status"]), _str_headers(start["headers"]), exc_info)
    return [body["body"]]


def _run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits (it only sends to a list) to its end."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("a coroutine expected to run without waiting waited")


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
        #: the page plan the ASGI middleware uses, around the per-request WSGI bridge
        self.rewriting = HTMLRewriting(_bridge_app, self.gate.runtime)


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
    """What the application passed to ``start_response``, until the page plan sends it."""

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


class _Pause:
    """Awaited by the bridge after each block: hands control back to the WSGI iterator."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


class _AppFailed(Exception):
    """The wrapped application's iterable raised ``error`` (re-raised unchanged)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Page:
    """One page of the wrapped application, through the ASGI page plan
    (:class:`~consentgate.rewriting.HTMLRewriting`), driven step by step from the
    server's thread: the plan's coroutine runs until the bridge has handed it one
    block, then what it sent on is given to the server, then the next block."""

    def __init__(
        self,
        wsgi: ConsentGateWSGI,
        scope: Scope,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self.downstream = start_response
        self.held = _Held()
        self.head = scope["method"] == "HEAD"
        self.started = False
        # the wrapped application runs here, in the server's thread, as it would alone
        self.result: Iterable[bytes] = wsgi.app(environ, self.held.start_response)
        self.scope = {**scope, _BRIDGE: self}
        self.rewriting = wsgi._here().rewriting

    # -- the ASGI side: the application's response as ASGI messages ----------------------
    async def bridge(self, send: Send) -> None:
        blocks = self._blocks()
        first: list[bytes] = []
        while not self.held.status and (block := next(blocks, None)) is not None:
            first.append(block)
        if not self.held.status:
            raise RuntimeError("the WSGI application returned without calling start_response")
        status = int(self.held.status.split(None, 1)[0])
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.held.headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        source = itertools.chain(self.held.written, first, blocks)
        if isinstance(self.result, list | tuple) or _single(self.result):
            # the whole body at once: the plan gives it an exact Content-Length
            await send({"type": "http.response.body", "body": b"".join(source)})
            return
        for block in source:
            await send({"type": "http.response.body", "body": block, "more_body": True})
            await _Pause()
        await send({"type": "http.response.body", "body": b""})

    def _blocks(self) -> Iterator[bytes]:
        """The application's blocks; its own errors wrapped so they are told apart."""
        iterator = iter(self.result)
        while True:
            try:
                block = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise _AppFailed(exc) from exc
            yield block

    # -- the WSGI side -------------------------------------------------------------------
    def __iter__(self) -> Iterator[bytes]:
        out: list[Message] = []

        async def send(message: Message) -> None:
            out.append(message)

        async def nothing() -> Message:  # the application read the request already
            return {"type": "http.disconnect"}

        plan = self.rewriting(self.scope, nothing, send)
        try:
            done = False
            while not done:
                try:
                    waited = plan.send(None)
                except StopIteration:
                    done = True
                else:
                    if waited is not None:  # only the bridge's pause may suspend the plan
                        raise RuntimeError(f"the page plan waited for {waited!r}")
                body = self._emit(out)
                if self.started and (body or done):
                    yield b"" if self.head else body
        except _AppFailed as failed:
            raise failed.error from None  # the application's own error, as it raised it
        except Exception:
            if self.started:
                raise  # part of the page went out: the server cuts the response
            log.exception("page %s could not be made safe; refused", self.scope["path"])
            yield from _refuse(self.downstream, sys.exc_info())  # type: ignore[arg-type]
        finally:
            plan.close()

    def _emit(self, out: list[Message]) -> bytes:
        """Hand the plan's messages to the server; the body bytes to yield."""
        body: list[bytes] = []
        for message in out:
            if message["type"] == "http.response.start":
                headers = _str_headers(message.get("headers", []))
                self.downstream(_status_line(message["status"]), headers)
                self.started = self.held.sent = True
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
        out.clear()
        return b"".join(body)

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


#: scope key of the page being served (read by :func:`_bridge_app`)
_BRIDGE = "consentgate.wsgi.page"


async def _bridge_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The "application" the page plan wraps: the WSGI page of this request."""
    page: _Page = scope[_BRIDGE]
    await page.bridge(send)


def _single(result: Iterable[bytes]) -> bool:
    """PEP 3333: an iterable with a length of 1 is the whole body in one block."""
    try:
        return len(result) == 1  # type: ignore[arg-type]
    except TypeError:
        return False
