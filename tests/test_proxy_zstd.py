"""zstd (issue 5 names it; Python 3.11 has no zstd codec, so it comes from the optional
``zstandard`` package): a real upstream serving zstd-encoded HTML, decoded, rewritten and
re-encoded for the visitor; and a real server where ``zstandard`` cannot be imported."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
import zstandard

from consentgate.proxy.encoding import CODINGS, decoder_for, encoder_for
from tests import support
from tests.proxy_support import (  # noqa: F401 (fixtures)
    PAGE,
    active_ga_scripts,
    consent_cookie,
    data_dir_fixture,
    get,
    inserted_only,
    proxy_fixture,
    upstream_fixture,
)
from tests.upstream import Upstream, page_bytes

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
EVERYTHING = ["preferences", "statistics", "marketing", "unclassified"]


def _raw(base: str, path: str, accept: str, cookie: str | None = None) -> httpx.Response:
    """The response with its body exactly as sent (not decoded by the client)."""
    headers = {"Accept-Encoding": accept}
    if cookie:
        headers["Cookie"] = f"consentgate={cookie}"
    with httpx.stream("GET", base + path, headers=headers, timeout=20) as r:
        r._content = b"".join(r.iter_raw())  # keep the encoded bytes
    return r


def _unzstd(data: bytes) -> bytes:
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


# -- the codec table ---------------------------------------------------------------


def test_zstd_is_in_the_codec_table_and_streams() -> None:
    assert "zstd" in CODINGS
    page = page_bytes(PAGE)
    packed = zstandard.ZstdCompressor().compress(page)
    decoder = decoder_for("zstd")
    assert decoder is not None
    out = b"".join(decoder.decode(packed[i : i + 100]) for i in range(0, len(packed), 100))
    assert out + decoder.flush() == page
    encoder = encoder_for("zstd")
    assert encoder is not None
    # sync(): what was encoded so far decodes now, before the stream ends
    first = encoder.encode(page[:5000]) + encoder.sync()
    reader = zstandard.ZstdDecompressor().decompressobj()
    assert reader.decompress(first) == page[:5000]
    rest = encoder.encode(page[5000:]) + encoder.flush()
    assert reader.decompress(rest) == page[5000:]


def test_corrupt_zstd_is_a_decode_error() -> None:
    from consentgate.proxy.encoding import DecodeError

    decoder = decoder_for("zstd")
    assert decoder is not None
    with pytest.raises(DecodeError):
        decoder.decode(ZSTD_MAGIC + b"\xff" * 64)


# -- through the proxy, zstandard installed ----------------------------------------

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("chunked", [False, True])
def test_zstd_page_is_decoded_rewritten_and_reencoded(proxy: str, chunked: bool) -> None:
    path = f"/pages/{PAGE}?enc=zstd&cookies=1" + ("&chunked=1" if chunked else "")
    r = _raw(proxy, path, "zstd")
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "zstd"
    assert "accept-encoding" in r.headers["vary"].lower()
    assert r.content.startswith(ZSTD_MAGIC)
    assert "_ga" not in {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")}
    page = _unzstd(r.content)
    assert page == get(proxy, f"/pages/{PAGE}").content  # the identity page, rewritten
    assert active_ga_scripts(page) == []
    assert b"/_consent/banner.js" in page


def test_zstd_page_with_full_consent_is_the_upstreams(proxy: str) -> None:
    cookie = consent_cookie(proxy, EVERYTHING)
    r = _raw(proxy, f"/pages/{PAGE}?enc=zstd", "zstd", cookie)
    assert r.headers["content-encoding"] == "zstd"
    assert inserted_only(_unzstd(r.content), page_bytes(PAGE))


@pytest.mark.parametrize(("accept", "coding"), [("gzip", "gzip"), ("br;q=1, zstd;q=0", "br")])
def test_zstd_page_for_visitor_without_zstd_gets_another_coding(
    proxy: str, accept: str, coding: str
) -> None:
    r = _raw(proxy, f"/pages/{PAGE}?enc=zstd", accept)
    assert r.headers["content-encoding"] == coding
    decoder = decoder_for(coding)
    assert decoder is not None
    page = decoder.decode(r.content) + decoder.flush()
    assert page == get(proxy, f"/pages/{PAGE}").content
    assert active_ga_scripts(page) == []


def test_zstd_page_for_visitor_accepting_nothing_gets_identity(proxy: str) -> None:
    r = _raw(proxy, f"/pages/{PAGE}?enc=zstd", "identity")
    assert "content-encoding" not in r.headers
    assert r.content == get(proxy, f"/pages/{PAGE}").content
    assert active_ga_scripts(r.content) == []


# -- a server where zstandard cannot be imported -------------------------------------


@pytest.fixture(scope="module")
def proxy_without_zstd(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # A real `consentgate serve` whose `import zstandard` fails, as on a machine without
    # the package: a module of that name that raises ImportError comes first on the path.
    tmp = tmp_path_factory.mktemp("no-zstd")
    blocker = tmp / "block" / "zstandard"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("zstandard is not installed")\n')
    env = {
        "CONSENTGATE_SECRET_KEYS": "proxy-test-key-0123456789abcdef",
        "PYTHONPATH": f"{blocker.parent}:{support.REPO}",
    }
    with support.consentgate_server(
        "--upstream", upstream.url, "--data-dir", str(tmp / "data"), env=env
    ) as (base, _proc):
        yield base


def test_without_zstandard_zstd_is_not_asked_for(proxy_without_zstd: str) -> None:
    r = get(proxy_without_zstd, "/echo", headers={"Accept-Encoding": "zstd, gzip, br;q=0.5"})
    sent = dict((k.lower(), v) for k, v in r.json()["headers"])
    assert sent["accept-encoding"] == "gzip, br;q=0.5"
    r = get(proxy_without_zstd, "/echo", headers={"Accept-Encoding": "zstd"})
    assert "accept-encoding" not in {k.lower() for k, _ in r.json()["headers"]}


@pytest.mark.parametrize("accept", ["zstd", "gzip", "identity"])
def test_without_zstandard_a_zstd_page_never_reaches_a_visitor_without_consent(
    proxy_without_zstd: str, accept: str
) -> None:
    # the upstream sends zstd although it was not offered: the proxy cannot rewrite it
    r = _raw(proxy_without_zstd, f"/pages/{PAGE}?enc=zstd&cookies=1", accept)
    assert r.status_code == 502
    assert not r.content.startswith(ZSTD_MAGIC)
    assert b"could not be made safe" in r.content
    assert "_ga" not in {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")}
    cookie = consent_cookie(proxy_without_zstd, ["statistics"])
    r = _raw(proxy_without_zstd, f"/pages/{PAGE}?enc=zstd", accept, cookie)
    assert r.status_code == 502


def test_without_zstandard_full_consent_gets_the_page_as_sent(proxy_without_zstd: str) -> None:
    cookie = consent_cookie(proxy_without_zstd, EVERYTHING)
    r = _raw(proxy_without_zstd, f"/pages/{PAGE}?enc=zstd", "zstd", cookie)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "zstd"
    assert _unzstd(r.content) == page_bytes(PAGE)  # nothing to hold back: as it came


def test_pages_still_served_without_zstandard(proxy_without_zstd: str) -> None:
    r = get(proxy_without_zstd, f"/pages/{PAGE}?enc=gzip", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert active_ga_scripts(r.content) == []
