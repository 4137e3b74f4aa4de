"""The runtime guard's compiled data (consentgate/guard.py) says what the catalog says.

The patterns are compiled here as ``guard.js`` compiles them (``rx``: each pattern escaped,
``*`` widened, host patterns prefixed by any subdomain), and for every URL of the corpus
pages and of the catalog the first (strictest) matching category must be the catalog's
(``Catalog.match_url``, and ``Catalog.hint_category`` for resource hints); likewise for
cookie names (``Catalog.cookie_category`` and the site's declarations).
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.catalog import CATEGORY_RANK, host_of, load_catalog
from consentgate.config import SEED_COOKIES, CookieDecl, Site
from consentgate.guard import ORDER, guard_code, guard_data, guard_script
from tests.support import CORPUS


def rx(patterns: str, wide: str, wrap=lambda r, x: r, end: str = "$") -> re.Pattern[str]:  # type: ignore[no-untyped-def]
    """guard.js's ``rx``."""
    parts = [
        wrap(re.sub(r"[^\w*]", lambda m: "\\" + m.group(), x).replace("*", wide), x)
        for x in patterns.split(" ")
    ]
    return re.compile("^(" + "|".join(parts) + ")" + end)


def host(r: str, x: str = "") -> str:
    return r"(.*\.)?" + r


def before_path(r: str) -> str:
    return r"([^/]*\.)?" + r


def compiled(site: Site) -> dict[str, list[tuple[str, re.Pattern[str], re.Pattern[str]]]]:
    data = json.loads(guard_data(site))
    urls = [
        (
            c,
            rx(
                p,
                "[^?#]*",
                lambda r, x: (
                    rf"[^?]*{r}(\?|$)" if x[0] == "/" else before_path(r) + "/" * ("/" not in x)
                ),
                "",
            ),
            rx(re.sub(r"/\S*", "", p), "", host),
        )
        for c, p in data["u"]
    ]
    cookies = [(c, rx(p, ".*"), rx(p, ".*")) for c, p in data["k"]]
    hint = re.compile(data["h"] + r"|&#|\\|%", re.I)  # guard.js's HW: no word, no look
    return {"u": [(c, f, h, hint) for c, f, h in urls], "k": cookies}


def guard_category(rules, url: str, hint: bool = False) -> str | None:  # type: ignore[no-untyped-def]
    h, rest = host_of(url)
    if not h or not rules[0][3].search(url):
        return None
    rest = rest.split("#")[0]
    target = h if hint else h + ("" if rest.startswith("/") else "/") + rest  # pathname: "/"
    for category, full, hosts, _ in rules:
        if (hosts if hint else full).match(target):
            return category
    return None


@cache
def corpus_urls() -> list[str]:
    found: set[str] = set()
    for page in (CORPUS / "pages").glob("*.html"):
        text = page.read_bytes().decode("latin-1")
        found.update(re.findall(r"""(?:https?:)?//[A-Za-z0-9.\-]+\.[a-z]{2,}[^\s"'<>\\)]*""", text))
    return sorted(u if u.startswith("http") else "https:" + u for u in found)


def catalog_urls(site: Site | None) -> list[str]:
    out = []
    for svc in load_catalog(site).services:
        for pattern in svc.urls:
            path = pattern.replace("*", "en_US")
            out += [f"https://{path}", f"https://www.{path}?x=1", f"https://{path}x/y"]
            out.append(f"https://cdn.example.com{path}" if path[0] == "/" else f"http://a.{path}")
    return out


SITES = [
    Site(id="demo", cookies=list(SEED_COOKIES), demo=True),
    Site(
        id="custom",
        services=[
            {"id": "ab", "name": "AB", "category": "preferences", "urls": ["ab.example/t/*/x.js"]},
            {"id": "px", "name": "PX", "category": "unclassified", "urls": ["px.example.org"]},
        ],
        category_overrides={"youtube": "preferences", "hotjar": "marketing"},
        cookies=[CookieDecl("ab_*", "preferences"), CookieDecl("_fbp", "marketing")],
    ),
]


@pytest.mark.parametrize("site", SITES, ids=lambda s: s.id)
def test_url_categories_are_the_catalogs(site: Site) -> None:
    catalog, rules = load_catalog(site), compiled(site)["u"]
    checked = 0
    for url in corpus_urls() + catalog_urls(site):
        services = catalog.match_url(url)
        assert guard_category(rules, url) == (services[0].category if services else None), url
        assert guard_category(rules, url, hint=True) == catalog.hint_category(url.encode()), url
        checked += 1
    assert checked > 1000


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", "www.", "a.b.", "x"]),
    st.sampled_from(
        [
            "google-analytics.com", "googletagmanager.com", "facebook.com", "facebook.net",
            "connect.facebook.net", "doubleclick.net", "hotjar.com", "example.com",
            "youtube.com", "google.com", "clarity.ms", "matomo.cloud",
        ]
    ),
    st.text(alphabet="abcdgjlmnoprstuvx/_.-=?&*", max_size=24),
)  # fmt: skip
def test_any_url_on_catalogued_hosts(prefix: str, domain: str, tail: str) -> None:
    url = f"https://{prefix}{domain}/{tail}"
    services = load_catalog(None).match_url(url)
    expected = services[0].category if services else None
    assert guard_category(compiled(SITES[0])["u"], url) == expected


@pytest.mark.parametrize("site", SITES, ids=lambda s: s.id)
def test_cookie_names_are_the_declared_ones(site: Site) -> None:
    catalog, rules = load_catalog(site), compiled(site)["k"]
    declared = {c.name: c.category for c in site.cookies}
    names = [c.name.replace("*", "x1") for s in catalog.services for c in s.cookies]
    names += [n.replace("*", "") for n in declared] + ["_gax", "x_ga", "app", "PHPSESSID"]
    for name in names:
        by_site = [c for n, c in declared.items() if re.fullmatch(n.replace("*", ".*"), name)]
        expected = [catalog.cookie_category(name), *by_site]
        known = [c for c in expected if c in ORDER]
        want = max(known, key=CATEGORY_RANK.__getitem__) if known else None
        got = next((c for c, r, _ in rules if r.match(name)), None)
        assert got == want, name


def test_strict_sites_carry_their_script_hosts() -> None:
    strict = Site(id="s", strict=True, hosts=["www.shop.test:8443"], allow_hosts=["cdn.example"])
    assert json.loads(guard_data(strict))["x"] == "cdn.example www.shop.test"
    assert "x" not in json.loads(guard_data(SITES[0]))


def test_declared_names_cannot_end_the_script() -> None:
    site = Site(id="x", cookies=[CookieDecl("</script><script>alert(1)//", "marketing")])
    data = guard_data(site)
    assert "<" not in data and "</script><script>" in json.loads(data)["k"][0][1]
    script = guard_script(f"{guard_code()}({data}", ["necessary", "statistics"])
    assert "</" not in script
    assert script.endswith(',["necessary","statistics"]);')
    assert guard_script("f(x", None) == "f(x,0);"
