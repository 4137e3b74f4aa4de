"""The runtime guard's code and data (``static/banner/guard.js``, docs/guard.md).

Pure: no HTTP. The guard enforces the same catalog and site declarations as the rewriter,
compiled here (:func:`guard_rules`) to regular expressions the guard uses as they are (it
builds none), written by :func:`guard_data` as the first arguments of its call,
``/h/i, x or 0, [[category, urls, hint hosts, cookies, storage], ...]``, one row per
category, strictest first (the guard takes the first category that matches, which is the
strictest, as the rewriter does); a category without such patterns has :data:`NOTHING`:

- ``urls``: the catalog's URL patterns (``host/path*``, ``/suffix``), without those a
  stricter or equal category's host-wide pattern already covers, matched as
  :meth:`~consentgate.catalog.Catalog.match_url` does (``host + path + query``);
- ``hint hosts``: their hosts (or a subdomain), for resource hints
  (:meth:`~consentgate.catalog.Catalog.hint_category`);
- ``cookies``: the declared cookie names (:func:`~consentgate.catalog.cookie_patterns`);
- ``storage``: the declared storage keys (:func:`~consentgate.catalog.storage_patterns`);
- ``x`` (strict sites only): the hosts scripts may come from besides the page's own;
- ``h``: the words one of which every URL the patterns match contains (the rewriter's
  ``Catalog.hint_words``, and the names of path-suffix patterns): a URL or a tag without
  any (nor ``&#``, ``&Tab;``, ``&NewLine;``, ``\\`` or ``%``) is passed without being parsed.

The sources are valid alike in Python's ``re`` and in a JavaScript regular expression
literal inside an inline ``<script>`` (``tests/test_guard.py`` checks them with ``re``).

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

from .catalog import (
    CATEGORY_RANK,
    OBFUSCATION_HINTS,
    cookie_patterns,
    glob_source,
    load_catalog,
    storage_patterns,
    url_pattern_parts,
)

if TYPE_CHECKING:
    from .config import Site

__all__ = ["ORDER", "guard_code", "guard_data", "guard_rules", "guard_script", "url_patterns"]

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


def _names(per_category: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per category (strictest first) its names, without those a glob of the same or a
    stricter category already matches (the guard takes the first category that matches)."""
    out: dict[str, list[str]] = {}
    seen: list[str] = []
    for category in ORDER:
        names = per_category.get(category, [])
        mine = [n for n in names if "*" in n]
        kept = [
            n for n in names if not any(g != n and fnmatch.fnmatchcase(n, g) for g in seen + mine)
        ]
        seen += mine
        # a name with white space cannot be a cookie name; a storage key with one is left out
        kept = [n for n in kept if n and not any(c.isspace() for c in n)]
        if kept:
            out[category] = kept
    return out


#: A regular expression that matches nothing (a category without such patterns).
NOTHING = "$^"
_UNSAFE = re.compile(r"\\?(.)", re.S)  # an escaped or plain character


def _js(source: str) -> str:
    """A regular expression source (the catalog's, valid in Python and JavaScript) made fit
    for a JavaScript regular expression literal inside an inline ``<script>``: ``/``
    escaped, ``<`` and line breaks as ``\\uXXXX`` (the same in both languages), ``-`` plain."""

    def one(m: re.Match[str]) -> str:
        ch = m[1]
        if ch == "<" or ord(ch) < 32 or ch in "\u2028\u2029":
            return f"\\u{ord(ch):04x}"
        if ch in "/-":  # "-" needs no escape outside a class (these sources have none)
            return "\\/" if ch == "/" else "-"
        return m[0]

    return _UNSAFE.sub(one, source)


def _any(sources: Iterable[str]) -> str:
    return "|".join(sorted(sources))  # sorted: shared prefixes side by side gzip best


def _full(names: list[str]) -> str:
    """Names as the catalog's globs (:func:`~consentgate.catalog.glob_source`)."""
    return _js(f"^({_any(map(glob_source, names))})$") if names else NOTHING


def _hosts(hosts: Iterable[str]) -> str:
    """A host in ``hosts`` or a subdomain of one."""
    found = set(hosts)
    found = {h for h in found if not any(h.endswith("." + o) for o in found)}  # matched
    return _js(rf"^(.*\.)?({_any(map(re.escape, found))})$") if found else NOTHING


def _urls(patterns: list[str]) -> str:
    """``host + path + query`` as ``Catalog.match_url`` matches it
    (:func:`~consentgate.catalog.url_pattern_parts`): a host pattern matches that host or a
    subdomain, then its path at the start of the path and query; a ``/suffix`` matches on
    any host, before the query. Patterns of one host share it."""
    paths: dict[str, set[str]] = {}  # per host: its path sources ("": any path)
    for p in patterns:
        if p[0] != "/":
            host, path = url_pattern_parts(p)
            paths.setdefault(host, set()).add(path or "")
    wide = {h for h, ps in paths.items() if "" in ps}
    hosts = [
        re.escape(h) + ("/" if h in wide else _group(_any(p.removeprefix("/") for p in ps), ps))
        for h, ps in paths.items()
        if not any(h.endswith("." + w) for w in wide)  # a subdomain of a host-wide one
    ]
    ends = [re.escape(p) for p in patterns if p[0] == "/"]  # literal, as path.endswith
    parts = [rf"([^/]*\.)?({_any(hosts)})"] if hosts else []
    parts += [rf"[^?]*({_any(ends)})(\?|$)"] if ends else []
    return _js(f"^({'|'.join(parts)})") if parts else NOTHING


def _group(source: str, alternatives: set[str]) -> str:
    """``/`` then the paths of one host (each path source starts with ``/``)."""
    return f"/({source})" if len(alternatives) > 1 else "/" + source


#: Catalog's obfuscation hints as regular expression sources (the guard's ``h``)
_OBFUSCATED = [re.escape(w.decode()) for w in OBFUSCATION_HINTS]
#: and any named character reference: the URL parser maps what many decode to in a host
#: away (``&shy;``, ``&ZeroWidthSpace;``, ``&Aopf;`` ...), so a tag holding one is parsed
_OBFUSCATED.append("&[a-z]")


def guard_rules(site: Site) -> dict[str, object]:
    """The guard's data for ``site`` as regular expression sources (see the module):
    ``h`` (case-insensitive), ``x`` (strict sites, else None) and ``c``: per category,
    strictest first, ``[category, urls, hint hosts, cookie names, storage keys]``."""
    cookies, storage = _names(cookie_patterns(site)), _names(storage_patterns(site))
    catalog = load_catalog(site)
    words = {w.decode() for w in catalog.hint_words}
    suffixes = [p for s in catalog.services for p in s.urls if p.startswith("/")]
    words |= {p.strip("/").split(".")[0].lower() for p in suffixes}
    urls = dict(url_patterns(site))
    rows = [
        [
            c,
            _urls(urls.get(c, [])),
            _hosts(url_pattern_parts(p)[0] for p in urls.get(c, []) if p[0] != "/"),
            _full(cookies.get(c, [])),
            _full(storage.get(c, [])),
        ]
        for c in ORDER
        if c in urls or c in cookies or c in storage
    ]
    words = {w for w in words if w and not any(o != w and o in w for o in words)}  # substrings
    strict = sorted({h.lower().split(":")[0] for h in site.hosts + site.allow_hosts})
    return {
        # besides the words: the rewriter's obfuscation hints, and a percent escape
        "h": _js("|".join([*sorted(map(re.escape, words)), *_OBFUSCATED, "%"])),
        "x": _hosts(strict) if site.strict else None,
        "c": rows,
    }


def guard_data(site: Site) -> str:
    """The guard's data for ``site``: the arguments ``hint words, strict hosts or 0,
    categories`` of its call, as JavaScript (regular expression literals)."""
    rules = guard_rules(site)
    rows = ",".join(
        "[" + json.dumps(row[0]) + "".join(f",/{r}/" for r in row[1:]) + "]"
        for row in rules["c"]  # type: ignore[attr-defined]
    )
    x = f"/{rules['x']}/" if rules["x"] else "0"
    return f"/{rules['h']}/i,{x},[{rows}]".replace("<", "\\u003c")


def guard_script(code_and_data: str, granted: Iterable[str] | None) -> str:
    """The guard's call: ``code_and_data`` is ``guard_code() + "(" + guard_data(site)``
    (cached by the caller); ``granted``: the visitor's categories now (None: not known
    yet, script-tag mode: only necessary until the banner knows)."""
    state = json.dumps(sorted(granted, key=_order)) if granted is not None else "0"
    return f"{code_and_data},{state.replace(' ', '')});"


def _order(category: str) -> int:
    return -1 if category == "necessary" else ORDER.index(category)
