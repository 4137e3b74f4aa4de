"""ConsentGateMiddleware around a real Starlette app, in process (ASGI transport)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from consentgate.config import Settings
from consentgate.middleware import ConsentGateMiddleware

PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>shop</title>'
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    "<script>window.dataLayer=[];function gtag(){dataLayer.push(arguments)}"
    "gtag('js',new Date());</script></head><body><h1>Shop</h1>"
    '<iframe src="https://www.youtube.com/embed/x"></iframe></body></html>'
)


async def page(request):  # type: ignore[no-untyped-def]
    return HTMLResponse(PAGE, headers={"ETag": '"v1"'})


async def csp(request):  # type: ignore[no-untyped-def]
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": "script-src 'nonce-abc123'"})


async def stream(request):  # type: ignore[no-untyped-def]
    async def body() -> AsyncIterator[bytes]:
        data = PAGE.encode()
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    return StreamingResponse(body(), media_type="text/html; charset=utf-8")


async def json_(request):  # type: ignore[no-untyped-def]
    return JSONResponse({"html": PAGE})


async def gz(request):  # type: ignore[no-untyped-def]
    return Response(
        gzip.compress(PAGE.encode()),
        media_type="text/html",
        headers={"Content-Encoding": "gzip"},
    )


inner = Starlette(
    routes=[
        Route("/", page),
        Route("/csp", csp),
        Route("/stream", stream),
        Route("/json", json_),
        Route("/gz", gz),
    ]
)


@pytest.fixture
async def mw(settings: Settings) -> AsyncIterator[ConsentGateMiddleware]:
    middleware = ConsentGateMiddleware(inner, settings=settings)
    async with middleware.gate.lifespan():
        yield middleware


@pytest.fixture
async def web(mw: ConsentGateMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mw)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


async def test_html_without_consent_is_rewritten(web: httpx.AsyncClient) -> None:
    r = await web.get("/")
    assert r.status_code == 200
    body = r.text
    assert '<script type="text/plain" data-consent="statistics" async src=' in body
    assert 'data-consentgate-src="https://www.youtube.com/embed/x"' in body
    assert body.count("/_consent/banner.js") == 1
    assert body.index("/_consent/banner.js") < body.index("<title>")
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["etag"].startswith('W/"v1-cgx')
    assert "cookie" in r.headers["vary"].lower()


async def test_granted_consent_leaves_elements_active(web: httpx.AsyncClient) -> None:
    r = await web.post(
        "/_consent/api/consent", json={"granted": ["statistics"], "method": "custom"}
    )
    assert r.status_code == 201
    r = await web.get("/")
    assert '<script async src="https://www.googletagmanager.com/gtag/js?id=G-1">' in r.text
    assert "gtag('js',new Date());</script>" in r.text
    assert 'data-consent="marketing"' in r.text  # the YouTube embed is still held back


async def test_streamed_html_is_rewritten_in_pieces(web: httpx.AsyncClient) -> None:
    whole = (await web.get("/")).text
    r = await web.get("/stream")
    assert "content-length" not in r.headers or int(r.headers["content-length"]) == len(r.content)
    assert r.text == whole


async def test_csp_nonce_is_carried_by_the_injected_markup(web: httpx.AsyncClient) -> None:
    r = await web.get("/csp")
    assert 'nonce="abc123"' in r.text


async def test_non_html_passes_and_compressed_html_is_rewritten(web: httpx.AsyncClient) -> None:
    r = await web.get("/json")
    assert r.json() == {"html": PAGE}
    r = await web.get("/gz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers  # decoded, rewritten, sent as identity
    assert r.text == (await web.get("/")).text


async def test_consent_endpoints_are_served(web: httpx.AsyncClient) -> None:
    r = await web.get("/_consent/healthz")
    assert r.status_code == 200
    r = await web.get("/_consent/nope")
    assert r.status_code == 404 and "error" in r.json()


async def test_lifespan_runs_ours_and_the_apps(settings: Settings) -> None:
    events: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    middleware = ConsentGateMiddleware(app, settings=settings)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive():  # type: ignore[no-untyped-def]
        return inbox.pop(0)

    async def send(message):  # type: ignore[no-untyped-def]
        if message["type"] == "lifespan.startup.complete":
            assert await middleware.runtime.store.ping()  # our store is open
        sent.append(message["type"])

    await middleware({"type": "lifespan"}, receive, send)
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
