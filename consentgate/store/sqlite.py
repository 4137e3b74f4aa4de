"""The embedded consent log: SQLite (the writer on a thread of its own, reads through
aiosqlite).

* **Durability**: WAL journal with ``synchronous=FULL``: a commit returns only after
  the WAL is fsynced, so an acknowledged record survives ``kill -9`` and power loss.
* **Single writer, group commit**: ``append`` puts the event on a queue; one writer
  task takes everything queued, links it into the hash chain, inserts the whole batch
  and the chain head in ONE transaction, and resolves each caller's future only after
  the commit (datasette's single-writer pattern). The transaction runs as one call on
  the writer's own thread (:class:`WriterThread`): one thread hop per batch instead of
  one per statement.
* **Several processes** (``serve --workers N`` on one machine) take turns
  through an ``flock`` on ``<file>-writer.lock`` held around each transaction: a
  waiting writer polls it every 0.2-2 ms (for at most :data:`LOCK_TIMEOUT`), where
  SQLite's own busy handler sleeps up to 100 ms between retries.
* **Reads** use a second connection, so exports never wait behind the writer.
* **Schema** versioned in ``schema_version`` and upgraded by :data:`MIGRATIONS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..chain import ChainState, HeadSigner, format_time
from . import discovery, rollups
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
from .records import INSERT_COLUMNS, event_values, parse_time, stored_from_row
from .rollups import RollupRow
from .sqlite_audit import ACTIONS_MIGRATION, AUDIT_MIGRATION, SQLiteAuditMixin

__all__ = ["MIGRATIONS", "SQLiteStore", "WriterThread", "schema_version"]

R = TypeVar("R")

#: (version, SQL script). Append new entries; never edit a released one.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE events (
            seq            INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id       TEXT    NOT NULL UNIQUE,
            consent_id     TEXT    NOT NULL,
            site_id        TEXT    NOT NULL,
            event_type     TEXT    NOT NULL,
            method         TEXT    NOT NULL,
            created_at     TEXT    NOT NULL,
            necessary      INTEGER NOT NULL,
            preferences    INTEGER NOT NULL,
            statistics     INTEGER NOT NULL,
            marketing      INTEGER NOT NULL,
            unclassified   INTEGER NOT NULL,
            policy_version TEXT    NOT NULL,
            banner_hash    TEXT    NOT NULL DEFAULT '',
            language       TEXT    NOT NULL DEFAULT '',
            page_url       TEXT    NOT NULL DEFAULT '',
            region         TEXT    NOT NULL DEFAULT '',
            regime         TEXT    NOT NULL DEFAULT 'opt-in',
            gpc            INTEGER NOT NULL DEFAULT 0,
            ip_masked      TEXT    NOT NULL DEFAULT '',
            user_agent     TEXT    NOT NULL DEFAULT '',
            chain_id       TEXT    NOT NULL,
            chain_seq      INTEGER NOT NULL,
            prev_hash      TEXT    NOT NULL,
            hash           TEXT    NOT NULL,
            erased         INTEGER NOT NULL DEFAULT 0,
            UNIQUE (chain_id, chain_seq)
        );
        CREATE INDEX events_consent ON events (consent_id, seq);
        CREATE INDEX events_site_time ON events (site_id, created_at);
        CREATE TABLE chain_heads (
            chain_id   TEXT    PRIMARY KEY,
            chain_seq  INTEGER NOT NULL,
            hash       TEXT    NOT NULL,
            signature  TEXT    NOT NULL,
            updated_at TEXT    NOT NULL
        );
        """,
    ),
    AUDIT_MIGRATION,
    ACTIONS_MIGRATION,
    (4, rollups.sqlite_schema()),
    (5, discovery.sqlite_schema()),
    (
        6,
        """
        ALTER TABLE chain_heads ADD COLUMN ed25519 TEXT NOT NULL DEFAULT '';
        ALTER TABLE action_head ADD COLUMN ed25519 TEXT NOT NULL DEFAULT '';
        """,
    ),
)

_INSERT = (
    f"INSERT INTO events ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
)
_UPSERT_HEAD = (
    "INSERT INTO chain_heads (chain_id, chain_seq, hash, signature, updated_at, ed25519) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET "
    "chain_seq = excluded.chain_seq, hash = excluded.hash, "
    "signature = excluded.signature, updated_at = excluded.updated_at, "
    "ed25519 = excluded.ed25519"
)
_MAX_BATCH = 2048
#: Longest wait for another process's writer (SQLite's busy_timeout is the same).
LOCK_TIMEOUT = 10.0
_PAGE = 500


def _connect_pragmas() -> list[str]:
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA busy_timeout=10000",
    ]


def _statements(script: str) -> list[str]:
    """A migration script's statements, split where SQLite says one is complete (a
    trigger's body holds semicolons of its own)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer)
            buffer = ""
    if buffer.strip():
        out.append(buffer)
    return [s for s in out if s.strip()]


def schema_version(conn: sqlite3.Connection) -> int:
    """The applied schema version of a plain ``sqlite3`` connection (0 when empty)."""
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0] or 0)


def private_files(path: Path) -> None:
    """The log and its WAL, shared-memory and lock files readable by the owner only
    (0600): a new log is created so (SQLite gives the WAL and -shm files the mode of the
    database file), an existing one is tightened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for name in (str(path), f"{path}-wal", f"{path}-shm", f"{path}-writer.lock"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


class WriterThread:
    """The writer's ``sqlite3`` connection, living on a thread of its own.

    ``transact(body)`` runs ``body(connection)`` in one ``BEGIN IMMEDIATE``/``COMMIT``
    on that thread: a whole transaction is one hop from the event loop. ``flock``
    serializes writers of the same file across processes (see the module docstring).
    ``run(fn, *args)`` calls ``fn(connection, *args)`` there outside a transaction.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="consentgate-sqlite-writer"
        )
        self._conn: sqlite3.Connection | None = None
        self._lock_fd = -1

    async def open(self) -> None:
        assert self._executor is not None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        if self._lock_fd < 0:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            for pragma in _connect_pragmas():
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._executor is None:
            raise StoreError("the consent log is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    def _call(self, fn: Callable[..., R], args: tuple[Any, ...]) -> R:
        if self._conn is None:
            raise StoreError("the consent log is not open")
        return fn(self._conn, *args)

    async def transact(self, body: Callable[[sqlite3.Connection], R]) -> R:
        return await self.run(self._transaction, body)

    def _transaction(self, conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], R]) -> R:
        """``body(conn)`` inside ``BEGIN IMMEDIATE``/``COMMIT`` under the file lock."""
        self._lock()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if conn.in_transaction:  # not even ROLLBACK worked: start afresh
                    self._reconnect()
                raise
            return result
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _lock(self) -> None:
        """Take the writer lock, waiting at most :data:`LOCK_TIMEOUT` seconds (a
        writer that hangs elsewhere must turn into an error here, as SQLite's
        ``busy_timeout`` would, not into a queue that grows forever)."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"another writer has held {self.path}-writer.lock for {LOCK_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(pause)  # on this writer's own thread; the loop runs on
                pause = min(pause * 2, 0.002)

    def _reconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._open()

    async def close(self) -> None:
        """Close the connection (pending work first); later ``run`` calls fail."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close)
        executor.shutdown(wait=False)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _insert_batch(
    rows: list[tuple[Any, ...]],
    head: tuple[Any, ...],
    first_chain_seq: int,
    deltas: list[tuple[Any, ...]],
) -> Callable[[sqlite3.Connection], list[int]]:
    """One group commit's body: the rows, the chain head, the rollups' counts, and the
    ``seq`` each row got, in chain order."""

    def body(conn: sqlite3.Connection) -> list[int]:
        conn.executemany(_INSERT, rows)
        conn.execute(_UPSERT_HEAD, head)
        conn.executemany(rollups.SQLITE_UPSERT, deltas)
        cur = conn.execute(
            "SELECT seq FROM events WHERE chain_id = ? AND chain_seq >= ? ORDER BY chain_seq",
            (head[0], first_chain_seq),
        )
        return [int(r[0]) for r in cur.fetchall()]

    return body


def _where(flt: EventFilter | None, *, seq_order: bool = False) -> tuple[list[str], list[Any]]:
    """WHERE terms for ``flt``. ``seq_order``: prefix columns with ``+`` so SQLite
    keeps walking ``seq`` (keyset paging of a big export) instead of sorting an index
    range for every page; only the selective ``consent_id`` index stays usable."""
    clauses: list[str] = []
    args: list[Any] = []
    if flt is None:
        return clauses, args
    plus = "+" if seq_order else ""
    for column in ("site_id", "consent_id", "method", "region", "regime"):
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{'' if column == 'consent_id' else plus}{column} = ?")
            args.append(value)
    if flt.since is not None:
        clauses.append(f"{plus}created_at >= ?")
        args.append(format_time(flt.since))
    if flt.until is not None:
        clauses.append(f"{plus}created_at < ?")
        args.append(format_time(flt.until))
    return clauses, args


class SQLiteStore(QueuedAppend, SQLiteAuditMixin, discovery.SQLiteDiscoveryMixin, ConsentStore):
    """The consent log in one SQLite file (``path``; parent directories are created).

    ``head_signer`` signs the chain head on every commit; without one the head is
    stored with an empty signature (tests and tools that only read).
    """

    def __init__(self, path: str | os.PathLike[str], *, head_signer: HeadSigner | None = None):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.head_signer = head_signer
        self.chain = ChainState()
        self._writer_db: WriterThread | None = None
        self._reader_db: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[ConsentEvent, asyncio.Future[StoredEvent]] | None] = (
            asyncio.Queue()
        )
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        #: Transactions committed by this writer (group-commit visibility for tests/bench).
        self.commits = 0

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        # a segment of its own per opening: a store made before a fork (gunicorn --preload)
        # and opened in each worker must not have two writers link to one chain
        self.chain = ChainState()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_files(self.path)
            self._writer_db = WriterThread(self.path)
            await self._writer_db.open()
            await self._writer_db.transact(self._apply_migrations)
            self._reader_db = await self._connect()
        except StoreError:
            await self._close_connections()
            raise
        except (sqlite3.Error, OSError) as exc:
            await self._close_connections()
            raise StoreError(f"cannot open consent log {self.path}: {exc}") from exc
        self._queue = asyncio.Queue()
        self._closing = False
        self._writer_task = asyncio.create_task(self._writer(), name="consentgate-sqlite-writer")

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        for pragma in _connect_pragmas():
            await db.execute(pragma)
        return db

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to :data:`MIGRATIONS` (on the writer's thread)."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        known = MIGRATIONS[-1][0]
        if current > known:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this consentgate "
                f"understands ({known}); upgrade consentgate"
            )
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, format_time(datetime.now(UTC))),
            )

    async def _close_connections(self) -> None:
        await self._close_admin()
        writer, self._writer_db = self._writer_db, None
        if writer is not None:
            await writer.close()
        reader, self._reader_db = self._reader_db, None
        if reader is not None:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await reader.close()

    # -- writes ----------------------------------------------------------------------

    async def _writer(self) -> None:
        """The single writer: one transaction per batch of everything queued."""
        async for batch in batches(self._queue, _MAX_BATCH):
            try:
                await self._commit(batch)
            except Exception as exc:  # never let the single writer die
                error = StoreError(f"could not write to the consent log: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)

    async def _commit(self, batch: list[tuple[ConsentEvent, asyncio.Future[StoredEvent]]]) -> None:
        writer = self._writer_db
        chain_id = self.chain.chain_id
        try:
            if writer is None:
                raise StoreError("the consent log is not open")
            links = [self.chain.advance(event) for event, _ in batch]
            rows = [
                event_values(event, chain_id, *link)
                for (event, _), link in zip(batch, links, strict=True)
            ]
            last_seq, head_hash = links[-1][0], links[-1][2]
            signature = (
                self.head_signer.sign(chain_id, last_seq, head_hash) if self.head_signer else ""
            )
            public = (
                self.head_signer.sign_public(chain_id, last_seq, head_hash)
                if self.head_signer
                else ""
            )
            now = format_time(datetime.now(UTC))
            head = (chain_id, last_seq, head_hash, signature, now, public)
            deltas = rollups.batch_deltas(event for event, _ in batch)
            seqs = await writer.transact(_insert_batch(rows, head, links[0][0], deltas))
            self.commits += 1
        except Exception as exc:
            # Whether a failed COMMIT reached the disk is not certain (an fsync error):
            # never link to an uncertain head; continue in a fresh chain segment.
            self.chain = ChainState()
            error = StoreError(f"could not write to the consent log: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (event, future), (chain_seq, prev, digest), seq in zip(batch, links, seqs, strict=True):
            if not future.done():  # the caller may have gone away; the record stays
                future.set_result(StoredEvent(seq, event, chain_id, chain_seq, prev, digest))

    # -- reads -----------------------------------------------------------------------

    def _reader(self) -> aiosqlite.Connection:
        if self._reader_db is None:
            raise StoreError("the consent log is not open")
        return self._reader_db

    async def latest(self, consent_id: str) -> StoredEvent | None:
        async with self._reader().execute(
            "SELECT * FROM events WHERE consent_id = ? ORDER BY seq DESC LIMIT 1", (consent_id,)
        ) as cur:
            row = await cur.fetchone()
        return stored_from_row(row) if row is not None else None

    async def iter_events(self, flt: EventFilter | None = None) -> AsyncIterator[StoredEvent]:
        """Keyset-paged so no read transaction stays open between pages."""
        clauses, args = _where(flt)
        last = 0
        while True:
            where = " AND ".join(["seq > ?", *clauses])
            async with self._reader().execute(
                f"SELECT * FROM events WHERE {where} ORDER BY seq LIMIT {_PAGE}", (last, *args)
            ) as cur:
                rows = await cur.fetchall()
            for row in rows:
                yield stored_from_row(row)
            if len(rows) < _PAGE:
                return
            last = int(rows[-1]["seq"])

    async def count(self, flt: EventFilter | None = None) -> int:
        clauses, args = _where(flt)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._reader().execute(f"SELECT COUNT(*) FROM events{where}", args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def chain_heads(self) -> list[ChainHead]:
        async with self._reader().execute(
            "SELECT chain_id, chain_seq, hash, signature, updated_at, ed25519 FROM chain_heads "
            "ORDER BY rowid"
        ) as cur:
            rows = await cur.fetchall()
        return [ChainHead(r[0], int(r[1]), r[2], r[3], parse_time(r[4]), r[5]) for r in rows]

    async def rollup_rows(self, site_id: str, since: date, until: date) -> list[RollupRow]:
        sql = rollups.SELECT.format(":site", ":since", ":until")
        args = {"site": site_id, "since": since.isoformat(), "until": until.isoformat()}
        async with self._reader().execute(sql, args) as cur:
            return [rollups.row_of(tuple(r)) for r in await cur.fetchall()]

    async def ping(self) -> bool:
        try:
            async with self._reader().execute("SELECT 1") as cur:
                await cur.fetchone()
        except (sqlite3.Error, StoreError, ValueError):
            return False
        return self._writer_task is not None and not self._writer_task.done()
