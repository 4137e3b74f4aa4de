"""The same shop page through a real `consentgate serve` proxy for visitors from DE,
US-CA, US-CA with GPC, an unknown region and a spoofed header from an untrusted
peer: which tracker elements are active, which banner is shown, what is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests import support
from tests.regions_shop import TRACKERS, Elements, shop_proxy, shop_upstream

pytestmark = pytest.mark.slow

ENV = {"CONSENTGATE_SECRET_KEYS": "regions-pages-test-key-0123456789"}
DE = {"CF-IPCountry": "DE"}
US_CA = {"CF-IPCountry": "US", "CF-Region-Code": "CA"}
US_CA_GPC = {**US_CA, "Sec-GPC": "1"}


def look(base: str, headers: dict[str, str], cookie: str | None = None) -> Elements:
    h = {**headers, **({"Cookie": f"consentgate={cookie}"} if cookie else {})}
    r = httpx.get(base + "/shop", headers=h, timeout=20)
    assert r.status_code == 200
    parsed = Elements()
    parsed.feed(r.text)
    assert set(parsed.active) == TRACKERS, r.text
    assert parsed.banner is not None, "no banner tag injected"
    return parsed


def running(page: Elements) -> set[str]:
    return {name for name, on in page.active.items() if on}


def banner_kind(page: Elements) -> str:
    """opt-in (Accept/Reject/Customize), opt-out (notice + Do Not Sell), notice."""
    assert page.banner is not None
    kind = page.banner.get("data-regime") or "opt-in"
    return kind + ("+gpc" if "data-gpc" in page.banner else "")


def consent_state(page: Elements) -> object:
    assert page.banner is not None
    return json.loads(page.banner.get("data-state") or "null")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with shop_upstream() as url:
        yield url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with shop_proxy(tmp_path_factory.mktemp("pages"), upstream, ["127.0.0.1"], ENV) as served:
        yield served


@pytest.fixture(scope="module")
def spoof_proxy(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with shop_proxy(tmp_path_factory.mktemp("spoof"), upstream, ["10.0.0.0/8"], ENV) as served:
        yield served


def export(config: Path, *args: str) -> list[dict[str, object]]:
    cmd = [sys.executable, "-m", "consentgate", "export", "--config", str(config)]
    cmd += ["--data-dir", str(config.parent / "data"), "--format", "jsonl", *args]
    proc = subprocess.run(cmd, env=support.cli_env(ENV), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


@pytest.mark.parametrize(
    ("headers", "active", "banner"),
    [
        (DE, set(), "opt-in"),
        (US_CA, TRACKERS, "opt-out"),
        (US_CA_GPC, {"ga-loader", "ga-config"}, "opt-out+gpc"),
        ({}, set(), "opt-in"),
    ],
    ids=["DE", "US-CA", "US-CA+GPC", "unknown"],
)
def test_page_before_a_decision(
    proxy: tuple[str, Path], headers: dict[str, str], active: set[str], banner: str
) -> None:
    page = look(proxy[0], headers)
    assert running(page) == active
    assert banner_kind(page) == banner
    assert consent_state(page) is None


def test_spoofed_header_from_an_untrusted_peer(spoof_proxy: tuple[str, Path]) -> None:
    base, config = spoof_proxy
    for headers in (US_CA, US_CA_GPC):
        page = look(base, headers)
        assert running(page) == set()  # treated as unknown: opt-in
        assert banner_kind(page).startswith("opt-in")
    r = httpx.post(base + "/_consent/api/consent", json={"method": "opt_out"}, headers=US_CA)
    assert r.status_code == 422
    r = httpx.post(base + "/_consent/api/consent", json={"method": "reject_all"}, headers=US_CA)
    assert r.status_code == 201
    (record,) = export(config)
    assert (record["region"], record["regime"], record["method"]) == ("", "opt-in", "reject_all")


def test_decisions_pages_and_export(proxy: tuple[str, Path]) -> None:
    base, config = proxy
    api = base + "/_consent/api/consent"
    choices = [
        ("DE", DE, {"method": "accept_all"}, TRACKERS),
        ("US-CA", US_CA, {"method": "opt_out"}, {"ga-loader", "ga-config"}),
        ("US-CA+GPC", US_CA_GPC, {"method": "acknowledge"}, {"ga-loader", "ga-config"}),
        ("unknown", {}, {"method": "reject_all"}, set()),
    ]
    before = len(export(config))
    cookies = {}
    for name, headers, body, active in choices:
        r = httpx.post(api, json=body, headers=headers)
        assert r.status_code == 201, (name, r.text)
        cookies[name] = r.cookies["consentgate"]
        page = look(base, headers, cookies[name])
        assert running(page) == active, name
        state = consent_state(page)
        assert isinstance(state, dict) and state["consent_id"] == r.json()["consent_id"]
    # the Californian who opted out, in Germany: asked again, nothing runs
    moved = look(base, DE, cookies["US-CA"])
    assert running(moved) == set() and consent_state(moved) is None

    records = export(config)[before:]
    assert len({r["consent_id"] for r in records}) == 4
    rows = sorted(
        (r["region"], r["regime"], r["gpc"], r["method"], r["marketing"], r["statistics"])
        for r in records
    )
    assert rows == [
        ("", "opt-in", False, "reject_all", False, False),
        ("DE", "opt-in", False, "accept_all", True, True),
        ("US-CA", "opt-out", False, "opt_out", False, True),
        ("US-CA", "opt-out", True, "acknowledge", False, True),
    ]
