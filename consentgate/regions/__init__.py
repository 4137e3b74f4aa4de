"""Consent that depends on where the visitor is.

- :mod:`.model`: regions (ISO 3166-1/3166-2), groups (``EEA``, ``EU``,
  ``US-OPTOUT-STATES``), the regimes (``opt-in`` > ``opt-out`` > ``notice``), the
  built-in default map and :func:`regime_for`;
- :mod:`.detect`: :class:`RegionDetector` (trusted header, then GeoIP, then unknown);
- :mod:`.decision`: :func:`effective_granted`, the one decision every part calls,
  and :func:`decide_scope` for an ASGI request;
- :mod:`.consent_mode`: Google Consent Mode v2 ``default`` commands per regime.

Documented in ``docs/regions.md``.
"""

from .consent_mode import (
    CONSENT_MODE_KEYS,
    consent_mode_default_js,
    consent_mode_defaults,
    consent_mode_state,
)
from .decision import (
    Decision,
    consent_under_regime,
    decide,
    decide_scope,
    detector,
    effective_granted,
    gpc_from_headers,
    method_allowed,
    vary_fields,
)
from .detect import GeoIPDatabase, RegionDetector, parse_networks
from .model import (
    COUNTRIES,
    DEFAULT_REGIMES,
    GROUPS,
    NOTICE,
    OPT_IN,
    OPT_OUT,
    REGIMES,
    UNKNOWN,
    Region,
    check_region_key,
    parse_region,
    regime_for,
    region_filter,
    stricter,
    strictness,
)

__all__ = [
    "CONSENT_MODE_KEYS",
    "COUNTRIES",
    "DEFAULT_REGIMES",
    "GROUPS",
    "NOTICE",
    "OPT_IN",
    "OPT_OUT",
    "REGIMES",
    "UNKNOWN",
    "Decision",
    "GeoIPDatabase",
    "Region",
    "RegionDetector",
    "check_region_key",
    "consent_mode_default_js",
    "consent_mode_defaults",
    "consent_mode_state",
    "consent_under_regime",
    "decide",
    "decide_scope",
    "detector",
    "effective_granted",
    "gpc_from_headers",
    "method_allowed",
    "parse_networks",
    "parse_region",
    "regime_for",
    "region_filter",
    "stricter",
    "strictness",
    "vary_fields",
]
