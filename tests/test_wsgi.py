"""ConsentGateWSGI around a real Django application and a real Flask application, each
served by a real WSGI server on loopback (the standard library's ``wsgiref``: no extra
dependency, and a strict PEP 3333 checker of what the adapter hands it), plus one
Chromium visit: GA blocked without consent, running after Accept all."""

from __future__ import annotations

import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from consentgate.cli import cli
from consentgate.config import Settings, load_settings
from consentgate.wsgi import ConsentGateWSGI, asgi_scope
from tests import support
from tests.wsgi_apps import ACTIVE, BLOCKED, KEYS, PAGE, closed, django_app, flask_app

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
    assert "content-length" not in r.headers or int(r.headers["content-length"]) == len(r.content)
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


def test_the_shared_page_plan_reads_responses_as_a_browser_does(site: tuple[str, str]) -> None:
    _, base = site
    gz = httpx.get(base + "/gz", headers={"Accept-Encoding": "gzip"})
    assert gz.status_code == 200 and BLOCKED in gz.text and ACTIVE not in gz.text  # decoded
    untyped = httpx.get(base + "/untyped")  # sniffed as HTML, as a browser would
    assert untyped.status_code == 200 and BLOCKED in untyped.text
    assert httpx.get(base + "/json").json() == {"html": PAGE}  # not a document: untouched


def test_unsafe_pages_are_refused_without_full_consent(site: tuple[str, str]) -> None:
    _, base = site
    for page in ("/coded", "/utf16"):
        r = httpx.get(base + page)
        assert r.status_code == 502, page
        assert "googletagmanager" not in r.text and "could not be made safe" in r.text
    jar = {"consentgate": consent_cookie(base)}
    r = httpx.get(base + "/utf16", cookies=jar)
    assert r.status_code == 200 and r.content == PAGE.encode("utf-16")  # all granted: as is


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


def test_an_error_escaping_the_page_plan_is_refused_by_the_adapter(
    site: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection before the visitor's decision exists: the plan lets the error
    out, and the adapter refuses the page instead of giving the application's."""
    from consentgate import rewriting

    def broken(*args: Any) -> Any:
        raise RuntimeError("injected")

    _, base = site
    monkeypatch.setattr(rewriting, "decide_scope", broken)
    for path in ("/", "/stream"):
        r = httpx.get(base + path)
        assert r.status_code == 502 and "could not be made safe" in r.text, path
        assert "googletagmanager" not in r.text


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


def test_gunicorn_preforked_workers_share_one_log(tmp_path: Path) -> None:
    """gunicorn, 2 pre-forked workers, the application loaded before the fork
    (``--preload``): every worker starts its own event loop and store after the fork;
    decisions from both land in one log whose chains verify."""
    port = support.free_port()
    env = support.cli_env(
        {"CONSENTGATE_DATA_DIR": str(tmp_path / "data"), "CONSENTGATE_SECRET_KEYS": KEYS}
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--preload",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "tests.wsgi_apps:wrapped('flask')",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=support.REPO, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    ids: set[str] = set()
    try:
        support.wait_http(base + "/_consent/healthz", proc=proc)
        for _ in range(12):
            r = httpx.post(base + "/_consent/api/consent", json={"method": "reject_all"})
            assert r.status_code == 201, r.text
            ids.add(r.json()["consent_id"])
            page = httpx.get(
                base + "/", headers={"Cookie": f"consentgate={r.cookies['consentgate']}"}
            )
            assert BLOCKED in page.text and ACTIVE not in page.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert len(ids) == 12
    verify = CliRunner().invoke(
        cli, ["verify", "--data-dir", str(tmp_path / "data")], env={"CONSENTGATE_SECRET_KEYS": KEYS}
    )
    assert verify.exit_code == 0 and verify.output.startswith("ok: 12 records"), verify.output


def test_asgi_scope_of_a_wsgi_request() -> None:
    environ = {
        "REQUEST_METHOD": "post",
        "PATH_INFO": "/caf\u00c3\u00a9/a b",  # PEP 3333: UTF-8 bytes decoded as latin-1
        "RAW_URI": "/caf%C3%A9/a%20b?x=1",
        "QUERY_STRING": "x=1",
        "SCRIPT_NAME": "/shop",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "8080",
        "REMOTE_ADDR": "203.0.113.9",
        "REMOTE_PORT": "5555",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "HTTP_COOKIE": "consentgate=abc",
        "HTTP_X_FORWARDED_FOR": "198.51.100.1",
        "wsgi.url_scheme": "https",
    }
    scope = asgi_scope(environ)
    assert scope["method"] == "POST" and scope["scheme"] == "https"
    assert scope["path"] == "/caf\u00e9/a b" and scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"x=1" and scope["root_path"] == "/shop"
    assert scope["client"] == ("203.0.113.9", 5555)
    assert scope["server"] == ("shop.example", 8080)
    assert sorted(scope["headers"]) == [
        (b"content-type", b"application/json"),
        (b"cookie", b"consentgate=abc"),
        (b"x-forwarded-for", b"198.51.100.1"),
    ]
