"""What the consent log records about a visitor, minimised before it is stored.

Pure functions over headers and addresses: the masked IP (IPv4 /24, IPv6 /48 —
never the full address), the page URL without query, fragment or credentials, the
user agent (truncated). The region is found by ``consentgate.regions``.

Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only
when the TCP peer is one of ``trusted_proxies`` (addresses or CIDR networks).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "USER_AGENT_MAX",
    "TrustedProxies",
    "clean_page_url",
    "client_address",
    "mask_ip",
    "normalize_language",
    "truncate_user_agent",
    "valid_host",
]

USER_AGENT_MAX = 256
PAGE_URL_MAX = 2048
# C0 controls, DEL, and lone surrogates (JSON "\\ud800" decodes to one; it cannot be
# encoded as UTF-8, so no database can store it)
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A Host header as consentgate accepts it: a DNS-style name or an IPv4 address (letters,
#: digits, ``-``, ``.``, ``_``) or a bracketed IPv6 literal, then an optional port. RFC
#: 3986's reg-name also allows sub-delims (``;``, ``=``, ``'`` ...): no site is named so,
#: and those are what lets a Host smuggle cookie attributes or Forwarded parameters.
_HOST = re.compile(
    rb"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)


def valid_host(value: bytes) -> bool:
    """Whether ``value`` is an acceptable Host header value (empty is: RFC 9112 3.2): a
    name or an IP literal that parses, and a port a connection can have (0-65535)."""
    if not value:
        return True
    if _HOST.fullmatch(value) is None:
        return False
    host, colon, port = value.rpartition(b":") if not value.endswith(b"]") else (value, b"", b"")
    if colon and b"]" not in port:
        if int(port) > 65535:
            return False
        value = host
    if value.startswith(b"["):
        try:
            ipaddress.IPv6Address(value[1:-1].decode("ascii"))
        except ValueError:
            return False
    return True


class TrustedProxies:
    """A set of addresses / networks whose forwarding headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._seen: dict[str, bool] = {}  # address -> trusted (bounded memo)
        self.networks: list[IPNetwork] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                continue  # config validation reports these; never trust a typo

    def __contains__(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        found = self._seen.get(address)
        if found is None:
            ip = _parse_ip(address)
            found = ip is not None and any(ip in net for net in self.networks)
            if len(self._seen) >= 4096:
                self._seen.clear()
            self._seen[address] = found
        return found


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=4096)
def mask_ip(address: str | None) -> str:
    """IPv4 -> its /24 network address, IPv6 -> its /48; anything else -> ``""``."""
    if not address:
        return ""
    ip = _parse_ip(address)
    if ip is None:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def client_address(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str:
    """The visitor's address: the peer, or — when the peer is a trusted proxy — the
    rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    if peer is None:
        return ""
    if not forwarded_for or peer not in trusted:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if _parse_ip(hop) is None:
            return peer  # garbage in the chain: fall back to what we know
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer


@lru_cache(maxsize=4096)  # pages repeat: the same Referer is cleaned once
def clean_page_url(url: str | None) -> str:
    """``scheme://host/path`` of an http(s) URL: no query, fragment or credentials."""
    if not url or _CONTROL.search(url):  # not a URL, and NUL or a surrogate can't be stored
        return ""
    try:
        parts = urlsplit(url.strip()[:PAGE_URL_MAX])
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not host:
        return ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def truncate_user_agent(value: str | None) -> str:
    return (value or "")[:USER_AGENT_MAX]


@lru_cache(maxsize=1024)
def normalize_language(value: str | None) -> str:
    """A BCP 47-looking tag (``en``, ``pt-BR``), else ``""``. Accept-Language lists
    give their first entry."""
    if not value:
        return ""
    first = value.split(",", 1)[0].split(";", 1)[0].strip()
    return first if len(first) <= 35 and _LANGUAGE.match(first) else ""
