"""Fixtures and helpers shared by the proxy tests: a real upstream on loopback and a
real `consentgate serve --upstream` in front of it (one of each per test module).

Test modules import the fixtures (``upstream_fixture``, ``data_dir_fixture``,
``proxy_fixture``) and ask for them as ``upstream``, ``data_dir`` and ``proxy``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests import support
from tests.upstream import Upstream, running_upstream

PAGE = "021.html"  # gtag.js, analytics.js and an inline GA loader
GA_HOSTS = ("googletagmanager.com", "google-analytics.com")


@pytest.fixture(scope="module", name="upstream")
def upstream_fixture() -> Iterator[Upstream]:
    with running_upstream() as up:
        yield up


@pytest.fixture(scope="module", name="data_dir")
def data_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy-data")


@pytest.fixture(scope="module", name="proxy")
def proxy_fixture(upstream: Upstream, data_dir: Path) -> Iterator[str]:
    env = {"CONSENTGATE_SECRET_KEYS": "proxy-test-key-0123456789abcdef"}
    with support.consentgate_server(
        "--upstream", upstream.url, "--data-dir", str(data_dir), env=env
    ) as (base, _proc):
        yield base


def consent_cookie(base: str, granted: list[str], method: str = "custom") -> str:
    r = httpx.post(
        base + "/_consent/api/consent",
        json={"granted": granted, "method": method},
        headers={"Origin": base},
    )
    assert r.status_code == 201, r.text
    return r.cookies["consentgate"]


def active_ga_scripts(html: bytes) -> list[str]:
    """Script elements that would load or run GA, judged by an HTML5 parser."""
    import html5lib

    doc = html5lib.parse(html, treebuilder="etree", namespaceHTMLElements=False)
    found = []
    for el in doc.iter("script"):
        src = el.get("src") or ""
        kind = (el.get("type") or "text/javascript").lower()
        if kind not in ("text/javascript", "module", "application/javascript", ""):
            continue
        if any(h in src for h in GA_HOSTS) or "gtag('config'" in (el.text or ""):
            found.append(src or (el.text or "")[:60])
    return found


def inserted_only(body: bytes, original: bytes) -> bool:
    """``body`` is ``original`` with one contiguous run of bytes inserted (the banner)."""
    if len(body) < len(original):
        return False
    p = 0
    while p < len(original) and body[p] == original[p]:
        p += 1
    return body[p + len(body) - len(original) :] == original[p:]


def get(base: str, path: str, cookie: str | None = None, **kw: object) -> httpx.Response:
    headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
    if cookie:
        headers["Cookie"] = f"consentgate={cookie}"
    return httpx.get(base + path, headers=headers, timeout=20, **kw)  # type: ignore[arg-type]
