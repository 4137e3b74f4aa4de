"""The page plan's pieces (consentgate/mime.py, consentgate/page.py) and the in-process
path through it: the demo site and the middleware, on the ASGI transport."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import consentgate.rewriting
from consentgate.app import ConsentGateApp
from consentgate.config import Settings
from consentgate.middleware import ConsentGateMiddleware
from consentgate.mime import extract_mime_type, nosniff, parse_mime_type, sniff
from consentgate.page import Kind, csp_nonce, read_head, sniff_kind
from tests.oracle import HTML_TRACKER

# -- Fetch: extract a MIME type --------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "essence", "charset"),
    [
        ([b"text/html"], "text/html", None),
        ([b"text/plain", b"text/html"], "text/html", None),  # the last header wins
        ([b"text/html", b"text/plain"], "text/plain", None),
        ([b"text/plain;charset=gbk, text/html"], "text/html", None),
        ([b"text/html;charset=gbk, text/html"], "text/html", "gbk"),  # same type: kept
        ([b"text/html;charset=gbk, text/html;x=y"], "text/html", "gbk"),
        ([b"text/html, */*"], "text/html", None),  # */* is skipped
        ([b"text/html, foo"], "text/html", None),  # invalid items too
        ([b'text/html;charset="utf-8, text/plain"'], "text/html", "utf-8, text/plain"),
        ([b" TEXT/HTML ; Charset=UTF-8"], "text/html", "UTF-8"),
        ([b"text/html;;charset=utf-8"], "text/html", "utf-8"),
        ([b"html"], None, None),
        ([b""], None, None),
        ([], None, None),
        ([b"*/*"], None, None),
        ([b"text/html\x00"], None, None),
    ],
)
def test_extract_mime_type(values: list[bytes], essence: str | None, charset: str | None) -> None:
    found = extract_mime_type(values)
    assert (found.essence if found else None) == essence
    assert (found.charset if found else None) == charset


def test_parse_mime_type_parameters() -> None:
    found = parse_mime_type('text/html;charset="a\\"b";charset=second;x=;bad key=1')
    assert found is not None and found.parameters == {"charset": 'a"b'}
    assert parse_mime_type("text /html") is None
    assert parse_mime_type("/html") is None


@given(st.lists(st.binary(max_size=40), max_size=4))
def test_extract_mime_type_takes_anything(values: list[bytes]) -> None:
    found = extract_mime_type(values)
    if found is not None:
        assert found.essence == found.essence.lower() and found.essence.count("/") == 1
        assert found.essence != "*/*"


def test_nosniff_is_the_first_item() -> None:
    assert nosniff([b"nosniff"]) and nosniff([b"NoSniff, other"])
    assert not nosniff([]) and not nosniff([b"other, nosniff"])


# -- sniffing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<!DOCTYPE html><p>", Kind.HTML),
        (b"\n\t <HTML>", Kind.HTML),
        (b"<p>hi", Kind.HTML),
        (b"<pre>", Kind.HTML),  # a prefix match, as Chromium
        (b"<!-- x -->", Kind.HTML),
        (b'<?xml version="1.0"?><svg/>', Kind.XML),
        (b"<foo>", Kind.PASS),
        (b"\xef\xbb\xbf<html>", Kind.PASS),  # a BOM first: text
        (b"hello <html>", Kind.PASS),
        (b" " * 600 + b"<html>", Kind.PASS),  # beyond the 512 bytes looked at
        (b"<h\x001>", Kind.PASS),
        (b"", Kind.PASS),
    ],
)
def test_sniff(body: bytes, kind: Kind) -> None:
    assert sniff_kind(body) is kind


@given(st.binary(max_size=600))
def test_sniff_takes_anything(body: bytes) -> None:
    assert sniff(body) in (None, "text/html", "text/xml")


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ([], Kind.SNIFF),
        ([(b"X-Content-Type-Options", b"nosniff")], Kind.PASS),
        ([(b"Content-Type", b"unknown/unknown")], Kind.SNIFF),
        ([(b"Content-Type", b"text/plain"), (b"Content-Type", b"text/html")], Kind.HTML),
        ([(b"content-type", b"image/svg+xml")], Kind.XML),
        ([(b"content-type", b"application/atom+xml")], Kind.XML),
        ([(b"content-type", b"application/xhtml+xml")], Kind.XML),
        ([(b"content-type", b"application/json")], Kind.PASS),
        ([(b"content-type", b"text/plain")], Kind.PASS),
    ],
)
def test_read_head(headers: list[tuple[bytes, bytes]], kind: Kind) -> None:
    assert read_head(headers).kind is kind


# -- the CSP nonce ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "nonce"),
    [
        ([b"script-src 'nonce-abc'"], "abc"),
        ([b"default-src 'nonce-d'; script-src 'nonce-s'"], "s"),  # the script directive
        ([b"script-src 'nonce-s'; script-src-elem 'nonce-e'"], "e"),
        ([b"script-src 'self'; default-src 'nonce-d'"], None),  # script-src governs
        ([b"style-src 'nonce-st'"], None),  # not a script directive
        ([b"script-src 'nonce-a'; script-src 'nonce-b'"], "a"),  # the first occurrence
        ([b"img-src *, script-src 'nonce-p2'"], "p2"),  # a second policy in one header
        ([b"object-src 'none'", b"SCRIPT-SRC 'NONCE-x1'"], "x1"),
        ([b"script-src\t'nonce-tab'"], "tab"),
        ([b"script-src"], None),
    ],
)
def test_csp_nonce(values: list[bytes], nonce: str | None) -> None:
    assert csp_nonce(values) == nonce


# -- the in-process path ----------------------------------------------------------------
GA_PAGE = f"<!doctype html><html><head><title>t</title>{HTML_TRACKER}</head><body>x</body></html>"


async def test_demo_expires_refused_cookies_on_withdrawal(app: ConsentGateApp) -> None:
    """The demo (served through the same page plan as the middleware) deletes, server
    side, the cookies of withdrawn categories, HttpOnly ones included, as the proxy."""
    import httpx2 as httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        r = await client.post("/_consent/api/consent", json={"method": "accept_all"})
        assert r.status_code == 201
        r = await client.delete("/_consent/api/consent")
        assert r.status_code in (200, 204)
        for name, value in {"_ga": "GA1.1.1", "_gid": "GA1.1.2", "PHPSESSID": "s"}.items():
            client.cookies.set(name, value)
        r = await client.get("/")
    expired = {
        v.split("=", 1)[0]
        for v in r.headers.get_list("set-cookie")
        if "max-age=0" in v.lower() and "domain=" not in v.lower()
    }
    assert {"_ga", "_gid"} <= expired
    assert "PHPSESSID" not in expired  # necessary: kept


def _app_answering(body: bytes, headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_an_internal_error_on_a_page_is_a_refusal(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault inside the page plan (here: building the rewriter) never lets the page
    through to a visitor without consent: the documented 502."""
    import httpx2 as httpx

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(consentgate.rewriting, "make_rewriter", broken)
    inner = _app_answering(GA_PAGE.encode(), [(b"content-type", b"text/html")])
    middleware = ConsentGateMiddleware(inner, settings=settings)
    async with middleware.gate.lifespan():
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
            r = await client.get("/")
    assert r.status_code == 502
    assert "googletagmanager" not in r.text and "could not be made safe" in r.text


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (GA_PAGE.encode("utf-16"), [(b"content-type", b"text/html")]),
        (GA_PAGE.encode(), [(b"content-type", b"text/html"), (b"content-encoding", b"x-foo")]),
        (
            f'<svg xmlns="http://www.w3.org/2000/svg">{HTML_TRACKER}</svg>'.encode(),
            [(b"content-type", b"image/svg+xml")],
        ),
    ],
    ids=["utf-16", "unknown-coding", "svg-with-script"],
)
async def test_the_middleware_refuses_what_it_cannot_make_safe(
    settings: Settings, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    import httpx2 as httpx

    middleware = ConsentGateMiddleware(_app_answering(body, headers), settings=settings)
    async with middleware.gate.lifespan():
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
            r = await client.get("/")
    assert r.status_code == 502
    assert b"googletagmanager" not in r.content


def test_a_meta_policy_gives_its_script_nonce(settings: Settings) -> None:
    """The rewriter reads a ``<meta http-equiv>`` policy with the same directive-aware
    reader: the script directive's nonce, not the style one's."""
    from consentgate.catalog import load_catalog
    from consentgate.rewriter import RewritePolicy, StreamRewriter

    site = settings.sites[0]
    policy = RewritePolicy.for_site(site, frozenset({"necessary"}), load_catalog(site))
    seen: list[str | None] = []

    def snippet(nonce: str | None) -> bytes:
        seen.append(nonce)
        return b"<script></script>"

    page = (
        b"<head><meta http-equiv=Content-Security-Policy "
        b"content=\"style-src 'nonce-st'; script-src 'nonce-sc'\"><title>t</title><p>x"
    )
    rewriter = StreamRewriter(policy, snippet)
    rewriter.feed(page)
    rewriter.finish()
    assert seen == ["sc"]


def test_link_entries_to_refused_trackers_go(settings: Settings) -> None:
    from consentgate.page import filter_link

    site = settings.sites[0]
    ga = b"<https://www.googletagmanager.com/gtag/js?id=G-1>; rel=preload; as=script"
    own = b"</app.css>; rel=preload; as=style"
    assert filter_link(own + b", " + ga, site, frozenset({"necessary"})) == own
    assert filter_link(ga, site, frozenset({"necessary"})) is None
    granted = frozenset({"necessary", "statistics"})
    assert filter_link(own + b", " + ga, site, granted) == own + b", " + ga
