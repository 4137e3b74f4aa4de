"""The shared consent log: PostgreSQL through asyncpg, for several consentgate nodes.

* **Durability**: every session runs with ``synchronous_commit = on``; ``append``
  resolves only after the batch's ``COMMIT`` returned, i.e. after the WAL flush.
* **One writer per store, group commit**: ``append`` queues the event; a writer task
  takes everything queued, links it into this store's own chain segment, and writes
  the whole batch (``INSERT ... SELECT FROM unnest(column arrays)``) plus the signed
  chain head in ONE statement: one round trip and one transaction per batch.
  The writer has its own connection; reads use a pool of ``pool_size`` connections.
* **Several nodes** (or ``--workers``): every store instance is its own chain
  segment (``chain_id``), so concurrent writers never interleave a chain, and a
  node killed mid-batch leaves its segment ending at its last committed head.
  A write that fails (or whose commit outcome is unknown) makes the writer start a
  fresh segment, so a chain never reuses a position.
* **Volume**: ``events`` is partitioned by month (see
  :mod:`~consentgate.store.postgres_schema`); exports stream through a server-side
  cursor in one snapshot.
* **Order**: a writer takes its ``seq`` numbers under a transaction-level advisory
  lock held until its commit, so ``seq`` order is commit order across all nodes and
  "every record with ``seq <= max(seq)`` is visible" holds for exports and verify.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from ..chain import ChainState, HeadSigner
from ..consent import CATEGORIES
from . import rollups
from .base import (
    ChainHead,
    ConsentEvent,
    ConsentStore,
    EventFilter,
    QueuedAppend,
    StoredEvent,
    StoreError,
    batches,
)
from .discovery import PostgresDiscoveryMixin
from .postgres_audit import PostgresAuditMixin
from .postgres_schema import (
    EVENTS,
    SEQ_LOCK,
    ensure_partition,
    existing_partitions,
    migrate,
    month_of,
    partition_name,
)
from .records import INSERT_COLUMNS
from .rollups import RollupRow

__all__ = ["PostgresStore", "stored_from_record", "where"]

#: Per-record columns sent as arrays (``chain_id`` is one value for the batch).
_ARRAY_COLUMNS: tuple[str, ...] = tuple(c for c in INSERT_COLUMNS if c != "chain_id")
_LINK_INDEX = {"chain_seq": 0, "prev_hash": 1, "hash": 2}
_SQL_TYPES = {"created_at": "timestamptz", "chain_seq": "bigint", "gpc": "boolean"} | {
    c: "boolean" for c in CATEGORIES
}
# the rollups' counts go in after the batch (``after_ins``): so after the seq lock, and
# two nodes never wait on each other's rollup rows while holding it
_ROLL_ARRAYS, _ROLL_CONFLICT = rollups.postgres_upsert(7 + len(_ARRAY_COLUMNS))
#: the head's Ed25519 signature: the parameter after the rollups' arrays
_ED25519 = 7 + len(_ARRAY_COLUMNS) + len(rollups.KEY_COLUMNS) + len(rollups.COUNT_COLUMNS)
_APPEND = f"""
WITH ins AS (
    INSERT INTO {EVENTS} ({", ".join(_ARRAY_COLUMNS)}, chain_id)
    SELECT u.*, $2::text
    FROM (SELECT pg_advisory_xact_lock($1::bigint)) AS seq_lock,
         unnest({
    ", ".join(f"${i}::{_SQL_TYPES.get(c, 'text')}[]" for i, c in enumerate(_ARRAY_COLUMNS, 7))
}) AS u
    RETURNING seq, chain_seq
), roll AS (
    INSERT INTO consent_rollups
    SELECT r.* FROM (SELECT count(*) FROM ins) AS after_ins, unnest({_ROLL_ARRAYS}) AS r
    {_ROLL_CONFLICT}
), head AS (
    INSERT INTO chain_heads (chain_id, chain_seq, hash, signature, started_at, updated_at,
        ed25519)
    VALUES ($2, $3, $4, $5, $6, $6, ${_ED25519}::text)
    ON CONFLICT (chain_id) DO UPDATE SET chain_seq = excluded.chain_seq,
        hash = excluded.hash, signature = excluded.signature, updated_at = excluded.updated_at,
        ed25519 = excluded.ed25519
)
SELECT seq, chain_seq FROM ins
"""
_MAX_BATCH = 5000
_PREFETCH = 1000
_SERVER_SETTINGS = {"synchronous_commit": "on", "application_name": "consentgate"}
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)

Batch = list[tuple[ConsentEvent, "asyncio.Future[StoredEvent]"]]


def _columns(batch: Batch, links: list[tuple[int, str, str]]) -> list[list[Any]]:
    """The batch column by column, in :data:`_ARRAY_COLUMNS` order."""
    events = [event for event, _ in batch]
    out: list[list[Any]] = []
    for name in _ARRAY_COLUMNS:
        if name in CATEGORIES:
            out.append([name in e.granted for e in events])
        elif name in _LINK_INDEX:
            i = _LINK_INDEX[name]
            out.append([link[i] for link in links])
        else:
            out.append([getattr(e, name) for e in events])
    return out


def stored_from_record(r: asyncpg.Record) -> StoredEvent:
    event = ConsentEvent(
        event_id=r["event_id"],
        consent_id=r["consent_id"],
        site_id=r["site_id"],
        event_type=r["event_type"],
        method=r["method"],
        created_at=r["created_at"].astimezone(UTC),
        granted=frozenset(c for c in CATEGORIES if r[c]),
        policy_version=r["policy_version"],
        banner_hash=r["banner_hash"],
        language=r["language"],
        page_url=r["page_url"],
        region=r["region"],
        regime=r["regime"],
        gpc=r["gpc"],
        ip_masked=r["ip_masked"],
        user_agent=r["user_agent"],
    )
    return StoredEvent(
        seq=r["seq"],
        event=event,
        chain_id=r["chain_id"],
        chain_seq=r["chain_seq"],
        prev_hash=r["prev_hash"],
        hash=r["hash"],
        erased=r["erased"],
    )


def where(flt: EventFilter | None, first: int = 1) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or "") for ``flt`` with ``$first``-numbered parameters."""
    clauses: list[str] = []
    args: list[Any] = []
    if flt is not None:
        for column in ("site_id", "consent_id", "method", "region", "regime"):
            value = getattr(flt, column)
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${first + len(args) - 1}")
        if flt.since is not None:
            args.append(flt.since)
            clauses.append(f"created_at >= ${first + len(args) - 1}")
        if flt.until is not None:
            args.append(flt.until)
            clauses.append(f"created_at < ${first + len(args) - 1}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class PostgresStore(QueuedAppend, PostgresAuditMixin, PostgresDiscoveryMixin, ConsentStore):
    """The consent log in a PostgreSQL database (``url``: ``postgresql://...``)."""

    def __init__(
        self, url: str, *, pool_size: int = 10, head_signer: HeadSigner | None = None
    ) -> None:
        if pool_size < 1:
            raise StoreError(f"pool_size must be at least 1, got {pool_size}")
        self.url = url
        self.pool_size = pool_size
        self.head_signer = head_signer
        self.chain = ChainState()
        self._pool: asyncpg.Pool | None = None
        self._writer_conn: asyncpg.Connection | None = None
        self._months: set[tuple[int, int]] = set()
        self._rewind: tuple[int, str] = (0, "")
        self._queue: asyncio.Queue[tuple[ConsentEvent, asyncio.Future[StoredEvent]] | None] = (
            asyncio.Queue()
        )
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        #: Transactions the writer committed (batches, not events).
        self.commits = 0

    # -- lifecycle -------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, server_settings=_SERVER_SETTINGS)

    async def open(self) -> None:
        # a segment of its own per opening: a store made before a fork (gunicorn --preload)
        # and opened in each worker must not have two writers link to one chain
        self.chain = ChainState()
        try:
            self._writer_conn = await self._connect()
            await migrate(self._writer_conn)
            self._months = set(await existing_partitions(self._writer_conn))
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                server_settings=_SERVER_SETTINGS,
            )
        except (*_DB_ERRORS, ValueError) as exc:
            await self._close_connections()
            raise StoreError(f"cannot open consent log {self._safe_url()}: {exc}") from exc
        self._queue = asyncio.Queue()
        self._closing = False
        self._writer_task = asyncio.create_task(self._writer(), name="consentgate-pg-writer")

    def _safe_url(self) -> str:
        """The URL without a password, for messages."""
        scheme, sep, rest = self.url.partition("://")
        creds, at, host = rest.rpartition("@")
        if at and ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}{sep}{creds}{at}{host}"

    async def _close_connections(self) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await conn.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*_DB_ERRORS):
                await pool.close()

    # -- writes ----------------------------------------------------------------------

    async def _writer(self) -> None:
        """The writer: one transaction per batch of everything queued."""
        async for batch in batches(self._queue, _MAX_BATCH):
            await self._commit(batch)

    async def _writer_connection(self) -> asyncpg.Connection:
        if self._writer_conn is None or self._writer_conn.is_closed():
            self._writer_conn = await self._connect()
        return self._writer_conn

    async def _commit(self, batch: Batch) -> None:
        chain = self.chain
        try:
            try:
                links, seqs = await self._insert(batch)
            except asyncpg.CheckViolationError as exc:
                # "no partition found": another node's retention dropped a month this
                # writer thought existed. The statement was rolled back (a server
                # error, not a lost connection): rewind the chain and retry once.
                if "partition" not in str(exc):
                    raise
                chain.restore(self._rewind)
                self._months = set()
                links, seqs = await self._insert(batch)
            self.commits += 1
        except Exception as exc:
            # The commit may or may not have happened: never reuse this segment, and
            # re-check partitions (another node's retention may have dropped one).
            self.chain = ChainState()
            self._months = set()
            error = StoreError(f"could not write to the consent log: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (event, future), link, seq in zip(batch, links, seqs, strict=True):
            if not future.done():  # the caller may have gone away; the record stays
                future.set_result(StoredEvent(seq, event, chain.chain_id, *link))

    async def _insert(self, batch: Batch) -> tuple[list[tuple[int, str, str]], list[int]]:
        """Link and write ``batch``; returns its links and seqs once committed."""
        chain = self.chain
        conn = await self._writer_connection()
        for month in {month_of(event.created_at) for event, _ in batch} - self._months:
            await ensure_partition(conn, month)
            self._months.add(month)
        self._rewind = chain.snapshot()
        links = [chain.advance(event) for event, _ in batch]
        last_seq, head_hash = links[-1][0], links[-1][2]
        signer = self.head_signer
        signature = signer.sign(chain.chain_id, last_seq, head_hash) if signer else ""
        public = signer.sign_public(chain.chain_id, last_seq, head_hash) if signer else ""
        # ONE statement, so one round trip and its own transaction: the seq lock (taken
        # before any seq default is evaluated, released at commit), the batch, the head.
        rows = await conn.fetch(
            _APPEND,
            SEQ_LOCK,
            chain.chain_id,
            last_seq,
            head_hash,
            signature,
            datetime.now(UTC),
            *_columns(batch, links),
            *rollups.as_columns(rollups.batch_deltas(event for event, _ in batch)),
            public,
        )
        seqs_by_pos = {r[1]: r[0] for r in rows}
        return links, [seqs_by_pos[link[0]] for link in links]

    # -- reads -----------------------------------------------------------------------

    def _partition_dropped(self, name: str) -> None:
        """Retention dropped partition ``name``: recreate it if a record needs it."""
        self._months = {m for m in self._months if partition_name(m) != name}

    _where = staticmethod(where)
    _stored = staticmethod(stored_from_record)

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the consent log is not open")
        return self._pool

    async def latest(self, consent_id: str) -> StoredEvent | None:
        row = await self.pool().fetchrow(
            f"SELECT * FROM {EVENTS} WHERE consent_id = $1 ORDER BY seq DESC LIMIT 1",
            consent_id,
        )
        return stored_from_record(row) if row is not None else None

    async def iter_events(self, flt: EventFilter | None = None) -> AsyncIterator[StoredEvent]:
        """A server-side cursor in one read-only snapshot: constant memory."""
        clause, args = where(flt)
        async with self.pool().acquire() as conn, conn.transaction(readonly=True):
            cursor = conn.cursor(
                f"SELECT * FROM {EVENTS}{clause} ORDER BY seq", *args, prefetch=_PREFETCH
            )
            async for row in cursor:
                yield stored_from_record(row)

    async def count(self, flt: EventFilter | None = None) -> int:
        clause, args = where(flt)
        return int(await self.pool().fetchval(f"SELECT count(*) FROM {EVENTS}{clause}", *args))

    async def chain_heads(self) -> list[ChainHead]:
        rows = await self.pool().fetch(
            "SELECT chain_id, chain_seq, hash, signature, updated_at, ed25519 FROM chain_heads "
            "ORDER BY started_at, chain_id"
        )
        return [ChainHead(r[0], r[1], r[2], r[3], r[4].astimezone(UTC), r[5]) for r in rows]

    async def rollup_rows(self, site_id: str, since: date, until: date) -> list[RollupRow]:
        rows = await self.pool().fetch(
            rollups.SELECT.format("$1", "$2", "$3"), site_id, since, until
        )
        return [rollups.row_of(tuple(r)) for r in rows]

    async def ping(self) -> bool:
        try:
            await self.pool().fetchval("SELECT 1", timeout=5)
        except (*_DB_ERRORS, StoreError):
            return False
        return self._writer_task is not None and not self._writer_task.done()
