"""Regions, the default map, precedence, the decision and Consent Mode defaults."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.config import ConfigError, Site, load_settings
from consentgate.consent import CATEGORIES, Consent
from consentgate.regions import (
    GROUPS,
    REGIMES,
    UNKNOWN,
    consent_mode_default_js,
    consent_mode_defaults,
    consent_mode_state,
    consent_under_regime,
    decide,
    effective_granted,
    parse_region,
    regime_for,
    stricter,
)

ALL = frozenset(CATEGORIES)
NEC = frozenset({"necessary"})


def consent(
    granted: set[str] | frozenset[str], regime: str = "opt-in", gpc: bool = False
) -> Consent:
    now = int(time.time())
    return Consent("cid", frozenset(granted) | NEC, "1", now, now + 3600, "s", regime, gpc)


def regime(code: str, **site: object) -> str:
    return regime_for(Site(id="s", **site), parse_region(code))  # type: ignore[arg-type]


# -- regions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "country", "sub"),
    [("DE", "DE", None), ("de", "DE", None), (" us-ca ", "US", "US-CA"), ("XK", "XK", None)],
)
def test_parse_region_valid(code: str, country: str, sub: str | None) -> None:
    r = parse_region(code)
    assert (r.country, r.subdivision, r.known) == (country, sub, True)
    assert r.code == (sub or country)


@pytest.mark.parametrize(
    "code",
    [
        "",
        None,
        "XX",
        "T1",
        "A1",
        "A2",
        "O1",
        "EU",
        "AP",
        "ZZ",
        "DEU",
        "U",
        "US-",
        "US-CALI",
        "QQ-CA",
        "1",
    ],
)
def test_parse_region_invalid_is_unknown(code: str | None) -> None:
    assert parse_region(code) == UNKNOWN
    assert UNKNOWN.code == "" and not UNKNOWN.known


def test_groups() -> None:
    assert len(GROUPS["EU"]) == 27 and len(GROUPS["EEA"]) == 30
    assert GROUPS["EEA"] - GROUPS["EU"] == {"IS", "LI", "NO"}
    assert {"US-CA", "US-CO", "US-VA", "US-CT", "US-UT"} <= GROUPS["US-OPTOUT-STATES"]
    assert "GB" not in GROUPS["EU"] and "CH" not in GROUPS["EEA"]


# -- the default map and precedence ---------------------------------------------------


@pytest.mark.parametrize("code", ["DE", "FR", "NO", "IS", "LI", "GB", "CH", "BR", "KZ", "CA-QC"])
def test_default_map_opt_in(code: str) -> None:
    assert regime(code) == "opt-in"
    assert regime(code, default_regime="notice") == "opt-in"  # law, not the site default


@pytest.mark.parametrize("code", ["US-CA", "US-CO", "US-VA", "US-CT", "US-UT", "US-TX", "US-OR"])
def test_default_map_opt_out(code: str) -> None:
    assert regime(code) == "opt-out"
    assert regime(code, default_regime="notice") == "opt-out"


@pytest.mark.parametrize("code", ["US", "US-NV", "JP", "CA", "CA-ON", "", "XX"])
def test_unmapped_regions_get_the_site_default(code: str) -> None:
    assert regime(code) == "opt-in"
    for default in REGIMES:
        assert regime(code, default_regime=default) == default


def test_most_specific_wins() -> None:
    site = {"regimes": {"EEA": "notice", "DE": "opt-out", "US": "notice", "US-CA": "opt-in"}}
    assert regime("FR", **site) == "notice"  # the site's EEA replaces the built-in one
    assert regime("DE", **site) == "opt-out"  # country > group
    assert regime("US-CA", **site) == "opt-in"  # subdivision > country
    assert regime("US-TX", **site) == "notice"  # country > built-in US-OPTOUT-STATES group
    assert regime("US", **site) == "notice"
    assert regime("GB", **site) == "opt-in"  # untouched built-in entries stay


def test_group_ties() -> None:
    # the site's group beats a built-in group containing the same country
    assert regime("DE", regimes={"EU": "notice"}) == "notice"
    assert regime("NO", regimes={"EU": "notice"}) == "opt-in"
    # two site groups: the smaller one wins
    both = {"EU": "notice", "EEA": "opt-out"}
    assert regime("DE", regimes=both) == "notice"
    assert regime("IS", regimes=both) == "opt-out"


def test_region_keys_are_case_insensitive() -> None:
    assert regime("DE", regimes={"de": "notice"}) == "notice"
    assert regime("US-CA", regimes={"us-ca": "opt-in"}) == "opt-in"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_config_rejects_unknown_region(tmp_path: Path) -> None:
    path = _config(tmp_path, '[[sites]]\nid = "a"\nregimes = { Germany = "opt-in" }\n')
    with pytest.raises(ConfigError, match=r"sites\[0\]\.regimes.*'Germany'.*ISO 3166-1"):
        load_settings(path, environ={"CONSENTGATE_SECRET_KEYS": "k" * 20})


def test_config_accepts_groups_and_subdivisions(tmp_path: Path) -> None:
    path = _config(
        tmp_path, '[[sites]]\nid = "a"\nregimes = { EEA = "notice", "US-CA" = "opt-in" }\n'
    )
    settings = load_settings(path, environ={"CONSENTGATE_SECRET_KEYS": "k" * 20})
    assert regime_for(settings.sites[0], parse_region("US-CA")) == "opt-in"


def test_config_rejects_bad_trusted_proxy(tmp_path: Path) -> None:
    path = _config(tmp_path, '[server]\ntrusted_proxies = ["10.0.0.0/8", "lb.internal"]\n')
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies.*'lb\.internal'"):
        load_settings(path, environ={"CONSENTGATE_SECRET_KEYS": "k" * 20})


# -- effective_granted ----------------------------------------------------------------

MKT = ALL - {"marketing"}


@pytest.mark.parametrize(
    ("given", "regime_now", "gpc", "expected"),
    [
        (None, "opt-in", False, NEC),
        (None, "opt-in", True, NEC),
        (None, "opt-out", False, ALL),
        (None, "opt-out", True, MKT),
        (None, "notice", False, ALL),
        (None, "notice", True, MKT),
        (consent({"statistics"}), "opt-in", False, NEC | {"statistics"}),
        (consent(ALL), "opt-in", True, MKT),  # GPC newer than the consent wins
        (consent(ALL, gpc=True), "opt-in", True, ALL),  # opted in with GPC on
        (consent(NEC, "opt-out"), "opt-out", False, NEC),  # "Do Not Sell" clicked
        (consent(ALL, "opt-out"), "opt-out", True, MKT),
        (consent(ALL, "opt-out", gpc=True), "opt-out", True, ALL),
        (consent(NEC), "opt-out", False, NEC),  # an opt-in refusal travels to CA
        (consent(NEC), "notice", False, ALL),  # notice blocks nothing
        (consent(ALL, "opt-out"), "opt-in", False, NEC),  # moved into a stricter regime
        (consent(ALL, "notice"), "opt-out", False, ALL),  # re-asked: opt-out default
        (consent(NEC, "notice"), "opt-out", True, MKT),
    ],
)
def test_effective_granted_table(
    given: Consent | None, regime_now: str, gpc: bool, expected: frozenset[str]
) -> None:
    assert effective_granted(given, regime_now, gpc) == expected


def test_effective_granted_rejects_unknown_regime() -> None:
    with pytest.raises(ValueError, match="unknown regime 'opt_in'"):
        effective_granted(None, "opt_in", False)


consents = st.one_of(
    st.none(),
    st.builds(
        consent,
        st.frozensets(st.sampled_from(CATEGORIES)),
        st.sampled_from(REGIMES),
        st.booleans(),
    ),
)


@given(consents, st.sampled_from(REGIMES), st.booleans())
def test_effective_granted_properties(c: Consent | None, now: str, gpc: bool) -> None:
    out = effective_granted(c, now, gpc)
    assert "necessary" in out and out <= ALL
    counted = consent_under_regime(c, now)
    if c is not None and stricter(now, c.regime):
        assert counted is None  # re-ask in a stricter regime
        assert out == effective_granted(None, now, gpc)
    if now == "opt-in":
        assert out <= (counted.granted if counted else NEC)
    if now == "notice":
        assert out >= MKT
    if gpc and not (counted and counted.gpc):
        assert "marketing" not in out  # GPC needs no click
    if not gpc and counted is not None and now != "notice":
        assert out == counted.granted  # an explicit choice is what counts


@given(consents, st.booleans())
def test_stricter_regimes_never_give_more(c: Consent | None, gpc: bool) -> None:
    opt_in, opt_out, notice = (effective_granted(c, r, gpc) for r in REGIMES)
    assert opt_in <= opt_out <= notice


def test_decide() -> None:
    site = Site(id="s")
    d = decide(site, parse_region("US-CA"), consent(NEC, "opt-out"), gpc=True)
    assert (d.regime, d.decided, d.granted) == ("opt-out", True, NEC)
    assert d.record_fields() == {"region": "US-CA", "regime": "opt-out", "gpc": True}
    moved = decide(site, parse_region("DE"), consent(ALL, "opt-out"), gpc=False)
    assert (moved.regime, moved.decided, moved.granted) == ("opt-in", False, NEC)
    unknown = decide(Site(id="s", default_regime="notice"), UNKNOWN, None, gpc=False)
    assert (unknown.regime, unknown.granted, unknown.region.code) == ("notice", ALL, "")


# -- Consent Mode v2 -------------------------------------------------------------------


def test_consent_mode_state_mapping() -> None:
    assert consent_mode_state(NEC) == {
        "functionality_storage": "denied",
        "personalization_storage": "denied",
        "analytics_storage": "denied",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "security_storage": "granted",
    }
    state = consent_mode_state({"preferences", "statistics"})
    assert state["functionality_storage"] == state["personalization_storage"] == "granted"
    assert state["analytics_storage"] == "granted" and state["ad_storage"] == "denied"
    assert set(consent_mode_state(ALL).values()) == {"granted"}


def test_consent_mode_opt_in_visitor() -> None:
    cmds = consent_mode_defaults(Site(id="s"), parse_region("DE"), gpc=False)
    assert cmds == [consent_mode_state(NEC)]  # nothing is stricter than opt-in


def test_consent_mode_opt_out_visitor_can_only_tighten() -> None:
    cmds = consent_mode_defaults(Site(id="s"), parse_region("US-CA"), gpc=False)
    assert cmds[0] == consent_mode_state(ALL) and "region" not in cmds[0]
    assert len(cmds) == 2
    assert cmds[1]["ad_storage"] == "denied" and cmds[1]["analytics_storage"] == "denied"
    assert {"DE", "FR", "NO", "GB", "CA-QC"} <= set(cmds[1]["region"])
    assert not any(c.startswith("US") for c in cmds[1]["region"])
    with_gpc = consent_mode_defaults(Site(id="s"), parse_region("US-CA"), gpc=True)
    assert with_gpc[0]["ad_storage"] == "denied" and with_gpc[0]["analytics_storage"] == "granted"


def test_consent_mode_unknown_region_gets_the_site_default() -> None:
    cmds = consent_mode_defaults(Site(id="s"), UNKNOWN, gpc=False, wait_for_update=500)
    assert cmds == [{**consent_mode_state(NEC), "wait_for_update": 500}]  # nothing stricter
    lax = Site(id="s", default_regime="notice", regimes={"DE": "notice", "US": "opt-out"})
    cmds = consent_mode_defaults(lax, UNKNOWN, gpc=False)
    assert cmds[0] == consent_mode_state(ALL)
    by_region = {code: c for c in cmds[1:] for code in c["region"]}
    assert by_region["FR"]["ad_storage"] == "denied"  # EEA stays opt-in
    assert by_region["US"]["ad_storage"] == "granted"  # opt-out: stricter than notice
    assert "US-CA" not in by_region  # covered by its country's command
    assert "DE" not in by_region  # the site made it notice, like the default


def test_consent_mode_subdivision_under_a_listed_country() -> None:
    site = Site(id="s", default_regime="notice", regimes={"US": "opt-out", "US-NY": "opt-in"})
    cmds = consent_mode_defaults(site, UNKNOWN, gpc=True)
    regions = {code: c["ad_storage"] for c in cmds[1:] for code in c["region"]}
    assert "US" in regions and "US-NY" in regions  # US-NY differs from its listed country
    assert "US-CA" not in regions  # same regime as US
    # a known Californian (opt-out): only stricter regions, US-NY among them
    ca = consent_mode_defaults(site, parse_region("US-CA"), gpc=False)
    assert "US-NY" in ca[1]["region"] and "US" not in ca[1]["region"]


def test_consent_mode_follows_a_counted_consent() -> None:
    given = consent({"statistics"})
    cmds = consent_mode_defaults(Site(id="s"), parse_region("DE"), False, given)
    assert cmds[0]["analytics_storage"] == "granted" and cmds[0]["ad_storage"] == "denied"


def test_consent_mode_js() -> None:
    js = consent_mode_default_js(Site(id="s"), parse_region("US-CA"), gpc=True)
    calls = js.split(";")[:-1]
    assert len(calls) == 2 and all(c.startswith('gtag("consent","default",') for c in calls)
    first = json.loads(calls[0][len('gtag("consent","default",') : -1])
    assert first["ad_user_data"] == "denied" and first["analytics_storage"] == "granted"
    assert "</script" not in js
