"""Pages through the proxy, rewritten for the visitor's consent: no active GA without
consent, the upstream's page (plus the banner) with full consent, compressed pages
decoded and re-encoded, the rewrite cache never mixing visitors."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from consentgate.proxy.encoding import decoder_for
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

pytestmark = pytest.mark.slow


def test_visitor_without_consent_gets_no_active_ga(proxy: str) -> None:
    assert active_ga_scripts(page_bytes(PAGE))  # the page does carry GA
    r = get(proxy, f"/pages/{PAGE}?cookies=1")
    assert r.status_code == 200
    assert active_ga_scripts(r.content) == []
    assert b"/_consent/banner.js" in r.content


def test_statistics_visitor_gets_active_ga(proxy: str) -> None:
    r = get(proxy, f"/pages/{PAGE}", consent_cookie(proxy, ["statistics"]))
    assert active_ga_scripts(r.content)
    assert b"/_consent/banner.js" in r.content


def test_full_consent_page_is_the_upstreams(proxy: str) -> None:
    cookie = consent_cookie(proxy, ["preferences", "statistics", "marketing", "unclassified"])
    r = get(proxy, f"/pages/{PAGE}", cookie)
    assert r.status_code == 200
    # apart from the injected banner markup, the page is the upstream's
    assert inserted_only(r.content, page_bytes(PAGE))
    assert b"/_consent/banner.js" in r.content
    assert active_ga_scripts(r.content)


def test_cached_page_carries_each_visitors_own_consent(proxy: str) -> None:
    a = consent_cookie(proxy, ["statistics"])
    b = consent_cookie(proxy, ["statistics"])
    ids = []
    for cookie in (a, b):
        ids.append(
            httpx.get(proxy + "/_consent/api/consent", cookies={"consentgate": cookie}).json()
        )
    page_a = get(proxy, f"/pages/{PAGE}", a).content
    page_b = get(proxy, f"/pages/{PAGE}", b).content
    assert ids[0]["consent_id"].encode() in page_a
    assert ids[1]["consent_id"].encode() in page_b
    assert ids[0]["consent_id"].encode() not in page_b


def test_changed_page_is_rewritten_again(proxy: str) -> None:
    first = get(proxy, "/counter").content
    second = get(proxy, "/counter").content
    assert first != second
    assert b"<body>" in second and b"/_consent/banner.js" in second


@pytest.mark.parametrize("enc", ["gzip", "br", "deflate"])
@pytest.mark.parametrize("chunked", [False, True])
def test_compressed_page_is_decoded_rewritten_and_reencoded(
    proxy: str, enc: str, chunked: bool
) -> None:
    path = f"/pages/{PAGE}?enc={enc}&cookies=1" + ("&chunked=1" if chunked else "")
    r = httpx.get(proxy + path, headers={"Accept-Encoding": "gzip, deflate, br"}, timeout=20)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == enc
    assert "content-length" not in r.headers or int(r.headers["content-length"]) > 0
    assert "_ga" not in {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")}
    plain = get(proxy, f"/pages/{PAGE}")
    assert r.content == plain.content  # httpx decoded it: same bytes as the identity page
    assert active_ga_scripts(r.content) == []


@pytest.mark.parametrize("enc", ["gzip", "br"])
def test_repeat_visits_to_a_compressed_page_get_valid_identical_pages(proxy: str, enc: str) -> None:
    # first visit recorded, the next ones replayed: the replay's compressed form is kept
    # per visitor variant (here: the banner's language), and each visitor still gets a
    # valid page in their coding, the same as the identity page once decoded
    path = f"/pages/{PAGE}?enc={enc}&repeat=1"
    plain = {
        lang: get(proxy, path, headers={"Accept-Language": lang}).content for lang in ("de", "fr")
    }
    assert plain["de"] != plain["fr"]
    raw: dict[str, list[bytes]] = {"de": [], "fr": []}
    for _ in range(3):
        for lang in ("de", "fr"):
            headers = {"Accept-Encoding": enc, "Accept-Language": lang}
            with httpx.stream("GET", proxy + path, headers=headers, timeout=20) as r:
                assert r.status_code == 200
                assert r.headers["content-encoding"] == enc
                body = b"".join(r.iter_raw())
                assert int(r.headers["content-length"]) == len(body)
            decoder = decoder_for(enc)
            assert decoder is not None
            assert decoder.decode(body) + decoder.flush() == plain[lang]
            raw[lang].append(body)
    assert len(set(raw["de"])) == 1 and len(set(raw["fr"])) == 1


def test_page_without_content_type_is_sniffed_and_rewritten(proxy: str) -> None:
    r = get(proxy, f"/pages/{PAGE}?type=none&cookies=1")
    assert r.status_code == 200
    assert "cookie" in r.headers.get("vary", "").lower()
    assert active_ga_scripts(r.content) == []


# -- streaming: the visitor gets each part as the upstream sends it ---------------


@pytest.mark.parametrize("replayed", [False, True], ids=["first", "replayed"])
@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("", "identity"),
        ("chunked=1", "identity"),
        ("enc=gzip", "identity"),
        ("enc=gzip", "gzip"),
        ("enc=zstd", "zstd"),
    ],
)
def test_page_streams_while_the_upstream_holds_back_the_rest(
    proxy: str, upstream: Upstream, replayed: bool, query: str, accept: str
) -> None:
    # The upstream sends half the page and waits: the visitor must already have that
    # half, rewritten, before the upstream sends the rest (a proxy reading the whole
    # page first would time out here). Replayed: the same URL's rewrite was recorded.
    page = page_bytes(PAGE)
    cut = page.rfind(b">", 0, len(page) // 2) + 1
    full = get(proxy, f"/pages/{PAGE}").content  # the whole page, rewritten for no consent
    path = f"/gate/{PAGE}?{query}&r={int(replayed)}&a={accept}"
    if replayed:
        assert get(proxy, path).content == full
    upstream.hold_gate()
    try:
        with httpx.stream(
            "GET", proxy + path, headers={"Accept-Encoding": accept}, timeout=10
        ) as r:
            assert r.status_code == 200
            assert r.headers.get("content-encoding", "identity") == accept
            decoder = decoder_for(accept)  # decoded here, as each chunk arrives
            chunks = (decoder.decode(c) if decoder else c for c in r.iter_raw())
            body = b""
            while len(body) < cut - 512:  # the first half (the rewriter may hold a tail)
                body += next(chunks)
                assert full.startswith(body)
            upstream.open_gate()
            body += b"".join(chunks) + (decoder.flush() if decoder else b"")
    finally:
        upstream.open_gate()
    assert body == full
    assert active_ga_scripts(body) == []


def test_undecided_visitors_snippet_follows_their_language_and_gpc(proxy: str) -> None:
    # the snippet of undecided visitors is built once per language/region/GPC: never
    # one visitor's for another
    for _ in range(2):
        de = get(proxy, f"/pages/{PAGE}", headers={"Accept-Language": "de"}).content
        en = get(proxy, f"/pages/{PAGE}", headers={"Accept-Language": "en"}).content
        gpc = get(proxy, f"/pages/{PAGE}", headers={"Accept-Language": "en", "Sec-GPC": "1"})
        assert b"&amp;l=de&amp;" in de and b"&amp;l=en&amp;" in en
        assert b" data-gpc" in gpc.content and b" data-gpc" not in en
