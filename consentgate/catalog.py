"""The tracker catalog: which URLs, inline loaders and cookies belong to which service.

The data lives in ``consentgate/data/catalog.toml``; a site adds services
(``[[sites.services]]``, same fields) and re-categorises catalog services
(``category_overrides = {service-id = "category"}``). :func:`load_catalog` builds
the lookup structures once per site.

Lookups:

* :meth:`Catalog.match_url` - services whose host/path pattern matches a URL,
* :meth:`Catalog.match_inline` - services whose loader signature occurs in an inline script,
* :meth:`Catalog.cookie_category` / :meth:`Catalog.cookie_service` - cookie name lookups
  used for ``Set-Cookie`` filtering and for deleting cookies on withdrawal,
* :meth:`Catalog.hint_category` - by host alone, for resource hints;
* :func:`cookie_patterns` / :func:`storage_patterns` - per category, the declared cookie
  names and storage keys (catalog and site) that the banner and the runtime guard use.

Errors in catalog data raise :class:`CatalogError` naming the service and field.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .consent import CATEGORIES
from .errors import ConsentGateError

if TYPE_CHECKING:
    from .config import Site

__all__ = [
    "CATEGORY_RANK",
    "Catalog",
    "CatalogError",
    "CookiePattern",
    "Service",
    "cookie_category",
    "cookie_patterns",
    "cookie_regexes",
    "default_catalog",
    "glob_source",
    "host_of",
    "load_catalog",
    "storage_patterns",
    "url_pattern_parts",
]

#: When several services match one element the strictest category wins.
CATEGORY_RANK: dict[str, int] = {
    "necessary": 0,
    "unclassified": 1,
    "preferences": 2,
    "statistics": 3,
    "marketing": 4,
}


#: Lower-case literals that flag an obfuscated URL in a lower-cased tag, for a full look
#: (``Catalog.host_hint``; the C rewriter's hint words): a numeric character reference, the
#: named ones of a tab and a line break (the URL parser drops both: ``go&Tab;ogle``), a
#: backslash (read as a slash).
OBFUSCATION_HINTS = (b"&#", b"&tab;", b"&newline;", b"\\")


class CatalogError(ConsentGateError, ValueError):
    """Bad catalog data: names the service and the field."""


@dataclass(frozen=True)
class CookiePattern:
    name: str  # glob: '*' matches any run of characters
    expiry: str = ""
    purpose: str = ""

    def matches(self, cookie_name: str) -> bool:
        return fnmatch.fnmatchcase(cookie_name, self.name)


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    provider: str
    category: str
    urls: tuple[str, ...] = ()
    inline: tuple[str, ...] = ()
    cookies: tuple[CookiePattern, ...] = ()
    consent_mode: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()
    storage: tuple[str, ...] = ()  # localStorage/sessionStorage key globs


@dataclass
class _UrlRule:
    path: re.Pattern[str] | None  # None: any path
    service: Service
    specificity: int


@dataclass
class Catalog:
    services: tuple[Service, ...]
    _hosts: dict[str, list[_UrlRule]] = field(default_factory=dict, repr=False)
    _anyhost: list[tuple[str, Service]] = field(default_factory=list, repr=False)
    _by_anchor: dict[bytes, list[tuple[re.Pattern[bytes], Service]]] = field(
        default_factory=dict, repr=False
    )
    _anchor: re.Pattern[bytes] | None = field(default=None, repr=False)
    _inline_cache: dict[tuple[int, int], tuple[Service, ...]] = field(
        default_factory=dict, repr=False
    )
    _cookie_exact: dict[str, Service] = field(default_factory=dict, repr=False)
    _cookie_globs: list[tuple[CookiePattern, Service]] = field(default_factory=list, repr=False)
    host_hint: re.Pattern[bytes] | None = field(default=None, repr=False)
    #: The literal alternatives of ``host_hint`` besides ``&#`` and ``\\`` (the C rewriter)
    hint_words: tuple[bytes, ...] = field(default=(), repr=False)
    #: The literals of ``_anchor``: an inline script holding none matches no service
    inline_anchors: tuple[bytes, ...] = field(default=(), repr=False)
    _url_cache: dict[bytes, str | None] = field(default_factory=dict, repr=False)
    #: ``_anchor``'s matches as (start, end) spans, in C when the accelerator is compiled
    _find_anchors: Callable[[bytes], list[tuple[int, int]]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        labels: set[str] = set()
        by_anchor: dict[bytes, list[tuple[re.Pattern[bytes], Service]]] = {}
        for svc in self.services:
            for pattern in svc.urls:
                self._add_url(pattern, svc)
                if not pattern.startswith("/"):
                    host = pattern.split("/", 1)[0]
                    labels.add(host.split(".")[-2] if host.count(".") else host)
            for i, sig in enumerate(svc.inline):
                try:
                    compiled = re.compile(sig.encode())
                except re.error as exc:
                    raise CatalogError(f"service {svc.id!r}: inline[{i}] {sig!r}: {exc}") from None
                for anchor in svc.anchors:
                    if anchor in sig.replace("\\", ""):
                        by_anchor.setdefault(anchor.encode(), []).append((compiled, svc))
            for cookie in svc.cookies:
                if "*" in cookie.name or "?" in cookie.name or "[" in cookie.name:
                    self._cookie_globs.append((cookie, svc))
                else:
                    self._cookie_exact.setdefault(cookie.name, svc)
        if by_anchor:
            self.inline_anchors = tuple(sorted(by_anchor))
            self._by_anchor = by_anchor
            self._anchor = re.compile(b"|".join(re.escape(a) for a in sorted(by_anchor)))
            self._find_anchors = _literal_finder(self.inline_anchors)
        # Lower-case literals searched in a lower-cased tag: "oogle" also catches
        # "%67oogle"; OBFUSCATION_HINTS flag obfuscated URLs for a full look.
        words = {label.lower()[1:] if len(label) > 5 else label.lower() for label in labels}
        hint = b"|".join(re.escape(w.encode()) for w in sorted(words))
        # "data:": a document written in the URL (Catalog.data_category)
        obfuscated = b"|".join(re.escape(w) for w in (b"data:", *OBFUSCATION_HINTS))
        self.host_hint = re.compile(hint + b"|" + obfuscated if hint else obfuscated)
        self.hint_words = (*(w.encode() for w in sorted(words)), b"data:") if hint else ()

    def _add_url(self, pattern: str, svc: Service) -> None:
        host, path = url_pattern_parts(pattern)
        if not host:  # "/matomo.js": a path suffix on any host, relative URLs included
            self._anyhost.append((pattern, svc))
        else:
            path_re = re.compile(path) if path else None
            self._hosts.setdefault(host, []).append(_UrlRule(path_re, svc, len(pattern)))

    # -- lookups ---------------------------------------------------------------------
    def match_url(self, url: str) -> list[Service]:
        """Services whose pattern matches ``url`` (absolute, scheme-relative or a path)."""
        host, rest = host_of(url)
        found: list[tuple[int, Service]] = []
        if host:
            labels = host.split(".")
            for i in range(len(labels)):
                for rule in self._hosts.get(".".join(labels[i:]), ()):
                    if rule.path is None or rule.path.match(rest):
                        found.append((rule.specificity, rule.service))
        path = rest.split("?", 1)[0].split("#", 1)[0]
        for suffix, svc in self._anyhost:
            if path.endswith(suffix):
                found.append((len(suffix), svc))
        found.sort(key=lambda f: (CATEGORY_RANK[f[1].category], f[0]), reverse=True)
        return [svc for _, svc in found]

    def url_category(self, url: bytes) -> str | None:
        """The category of the strictest service matching ``url`` (cached: pages and
        visitors repeat the same URLs), or None."""
        cache = self._url_cache
        if url in cache:
            return cache[url]
        text = url.decode("latin-1")
        plain = (html.unescape(text) if "&" in text else text).translate(_STRIP)
        if _JAVASCRIPT.match(plain):
            category = self.javascript_category(text)
        elif _DATA.match(plain):
            category = self.data_category(plain)
        else:
            services = self.match_url(text)
            category = services[0].category if services else None
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[url] = category
        return category

    def javascript_category(self, url: str) -> str | None:
        """A ``javascript:`` URL (an iframe's ``src`` that writes its own document, as old
        ad tags do) is code: the strictest category of its loader signatures and of the
        catalogued URLs written in it."""
        return self.code_category(unquote(html.unescape(url) if "&" in url else url))

    def data_category(self, url: str) -> str | None:
        """A ``data:`` URL of a document type (an iframe, object or embed showing HTML, XML
        or SVG written in the URL, base64 or not) is markup that can run script: classified
        by its content as :meth:`code_category` does. Other types (images...) run nothing."""
        meta, _, payload = url.lstrip("\x00 ").partition(",")
        params = [p.strip().lower() for p in meta[5:].split(";")]
        if not any(k in params[0] for k in ("html", "xml")):
            return None
        if params[-1] == "base64":
            try:
                raw = base64.b64decode("".join(unquote(payload).split()) + "==")
            except ValueError:
                return None  # the browser shows nothing either
            return self.code_category(raw.decode("latin-1"))
        return self.code_category(unquote(payload))

    def code_category(self, code: str) -> str | None:
        """Code or markup written in a URL or an attribute (``javascript:``, ``data:``,
        ``srcdoc``): the strictest category of its loader signatures and of the catalogued
        URLs written in it."""
        found = [s.category for s in self.match_inline(code.encode("utf-8", "replace"))]
        for m in _EMBEDDED_URL.finditer(code.replace("\\/", "/")):
            found += [s.category for s in self.match_url(m.group())]
        return max(found, key=CATEGORY_RANK.__getitem__) if found else None

    def hint_category(self, url: bytes) -> str | None:
        """The strictest category of the services with a URL pattern on ``url``'s host
        or a parent domain, whatever the path: a resource hint (``preconnect``,
        ``dns-prefetch``) names only an origin, and opens a connection to it."""
        host, _ = host_of(url.decode("latin-1"))
        labels = host.split(".") if host else []
        found = [
            rule.service.category
            for i in range(len(labels))
            for rule in self._hosts.get(".".join(labels[i:]), ())
        ]
        return max(found, key=CATEGORY_RANK.__getitem__) if found else None

    def match_inline(self, text: bytes, *, cache: bool = True) -> list[Service]:
        """Services whose loader signature occurs in an inline script (strictest first).

        A literal anchor of each signature (e.g. ``gtag``, ``_hjSettings``) is searched
        first; the signatures only run in a window around anchor hits. Results are
        cached by content digest (pages repeat the same inline scripts)."""
        if self._anchor is None:
            return []
        # Python's own hash of the bytes: SipHash with a per-process random key, ~3x
        # faster than blake2b here; with the length, a collision between two scripts a
        # site serves is out of reach (and the site itself chooses its scripts).
        key = (len(text), hash(bytes(text))) if cache else (0, 0)
        hit = self._inline_cache.get(key) if cache else None
        if hit is not None:
            return list(hit)
        seen: dict[str, Service] = {}
        find = self._find_anchors
        spans = find(text) if find else [m.span() for m in self._anchor.finditer(text)]
        for a_start, a_end in spans:
            start, end = max(0, a_start - _WINDOW), a_end + _WINDOW
            for regex, svc in self._by_anchor[bytes(text[a_start:a_end])]:
                if svc.id not in seen and regex.search(text, start, end):
                    seen[svc.id] = svc
        found = sorted(seen.values(), key=lambda s: CATEGORY_RANK[s.category], reverse=True)
        if cache:
            if len(self._inline_cache) >= _CACHE_SIZE:
                self._inline_cache.clear()
            self._inline_cache[key] = tuple(found)
        return found

    def cookie_service(self, name: str) -> Service | None:
        svc = self._cookie_exact.get(name)
        if svc is not None:
            return svc
        for pattern, svc in self._cookie_globs:
            if pattern.matches(name):
                return svc
        return None

    def cookie_category(self, name: str) -> str | None:
        """The category of a cookie by name, or None when no service declares it."""
        svc = self.cookie_service(name)
        return svc.category if svc else None

    def service(self, service_id: str) -> Service | None:
        for svc in self.services:
            if svc.id == service_id:
                return svc
        return None


_WINDOW = 256  # bytes around an anchor hit in which the full signatures are tried


def _literal_finder(words: tuple[bytes, ...]) -> Callable[[bytes], list[tuple[int, int]]] | None:
    """``re.finditer`` of an alternation of literal words, compiled (the rewriter's C
    accelerator), or None: pure Python (not compiled, or CONSENTGATE_PURE_PYTHON=1)."""
    if os.environ.get("CONSENTGATE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from .rewriter._speedups import Literals
    except ImportError:
        return None
    try:
        return Literals(words).finditer
    except ValueError:  # an empty word: leave it to the regular expression
        return None


_CACHE_SIZE = 4096
_JAVASCRIPT = re.compile(r"[\x00-\x20]*javascript:", re.I)  # after tabs and newlines go
_EMBEDDED_URL = re.compile(r"(?:https?:)?//[^\s\"'\\<>()]+")


def url_pattern_parts(pattern: str) -> tuple[str, str | None]:
    """A catalog URL pattern as (lower-case host, regular expression source matched at the
    start of the path + query, or None: any path). Host '': the pattern is a path suffix
    on any host (``/matomo.js``). The rewriter and the runtime guard both use these."""
    host, slash, path = pattern.partition("/")
    if not host:
        return "", None
    source = re.escape("/" + path).replace(r"\*", "[^?#]*") if slash and path else None
    return host.lower(), source


def glob_source(pattern: str) -> str:
    """A name glob (``*``: any run of characters) as a regular expression source, the
    same in JavaScript and Python: every other non-word character escaped."""
    return ".*".join(re.sub(r"(\W)", r"\\\1", part) for part in pattern.split("*"))


def cookie_patterns(site: Site) -> dict[str, list[str]]:
    """Per category, the cookie names (``*`` = any run of characters) declared for it: the
    tracker catalog's and the site's own. Necessary cookies are left out (never deleted
    nor held)."""
    sources = [(s.category, [c.name for c in s.cookies]) for s in load_catalog(site).services]
    sources += [(c.category, [c.name]) for c in site.cookies]
    return _per_category(sources)


def storage_patterns(site: Site) -> dict[str, list[str]]:
    """Per category, the ``localStorage``/``sessionStorage`` keys (globs) its services
    declare (``storage``), removed when the category is withdrawn."""
    return _per_category([(s.category, list(s.storage)) for s in load_catalog(site).services])


def _per_category(sources: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES[1:]}
    for category, names in sources:
        for name in names if category in out else ():
            if name not in out[category]:
                out[category].append(name)
    return {c: names for c, names in out.items() if names}


def cookie_regexes(site: Site) -> dict[str, str]:
    """:func:`cookie_patterns` as the banner and the guard use them: per category one
    regular expression source (JavaScript and Python alike: alternatives of
    :func:`glob_source`); they are anchored where used (``^(...)$``)."""
    return {c: "|".join(map(glob_source, names)) for c, names in cookie_patterns(site).items()}


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_STRIP = str.maketrans("", "", "\t\n\r")
_DATA = re.compile(r"[\x00-\x20]*data:", re.I)
# a data: URL of any type but an image other than SVG or a PDF, which run no script
_DATA_DOCUMENT = re.compile(
    _DATA.pattern + r"(?![\t\n\f\r ]*(?:image/(?!svg)|application/pdf))", re.I
)


def data_document(value: bytes) -> bool:
    """Is ``value`` (an attribute value as written: character references decoded; leading
    C0 and spaces, and tabs and line breaks anywhere, dropped as the URL parser drops them)
    a ``data:`` URL of a document, which runs in an opaque origin (docs/guard.md)?"""
    text = html.unescape(value.decode("latin-1")).translate(_STRIP)
    return _DATA_DOCUMENT.match(text) is not None


def host_of(url: str) -> tuple[str, str]:
    """Split a URL as a browser would into (lower-case host, path+query); host '' = relative.

    Handles character references, stray tabs/newlines, backslashes, ``https:host``
    without slashes, userinfo, ports, a trailing dot and percent-encoded hosts.
    """
    if "&" in url:
        url = html.unescape(url)
    url = url.strip("\t\n\f\r \x00").translate(_STRIP).replace("\\", "/")
    m = _SCHEME.match(url)
    if m:
        scheme = m.group(1).lower()
        if scheme not in ("http", "https", "ws", "wss", "ftp"):
            return "", ""
        url = "//" + url[m.end() :].lstrip("/")
    if not url.startswith("//"):
        return "", url
    authority, sep, rest = url[2:].partition("/")
    for stop in "?#":
        if stop in authority:
            authority, _, tail = authority.partition(stop)
            rest, sep = stop + tail + sep + rest, ""
    authority = authority.rsplit("@", 1)[-1]
    if authority.startswith("["):
        host = authority.split("]")[0] + "]"
    else:
        host = authority.split(":", 1)[0]
    if "%" in host:
        from urllib.parse import unquote

        host = unquote(host)
    path = "/" + rest if sep == "/" or not rest.startswith(("?", "#")) else rest
    if "%" in path:  # an escaped unreserved character is the character (RFC 3986 6.2.2.2)
        before, q, after = path.partition("?")
        path = _ESCAPED.sub(_unreserved, before) + q + after
    return host.lower().rstrip("."), path


_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")


def _unreserved(m: re.Match[str]) -> str:
    c = chr(int(m[1], 16))
    return c if c.isascii() and (c.isalnum() or c in "-._~") else m[0]


def _service_from(raw: Any, where: str) -> Service:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: each service is a table")
    sid = raw.get("id")
    if not isinstance(sid, str) or not sid:
        raise CatalogError(f"{where}: every service needs an id")
    category = raw.get("category")
    if category not in CATEGORIES:
        raise CatalogError(f"service {sid!r}: category must be one of {', '.join(CATEGORIES)}")
    cookies = []
    for i, c in enumerate(raw.get("cookies", [])):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise CatalogError(f"service {sid!r}: cookies[{i}] needs a name")
        cookies.append(
            CookiePattern(c["name"], str(c.get("expiry", "")), str(c.get("purpose", "")))
        )
    for key in ("urls", "inline", "consent_mode", "anchors", "storage"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CatalogError(f"service {sid!r}: {key} must be a list of strings")
    for sig in raw.get("inline", []):
        if not any(a in sig.replace("\\", "") for a in raw.get("anchors", [])):
            raise CatalogError(f"service {sid!r}: inline signature {sig!r} contains no anchor")
    return Service(
        id=sid,
        name=str(raw.get("name", sid)),
        provider=str(raw.get("provider", "")),
        category=category,
        urls=tuple(raw.get("urls", [])),
        inline=tuple(raw.get("inline", [])),
        cookies=tuple(cookies),
        consent_mode=tuple(raw.get("consent_mode", [])),
        anchors=tuple(raw.get("anchors", [])),
        storage=tuple(raw.get("storage", [])),
    )


@lru_cache(maxsize=1)
def _builtin_services() -> tuple[Service, ...]:
    text = resources.files("consentgate").joinpath("data/catalog.toml").read_bytes()
    doc = tomllib.loads(text.decode("utf-8"))
    return tuple(
        _service_from(raw, f"catalog.toml services[{i}]")
        for i, raw in enumerate(doc.get("services", []))
    )


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The built-in catalog with no site additions."""
    return Catalog(_builtin_services())


_SITE_CACHE: dict[tuple[str, str], Catalog] = {}


def load_catalog(site: Site | None = None) -> Catalog:
    """The catalog for ``site``: built-in services, the site's own services (they win on
    a cookie or URL the catalog also knows), category overrides applied."""
    if site is None or (not site.services and not site.category_overrides):
        return default_catalog()
    key = (repr(site.services), repr(sorted(site.category_overrides.items())))
    cached = _SITE_CACHE.get(key)
    if cached is not None:
        return cached
    extra = tuple(
        _service_from(raw, f"site {site.id!r} services[{i}]") for i, raw in enumerate(site.services)
    )
    services = []
    for svc in extra + _builtin_services():
        category = site.category_overrides.get(svc.id, svc.category)
        if category != svc.category:
            svc = Service(**{**svc.__dict__, "category": category})
        services.append(svc)
    catalog = Catalog(tuple(services))
    if len(_SITE_CACHE) > 64:
        _SITE_CACHE.clear()
    _SITE_CACHE[key] = catalog
    return catalog


def cookie_category(name: str, site: Site | None = None) -> str | None:
    """Category of cookie ``name`` per the catalog (with ``site``'s services), or None."""
    return load_catalog(site).cookie_category(name)
