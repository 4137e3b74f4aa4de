"""In-process tests of the banner endpoints, texts and head snippet (no browser)."""

from __future__ import annotations

import gzip
import html
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import brotli
import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from support import SEEDS

from consentgate import banner
from consentgate.config import SEED_COOKIES, CookieDecl, Settings, Site, load_settings
from consentgate.consent import CATEGORIES, Consent, ConsentCodec
from consentgate.errors import ApiError, api_error_handler
from consentgate.guard import guard_script
from consentgate.injection import head_snippet_for
from consentgate.metrics import Metrics
from consentgate.regions import decide, parse_region
from consentgate.regions.consent_mode import consent_mode_state
from consentgate.texts import LOCALES, banner_hash, pick_language, texts_for
from consentgate.visit import Runtime

KEYS = "test-key-newest-0123456789"


def make_runtime(tmp_path: Path, sites: list[Site] | None = None) -> Runtime:
    settings: Settings = load_settings(
        None,
        environ={"CONSENTGATE_DATA_DIR": str(tmp_path), "CONSENTGATE_SECRET_KEYS": KEYS},
    )
    if sites:
        settings.sites = sites
    # The banner endpoints never touch the store.
    return Runtime(settings, ConsentCodec(settings.secret_keys), None, Metrics())  # type: ignore[arg-type]


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    other = Site(
        id="other",
        hosts=["other.test"],
        languages=["en", "de", "ar"],
        default_language="de",
        texts={
            "en": {"title": "Cookies at Other", "cat_statistics": "Analytics"},
            "ar": {"dir": "rtl", "title": "ملفات تعريف الارتباط"},
        },
        policy_version="7",
    )
    demo = Site(id="demo", cookies=list(SEED_COOKIES), demo=True)
    return make_runtime(tmp_path, [demo, other])


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[Mount("/_consent", routes=banner.routes(runtime))],
        exception_handlers={ApiError: api_error_handler},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


def config_of(js: str) -> dict:
    """The config object banner.js is called with."""
    start = js.rindex("({") + 1
    depth = 0
    for i in range(start, len(js)):
        depth += {"{": 1, "}": -1}.get(js[i], 0)
        if depth == 0:
            return json.loads(js[start : i + 1])
    raise AssertionError("no config in banner.js")


async def test_banner_js_compressed_by_accept_encoding(client: httpx.AsyncClient) -> None:
    plain = await client.get("/_consent/banner.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers
    for coding in ("br", "gzip"):
        r = await client.get("/_consent/banner.js", headers={"Accept-Encoding": coding})
        assert r.headers["content-encoding"] == coding
        assert "Accept-Encoding" in r.headers["vary"]
        assert int(r.headers["content-length"]) < len(plain.content) // 2
        assert r.content == plain.content  # decoded by the client
    no_br = await client.get("/_consent/banner.js", headers={"Accept-Encoding": "br;q=0, gzip"})
    assert no_br.headers["content-encoding"] == "gzip"


async def test_compressed_bodies_decode_to_the_plain_body(runtime: Runtime) -> None:
    asset = banner.assets(runtime).banner(runtime.settings.sites[0], "en")
    assert gzip.decompress(asset.gz) == asset.body
    assert brotli.decompress(asset.br) == asset.body
    assert len(asset.gz) < len(asset.body) // 2


async def test_versioned_url_is_immutable_and_etag_revalidates(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    asset = banner.assets(runtime).banner(runtime.settings.sites[0], "en")
    r = await client.get(f"/_consent/banner.js?v={asset.version}&l=en")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "Accept-Language" not in r.headers["vary"]
    unversioned = await client.get("/_consent/banner.js", headers={"Accept-Language": "en"})
    assert unversioned.headers["cache-control"] == "public, max-age=300"
    assert "Accept-Language" in unversioned.headers["vary"]
    etag = unversioned.headers["etag"]
    again = await client.get(
        "/_consent/banner.js", headers={"If-None-Match": etag, "Accept-Language": "en"}
    )
    assert again.status_code == 304
    assert again.content == b""
    stale = await client.get("/_consent/banner.js?v=0000", headers={"Accept-Language": "en"})
    assert stale.headers["cache-control"] == "public, max-age=300"


async def test_css_served_minified_and_cacheable(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/banner.css")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")
    assert "prefers-reduced-motion" in r.text
    assert "/*" not in r.text
    assert r.headers["etag"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("kk-KZ", "kk"),
        ("es-ES, fr;q=0.5, de;q=0.7", "de"),
        ("es, *;q=0.1", "en"),
        ("", "en"),
        ("xx;q=garbage, fr", "fr"),
    ],
)
async def test_language_from_accept_language(
    client: httpx.AsyncClient, accept: str, expected: str
) -> None:
    r = await client.get("/_consent/banner.js", headers={"Accept-Language": accept})
    cfg = config_of(r.text)
    assert cfg["l"] == expected
    assert cfg["t"]["accept"] == texts_for(Site(id="x"), expected)["texts"]["accept"]


async def test_site_default_language_and_text_overrides(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/banner.js?site=other", headers={"Accept-Language": "es"})
    cfg = config_of(r.text)
    assert cfg["l"] == "de"  # the site's default
    en = config_of(
        (await client.get("/_consent/banner.js?site=other&l=en", headers={"Host": "x"})).text
    )
    assert en["t"]["title"] == "Cookies at Other"
    second = (await client.get(en["x"])).json()
    assert dict((c[0], c[1]) for c in second["c"])["statistics"] == "Analytics"
    assert en["v"] == "7"
    ar = config_of((await client.get("/_consent/banner.js?site=other&l=ar")).text)
    assert ar["d"] == "rtl"
    assert ar["t"]["accept"] == "Accept all"  # missing keys fall back to English
    by_host = config_of(
        (await client.get("/_consent/banner.js?l=en", headers={"Host": "other.test"})).text
    )
    assert by_host["t"]["title"] == "Cookies at Other"


async def test_unknown_site_is_a_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/banner.js?site=nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_site"


async def test_banner_carries_categories_declaration_and_cookie_patterns(
    client: httpx.AsyncClient,
) -> None:
    cfg = config_of((await client.get("/_consent/banner.js?l=en")).text)
    assert "settings" not in cfg["t"]  # second-layer texts load with the second layer
    r = await client.get(cfg["x"])
    assert r.headers["cache-control"].endswith("immutable")
    assert r.headers["access-control-allow-origin"] == "*"  # script-tag mode fetches it
    second = r.json()
    assert second["t"]["settings"] == "Cookie settings"
    assert [c[0] for c in second["c"]] == list(CATEGORIES)
    cats = {c[0]: c for c in second["c"]}
    assert cats["statistics"][2].startswith("These cookies track your interactions")
    assert [k[0] for k in cats["statistics"][3]] == ["_gat_gtag", "_gid", "_ga"]
    assert cats["necessary"][3][0][:2] == ["PHPSESSID", "This site"]
    # the cookie deletion patterns come with the second layer, as anchored-by-the-banner
    # regular expressions (JavaScript and Python read these alike)
    assert "k" not in cfg
    statistics = re.compile(f"^({second['k']['statistics']})$")
    for name in ("_ga", "_ga_ABC123", "_gid", "_gat", "_gat_UA1", "_gat_gtag", "_pk_id.1.ab"):
        assert statistics.match(name), name
    for name in ("_gax", "x_ga", "_pk_idx", "_fbp"):
        assert not statistics.match(name), name
    assert re.match(f"^({second['k']['marketing']})$", "_fbp")
    assert "PHPSESSID" not in json.dumps(second["k"])  # necessary cookies are never deleted
    assert cfg["a"] == "/_consent/api/consent"
    assert cfg["h"] == banner_hash(texts_for(Site(id="demo", cookies=list(SEED_COOKIES)), "en"))


async def test_regime_variants_carry_only_their_views_texts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async def texts(query: str) -> set[str]:
        return set(config_of((await client.get(f"/_consent/banner.js?l=en{query}")).text)["t"])

    full, opt_in = await texts(""), await texts("&r=opt-in")
    opt_out, notice = await texts("&r=opt-out"), await texts("&r=notice")
    assert full == opt_in | opt_out | notice
    assert {"title", "text", "accept", "gpc"} <= opt_in - opt_out - notice
    assert {"optout_text", "dnss", "gpc_honored"} <= opt_out - opt_in - notice
    assert {"notice_text"} == notice - opt_in - opt_out
    assert {"privacy", "error"} <= opt_in & opt_out & notice
    # the floating controls' texts come with banner-more.js: not a first visit's bytes
    assert not {"reopen", "withdraw"} & full
    # what the second layer shows without being in every banner.js comes with it
    details = await client.get(config_of((await client.get("/_consent/banner.js")).text)["x"])
    assert full - notice - opt_out - {"title", "text", "custom"} <= set(details.json()["t"])
    bad = await client.get("/_consent/banner.js?r=opt-sideways")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_regime"
    # the head snippet asks for its visitor's variant
    site = runtime.settings.sites[0]
    out = banner.head_snippet(runtime, site, None, {"accept-language": "en"})(None).decode()
    src = html.unescape(re.search(r'<script src="([^"]+)"', out).group(1))  # type: ignore[union-attr]
    assert "r=opt-in" in src
    assert "g=0" in src  # the runtime guard is inline in the page, not in this banner.js
    variant = banner.assets(runtime).banner(site, "en", "opt-in", guard=False)
    assert (await client.get(src)).content == variant.body


# gzip -9 bytes of a first visit (issue 16: ≤ 7,000 B in every language and regime, the
# runtime guard ≤ 1,500 B of it): the banner side (snippet, banner.js, CSS, texts) ≤ 5,400.
# What a first-time visitor does not need to see the first layer and decide is in
# banner-more.js and banner.json, loaded on demand (the second layer, the floating controls,
# embed placeholders, cookie deletion).
BUDGET = 5400
BUDGET_SITE = Site(id="demo", cookies=list(SEED_COOKIES), demo=True, regimes={"JP": "notice"})
#: Issue 16's targets, the runtime guard ≤ 1,500 B and the whole first visit with it
#: ≤ 7,000 B, are NOT met (guard 4,639 B: docs/guard.md, bench/README.md). Until they
#: are, this ceiling on the guard as inlined keeps it from growing; +214 B of it hold the
#: red-team's same-origin frames, attribute nodes, setHTMLUnsafe/execCommand markup,
#: window.open and new Audio(url) (tests/test_redteam_oracle.py); +57 B the frames found by
#: their load event and a srcdoc prefix instead of a MutationObserver on the whole document
#: (which cost up to 110 ms of script time on a large page: bench/README.md); +114 B the
#: red-team's frames reached otherwise (shadow roots, a loading src/srcdoc, a page that stops
#: the prefix's event: contentWindow/contentDocument hooked, frames swept after each hooked
#: call, the prefix calling parent.consentgateFrame; tests/test_redteam_oracle.py); +32 B
#: that sweep by window[i] and the original length getter instead of the DOM's iframes
#: (no traversal after each call; frames in shadow roots too); +107 B fetchLater and
#: cookieStore.set (tests/test_guard_browser.py), net of the template for markup made on
#: first use; +107 B attribute nodes through attributes.setNamedItem(NS), nodeValue and
#: textContent (tests/test_redteam_oracle.py); +170 B a frame's javascript: URL wrapped so
#: that the document its code returns is guarded (tests/test_redteam_oracle.py); +98 B
#: a javascript: frame in a markup string wrapped too; +303 B a hostile review's fixes
#: (values read once, a frame's parent locked, the javascript: wrapper without eval, window.open
#: into a frame, cookieStore options copied and trimmed; tests/test_redteam_oracle.py,
#: tests/test_guard_browser.py); -151 B the import map taken out again (its cost in script
#: time); +191 B opaque-origin documents (a sandboxed srcdoc, a data: document in a frame,
#: object or embed) held as unclassified, the frame prefix stopping a frame whose origin
#: turned out opaque, tabs and line breaks dropped from URLs as the URL parser drops them
#: (tests/test_redteam_oracle.py, tests/test_guard_browser.py); +124 B a second review's
#: findings (tags in a markup string's comments and raw text, Range and fragment insertion,
#: a frame's csp attribute, sandboxed blob: frames, sandbox tokens split as the browser
#: splits them, the prefix stopping only an opaque document); +63 B every "<" of a markup
#: string read as a tag start (a bogus comment ending inside what looked like a quoted value
#: hid a real tag; found by the markup fuzz, tests/test_guard_browser.py); +96 B a third
#: review's findings (a stray quote outside a value, a named tab reference or a host the URL
#: parser maps, a <base> or a table/body background given at run time, a blob: object,
#: execCommand insertImage); +53 B a srcdoc that missed the prefix (unquoted or after a slash
#: in a markup string, from a DOMParser document) gets it; +178 B (session 7) the import map
#: that holds import() and static imports from the refused categories' hosts; +21 B an
#: XLink href under any prefix, and the fast paths (attribute names that cannot load, markup
#: strings none of whose tags can); +330 B a fourth review's findings (markup given as an
#: object, importNode/adoptNode/XSLT results, Cache and worklet fetches, document.open as
#: window.open, SVG animation values, table/select insertion, object frames, constructors
#: reached by their prototype, attribute names made strings once); +36 B the import map
#: built by one native replace (about half its start cost), in the page's window only;
#: +176 B a fifth review's findings (a host's trailing dot, escaped unreserved characters in
#: a path, named character references as obfuscation, import maps a script inserts or
#: writes, Document.parseHTMLUnsafe, DocumentType insertion, document.body =,
#: WebSocketStream).
GUARD_CEILING = 5385


def gz(data: bytes) -> int:
    return len(gzip.compress(data, 9))


def first_visits(runtime: Runtime, lang: str) -> dict[tuple[str, bool], int]:
    """Per (regime, GPC): the inline head snippet plus banner.js (code, CSS, first-layer
    texts) in proxy mode (opt-out and notice snippets also carry the stricter regions'
    Consent Mode defaults); ("script-tag", False): banner.js alone (no snippet, every view's
    texts). The runtime guard is left out of all (its bytes are the guard's budget)."""
    site = runtime.settings.sites[0]
    costs: dict[tuple[str, bool], int] = {}
    for region in ("DE", "US-CA", "JP"):
        for gpc in (False, True):
            decision = decide(site, parse_region(region), None, gpc)
            headers = {"accept-language": lang, **({"sec-gpc": "1"} if gpc else {})}
            snippet = banner.head_snippet(runtime, site, None, headers, decision)(None)
            js = banner.assets(runtime).banner(site, lang, decision.regime, guard=False).body
            costs[decision.regime, gpc] = gz(snippet) + gz(js)
    assert {regime for regime, _ in costs} == {"opt-in", "opt-out", "notice"}
    script_tag = banner.assets(runtime).banner(site, lang, guard=False).body
    costs["script-tag", False] = gz(script_tag)
    return costs


@pytest.mark.parametrize("lang", LOCALES)
def test_first_visit_fits_the_budget_in_every_language(tmp_path: Path, lang: str) -> None:
    """The banner's side of a first visit, every regime, with and without GPC, and
    script-tag mode: ≤ BUDGET. Nothing lazy is in it: banner.js only names banner-more.js
    and banner.json."""
    runtime = make_runtime(tmp_path, [BUDGET_SITE])
    costs = first_visits(runtime, lang)
    assert max(costs.values()) <= BUDGET, costs
    js = banner.assets(runtime).banner(BUDGET_SITE, lang, guard=False).body.decode()
    assert "/banner-more.js?v=" in js and "consentgate-embed" not in js and "withdraw" not in js


async def test_more_is_versioned_cacheable_and_compressed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """banner-more.js, named by banner.js's config (``m``) with its version, is served like
    banner.js: a year's cache at that version, brotli/gzip by Accept-Encoding, the
    visitor's language's texts for the floating controls, an unknown site a 404."""
    cfg = config_of((await client.get("/_consent/banner.js?l=ru")).text)
    site = runtime.settings.sites[0]
    assert cfg["m"].startswith("/_consent/banner-more.js?v=")
    r = await client.get(cfg["m"], headers={"Accept-Encoding": "br"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-encoding"] == "br"
    body = banner.assets(runtime).more(site, "ru").body
    assert r.content == body  # (decoded by the client)
    assert texts_for(site, "ru")["texts"]["withdraw"] in body.decode()
    again = await client.get(cfg["m"], headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    missing = await client.get("/_consent/banner-more.js?site=nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_site"


def test_the_guard_fits_its_budget(tmp_path: Path) -> None:
    """The runtime guard alone (code and the demo site's data), gzip -9, as inlined first in
    the head snippet (and first in script-tag mode's banner.js)."""
    site = Site(id="demo", cookies=list(SEED_COOKIES), demo=True)
    runtime = make_runtime(tmp_path, [site])
    code = banner.assets(runtime).guard(site)
    snippet = head_snippet_for(runtime, site, None, {"accept-language": "en"})(None)
    assert snippet.startswith(f"<script>{guard_script(code, ['necessary'])}</script>".encode())
    assert (
        banner.assets(runtime).banner(site, "en").body.startswith(guard_script(code, None).encode())
    )
    nonced = head_snippet_for(runtime, site, None, {"accept-language": "en"})("n0nce")
    assert nonced.startswith(b'<script nonce="n0nce">') and nonced.count(b'nonce="n0nce"') == 3
    assert gz(guard_script(code, None).encode()) <= GUARD_CEILING


async def test_texts_and_cookies_reach_the_banner_html_escaped(tmp_path: Path) -> None:
    """The banner inserts texts as markup without escaping them itself: the server does."""
    site = Site(
        id="x",
        privacy_policy_url='/p?a=1&b="2"',
        texts={"en": {"title": "<b>Cookies</b> & 'more'", "desc_statistics": 'We "count"'}},
        cookies=[
            CookieDecl(
                name="<c>", category="statistics", provider="A&B", description="d", expiry="1"
            )
        ],
    )
    assets = banner.assets(make_runtime(tmp_path, [site]))
    cfg = assets.config(site, "en")
    assert cfg["t"]["title"] == "&lt;b&gt;Cookies&lt;/b&gt; &amp; 'more'"
    assert cfg["p"] == "/p?a=1&amp;b=&quot;2&quot;"
    second = json.loads(assets.details(site, "en").body)
    statistics = {c[0]: c for c in second["c"]}["statistics"]
    assert statistics[2] == "We &quot;count&quot;"
    assert statistics[3] == [["&lt;c&gt;", "A&amp;B", "d", "1"]]


def test_every_locale_has_every_text() -> None:
    assert {"en", "ru", "kk", "de", "fr"} <= set(LOCALES)
    base = json.loads((Path(banner.__file__).parent / "locales" / "en.json").read_text())
    for lang in LOCALES:
        data = json.loads((Path(banner.__file__).parent / "locales" / f"{lang}.json").read_text())
        assert set(data["texts"]) == set(base["texts"]), lang
        assert set(data["categories"]) == set(CATEGORIES), lang
        assert set(data["declaration"]) == set(base["declaration"]), lang
        assert all(len(pair) == 2 and all(pair) for pair in data["categories"].values())


def test_seed_category_texts_are_the_english_defaults() -> None:
    # shared/ sits beside the clone (CI) or one level up (a worktree under wt/)
    seeds = SEEDS if SEEDS.exists() else SEEDS.parent.parent.parent / "shared" / "seeds"
    seed = sorted(seeds.glob("000_*.txt"))[0].read_text()
    t = texts_for(Site(id="x"), "en")
    for category, (name, description) in t["categories"].items():
        assert f"\n{name}\n{description}\n" in seed, category


def test_pick_language_prefers_quality_then_order() -> None:
    site = Site(id="x", languages=["en", "de", "fr"], default_language="fr")
    assert pick_language("de;q=0.4, en;q=0.9", site) == "en"
    assert pick_language("it", site) == "fr"
    assert pick_language("DE-at", site) == "de"
    assert pick_language("ru", site) == "fr"  # ru exists but the site does not offer it


def now_consent(granted: set[str]) -> Consent:
    t = int(time.time())
    return Consent("cid-123", frozenset(granted) | {"necessary"}, "1", t, t + 3600, "demo")


def test_head_snippet_sets_consent_default_first_then_banner(runtime: Runtime) -> None:
    site = runtime.settings.sites[0]
    out = banner.head_snippet(runtime, site, None, {"Accept-Language": "de"})(None).decode()
    assert out.startswith("<script>")
    default = re.search(r"g\('consent','default',(\{.*?\})\)", out)
    assert default is not None
    mode = json.loads(default.group(1))
    assert mode.pop("security_storage") == "granted"
    assert mode.pop("wait_for_update") == 500
    assert set(mode.values()) == {"denied"}
    assert len(mode) == 6
    assert "'update'" not in out
    assert out.index("'default'") < out.index("banner.js")
    tag = re.search(r'<script src="([^"]+)" defer data-cm="1" data-state="([^"]*)"', out)
    assert tag is not None
    assert "l=de" in html.unescape(tag.group(1))
    assert json.loads(html.unescape(tag.group(2))) is None
    assert "nonce" not in out and "data-gpc" not in out


def test_head_snippet_with_consent_nonce_and_gpc(runtime: Runtime) -> None:
    site = runtime.settings.sites[0]
    consent = now_consent({"statistics"})
    headers = [(b"accept-language", b"fr"), (b"sec-gpc", b"1")]
    out = banner.head_snippet(runtime, site, consent, headers)('n0"nce').decode()
    assert out.count('nonce="n0&quot;nce"') == 2
    update = re.search(r"g\('consent','update',(\{.*?\})\)", out)
    assert update is not None
    mode = json.loads(update.group(1))
    assert mode["analytics_storage"] == "granted"
    assert mode["ad_storage"] == mode["functionality_storage"] == "denied"
    assert " data-gpc" in out
    state = re.search(r'data-state="([^"]*)"', out)
    assert state is not None
    assert json.loads(html.unescape(state.group(1)))["consent_id"] == "cid-123"


def test_consent_mode_mapping() -> None:
    mode = consent_mode_state({"preferences", "marketing"})
    assert mode == {
        "security_storage": "granted",
        "functionality_storage": "granted",
        "personalization_storage": "granted",
        "analytics_storage": "denied",
        "ad_storage": "granted",
        "ad_user_data": "granted",
        "ad_personalization": "granted",
    }


async def test_declaration_fragment_has_seed_columns(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/declaration", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for header in (
        "Name of the cookie",
        "Description",
        "Moment of creation",
        "Expiry date",
        "Data used",
        "Provider",
        "Category",
    ):
        assert f">{header}</th>" in r.text
    assert r.text.count("<tr>") == 1 + len(SEED_COOKIES)
    assert "<code>_ga</code></th><td>A unique ID is registered" in r.text
    assert "&#34;Google Analytics&#34;" in r.text or "“Google Analytics”" in r.text
    assert ">Statistics</td>" in r.text and ">Necessary</td>" in r.text
    ru = await client.get("/_consent/declaration?l=ru")
    assert "Название cookie" in ru.text and ">Статистика</td>" in ru.text


async def test_declaration_escapes_site_text(tmp_path: Path) -> None:
    from consentgate.config import CookieDecl

    evil = Site(id="e", cookies=[CookieDecl("<script>x</script>", "marketing", "a&b")])
    rt = make_runtime(tmp_path, [evil])
    out = banner.assets(rt).declaration_html(evil, "en")
    assert "<script>" not in out and "&lt;script&gt;" in out and "a&amp;b" in out
    js = banner.assets(rt).declaration_js(evil, "en").body.decode()
    assert "</" not in js.split("(h=>")[1].split("})(", 1)[1]


async def test_declaration_js_embeds_the_fragment(client: httpx.AsyncClient) -> None:
    r = await client.get("/_consent/declaration.js")
    assert r.headers["content-type"].startswith("text/javascript")
    assert "data-consentgate-declaration" in r.text
    assert "PHPSESSID" in r.text


def english_declaration_texts() -> set[str]:
    """Every English text a shipped declaration can show: the seed's table and the tracker
    catalog's cookies as the demo declares them (providers are names, but "This site")."""
    from consentgate.catalog import default_catalog
    from consentgate.config import catalog_cookies

    ids = tuple(s.id for s in default_catalog().services)
    out = set()
    for c in [*SEED_COOKIES, *catalog_cookies(ids)]:
        out |= {c.description, c.created, c.expiry, c.data_used}
        if c.provider == "This site":
            out.add(c.provider)
    return out - {""}


@pytest.mark.parametrize("lang", [lang for lang in LOCALES if lang != "en"])
def test_every_declaration_text_is_translated(tmp_path: Path, lang: str) -> None:
    """issue 18: cookie descriptions, expiries and the rest of the declaration in every
    shipped language: the locale's phrases cover every English text the seed and the
    catalog ship; the demo's declaration page and second layer show them translated."""
    from consentgate.config import demo_site

    phrases = texts_for(Site(id="x"), lang)["phrases"]
    missing = sorted(t for t in english_declaration_texts() if t not in phrases)
    assert missing == []
    site = demo_site()
    runtime = make_runtime(tmp_path, [site])
    table = banner.assets(runtime).declaration_html(site, lang)
    second = json.loads(banner.assets(runtime).details(site, lang).body)
    rows = [row for c in second["c"] for row in c[3]]
    assert len(rows) == len(site.cookies) == 10
    for c in site.cookies:
        for english in (c.description, c.expiry, c.created):
            if english and phrases[english] != english:  # "Session" is French too
                assert html.escape(english, quote=False) not in table, english
        row = next(r for r in rows if r[0] == c.name)
        assert row[2] == banner.markup(phrases[c.description])
    assert html.escape(phrases["2 years"]) in table


def test_demo_declares_every_tracker_it_carries() -> None:
    """The demo page carries GA4, GTM, the Meta Pixel and YouTube: its declaration lists
    the catalog's cookies of each (GTM sets none), besides the seed's table."""
    from consentgate.catalog import default_catalog
    from consentgate.config import demo_site

    declared = {c.name for c in demo_site().cookies}
    for sid in ("meta-pixel", "youtube"):
        svc = default_catalog().service(sid)
        assert svc is not None and {c.name for c in svc.cookies} <= declared
    assert {"_ga", "_gid", "_gat_gtag", "PHPSESSID"} <= declared


def test_second_layer_names_embed_services(tmp_path: Path) -> None:
    site = Site(id="x")
    second = json.loads(banner.assets(make_runtime(tmp_path, [site])).details(site, "en").body)
    names = dict(second["n"])
    assert names["youtube.com/embed"] == "YouTube"
    assert names["player.vimeo.com/video"] == "Vimeo"
    assert names["google.com/maps/embed"] == "Google Maps"
    lengths = [len(k) for k, _ in second["n"]]
    assert lengths == sorted(lengths, reverse=True)  # the most specific pattern first
    assert "embed" in second["t"] and "%s" in second["t"]["embed"] and "%c" in second["t"]["load"]


def test_head_snippet_sets_microsoft_uet_consent_before_any_tag(tmp_path: Path) -> None:
    """UET consent mode (ad_storage) is set inline like Google's default, before any tag,
    and updated inline once the visitor has decided."""
    site = Site(id="x")
    runtime = make_runtime(tmp_path, [site])
    out = banner.head_snippet(runtime, site, None, {})(None).decode()
    assert "u.push('consent','default',{ad_storage:'denied'})" in out
    assert out.index("window.uetq=window.uetq||[]") < out.index("<script src=")
    now = int(time.time())
    given = Consent("c1", frozenset(CATEGORIES), "1", now, now + 3600, site_id="x")
    out = banner.head_snippet(runtime, site, given, {})(None).decode()
    assert "u.push('consent','update',{ad_storage:'granted'})" in out


def test_theme_reaches_only_its_sites_banner(tmp_path: Path) -> None:
    from consentgate.theme import check_theme

    plain = Site(id="plain")
    themed = Site(id="themed", theme=check_theme({"layout": "dialog", "background": "#fffdf5"}))
    assets = banner.assets(make_runtime(tmp_path, [plain, themed]))
    assert "--bg:#fffdf5" in assets.banner(themed, "en").body.decode()
    assert "--bg:#fffdf5" not in assets.banner(plain, "en").body.decode()
