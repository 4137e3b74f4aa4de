"""Where is the visitor? Region detection, in this order:

1. a trusted header set by the CDN or load balancer (``settings.region_header``,
   e.g. ``CF-IPCountry`` or ``CloudFront-Viewer-Country``, plus
   ``settings.subdivision_header``), believed only when the TCP peer is one of
   ``settings.trusted_proxies`` (addresses or CIDRs) and the value is a valid code;
2. a MaxMind-format database (``settings.geoip_database``; needs the optional
   ``maxminddb`` package: ``pip install 'consentgate[geoip]'``), looked up for the
   peer address, or for the ``X-Forwarded-For`` client when the peer is trusted;
3. otherwise unknown, and the site's ``default_regime`` applies.

Exceptions: configuration problems (a bad CIDR, a missing database or package)
raise :class:`consentgate.config.ConfigError` naming the setting and the fix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import ConfigError
from ..visitor import TrustedProxies, client_address
from .model import UNKNOWN, Region, parse_region

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["GeoIPDatabase", "RegionDetector", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

INSTALL_HINT = "install the optional extra: python3 -m pip install 'consentgate[geoip]'"


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` -> networks; raises ``ValueError``."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(out)


class GeoIPDatabase:
    """A MaxMind-format (``.mmdb``) database: GeoIP2/GeoLite2 Country or City
    (``country.iso_code``, ``subdivisions[0].iso_code``) or a flat
    ``country_code`` record (IPinfo, DB-IP lite)."""

    def __init__(self, path: str) -> None:
        try:
            import maxminddb
        except ImportError:
            raise ConfigError(
                f"geoip_database is set but the maxminddb package is missing; {INSTALL_HINT}",
                key="server.geoip_database",
            ) from None
        try:
            self._reader = maxminddb.open_database(path)
        except FileNotFoundError:
            raise ConfigError(
                f"no such file {path!r}; point it at a MaxMind .mmdb file or leave it empty",
                key="server.geoip_database",
            ) from None
        except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError: RuntimeError
            raise ConfigError(
                f"{path!r} is not a MaxMind database: {exc}", key="server.geoip_database"
            ) from None
        self.path = path

    def lookup(self, ip: str) -> Region:
        try:
            record = self._reader.get(ip)
        except ValueError:  # not an address, or IPv6 in an IPv4-only database
            return UNKNOWN
        return _region_from_record(record)

    def close(self) -> None:
        self._reader.close()


def _region_from_record(record: Any) -> Region:
    if not isinstance(record, dict):
        return UNKNOWN
    country: Any = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else record.get("country_code")
    region = parse_region(code if isinstance(code, str) else None, "geoip")
    if not region.known or region.subdivision:
        return region
    subs = record.get("subdivisions")
    if isinstance(subs, list) and subs and isinstance(subs[0], dict):
        sub = subs[0].get("iso_code")
        if isinstance(sub, str):
            with_sub = parse_region(f"{region.country}-{sub}", "geoip")
            if with_sub.known:
                return with_sub
    return region


class RegionDetector:
    """Finds a request's :class:`Region` (see the module docstring for the order)."""

    def __init__(
        self,
        *,
        region_header: str = "",
        subdivision_header: str = "",
        trusted_proxies: Iterable[str] = (),
        geoip: GeoIPDatabase | None = None,
    ) -> None:
        self.region_header = region_header.strip().lower()
        self.subdivision_header = subdivision_header.strip().lower()
        self.trusted = TrustedProxies(trusted_proxies)
        #: Request headers :meth:`detect` and the decision read (lowercase, bytes).
        self.header_names = frozenset(
            n.encode("latin-1")
            for n in (self.region_header, self.subdivision_header, "x-forwarded-for", "sec-gpc")
            if n
        )
        self.geoip = geoip

    @classmethod
    def from_settings(cls, settings: Settings) -> RegionDetector:
        try:
            networks = list(settings.trusted_proxies)
            parse_networks(networks)
        except ValueError as exc:
            raise ConfigError(str(exc), key="server.trusted_proxies") from None
        geoip = GeoIPDatabase(settings.geoip_database) if settings.geoip_database else None
        return cls(
            region_header=settings.region_header,
            subdivision_header=settings.subdivision_header,
            trusted_proxies=networks,
            geoip=geoip,
        )

    def from_headers(self, peer: str | None, headers: Mapping[str, str]) -> Region:
        """The region the trusted headers state, or :data:`UNKNOWN`."""
        if not self.region_header or peer not in self.trusted:
            return UNKNOWN
        region = parse_region(headers.get(self.region_header), "header")
        if not region.known or region.subdivision or not self.subdivision_header:
            return region
        sub = (headers.get(self.subdivision_header) or "").strip().upper()
        if sub and "-" not in sub:
            sub = f"{region.country}-{sub}"
        with_sub = parse_region(sub, "header")
        return with_sub if with_sub.country == region.country else region

    def detect(self, peer: str | None, headers: Mapping[str, str]) -> Region:
        """``peer`` is the TCP peer address (ASGI ``scope["client"][0]``);
        ``headers`` is looked up with lowercase names."""
        region = self.from_headers(peer, headers)
        if region.known or self.geoip is None:
            return region
        client = client_address(peer, headers.get("x-forwarded-for"), self.trusted)
        return self.geoip.lookup(client) if client else UNKNOWN

    def close(self) -> None:
        if self.geoip is not None:
            self.geoip.close()
