"""The one page plan, shared by the proxy and the in-process middleware.

What a response is, as the browser will read it, and what a visitor may receive of it.
:mod:`consentgate.proxy` (upstream responses) and :mod:`consentgate.rewriting` (an
ASGI app's responses, under ``ConsentGateMiddleware`` and the demo) only move bytes;
every decision below is made here, once.

**What is a document** (a response a browser may run script in), by the browser's
rules (:mod:`consentgate.mime`): the MIME type Fetch extracts from *all*
``Content-Type`` headers (the last valid one wins), and, when that type is missing,
invalid, ``unknown/unknown``, ``application/unknown`` or ``*/*`` and
``X-Content-Type-Options: nosniff`` is absent, the type sniffed from the first 512
*decoded* body bytes.

- ``text/html`` -> :attr:`Kind.HTML`: decoded, rewritten (trackers held back, banner
  snippet injected), re-encoded.
- XML types (``application/xhtml+xml``, ``image/svg+xml``, ``text/xml``,
  ``application/xml``, any ``+xml``, ``text/xsl``) -> :attr:`Kind.XML`: the HTML rewriter
  cannot read XML soundly (CDATA, entities, namespace prefixes, no raw-text elements),
  so for a visitor without full consent the body is passed only when it is inert
  (:func:`xml_refusal`: no ``script`` anywhere, no event handler attribute, no DTD
  internal subset or entity, no style sheet PI, nothing the rewriter would neutralize);
  otherwise it is refused.
- anything else (``text/plain``, JSON, images, ``application/octet-stream``...) is not a
  document and streams through untouched; so does every response to a visitor who
  granted every category (``Set-Cookie`` is filtered for everyone).

**What is refused** (:func:`refuse`, the documented ``502 Bad Gateway`` page, "The page
could not be made safe.") for a visitor without full consent, never forwarded:
a document in a content coding that cannot be decoded (unknown coding, broken body);
one in an encoding the rewriter cannot read (UTF-16/32 by BOM or header, UTF-7,
ISO-2022-*, EBCDIC; any ISO-2022 escape byte ``0x1B`` in a page, since a browser may
decode it as ISO-2022-JP from a ``<meta>`` or its detector); an XML document that is not
inert; a page whose rewrite cannot be split around the snippet; and *any* internal
error while a page is planned or rewritten for such a visitor. Once part of a page has
gone out, the response is cut instead. Error pages (404, 500, ...) are pages too.

The rest of the plan: the CSP nonce for the snippet (:func:`csp_nonce`, directive
aware), ``Vary`` and consent-tagged ``ETag`` (:func:`page_headers`), the ``Set-Cookie``
policy and the server-side expiry of refused cookies (:func:`cookie_headers`), the
banner snippet (:class:`SnippetCache`) and the rewriter (:func:`make_rewriter`).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from typing import Protocol

from starlette.types import Send

from .catalog import load_catalog
from .config import Site
from .consent import CATEGORIES
from .cookies import CookiePolicy
from .errors import ConsentGateError
from .injection import head_snippet_for
from .mime import UNKNOWN_TYPES, extract_mime_type, is_xml_type, nosniff, sniff
from .regions import Decision
from .rewriter import RewritePolicy, StreamRewriter
from .rewriter.csp import csp_nonce
from .rewriter.elements import refresh_url
from .visit import Runtime

__all__ = [
    "REFUSAL",
    "Head",
    "Kind",
    "PageRewriter",
    "Snippet",
    "SnippetCache",
    "UnsafePage",
    "consent_etag",
    "content_coding",
    "cookie_headers",
    "csp_nonce",
    "error_page",
    "filter_link",
    "full_consent",
    "guard_escape",
    "make_rewriter",
    "merge_vary",
    "page_headers",
    "read_head",
    "refresh_headers",
    "refuse",
    "relayable_status",
    "sniff_kind",
    "translate_if_none_match",
    "xml_refusal",
]

log = logging.getLogger("consentgate.page")

_ALL = frozenset(CATEGORIES)
#: The refusal page's text (docs/proxy.md).
REFUSAL = "The page could not be made safe."
#: Response headers that describe the exact bytes (wrong once a page is rewritten).
BYTES_HEADERS = frozenset({b"content-length", b"content-md5", b"digest", b"accept-ranges"})

Snippet = Callable[[str | None], bytes]


class UnsafePage(ConsentGateError):
    """A page that cannot be made safe for this visitor: refused (or cut)."""


class Kind(enum.Enum):
    PASS = "pass"  # not a document: forwarded untouched
    HTML = "html"  # rewritten
    XML = "xml"  # passed when inert, else refused (without full consent)
    SNIFF = "sniff"  # unknown type: decided by the first decoded body bytes


@dataclass(frozen=True, slots=True)
class Head:
    """What a response head says about the page: its kind, charset, CSP nonce."""

    kind: Kind
    charset: str | None
    nonce: str | None

    @property
    def page(self) -> bool:
        """Could the body be a document (rewritten, checked or sniffed)?"""
        return self.kind is not Kind.PASS


def full_consent(decision: Decision) -> bool:
    """Nothing to hold back for this visitor: every category is granted."""
    return decision.granted >= _ALL


def relayable_status(status: int) -> bool:
    """A final status HTTP/1.1 can relay (a 1xx, < 100 or >= 600 cannot: 502)."""
    return 200 <= status <= 599


def read_head(headers: Iterable[tuple[bytes, bytes]]) -> Head:
    """Classify a response from its headers (any name case)."""
    types: list[bytes] = []
    options: list[bytes] = []
    policies: list[bytes] = []
    for name, value in headers:
        name = name.lower()
        if name == b"content-type":
            types.append(value)
        elif name == b"x-content-type-options":
            options.append(value)
        elif name == b"content-security-policy":
            policies.append(value)
    mime = extract_mime_type(types)
    if mime is None or mime.essence in UNKNOWN_TYPES:
        kind = Kind.PASS if nosniff(options) else Kind.SNIFF
    elif mime.essence == "text/html":
        kind = Kind.HTML
    elif is_xml_type(mime.essence):
        kind = Kind.XML
    else:
        kind = Kind.PASS
    return Head(kind, mime.charset if mime else None, csp_nonce(policies))


def sniff_kind(data: bytes) -> Kind:
    """The kind of a response of unknown type from its first decoded bytes (at least
    :data:`consentgate.mime.SNIFF_BYTES`, or the whole body)."""
    found = sniff(data)
    if found == "text/html":
        return Kind.HTML
    return Kind.XML if found == "text/xml" else Kind.PASS


# -- ETags and Vary of rewritten pages -------------------------------------------------
# A rewritten page depends on the visitor's consent, so its ETag is weakened and
# tagged with the consent it was rewritten for: "abc" -> W/"abc-cg<token>".
# A conditional request carrying a tag for another consent must not get a 304.

_MARK = "-cg"
_ETAGS: dict[tuple[bytes, str], bytes] = {}  # consent_etag, memoized (bounded)


def consent_etag(value: bytes, token: str) -> bytes:
    key = (value, token)
    found = _ETAGS.get(key)
    if found is None:
        found = _consent_etag(value, token)
        if len(_ETAGS) >= 1024:
            _ETAGS.clear()
        _ETAGS[key] = found
    return found


def _consent_etag(value: bytes, token: str) -> bytes:
    text = value.decode("latin-1").strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return value
    return f'W/"{text[1:-1]}{_MARK}{token}"'.encode("latin-1")


def translate_if_none_match(value: bytes, token: str) -> bytes:
    """Consent-tagged entity tags for this consent -> the upstream's tag; others dropped."""
    text = value.decode("latin-1").strip()
    if text == "*":
        return value
    kept: list[str] = []
    for raw in text.split(","):
        tag = raw.strip()
        if not tag:
            continue
        weak = tag.startswith("W/")
        opaque = tag[2:] if weak else tag
        if not (len(opaque) >= 2 and opaque.startswith('"') and opaque.endswith('"')):
            continue
        inner = opaque[1:-1]
        cut = inner.rfind(_MARK)
        if weak and cut >= 0:
            if inner[cut + len(_MARK) :] != token:
                continue  # rewritten for another consent: must be served again
            kept.append(f'"{inner[:cut]}"')
        else:
            kept.append(tag)
    return ", ".join(kept).encode("latin-1")


def merge_vary(headers: list[tuple[bytes, bytes]], field: bytes) -> list[tuple[bytes, bytes]]:
    for i, (name, value) in enumerate(headers):
        if name == b"vary":
            parts = [p.strip().lower() for p in value.split(b",")]
            if field.lower() in parts or b"*" in parts:
                return headers
            headers[i] = (name, value + b", " + field)
            return headers
    headers.append((b"vary", field))
    return headers


_LINK_SPLIT = re.compile(rb",\s*(?=<)")
_LINK_URI = re.compile(rb"\s*<([^>]*)>")


def filter_link(value: bytes, site: Site, granted: frozenset[str]) -> bytes | None:
    """A ``Link`` header of a page without the links to a catalogued tracker's host of a
    category the visitor has not granted (``rel=preload``/``modulepreload``/
    ``prefetch``/``preconnect`` in a header fetch or connect before any markup is
    read); None when nothing is left."""
    catalog = load_catalog(site)
    kept = []
    for link in _LINK_SPLIT.split(value):
        found = _LINK_URI.match(link)
        uri = found.group(1) if found else b""
        # the URL's own service, else (an origin: preconnect) the strictest on its host
        category = (catalog.url_category(uri) or catalog.hint_category(uri)) if uri else None
        if category is None or category == "necessary" or category in granted:
            kept.append(link.strip())
    if len(kept) == len(_LINK_SPLIT.split(value)):
        return value
    return b", ".join(kept) or None


#: While unclassified content is refused, no document in an opaque origin that no runtime
#: guard can reach (a ``data:`` URL) is shown in a frame, an object or an embed, however the
#: frame is navigated: by its ``src``, ``window.open`` into it, a link or form targeting it,
#: its own ``location``, a refresh in it (docs/guard.md). A policy of its own beside the
#: site's: the wildcard matches network schemes, not ``data:``; ``blob:`` documents are the
#: page's own (the guard holds a sandboxed one).
OPAQUE_FRAMES_CSP = (b"content-security-policy", b"frame-src * blob:; object-src * blob:")


def opaque_frames_policy(granted: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The header a page gets for a visitor with ``granted`` (none with unclassified)."""
    return [] if "unclassified" in granted else [OPAQUE_FRAMES_CSP]


def page_headers(
    headers: Iterable[tuple[bytes, bytes]],
    token: str,
    vary: Iterable[bytes],
    site: Site | None = None,
    granted: frozenset[str] = _ALL,
) -> list[tuple[bytes, bytes]]:
    """A page's response headers (lowercase names): those describing the upstream's
    exact bytes dropped, the ETag tagged with the consent, ``Vary`` extended, ``Link``
    entries to refused trackers dropped (with ``site``)."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        name = name.lower()
        if name in BYTES_HEADERS:
            continue
        if name == b"etag":
            value = consent_etag(value, token)
        elif name == b"link" and site is not None:
            link = filter_link(value, site, granted)
            if link is None:
                continue
            value = link
        out.append((name, value))
    for field in vary:
        merge_vary(out, field)
    return out


def content_coding(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The response's content codings in the order applied, lower case (b"": none): every
    ``Content-Encoding`` header's list, joined as a browser reads them (two ``gzip``
    headers are ``gzip, gzip``, not the first one)."""
    values = [v.strip() for n, v in headers if n.lower() == b"content-encoding"]
    return b", ".join(v for v in values if v).lower()


# -- headers that navigate ----------------------------------------------------------------
def refresh_headers(
    headers: list[tuple[bytes, bytes]], site: Site, granted: frozenset[str]
) -> list[tuple[bytes, bytes]]:
    """``headers`` without a ``Refresh`` to a tracker of a category the visitor has not
    granted: the browser goes there before any markup is read (``Link`` entries:
    :func:`filter_link`; ``<meta http-equiv=refresh>``: the rewriter)."""
    if granted | {"necessary"} >= _ALL:
        return headers
    catalog = load_catalog(site)
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"refresh":
            category = catalog.url_category(refresh_url(value))
            if category is not None and category != "necessary" and category not in granted:
                continue
        out.append((name, value))
    return out


# -- cookies ---------------------------------------------------------------------------
def cookie_headers(
    headers: Iterable[tuple[bytes, bytes]],
    policy: CookiePolicy,
    request_cookie: bytes | None,
    host: str,
    page: bool,
) -> list[tuple[bytes, bytes]]:
    """``headers`` without the ``Set-Cookie`` of categories the visitor may not receive;
    for a page, plus the expiring ``Set-Cookie`` that delete, server-side, the request's
    cookies of refused categories (HttpOnly ones included: no script can reach them)."""
    out = [
        (name, value)
        for name, value in headers
        if name.lower() != b"set-cookie" or policy.filter_set_cookie(value)
    ]
    if page and request_cookie:
        out.extend((b"set-cookie", v) for v in policy.expire_refused(request_cookie, host))
    return out


# -- the rewriter and the banner snippet -------------------------------------------------
class PageRewriter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


def make_rewriter(
    site: Site,
    decision: Decision,
    snippet: Snippet | None,
    charset: str | None,
    nonce: str | None,
) -> StreamRewriter:
    """A fresh streaming rewriter for one page and one visitor (``decision`` from
    :func:`consentgate.regions.decide_scope`: what the visitor may receive now)."""
    policy = RewritePolicy.for_site(site, decision.granted, load_catalog(site))
    return StreamRewriter(policy, snippet, nonce=nonce, charset=charset)


def guard_escape(data: bytes) -> None:
    """A page carrying an ISO-2022 escape (``0x1B``) may be decoded as ISO-2022-JP by the
    browser (a ``<meta charset>``, its detector), where markup the rewriter reads as
    markup is text and the reverse: not rewritable."""
    if b"\x1b" in data:
        raise UnsafePage("an ISO-2022 escape byte (0x1B) in the page")


class SnippetCache:
    """Banner snippets of visitors who have not decided, by everything they depend on.

    Without a consent the snippet is the same for every visitor with the same site,
    ``Accept-Language``, region, regime and GPC signal, so it is built once (and rendered
    once per CSP nonce); a visitor with a consent gets their own (it carries their
    consent state). Bounded: emptied when ``size`` keys are held.
    """

    def __init__(self, runtime: Runtime, size: int = 512) -> None:
        self.runtime = runtime
        self.size = size
        self._entries: dict[tuple[object, ...], Snippet] = {}

    def get(self, site: Site, decision: Decision, headers: list[tuple[bytes, bytes]]) -> Snippet:
        if decision.consent is not None:
            return head_snippet_for(self.runtime, site, decision.consent, headers, decision)
        languages = tuple(v for n, v in headers if n == b"accept-language")
        key = (site.id, languages, decision.region, decision.regime, decision.gpc)
        found = self._entries.get(key)
        if found is None:
            found = _rendered_once(head_snippet_for(self.runtime, site, None, headers, decision))
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = found
        return found


def _rendered_once(snippet: Snippet) -> Snippet:
    rendered: dict[str | None, bytes] = {}

    def render(nonce: str | None) -> bytes:
        found = rendered.get(nonce)
        if found is None:
            if len(rendered) >= 16:  # nonces differ per page view: do not grow
                return snippet(nonce)
            found = rendered[nonce] = snippet(nonce)
        return found

    return render


# -- XML documents ---------------------------------------------------------------------
#: The most of an XML document held to check it (larger: refused).
XML_MAX_BYTES = 4 * 1024 * 1024
_XML_ACTIVE = re.compile(
    rb"(script)|(<!doctype[^>]*\[|<!entity)|(<\?xml-stylesheet)|[\s\"'/]on[a-z]+\s*=", re.I
)


def xml_refusal(body: bytes, site: Site, decision: Decision, charset: str | None) -> str | None:
    """Why an XML document cannot go to this visitor as it is (None: it is inert)."""
    found = _XML_ACTIVE.search(body)
    if found is not None:
        if found.group(1):
            return "a script in an XML document"
        if found.group(2):
            return "a DTD internal subset in an XML document"
        if found.group(3):
            return "a style sheet processing instruction in an XML document"
        return "an event handler attribute in an XML document"
    if b"\x1b" in body:
        return "an ISO-2022 escape byte (0x1B)"
    rewriter = make_rewriter(site, decision, None, charset, None)
    out = rewriter.feed(body) + rewriter.finish()
    if rewriter.passthrough_reason is not None:
        return f"{rewriter.passthrough_reason} in an XML document"
    if out != body:
        return "an XML document with elements to hold back"
    return None


# -- refusal ---------------------------------------------------------------------------
async def error_page(send: Send, status: int, title: str, detail: str) -> None:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status} {escape(title)}</title>"
        f"<h1>{status} {escape(title)}</h1><p>{escape(detail)}</p></html>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, site: Site, reason: object) -> None:
    """The documented refusal: ``502 Bad Gateway``, "The page could not be made safe.",
    and a log line naming the site and the reason."""
    log.error("site %s: page not served to a visitor without full consent: %s", site.id, reason)
    await error_page(send, 502, "Bad Gateway", REFUSAL)
