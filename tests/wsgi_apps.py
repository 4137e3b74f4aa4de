"""A real Django application and a real Flask application for the WSGI adapter's tests
(tests/test_wsgi.py, tests/test_wsgi_browser.py, and gunicorn, which loads
``tests.wsgi_apps:wrapped('flask')``)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import django
from django.conf import settings as django_settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from flask import Flask, Response, make_response

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


def dj_coded(request: Any) -> HttpResponse:
    response = HttpResponse(PAGE.encode(), content_type="text/html")
    response["Content-Encoding"] = "x-unknown"
    return response


def dj_untyped(request: Any) -> HttpResponse:
    return HttpResponse(PAGE, content_type="unknown/unknown")


def dj_utf16(request: Any) -> HttpResponse:
    return HttpResponse(PAGE.encode("utf-16"), content_type="text/html; charset=utf-16")


def dj_json(request: Any) -> JsonResponse:
    return JsonResponse({"html": PAGE})


urlpatterns = [
    path("", dj_page),
    path("stream", dj_stream),
    path("gz", dj_gzip),
    path("utf16", dj_utf16),
    path("coded", dj_coded),
    path("untyped", dj_untyped),
    path("json", dj_json),
]


def django_app() -> Any:
    if not django_settings.configured:
        django_settings.configure(
            DEBUG=False,
            SECRET_KEY="django-test-secret-key-not-for-production",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.wsgi_apps",
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

    @app.get("/coded")
    def coded() -> Response:
        return Response(PAGE, mimetype="text/html", headers={"Content-Encoding": "x-unknown"})

    @app.get("/untyped")
    def untyped() -> Response:
        return Response(PAGE, content_type="unknown/unknown")

    @app.get("/utf16")
    def utf16() -> Response:
        return Response(PAGE.encode("utf-16"), content_type="text/html; charset=utf-16")

    @app.get("/json")
    def json_() -> Response:
        return make_response({"html": PAGE})

    return app


def wrapped(framework: str) -> Any:
    """The application behind ConsentGateWSGI, settings from the environment
    (CONSENTGATE_DATA_DIR, CONSENTGATE_SECRET_KEYS): what a deployment's wsgi.py does."""
    from consentgate.config import load_settings
    from consentgate.wsgi import ConsentGateWSGI

    inner = django_app() if framework == "django" else flask_app().wsgi_app
    return ConsentGateWSGI(inner, load_settings())
