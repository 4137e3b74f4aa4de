"""The head snippet follows the visitor's regime: Consent Mode defaults, data-regime,
the consent that still counts."""

from __future__ import annotations

import html
import json
import re
import time

from consentgate import banner
from consentgate.app import create_app
from consentgate.config import Settings, Site
from consentgate.consent import Consent
from consentgate.regions import decide, parse_region

DEFAULT = re.compile(r"g\('consent','default',(\{.*?\})\);")


def snippet(settings: Settings, decision: object, consent: Consent | None = None) -> str:
    runtime = create_app(settings).runtime
    site = settings.sites[0]
    render = banner.head_snippet(runtime, site, consent, {}, decision)  # type: ignore[arg-type]
    return render(None).decode()


def consent(regime: str, granted: set[str]) -> Consent:
    t = int(time.time())
    return Consent("cid", frozenset(granted) | {"necessary"}, "1", t, t + 60, "demo", regime)


def test_opt_in_visitor(settings: Settings) -> None:
    out = snippet(settings, decide(settings.sites[0], parse_region("DE"), None, False))
    (first,) = [json.loads(m) for m in DEFAULT.findall(out)]
    assert first["analytics_storage"] == first["ad_storage"] == "denied"
    assert "data-regime" not in out and "data-gpc" not in out


def test_opt_out_visitor_with_and_without_gpc(settings: Settings) -> None:
    site: Site = settings.sites[0]
    out = snippet(settings, decide(site, parse_region("US-CA"), None, False))
    defaults = [json.loads(m) for m in DEFAULT.findall(out)]
    assert defaults[0]["ad_storage"] == defaults[0]["analytics_storage"] == "granted"
    assert "DE" in defaults[1]["region"] and defaults[1]["ad_storage"] == "denied"
    assert 'data-regime="opt-out"' in out and "'update'" not in out
    out = snippet(settings, decide(site, parse_region("US-CA"), None, True))
    first = json.loads(DEFAULT.findall(out)[0])
    assert first["ad_user_data"] == "denied" and first["analytics_storage"] == "granted"
    assert " data-gpc" in out


def test_consent_from_a_laxer_regime_is_not_passed_on(settings: Settings) -> None:
    given = consent("opt-out", {"statistics", "marketing"})
    decision = decide(settings.sites[0], parse_region("FR"), given, False)
    out = snippet(settings, decision, given)
    state = re.search(r'data-state="([^"]*)"', out)
    assert state is not None and json.loads(html.unescape(state.group(1))) is None
    assert "'update'" not in out  # asked again: no Consent Mode update


def test_without_a_decision_the_site_default_applies(settings: Settings) -> None:
    settings.sites[0].default_regime = "notice"
    runtime = create_app(settings).runtime
    out = banner.head_snippet(runtime, settings.sites[0], None, {"sec-gpc": "1"})(None).decode()
    assert 'data-regime="notice"' in out and " data-gpc" in out
    first = json.loads(DEFAULT.findall(out)[0])
    assert first["analytics_storage"] == "granted" and first["ad_storage"] == "denied"
