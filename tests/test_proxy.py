"""The proxy end to end: a real upstream on loopback, a real `consentgate serve --upstream`.

Visitors without consent, with statistics and with everything; cookies; encodings; HTTP
semantics (hop-by-hop, forwarding headers, HEAD, 304, Range, redirects, uploads).
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx2 as httpx
import pytest

from tests.proxy_support import (  # noqa: F401 (fixtures)
    PAGE,
    consent_cookie,
    data_dir_fixture,
    get,
    proxy_fixture,
    upstream_fixture,
)
from tests.upstream import ASSET, Upstream, page_bytes

pytestmark = pytest.mark.slow


# -- consent and cookies -------------------------------------------------------


def test_visitor_without_consent_gets_no_ga_cookie(proxy: str) -> None:
    r = get(proxy, f"/pages/{PAGE}?cookies=1")
    assert r.status_code == 200
    set_cookies = r.headers.get_list("set-cookie")
    names = {c.split("=", 1)[0] for c in set_cookies}
    assert "_ga" not in names
    assert "PHPSESSID" in names  # necessary: always passes
    assert "mystery_pref" in names  # undeclared: passes by default, but recorded


def test_statistics_visitor_gets_ga_cookie(proxy: str) -> None:
    cookie = consent_cookie(proxy, ["statistics"])
    r = get(proxy, f"/pages/{PAGE}?cookies=1", cookie)
    names = {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")}
    assert {"_ga", "PHPSESSID", "mystery_pref"} <= names


def test_undeclared_cookie_recorded_once(proxy: str, upstream: Upstream, data_dir: Path) -> None:
    from consentgate.proxy import list_undeclared_cookies

    get(proxy, f"/pages/{PAGE}?cookies=1")
    get(proxy, f"/pages/{PAGE}?cookies=1")
    seen = list_undeclared_cookies(data_dir)
    names = [c["name"] for c in seen]
    assert names.count("mystery_pref") == 1
    entry = next(c for c in seen if c["name"] == "mystery_pref")
    assert entry["path"] == "/shop"
    assert entry["first_seen"].endswith("Z")
    assert "_ga" not in names and "PHPSESSID" not in names


def test_server_side_cleanup_expires_refused_cookies(proxy: str) -> None:
    refused = consent_cookie(proxy, [], method="reject_all")
    r = httpx.get(
        proxy + f"/pages/{PAGE}",
        headers={
            "Cookie": f"consentgate={refused}; _ga=GA1.1.1.1; _gid=x; PHPSESSID=keep",
            "Host": "www.shop.example",
        },
        timeout=20,
    )
    expiring = [c for c in r.headers.get_list("set-cookie") if "Max-Age=0" in c]
    assert any(c.startswith("_ga=;") and "Domain" not in c for c in expiring)
    assert any(c.startswith("_ga=;") and "Domain=shop.example" in c for c in expiring)
    assert any(c.startswith("_gid=;") for c in expiring)
    assert not any(c.startswith("PHPSESSID=") for c in expiring)
    # with statistics granted nothing is expired
    granted = consent_cookie(proxy, ["statistics"])
    r = get(proxy, f"/pages/{PAGE}", headers={"Cookie": f"consentgate={granted}; _ga=1"})
    assert not any("Max-Age=0" in c for c in r.headers.get_list("set-cookie"))


def test_upstream_cannot_set_consentgate_cookie_nor_serve_consent_paths(
    proxy: str, upstream: Upstream
) -> None:
    before = len(upstream.paths)
    r = get(proxy, "/_consent/healthz")
    assert r.status_code == 200 and r.json()["status"] in ("ok", "degraded")
    r = get(proxy, "/_consent/anything/at/all")
    assert r.status_code == 404
    assert "error" in r.json()
    port = int(proxy.rsplit(":", 1)[1])
    for raw in (b"//_consent/banner.js", b"/x/../_consent/banner.js", b"/%2F_consent/a"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            status = s.recv(65536).split(b"\r\n", 1)[0]
        assert status.split(b" ")[1] == b"404", raw
    assert not any("_consent" in p for p in upstream.paths[before:])


# -- rewritten pages: Content-Length and chunked upstreams, replayed -------------------


def test_chunked_and_content_length_pages_are_identical(proxy: str) -> None:
    cookie = consent_cookie(proxy, ["statistics"])
    for who in (None, cookie):
        whole = get(proxy, f"/pages/{PAGE}", who)
        streamed = get(proxy, f"/pages/{PAGE}?chunked=1", who)
        for r in (whole, streamed):  # a body complete before the first byte went out
            assert r.headers.get("content-length") in (None, str(len(r.content)))
        assert whole.content == streamed.content
        assert get(proxy, f"/pages/{PAGE}", who).content == whole.content  # replayed


# -- encodings -----------------------------------------------------------------


def test_compressed_page_for_visitor_without_that_coding(proxy: str) -> None:
    # the upstream answers gzip whatever it is asked; the visitor gets identity
    r = httpx.get(proxy + f"/pages/{PAGE}?enc=gzip", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers
    assert r.content == get(proxy, f"/pages/{PAGE}").content


def test_accept_encoding_narrowed_to_decodable(proxy: str) -> None:
    # zstd stays: the test extras install zstandard (tests/test_proxy_zstd.py: without it)
    r = get(proxy, "/echo", headers={"Accept-Encoding": "zstd, gzip;q=0.5, compress, xz, br"})
    sent = dict((k.lower(), v) for k, v in r.json()["headers"])
    assert sent["accept-encoding"] == "zstd, gzip;q=0.5, br"


def test_undecodable_html_is_not_served_to_visitor_without_consent(proxy: str) -> None:
    r = get(proxy, f"/pages/{PAGE}?enc=zz")
    assert r.status_code == 502
    assert b"<script" not in r.content
    full = consent_cookie(proxy, ["preferences", "statistics", "marketing", "unclassified"])
    r = get(proxy, f"/pages/{PAGE}?enc=zz", full, headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200  # nothing to hold back: passed through as it is


def test_non_html_streams_byte_for_byte(proxy: str) -> None:
    r = get(proxy, "/asset.bin")
    assert r.status_code == 200
    assert r.content == ASSET
    assert r.headers["content-length"] == str(len(ASSET))


# -- HTTP semantics ------------------------------------------------------------


def test_hop_by_hop_and_forwarding_headers(proxy: str) -> None:
    r = get(
        proxy,
        "/echo?q=1",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "drop me",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Sec-GPC": "1",
            "Host": "www.shop.example",
        },
    )
    echo = r.json()
    sent = {k.lower(): v for k, v in echo["headers"]}
    assert echo["target"] == "/echo?q=1"
    for hop in ("x-secret-hop", "keep-alive", "te", "connection", "upgrade"):
        assert hop not in sent
    assert sent["sec-gpc"] == "1"
    assert sent["host"] == "www.shop.example"
    assert sent["x-forwarded-for"].endswith("127.0.0.1")
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "www.shop.example"
    assert sent["forwarded"] == 'for=127.0.0.1;proto=http;host="www.shop.example"'


@pytest.mark.parametrize("path", [f"/pages/{PAGE}", "/asset.bin", "/redirect"])
def test_one_date_header(proxy: str, path: str) -> None:
    # the upstream sends Date and so does the server in front: the visitor gets one
    r = get(proxy, path, follow_redirects=False)
    assert len(r.headers.get_list("date")) == 1


def test_request_body_streamed_content_length_and_chunked(proxy: str) -> None:
    body = b"x" * 300_000
    r = httpx.post(proxy + "/echo", content=body, timeout=20)
    assert r.json()["body"] == body.decode()

    def gen() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    r = httpx.post(proxy + "/echo", content=gen(), timeout=20)
    echo = r.json()
    assert echo["body"] == "hello world"
    assert ["transfer-encoding", "chunked"] in [[k.lower(), v] for k, v in echo["headers"]]


def test_head_request(proxy: str) -> None:
    r = httpx.head(proxy + "/asset.bin")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(ASSET))
    r = httpx.head(proxy + f"/pages/{PAGE}")
    assert r.status_code == 200 and r.content == b""
    # the next request on a reused upstream connection still works
    assert get(proxy, "/asset.bin").content == ASSET


def test_etag_weakened_and_tied_to_consent(proxy: str) -> None:
    r = get(proxy, f"/pages/{PAGE}?etag=1")
    etag = r.headers["etag"]
    assert etag.startswith('W/"v1-cg')
    r2 = get(proxy, f"/pages/{PAGE}?etag=1", headers={"If-None-Match": etag})
    assert r2.status_code == 304
    # after a decision the old tag no longer matches: the page is served again
    cookie = consent_cookie(proxy, ["statistics"])
    r3 = get(proxy, f"/pages/{PAGE}?etag=1", cookie, headers={"If-None-Match": etag})
    assert r3.status_code == 200
    assert r3.headers["etag"] != etag


def test_range_on_asset_and_on_page(proxy: str) -> None:
    r = get(proxy, "/asset.bin", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == ASSET[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(ASSET)}"
    # a page cannot be served as a rewritten byte range: the whole page comes back
    r = get(proxy, f"/pages/{PAGE}", headers={"Range": "bytes=0-9"})
    assert r.status_code == 200


def test_redirect_location_points_at_visitor_origin(proxy: str) -> None:
    r = get(proxy, "/redirect", headers={"Host": "www.shop.example"})
    assert r.status_code == 302
    assert r.headers["location"] == "http://www.shop.example/pages/003.html?x=1"


def test_repeated_responses_still_depend_on_each_visitor(proxy: str) -> None:
    # the same upstream head over and over (remembered, its headers memoized): Location,
    # Set-Cookie filtering, cookie cleanup and the ETag still follow each visitor
    stats = consent_cookie(proxy, ["statistics"])
    for i in range(3):
        host = f"www{i}.shop.example"
        r = get(proxy, "/redirect", headers={"Host": host})
        assert r.headers["location"] == f"http://{host}/pages/003.html?x=1"
        none = get(proxy, f"/pages/{PAGE}?cookies=1&etag=1")
        granted = get(proxy, f"/pages/{PAGE}?cookies=1&etag=1", stats)
        assert "_ga" not in {c.split("=", 1)[0] for c in none.headers.get_list("set-cookie")}
        assert "_ga" in {c.split("=", 1)[0] for c in granted.headers.get_list("set-cookie")}
        assert none.headers["etag"] != granted.headers["etag"]
        plain = get(proxy, f"/pages/{PAGE}?etag=1", headers={"Cookie": "_ga=GA1.1.1.1"})
        expired = [c for c in plain.headers.get_list("set-cookie") if c.startswith("_ga=;")]
        assert expired  # the visitor without consent has their _ga expired, every time
        again = get(proxy, f"/pages/{PAGE}?etag=1")
        assert again.headers["etag"] == plain.headers["etag"]
        assert not again.headers.get_list("set-cookie")


def test_absolute_uri_target_never_reaches_another_host(proxy: str, upstream: Upstream) -> None:
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET http://example.com/echo HTTP/1.1\r\nHost: example.com\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    echo = json.loads(body)
    assert echo["target"] == "/echo"  # went to the configured upstream, path only


def test_connect_method_refused(proxy: str) -> None:
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        data = s.recv(65536)
    assert data.split(b"\r\n", 1)[0].split(b" ")[1] in (b"400", b"405")


def test_too_many_request_headers(proxy: str) -> None:
    headers = {f"X-Many-{i}": "v" for i in range(150)}
    r = get(proxy, "/echo", headers=headers)
    assert r.status_code == 431


def test_gzip_helpers_roundtrip() -> None:
    from consentgate.proxy.encoding import decoder_for, encoder_for

    data = page_bytes(PAGE)
    for coding, compress in (("gzip", gzip.compress), ("br", brotli.compress)):
        dec = decoder_for(coding)
        assert dec is not None
        blob = compress(data)
        out = b"".join(dec.decode(blob[i : i + 999]) for i in range(0, len(blob), 999))
        assert out + dec.flush() == data
        enc = encoder_for(coding)
        assert enc is not None
        dec2 = decoder_for(coding)
        assert dec2 is not None
        assert dec2.decode(enc.encode(data) + enc.flush()) == data
