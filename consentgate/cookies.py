"""Upstream cookies versus the visitor's consent.

- :func:`classify` names a cookie's category: the site's declaration first, then the
  tracker catalog; None when nobody declared it.
- :class:`CookiePolicy` filters the upstream's ``Set-Cookie`` headers and builds the
  expiring ``Set-Cookie`` headers that delete, server-side, cookies of categories the
  visitor has not granted (HttpOnly ones included, which no banner script can reach).
- :class:`UndeclaredCookies` records each undeclared cookie name once (first-seen time
  and path) in ``data_dir/undeclared-cookies.jsonl`` so the owner can classify it;
  :func:`list_undeclared_cookies` reads it back (used by the admin endpoints).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .catalog import load_catalog
from .config import Site
from .consent import COOKIE_NAME

__all__ = [
    "UNDECLARED_FILE",
    "CookiePolicy",
    "UndeclaredCookie",
    "UndeclaredCookies",
    "classify",
    "list_undeclared_cookies",
]

log = logging.getLogger("consentgate.proxy")

UNDECLARED_FILE = "undeclared-cookies.jsonl"
#: ``(site_id, kind, name, page path)``: told of each undeclared cookie seen
Sighting = Callable[[str, str, str, str], None]
_EXPIRE = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def _catalog_category(site: Site, name: str) -> str | None:
    return load_catalog(site).cookie_category(name)


def _declared(site: Site, name: str) -> str | None:
    for decl in site.cookies:
        pattern = decl.name
        if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return decl.category
    return None


def classify(site: Site, name: str) -> str | None:
    """The category of cookie ``name`` for ``site``, or None when undeclared."""
    if name == COOKIE_NAME:
        return "necessary"
    return _declared(site, name) or _catalog_category(site, name)


def _cookie_name(set_cookie: bytes) -> str:
    return set_cookie.split(b"=", 1)[0].strip().decode("latin-1")


def _cookie_path(set_cookie: bytes) -> str:
    for attr in set_cookie.split(b";")[1:]:
        key, _, value = attr.strip().partition(b"=")
        if key.strip().lower() == b"path":
            return value.strip().decode("latin-1") or "/"
    return "/"


def _domains(host: str) -> list[str]:
    """Domain attributes a tracker may have used for ``host``: itself and its parents."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else ""
    if not name or "." not in name:
        return []
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return []
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


@dataclass(frozen=True, slots=True)
class UndeclaredCookie:
    site_id: str
    name: str
    path: str
    first_seen: str  # ISO 8601 UTC


class UndeclaredCookies:
    """Records each undeclared cookie name once per site (append-only JSON Lines)."""

    def __init__(self, data_dir: Path, sighting: Sighting | None = None) -> None:
        self.path = Path(data_dir) / UNDECLARED_FILE
        self._seen: set[tuple[str, str]] | None = None
        #: told of every sighting (the console's discovery counts them)
        self.sighting = sighting

    def _load(self) -> set[tuple[str, str]]:
        if self._seen is None:
            self._seen = {(c.site_id, c.name) for c in _read(self.path)}
        return self._seen

    def record(self, site_id: str, name: str, path: str, page: str = "") -> bool:
        """Record a first sighting (``path``: the cookie's ``Path``; ``page``: the page
        that set it); True when it was new."""
        if self.sighting is not None:
            self.sighting(site_id, "set-cookie", name, page or path)
        seen = self._load()
        if (site_id, name) in seen:
            return False
        seen.add((site_id, name))
        entry = UndeclaredCookie(
            site_id, name, path, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # several workers may append
                fh.seek(0)
                if any((c.site_id, c.name) == (site_id, name) for c in _parse(fh.read())):
                    return False
                fh.write(json.dumps(_as_dict(entry)) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            log.warning("cannot record undeclared cookie %s: %s", name, exc)
            return False
        log.info("undeclared cookie %r set by site %s (path %s)", name, site_id, path)
        return True


def _as_dict(c: UndeclaredCookie) -> dict[str, str]:
    return {"site_id": c.site_id, "name": c.name, "path": c.path, "first_seen": c.first_seen}


def _parse(text: str) -> list[UndeclaredCookie]:
    out: list[UndeclaredCookie] = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
            out.append(UndeclaredCookie(d["site_id"], d["name"], d["path"], d["first_seen"]))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line after a crash: skip it
    return out


def _read(path: Path) -> list[UndeclaredCookie]:
    try:
        return _parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def list_undeclared_cookies(
    data_dir: Path | str, site_id: str | None = None
) -> list[dict[str, str]]:
    """Every undeclared cookie seen by the proxy, oldest first (for the admin listing)."""
    return [
        _as_dict(c)
        for c in _read(Path(data_dir) / UNDECLARED_FILE)
        if site_id is None or c.site_id == site_id
    ]


class CookiePolicy:
    """Cookie decisions for one site and one visitor's granted categories; ``page``:
    the path of the page being answered (where an undeclared cookie was seen)."""

    def __init__(
        self, site: Site, granted: frozenset[str], registry: UndeclaredCookies, page: str = ""
    ) -> None:
        self.site = site
        self.granted = granted
        self.registry = registry
        self.page = page

    def allowed(self, category: str) -> bool:
        return category == "necessary" or category in self.granted

    def filter_set_cookie(self, value: bytes) -> bool:
        """Keep this upstream ``Set-Cookie``?"""
        name = _cookie_name(value)
        if name == COOKIE_NAME:
            return False  # consentgate's own cookie cannot be shadowed by the upstream
        category = classify(self.site, name)
        if category is None:
            self.registry.record(self.site.id, name, _cookie_path(value), self.page)
            if not self.site.block_undeclared_cookies:
                return True
            category = "unclassified"
        return self.allowed(category)

    def expire_refused(self, cookie_header: bytes | None, host: str) -> list[bytes]:
        """Expiring Set-Cookie headers for request cookies of refused categories."""
        if not cookie_header:
            return []
        out: list[bytes] = []
        done: set[str] = set()
        for part in cookie_header.split(b";"):
            name = part.split(b"=", 1)[0].strip().decode("latin-1")
            if not name or name in done or name == COOKIE_NAME:
                continue
            category = classify(self.site, name)
            if category is None:
                if not self.site.block_undeclared_cookies:
                    continue
                category = "unclassified"
            if self.allowed(category):
                continue
            done.add(name)
            out.append(f"{name}=; {_EXPIRE}; Path=/".encode("latin-1"))
            for domain in _domains(host):
                out.append(f"{name}=; {_EXPIRE}; Path=/; Domain={domain}".encode("latin-1"))
        return out
