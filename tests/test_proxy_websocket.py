"""WebSocket upgrades through the proxy reach the upstream and pump frames both ways."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import support
from tests.upstream import refused_port, running_ws_upstream

pytestmark = pytest.mark.slow

ENV = {"CONSENTGATE_SECRET_KEYS": "ws-test-key-0123456789abcdef"}


def test_websocket_forwarded(tmp_path: object) -> None:
    with (
        running_ws_upstream() as up,
        support.consentgate_server(
            "--upstream", f"http://127.0.0.1:{up.port}", "--data-dir", f"{tmp_path}/d", env=ENV
        ) as (base, _proc),
    ):
        url = base.replace("http://", "ws://") + "/socket?room=1"
        with connect(
            url,
            subprotocols=["chat"],  # type: ignore[list-item]
            additional_headers={"Cookie": "PHPSESSID=abc"},
            proxy=None,
        ) as ws:
            assert ws.subprotocol == "chat"
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
            ws.send(b"\x00\x01binary")
            assert ws.recv(timeout=10) == b"\x00\x01binary"
            ws.send("bye")
            assert ws.recv(timeout=10) == "closing"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        hs = up.handshakes[-1]
        assert hs["host"] == base.removeprefix("http://")
        assert hs["cookie"] == "PHPSESSID=abc"
        assert hs["x-forwarded-for"] == "127.0.0.1"


def test_websocket_upstream_down_is_refused(tmp_path: object) -> None:
    with (
        support.consentgate_server(
            "--upstream",
            f"http://127.0.0.1:{refused_port()}",
            "--data-dir",
            f"{tmp_path}/d",
            env=ENV,
        ) as (base, _proc),
        pytest.raises(InvalidStatus),
    ):
        connect(base.replace("http://", "ws://") + "/socket", proxy=None, open_timeout=10)
