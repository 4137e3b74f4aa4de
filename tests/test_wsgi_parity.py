"""The WSGI adapter and the ASGI middleware give the same answer for the same response:
Hypothesis generates what an application sends (type, coding, blocks, cookies) and the
visitor's consent; a WSGI application (called in process, as a server would) behind
ConsentGateWSGI and a Starlette application behind ConsentGateMiddleware must give the
same status, the same body and the same headers. The adapter has no page logic of its
own, so any difference is a bug in carrying WSGI to the shared page plan."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.testclient import TestClient

from consentgate.config import Settings, load_settings
from consentgate.middleware import ConsentGateMiddleware
from consentgate.wsgi import ConsentGateWSGI
from tests.wsgi_apps import ACTIVE, PAGE

KEYS = "wsgi-parity-key-0123456789abcdef"
GZ = gzip.compress(PAGE.encode(), mtime=0)

#: what the application sends for the current example (both applications read it)
current: dict[str, Any] = {}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response(f"{current['status']} X", list(current["headers"]))
    yield from current["blocks"]


async def asgi_page(request: Request) -> StreamingResponse:
    async def body() -> Any:
        for block in current["blocks"]:
            yield block

    response = StreamingResponse(body(), status_code=current["status"])
    del response.headers["content-type"]  # exactly the application's headers
    for name, value in current["headers"]:
        response.headers.append(name, value)
    return response


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await (await asgi_page(Request(scope, receive)))(scope, receive, send)


@pytest.fixture(scope="module")
def cg_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("wsgi-parity")
    return load_settings(
        None, environ={"CONSENTGATE_SECRET_KEYS": KEYS, "CONSENTGATE_DATA_DIR": str(data)}
    )


@pytest.fixture(scope="module")
def both(cg_settings: Settings) -> Iterator[tuple[ConsentGateWSGI, TestClient, dict[str, str]]]:
    wsgi = ConsentGateWSGI(wsgi_app, cg_settings)
    with TestClient(ConsentGateMiddleware(asgi_app, cg_settings)) as client:
        cookies = {"none": ""}
        for name, body in (
            ("statistics", {"method": "custom", "granted": ["statistics"]}),
            ("all", {"method": "accept_all"}),
        ):
            made = client.post("/_consent/api/consent", json=body)
            assert made.status_code == 201
            cookies[name] = made.cookies["consentgate"]
            client.cookies.clear()
        yield wsgi, client, cookies
    wsgi.close()


def call_wsgi(app: ConsentGateWSGI, cookie: str) -> tuple[int, list[tuple[str, str]], bytes]:
    environ: dict[str, Any] = {"PATH_INFO": "/page", "wsgi.input": io.BytesIO(b"")}
    if cookie:
        environ["HTTP_COOKIE"] = f"consentgate={cookie}"
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = "testserver"
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen[:] = [int(status.split()[0]), headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen[0], seen[1], body


COMPARED = ("content-type", "content-encoding", "etag", "vary", "set-cookie", "cache-control")


def headers_of(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in pairs if k.lower() in COMPARED)


TYPES = [
    "text/html; charset=utf-8",
    "text/html",
    "text/html; charset=utf-16",
    "unknown/unknown",
    "text/plain",
    "application/json",
    "image/svg+xml",
    None,
]
COOKIES = ["PHPSESSID=s1; Path=/", "_ga=GA1.1.1; Path=/", "_fbp=fb.1; Path=/"]


@st.composite
def responses(draw: st.DrawFn) -> dict[str, Any]:
    ctype = draw(st.sampled_from(TYPES))
    coding = draw(st.sampled_from([None, "gzip", "x-unknown"]))
    body = PAGE.encode("utf-16" if ctype and "utf-16" in ctype else "utf-8")
    if draw(st.booleans()):
        body = b"  \n" + body  # leading whitespace before the doctype
    if coding == "gzip":
        body = gzip.compress(body)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    blocks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    headers = [("content-type", ctype)] if ctype else []
    if coding:
        headers.append(("content-encoding", coding))
    headers += [("set-cookie", c) for c in draw(st.lists(st.sampled_from(COOKIES), unique=True))]
    if draw(st.booleans()):
        headers.append(("etag", '"v1"'))
    return {
        "status": draw(st.sampled_from([200, 404, 500])),
        "headers": headers,
        "blocks": blocks,
        "consent": draw(st.sampled_from(["none", "statistics", "all"])),
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(response=responses())
@example(  # found: a UTF-16 page whose first block is its BOM alone (both cut, no 502)
    response={
        "status": 200,
        "headers": [("content-type", "text/html; charset=utf-16")],
        "blocks": [PAGE.encode("utf-16")[:2], PAGE.encode("utf-16")[2:]],
        "consent": "none",
    }
)
@example(  # a gzip page in many blocks, to a visitor without consent: decoded and rewritten
    response={
        "status": 404,
        "headers": [("content-type", "text/html"), ("content-encoding", "gzip")],
        "blocks": [GZ[i : i + 9] for i in range(0, len(GZ), 9)],
        "consent": "none",
    }
)
def test_wsgi_and_asgi_give_the_same_answer(
    both: tuple[ConsentGateWSGI, TestClient, dict[str, str]], response: dict[str, Any]
) -> None:
    wsgi, client, cookies = both
    current.clear()
    current.update(response)
    cookie = cookies[response["consent"]]
    try:
        status, headers, body = call_wsgi(wsgi, cookie)
    except Exception as exc:  # the response was cut after its headers went out
        wsgi_cut: Exception | None = exc
    else:
        wsgi_cut = None
    client.cookies.clear()
    try:
        request = {"headers": {"Cookie": f"consentgate={cookie}"} if cookie else {}}
        with client.stream("GET", "/page", **request) as asgi:  # type: ignore[arg-type]
            raw = b"".join(asgi.iter_raw())
    except Exception as exc:
        assert wsgi_cut is not None and type(exc) is type(wsgi_cut), (exc, wsgi_cut)
        return
    assert wsgi_cut is None, wsgi_cut
    assert status == asgi.status_code
    assert body == raw
    assert headers_of(headers) == headers_of(list(asgi.headers.multi_items()))
    ctype = dict(response["headers"]).get("content-type")
    document = ctype is None or ctype.startswith("text/html") or ctype == "unknown/unknown"
    if document and status != 502 and response["consent"] == "none":
        assert ACTIVE.encode() not in body  # GA never served live without consent
