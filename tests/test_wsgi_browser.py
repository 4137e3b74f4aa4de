"""A Flask application and a Django application behind ConsentGateWSGI, served by a real
WSGI server on loopback, in headless Chromium: GA does not run for a visitor without
consent and runs once they click Accept all; the decision is recorded through the
WSGI application. Tracker hosts are answered by a local fake (route interception)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route
from support import banner_button, settle, wait_until
from support import chromium as launch_chromium

from consentgate.config import Settings
from consentgate.wsgi import ConsentGateWSGI
from tests.test_wsgi import cg_settings, serve  # noqa: F401
from tests.wsgi_apps import django_app, flask_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAKE_GTAG = "window.__gaRuns = (window.__gaRuns || 0) + 1; document.cookie = '_ga=GA1.1.1; path=/';"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_ga_waits_for_accept_all(chromium: Browser, cg_settings: Settings, framework: str) -> None:  # noqa: F811
    inner = flask_app().wsgi_app if framework == "flask" else django_app()
    wrapped = ConsentGateWSGI(inner, cg_settings)
    base, server = serve(wrapped)
    trackers: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(base):
            route.continue_()
            return
        trackers.append(url)
        if "/gtag/js" in url:
            route.fulfill(body=FAKE_GTAG, content_type="text/javascript")
        else:
            route.fulfill(status=204, body="")

    context = chromium.new_context()
    try:
        context.route("**/*", handle)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.locator("#consentgate .b").wait_for()
        settle(page)
        assert trackers == [] and page.evaluate("window.__gaRuns || 0") == 0
        assert {c["name"] for c in context.cookies()} == {"PHPSESSID"}
        banner_button(page, "Accept all").click()
        wait_until(page, "window.__gaRuns === 1")
        assert any("googletagmanager.com/gtag/js" in u for u in trackers)
        assert "consentgate" in {c["name"] for c in context.cookies()}
        page.reload()
        wait_until(page, "window.__gaRuns === 1")  # served active now, runs on load
        assert errors == []
    finally:
        context.close()
        server.shutdown()
        server.server_close()
        wrapped.close()
