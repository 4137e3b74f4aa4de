"""The console in real headless Chromium, through a real `consentgate serve --upstream`.

Sign-in and sign-out, roles (an auditor reads but cannot classify, erase or manage
tokens), CSRF rejection, dashboard figures equal to what an export of the log says,
classifying an undeclared cookie (the next proxied page drops it for a visitor
without consent, the declaration lists it), CSP reports (recorded, bounded), and
axe-core on every console page. Third-party hosts are answered by local fakes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from tests import support
from tests.support import banner_button as button
from tests.support import settle, wait_until
from tests.upstream import Upstream, running_upstream

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEYS = "console-browser-key-0123456789abcdef"
PAGE = "/pages/021.html?cookies=1"  # gtag.js; the upstream sets _ga, PHPSESSID, mystery_pref
ADMIN = "/_consent/admin"
UPDATE_SCREENSHOTS = os.environ.get("CONSENTGATE_UPDATE_SCREENSHOTS") == "1"
PAGES = ["dashboard", "discovery", "exports", "verify", "manifests", "lookup", "tokens", "actions"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-data")


@pytest.fixture(scope="module")
def server(upstream: Upstream, data: Path) -> Iterator[str]:
    env = {"CONSENTGATE_SECRET_KEYS": KEYS}
    with support.consentgate_server(
        "--upstream", upstream.url, "--data-dir", str(data), env=env
    ) as (
        base,
        _,
    ):
        yield base


def make_token(data: Path, role: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "consentgate",
            "tokens",
            "create",
            "--role",
            role,
            "--data-dir",
            str(data),
        ],
        env=support.cli_env({"CONSENTGATE_SECRET_KEYS": KEYS}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def tokens(server: str, data: Path) -> dict[str, str]:
    return {role: make_token(data, role) for role in ("admin", "auditor")}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with support.chromium() as browser:
        yield browser


def fake_third_parties(base: str) -> Any:
    def handle(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        elif ".js" in route.request.url:
            route.fulfill(body="window.__fake = 1;", content_type="text/javascript")
        else:
            route.fulfill(status=204, body="")

    return handle


@pytest.fixture
def context(chromium: Browser, server: str) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    ctx.route("**/*", fake_third_parties(server))
    try:
        yield ctx
    finally:
        ctx.close()


def sign_in(page: Page, server: str, token: str) -> None:
    page.goto(server + ADMIN + "/dashboard")
    assert page.url.startswith(server + ADMIN + "/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server + ADMIN + "/dashboard")


def csrf_of(page: Page) -> str:
    return str(page.locator("form.signout input[name=csrf]").get_attribute("value"))


def post_form(page: Page, url: str, form: dict[str, str]) -> int:
    """A form POST with the page's cookies (what a forged or scripted submit sends)."""
    return page.request.post(url, form=form, max_redirects=0).status


def test_sign_in_roles_csrf_and_sign_out(
    context: BrowserContext, server: str, tokens: dict[str, str]
) -> None:
    page = context.new_page()
    page.goto(server + ADMIN + "/sign-in")
    page.get_by_label("API token").fill("cgt_000000000000_not-a-real-token-at-all")
    page.get_by_role("button", name="Sign in").click()
    assert "unknown or revoked" in page.locator("[role=alert]").inner_text()

    sign_in(page, server, tokens["auditor"])
    session = next(c for c in context.cookies() if c["name"] == "consentgate_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["path"] == ADMIN and session["expires"] == -1  # gone with the browser
    csrf = csrf_of(page)
    # an auditor reads but cannot classify, erase or manage tokens
    page.goto(server + ADMIN + "/discovery")
    assert page.locator("form[action$='/discovery/classify']").count() == 0
    form = {
        "csrf": csrf,
        "site": "default",
        "kind": "set-cookie",
        "name": "x",
        "category": "marketing",
    }
    assert post_form(page, server + ADMIN + "/discovery/classify", form) == 403
    erase = {"csrf": csrf, "consent_id": "nobody"}
    assert post_form(page, server + ADMIN + "/lookup/erase", erase) == 403
    assert page.goto(server + ADMIN + "/tokens").status == 403  # type: ignore[union-attr]
    assert post_form(page, server + ADMIN + "/tokens", {"csrf": csrf, "role": "admin"}) == 403
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/sign-in$"))
    assert page.goto(server + ADMIN + "/dashboard").url.startswith(  # type: ignore[union-attr]
        server + ADMIN + "/sign-in"
    )

    # an admin's form without the session's CSRF secret changes nothing
    sign_in(page, server, tokens["admin"])
    for bad in ("", "forged", csrf):  # csrf: the auditor's, from another session
        form = {
            "site": "default",
            "kind": "set-cookie",
            "name": "csrf_probe",
            "category": "necessary",
        }
        assert post_form(page, server + ADMIN + "/discovery/classify", {**form, "csrf": bad}) == 403
    assert post_form(page, server + ADMIN + "/sign-out", {"csrf": "forged"}) == 403
    page.goto(server + "/_consent/declaration")
    assert "csrf_probe" not in page.content()
    page.goto(server + ADMIN + "/actions")
    assert "console.sign_in" in page.content() and "console.sign_out" in page.content()


def post_decisions(server: str, n: int) -> None:
    """``n`` visitors decide through the consent API (as the banner does); every fourth
    withdraws afterwards."""
    with httpx.Client(base_url=server) as client:
        for i in range(n):
            client.cookies.clear()
            method = ("accept_all", "reject_all", "custom", "close")[i % 4]
            body: dict[str, Any] = {"method": method, "language": ("en", "de", "fr")[i % 3]}
            if method == "custom":
                body["granted"] = ["statistics"] if i % 2 else ["preferences", "marketing"]
            assert client.post("/_consent/api/consent", json=body).status_code == 201
            if i % 4 == 1:
                assert client.delete("/_consent/api/consent").status_code < 300


def export_figures(server: str, token: str) -> dict[str, Any]:
    r = httpx.get(
        server + ADMIN + "/api/export?format=jsonl",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    records = [json.loads(line) for line in r.text.splitlines()]
    decisions = [r for r in records if r["event_type"] != "withdraw"]
    return {
        "decisions": len(decisions),
        "withdrawals": len(records) - len(decisions),
        "methods": Counter(r["method"] for r in decisions),
        "granted": {
            c: sum(bool(r[c]) for r in decisions)
            for c in ("preferences", "statistics", "marketing")
        },
        "languages": Counter(r["language"] for r in decisions),
    }


def table(page: Page, table_id: str) -> dict[str, list[str]]:
    rows = page.locator(f"#{table_id} tbody tr")
    out = {}
    for i in range(rows.count()):
        cells = [c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()]
        out[cells[0]] = cells[1:]
    return out


def test_dashboard_figures_equal_the_log(
    context: BrowserContext, server: str, tokens: dict[str, str]
) -> None:
    post_decisions(server, 40)
    expected = export_figures(server, tokens["admin"])
    page = context.new_page()
    sign_in(page, server, tokens["auditor"])
    page.get_by_label("Period").select_option("7")
    page.get_by_role("button", name="Show").click()
    assert int(page.locator("#total-decisions").inner_text()) == expected["decisions"]
    assert int(page.locator("#total-withdrawals").inner_text()) == expected["withdrawals"]
    methods = {m: int(v[0]) for m, v in table(page, "by-method").items()}
    assert methods == dict(expected["methods"])
    granted = {c: int(v[0]) for c, v in table(page, "by-category").items()}
    assert {c: granted[c] for c in expected["granted"]} == expected["granted"]
    languages = {lang: int(v[0]) for lang, v in table(page, "by-language").items() if v[0] != "0"}
    assert languages == dict(expected["languages"])
    assert page.locator("svg[role=img] rect").count() > 0  # the charts carry the bars
    # a custom range that ends before today shows nothing
    page.goto(server + ADMIN + "/dashboard?start=2020-01-01&end=2020-01-31")
    assert page.locator("#total-decisions").inner_text() == "0"
    assert page.goto(server + ADMIN + "/dashboard?days=5").status == 400  # type: ignore[union-attr]


def set_cookies(server: str) -> list[str]:
    """The Set-Cookie names a visitor without consent receives for the page."""
    r = httpx.get(server + PAGE)
    assert r.status_code == 200
    return [v.split("=", 1)[0] for k, v in r.headers.multi_items() if k == "set-cookie"]


def test_classifying_an_undeclared_cookie_takes_effect_at_once(
    context: BrowserContext, server: str, tokens: dict[str, str]
) -> None:
    assert "mystery_pref" in set_cookies(server)  # undeclared: passed on, and discovered
    assert "_ga" not in set_cookies(server)
    page = context.new_page()
    sign_in(page, server, tokens["admin"])
    page.goto(server + ADMIN + "/discovery")
    row = page.locator("#discovered tbody tr", has=page.locator("code", has_text="mystery_pref"))
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "Set-Cookie" and int(cells[3]) >= 2 and cells[4] == "/pages/021.html"
    row.get_by_label("Category of mystery_pref").select_option("marketing")
    row.get_by_role("button", name="Classify").click()
    page.wait_for_url(re.compile(r".*/discovery\?.*done=mystery_pref"))
    assert "Classified" in page.locator("[role=status]").inner_text()

    assert "mystery_pref" not in set_cookies(server)  # the next response drops it
    declaration = httpx.get(server + "/_consent/declaration").text
    assert "mystery_pref" in declaration
    # a visitor who accepted everything still gets it; one without consent has it expired
    with httpx.Client(base_url=server) as visitor:
        assert (
            visitor.post("/_consent/api/consent", json={"method": "accept_all"}).status_code == 201
        )
        r = visitor.get(PAGE)
        assert any(v.startswith("mystery_pref=1") for v in r.headers.get_list("set-cookie"))
    r = httpx.get(server + PAGE, headers={"cookie": "mystery_pref=1"})
    assert any(
        v.startswith("mystery_pref=;") and "Max-Age=0" in v
        for v in r.headers.get_list("set-cookie")
    )
    page.goto(server + ADMIN + "/actions")
    assert "console.classify" in page.content()


def discovered_hosts(page: Page, server: str) -> dict[str, list[str]]:
    page.goto(server + ADMIN + "/discovery")
    rows = page.locator("#discovered tbody tr")
    out = {}
    for i in range(rows.count()):
        cells = [c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()]
        if cells[1] == "third-party host":
            out[cells[0]] = cells[1:]
    return out


def test_csp_reports_are_recorded_and_bounded(
    context: BrowserContext, server: str, tokens: dict[str, str]
) -> None:
    page = context.new_page()
    r = page.goto(server + PAGE)
    policy = r.headers.get("content-security-policy-report-only", "")  # type: ignore[union-attr]
    assert "report-uri /_consent/csp-report" in policy
    page.locator("#consentgate .b").wait_for()
    button(page, "Accept all").click()
    wait_until(page, "window.__fake === 1")  # the held-back gtag.js loaded from its host
    settle(page)

    # beside the site's own policies: theirs kept as they were, ours a policy of its own
    r = httpx.get(server + PAGE + "&csp=1")
    report_only = r.headers.get_list("content-security-policy-report-only")
    assert "img-src 'self'; report-uri /their-reports" in report_only
    assert any("report-uri /_consent/csp-report" in p for p in report_only)
    enforced = r.headers.get_list("content-security-policy")
    # the site's, as it was, and (no consent: unclassified refused) ours against data: frames
    assert enforced == [
        "script-src 'self' 'nonce-site0'; object-src 'none'",
        "frame-src * blob:; object-src * blob:",
    ]

    url = server + "/_consent/csp-report"
    legacy = {"content-type": "application/csp-report"}
    report = {
        "csp-report": {
            "document-uri": server + "/a/page?secret=1",
            "blocked-uri": "https://cdn.example.net/lib.js",
        }
    }
    with httpx.Client() as client:
        for _ in range(3):
            assert client.post(url, json=report, headers=legacy).status_code == 204
        big = b'{"csp-report": {"blocked-uri": "' + b"a" * 20000 + b'"}}'
        assert client.post(url, content=big, headers=legacy).status_code == 413
        assert (
            client.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code
            == 415
        )
        own = {"csp-report": {"blocked-uri": server + "/x.js", "document-uri": server + "/"}}
        assert client.post(url, json=own, headers=legacy).status_code == 204

    admin = context.new_page()
    sign_in(admin, server, tokens["admin"])
    hosts = discovered_hosts(admin, server)
    assert "www.googletagmanager.com" in hosts  # the real browser's report
    # suggested from the catalog: the strictest service on that host (Google Ads' gtag)
    assert hosts["www.googletagmanager.com"][5].startswith("marketing (Google")
    assert hosts["cdn.example.net"][3] == "3"  # deduplicated: one entry, counted
    assert hosts["cdn.example.net"][4] == "/a/page"  # the path only, never the query
    assert "127.0.0.1" not in hosts  # the site's own origin is not a third party
    # a flood is cut off (the bucket allows a burst of 100)
    with httpx.Client() as client:
        codes = Counter(
            client.post(url, json=report, headers=legacy).status_code for _ in range(130)
        )
    assert codes[429] > 0 and set(codes) == {204, 429}
    # what was let in is counted on the one entry; what was refused is not
    assert discovered_hosts(admin, server)["cdn.example.net"][3] == str(3 + codes[204])

    # classified in one step, the host is held back at once: the runtime guard's data on
    # the next page carries it, in its compiled patterns (the rewriter's catalog has it too)
    in_guard = r"cdn\.example\.net"
    assert in_guard not in httpx.get(server + PAGE).text
    row = admin.locator(
        "#discovered tbody tr", has=admin.locator("code", has_text="cdn.example.net")
    )
    row.get_by_label("Category of cdn.example.net").select_option("marketing")
    row.get_by_role("button", name="Classify").click()
    admin.wait_for_url(re.compile(r".*done=cdn.example.net"))
    assert in_guard in httpx.get(server + PAGE).text


def check_screenshot(page: Page, name: str) -> None:
    png = page.screenshot(full_page=False)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    if UPDATE_SCREENSHOTS:
        (support.REPO / "docs" / name).write_bytes(png)


def test_axe_every_console_page(
    context: BrowserContext, server: str, tokens: dict[str, str]
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = context.new_page()

    def violations() -> list[str]:
        result = axe.run(page)
        return [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in result.response["violations"]
        ]

    page.goto(server + ADMIN + "/sign-in")
    assert violations() == []
    sign_in(page, server, tokens["admin"])
    for name in PAGES:
        page.goto(server + ADMIN + "/" + name)
        assert violations() == [], name
        if name in ("dashboard", "discovery"):
            check_screenshot(page, f"console-{name}.png")
    page.goto(server + ADMIN + "/lookup?consent_id=nobody")
    assert violations() == []


def test_auditor_pages_export_verify_proofs_and_erasure(
    context: BrowserContext, server: str, tokens: dict[str, str], data: Path
) -> None:
    post_decisions(server, 4)
    page = context.new_page()
    sign_in(page, server, tokens["auditor"])
    # an export from the form streams the file; its signed manifest is listed
    page.goto(server + ADMIN + "/exports")
    page.get_by_label("Format").select_option("jsonl")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    body = Path(download.value.path()).read_text(encoding="utf-8")
    records = [json.loads(line) for line in body.splitlines()]
    assert records and all(r["site_id"] == "default" for r in records)
    page.goto(server + ADMIN + "/manifests")
    public_key = page.locator("#public-key").inner_text()
    assert public_key.startswith("ed25519:")
    link = page.locator("#manifests tbody a").first
    manifest = page.request.get(server + str(link.get_attribute("href"))).json()
    assert manifest["rows"] == len(records) and manifest["public_key"] == public_key

    # verify runs in the background; its result is shown and kept
    page.goto(server + ADMIN + "/verify")
    page.get_by_role("button", name="Start verify").click()
    page.locator("#verify-state.ok").wait_for(timeout=60_000)  # the page refreshes itself
    assert "records in" in page.locator("#verify-state").inner_text()
    page.goto(server + ADMIN + "/verify")
    assert "ok:" in page.locator("#verify-history").inner_text()

    # lookup shows the receipt; only an admin can erase, and the erasure is recorded
    consent_id = records[-1]["consent_id"]
    page.goto(server + ADMIN + f"/lookup?consent_id={consent_id}")
    assert consent_id in page.locator("#records caption").inner_text()
    assert page.get_by_role("button", name="Erase personal fields").count() == 0
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, tokens["admin"])
    page.goto(server + ADMIN + f"/lookup?consent_id={consent_id}")
    page.get_by_role("button", name=re.compile("Erase personal fields")).click()
    assert "Erased the personal fields" in page.locator("[role=status]").inner_text()
    page.goto(server + ADMIN + "/actions")
    assert "subject.erase" in page.content() and "verify.result" in page.content()
