"""Upstream faults: refused, stalled, reset mid-body, garbage — a clean 502/504, no hang,
and the worker keeps serving afterwards."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests import support
from tests.upstream import ASSET, SLOW_BYTES, Upstream, refused_port, running_upstream

pytestmark = pytest.mark.slow


def _config(tmp: Path, upstream: str, read_timeout: float = 1.0) -> str:
    path = tmp / "consentgate.toml"
    path.write_text(
        "[server]\n"
        f'data_dir = "{tmp / "data"}"\n'
        'secret_keys = ["fault-test-key-0123456789abcdef"]\n'
        "upstream_connect_timeout = 1.0\n"
        f"upstream_read_timeout = {read_timeout}\n"
        "[[sites]]\n"
        'id = "main"\n'
        f'upstream = "{upstream}"\n'
    )
    return str(path)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = _config(tmp_path_factory.mktemp("faults"), upstream.url)
    with support.consentgate_server("--config", config) as (base, _proc):
        yield base


def _still_serving(base: str) -> None:
    r = httpx.get(base + "/asset.bin", timeout=10)
    assert r.status_code == 200 and r.content == ASSET


def test_refused_upstream_gives_502_page(tmp_path: Path) -> None:
    config = _config(tmp_path, f"http://127.0.0.1:{refused_port()}")
    with support.consentgate_server("--config", config) as (base, _proc):
        r = httpx.get(base + "/index.html", timeout=10)
        assert r.status_code == 502
        assert r.headers["content-type"].startswith("text/html")
        assert b"502" in r.content
        # consentgate's own endpoints still work
        assert httpx.get(base + "/_consent/healthz", timeout=10).status_code == 200


def test_stalled_upstream_gives_504(proxy: str) -> None:
    r = httpx.get(proxy + "/stall", timeout=15)
    assert r.status_code == 504
    assert b"504" in r.content
    _still_serving(proxy)


def test_stall_mid_body_cuts_the_response(proxy: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(proxy + "/stall-body", timeout=15)
    _still_serving(proxy)


def test_reset_mid_body_cuts_the_response(proxy: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(proxy + "/reset", timeout=15)
    _still_serving(proxy)


def test_page_failing_before_its_body_gives_502(proxy: str) -> None:
    # headers, then a reset before any body byte: nothing was sent yet, so a clean 502
    r = httpx.get(proxy + "/reset?head=1&small=1", timeout=15)
    assert r.status_code == 502
    assert b"could not be made safe" in r.content
    _still_serving(proxy)


@pytest.mark.parametrize("path", ["/stall-body?small=1", "/reset?small=1"])
def test_page_failing_mid_body_is_cut_never_completed(proxy: str, path: str) -> None:
    # a page is streamed: what arrived went out rewritten, then the response is cut
    # (never presented as complete), and nothing hangs
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"/_consent/banner.js" in body  # the first part, rewritten
    assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the cut shows
    _still_serving(proxy)


def test_garbage_gives_502(proxy: str) -> None:
    r = httpx.get(proxy + "/garbage", timeout=10)
    assert r.status_code == 502
    _still_serving(proxy)


def test_oversized_upstream_headers_give_502(proxy: str) -> None:
    r = httpx.get(proxy + "/huge-headers", timeout=10)
    assert r.status_code == 502
    _still_serving(proxy)


def test_dead_keepalive_connection_is_retried(proxy: str, upstream: Upstream) -> None:
    # the upstream answers /then-close, then hangs up on that connection's next request:
    # a bodiless request is retried once on a fresh connection
    for _ in range(3):
        assert httpx.get(proxy + "/then-close", timeout=10).status_code == 200
        before = len(upstream.paths)
        _still_serving(proxy)
        assert upstream.paths[before:].count("/asset.bin") in (1, 2)


def test_visitor_disconnecting_mid_upload(proxy: str) -> None:
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 10)
    _still_serving(proxy)


@pytest.mark.parametrize("name", ["page.html", "blob.bin"])
def test_visitor_leaving_mid_page_stops_the_upstream(
    proxy: str, upstream: Upstream, name: str
) -> None:
    # the upstream streams 8 MiB slowly; the visitor reads the head and hangs up: the
    # proxy closes that upstream connection instead of reading (and rewriting) the rest
    before = len(upstream.slow)
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /slow/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 30
    while len(upstream.slow) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream.slow) > before, "the upstream never saw the end of its response"
    assert upstream.slow[before] < SLOW_BYTES // 4  # stopped early, not read to the end
    _still_serving(proxy)
