"""The banner in real headless Chromium against a real ``consentgate serve``.

Every request to a tracker host is answered by a local fake (route interception): the
fake gtag.js counts its executions (``window.__fakeGaRuns`` and ``sessionStorage``) and
sets ``_ga``/``_gid`` as the real one does. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from support import REPO, consentgate_server, free_port, settle, static_site, wait_until
from support import banner_button as button
from support import chromium as launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Host names for the parent-domain test; every other host stays routed to the local fakes.
RESOLVE = "--host-resolver-rules=MAP www.shop.test 127.0.0.1"
TRACKER_HOSTS = ("googletagmanager.com", "google-analytics.com", "facebook.net", "facebook.com")

FAKE_GTAG = """(function () {
  var n = +(sessionStorage.getItem('fakeGaRuns') || 0) + 1;
  sessionStorage.setItem('fakeGaRuns', n);
  window.__fakeGaRuns = (window.__fakeGaRuns || 0) + 1;
  document.cookie = '_ga=GA1.1.1234567890.1700000000; path=/; max-age=63072000';
  document.cookie = '_gid=GA1.1.987654321.1700000000; path=/; max-age=86400';
  new Image().src = 'https://www.google-analytics.com/g/collect?v=2&tid=G-DEMO000000';
})();"""
FAKE_OTHER = "window.__fakeOtherRuns = (window.__fakeOtherRuns || 0) + 1;"
BANNER = "#consentgate .b"
FAB = "#consentgate .f"
WITHDRAW = "#consentgate .u"
# The screenshots in docs/ are rewritten only on request (they differ by a pixel or two
# between runs); every run still takes and checks them.
UPDATE_SCREENSHOTS = os.environ.get("CONSENTGATE_UPDATE_SCREENSHOTS") == "1"


class Fakes:
    """Answers third-party requests locally and remembers every one."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.requests: list[str] = []
        self.local: tuple[str, ...] = ()

    def tracker_requests(self) -> list[str]:
        return [u for u in self.requests if (urlsplit(u).hostname or "").endswith(TRACKER_HOSTS)]

    def handle(self, route: Route) -> None:
        url = route.request.url
        if url.startswith((self.base, *self.local)):
            route.continue_()
            return
        self.requests.append(url)
        if "/gtag/js" in url:
            route.fulfill(body=FAKE_GTAG, content_type="text/javascript")
        elif url.endswith(".js") or ".js?" in url:
            route.fulfill(body=FAKE_OTHER, content_type="text/javascript")
        elif "youtube" in url:
            route.fulfill(body="<!doctype html><title>video</title>", content_type="text/html")
        else:
            route.fulfill(status=204, body="")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium(RESOLVE) as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("banner-data")
    with consentgate_server("--data-dir", str(data)) as (base, _proc):
        yield base


def open_context(browser: Browser, base: str, **options: Any) -> tuple[BrowserContext, Fakes]:
    options.setdefault("viewport", {"width": 1024, "height": 700})
    context = browser.new_context(**options)
    fakes = Fakes(base)
    context.route("**/*", fakes.handle)
    return context, fakes


@pytest.fixture
def visit(chromium: Browser, server: str) -> Iterator[tuple[Page, Fakes]]:
    context, fakes = open_context(chromium, server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, fakes
    context.close()
    assert errors == []


def ga_runs(page: Page) -> tuple[int, int]:
    """(runs on this page, runs in this tab's session)."""
    runs = page.evaluate("[window.__fakeGaRuns || 0, +(sessionStorage.getItem('fakeGaRuns') || 0)]")
    return runs[0], runs[1]


def cookie_names(page: Page) -> set[str]:
    return {c["name"] for c in page.context.cookies()}


def consent(page: Page) -> Any:
    return page.evaluate("window.consentgate.consent")


def test_reject_never_loads_trackers(visit: tuple[Page, Fakes], server: str) -> None:
    page, fakes = visit
    page.goto(server + "/")
    page.locator(BANNER).wait_for()
    settle(page)
    assert fakes.tracker_requests() == []
    assert cookie_names(page) == set()
    button(page, "Reject all").click()
    page.locator(FAB).wait_for()
    assert page.locator(BANNER).count() == 0
    page.reload()
    page.locator(FAB).wait_for()
    settle(page)
    assert page.locator(BANNER).count() == 0
    assert consent(page)["granted"] == ["necessary"]
    assert fakes.tracker_requests() == []
    assert ga_runs(page) == (0, 0)
    assert cookie_names(page) == {"consentgate"}


def test_accept_runs_tracker_once_and_state_survives_reload(
    visit: tuple[Page, Fakes], server: str
) -> None:
    page, fakes = visit
    page.goto(server + "/")
    page.locator(BANNER).wait_for()
    settle(page)
    assert fakes.tracker_requests() == []
    page.evaluate(
        "document.addEventListener('consentgate:change', e => window.__changes = e.detail)"
    )
    button(page, "Accept all").click()
    wait_until(page, "window.__fakeGaRuns === 1")
    settle(page)
    assert ga_runs(page) == (1, 1)
    assert {"_ga", "_gid", "consentgate"} <= cookie_names(page)
    assert page.evaluate("window.__changes.granted").count("statistics") == 1
    layer = page.evaluate(
        "dataLayer.map(a => a.event || (a[0] === 'consent' ? a[0] + ':' + a[1] : null))"
    )
    assert layer.index("consent:default") < layer.index("consent:update")
    assert "consentgate_change" in layer
    update = page.evaluate("[...dataLayer].reverse().find(a => a[1] === 'update')[2]")
    assert update["analytics_storage"] == update["ad_storage"] == "granted"
    assert any("google-analytics.com/g/collect" in u for u in fakes.tracker_requests())

    page.reload()
    page.locator(FAB).wait_for()
    settle(page)
    assert page.locator(BANNER).count() == 0
    assert "statistics" in consent(page)["granted"]
    assert ga_runs(page) == (1, 2)  # once on this page load too


def test_withdraw_takes_one_click_deletes_cookies_and_stops_trackers(
    visit: tuple[Page, Fakes], server: str
) -> None:
    page, fakes = visit
    page.goto(server + "/")
    assert page.locator(WITHDRAW).count() == 0  # nothing granted: nothing to withdraw
    button(page, "Accept all").click()  # one click to accept
    wait_until(page, "window.__fakeGaRuns === 1")
    assert {"_ga", "_gid"} <= cookie_names(page)
    page.reload()
    page.locator(FAB).wait_for()
    wait_until(page, "window.__fakeGaRuns === 1")  # granted: runs on this page too
    withdraw = button(page, "Withdraw consent")
    box = withdraw.bounding_box()
    assert box is not None and box["width"] >= 24 and box["height"] >= 24
    is_delete = lambda r: r.request.method == "DELETE"  # noqa: E731
    with page.expect_response(is_delete) as deleted, page.expect_navigation():
        withdraw.click()  # one click to withdraw (the page reloads)
    assert deleted.value.status == 200
    page.locator(FAB).wait_for()
    settle(page)
    before = len(fakes.tracker_requests())
    assert not {"_ga", "_gid"} & cookie_names(page)
    assert consent(page)["granted"] == ["necessary"]
    assert ga_runs(page) == (0, 2)  # no run after the withdrawal
    assert not page.locator(WITHDRAW).is_visible()  # nothing left to withdraw
    page.reload()
    settle(page)
    assert ga_runs(page) == (0, 2)
    assert len(fakes.tracker_requests()) == before
    assert not {"_ga", "_gid"} & cookie_names(page)
    # the consent log (the visitor's receipt) records the withdrawal last
    receipt = page.request.get(server + "/_consent/api/consent/receipt").json()
    methods = [r["method"] for r in receipt["records"]]
    assert methods == ["accept_all", "withdraw"]


def test_withdraw_deletes_cookies_on_parent_domains(chromium: Browser, server: str) -> None:
    port = urlsplit(server).port
    shop = f"http://www.shop.test:{port}"
    context, fakes = open_context(chromium, server)
    fakes.local = (shop,)
    page = context.new_page()
    try:
        page.goto(shop + "/")
        button(page, "Customize").click()
        page.locator("#consentgate [role=switch][name=statistics]").check()
        page.locator("#consentgate [role=switch][name=marketing]").check()
        button(page, "Save choices").click()
        page.locator(FAB).wait_for()
        # granted: trackers' cookies on the host and its parent domain (before a decision
        # they would be expired on the first page)
        context.add_cookies(
            [
                {"name": "_ga", "value": "1", "domain": ".shop.test", "path": "/"},
                {"name": "_ga_ABC123", "value": "1", "domain": ".www.shop.test", "path": "/"},
                {"name": "_gid", "value": "1", "url": shop + "/"},  # host-only
                {"name": "_fbp", "value": "1", "domain": ".shop.test", "path": "/"},
                {"name": "PHPSESSID", "value": "1", "domain": ".shop.test", "path": "/"},
            ]
        )
        assert {"_ga", "_ga_ABC123", "_gid", "_fbp"} <= cookie_names(page)
        page.locator(FAB).click()
        page.locator("#consentgate [role=switch][name=statistics]").uncheck()
        with page.expect_navigation():  # a category withdrawn: reload
            button(page, "Save choices").click()
        page.locator(FAB).wait_for()
        names = cookie_names(page)
        assert not {"_ga", "_ga_ABC123", "_gid"} & names  # statistics: gone everywhere
        assert {"_fbp", "PHPSESSID"} <= names  # marketing still granted; necessary kept
        assert consent(page)["granted"] == ["necessary", "marketing"]
    finally:
        context.close()


def test_first_layer_equal_buttons_close_is_refusal_no_wall(
    visit: tuple[Page, Fakes], server: str
) -> None:
    page, fakes = visit
    page.goto(server + "/privacy")
    page.locator(BANNER).wait_for()
    names = ["Accept all", "Reject all", "Customize"]
    boxes = [button(page, n).bounding_box() for n in names]
    styles = [
        button(page, n).evaluate(
            "b => { const s = getComputedStyle(b); "
            "return [s.fontWeight, s.fontSize, s.backgroundColor, s.color, s.borderWidth] }"
        )
        for n in names
    ]
    assert all(b is not None for b in boxes)
    assert len({(round(b["width"]), round(b["height"])) for b in boxes if b}) == 1
    assert len({json.dumps(s) for s in styles}) == 1
    # No cookie wall: the page under the banner stays usable.
    assert page.evaluate("document.elementFromPoint(innerWidth / 2, 40).closest('header')")
    page.locator("main").get_by_role("button", name="cookie settings").click()  # the page's
    page.locator("#consentgate [aria-modal=true]").wait_for()
    switches = page.locator("#consentgate [role=switch]")
    assert switches.count() == 5
    states = switches.evaluate_all("s => s.map(i => [i.name, i.checked, i.disabled])")
    assert states[0] == ["necessary", True, True]
    assert all(not checked and not disabled for _, checked, disabled in states[1:])
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.keyboard.press("Escape")  # closing without a choice: refusal
    page.locator(BANNER).wait_for(state="detached")
    body = json.loads(posted.value.post_data or "{}")
    assert body["method"] == "close" and body["granted"] == ["necessary"]
    page.locator(FAB).wait_for()
    assert consent(page)["granted"] == ["necessary"]
    assert fakes.tracker_requests() == []
    # The declaration is embedded on the privacy page.
    # the seed table and the catalog's Meta Pixel and YouTube cookies
    assert page.locator(".consentgate-declaration tbody tr").count() == 10


def test_keyboard_only(visit: tuple[Page, Fakes], server: str) -> None:
    page, _ = visit
    page.goto(server + "/")
    page.locator(BANNER).wait_for()
    focused = (
        "() => { const a = document.querySelector('#consentgate').shadowRoot.activeElement;"
        " return a && (a.className || a.dataset.a || a.name || a.tagName) }"
    )
    assert page.evaluate(focused) == "b"  # focus moved into the banner
    seen = []
    for _ in range(6):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(focused))
        if seen[-1] == "custom":
            break
    assert seen[-3:] == ["accept", "reject", "custom"]
    outline = page.evaluate(
        "() => getComputedStyle(document.querySelector('#consentgate').shadowRoot"
        ".activeElement).outlineWidth"
    )
    assert float(outline.removesuffix("px")) >= 2  # visible focus
    page.keyboard.press("Enter")
    page.locator("#consentgate [aria-modal=true]").wait_for()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate(focused) == "statistics":
            break
    assert page.evaluate(focused) == "statistics"
    page.keyboard.press("Space")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate(focused) == "save":
            break
    page.keyboard.press("Enter")
    wait_until(page, "window.__fakeGaRuns === 1")
    assert consent(page)["granted"] == ["necessary", "statistics"]
    assert page.evaluate(focused) == "f"  # focus back on the re-open control
    page.keyboard.press("Tab")  # next: the one-click withdrawal
    assert page.evaluate(focused) == "u"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.locator("#consentgate [aria-modal=true]").wait_for()
    assert page.evaluate(focused) == "b s"
    page.keyboard.press("Escape")  # closing the settings keeps the choice
    page.locator(BANNER).wait_for(state="detached")
    assert consent(page)["granted"] == ["necessary", "statistics"]


def check_screenshot(page: Page, name: str) -> None:
    """Take a screenshot of the viewport and check it is one; write it to docs/ only when
    CONSENTGATE_UPDATE_SCREENSHOTS=1 (a test run leaves the checkout unchanged)."""
    png = page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1024, 700)
    if UPDATE_SCREENSHOTS:
        (REPO / "docs" / name).write_bytes(png)


def test_axe_both_layers_controls_and_screenshots(visit: tuple[Page, Fakes], server: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page, _ = visit
    axe = Axe()
    page.emulate_media(reduced_motion="reduce")  # no fade-in half way through
    page.goto(server + "/")
    page.locator(BANNER).wait_for()
    serious = {"serious", "critical"}

    def problems() -> list[str]:
        result = axe.run(page)
        return [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}"
            for v in result.response["violations"]
            if v["impact"] in serious
        ]

    assert problems() == []
    check_screenshot(page, "banner-first-layer.png")
    button(page, "Customize").click()
    page.locator("#consentgate [aria-modal=true]").wait_for()
    page.locator("#consentgate summary").nth(1).click()  # the statistics cookies
    page.locator("#consentgate details[open] li").last.scroll_into_view_if_needed()
    assert problems() == []
    check_screenshot(page, "banner-second-layer.png")
    button(page, "Accept all").click()
    page.locator(WITHDRAW).wait_for()  # the floating controls: settings and withdraw
    assert problems() == []
    check_screenshot(page, "banner-controls.png")


def test_activation_order_nonce_and_exactly_once(visit: tuple[Page, Fakes], server: str) -> None:
    page, fakes = visit
    violations: list[str] = []
    # the enforced policy's violations; the report-only policy the console's discovery adds
    # reports every third-party load by design (docs/console.md)
    page.on(
        "console",
        lambda m: (
            violations.append(m.text)
            if "Content Security" in m.text and "report-only" not in m.text
            else 0
        ),
    )
    page.goto(server + "/marked")
    page.locator(BANNER).wait_for()
    assert page.evaluate("window.__demoOrder") is None
    button(page, "Customize").click()
    page.locator("#consentgate [role=switch][name=statistics]").check()
    button(page, "Save choices").click()
    wait_until(page, "window.__fakeGaRuns === 1")
    order = ["ga-inline", "cookiebot-statistics", "vanilla-analytics"]
    assert page.evaluate("window.__demoOrder") == order
    assert page.locator("iframe").get_attribute("src") is None
    gtag = page.locator("script[src*='gtag/js']")
    assert gtag.evaluate("s => [s.type, s.async, s.dataset.consent, s.nonce.length > 0]") == [
        "",
        True,
        "statistics",
        True,
    ]
    # Grant marketing too: only the newly allowed elements run; nothing runs twice.
    page.locator(FAB).click()
    page.locator("#consentgate [role=switch][name=marketing]").check()
    button(page, "Save choices").click()
    wait_until(page, "window.__demoOrder.length === 5")
    settle(page)
    assert page.evaluate("window.__demoOrder") == [*order, "marketing", "statistics+marketing"]
    assert ga_runs(page) == (1, 1)
    iframe = page.locator("iframe")
    assert iframe.get_attribute("src", timeout=2000) == "https://www.youtube.com/embed/M7lc1UVf-VE"
    assert iframe.get_attribute("data-consentgate-src") is None
    assert any("youtube.com/embed" in u for u in fakes.requests)
    assert violations == []


def test_gpc_refuses_marketing_by_default_an_explicit_choice_outranks_it(
    chromium: Browser, server: str
) -> None:
    context, _ = open_context(chromium, server, extra_http_headers={"Sec-GPC": "1"})
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    page = context.new_page()
    try:
        page.goto(server + "/marked")
        page.locator(BANNER).wait_for()
        assert "Global Privacy Control" in page.locator(BANNER).inner_text()
        settle(page)
        assert context.cookies() == [] and page.evaluate("document.cookie") == ""
        # the second layer: marketing off by default
        button(page, "Customize").click()
        marketing = page.locator("#consentgate [role=switch][name=marketing]")
        assert not marketing.is_checked()
        assert context.cookies() == []  # still nothing written before a decision
        # an explicit "Accept all" outranks the signal: marketing too, recorded with GPC
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            button(page, "Accept all").click()
        body = json.loads(posted.value.request.post_data or "{}")
        assert body["method"] == "accept_all" and "marketing" in body["granted"]
        recorded = posted.value.json()
        assert recorded["gpc"] is True and "marketing" in recorded["granted"]
        wait_until(page, "window.__fakeGaRuns === 1")
        wait_until(page, "window.__demoOrder.includes('marketing')")
        page.reload()  # the signal is still sent: the recorded choice still wins
        page.locator(FAB).wait_for()
        assert "marketing" in consent(page)["granted"]
    finally:
        context.close()


def test_small_screen_language_and_reduced_motion(chromium: Browser, server: str) -> None:
    context, _ = open_context(
        chromium,
        server,
        viewport={"width": 320, "height": 560},
        locale="ru-RU",
        reduced_motion="reduce",
    )
    page = context.new_page()
    try:
        page.goto(server + "/")
        page.locator(BANNER).wait_for()
        assert page.locator("#consentgate").get_attribute("lang") == "ru"
        assert "Принять все" in page.locator(BANNER).inner_text()
        box = page.locator(BANNER).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        for name in ("Принять все", "Отклонить все", "Настроить"):
            b = button(page, name)
            b.scroll_into_view_if_needed()
            assert b.is_visible()
        animation = page.locator(BANNER).evaluate("b => getComputedStyle(b).animationName")
        assert animation == "none"
        button(page, "Настроить").click()
        layer = page.locator("#consentgate [aria-modal=true]")
        box = layer.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 320 and box["height"] <= 560
        assert layer.evaluate("b => b.scrollWidth <= b.clientWidth")
        button(page, "Принять все").click()  # the floating controls fit too
        withdraw = button(page, "Отозвать согласие")
        withdraw.wait_for()
        box = withdraw.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 320 - 16 and box["height"] >= 24
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
    finally:
        context.close()


CONFIG = """
[[sites]]
id = "shop"
policy_version = "{version}"
privacy_policy_url = "/privacy"
languages = ["en", "ar"]
origins = ["{origin}"]

[sites.texts.ar]
dir = "rtl"
title = "ملفات تعريف الارتباط"

[[sites.cookies]]
name = "_ga"
category = "statistics"
provider = "Google"
description = "Statistics"
expiry = "2 years"
"""

FOREIGN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="{base}/_consent/banner.js?site=shop"></script>
<script type="text/plain" data-consent="statistics" async
 src="https://www.googletagmanager.com/gtag/js?id=G-SHOP"></script>
</head><body><main><h1>A shop on another origin</h1></main></body></html>"""


def test_script_tag_mode_policy_change_expiry_and_rtl(chromium: Browser, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shop = static_site(FOREIGN_PAGE.format(base=base))
    foreign = f"http://127.0.0.1:{shop.server_address[1]}"
    config = tmp_path / "consentgate.toml"
    data = tmp_path / "data"
    context, fakes = open_context(chromium, base)
    fakes.local = (foreign,)
    try:
        config.write_text(CONFIG.format(version="1", origin=foreign))
        with consentgate_server("--config", str(config), "--data-dir", str(data), port=port):
            page = context.new_page()
            page.goto(foreign + "/")  # one tag on a foreign origin: state from the API (CORS)
            page.locator(BANNER).wait_for()
            assert page.evaluate("dataLayer[0][0] + ':' + dataLayer[0][1]") == "consent:default"
            settle(page)
            assert fakes.tracker_requests() == []
            button(page, "Accept all").click()
            wait_until(page, "window.__fakeGaRuns === 1")
            page.reload()
            page.locator(FAB).wait_for()
            assert page.locator(BANNER).count() == 0
            wait_until(page, "window.__fakeGaRuns === 1")  # hand-marked: activated again

            # Consent expired (the visitor's clock is past expires_at): asked again.
            late = context.new_page()
            late.clock.set_system_time(time.time() + 200 * 86400)
            late.goto(foreign + "/")
            late.locator(BANNER).wait_for()
            late.close()

            # RTL language from the site's texts (the script tag's banner.js follows
            # Accept-Language).
            page.set_extra_http_headers({"Accept-Language": "ar"})
            page.goto(foreign + "/")
            host = page.locator("#consentgate")
            host.wait_for(state="attached")
            assert host.get_attribute("dir") == "rtl"
            # once granted, the floating controls: mirrored to the right edge (the context's
            # clock is past the first consent's expiry: asked again)
            button(page, "Accept all").click()
            page.locator(WITHDRAW).wait_for()
            fab, withdraw = page.locator(FAB).bounding_box(), page.locator(WITHDRAW).bounding_box()
            assert fab is not None and withdraw is not None
            assert fab["x"] + fab["width"] > 1024 - 40 and withdraw["x"] < fab["x"]

        config.write_text(CONFIG.format(version="2", origin=foreign))
        with consentgate_server("--config", str(config), "--data-dir", str(data), port=port):
            page.set_extra_http_headers({"Accept-Language": "en"})
            page.goto(foreign + "/")  # new policy version: asked again
            page.locator(BANNER).wait_for()
    finally:
        context.close()
        shop.shutdown()
        shop.server_close()
