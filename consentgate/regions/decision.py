"""The one decision: which categories a visitor may receive now.

Every part (proxy, middleware, banner, API) asks :func:`effective_granted` or
:func:`decide`, so the answer is the same everywhere.

- ``opt-in``: only what the visitor granted; ``necessary`` before a decision.
- ``opt-out``: everything until the visitor opts out; then what they kept.
- ``notice``: everything; the banner only informs.
- Global Privacy Control refuses ``marketing`` in every regime without a click,
  unless a consent recorded while GPC was on grants it (the visitor opted back in
  knowingly). A GPC signal newer than the consent always wins.
- A consent recorded under a less strict regime than the visitor's current one
  counts as none: a visitor who moves into a stricter regime is asked again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..consent import CATEGORIES, Consent
from .model import NOTICE, OPT_IN, OPT_OUT, Region, regime_for, stricter

if TYPE_CHECKING:
    from ..config import Settings, Site
    from .detect import RegionDetector

__all__ = [
    "Decision",
    "consent_under_regime",
    "decide",
    "decide_scope",
    "effective_granted",
    "gpc_from_headers",
    "method_allowed",
    "vary_fields",
]

ALL: frozenset[str] = frozenset(CATEGORIES)
_REGIME_TAG = {OPT_IN: "", OPT_OUT: "-o", NOTICE: "-n"}
_TOKENS: dict[tuple[bool, frozenset[str], str], str] = {}  # Decision.token, memoized
NECESSARY: frozenset[str] = frozenset({"necessary"})


def consent_under_regime(consent: Consent | None, regime: str) -> Consent | None:
    """``consent`` if it still counts under ``regime``; None when it was recorded
    under a less strict regime (the visitor must be asked again)."""
    if consent is None or stricter(regime, consent.regime):
        return None
    return consent


def effective_granted(consent: Consent | None, regime: str, gpc: bool) -> frozenset[str]:
    """The categories a visitor with ``consent`` (None: no decision yet) may
    receive now under ``regime``, with Global Privacy Control on or off."""
    counted = consent_under_regime(consent, regime)
    if regime == OPT_IN:
        granted = counted.granted if counted else NECESSARY
    elif regime == OPT_OUT:
        granted = counted.granted if counted else ALL
    elif regime == NOTICE:
        granted = ALL
    else:
        raise ValueError(f"unknown regime {regime!r}; expected opt-in, opt-out or notice")
    if gpc and not (counted is not None and counted.gpc and "marketing" in counted.granted):
        granted = granted - {"marketing"}
    return granted | NECESSARY


def method_allowed(method: str, regime: str) -> bool:
    """``acknowledge`` (keep the regime's defaults) belongs to the notice and opt-out
    regimes, ``opt_out`` to the opt-out regime: neither may grant anything where
    consent must be asked for."""
    if method == "acknowledge":
        return regime in (NOTICE, OPT_OUT)
    if method == "opt_out":
        return regime == OPT_OUT
    return True


def vary_fields(settings: Settings) -> tuple[bytes, ...]:
    """Request headers a page rewritten by :func:`decide_scope` depends on, for
    ``Vary`` (besides ``Cookie``): ``Sec-GPC`` and the configured region headers."""
    names = ("Sec-GPC", settings.region_header, settings.subdivision_header)
    return tuple(n.encode("latin-1") for n in names if n)


def gpc_from_headers(headers: Mapping[str, str]) -> bool:
    """``Sec-GPC: 1`` (``headers`` looked up with a lowercase name)."""
    return (headers.get("sec-gpc") or "").strip() == "1"


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything the parts need to treat one request the same way."""

    region: Region
    regime: str
    gpc: bool
    consent: Consent | None  # the consent that counts under ``regime``; None: undecided
    granted: frozenset[str]  # effective_granted(...)

    @property
    def decided(self) -> bool:
        """The visitor has a decision that counts here (banner stays closed)."""
        return self.consent is not None

    @property
    def token(self) -> str:
        """A short tag naming what a page was rewritten for (ETags, cache keys): the
        effective categories' initials, ``x`` before a decision, and the regime."""
        key = (self.consent is not None, self.granted, self.regime)
        token = _TOKENS.get(key)
        if token is None:
            letters = "".join(c[0] for c in CATEGORIES if c in self.granted)
            token = ("" if self.decided else "x") + letters + _REGIME_TAG[self.regime]
            if len(_TOKENS) < 4096:  # at most 2 x 32 x 3 keys in practice
                _TOKENS[key] = token
        return token

    def record_fields(self) -> dict[str, Any]:
        """``region``/``regime``/``gpc`` as a :class:`ConsentEvent` records them."""
        return {"region": self.region.code, "regime": self.regime, "gpc": self.gpc}


def decide(site: Site, region: Region, consent: Consent | None, gpc: bool) -> Decision:
    regime = regime_for(site, region)
    return Decision(
        region=region,
        regime=regime,
        gpc=gpc,
        consent=consent_under_regime(consent, regime),
        granted=effective_granted(consent, regime, gpc),
    )


class _HasRegions(Protocol):
    settings: Settings
    region_detector: RegionDetector | None


def detector(runtime: _HasRegions) -> RegionDetector:
    """The runtime's :class:`RegionDetector`, built once (opens the GeoIP database)."""
    found = runtime.region_detector
    if found is None:
        from .detect import RegionDetector

        found = runtime.region_detector = RegionDetector.from_settings(runtime.settings)
    return found


def decide_scope(
    runtime: _HasRegions, site: Site, scope: Mapping[str, Any], consent: Consent | None
) -> Decision:
    """:func:`decide` for an ASGI request: region from trusted headers or GeoIP,
    GPC from ``Sec-GPC``. The region is detected once per request (kept in the
    scope's state) so every part sees the same one."""
    found = detector(runtime)
    headers = _headers(scope, found.header_names)
    state = scope.get("state")
    region = state.get(_REGION_KEY) if isinstance(state, dict) else None
    if not isinstance(region, Region):
        client = scope.get("client")
        region = found.detect(client[0] if client else None, headers)
        if isinstance(state, dict):
            state[_REGION_KEY] = region
    return decide(site, region, consent, gpc_from_headers(headers))


_REGION_KEY = "consentgate.region"


def _headers(scope: Mapping[str, Any], wanted: frozenset[bytes]) -> dict[str, str]:
    """The request headers named in ``wanted`` (lowercase), repeated ones joined."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        if raw_name not in wanted and (raw_name.islower() or raw_name.lower() not in wanted):
            continue  # servers send lowercase names; the second test is for odd ones
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
