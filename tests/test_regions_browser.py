"""US-CA vs DE in real headless Chromium, through a real `consentgate serve` proxy in
front of the shop upstream. The browser sends the CDN's region headers itself from
127.0.0.1, a trusted proxy here. Tracker hosts are answered by local fakes that count
their executions; nothing leaves 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route

from tests import support
from tests.regions_shop import shop_proxy, shop_upstream

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENV = {"CONSENTGATE_SECRET_KEYS": "regions-browser-test-key-0123456789"}
DE = {"CF-IPCountry": "DE"}
US_CA = {"CF-IPCountry": "US", "CF-Region-Code": "CA"}
FAKE_GTAG = "window.__ga = (window.__ga || 0) + 1; document.cookie = '_ga=GA1.1.1.1; path=/';"
FAKE_FB = "window.__fb = (window.__fb || 0) + 1;"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("regions-browser")
    with (
        shop_upstream() as upstream,
        shop_proxy(tmp, upstream, ["127.0.0.1", "::1"], ENV) as (base, _config),
    ):
        yield base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with support.chromium() as browser:
        yield browser


class Visit:
    def __init__(self, browser: Browser, base: str, headers: dict[str, str]) -> None:
        self.base = base
        self.third_party: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(extra_http_headers=headers)
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
            return
        self.third_party.append(urlsplit(url).hostname or "")
        if "/gtag/js" in url:
            route.fulfill(body=FAKE_GTAG, content_type="text/javascript")
        elif "fbevents.js" in url:
            route.fulfill(body=FAKE_FB, content_type="text/javascript")
        elif "youtube" in url:
            route.fulfill(body="<!doctype html><title>video</title>", content_type="text/html")
        else:
            route.fulfill(status=204, body="")

    def open(self) -> None:
        self.third_party.clear()
        self.page.goto(self.base + "/shop")
        self.wait("document.querySelector('#consentgate') !== null")

    def wait(self, expression: str, timeout: float = 10.0) -> None:
        support.wait_until(self.page, expression, timeout)

    def runs(self) -> dict[str, Any]:
        return self.page.evaluate("({ga: window.__ga || 0, fb: window.__fb || 0})")

    def buttons(self) -> list[str]:
        return self.page.locator("#consentgate").get_by_role("button").all_inner_texts()

    def click(self, name: str) -> None:
        support.banner_button(self.page, name).click()

    def banner_text(self) -> str:
        return self.page.locator("#consentgate .b").inner_text()

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


def test_germany_blocks_until_accepted(chromium: Browser, proxy: str) -> None:
    visit = Visit(chromium, proxy, DE)
    visit.open()
    visit.wait("document.querySelector('#consentgate').shadowRoot.querySelector('.b') !== null")
    assert {"Accept all", "Reject all", "Customize"} <= set(visit.buttons())
    assert "Do Not Sell" not in visit.banner_text()
    visit.page.wait_for_timeout(300)
    assert visit.runs() == {"ga": 0, "fb": 0}
    assert visit.third_party == []  # nothing left for a tracker host before a decision
    assert "_ga=" not in visit.page.evaluate("document.cookie")
    visit.click("Accept all")
    visit.wait("(window.__ga || 0) === 1 && (window.__fb || 0) === 1")
    visit.close()


def test_california_runs_until_opt_out(chromium: Browser, proxy: str) -> None:
    visit = Visit(chromium, proxy, US_CA)
    visit.open()
    visit.wait("(window.__ga || 0) === 1 && (window.__fb || 0) === 1")  # opt-out: running
    buttons = visit.buttons()
    assert "Do Not Sell or Share My Personal Information" in buttons
    assert "Accept all" not in buttons and "Reject all" not in buttons
    assert "Opt-out preference signal honored" not in visit.banner_text()
    visit.page.wait_for_load_state("load")
    visit.third_party.clear()
    with visit.page.expect_navigation():  # marketing already ran: the page reloads
        visit.click("Do Not Sell or Share My Personal Information")
    visit.wait("(window.__ga || 0) === 1")
    visit.page.wait_for_timeout(300)
    assert visit.runs() == {"ga": 1, "fb": 0}  # after the reload: statistics only
    assert "connect.facebook.net" not in visit.third_party
    assert visit.page.locator("#consentgate .b").count() == 0  # decided: no notice
    visit.close()


def test_california_with_gpc(chromium: Browser, proxy: str) -> None:
    visit = Visit(chromium, proxy, {**US_CA, "Sec-GPC": "1"})
    visit.open()
    visit.wait("(window.__ga || 0) === 1")
    assert "Opt-out preference signal honored" in visit.banner_text()
    visit.page.wait_for_timeout(300)
    assert visit.runs()["fb"] == 0  # GPC: marketing refused without a click
    assert "connect.facebook.net" not in visit.third_party
    visit.click("OK")
    visit.wait("window.consentgate.consent !== null")
    consent = visit.page.evaluate("window.consentgate.consent")
    assert consent["regime"] == "opt-out" and consent["gpc"] is True
    assert "marketing" not in consent["granted"]
    visit.close()


def test_opt_out_notice_is_accessible_and_escape_acknowledges(
    chromium: Browser, proxy: str
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    visit = Visit(chromium, proxy, {**US_CA, "Sec-GPC": "1"})
    visit.page.emulate_media(reduced_motion="reduce")
    visit.open()
    visit.page.locator("#consentgate .b").wait_for()
    result = Axe().run(visit.page)
    serious = [
        f"{v['id']}: {[n['target'] for n in v['nodes']]}"
        for v in result.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    focused = "document.querySelector('#consentgate').shadowRoot.activeElement?.className"
    assert visit.page.evaluate(focused) == "b"  # focus moved into the notice
    visit.page.keyboard.press("Escape")  # closing the notice acknowledges it
    visit.wait("window.consentgate.consent !== null")
    assert visit.page.evaluate("window.consentgate.consent.regime") == "opt-out"
    assert visit.page.locator("#consentgate .b").count() == 0
    visit.close()


@pytest.fixture(scope="module")
def untrusting_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same shop behind a consentgate that trusts no peer here: the browser's
    region headers (from 127.0.0.1) are a spoof and must be ignored."""
    tmp = tmp_path_factory.mktemp("regions-browser-untrusting")
    with (
        shop_upstream() as upstream,
        shop_proxy(tmp, upstream, ["192.0.2.1"], ENV) as (base, _config),
    ):
        yield base


def assert_opt_in_banner_and_nothing_runs(visit: Visit) -> None:
    visit.open()
    visit.wait("document.querySelector('#consentgate').shadowRoot.querySelector('.b') !== null")
    assert {"Accept all", "Reject all", "Customize"} <= set(visit.buttons())
    assert "Do Not Sell" not in visit.banner_text()
    visit.page.wait_for_timeout(300)
    assert visit.runs() == {"ga": 0, "fb": 0}
    assert visit.third_party == []
    visit.click("Reject all")
    visit.page.wait_for_timeout(300)
    visit.open()
    visit.page.wait_for_timeout(300)
    assert visit.runs() == {"ga": 0, "fb": 0}
    assert visit.third_party == []
    visit.close()


def test_unknown_region_gets_the_strict_default(chromium: Browser, proxy: str) -> None:
    assert_opt_in_banner_and_nothing_runs(Visit(chromium, proxy, {}))


def test_spoofed_region_header_from_an_untrusted_peer_is_ignored(
    chromium: Browser, untrusting_proxy: str
) -> None:
    assert_opt_in_banner_and_nothing_runs(Visit(chromium, untrusting_proxy, US_CA))
