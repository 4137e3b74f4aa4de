"""Discovery: the cookies and third-party hosts the pages really set and load, and
their classification by an admin.

Three sources feed :meth:`Discovery.see` (cheap, in memory, bounded):

* the proxy's ``Set-Cookie`` filter: a cookie no declaration or catalog entry names;
* the banner: the names (never the values) in ``document.cookie`` when a visitor
  decides, through ``POST /_consent/api/consent`` (``cookies``);
* CSP reports: the ``Content-Security-Policy-Report-Only`` header the proxy adds to
  pages makes browsers report each third-party host they load
  (:mod:`consentgate.console.csp`).

Counts are merged in memory and written every :data:`FLUSH_SECONDS` (and before the
discovery page is shown): hot paths never wait on the database.

A classification is stored (the store's ``classifications``), recorded in the audit
action chain, and applied at once to the site (:func:`apply`): a cookie becomes a
declaration row (``Site.cookies``: Set-Cookie filtering, server-side expiry, the
declaration, the banner's cookie deletion), a host a site service (``Site.services``:
the rewriter's and the runtime guard's catalog). On PostgreSQL every node hears of it
through ``LISTEN``/``NOTIFY`` and reloads; on SQLite each process re-reads every
:data:`POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..catalog import CATEGORY_RANK, Catalog, Service, load_catalog
from ..config import ConfigError, CookieDecl, Site
from ..consent import CATEGORIES
from ..store.base import ApiToken, AuditAction, StoreError
from ..store.discovery import Classification, Sighting
from ..visit import Runtime

__all__ = [
    "KINDS",
    "Discovery",
    "Entry",
    "apply",
    "discovery",
]

log = logging.getLogger("consentgate.console")

KINDS = ("set-cookie", "script-cookie", "host")
FLUSH_SECONDS = 2.0
POLL_SECONDS = 2.0
#: Distinct entries held between two flushes; more are dropped (and counted).
MAX_PENDING = 5000
MAX_NAME = 200
MAX_PATH = 300
#: Services made from host classifications carry this id prefix.
HOST_SERVICE = "console-host:"
CLASSIFIED_PROVIDER = "Classified in the console"


@dataclass
class Entry:
    """A discovery row as the page shows it."""

    kind: str
    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    example_path: str
    suggested: str | None  # category from the catalog
    suggested_by: str  # the catalog service that suggests it
    classified: str | None  # the category in force (declaration, catalog or console)

    @property
    def target(self) -> str:
        """The kind of classification: a cookie name or a host."""
        return "host" if self.kind == "host" else "cookie"


def _host_service(host: str, category: str) -> dict[str, Any]:
    return {
        "id": HOST_SERVICE + host,
        "name": host,
        "provider": CLASSIFIED_PROVIDER,
        "category": category,
        "urls": [host],
    }


def apply(site: Site, c: Classification) -> None:
    """Put one classification into force on ``site`` (replacing an earlier one)."""
    if c.kind == "cookie":
        kept = [d for d in site.cookies if d.name != c.name]
        kept.append(
            CookieDecl(
                c.name,
                c.category,
                CLASSIFIED_PROVIDER,
                f"Seen on this site; classified as {c.category} on {c.classified_at:%Y-%m-%d}.",
            )
        )
        site.cookies[:] = kept
    elif c.kind == "host":
        sid = HOST_SERVICE + c.name
        services = [s for s in site.services if s.get("id") != sid]
        services.insert(0, _host_service(c.name, c.category))  # the site's own win
        site.services[:] = services


def _suggest(site: Site, kind: str, name: str) -> tuple[str | None, str]:
    catalog = load_catalog(site)
    svc = _host_suggestion(catalog, name) if kind == "host" else catalog.cookie_service(name)
    return (svc.category, svc.name) if svc is not None else (None, "")


def _host_suggestion(catalog: Catalog, host: str) -> Service | None:
    """The catalog service with URL patterns on ``host`` (or a parent domain), any path;
    the strictest category first, then the most specific host."""
    best: tuple[int, int, Service] | None = None
    for svc in catalog.services:
        for pattern in svc.urls:
            h = pattern.split("/", 1)[0].lower()
            if h and (host == h or host.endswith("." + h)):
                rank = (CATEGORY_RANK[svc.category], len(h))
                if best is None or rank > best[:2]:
                    best = (*rank, svc)
    return best[2] if best else None


def _in_force(site: Site, kind: str, name: str) -> str | None:
    if kind == "host":
        for s in site.services:
            if s.get("id") == HOST_SERVICE + name:
                return str(s["category"])
        return None
    for d in site.cookies:
        if d.name == name or (d.name.endswith("*") and name.startswith(d.name[:-1])):
            return d.category
    return None


class Discovery:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: dict[tuple[str, str, str], list[Any]] = {}
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._stop_listen: Callable[[], Awaitable[None]] | None = None
        self._applied: set[tuple[str, str, str, str, datetime]] = set()
        self._reload = asyncio.Event()

    # -- sightings -----------------------------------------------------------------------

    def see(self, site_id: str, kind: str, name: str, path: str = "") -> None:
        """Count one sighting (no I/O; written by the next flush)."""
        if not name or len(name) > MAX_NAME or kind not in KINDS:
            return
        key = (site_id, kind, name)
        now = datetime.now(UTC)
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending[key] = [now, now, 1, path.split("?", 1)[0][:MAX_PATH]]
        else:
            entry[1] = now
            entry[2] += 1

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        rows = [
            Sighting(*key, first, last, n, path) for key, (first, last, n, path) in pending.items()
        ]
        if rows:
            try:
                await self.runtime.store.add_sightings(rows)
            except StoreError as exc:
                log.warning("discovery: %d entries not recorded: %s", len(rows), exc)

    async def entries(self, site_id: str) -> list[Entry]:
        site = self.runtime.settings.site(site_id)
        out = []
        for s in await self.runtime.store.sightings(site_id):
            suggested, by = _suggest(site, s.kind, s.name)
            out.append(
                Entry(
                    s.kind,
                    s.name,
                    s.first_seen,
                    s.last_seen,
                    s.count,
                    s.example_path,
                    suggested,
                    by,
                    _in_force(site, s.kind, s.name),
                )
            )
        out.sort(key=lambda e: (e.classified is not None, -e.count, e.name))
        return out

    # -- classifications -----------------------------------------------------------------

    async def classify(
        self, site_id: str, kind: str, name: str, category: str, token: ApiToken
    ) -> None:
        target = "host" if kind == "host" else "cookie" if kind in KINDS else ""
        if not target or category not in CATEGORIES or not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"cannot classify {kind!r} {name!r} as {category!r}")
        c = Classification(
            site_id, target, name, category, datetime.now(UTC), f"token:{token.token_id}"
        )
        store = self.runtime.store
        await store.classify(c)
        await store.log_action(
            AuditAction(
                c.classified_at,
                c.actor,
                "console.classify",
                {"site": site_id, "kind": target, "name": name, "category": category},
            )
        )
        self._put_in_force([c])

    def _put_in_force(self, found: list[Classification]) -> None:
        changed = False
        for c in found:
            key = (c.site_id, c.kind, c.name, c.category, c.classified_at)
            if key in self._applied:
                continue
            try:
                site = self.runtime.settings.site(c.site_id)
            except ConfigError:
                continue  # a site no longer configured
            apply(site, c)
            self._applied.add(key)
            changed = True
        if changed:
            for forget in list(self.runtime.declarations_changed):
                forget()

    async def load(self) -> None:
        """Read every classification and put the new ones in force."""
        self._put_in_force(await self.runtime.store.classifications())

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.load()
        self._stop_listen = await self.runtime.store.listen_classified(self._reload.set)
        self._task = asyncio.create_task(self._loop(), name="consentgate-discovery")

    async def _loop(self) -> None:
        interval = FLUSH_SECONDS if self._stop_listen else min(FLUSH_SECONDS, POLL_SECONDS)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), interval)
            self._reload.clear()
            try:
                await self.flush()
                await self.load()
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("discovery: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stop, self._stop_listen = self._stop_listen, None
        if stop is not None:
            with contextlib.suppress(Exception):
                await stop()
        with contextlib.suppress(StoreError):
            await self.flush()


_REGISTRIES: weakref.WeakKeyDictionary[Runtime, Discovery] = weakref.WeakKeyDictionary()


def discovery(runtime: Runtime) -> Discovery:
    """The runtime's discovery registry (one per process)."""
    found = _REGISTRIES.get(runtime)
    if found is None:
        found = _REGISTRIES[runtime] = Discovery(runtime)
    return found
