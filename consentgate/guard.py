"""The runtime guard's code and data (``static/banner/guard.js``, docs/guard.md).

Pure: no HTTP. The guard enforces the same catalog and site declarations as the rewriter,
compiled here to a compact JavaScript object of space-separated patterns, per category,
strictest category first (the guard takes the first category that matches, which is the
strictest, as the rewriter does):

- ``u``: the catalog's URL patterns (``host/path*``, ``/suffix``), as in
  ``catalog.toml``, without those a stricter or equal category's host-wide pattern
  already covers; the guard matches them as :meth:`~consentgate.catalog.Catalog.match_url`
  does (``host + path + query``), and by host alone for resource hints
  (:meth:`~consentgate.catalog.Catalog.hint_category`);
- ``k``: the declared cookie names (:func:`~consentgate.catalog.cookie_patterns`);
- ``s``: the declared storage keys (:func:`~consentgate.catalog.storage_patterns`);
- ``x`` (strict sites only): the hosts scripts may come from besides the page's own;
- ``h``: the words one of which every URL the patterns match contains (the rewriter's
  ``Catalog.hint_words``, and the names of path-suffix patterns): a URL or a tag without
  any (nor ``&#``, ``\\`` or ``%``) is passed without being parsed.

:func:`guard_script` is the code with its data and the visitor's categories, ready for an
inline ``<script>`` (proxy and middleware mode, :mod:`consentgate.injection`) or for the
head of ``banner.js`` (script-tag mode, :mod:`consentgate.banner`).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import CATEGORY_RANK, cookie_patterns, load_catalog, storage_patterns

if TYPE_CHECKING:
    from .config import Site

__all__ = ["ORDER", "guard_code", "guard_data", "guard_script", "url_patterns"]

#: The categories the guard can hold, strictest first (its first match wins).
ORDER: tuple[str, ...] = tuple(
    sorted(set(CATEGORY_RANK) - {"necessary"}, key=CATEGORY_RANK.__getitem__, reverse=True)
)
SOURCE = Path(__file__).parent / "static" / "banner" / "guard.js"


@lru_cache(maxsize=1)
def guard_code() -> str:
    """The guard's code, minified and its own names shortened: ``((data, granted)=>{...})``
    awaiting its call."""
    from .minify import mangle_js, minify_js

    return minify_js(mangle_js(SOURCE.read_text(encoding="utf-8"))).rstrip().rstrip(";")


def url_patterns(site: Site | None) -> list[tuple[str, list[str]]]:
    """Per category with URL patterns, strictest first: the catalog's patterns (site
    services and overrides included) that can decide a URL's category. A pattern is left
    out when a host-wide pattern (no path) of the same or a stricter category covers its
    host: every URL it matches is decided there first."""
    per: dict[str, list[str]] = {c: [] for c in ORDER}
    for svc in load_catalog(site).services:
        for pattern in svc.urls if svc.category in per else ():
            if pattern not in per[svc.category]:
                per[svc.category].append(pattern)
    wide: set[str] = set()  # hosts with a host-wide pattern, of this category or stricter
    out = []
    for category in ORDER:
        mine = {
            p.lower().rstrip("/")
            for p in per[category]
            if p[:1] != "/" and "/" not in p.rstrip("/")
        }
        wide |= mine
        kept = [p for p in per[category] if p.lower().rstrip("/") in mine or not _covered(p, wide)]
        if kept:
            out.append((category, kept))
    return out


def _covered(pattern: str, hosts: set[str]) -> bool:
    if pattern.startswith("/"):
        return False
    labels = pattern.split("/", 1)[0].lower().split(".")
    return any(".".join(labels[i:]) in hosts for i in range(len(labels)))


def _names(per_category: dict[str, list[str]]) -> list[list[str]]:
    """Per category (strictest first) its names, without those a glob of the same or a
    stricter category already matches (the guard takes the first category that matches)."""
    out, seen = [], []
    for category in ORDER:
        names = per_category.get(category, [])
        mine = [n for n in names if "*" in n]
        kept = [
            n for n in names if not any(g != n and fnmatch.fnmatchcase(n, g) for g in seen + mine)
        ]
        seen += mine
        if kept:
            out.append([category, _words(kept)])
    return out


def _words(names: Iterable[str]) -> str:
    """Names as the guard's space-separated list (a name with white space cannot be a
    cookie name; a storage key with one is left out)."""
    return " ".join(n for n in names if n and not any(c.isspace() for c in n))


def guard_data(site: Site) -> str:
    """The guard's data for ``site`` as a JavaScript object literal (see the module)."""
    cookies, storage = cookie_patterns(site), storage_patterns(site)
    catalog = load_catalog(site)
    words = {w.decode() for w in catalog.hint_words}
    suffixes = [p for s in catalog.services for p in s.urls if p.startswith("/")]
    words |= {p.strip("/").split(".")[0].lower() for p in suffixes}
    data: dict[str, object] = {
        "h": "|".join(re.escape(w) for w in sorted(words) if w),
        "u": [[c, _words(p)] for c, p in url_patterns(site)],
        "k": _names(cookies),
        "s": _names(storage),
    }
    if site.strict:
        data["x"] = _words(sorted({h.lower().split(":")[0] for h in site.hosts + site.allow_hosts}))
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")


def guard_script(code_and_data: str, granted: Iterable[str] | None) -> str:
    """The guard's call: ``code_and_data`` is ``guard_code() + "(" + guard_data(site)``
    (cached by the caller); ``granted``: the visitor's categories now (None: not known
    yet, script-tag mode: only necessary until the banner knows)."""
    state = json.dumps(sorted(granted, key=_order)) if granted is not None else "0"
    return f"{code_and_data},{state.replace(' ', '')});"


def _order(category: str) -> int:
    return -1 if category == "necessary" else ORDER.index(category)
