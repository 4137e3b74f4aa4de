"""The same page through a real `consentgate serve` proxy for visitors from DE, US-CA,
US-CA with GPC, an unknown region, and a spoofed header from an untrusted peer: the
cookies that reach the browser, the page, and what the consent log records."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from consentgate.store import ConsentEvent, open_store
from tests import support
from tests.mmdb import MMDBWriter
from tests.regions_shop import shop_proxy, shop_upstream, write_config

pytestmark = pytest.mark.slow

ENV = {"CONSENTGATE_SECRET_KEYS": "regions-proxy-test-key-0123456789"}
API = "/_consent/api/consent"
VISITORS: dict[str, dict[str, str]] = {
    "DE": {"CF-IPCountry": "DE"},
    "US-CA": {"CF-IPCountry": "US", "CF-Region-Code": "CA"},
    "US-CA+GPC": {"CF-IPCountry": "US", "CF-Region-Code": "CA", "Sec-GPC": "1"},
    "unknown": {},
}
NEC, STATS, MKT = "PHPSESSID", "_ga", "_fbp"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with shop_upstream() as url:
        yield url


def _serve(tmp: Path, upstream: str, trusted: list[str]) -> Iterator[tuple[str, Path]]:
    with shop_proxy(tmp, upstream, trusted, ENV) as (base, config):
        yield base, config.parent / "data"


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """127.0.0.1 (the test client) is a trusted proxy: its region headers count."""
    yield from _serve(tmp_path_factory.mktemp("trusted"), upstream, ["127.0.0.1", "::1"])


@pytest.fixture(scope="module")
def untrusted_proxy(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """Only 10.0.0.0/8 is trusted: the test client's region headers are spoofs."""
    yield from _serve(tmp_path_factory.mktemp("untrusted"), upstream, ["10.0.0.0/8"])


def page(base: str, headers: dict[str, str], cookie: str | None = None) -> httpx.Response:
    h = dict(headers)
    if cookie:
        h["Cookie"] = f"consentgate={cookie}"
    r = httpx.get(base + "/shop", headers=h, timeout=20)
    assert r.status_code == 200
    return r


def cookies_set(r: httpx.Response) -> set[str]:
    """Names of cookies the response sets (not the expiring ones)."""
    out = set()
    for value in r.headers.get_list("set-cookie"):
        name = value.split("=", 1)[0]
        if "max-age=0" not in value.lower() and "1970" not in value:
            out.add(name)
    return out


def decide(base: str, headers: dict[str, str], body: dict[str, object]) -> httpx.Response:
    return httpx.post(base + API, json=body, headers={**headers, "Origin": base}, timeout=20)


def log(data: Path) -> list[ConsentEvent]:
    async def read() -> list[ConsentEvent]:
        async with open_store(f"sqlite:///{data / 'consent.db'}") as store:
            return [e.event async for e in store.iter_events()]

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("visitor", "expected"),
    [
        ("DE", {NEC}),
        ("US-CA", {NEC, STATS, MKT}),
        ("US-CA+GPC", {NEC, STATS}),
        ("unknown", {NEC}),
    ],
)
def test_cookies_before_a_decision(
    proxy: tuple[str, Path], visitor: str, expected: set[str]
) -> None:
    base, _ = proxy
    r = page(base, VISITORS[visitor])
    assert cookies_set(r) == expected
    vary = {v.strip().lower() for v in r.headers["vary"].split(",")}
    assert {"cookie", "sec-gpc", "cf-ipcountry", "cf-region-code"} <= vary


def test_decisions_per_region_and_the_log(proxy: tuple[str, Path]) -> None:
    base, data = proxy
    before = len(log(data))
    choices = {
        "DE": {"method": "accept_all"},
        "US-CA": {"method": "opt_out"},  # "Do Not Sell or Share My Personal Information"
        "US-CA+GPC": {"method": "custom", "granted": ["preferences", "statistics"]},
        "unknown": {"method": "reject_all"},
    }
    expected_after = {
        "DE": {NEC, STATS, MKT},
        "US-CA": {NEC, STATS},
        "US-CA+GPC": {NEC, STATS},
        "unknown": {NEC},
    }
    cookies: dict[str, str] = {}
    for visitor, body in choices.items():
        r = decide(base, VISITORS[visitor], body)
        assert r.status_code == 201, r.text
        cookies[visitor] = r.cookies["consentgate"]
        assert (
            cookies_set(page(base, VISITORS[visitor], cookies[visitor]))
            == (expected_after[visitor])
        ), visitor
    # the Californian who opted out travels to Germany: asked again, nothing runs
    assert cookies_set(page(base, VISITORS["DE"], cookies["US-CA"])) == {NEC}
    # the German who accepted keeps the choice in California
    assert cookies_set(page(base, VISITORS["US-CA"], cookies["DE"])) == {NEC, STATS, MKT}

    records = [
        (e.region, e.regime, e.gpc, e.method, e.granted >= {"marketing"}, e.ip_masked)
        for e in log(data)[before:]
    ]
    assert records == [
        ("DE", "opt-in", False, "accept_all", True, "127.0.0.0"),
        ("US-CA", "opt-out", False, "opt_out", False, "127.0.0.0"),
        ("US-CA", "opt-out", True, "custom", False, "127.0.0.0"),
        ("", "opt-in", False, "reject_all", False, "127.0.0.0"),
    ]


def test_spoofed_region_header_from_untrusted_peer(untrusted_proxy: tuple[str, Path]) -> None:
    base, data = untrusted_proxy
    for spoof in (VISITORS["US-CA"], VISITORS["US-CA+GPC"], {"CF-IPCountry": "JP"}):
        assert cookies_set(page(base, spoof)) == {NEC}  # treated as unknown: opt-in
    r = decide(base, VISITORS["US-CA"], {"method": "opt_out"})
    assert r.status_code == 422  # claiming California does not skip consent
    r = decide(base, VISITORS["US-CA"], {"method": "reject_all"})
    assert r.status_code == 201 and r.json()["regime"] == "opt-in"
    (event,) = log(data)
    assert (event.region, event.regime, event.method) == ("", "opt-in", "reject_all")


def test_geoip_database_through_the_proxy(upstream: str, tmp_path: Path) -> None:
    """No trusted header (the peer is not a trusted proxy): the region comes from a
    MaxMind database built here, in which loopback sits in California."""
    writer = MMDBWriter()
    writer.insert(
        "127.0.0.0/8", {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]}
    )
    mmdb = writer.write(tmp_path / "loopback-ca.mmdb")
    with shop_proxy(tmp_path, upstream, ["10.0.0.0/8"], ENV, geoip=mmdb) as (base, _config):
        assert cookies_set(page(base, {"CF-IPCountry": "DE"})) == {NEC, STATS, MKT}
        r = decide(base, {}, {"method": "opt_out"})
        assert r.status_code == 201 and r.json()["regime"] == "opt-out"
    (event,) = log(tmp_path / "data")
    assert (event.region, event.regime) == ("US-CA", "opt-out")


def test_missing_geoip_database_fails_start_up(upstream: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", upstream, ["127.0.0.1"], geoip=tmp_path / "no.mmdb")
    cmd = [sys.executable, "-m", "consentgate", "serve", "--config", str(config)]
    cmd += ["--data-dir", str(tmp_path / "data"), "--port", str(support.free_port())]
    proc = subprocess.run(cmd, env=support.cli_env(ENV), capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert "geoip_database" in proc.stderr.decode() and "no such file" in proc.stderr.decode()


def _export(data: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "consentgate", "export", "--data-dir", str(data), *args]
    return subprocess.run(cmd, env=support.cli_env(ENV), capture_output=True, timeout=60)


def test_export_filters_by_region_and_regime(proxy: tuple[str, Path]) -> None:
    base, data = proxy
    assert decide(base, VISITORS["DE"], {"method": "reject_all"}).status_code == 201
    assert decide(base, VISITORS["US-CA"], {"method": "opt_out"}).status_code == 201
    assert decide(base, VISITORS["unknown"], {"method": "reject_all"}).status_code == 201

    def rows(*args: str) -> list[dict[str, object]]:
        proc = _export(data, "--format", "jsonl", *args)
        assert proc.returncode == 0, proc.stderr.decode()
        return [json.loads(line) for line in proc.stdout.decode().splitlines()]

    everything = rows()
    by_region = rows("--region", "us-ca")
    assert by_region and {r["region"] for r in by_region} == {"US-CA"}
    assert {r["regime"] for r in rows("--regime", "opt-out")} == {"opt-out"}
    assert {r["region"] for r in rows("--region", "")} == {""}
    split = [rows("--regime", regime) for regime in ("opt-in", "opt-out", "notice")]
    assert sum(len(part) for part in split) == len(everything)
    for bad, message in ((("--region", "Germany"), "ISO 3166-1"), (("--regime", "gdpr"), "gdpr")):
        proc = _export(data, *bad)
        assert proc.returncode == 2 and message in proc.stderr.decode()
