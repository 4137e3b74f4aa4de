"""What a visitor may receive: :class:`RewritePolicy` and the per-element decisions.

An element is *neutralized* (made inert, never deleted) when its category is not
granted. The category comes from, in order:

1. markup the site or another consent manager already neutralized (a script whose
   ``type`` is not executable, e.g. ``text/plain`` or Rocket Loader's
   ``…-text/javascript``; elements without a URL) - left untouched;
2. element-level overrides: ``data-consent="necessary"`` or Cookiebot's
   ``data-cookieconsent="ignore"`` exempt the element; ``data-consent="<category>"`` /
   ``data-cookieconsent="statistics,marketing"`` set it (the strictest one wins);
3. the tracker catalog: URL patterns, and loader signatures for inline scripts;
4. strict mode: a script from a host that is neither catalogued, allow-listed nor first
   party is ``unclassified``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from ..catalog import CATEGORY_RANK, Catalog, default_catalog, host_of, load_catalog
from ..consent import CATEGORIES

if TYPE_CHECKING:
    from ..config import Site

__all__ = ["JS_TYPES", "RewritePolicy", "script_is_executable"]

#: Script ``type`` values a browser executes (the spec's JavaScript MIME type essences).
JS_TYPES = frozenset(
    b"application/ecmascript application/javascript application/x-ecmascript "
    b"application/x-javascript text/ecmascript text/javascript text/javascript1.0 "
    b"text/javascript1.1 text/javascript1.2 text/javascript1.3 text/javascript1.4 "
    b"text/javascript1.5 text/jscript text/livescript text/x-ecmascript text/x-javascript "
    b"module".split()
)
_WS = b"\t\n\f\r "
_CATEGORY_WORD = re.compile(r"[a-z]+")


def script_is_executable(attrs: dict[bytes, bytes]) -> bool:
    """The HTML spec's "prepare the script element" type check (classic or module)."""
    kind = attrs.get(b"type")
    if kind is None or not kind.strip(_WS):
        language = attrs.get(b"language")
        if kind is None and language:
            return b"text/" + language.strip(_WS).lower() in JS_TYPES
        return True
    return kind.strip(_WS).lower() in JS_TYPES


@dataclass(frozen=True)
class RewritePolicy:
    """What one visitor may receive.

    ``granted``: the categories consented to (``necessary`` is implied).
    ``strict``: scripts from unknown third-party hosts count as ``unclassified``.
    ``allow_hosts``: third-party hosts never treated as unknown (strict mode).
    ``first_party_hosts``: the site's own hosts (relative URLs are always first party).
    """

    granted: frozenset[str]
    catalog: Catalog = field(default_factory=load_catalog)
    strict: bool = False
    allow_hosts: frozenset[str] = frozenset()
    first_party_hosts: frozenset[str] = frozenset()
    site: Site | None = None

    def __post_init__(self) -> None:
        """``site=`` fills strict mode, allowed and first-party hosts, and the site's own
        services and category overrides (unless given explicitly)."""
        object.__setattr__(self, "granted", frozenset(self.granted) | {"necessary"})
        site = self.site
        if site is None:
            return
        if not self.strict and site.strict:
            object.__setattr__(self, "strict", True)
        if not self.allow_hosts:
            object.__setattr__(self, "allow_hosts", frozenset(h.lower() for h in site.allow_hosts))
        if not self.first_party_hosts:
            hosts = frozenset(h.lower().split(":")[0] for h in site.hosts)
            object.__setattr__(self, "first_party_hosts", hosts)
        if (site.services or site.category_overrides) and self.catalog is default_catalog():
            object.__setattr__(self, "catalog", load_catalog(site))

    @classmethod
    def for_site(
        cls, site: Site, granted: frozenset[str] | set[str], catalog: Catalog | None = None
    ) -> RewritePolicy:
        return cls(granted=frozenset(granted), catalog=catalog or load_catalog(site), site=site)

    @property
    def grants_everything(self) -> bool:
        """True when no element can be neutralized (every category is granted)."""
        return all(c in self.granted for c in CATEGORIES[1:])

    def allows(self, category: str) -> bool:
        return category == "necessary" or category in self.granted

    @cached_property
    def element_hint(self) -> re.Pattern[bytes]:
        """Cheap pre-check on the lower-cased tag: without a match it cannot be
        neutralized (no catalogued host, no override attribute) nor be a ``srcdoc`` frame
        (whose document gets the runtime guard's prefix, docs/guard.md) or a frame with a
        ``csp`` attribute (held as unclassified: it can refuse that prefix)."""
        hint = self.catalog.host_hint
        base = hint.pattern if hint is not None else rb"&#"
        return re.compile(base + rb"|data-c(?:onsent|ookieconsent)|srcdoc|csp")

    @staticmethod
    def strictest(categories: list[str]) -> str | None:
        return max(categories, key=CATEGORY_RANK.__getitem__) if categories else None

    # -- decisions -----------------------------------------------------------------
    def override(self, attrs: dict[bytes, bytes]) -> str | None:
        """Category set on the element itself (``"necessary"`` exempts), or None."""
        own = attrs.get(b"data-consent")
        if own is not None:
            found = _categories(own)
            if found:
                return found
        cookiebot = attrs.get(b"data-cookieconsent")
        if cookiebot is not None:
            if b"ignore" in cookiebot.lower():
                return "necessary"
            found = _categories(cookiebot)
            if found:
                return found
        return None

    def url_category(self, url: bytes, *, script: bool) -> str | None:
        """Category of a URL per the catalog (strict mode: unknown scripts)."""
        text = url.decode("latin-1")
        services = self.catalog.match_url(text)
        if services:
            return services[0].category
        if script and self.strict:
            host, _ = host_of(text)
            if host and not self._known_host(host):
                return "unclassified"
        return None

    def script_url_category(self, url: bytes) -> str | None:
        """``url_category(url, script=True)`` with the catalog's URL cache."""
        category = self.catalog.url_category(url)
        if category is None and self.strict:
            return self.url_category(url, script=True)
        return category

    def element_url_category(self, url: bytes) -> str | None:
        """``url_category(url, script=False)`` with the catalog's URL cache."""
        return self.catalog.url_category(url)

    def inline_category(self, text: bytes) -> str | None:
        services = self.catalog.match_inline(text)
        return services[0].category if services else None

    def _known_host(self, host: str) -> bool:
        for allowed in (self.allow_hosts, self.first_party_hosts):
            if host in allowed or any(host.endswith("." + h) for h in allowed):
                return True
        return False


def _categories(value: bytes) -> str | None:
    """The strictest known category named in an attribute value."""
    words = [w for w in _CATEGORY_WORD.findall(value.decode("latin-1").lower())]
    names = [_ALIASES.get(w, w) for w in words]
    known = [n for n in names if n in CATEGORY_RANK]
    if not known:
        return None
    if "necessary" in known and len(known) == 1:
        return "necessary"
    best: str = max((n for n in known if n != "necessary"), key=CATEGORY_RANK.__getitem__)
    return best


# Cookiebot / common synonyms for the fixed category ids.
_ALIASES = {
    "analytics": "statistics",
    "statistic": "statistics",
    "ads": "marketing",
    "advertising": "marketing",
    "functional": "preferences",
    "preference": "preferences",
    "essential": "necessary",
}
