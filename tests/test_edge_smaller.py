"""The "smaller" findings of the edge review (issue 15), one test each: token names,
aborted consent POSTs, UTF-8 user agents, the log's file mode, metrics access, token
lookups that cannot be timed, WebSocket close reasons and handshake refusals.

(Malformed HTTP, CONNECT and TRACE: tests/test_edge_limits.py; scheme-relative
Location and HEAD of a page: tests/test_edge_host.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect as ws_connect

from consentgate.app import ConsentGateApp, create_app
from consentgate.audit import tokens
from consentgate.config import Settings
from tests import support

API = "/_consent/api/consent"


@contextlib.asynccontextmanager
async def client_of(
    settings: Settings, address: str = "127.0.0.1"
) -> AsyncIterator[tuple[httpx.AsyncClient, ConsentGateApp]]:
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
            yield c, app


async def test_a_token_name_that_cannot_be_stored_is_a_422(settings: Settings) -> None:
    async with client_of(settings) as (client, app):
        _, admin = await tokens.issue(app.runtime.store, "admin", "root")
        auth = {"authorization": f"Bearer {admin}", "content-type": "application/json"}
        for name in ('"\\ud800"', '"a\\u0000b"', '"x\\udfffy"'):
            r = await client.post(
                "/_consent/admin/api/tokens",
                content=f'{{"role": "auditor", "name": {name}}}',
                headers=auth,
            )
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "invalid_body"
        listed = await client.get("/_consent/admin/api/tokens", headers=auth)
        assert [t["name"] for t in listed.json()["tokens"]] == ["root"]


async def test_a_utf8_user_agent_is_stored_as_utf8(settings: Settings) -> None:
    agent = "Mozilla/5.0 (Linux; Android 14; Ñandú Ünïcode) Вебкит/537.36 ☃"
    async with client_of(settings) as (client, app):
        r = await client.post(
            API, json={"method": "accept_all"}, headers={"user-agent": agent.encode()}
        )
        assert r.status_code == 201, r.text
        (event,) = [e.event async for e in app.runtime.store.iter_events()]
        assert event.user_agent == agent
        latin = "Mozilla/5.0 \xe9t\xe9"  # not UTF-8 bytes: kept as ISO-8859-1 text
        r = await client.post(
            API, json={"method": "accept_all"}, headers={"user-agent": latin.encode("latin-1")}
        )
        assert r.status_code == 201
        events = [e.event async for e in app.runtime.store.iter_events()]
        assert events[-1].user_agent == latin


async def test_the_consent_log_is_readable_by_its_owner_only(settings: Settings) -> None:
    async with client_of(settings) as (client, _):
        assert (await client.post(API, json={"method": "accept_all"})).status_code == 201
        db = Path(settings.database.removeprefix("sqlite:///"))
        files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
        assert {p.name for p in files} >= {db.name, f"{db.name}-wal"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    # an existing log made readable by others is tightened when opened
    os.chmod(db, 0o644)
    async with client_of(settings):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_metrics_need_a_token_or_an_allowed_scraper(settings: Settings) -> None:
    settings.metrics_allow = ["10.1.2.0/24"]
    async with client_of(settings, address="192.0.2.7") as (client, app):
        r = await client.get("/_consent/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        bogus = "cgt_000000000000_" + "x" * 40
        r = await client.get("/_consent/metrics", headers={"authorization": f"Bearer {bogus}"})
        assert r.status_code == 401
        _, token = await tokens.issue(app.runtime.store, "auditor", "prometheus")
        r = await client.get("/_consent/metrics", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "consentgate_consents" in r.text
    async with client_of(settings, address="10.1.2.3") as (client, _):
        r = await client.get("/_consent/metrics")
        assert r.status_code == 200 and "consentgate_consents" in r.text


class Recorder:
    """The real store; records what it is asked (method and arguments)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def call(*args: Any) -> Any:
            self.asked.append((name, args))
            return found(*args)

        return call


async def test_a_token_lookup_asks_the_same_whatever_id_it_names(settings: Settings) -> None:
    async with client_of(settings) as (_, app):
        record, real = await tokens.issue(app.runtime.store, "admin", "x")
        known_id_wrong_secret = real[:-4] + "AAAA"
        unknown_id = "cgt_ffffffffffff_" + real.split("_", 2)[2]
        malformed = "not-a-token"
        questions = []
        for presented in (real, known_id_wrong_secret, unknown_id, malformed):
            recorder = Recorder(app.runtime.store)
            found = await tokens.authenticate(recorder, presented)  # type: ignore[arg-type]
            assert (found is not None) == (presented == real)
            questions.append(recorder.asked)
        assert all(q == questions[0] for q in questions), questions
        assert record.token_id not in repr(questions)


def test_an_aborted_consent_post_leaves_no_traceback(tmp_path: Path) -> None:
    with support.consentgate_server(
        "--data-dir", str(tmp_path), env={"CONSENTGATE_SECRET_KEYS": "x" * 32}
    ) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /_consent/api/consent HTTP/1.1\r\nHost: a\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                    b'{"method": "acc'
                )
        r = httpx.post(base + API, json={"method": "accept_all"})
        assert r.status_code == 201  # served on after the aborted ones
        proc.terminate()  # type: ignore[attr-defined]
        out = proc.communicate(timeout=20)[0].decode(errors="replace")  # type: ignore[attr-defined]
    assert "Traceback" not in out and "ClientDisconnect" not in out, out[-2000:]
    assert "Exception in ASGI application" not in out


# -- WebSocket ---------------------------------------------------------------------------


class WsUpstream:
    """Echo; ``bye`` closes with 4001 "bye now"; ``/ws/denied`` is refused with 401;
    records how visitors' closes arrived."""

    def __init__(self) -> None:
        self.port = 0
        self.closes: list[tuple[int | None, str | None]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handler(self, ws: ServerConnection) -> None:
        try:
            async for message in ws:
                if message == "bye":
                    await ws.close(4001, "bye now")
                    return
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closes.append((ws.close_code, ws.close_reason))

    @staticmethod
    def process_request(ws: ServerConnection, request: Any) -> Response | None:
        if request.path.startswith("/ws/denied"):
            return ws.respond(401, "who are you\n")
        return None

    def __enter__(self) -> WsUpstream:
        self.thread.start()

        async def start() -> Any:
            return await serve(self.handler, "127.0.0.1", 0, process_request=self.process_request)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def ws_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, WsUpstream]]:
    data = tmp_path_factory.mktemp("edge-ws")
    with (
        WsUpstream() as up,
        support.consentgate_server(
            "--upstream",
            f"http://127.0.0.1:{up.port}",
            "--data-dir",
            str(data),
            env={"CONSENTGATE_SECRET_KEYS": "y" * 32},
        ) as (base, _),
    ):
        yield int(base.rsplit(":", 1)[1]), up


def test_websocket_close_reasons_pass_both_ways(ws_proxy: tuple[int, WsUpstream]) -> None:
    port, up = ws_proxy
    with ws_connect(f"ws://127.0.0.1:{port}/ws/echo", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert (ws.close_code, ws.close_reason) == (4001, "bye now")
    with ws_connect(f"ws://127.0.0.1:{port}/ws/echo", open_timeout=10) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        ws.close(4002, "visitor leaves")
    for _ in range(100):
        if (4002, "visitor leaves") in up.closes:
            break
        threading.Event().wait(0.05)
    assert (4002, "visitor leaves") in up.closes


def test_an_upstream_handshake_refusal_keeps_its_status(ws_proxy: tuple[int, WsUpstream]) -> None:
    port, _ = ws_proxy
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://127.0.0.1:{port}/ws/denied", open_timeout=10)
    assert refused.value.response.status_code == 401


async def test_every_405_names_the_allowed_methods(settings: Settings) -> None:
    async with client_of(settings) as (client, _):
        for method, path in (
            ("PUT", "/_consent/healthz"),
            ("DELETE", "/_consent/metrics"),
            ("PATCH", "/_consent/api/consent"),
            ("TRACE", "/_consent/api/consent"),
            ("PUT", "/_consent/openapi.json"),
        ):
            r = await client.request(method, path)
            assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
            assert "GET" in r.headers["allow"], (method, path)
