"""Header rules of the proxy: hop-by-hop removal, forwarding headers, Location (the
consent-tagged ETag and Vary rules live in :mod:`consentgate.page`, re-exported here).

Pure functions over ASGI-style header lists (``list[tuple[bytes, bytes]]``, names
lower-cased), so they are easy to test and cheap to run.

Framing and routing are never hop-by-hop: ``Content-Length``, ``Transfer-Encoding``
and ``Host`` named in ``Connection`` stay (RFC 9110 7.6.1 forbids a sender to list
them; a proxy that obeys the list anyway sends a body without its framing). The
request body's framing is never copied either: the proxy sets it for the upstream
from what it read (see ``ProxyApp._request_body``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..page import consent_etag, merge_vary, translate_if_none_match
from ..visitor import TrustedProxies, valid_host
from .encoding import constrain_accept_encoding

__all__ = [
    "CLIENT_IP_HEADERS",
    "HOP_BY_HOP",
    "PublicOrigin",
    "Visitor",
    "connection_tokens",
    "consent_etag",
    "merge_vary",
    "request_headers_for_upstream",
    "rewrite_location",
    "strip_hop_by_hop",
    "translate_if_none_match",
    "visitor_of",
]


HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Headers ``Connection`` cannot make hop-by-hop: framing and routing.
_NEVER_HOP = frozenset({b"content-length", b"transfer-encoding", b"host"})
#: Never copied from the visitor: hop-by-hop, Host and Expect (set again), and the
#: body's framing (set again from what was read).
_DROP_REQUEST = HOP_BY_HOP | {b"host", b"expect", b"content-length"}
_FORWARDING = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
)
#: Headers naming the client's address that CDNs and proxies set: believed (passed on)
#: only from a trusted peer, like X-Forwarded-For.
CLIENT_IP_HEADERS = frozenset(
    {
        b"x-real-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"x-originating-ip",
        b"x-remote-ip",
        b"x-remote-addr",
        b"client-ip",
        b"forwarded-for",
        b"x-forwarded",
        b"x-azure-clientip",
        b"akamai-client-ip",
    }
)


_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = rb"%s=(?:%s|\"(?:[^\"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x09\x20-\x7e])*\")" % (_TOKEN, _TOKEN)
_ELEMENT = rb"(?:%s(?:;%s)*)?" % (_PAIR, _PAIR)
#: a Forwarded field value (RFC 7239 section 4): elements of pairs, comma-separated
_FORWARDED = re.compile(rb"[ \t]*%s(?:[ \t]*,[ \t]*%s)*[ \t]*" % (_ELEMENT, _ELEMENT))


@dataclass(frozen=True, slots=True)
class PublicOrigin:
    """A site's public origin as configured (``origins``): ``scheme://host[:port]``."""

    scheme: str
    host: str  # host[:port], lower-cased

    @classmethod
    def parse(cls, origin: str) -> PublicOrigin | None:
        scheme, sep, rest = origin.strip().rstrip("/").partition("://")
        host = rest.lower()
        if not sep or scheme.lower() not in ("http", "https") or "/" in host:
            return None
        if not host or not valid_host(host.encode("latin-1", "replace")):
            return None
        return cls(scheme.lower(), host)


@dataclass(frozen=True, slots=True)
class Visitor:
    """Where the request came from, as the proxy believes it."""

    client_ip: str
    scheme: str  # http | https, as the visitor used it
    host: str  # the Host the visitor asked for (may be empty)
    trusted_peer: bool  # the direct peer is a trusted proxy

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too), except the
    framing and routing headers, which never are."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens - _NEVER_HOP


def strip_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    drop = HOP_BY_HOP | connection_tokens(headers)
    return [(n, v) for n, v in headers if n not in drop]


def visitor_of(
    client_ip: str,
    scheme: str,
    headers: list[tuple[bytes, bytes]],
    trusted: TrustedProxies,
    public: tuple[PublicOrigin, ...] = (),
) -> Visitor:
    """Where the request came from. The host is the request's ``Host`` only when it is
    a valid host[:port] (else empty); when the site declares its public origins, it is
    the declared origin it names (or the first one), scheme included: a Host is never
    reflected as the visitor sent it."""
    raw = b""
    proto = ""
    for name, value in headers:
        if name == b"host":
            raw = value.strip()
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").split(",")[0].strip().lower()
    host = raw.decode("ascii").lower() if valid_host(raw) else ""
    trusted_peer = client_ip in trusted
    if trusted_peer and proto in ("http", "https"):
        scheme = proto
    scheme = "https" if scheme in ("https", "wss") else "http"
    if public:
        chosen = next((o for o in public if o.host == host), public[0])
        scheme, host = chosen.scheme, chosen.host
    return Visitor(client_ip, scheme, host, trusted_peer)


def _forwarded_for(ip: str) -> str:
    return _quoted(f"[{ip}]") if ":" in ip else ip


def _quoted(value: str) -> str:
    """An RFC 7239 (RFC 9110 quoted-string) value: the same text, never a parameter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def request_headers_for_upstream(
    headers: list[tuple[bytes, bytes]],
    visitor: Visitor,
    upstream_host: str,
    *,
    consent_token: str,
    rewriting_possible: bool = True,
) -> list[tuple[bytes, bytes]]:
    """The visitor's request headers as the upstream should see them.

    Drops hop-by-hop headers (and those named in Connection), ``Expect`` (the server in
    front already answered it), forwarding headers from untrusted peers; narrows
    Accept-Encoding to what the proxy can decode; translates consent-tagged
    If-None-Match; sets Host and appends X-Forwarded-* and Forwarded.
    """
    drop = _DROP_REQUEST
    for name, _ in headers:
        if name == b"connection":
            drop = _DROP_REQUEST | connection_tokens(headers)
            break
    out: list[tuple[bytes, bytes]] = []
    prior_xff = b""
    prior_fwd = b""
    for name, value in headers:
        if name in drop:
            continue
        if name in CLIENT_IP_HEADERS and not visitor.trusted_peer:
            continue
        if name in _FORWARDING:
            if visitor.trusted_peer:
                if name == b"x-forwarded-for":
                    prior_xff = value
                elif name == b"forwarded":
                    # kept only when it parses (RFC 7239): an open quote would swallow
                    # the element appended after it
                    prior_fwd = value if _FORWARDED.fullmatch(value) else b""
            continue
        if name == b"accept-encoding" and rewriting_possible:
            narrowed = constrain_accept_encoding(value)
            if narrowed:
                out.append((name, narrowed))
            continue
        if name == b"if-none-match":
            translated = translate_if_none_match(value, consent_token)
            if translated:
                out.append((name, translated))
            continue
        out.append((name, value))
    host = (upstream_host or visitor.host).encode("latin-1")
    ip = visitor.client_ip
    xff = (prior_xff + b", " if prior_xff else b"") + ip.encode("latin-1")
    fwd = f"for={_forwarded_for(ip) if ip else 'unknown'};proto={visitor.scheme}"
    if visitor.host:
        fwd += f";host={_quoted(visitor.host)}"
    fwd_bytes = (prior_fwd + b", " if prior_fwd else b"") + fwd.encode("latin-1")
    out.append((b"host", host))
    if ip:
        out.append((b"x-forwarded-for", xff))
    out.append((b"x-forwarded-proto", visitor.scheme.encode("latin-1")))
    if visitor.host:
        out.append((b"x-forwarded-host", visitor.host.encode("latin-1")))
    out.append((b"forwarded", fwd_bytes))
    return out


def rewrite_location(value: bytes, upstream_origins: tuple[str, ...], visitor: Visitor) -> bytes:
    """A redirect to the upstream's own origin (absolute or scheme-relative) becomes one
    to the visitor's origin."""
    if not visitor.host:
        return value
    text = value.decode("latin-1")
    lowered = text.lstrip().lower()
    for origin in upstream_origins:
        origin = origin.lower()
        relative = origin[origin.index("//") :]
        for prefix in (origin, relative):
            if lowered.startswith(prefix):
                rest = text.lstrip()[len(prefix) :]
                if rest == "" or rest[0] in "/?#":
                    return (visitor.origin + rest).encode("latin-1")
    return value
