"""Region detection: trusted headers, MaxMind databases built here, then unknown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import ConfigError, Site, load_settings
from consentgate.regions import UNKNOWN, GeoIPDatabase, Region, RegionDetector, decide_scope
from tests.mmdb import MMDBWriter


@pytest.fixture
def geoip_path(tmp_path: Path) -> Path:
    w = MMDBWriter()
    w.insert("192.0.2.0/24", {"country": {"iso_code": "DE", "names": {"en": "Germany"}}})
    w.insert(
        "198.51.100.0/24",
        {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}, {"iso_code": "X"}]},
    )
    w.insert("203.0.113.0/25", {"country_code": "BR"})  # IPinfo / DB-IP lite shape
    w.insert("203.0.113.128/25", {"country": {"iso_code": "XX"}})  # invalid code
    w.insert(
        "2001:db8::/32", {"country": {"iso_code": "FR"}, "subdivisions": [{"iso_code": "IDF"}]}
    )
    return w.write(tmp_path / "test.mmdb")


@pytest.fixture
def geoip(geoip_path: Path) -> GeoIPDatabase:
    db = GeoIPDatabase(str(geoip_path))
    yield db  # type: ignore[misc]
    db.close()


def cf(trusted: tuple[str, ...] = ("127.0.0.1", "::1", "10.0.0.0/8"), **kw: Any) -> RegionDetector:
    return RegionDetector(
        region_header="CF-IPCountry",
        subdivision_header="CF-Region-Code",
        trusted_proxies=trusted,
        **kw,
    )


# -- trusted headers -------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.20.30.40", "::ffff:127.0.0.1"])
def test_header_from_trusted_peer(peer: str) -> None:
    assert cf().detect(peer, {"cf-ipcountry": "DE"}) == Region("DE", None, "header")


@pytest.mark.parametrize("peer", ["192.0.2.1", "11.0.0.1", "2001:db8::1", None, "garbage"])
def test_header_from_untrusted_peer_is_ignored(peer: str | None) -> None:
    headers = {"cf-ipcountry": "US", "cf-region-code": "CA"}
    assert cf().detect(peer, headers) == UNKNOWN


def test_header_ignored_when_not_configured() -> None:
    det = RegionDetector(trusted_proxies=["127.0.0.1"])
    assert det.detect("127.0.0.1", {"cf-ipcountry": "DE"}) == UNKNOWN


@pytest.mark.parametrize("value", ["XX", "T1", "A1", "EU", "", "Germany", "D", "ZZ"])
def test_invalid_header_value_is_unknown(value: str) -> None:
    assert cf().detect("127.0.0.1", {"cf-ipcountry": value}) == UNKNOWN


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        ("CA", "US-CA"),
        ("ca", "US-CA"),
        ("US-CA", "US-CA"),
        ("DE-BY", "US"),  # other country: ignored
        ("CALIFORNIA", "US"),
        ("", "US"),
    ],
)
def test_subdivision_header(sub: str, expected: str) -> None:
    region = cf().detect("127.0.0.1", {"cf-ipcountry": "us", "cf-region-code": sub})
    assert (region.code, region.source) == (expected, "header")


def test_country_header_may_carry_the_subdivision() -> None:
    det = RegionDetector(region_header="X-Region", trusted_proxies=["127.0.0.1"])
    assert det.detect("127.0.0.1", {"x-region": "US-CO"}).code == "US-CO"


# -- MaxMind database ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "code"),
    [
        ("192.0.2.7", "DE"),
        ("198.51.100.200", "US-CA"),  # first subdivision is the most general
        ("203.0.113.5", "BR"),
        ("203.0.113.200", ""),
        ("2001:db8::77", "FR-IDF"),
        ("10.0.0.1", ""),  # not in the database
        ("2001:db9::1", ""),
    ],
)
def test_geoip_lookup(geoip: GeoIPDatabase, ip: str, code: str) -> None:
    region = geoip.lookup(ip)
    assert region.code == code
    assert region.source == ("geoip" if code else "none")


def test_geoip_for_untrusted_peer_ignores_forwarded_for(geoip: GeoIPDatabase) -> None:
    det = cf(geoip=geoip)
    # a visitor connecting directly cannot choose its region with headers
    headers = {"cf-ipcountry": "US", "x-forwarded-for": "198.51.100.1"}
    assert det.detect("192.0.2.50", headers) == Region("DE", None, "geoip")


def test_geoip_uses_forwarded_client_behind_trusted_proxies(geoip: GeoIPDatabase) -> None:
    det = cf(geoip=geoip)
    chain = {"x-forwarded-for": "192.0.2.1, 198.51.100.4, 10.0.0.2"}  # client, then our LBs
    assert det.detect("127.0.0.1", chain).code == "US-CA"  # right-most untrusted hop
    assert det.detect("127.0.0.1", {"x-forwarded-for": "2001:db8::5"}).code == "FR-IDF"
    assert det.detect("127.0.0.1", {"x-forwarded-for": "junk, 10.0.0.2"}) == UNKNOWN
    assert det.detect("127.0.0.1", {"x-forwarded-for": "10.0.0.9, 10.0.0.2"}) == UNKNOWN
    assert det.detect("127.0.0.1", {}) == UNKNOWN  # the proxy itself: not in the database


def test_valid_header_beats_geoip_invalid_header_falls_back(geoip: GeoIPDatabase) -> None:
    det = cf(geoip=geoip)
    headers = {"cf-ipcountry": "GB", "x-forwarded-for": "192.0.2.1"}
    assert det.detect("127.0.0.1", headers) == Region("GB", None, "header")
    headers["cf-ipcountry"] = "XX"
    assert det.detect("127.0.0.1", headers) == Region("DE", None, "geoip")


def test_from_settings(geoip_path: Path, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        environ={"CONSENTGATE_SECRET_KEYS": "k" * 20, "CONSENTGATE_DATA_DIR": str(tmp_path)},
        overrides={
            "geoip_database": str(geoip_path),
            "region_header": "CloudFront-Viewer-Country",
            "subdivision_header": "CloudFront-Viewer-Country-Region",
            "trusted_proxies": ["10.0.0.0/8"],
        },
    )
    det = RegionDetector.from_settings(settings)
    try:
        headers = {"cloudfront-viewer-country": "US", "cloudfront-viewer-country-region": "VA"}
        assert det.detect("10.1.1.1", headers).code == "US-VA"
        assert det.detect("127.0.0.1", headers) == UNKNOWN  # loopback not trusted here
        assert det.detect("192.0.2.3", headers).code == "DE"
    finally:
        det.close()


def test_missing_database_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"geoip_database.*no such file"):
        GeoIPDatabase(str(tmp_path / "nope.mmdb"))


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "bad.mmdb"
    path.write_bytes(b"this is not a MaxMind database" * 10)
    with pytest.raises(ConfigError, match="is not a MaxMind database"):
        GeoIPDatabase(str(path))


def test_missing_package_gives_install_hint(
    geoip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "maxminddb", None)  # import maxminddb -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'consentgate\[geoip\]'"):
        GeoIPDatabase(str(geoip_path))


# -- one request -----------------------------------------------------------------------


class _Runtime:
    def __init__(self, detector: RegionDetector) -> None:
        self.settings = None
        self.region_detector = detector


def test_decide_scope() -> None:
    runtime = _Runtime(cf())
    scope: dict[str, Any] = {
        "client": ("127.0.0.1", 5000),
        "headers": [(b"CF-IPCountry", b"US"), (b"cf-region-code", b"CA"), (b"sec-gpc", b"1")],
        "state": {},
    }
    d = decide_scope(runtime, Site(id="s"), scope, None)  # type: ignore[arg-type]
    assert (d.region.code, d.regime, d.gpc, "marketing" in d.granted) == (
        "US-CA",
        "opt-out",
        True,
        False,
    )
    assert scope["state"]["consentgate.region"] == d.region
    spoofed = {**scope, "client": ("192.0.2.9", 5000), "state": {}}
    d2 = decide_scope(runtime, Site(id="s"), spoofed, None)  # type: ignore[arg-type]
    assert (d2.region, d2.regime, d2.granted) == (UNKNOWN, "opt-in", frozenset({"necessary"}))
