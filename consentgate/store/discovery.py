"""What the pages really set and load, and how the owner classified it: two tables
every backend keeps (the console's discovery page; see ``consentgate/console/discovery.py``).

* ``discovery``: one row per ``(site_id, kind, name)`` -- kind ``set-cookie`` (an
  undeclared cookie in an upstream ``Set-Cookie``), ``script-cookie`` (a name in
  ``document.cookie`` the banner reported), ``host`` (a third-party host from a CSP
  report) -- with first/last seen, a count and an example page path. Nothing that
  identifies a visitor.
* ``classifications``: the category an admin gave a cookie name (kind ``cookie``) or a
  host (kind ``host``) of a site, when and by whom.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..chain import format_time
from .records import parse_time

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

__all__ = [
    "Classification",
    "Sighting",
    "postgres_schema",
    "sqlite_schema",
]

CHANNEL = "consentgate_classified"


@dataclass(frozen=True, slots=True)
class Sighting:
    site_id: str
    kind: str
    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    example_path: str


@dataclass(frozen=True, slots=True)
class Classification:
    site_id: str
    kind: str  # cookie | host
    name: str
    category: str
    classified_at: datetime
    actor: str


def _schema(time: str, integer: str) -> str:
    return f"""
CREATE TABLE discovery (
    site_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    first_seen   {time} NOT NULL,
    last_seen    {time} NOT NULL,
    count        {integer} NOT NULL,
    example_path TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (site_id, kind, name)
);
CREATE TABLE classifications (
    site_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    category      TEXT NOT NULL,
    classified_at {time} NOT NULL,
    actor         TEXT NOT NULL,
    PRIMARY KEY (site_id, kind, name)
);
"""


def sqlite_schema() -> str:
    return _schema("TEXT", "INTEGER")


def postgres_schema() -> str:
    return _schema("timestamptz", "bigint")


_UPSERT = (
    "INSERT INTO discovery (site_id, kind, name, first_seen, last_seen, count, example_path) "
    "VALUES ({p}) ON CONFLICT (site_id, kind, name) DO UPDATE SET "
    "first_seen = CASE WHEN excluded.first_seen < discovery.first_seen "
    "THEN excluded.first_seen ELSE discovery.first_seen END, "
    "last_seen = CASE WHEN excluded.last_seen > discovery.last_seen "
    "THEN excluded.last_seen ELSE discovery.last_seen END, "
    "count = discovery.count + excluded.count"
)
_CLASSIFY = (
    "INSERT INTO classifications (site_id, kind, name, category, classified_at, actor) "
    "VALUES ({p}) ON CONFLICT (site_id, kind, name) DO UPDATE SET "
    "category = excluded.category, classified_at = excluded.classified_at, "
    "actor = excluded.actor"
)
_SIGHTINGS = (
    "SELECT site_id, kind, name, first_seen, last_seen, count, example_path FROM discovery "
    "WHERE site_id = {p} ORDER BY last_seen DESC, name LIMIT 2000"
)
_CLASSIFICATIONS = (
    "SELECT site_id, kind, name, category, classified_at, actor FROM classifications "
    "ORDER BY classified_at, site_id, kind, name"
)


def _time(value: Any) -> datetime:
    return value.astimezone(UTC) if isinstance(value, datetime) else parse_time(str(value))


class SQLiteDiscoveryMixin:
    """For :class:`~consentgate.store.sqlite.SQLiteStore`."""

    if TYPE_CHECKING:

        def _reader(self) -> aiosqlite.Connection: ...

        async def _write(
            self, statements: list[tuple[str, Any]], *, scrub: bool = False
        ) -> None: ...

    async def add_sightings(self, rows: list[Sighting]) -> None:
        args = [
            (
                r.site_id,
                r.kind,
                r.name,
                format_time(r.first_seen),
                format_time(r.last_seen),
                r.count,
                r.example_path,
            )
            for r in rows
        ]
        if args:
            await self._write([(_UPSERT.format(p=", ".join("?" * 7)), args)])

    async def sightings(self, site_id: str) -> list[Sighting]:
        async with self._reader().execute(_SIGHTINGS.format(p="?"), (site_id,)) as cur:
            rows = await cur.fetchall()
        return [Sighting(r[0], r[1], r[2], _time(r[3]), _time(r[4]), int(r[5]), r[6]) for r in rows]

    async def classify(self, c: Classification) -> None:
        args = (c.site_id, c.kind, c.name, c.category, format_time(c.classified_at), c.actor)
        await self._write([(_CLASSIFY.format(p=", ".join("?" * 6)), args)])

    async def classifications(self) -> list[Classification]:
        async with self._reader().execute(_CLASSIFICATIONS) as cur:
            rows = await cur.fetchall()
        return [Classification(r[0], r[1], r[2], r[3], _time(r[4]), r[5]) for r in rows]


class PostgresDiscoveryMixin:
    """For :class:`~consentgate.store.postgres.PostgresStore`; classifying notifies
    every node listening on :data:`CHANNEL` (``LISTEN``/``NOTIFY``)."""

    url: str

    if TYPE_CHECKING:

        def pool(self) -> asyncpg.Pool: ...

        async def _connect(self) -> asyncpg.Connection: ...

    async def add_sightings(self, rows: list[Sighting]) -> None:
        if not rows:
            return
        args = [
            (r.site_id, r.kind, r.name, r.first_seen, r.last_seen, r.count, r.example_path)
            for r in rows
        ]
        sql = _UPSERT.format(p=", ".join(f"${i}" for i in range(1, 8)))
        async with self.pool().acquire() as conn:
            await conn.executemany(sql, args)

    async def sightings(self, site_id: str) -> list[Sighting]:
        rows = await self.pool().fetch(_SIGHTINGS.format(p="$1"), site_id)
        return [Sighting(*(tuple(r)[:3]), _time(r[3]), _time(r[4]), r[5], r[6]) for r in rows]

    async def classify(self, c: Classification) -> None:
        sql = _CLASSIFY.format(p=", ".join(f"${i}" for i in range(1, 7)))
        async with self.pool().acquire() as conn, conn.transaction():
            await conn.execute(sql, c.site_id, c.kind, c.name, c.category, c.classified_at, c.actor)
            await conn.execute(f"NOTIFY {CHANNEL}")

    async def classifications(self) -> list[Classification]:
        rows = await self.pool().fetch(_CLASSIFICATIONS)
        return [Classification(r[0], r[1], r[2], r[3], _time(r[4]), r[5]) for r in rows]

    async def listen_classified(
        self, callback: Callable[[], Awaitable[None] | None]
    ) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` when any node classifies; returns the stop function."""
        conn = await self._connect()

        def notified(*_: object) -> None:
            callback()

        await conn.add_listener(CHANNEL, notified)

        async def stop() -> None:
            if not conn.is_closed():
                await conn.remove_listener(CHANNEL, notified)
                await conn.close()

        return stop
