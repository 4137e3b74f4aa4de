"""What a new site owner trips over (issue 18), tried in real headless Chromium against a
real ``consentgate serve``: script-tag mode without console errors and on another site,
placeholders for blocked embeds, small screens, the owner's theme and the consent signals.

One consentgate serves four sites, chosen by host name (Chromium maps ``*.test`` to
127.0.0.1): ``shop`` (script-tag mode, no upstream) and three proxied sites with a theme
each, in front of one local upstream page carrying a YouTube, a Vimeo and a Google Maps
embed. Every third-party request is answered locally; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from support import REPO, consentgate_server, free_port, settle, static_site, wait_until
from support import banner_button as button
from support import chromium as launch_chromium

from consentgate.theme import contrast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BANNER = "#consentgate .b"
UPDATE_SCREENSHOTS = os.environ.get("CONSENTGATE_UPDATE_SCREENSHOTS") == "1"
LANGUAGES = ("en", "ru", "kk", "de", "fr")

EMBEDS = {
    "YouTube": ("https://www.youtube.com/embed/M7lc1UVf-VE", 560, 315),
    "Vimeo": ("https://player.vimeo.com/video/76979871", 480, 270),
    "Google Maps": ("https://www.google.com/maps/embed?pb=!1m18!1m12", 600, 300),
}
UPSTREAM = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Embeds</title>'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<style>body{margin:0;padding:1rem;font:16px system-ui}</style></head><body>"
    "<header><a href=/>An owner's site</a></header><main><h1>Embeds</h1>"
    + "".join(
        f'<p><iframe src="{src}" width="{w}" height="{h}" title="{name}"></iframe></p>'
        for name, (src, w, h) in EMBEDS.items()
    )
    + "</main></body></html>"
)
SCRIPT_TAG_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="{base}/_consent/banner.js?site=shop"></script>
<script type="text/plain" data-consent="statistics" async
 src="https://www.googletagmanager.com/gtag/js?id=G-SHOP"></script>
</head><body><main><h1>A shop with one script tag</h1></main></body></html>"""

# Georgia is not on the machine: the font is read from the computed style, not the pixels.
THEMES = {
    "bar": {"layout": "bar", "radius": "0", "font": "Georgia, serif"},
    "dialog": {"layout": "dialog", "radius": "1rem", "background": "#fffdf5", "accent": "#6a1b9a"},
    "box": {
        "background": "#ffffff",
        "dark": {
            "background": "#1d1d1d",
            "text": "#eeeeee",
            "accent": "#ffb37a",
            "accent_text": "#1d1d1d",
            "error": "#ff8a80",
        },
    },
}


def toml_table(theme: dict[str, Any]) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in theme.items() if not isinstance(v, dict)]
    dark = theme.get("dark")
    if dark:
        lines += ["[sites.theme.dark]", *(f"{k} = {json.dumps(v)}" for k, v in dark.items())]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium("--host-resolver-rules=MAP *.test 127.0.0.1") as browser:
        yield browser


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URLs: ``consentgate`` (127.0.0.1), the script-tag page on the same site
    (``same``, 127.0.0.1 on another port) and on another site (``other``), and one
    proxied, themed site per layout."""
    tmp = tmp_path_factory.mktemp("owner")
    port = free_port()
    shop = static_site(SCRIPT_TAG_PAGE.format(base=f"http://127.0.0.1:{port}"))
    upstream = static_site(UPSTREAM)
    shop_port, up_port = shop.server_address[1], upstream.server_address[1]
    config = [
        "[[sites]]",
        'id = "shop"',
        'hosts = ["127.0.0.1"]',
        f'origins = ["http://127.0.0.1:{shop_port}", "http://www.shop.test:{shop_port}"]',
    ]
    for layout, theme in THEMES.items():
        config += [
            "[[sites]]",
            f'id = "{layout}"',
            f'hosts = ["{layout}.test"]',
            f'upstream = "http://127.0.0.1:{up_port}"',
            "[sites.theme]",
            toml_table(theme),
        ]
    path = tmp / "consentgate.toml"
    path.write_text("\n".join(config) + "\n")
    try:
        with consentgate_server("--config", str(path), "--data-dir", str(tmp / "d"), port=port):
            yield {
                "consentgate": f"http://127.0.0.1:{port}",
                "same": f"http://127.0.0.1:{shop_port}",
                "other": f"http://www.shop.test:{shop_port}",
                **{layout: f"http://{layout}.test:{port}" for layout in THEMES},
            }
    finally:
        for server in (shop, upstream):
            server.shutdown()
            server.server_close()


class Visit:
    """A fresh context: third-party requests answered locally, console and page errors
    collected."""

    def __init__(self, browser: Browser, local: tuple[str, ...], **options: Any) -> None:
        options.setdefault("viewport", {"width": 1024, "height": 768})
        self.context: BrowserContext = browser.new_context(**options)
        self.local = local
        self.third_party: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.context.route("**/*", self.handle)
        self.page: Page = self.context.new_page()
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def handle(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.local):
            route.continue_()
            return
        self.third_party.append(url)
        if route.request.resource_type == "script":
            route.fulfill(
                body="window.__fake = (window.__fake || 0) + 1", content_type="text/javascript"
            )
        else:
            route.fulfill(body="<!doctype html><title>embed</title>", content_type="text/html")

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


def local_bases(sites: dict[str, str]) -> tuple[str, ...]:
    return tuple(sites.values())


def test_script_tag_mode_no_console_errors_and_another_site_explained(
    chromium: Browser, sites: dict[str, str]
) -> None:
    """A visitor without a consent is no HTTP error in the console; a page on another site,
    where the SameSite=Lax cookie cannot be kept, says so in the console."""
    visit = Visit(chromium, local_bases(sites))
    try:
        visit.page.goto(sites["same"] + "/")
        visit.page.locator(BANNER).wait_for()
        settle(visit.page)
        assert [m for m in visit.console if m[0] in ("error", "warning")] == []
        button(visit.page, "Accept all").click()
        visit.page.locator("#consentgate .f").wait_for()
        visit.page.reload()
        visit.page.locator("#consentgate .f").wait_for()
        assert visit.page.locator(BANNER).count() == 0  # same site: the cookie is kept
        assert visit.third_party and not [m for m in visit.console if m[0] == "error"]

        visit.console.clear()
        visit.page.goto(sites["other"] + "/")
        visit.page.locator(BANNER).wait_for()
        settle(visit.page)
        warnings = [text for kind, text in visit.console if kind == "warning"]
        assert len(warnings) == 1 and "another site" in warnings[0]
        assert 'cookie_samesite = "none"' in warnings[0] and "docs/banner.md" in warnings[0]
        assert [m for m in visit.console if m[0] == "error"] == []
    finally:
        visit.close()


def placeholders(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(
        """[...document.querySelectorAll('.consentgate-embed')].map(h => {
            const r = h.getBoundingClientRect(), f = h.nextElementSibling, hidden = f.hidden
            f.hidden = false  // the box the iframe itself takes (its border included)
            const e = f.getBoundingClientRect()
            f.hidden = hidden
            return {text: h.shadowRoot.querySelector('.p').innerText, lang: h.lang,
                    w: r.width, h: r.height, fw: e.width, fh: e.height, hidden}
        })"""
    )


def test_blocked_embeds_get_a_placeholder_that_loads_them(
    chromium: Browser, sites: dict[str, str]
) -> None:
    """A neutralised YouTube, Vimeo or Google Maps iframe keeps its box and says, in the
    visitor's language, what it is and which category it needs; its button grants that
    category (a recorded decision) and loads it. Consent signals follow: Google Consent
    Mode, Microsoft UET and Clarity; the withdrawal is recorded like the decision."""
    from axe_playwright_python.sync_playwright import Axe

    visit = Visit(chromium, local_bases(sites), locale="ru-RU", reduced_motion="reduce")
    page = visit.page
    try:
        page.goto(sites["box"] + "/")
        page.locator(BANNER).wait_for()
        wait_until(page, "document.querySelectorAll('.consentgate-embed').length === 3")
        settle(page)
        assert visit.third_party == []  # nothing loaded before a decision
        boxes = placeholders(page)
        for name, box in zip(EMBEDS, boxes, strict=True):
            assert box["hidden"] and box["lang"] == "ru"
            assert abs(box["w"] - box["fw"]) <= 1 and abs(box["h"] - box["fh"]) <= 1, box
            assert name in box["text"] and "«Маркетинг»" in box["text"], box["text"]
            assert "Разрешить «Маркетинг» и загрузить" in box["text"]
        if UPDATE_SCREENSHOTS:
            page.locator(".consentgate-embed").first.screenshot(
                path=str(REPO / "docs" / "banner-embed-placeholder.png")
            )
        result = Axe().run(page)
        assert [v["id"] for v in result.response["violations"]] == []
        # the page's Consent Mode / UET defaults came before any tag
        assert page.evaluate("uetq.slice(0, 3)") == ["consent", "default", {"ad_storage": "denied"}]

        load = page.locator(".consentgate-embed").first.get_by_role("button")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            load.click()
        body = json.loads(posted.value.request.post_data or "{}")
        assert body["method"] == "custom" and body["granted"] == ["necessary", "marketing"]
        assert body["language"] == "ru" and posted.value.status == 201
        wait_until(page, "document.querySelectorAll('.consentgate-embed').length === 0")
        frames = page.locator("main iframe")
        for i, (src, _, _) in enumerate(EMBEDS.values()):
            assert frames.nth(i).get_attribute("src") == src
            assert frames.nth(i).is_visible()
        wait_until(page, "window.clarity.q && window.clarity.q.length > 0")
        assert page.evaluate("[...window.clarity.q[0]]") == [
            "consentv2",
            {"ad_Storage": "granted", "analytics_Storage": "denied"},
        ]
        assert page.evaluate("uetq.slice(-3)") == ["consent", "update", {"ad_storage": "granted"}]
        assert page.locator(BANNER).count() == 0  # a decision: the banner closed

        withdraw = page.locator("#consentgate .u")
        with (
            page.expect_navigation(),
            page.expect_request(lambda r: r.method == "DELETE") as deleted,
        ):
            withdraw.click()  # recorded, then the page reloads with marketing refused
        sent = json.loads(deleted.value.post_data or "{}")
        assert sent["language"] == body["language"] and sent["banner_hash"] == body["banner_hash"]
        wait_until(page, "document.querySelectorAll('.consentgate-embed').length === 3")
        # decided (refused) with the banner closed: a placeholder's decision still brings
        # the one-click withdrawal
        assert page.locator(BANNER).count() == 0 and not withdraw.is_visible()
        page.locator(".consentgate-embed").nth(1).get_by_role("button").click()
        withdraw.wait_for()
        wait_until(page, "document.querySelectorAll('.consentgate-embed').length === 0")
    finally:
        visit.close()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_small_screen_first_layer_covers_at_most_40_percent(
    chromium: Browser, sites: dict[str, str], lang: str
) -> None:
    """At 320x568 the first layer covers at most 40% of the viewport in every shipped
    language, its three buttons still equal and fully visible, its text readable."""
    visit = Visit(
        chromium,
        local_bases(sites),
        viewport={"width": 320, "height": 568},
        locale=lang,
        reduced_motion="reduce",  # measured where it rests, not while it slides in
    )
    page = visit.page
    try:
        page.goto(sites["box"] + "/")
        page.locator(BANNER).wait_for()
        box = page.locator(BANNER).bounding_box()
        assert box is not None
        share = box["width"] * box["height"] / (320 * 568)
        assert share <= 0.40 and box["height"] <= 0.40 * 568, (lang, share)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320 and box["y"] + box["height"] <= 568
        buttons = page.locator(BANNER).locator(".r button")
        shapes = buttons.evaluate_all(
            """bs => bs.map(b => { const r = b.getBoundingClientRect(), s = getComputedStyle(b)
                return [Math.round(r.width), Math.round(r.height), s.fontWeight, s.fontSize,
                        s.backgroundColor, r.top >= 0 && r.bottom <= innerHeight] })"""
        )
        assert len(shapes) == 3 and all(s == shapes[0] for s in shapes), shapes
        assert shapes[0][5] is True and shapes[0][1] >= 44  # visible, a 44 px target
        # every word of a button on one line: none is cut in two
        whole = buttons.evaluate_all(
            """bs => bs.every(b => { const t = b.firstChild; let i = 0
                return t.data.split(' ').every(w => { const r = document.createRange()
                    r.setStart(t, i); r.setEnd(t, i + w.length); i += w.length + 1
                    return r.getClientRects().length == 1 }) })"""
        )
        assert whole, lang
        size = page.locator("#consentgate #x").evaluate(
            "p => parseFloat(getComputedStyle(p).fontSize)"
        )
        assert size >= 14
    finally:
        visit.close()


def computed(page: Page, selector: str, prop: str) -> str:
    return page.locator(selector).evaluate(f"e => getComputedStyle(e).{prop}")


def rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


@pytest.mark.parametrize(
    ("layout", "scheme"), [("bar", "light"), ("dialog", "light"), ("box", "dark")]
)
def test_owner_theme_layouts_and_dark_variant_stay_accessible(
    chromium: Browser, sites: dict[str, str], layout: str, scheme: str
) -> None:
    """The owner's layout, colours, font and radius reach the banner; the dark variant
    follows prefers-color-scheme; axe finds nothing; focus stays visible; no wall."""
    from axe_playwright_python.sync_playwright import Axe

    visit = Visit(chromium, local_bases(sites), color_scheme=scheme, reduced_motion="reduce")
    page = visit.page
    try:
        page.goto(sites[layout] + "/")
        page.locator(BANNER).wait_for()
        box = page.locator(BANNER).bounding_box()
        assert box is not None
        theme = THEMES[layout]
        if layout == "bar":
            assert box["x"] == 0 and box["width"] == 1024 and box["y"] + box["height"] == 768
            assert "Georgia" in computed(page, "#consentgate", "fontFamily")
            assert computed(page, BANNER, "borderTopLeftRadius") == "0px"
        if layout == "dialog":
            assert abs(box["x"] + box["width"] / 2 - 512) <= 1
            assert abs(box["y"] + box["height"] / 2 - 384) <= 1
            assert computed(page, BANNER, "backgroundColor") == rgb(theme["background"])
            assert computed(page, BANNER, "borderTopLeftRadius") == "16px"
            assert page.locator(BANNER).get_attribute("aria-modal") is None
        if scheme == "dark":
            dark = theme["dark"]
            assert computed(page, BANNER, "backgroundColor") == rgb(dark["background"])
            assert computed(page, BANNER, "color") == rgb(dark["text"])
            accept = page.locator("#consentgate [data-a=accept]")
            assert accept.evaluate("b => getComputedStyle(b).backgroundColor") == rgb(
                dark["accent"]
            )
        # no wall: the page under the banner can still be used
        assert page.evaluate("!!document.elementFromPoint(20, 20).closest('header')")
        violations = Axe().run(page).response["violations"]
        assert [v["id"] for v in violations] == []
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """(() => { const a = document.querySelector('#consentgate').shadowRoot.activeElement
                const s = getComputedStyle(a); return [s.outlineStyle, s.outlineWidth,
                s.outlineColor, getComputedStyle(a.closest('.b')).backgroundColor] })()"""
        )
        assert focused[0] == "solid" and focused[1] == "3px"
        to_hex = lambda c: "#" + "".join(f"{int(v):02x}" for v in c[4:-1].split(", "))  # noqa: E731
        assert contrast(to_hex(focused[2]), to_hex(focused[3])) >= 3  # a visible focus ring
        if UPDATE_SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / f"banner-theme-{layout}-{scheme}.png"))
    finally:
        visit.close()


def test_banner_more_that_cannot_load_fails_closed(
    chromium: Browser, sites: dict[str, str]
) -> None:
    """banner-more.js (placeholders, the second layer, the floating controls) is loaded on
    demand, here because the page has blocked embeds. When it cannot load, nothing
    tracker-related becomes active: the embeds stay blocked (no placeholder, no src), the
    settings show the error instead of opening, and a refusal is still recorded."""
    visit = Visit(chromium, local_bases(sites))
    page = visit.page
    asked: list[str] = []

    def refuse(route: Route) -> None:
        asked.append(route.request.url)
        route.abort()

    page.route("**/banner-more.js*", refuse)
    srcs = "[...document.querySelectorAll('iframe')].map(f => f.getAttribute('src'))"
    try:
        page.goto(sites["box"] + "/")
        page.locator(BANNER).wait_for()
        wait_until(page, "performance.getEntriesByType('resource').length > 0")
        settle(page)
        assert asked and "/_consent/banner-more.js?v=" in asked[0]
        assert page.locator(".consentgate-embed").count() == 0
        assert page.evaluate(srcs) == [None, None, None]
        button(page, "Customize").click()
        page.locator("#consentgate .e").wait_for()  # the error, in the first layer
        assert page.locator("#consentgate [role=switch]").count() == 0
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            button(page, "Reject all").click()
        assert posted.value.status == 201
        settle(page)
        assert page.evaluate("window.consentgate.consent.granted") == ["necessary"]
        assert page.evaluate(srcs) == [None, None, None]
        assert visit.third_party == []
    finally:
        visit.close()
