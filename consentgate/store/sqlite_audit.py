"""The auditor tools' storage on SQLite: purge checkpoints, erasures, API tokens,
the action log, and fast batched reads for export.

Mixed into :class:`~consentgate.store.sqlite.SQLiteStore`. Maintenance writes
(purge, erase, tokens, actions) use their own connection with
``PRAGMA secure_delete=ON``, so deleted or blanked content is overwritten in the
file instead of lingering in free pages, and end with a ``wal_checkpoint(TRUNCATE)``
so no old page image stays in the WAL either. SQLite's write lock serialises them
with the appending writer (``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from ..chain import HeadSigner, action_detail_json, format_time, link_action
from .base import (
    ActionHead,
    ApiToken,
    Attester,
    AuditAction,
    ChainHead,
    CheckpointPlanner,
    Erasure,
    EventFilter,
    LogSnapshot,
    PurgeCheckpoint,
)
from .pages import STAT_COLUMNS, ExportPage, PageEncoder
from .records import parse_time, stored_from_row

__all__ = ["ACTIONS_MIGRATION", "AUDIT_MIGRATION", "EXPORT_SELECT", "SQLiteAuditMixin"]

AUDIT_MIGRATION: tuple[int, str] = (
    2,
    """
    CREATE TABLE purge_checkpoints (
        chain_id   TEXT    NOT NULL,
        first_seq  INTEGER NOT NULL,
        last_seq   INTEGER NOT NULL,
        last_hash  TEXT    NOT NULL,
        signature  TEXT    NOT NULL,
        purged_at  TEXT    NOT NULL,
        PRIMARY KEY (chain_id, first_seq)
    );
    CREATE TABLE erasures (
        seq           INTEGER PRIMARY KEY,
        chain_id      TEXT    NOT NULL,
        chain_seq     INTEGER NOT NULL,
        hash          TEXT    NOT NULL,
        fields_digest TEXT    NOT NULL,
        signature     TEXT    NOT NULL,
        erased_at     TEXT    NOT NULL
    );
    CREATE TABLE api_tokens (
        token_id   TEXT PRIMARY KEY,
        role       TEXT NOT NULL,
        name       TEXT NOT NULL DEFAULT '',
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE audit_actions (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     TEXT NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
)

#: The action log becomes a chain: existing actions keep an empty hash; a process still
#: running older code cannot add unchained ones (it fails loudly instead).
ACTIONS_MIGRATION: tuple[int, str] = (
    3,
    """
    ALTER TABLE audit_actions ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit_actions ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    CREATE TABLE action_head (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        count      INTEGER NOT NULL,
        hash       TEXT    NOT NULL,
        signature  TEXT    NOT NULL,
        updated_at TEXT    NOT NULL
    );
    CREATE TRIGGER audit_actions_chained BEFORE INSERT ON audit_actions
    WHEN NEW.hash = ''
    BEGIN
        SELECT RAISE(ABORT, 'audit actions are chained since schema 3: upgrade consentgate');
    END;
    """,
)

#: Export columns (audit.columns.EXPORT_COLUMNS order) straight from ``events``.
EXPORT_SELECT = (
    "seq, event_id, consent_id, site_id, event_type, method, created_at, necessary, "
    "preferences, statistics, marketing, unclassified, policy_version, banner_hash, "
    "language, page_url, region, regime, gpc, ip_masked, user_agent, "
    "chain_id, chain_seq, prev_hash, hash, erased"
)


_EMPTY = ExportPage(b"", 0, 0, 0, "", "", [])


def _compiled_pages() -> Any:
    """The compiled export reader's type (``audit/_sqlpages.c``), or None: not built
    (no SQLite headers at install time), ``CONSENTGATE_PURE_PYTHON=1``, or not linked to
    the very SQLite library Python's ``sqlite3`` uses (:func:`_same_sqlite`)."""
    if os.environ.get("CONSENTGATE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from ..audit import _sqlpages  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _sqlpages.Pages if _same_sqlite(_sqlpages.__file__) else None


@functools.cache
def _same_sqlite(reader_file: str) -> bool:
    """Whether the compiled reader and Python's ``sqlite3`` share one SQLite library.

    Two copies of SQLite in one process (a Python whose ``_sqlite3`` has SQLite built
    in) keep separate POSIX lock tables, and closing one copy's file handle drops the
    locks the other holds on the same database. Both modules must resolve
    ``sqlite3_libversion`` to the same address."""
    import _sqlite3
    import ctypes

    try:
        ours = ctypes.CDLL(reader_file).sqlite3_libversion
        theirs = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion
    except (OSError, AttributeError):
        return False
    address = ctypes.cast(ours, ctypes.c_void_p).value
    return address is not None and address == ctypes.cast(theirs, ctypes.c_void_p).value


class SQLiteAuditMixin:
    """Needs the host store's ``_connect()``, ``_reader()`` and ``path``."""

    _admin_db: aiosqlite.Connection | None = None
    _admin_lock: asyncio.Lock | None = None

    if TYPE_CHECKING:  # provided by SQLiteStore
        head_signer: HeadSigner | None

        async def _connect(self) -> aiosqlite.Connection: ...

        def _reader(self) -> aiosqlite.Connection: ...

    async def _admin(self) -> aiosqlite.Connection:
        self._reader()  # raises when the store is not open
        if self._admin_db is None:
            db = await self._connect()
            await db.execute("PRAGMA secure_delete=ON")
            self._admin_db = db
        return self._admin_db

    def _lock(self) -> asyncio.Lock:
        if self._admin_lock is None:
            self._admin_lock = asyncio.Lock()
        return self._admin_lock

    async def _write(self, statements: list[tuple[str, Any]], *, scrub: bool = False) -> None:
        """Run ``(sql, args | [args, ...])`` pairs in one IMMEDIATE transaction."""
        async with self._lock():
            db = await self._admin()
            await db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    if isinstance(args, list):
                        await db.executemany(sql, args)
                    else:
                        await db.execute(sql, args)
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            if scrub:
                await self._scrub_wal(db)

    async def _scrub_wal(self, db: aiosqlite.Connection) -> None:
        """Copy the WAL into the file and truncate it, so old page images go."""
        for _ in range(50):
            async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                row = await cur.fetchone()
            if row is not None and int(row[0]) == 0:
                return
            await asyncio.sleep(0.05)

    async def _close_admin(self) -> None:
        db, self._admin_db = self._admin_db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.close()

    # -- reads -------------------------------------------------------------------------

    async def snapshot(self) -> LogSnapshot:
        # one statement = one consistent read, whatever else uses the reader
        async with self._reader().execute(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), h.chain_id, h.chain_seq, "
            "h.hash, h.signature, h.updated_at, h.ed25519 FROM (SELECT 1) "
            "LEFT JOIN chain_heads AS h ORDER BY h.rowid"
        ) as cur:
            rows = await cur.fetchall()
        heads = [
            ChainHead(r[1], int(r[2]), r[3], r[4], parse_time(r[5]), r[6])
            for r in rows
            if r[1] is not None
        ]
        return LogSnapshot(heads, int(rows[0][0]) if rows else 0)

    def _export_sql(
        self, flt: EventFilter | None, max_seq: int | None, batch: int
    ) -> tuple[str, list[object]]:
        """One keyset page of the export: ``seq > ?`` is the first parameter, the list
        holds the others."""
        from .sqlite import _where  # sqlite.py imports this module

        clauses, args = _where(flt, seq_order=True)
        extra = "".join(f" AND {c}" for c in clauses)
        bound = " AND seq <= ?" if max_seq is not None else ""
        bound_args = [max_seq] if max_seq is not None else []
        sql = (
            f"SELECT {EXPORT_SELECT} FROM events WHERE seq > ?{bound}{extra} "
            f"ORDER BY seq LIMIT {int(batch)}"
        )
        return sql, [*bound_args, *args]

    async def iter_rows(
        self, flt: EventFilter | None = None, *, max_seq: int | None = None, batch: int = 5000
    ) -> AsyncIterator[list[tuple[object, ...]]]:
        """Keyset-paged on ``seq``: no read transaction stays open between pages."""
        sql, args = self._export_sql(flt, max_seq, batch)

        async def page(params: tuple[object, ...]) -> list[tuple[object, ...]]:
            async with self._reader().execute(sql, params) as cur:
                cur._cursor.row_factory = None  # plain tuples: the export's hot path
                return await cur.fetchall()  # type: ignore[return-value]

        # A command-line tool has nothing else to serve: its pages are read right here
        # (a plain connection), which was measured ~25 % faster than through aiosqlite's
        # thread.
        inline = sqlite3.connect(self.path) if self.reads_may_block else None
        try:
            after = 0
            while True:
                params = (after, *args)
                rows = inline.execute(sql, params).fetchall() if inline else await page(params)
                if rows:
                    yield rows
                if len(rows) < batch:
                    return
                after = int(rows[-1][0])  # type: ignore[call-overload]
        finally:
            if inline is not None:
                inline.close()

    async def iter_pages(
        self,
        flt: EventFilter | None,
        encoder: PageEncoder,
        *,
        max_seq: int | None = None,
        batch: int = 5000,
    ) -> AsyncIterator[ExportPage]:
        """Pages read and encoded by the compiled reader (``audit/_sqlpages.c``) on a
        thread of their own, without the GIL, the next page while the caller writes this
        one. Without the reader (or with a pure-Python encoder), ``iter_rows`` batches."""
        reader_type = _compiled_pages()
        if reader_type is None or not encoder.compiled:
            async for page in super().iter_pages(flt, encoder, max_seq=max_seq, batch=batch):
                yield page
            return
        from .sqlite import LOCK_TIMEOUT  # sqlite.py imports this module

        sql, args = self._export_sql(flt, max_seq, batch)
        loop = asyncio.get_running_loop()
        # Not a `with` block: leaving one joins the thread on the event loop, which a
        # cancelled export (an HTTP client gone) must not wait for.
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-reader")
        reader: Any = None
        pending: asyncio.Future[ExportPage] | None = None

        def read(after: int) -> ExportPage:
            result = reader.page(after)
            if result is not None:
                return ExportPage(*result)
            # a value the schema does not promise (a NULL, a REAL, bad UTF-8, ...): this
            # page through Python's sqlite3 and the reference encoder, which write or
            # refuse it as they always did
            with contextlib.closing(sqlite3.connect(self.path, timeout=LOCK_TIMEOUT)) as db:
                rows = db.execute(sql, (after, *args)).fetchall()
            return ExportPage.of(rows, encoder.encode(rows)) if rows else _EMPTY

        try:
            reader = await loop.run_in_executor(
                thread,
                lambda: reader_type(
                    os.fsencode(self.path),
                    sql,
                    tuple(args),
                    encoder.codes,
                    encoder.keys,
                    batch,
                    STAT_COLUMNS,
                ),
            )
            pending = loop.run_in_executor(thread, read, 0)
            while pending is not None:
                page = await pending
                pending = None
                if page.rows == batch:  # read ahead while the caller writes this one
                    pending = loop.run_in_executor(thread, read, page.last_seq)
                if page.rows:
                    yield page
        finally:
            # Nothing awaited here (a cancelled task would be cancelled again): a read
            # ahead that has not started is dropped, one that has finishes on the thread,
            # and the reader is closed there after it.
            if pending is not None:
                pending.cancel()
            if reader is not None:
                thread.submit(reader.close)
            thread.shutdown(wait=False)

    async def purge_checkpoints(self) -> list[PurgeCheckpoint]:
        async with self._reader().execute(
            "SELECT chain_id, first_seq, last_seq, last_hash, signature, purged_at "
            "FROM purge_checkpoints ORDER BY chain_id, first_seq"
        ) as cur:
            return [_checkpoint(r) for r in await cur.fetchall()]

    async def erasures(self) -> list[Erasure]:
        async with self._reader().execute(
            "SELECT seq, chain_id, chain_seq, hash, fields_digest, signature, erased_at "
            "FROM erasures ORDER BY seq"
        ) as cur:
            return [
                Erasure(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5], parse_time(r[6]))
                for r in await cur.fetchall()
            ]

    # -- retention and erasure -----------------------------------------------------------

    async def purge(
        self, site_id: str, before: datetime, plan: CheckpointPlanner, *, batch: int = 5000
    ) -> int:
        total = 0
        cutoff = format_time(before)
        async with self._lock():
            db = await self._admin()
            while True:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    n = await self._purge_batch(db, site_id, cutoff, plan, batch)
                    await db.execute("COMMIT")
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                total += n
                if n < batch:
                    break
            if total:
                await self._scrub_wal(db)
        return total

    async def _purge_batch(
        self, db: aiosqlite.Connection, site_id: str, cutoff: str, plan: CheckpointPlanner, n: int
    ) -> int:
        async with db.execute(
            "SELECT seq, chain_id, chain_seq, hash FROM events "
            f"WHERE site_id = ? AND created_at < ? ORDER BY seq LIMIT {int(n)}",
            (site_id, cutoff),
        ) as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        if not rows:
            return 0
        chains = sorted({r[1] for r in rows})
        marks = ",".join("?" for _ in chains)
        async with db.execute(
            "SELECT chain_id, first_seq, last_seq, last_hash, signature, purged_at "
            f"FROM purge_checkpoints WHERE chain_id IN ({marks})",
            chains,
        ) as cur:
            existing = [_checkpoint(r) for r in await cur.fetchall()]
        upsert, remove = plan([(r[1], int(r[2]), r[3]) for r in rows], existing)
        seqs = [(r[0],) for r in rows]
        await db.executemany("DELETE FROM events WHERE seq = ?", seqs)
        await db.executemany("DELETE FROM erasures WHERE seq = ?", seqs)
        await db.executemany(
            "DELETE FROM purge_checkpoints WHERE chain_id = ? AND first_seq = ?",
            [(c.chain_id, c.first_seq) for c in remove],
        )
        await db.executemany(
            "INSERT OR REPLACE INTO purge_checkpoints "
            "(chain_id, first_seq, last_seq, last_hash, signature, purged_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    c.chain_id,
                    c.first_seq,
                    c.last_seq,
                    c.last_hash,
                    c.signature,
                    format_time(c.purged_at),
                )
                for c in upsert
            ],
        )
        return len(rows)

    async def erase(self, consent_id: str, attest: Attester) -> int:
        async with self._lock():
            db = await self._admin()
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT * FROM events WHERE consent_id = ? AND erased = 0 ORDER BY seq",
                    (consent_id,),
                ) as cur:
                    records = [stored_from_row(r) for r in await cur.fetchall()]
                proofs = [attest(r) for r in records]
                await db.executemany(
                    "UPDATE events SET ip_masked = '', user_agent = '', page_url = '', "
                    "erased = 1 WHERE seq = ?",
                    [(r.seq,) for r in records],
                )
                await db.executemany(
                    "INSERT OR REPLACE INTO erasures (seq, chain_id, chain_seq, hash, "
                    "fields_digest, signature, erased_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            p.seq,
                            p.chain_id,
                            p.chain_seq,
                            p.hash,
                            p.fields_digest,
                            p.signature,
                            format_time(p.erased_at),
                        )
                        for p in proofs
                    ],
                )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            if records:
                await self._scrub_wal(db)
        return len(records)

    # -- tokens and the action log ------------------------------------------------------

    async def add_token(self, token: ApiToken) -> None:
        await self._write(
            [
                (
                    "INSERT INTO api_tokens (token_id, role, name, token_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        token.token_id,
                        token.role,
                        token.name,
                        token.token_hash,
                        format_time(token.created_at),
                    ),
                )
            ]
        )

    async def get_token(self, token_id: str) -> ApiToken | None:
        async with self._reader().execute(
            "SELECT * FROM api_tokens WHERE token_id = ?", (token_id,)
        ) as cur:
            row = await cur.fetchone()
        return _token(row) if row is not None else None

    async def list_tokens(self) -> list[ApiToken]:
        async with self._reader().execute(
            "SELECT * FROM api_tokens ORDER BY created_at, token_id"
        ) as cur:
            return [_token(r) for r in await cur.fetchall()]

    async def revoke_token(self, token_id: str, at: datetime) -> bool:
        async with self._lock():
            db = await self._admin()
            cur = await db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (format_time(at), token_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def log_action(self, action: AuditAction) -> None:
        async with self._lock():
            db = await self._admin()
            await db.execute("BEGIN IMMEDIATE")  # the head is read and moved in one go
            try:
                async with db.execute("SELECT count, hash FROM action_head") as cur:
                    row = await cur.fetchone()
                link = link_action(row, action, self.head_signer)
                await db.execute(
                    "INSERT INTO audit_actions (at, actor, action, detail, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        format_time(action.at),
                        action.actor,
                        action.action,
                        action_detail_json(action.detail),
                        link.prev_hash,
                        link.hash,
                    ),
                )
                await db.execute(
                    "INSERT INTO action_head (id, count, hash, signature, updated_at, ed25519) "
                    "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "count = excluded.count, hash = excluded.hash, "
                    "signature = excluded.signature, updated_at = excluded.updated_at, "
                    "ed25519 = excluded.ed25519",
                    (link.count, link.hash, link.signature, format_time(action.at), link.ed25519),
                )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def iter_actions(self) -> AsyncIterator[AuditAction]:
        last = 0
        while True:
            async with self._reader().execute(
                "SELECT id, at, actor, action, detail, prev_hash, hash FROM audit_actions "
                "WHERE id > ? ORDER BY id LIMIT 500",
                (last,),
            ) as cur:
                rows = await cur.fetchall()
            for r in rows:
                yield AuditAction(
                    parse_time(r[1]), r[2], r[3], json.loads(r[4]), int(r[0]), r[5], r[6]
                )
            if len(rows) < 500:
                return
            last = int(rows[-1][0])

    async def action_head(self) -> ActionHead | None:
        async with self._reader().execute(
            "SELECT count, hash, signature, updated_at, ed25519 FROM action_head"
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return ActionHead(int(row[0]), row[1], row[2], parse_time(row[3]), row[4])


def _checkpoint(r: Any) -> PurgeCheckpoint:
    return PurgeCheckpoint(r[0], int(r[1]), int(r[2]), r[3], r[4], parse_time(r[5]))


def _token(r: Any) -> ApiToken:
    return ApiToken(
        r["token_id"],
        r["role"],
        r["name"],
        r["token_hash"],
        parse_time(r["created_at"]),
        parse_time(r["revoked_at"]) if r["revoked_at"] else None,
    )
