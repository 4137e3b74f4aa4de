"""ConsentGateWSGI around a real Django application and a real Flask application, each
served by a real WSGI server on loopback (the standard library's ``wsgiref``: no extra
dependency, and a strict PEP 3333 checker of what the adapter hands it), plus one
Chromium visit: GA blocked without consent, running after Accept all."""

from __future__ import annotations

import gzip
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django
import httpx2 as httpx
import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from flask import Flask, Response, make_response

from consentgate.config import Settings, load_settings
from consentgate.wsgi import ConsentGateWSGI

PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>shop</title>'
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    "<script>window.dataLayer=[];function gtag(){dataLayer.push(arguments)}"
    "gtag('js',new Date());</script></head><body><h1>Shop</h1>"
    '<iframe src="https://www.youtube.com/embed/x"></iframe></body></html>'
)
BLOCKED = '<script type="text/plain" data-consent="statistics" async src='
ACTIVE = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1">'
KEYS = "wsgi-test-key-0123456789abcdef"

#: close() calls seen on streamed bodies, per framework
closed: dict[str, int] = {"django": 0, "flask": 0}


def pieces(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- the Django application ---------------------------------------------------------------


def dj_page(request: Any) -> HttpResponse:
    response = HttpResponse(PAGE)
    response.set_cookie("_ga", "GA1.1.1")
    response.set_cookie("PHPSESSID", "s1")
    return response


def dj_stream(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        try:
            yield from pieces(PAGE.encode())
        finally:
            closed["django"] += 1

    return StreamingHttpResponse(body(), content_type="text/html; charset=utf-8")


def dj_gzip(request: Any) -> HttpResponse:
    response = HttpResponse(gzip.compress(PAGE.encode()), content_type="text/html")
    response["Content-Encoding"] = "gzip"
    return response


def dj_utf16(request: Any) -> HttpResponse:
    return HttpResponse(PAGE.encode("utf-16"), content_type="text/html; charset=utf-16")


def dj_json(request: Any) -> JsonResponse:
    return JsonResponse({"html": PAGE})


urlpatterns = [
    path("", dj_page),
    path("stream", dj_stream),
    path("gz", dj_gzip),
    path("utf16", dj_utf16),
    path("json", dj_json),
]


def django_app() -> Any:
    if not django_settings.configured:
        django_settings.configure(
            DEBUG=False,
            SECRET_KEY="django-test-secret-key-not-for-production",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


# -- the Flask application ----------------------------------------------------------------


def flask_app() -> Flask:
    app = Flask("shop")

    @app.get("/")
    def page() -> Response:
        response = make_response(PAGE)
        response.set_cookie("_ga", "GA1.1.1")
        response.set_cookie("PHPSESSID", "s1")
        return response

    @app.get("/stream")
    def stream() -> Response:
        response = Response(iter(pieces(PAGE.encode())), mimetype="text/html")
        response.call_on_close(lambda: closed.__setitem__("flask", closed["flask"] + 1))
        return response

    @app.get("/gz")
    def gz() -> Response:
        body = gzip.compress(PAGE.encode())
        return Response(body, mimetype="text/html", headers={"Content-Encoding": "gzip"})

    @app.get("/utf16")
    def utf16() -> Response:
        return Response(PAGE.encode("utf-16"), content_type="text/html; charset=utf-16")

    @app.get("/json")
    def json_() -> Response:
        return make_response({"html": PAGE})

    return app


# -- a real WSGI server on loopback ---------------------------------------------------------


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Callable[..., Any]) -> tuple[str, WSGIServer]:
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


@pytest.fixture(scope="module")
def cg_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("wsgi-data")
    return load_settings(
        None,
        environ={"CONSENTGATE_SECRET_KEYS": KEYS, "CONSENTGATE_DATA_DIR": str(data)},
    )


@pytest.fixture(scope="module", params=["django", "flask"])
def site(request: pytest.FixtureRequest, cg_settings: Settings) -> Iterator[tuple[str, str]]:
    inner = django_app() if request.param == "django" else flask_app().wsgi_app
    wrapped = ConsentGateWSGI(inner, cg_settings)
    base, server = serve(wrapped)
    try:
        yield request.param, base
    finally:
        server.shutdown()
        server.server_close()
        wrapped.close()


def cookies_set(response: httpx.Response) -> set[str]:
    return {v.split("=", 1)[0] for v in response.headers.get_list("set-cookie")}


def consent_cookie(base: str, method: str = "accept_all") -> str:
    r = httpx.post(base + "/_consent/api/consent", json={"method": method})
    assert r.status_code == 201, r.text
    assert r.json()["consent_id"]
    return r.cookies["consentgate"]


def test_no_consent_blocks_ga_and_drops_its_cookie(site: tuple[str, str]) -> None:
    _, base = site
    r = httpx.get(base + "/")
    assert r.status_code == 200
    assert BLOCKED in r.text and ACTIVE not in r.text
    assert 'data-consentgate-src="https://www.youtube.com/embed/x"' in r.text
    assert r.text.count("/_consent/banner.js") == 1
    assert r.text.index("/_consent/banner.js") < r.text.index("<title>")
    assert "content-length" not in r.headers or int(r.headers["content-length"]) == len(
        r.content
    )
    assert cookies_set(r) == {"PHPSESSID"}  # _ga (statistics) dropped, necessary kept
    assert "cookie" in r.headers["vary"].lower()


def test_consent_through_the_wsgi_app_lets_ga_run(site: tuple[str, str]) -> None:
    _, base = site
    cookie = consent_cookie(base)
    jar = {"consentgate": cookie}
    r = httpx.get(base + "/", cookies=jar)
    assert ACTIVE in r.text and BLOCKED not in r.text
    assert cookies_set(r) == {"_ga", "PHPSESSID"}
    mine = httpx.get(base + "/_consent/api/consent", cookies=jar)
    assert mine.status_code == 200 and "statistics" in mine.json()["granted"]
    gone = httpx.delete(base + "/_consent/api/consent", cookies=jar)
    assert gone.status_code == 200 and gone.json()["granted"] == ["necessary"]
    r = httpx.get(base + "/", cookies={"consentgate": gone.cookies["consentgate"]})
    assert BLOCKED in r.text


def test_consentgate_endpoints_are_served_through_the_wsgi_app(site: tuple[str, str]) -> None:
    _, base = site
    js = httpx.get(base + "/_consent/banner.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert len(js.content) > 1000
    assert httpx.get(base + "/_consent/healthz").json() == {"status": "ok"}
    assert httpx.get(base + "/_consent/declaration").status_code == 200
    bad = httpx.post(
        base + "/_consent/api/consent", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    missing = httpx.get(base + "/_consent/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(base + "/.well-known/gpc.json").json() == {"gpc": True}


def test_streamed_pages_are_rewritten_and_closed(site: tuple[str, str]) -> None:
    name, base = site
    before = closed[name]
    whole = httpx.get(base + "/").text
    streamed = httpx.get(base + "/stream")
    assert streamed.status_code == 200 and streamed.text == whole
    assert closed[name] == before + 1  # the application's iterable was closed


def test_head_gets_filtered_headers_and_no_body(site: tuple[str, str]) -> None:
    _, base = site
    r = httpx.head(base + "/")
    assert r.status_code == 200 and r.content == b""
    assert cookies_set(r) == {"PHPSESSID"}
    assert "content-length" not in r.headers  # rewriting changes it; unknown without a body


def test_unsafe_pages_are_refused_without_full_consent(site: tuple[str, str]) -> None:
    _, base = site
    for page in ("/gz", "/utf16"):
        r = httpx.get(base + page, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 502, page
        assert "googletagmanager" not in r.text and "could not be made safe" in r.text
    jar = {"consentgate": consent_cookie(base)}
    r = httpx.get(base + "/gz", cookies=jar, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.text == PAGE  # everything granted: as it came
    assert httpx.get(base + "/json").json() == {"html": PAGE}  # not a page: untouched


def test_an_internal_error_refuses_the_page(
    site: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the rewriter breaks while the page streams."""
    from consentgate.rewriter import stream

    def broken(self: Any, data: bytes) -> bytes:
        raise RuntimeError("injected")

    _, base = site
    monkeypatch.setattr(stream.StreamRewriter, "feed", broken)
    r = httpx.get(base + "/")
    assert r.status_code == 502 and "googletagmanager" not in r.text
    r = httpx.get(base + "/stream")
    assert r.status_code == 502 and "googletagmanager" not in r.text


def test_records_are_in_the_shared_log(site: tuple[str, str], cg_settings: Settings) -> None:
    _, base = site
    r = httpx.post(
        base + "/_consent/api/consent",
        json={"method": "custom", "granted": ["preferences"]},
        headers={"Sec-GPC": "1"},
    )
    assert r.status_code == 201 and r.json()["gpc"] is True
    assert Path(cg_settings.database.removeprefix("sqlite:///")).is_file()


def test_an_oversized_consent_body_is_413_through_wsgi(site: tuple[str, str]) -> None:
    _, base = site
    r = httpx.post(
        base + "/_consent/api/consent",
        content=b'{"method": "reject_all", "page_url": "' + b"x" * 40000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
