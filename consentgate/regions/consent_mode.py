"""Google Consent Mode v2 ``default`` commands that follow the visitor's regime.

The first command has no ``region``: it is the state consentgate decided for this
visitor before any choice (:func:`~consentgate.regions.decision.effective_granted`).
Then come region-specific commands (``region: ["DE", "FR", ...]``) for the site's
mapped regions *stricter* than the visitor's regime, which Google applies when its
own geolocation puts the visitor there: Google's view can tighten the default but
never loosen what consentgate decided (an unknown region gets the site's
``default_regime``, so with the default ``opt-in`` there is nothing stricter to list).

Category -> Consent Mode mapping (PRODUCT.md): preferences -> functionality_storage
+ personalization_storage, statistics -> analytics_storage, marketing -> ad_storage
+ ad_user_data + ad_personalization; security_storage is always granted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..consent import Consent
from .decision import effective_granted
from .model import DEFAULT_REGIMES, GROUPS, REGIMES, Region, parse_region, regime_for, stricter

if TYPE_CHECKING:
    from ..config import Site

__all__ = [
    "CONSENT_MODE_KEYS",
    "consent_mode_default_js",
    "consent_mode_defaults",
    "consent_mode_state",
]

#: Category -> the Consent Mode v2 storage types it controls.
CONSENT_MODE_KEYS: Mapping[str, tuple[str, ...]] = {
    "preferences": ("functionality_storage", "personalization_storage"),
    "statistics": ("analytics_storage",),
    "marketing": ("ad_storage", "ad_user_data", "ad_personalization"),
}


def consent_mode_state(granted: Iterable[str]) -> dict[str, str]:
    """Categories -> ``{"ad_storage": "denied", ..., "security_storage": "granted"}``."""
    allowed = set(granted)
    state = {
        key: "granted" if category in allowed else "denied"
        for category, keys in CONSENT_MODE_KEYS.items()
        for key in keys
    }
    state["security_storage"] = "granted"
    return state


def _mapped_codes(site: Site) -> set[str]:
    codes: set[str] = set()
    for key in (*DEFAULT_REGIMES, *(k.upper() for k in site.regimes)):
        codes.update(GROUPS.get(key, (key,)))
    return codes


def consent_mode_defaults(
    site: Site,
    region: Region,
    gpc: bool,
    consent: Consent | None = None,
    *,
    wait_for_update: int | None = None,
) -> list[dict[str, Any]]:
    """The argument objects of the ``gtag('consent', 'default', ...)`` calls."""
    visitor = regime_for(site, region)
    by_regime = _stricter_regions(tuple(sorted(site.regimes.items())), site.default_regime, visitor)

    def command(regime: str, codes: list[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = consent_mode_state(effective_granted(consent, regime, gpc))
        if codes:
            out["region"] = codes
        if wait_for_update is not None:
            out["wait_for_update"] = wait_for_update
        return out

    commands = [command(visitor, None)]
    commands.extend(command(r, list(by_regime[r])) for r in REGIMES if r in by_regime)
    return commands


@lru_cache(maxsize=256)
def _stricter_regions(
    regimes: tuple[tuple[str, str], ...], default_regime: str, visitor: str
) -> dict[str, tuple[str, ...]]:
    """Mapped region codes whose regime is stricter than ``visitor``'s, per regime.
    Depends only on the site's regime table, so it is computed once per visitor regime
    (it runs on every proxied page: ~50 region lookups)."""
    from ..config import Site

    site = Site(id="_", regimes=dict(regimes), default_regime=default_regime)

    def target(code: str) -> str:
        regime = regime_for(site, parse_region(code))
        return regime if stricter(regime, visitor) else visitor

    codes = _mapped_codes(site)
    by_regime: dict[str, list[str]] = {}
    for code in sorted(codes):
        mine = target(code)
        country = code.split("-", 1)[0]
        # Without its own command a subdivision gets its country's, if listed.
        parent = target(country) if "-" in code and country in codes else visitor
        if mine != parent:
            by_regime.setdefault(mine, []).append(code)
    return {regime: tuple(codes) for regime, codes in by_regime.items()}


def consent_mode_default_js(
    site: Site,
    region: Region,
    gpc: bool,
    consent: Consent | None = None,
    *,
    wait_for_update: int | None = None,
) -> str:
    """The ``gtag('consent','default',{...});`` lines (``gtag`` must be defined
    before them; the banner's head snippet does that)."""
    return "".join(
        f'gtag("consent","default",{json.dumps(c, separators=(",", ":"))});'
        for c in consent_mode_defaults(site, region, gpc, consent, wait_for_update=wait_for_update)
    )
