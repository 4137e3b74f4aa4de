"""consentgate/corked.py's protocol, owned: the uvicorn internals it builds on are the
pinned ones, odd statuses never break a response head, a bad pipelined request never
interleaves with the answer before it, and a body the app is slow to read is not the
client's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from packaging.specifiers import SpecifierSet

from consentgate.config import Settings, load_settings
from consentgate.corked import UVICORN_FINGERPRINT, protocol_class, uvicorn_fingerprint
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_uvicorn_internals_relied_on_are_the_pinned_ones() -> None:
    """Fails when uvicorn moves: review consentgate/corked.py against the new
    httptools_impl.py, then update UVICORN_FINGERPRINT and the pin together."""
    assert uvicorn_fingerprint() == UVICORN_FINGERPRINT
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("uvicorn")]
    specifier = SpecifierSet(re.sub(r"^uvicorn(\[[^\]]*\])?", "", pin))
    assert uvicorn.__version__ in specifier
    assert "0.56.0" not in specifier  # an upper bound: the next minor is reviewed first


class App:
    """A bare ASGI app with the settings the edge reads its limits from."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bodies: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/status/"):
            status: Any = int(path.rsplit("/", 1)[1])
            body = b"odd"
        elif path == "/slow-reader":
            await asyncio.sleep(1.0)  # longer than the body timeout: the app is behind
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            self.bodies.append(size)
            status, body = 200, b"%d" % size
        else:
            status, body = 200, path.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def running(tmp_path: Path, access_log: bool = False) -> AsyncIterator[tuple[int, App]]:
    settings = load_settings(
        environ={},
        overrides={"data_dir": str(tmp_path), "request_body_timeout": 0.3},
    )
    app = App(settings)
    port = free_port()
    config = uvicorn.Config(
        app, port=port, http=protocol_class(), log_level="critical", access_log=access_log
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port, app
    finally:
        server.should_exit = True
        await task


async def talk(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    return answer


@pytest.mark.parametrize("access_log", [False, True])
async def test_odd_statuses_never_break_the_head(tmp_path: Path, access_log: bool) -> None:
    async with running(tmp_path, access_log) as (port, _):
        for status, line in (
            (99, b"HTTP/1.1 502 Bad Gateway\r\n"),
            (600, b"HTTP/1.1 502 Bad Gateway\r\n"),
            (1000, b"HTTP/1.1 502 Bad Gateway\r\n"),
            (299, b"HTTP/1.1 299 \r\n"),
        ):
            raw = b"GET /status/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % status
            answer = await talk(port, raw)
            assert answer.startswith(line), answer[:60]
            assert answer.endswith(b"\r\n\r\nodd")


async def test_a_bad_request_after_a_good_one_does_not_interleave(tmp_path: Path) -> None:
    async with running(tmp_path) as (port, _):
        answer = await talk(
            port, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n"
        )
        head, _, rest = answer.partition(b"\r\n\r\n")
        # the good one is answered whole, then the connection ends (talk read to EOF)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head
        assert rest == b"/first"


async def test_a_body_the_app_is_slow_to_read_is_not_timed_out(tmp_path: Path) -> None:
    async with running(tmp_path) as (port, app):
        size = 1024 * 1024  # far over uvicorn's read buffer: reading pauses meanwhile
        raw = (
            b"POST /slow-reader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        ) + b"a" * size
        answer = await talk(port, raw)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n%d" % size)
        assert app.bodies == [size]


def test_the_edge_settings_are_documented_with_their_defaults() -> None:
    from consentgate.config import EDGE_LIMITS, SERVER_SETTINGS

    proxy = (ROOT / "docs" / "proxy.md").read_text()
    table = {s.name: s.default for s in SERVER_SETTINGS}
    for name in EDGE_LIMITS:
        row = next(line for line in proxy.splitlines() if f"| `{name}` |" in line)
        default = table[name]
        assert f"{default:g}" in row, (name, default, row)
    assert "metrics_allow" in (ROOT / "docs" / "consent-api.md").read_text()
