"""The whole flow through the proxy in real headless Chromium.

A real upstream serves a corpus page carrying gtag.js and analytics.js and sets an
HttpOnly ``_ga`` cookie; `consentgate serve --upstream` sits in front. Third-party
hosts are answered by local fakes (route interception): the fake gtag.js counts its
runs. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route

from tests import support
from tests.support import banner_button as button
from tests.support import settle, wait_until
from tests.upstream import Upstream, running_upstream

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GA_HOSTS = ("googletagmanager.com", "google-analytics.com")
FAKE_GTAG = """(function () {
  window.__fakeGaRuns = (window.__fakeGaRuns || 0) + 1;
  new Image().src = 'https://www.google-analytics.com/g/collect?v=2&tid=G-FAKE';
})();"""
PAGE = "/pages/021.html?cookies=1"  # gtag.js + analytics.js; upstream sets HttpOnly _ga


class Fakes:
    def __init__(self, base: str) -> None:
        self.base = base
        self.requests: list[str] = []

    def ga_requests(self) -> list[str]:
        return [u for u in self.requests if (urlsplit(u).hostname or "").endswith(GA_HOSTS)]

    def handle(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
            return
        self.requests.append(url)
        if "/gtag/js" in url:
            route.fulfill(body=FAKE_GTAG, content_type="text/javascript")
        elif ".js" in url:
            route.fulfill(body="/* fake */", content_type="text/javascript")
        else:
            route.fulfill(status=204, body="")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("browser-data")
    env = {"CONSENTGATE_SECRET_KEYS": "browser-test-key-0123456789abcdef"}
    with support.consentgate_server(
        "--upstream", upstream.url, "--data-dir", str(data), env=env
    ) as (base, _proc):
        yield base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with support.chromium() as browser:
        yield browser


def cookies(page: Page) -> dict[str, dict[str, Any]]:
    return {c["name"]: dict(c) for c in page.context.cookies()}


def test_consent_flow_through_the_proxy(chromium: Browser, proxy: str) -> None:
    context = chromium.new_context(viewport={"width": 1024, "height": 700})
    fakes = Fakes(proxy)
    context.route("**/*", fakes.handle)
    page = context.new_page()
    try:
        # before a decision: banner shown, no GA request, the upstream's _ga dropped
        page.goto(proxy + PAGE)
        page.locator("#consentgate .b").wait_for()
        settle(page)
        assert fakes.ga_requests() == []
        assert page.evaluate("window.__fakeGaRuns || 0") == 0
        assert "_ga" not in cookies(page)
        assert "PHPSESSID" in cookies(page)  # necessary cookies pass

        # accept: the held-back gtag.js runs and reports
        button(page, "Accept all").click()
        wait_until(page, "(window.__fakeGaRuns || 0) >= 1")
        settle(page)
        assert any("/gtag/js" in u for u in fakes.ga_requests())
        assert any("/g/collect" in u for u in fakes.ga_requests())

        # next page load: the upstream's HttpOnly _ga now reaches the browser
        page.reload()
        settle(page)
        ga = cookies(page).get("_ga")
        assert ga is not None and ga["httpOnly"] is True

        # withdraw (re-open control, Reject all): the server expires the HttpOnly _ga
        page.locator("#consentgate .f").click()
        with page.expect_navigation():
            button(page, "Reject all").click()
        settle(page)
        assert "_ga" not in cookies(page)
        before = len(fakes.ga_requests())
        page.reload()
        settle(page)
        assert "_ga" not in cookies(page)
        assert len(fakes.ga_requests()) == before
        assert page.evaluate("window.__fakeGaRuns || 0") == 0
    finally:
        context.close()
