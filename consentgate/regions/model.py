"""Regions, groups, regimes and the built-in default map.

Pure data and lookups: nothing here knows about HTTP.

A region is an ISO 3166-1 alpha-2 country (``DE``) with an optional ISO 3166-2
subdivision (``US-CA``). A site assigns regimes to regions, countries or groups in
``Site.regimes``; those entries replace the built-in entries of the same key in
:data:`DEFAULT_REGIMES`. The most specific entry wins: subdivision > country >
group > ``Site.default_regime``. When a region belongs to several mapped groups,
the site's own entry beats a built-in one, then the smaller group, then the
stricter regime.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Site

__all__ = [
    "COUNTRIES",
    "DEFAULT_REGIMES",
    "GROUPS",
    "REGIMES",
    "UNKNOWN",
    "Region",
    "check_region_key",
    "parse_region",
    "regime_for",
    "region_filter",
    "stricter",
    "strictness",
]

OPT_IN = "opt-in"
OPT_OUT = "opt-out"
NOTICE = "notice"
#: The three regimes, strictest first.
REGIMES: tuple[str, ...] = (OPT_IN, OPT_OUT, NOTICE)
_STRICTNESS = {NOTICE: 0, OPT_OUT: 1, OPT_IN: 2}


def _codes(text: str, prefix: str = "") -> frozenset[str]:
    return frozenset(prefix + code for code in text.split())


#: ISO 3166-1 alpha-2 officially assigned codes, plus XK (Kosovo), which CDNs and
#: MaxMind use. Anything else (``XX``, ``T1``, ``A1``, ``EU``, ``ZZ``...) is unknown.
COUNTRIES: frozenset[str] = _codes(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
    """
)

_EU = _codes("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK")
#: US states whose comprehensive privacy laws give a right to opt out of sale,
#: sharing and targeted advertising, in force by 2026 (CA CCPA/CPRA, VA VCDPA,
#: CO CPA, CT CTDPA, UT UCPA, TX, OR, MT, IA, DE, NE, NH, NJ, TN, MN, MD, IN, KY, RI).
_US_OPTOUT = _codes("CA CO CT DE IA IN KY MD MN MT NE NH NJ OR RI TN TX UT VA", prefix="US-")

#: Named groups usable as keys of ``Site.regimes``. Members are countries or subdivisions.
GROUPS: Mapping[str, frozenset[str]] = {
    "EU": _EU,
    "EEA": _EU | {"IS", "LI", "NO"},
    "US-OPTOUT-STATES": _US_OPTOUT,
}

#: The built-in map (documented in docs/regions.md). Regions not listed get
#: ``Site.default_regime`` (opt-in unless the site chooses otherwise).
DEFAULT_REGIMES: Mapping[str, str] = {
    "EEA": OPT_IN,  # GDPR + ePrivacy Directive
    "GB": OPT_IN,  # UK GDPR + PECR
    "CH": OPT_IN,  # revised FADP
    "BR": OPT_IN,  # LGPD
    "KZ": OPT_IN,  # Law on Personal Data and its Protection
    "TR": OPT_IN,  # KVKK cookie guideline (2022)
    "CA-QC": OPT_IN,  # Quebec Law 25: tracking off by default
    "US-OPTOUT-STATES": OPT_OUT,  # US state privacy laws
}

_SUBDIVISION = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")


def strictness(regime: str) -> int:
    """opt-in (2) > opt-out (1) > notice (0)."""
    return _STRICTNESS[regime]


def stricter(a: str, b: str) -> bool:
    """True when regime ``a`` is stricter than ``b``."""
    return _STRICTNESS[a] > _STRICTNESS[b]


@dataclass(frozen=True, slots=True)
class Region:
    """Where a visitor is. ``country`` None means unknown.

    ``subdivision`` is the full ISO 3166-2 code (``US-CA``). ``source`` says how it
    was found: ``header``, ``geoip`` or ``none``.
    """

    country: str | None = None
    subdivision: str | None = None
    source: str = "none"

    @property
    def known(self) -> bool:
        return self.country is not None

    @property
    def code(self) -> str:
        """``US-CA``, ``DE`` or ``""`` (unknown): what the consent log records."""
        return self.subdivision or self.country or ""


UNKNOWN = Region()


@functools.lru_cache(maxsize=1024)
def parse_region(code: str | None, source: str = "none") -> Region:
    """``"US-CA"`` / ``"de"`` -> :class:`Region`; anything invalid -> :data:`UNKNOWN`."""
    value = (code or "").strip().upper()
    m = _SUBDIVISION.match(value)
    if m:
        return Region(m[1], value, source) if m[1] in COUNTRIES else UNKNOWN
    return Region(value, None, source) if value in COUNTRIES else UNKNOWN


def check_region_key(key: str) -> None:
    """Validate a key of ``Site.regimes``; raises ``ValueError`` naming the fix."""
    upper = key.upper()
    if upper in GROUPS or parse_region(upper).known:
        return
    raise ValueError(
        f"unknown region {key!r}; use an ISO 3166-1 country (DE), an ISO 3166-2 "
        f"subdivision (US-CA) or a group ({', '.join(GROUPS)})"
    )


def region_filter(value: str) -> str:
    """An export filter value as the log stores regions: ``""`` (unknown), ``DE`` or
    ``US-CA`` (case-insensitive in); raises ``ValueError`` naming the fix."""
    if not value.strip():
        return ""
    region = parse_region(value)
    if not region.known:
        raise ValueError(
            f"{value!r} is not a region; use an ISO 3166-1 country (DE), an ISO 3166-2 "
            'subdivision (US-CA) or "" for visitors whose region was unknown'
        )
    return region.code


@dataclass(frozen=True)
class _RegimeMap:
    exact: Mapping[str, str]  # country or subdivision -> regime
    groups: tuple[tuple[int, int, int, str, frozenset[str]], ...]  # sort key + regime + members
    default: str

    def lookup(self, region: Region) -> str:
        if region.subdivision and region.subdivision in self.exact:
            return self.exact[region.subdivision]
        if region.country is None:
            return self.default
        if region.country in self.exact:
            return self.exact[region.country]
        for *_, regime, members in self.groups:  # sorted: best candidate first
            if region.country in members or (region.subdivision or "") in members:
                return regime
        return self.default


@functools.lru_cache(maxsize=256)
def _compile(site_regimes: tuple[tuple[str, str], ...], default: str) -> _RegimeMap:
    own = {k.upper(): v for k, v in site_regimes}
    merged = {**DEFAULT_REGIMES, **own}
    exact = {k: v for k, v in merged.items() if k not in GROUPS}
    groups = sorted(
        (int(k not in own), len(GROUPS[k]), -_STRICTNESS[v], v, GROUPS[k])
        for k, v in merged.items()
        if k in GROUPS
    )
    return _RegimeMap(exact, tuple(groups), default)


def regime_map(site: Site) -> _RegimeMap:
    return _compile(tuple(sorted(site.regimes.items())), site.default_regime)


def regime_for(site: Site, region: Region) -> str:
    """The regime ``site`` applies to a visitor from ``region``."""
    return regime_map(site).lookup(region)
