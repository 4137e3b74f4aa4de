"""The auditor tools' storage on PostgreSQL: purge checkpoints, erasures, API tokens,
the action log, and batched reads for export.

Mixed into :class:`~consentgate.store.postgres.PostgresStore`.

* **Retention** (``purge``) takes a transaction-level advisory lock, so the nodes'
  schedulers never purge the same rows twice. A monthly partition whose month ended
  before the cutoff and that holds only the purged site's records is **dropped as a
  whole** (its checkpoints written in the same transaction); otherwise rows are
  deleted in batches, each batch one transaction with its checkpoints.
* **Overwriting deleted content**: PostgreSQL keeps old row versions until VACUUM,
  so purge and erase ``VACUUM`` the partitions they touched; a dropped partition's
  files are unlinked. (Page bytes of vacuumed rows may survive until the space is
  reused, and in WAL segments until they are recycled — see docs/deploy.md.)
* **Exports** stream through ``COPY (SELECT …) TO STDOUT`` in one read-only snapshot
  (:mod:`.postgres_copy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ..chain import HeadSigner, action_detail_json, link_action
from . import rollups
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
from .postgres_copy import copy_rows
from .postgres_schema import (
    ACTIONS_LOCK,
    EVENTS,
    PARTITION_LOCK,
    PURGE_LOCK,
    existing_partitions,
    month_range,
)

__all__ = ["EXPORT_SELECT", "PostgresAuditMixin"]

#: Export columns (audit.columns.EXPORT_COLUMNS order); time in chain.format_time form.
EXPORT_SELECT = (
    "seq, event_id, consent_id, site_id, event_type, method, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "necessary, preferences, statistics, marketing, unclassified, policy_version, "
    "banner_hash, language, page_url, region, regime, gpc, ip_masked, user_agent, "
    "chain_id, chain_seq, prev_hash, hash, erased"
)
_CHECKPOINT_COLUMNS = "chain_id, first_seq, last_seq, last_hash, signature, purged_at"
_UPSERT_CHECKPOINT = (
    f"INSERT INTO purge_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (chain_id, first_seq) DO UPDATE SET last_seq = excluded.last_seq, "
    "last_hash = excluded.last_hash, signature = excluded.signature, "
    "purged_at = excluded.purged_at"
)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _checkpoint(r: asyncpg.Record) -> PurgeCheckpoint:
    return PurgeCheckpoint(r[0], r[1], r[2], r[3], r[4], _utc(r[5]))


def _token(r: asyncpg.Record) -> ApiToken:
    revoked = r["revoked_at"]
    return ApiToken(
        r["token_id"],
        r["role"],
        r["name"],
        r["token_hash"],
        _utc(r["created_at"]),
        _utc(revoked) if revoked is not None else None,
    )


class PostgresAuditMixin:
    """Needs the host store's ``pool()`` and ``where()``-style filters."""

    _audit_lock: asyncio.Lock | None = None

    if TYPE_CHECKING:  # provided by PostgresStore
        head_signer: HeadSigner | None

        def pool(self) -> asyncpg.Pool: ...

        def _where(self, flt: EventFilter | None, first: int = 1) -> tuple[str, list[Any]]: ...

        def _stored(self, record: asyncpg.Record) -> Any: ...

        def _partition_dropped(self, name: str) -> None: ...

    def _lock(self) -> asyncio.Lock:
        if self._audit_lock is None:
            self._audit_lock = asyncio.Lock()
        return self._audit_lock

    # -- reads -------------------------------------------------------------------------

    async def snapshot(self) -> LogSnapshot:
        """Heads and ``max_seq`` in one snapshot. The writers assign ``seq`` under a
        shared lock at commit time, so every record with ``seq <= max_seq`` is
        committed and visible: the cut is exact even with several nodes writing."""
        async with (
            self.pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            max_seq = await conn.fetchval(f"SELECT COALESCE(max(seq), 0) FROM {EVENTS}")
            rows = await conn.fetch(
                "SELECT chain_id, chain_seq, hash, signature, updated_at, ed25519 "
                "FROM chain_heads ORDER BY started_at, chain_id"
            )
        heads = [ChainHead(r[0], r[1], r[2], r[3], _utc(r[4]), r[5]) for r in rows]
        return LogSnapshot(heads, max_seq)

    async def iter_rows(
        self, flt: EventFilter | None = None, *, max_seq: int | None = None, batch: int = 5000
    ) -> AsyncIterator[list[tuple[object, ...]]]:
        clause, args = self._where(flt)
        if max_seq is not None:
            args.append(max_seq)
            clause += (" AND " if clause else " WHERE ") + f"seq <= ${len(args)}"
        query = f"SELECT {EXPORT_SELECT} FROM {EVENTS}{clause} ORDER BY seq"
        # copy_rows is closed inside the transaction even when the caller stops early
        async with (
            self.pool().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
            contextlib.aclosing(copy_rows(conn, query, args, batch)) as batches,
        ):
            async for rows in batches:
                yield rows

    async def purge_checkpoints(self) -> list[PurgeCheckpoint]:
        rows = await self.pool().fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM purge_checkpoints ORDER BY chain_id, first_seq"
        )
        return [_checkpoint(r) for r in rows]

    async def erasures(self) -> list[Erasure]:
        rows = await self.pool().fetch(
            "SELECT seq, chain_id, chain_seq, hash, fields_digest, signature, erased_at "
            "FROM erasures ORDER BY seq"
        )
        return [Erasure(r[0], r[1], r[2], r[3], r[4], r[5], _utc(r[6])) for r in rows]

    # -- retention -----------------------------------------------------------------------

    async def purge(
        self, site_id: str, before: datetime, plan: CheckpointPlanner, *, batch: int = 5000
    ) -> int:
        total = 0
        touched: set[str] = set()
        async with self._lock(), self.pool().acquire() as conn:
            # whole months that ended before the cutoff (and before today: the writers
            # of every node expect this month's and later partitions to exist)
            ended = min(before, datetime.now(UTC))
            for month, name in sorted((await existing_partitions(conn)).items()):
                if month_range(month)[1] <= ended:
                    total += await self._drop_partition(conn, month, name, site_id, plan, batch)
            while True:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", PURGE_LOCK)
                    rows = await conn.fetch(
                        "SELECT seq, chain_id, chain_seq, hash, tableoid::regclass::text "
                        f"FROM {EVENTS} WHERE site_id = $1 AND created_at < $2 "
                        "ORDER BY seq LIMIT $3",
                        site_id,
                        before,
                        batch,
                    )
                    if rows:
                        await self._checkpoint_batch(conn, rows, plan)
                        await conn.execute(
                            f"DELETE FROM {EVENTS} WHERE created_at < $2 AND seq = ANY($1)",
                            [r[0] for r in rows],
                            before,
                        )
                touched.update(r[4] for r in rows)
                total += len(rows)
                if len(rows) < batch:
                    break
            await self._vacuum(conn, touched)
        return total

    async def _drop_partition(
        self,
        conn: asyncpg.Connection,
        month: tuple[int, int],
        name: str,
        site_id: str,
        plan: CheckpointPlanner,
        n: int,
    ) -> int:
        """Drop partition ``name`` when it holds only ``site_id``'s records (else 0)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PURGE_LOCK)
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            other = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {name} WHERE site_id <> $1)", site_id
            )
            if other:
                return 0
            count, last = 0, 0
            while rows := await conn.fetch(
                f"SELECT seq, chain_id, chain_seq, hash FROM {name} WHERE seq > $1 "
                "ORDER BY seq LIMIT $2",
                last,
                n,
            ):
                await self._checkpoint_batch(conn, rows, plan)
                count += len(rows)
                last = rows[-1][0]
            await conn.execute(f"DROP TABLE {name}")
            start, end = month_range(month)  # rollups: a trigger does not see DROP
            await conn.execute(rollups.MONTH_DELETE, site_id, start.date(), end.date())
        self._partition_dropped(name)
        return count

    async def _checkpoint_batch(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], plan: CheckpointPlanner
    ) -> None:
        """Checkpoints for deleting ``rows`` (seq, chain_id, chain_seq, hash, ...)."""
        chains = sorted({r[1] for r in rows})
        existing = [
            _checkpoint(r)
            for r in await conn.fetch(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM purge_checkpoints "
                "WHERE chain_id = ANY($1::text[])",
                chains,
            )
        ]
        upsert, remove = plan([(r[1], r[2], r[3]) for r in rows], existing)
        await conn.execute(
            "DELETE FROM erasures WHERE seq = ANY($1::bigint[])", [r[0] for r in rows]
        )
        if remove:
            await conn.executemany(
                "DELETE FROM purge_checkpoints WHERE chain_id = $1 AND first_seq = $2",
                [(c.chain_id, c.first_seq) for c in remove],
            )
        if upsert:
            await conn.executemany(
                _UPSERT_CHECKPOINT,
                [
                    (c.chain_id, c.first_seq, c.last_seq, c.last_hash, c.signature, c.purged_at)
                    for c in upsert
                ],
            )

    async def _vacuum(self, conn: asyncpg.Connection, partitions: set[str]) -> None:
        """Prune the old row versions of ``partitions`` (deleted or blanked rows)."""
        for name in sorted(partitions):
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await conn.execute(f"VACUUM {name}")

    # -- erasure -------------------------------------------------------------------------

    async def erase(self, consent_id: str, attest: Attester) -> int:
        async with self._lock(), self.pool().acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    f"SELECT *, tableoid::regclass::text AS partition FROM {EVENTS} "
                    "WHERE consent_id = $1 AND NOT erased ORDER BY seq FOR UPDATE",
                    consent_id,
                )
                proofs = [attest(self._stored(r)) for r in rows]
                await conn.execute(
                    f"UPDATE {EVENTS} SET ip_masked = '', user_agent = '', page_url = '', "
                    "erased = true WHERE consent_id = $1 AND seq = ANY($2::bigint[])",
                    consent_id,
                    [r["seq"] for r in rows],
                )
                await conn.executemany(
                    "INSERT INTO erasures (seq, chain_id, chain_seq, hash, fields_digest, "
                    "signature, erased_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT (seq) DO UPDATE SET chain_id = excluded.chain_id, "
                    "chain_seq = excluded.chain_seq, hash = excluded.hash, "
                    "fields_digest = excluded.fields_digest, signature = excluded.signature, "
                    "erased_at = excluded.erased_at",
                    [
                        (
                            p.seq,
                            p.chain_id,
                            p.chain_seq,
                            p.hash,
                            p.fields_digest,
                            p.signature,
                            p.erased_at,
                        )
                        for p in proofs
                    ],
                )
            if rows:
                await self._vacuum(conn, {r["partition"] for r in rows})
        return len(rows)

    # -- tokens and the action log ------------------------------------------------------

    async def add_token(self, token: ApiToken) -> None:
        await self.pool().execute(
            "INSERT INTO api_tokens (token_id, role, name, token_hash, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            token.token_id,
            token.role,
            token.name,
            token.token_hash,
            token.created_at,
        )

    async def get_token(self, token_id: str) -> ApiToken | None:
        row = await self.pool().fetchrow("SELECT * FROM api_tokens WHERE token_id = $1", token_id)
        return _token(row) if row is not None else None

    async def list_tokens(self) -> list[ApiToken]:
        rows = await self.pool().fetch("SELECT * FROM api_tokens ORDER BY created_at, token_id")
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: datetime) -> bool:
        status = await self.pool().execute(
            "UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
            at,
            token_id,
        )
        return status != "UPDATE 0"

    async def log_action(self, action: AuditAction) -> None:
        async with self.pool().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ACTIONS_LOCK)
            row = await conn.fetchrow("SELECT count, hash FROM action_head WHERE id = 1")
            link = link_action(row, action, self.head_signer)
            await conn.execute(
                "INSERT INTO audit_actions (at, actor, action, detail, prev_hash, hash) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                action.at,
                action.actor,
                action.action,
                action_detail_json(action.detail),
                link.prev_hash,
                link.hash,
            )
            await conn.execute(
                "INSERT INTO action_head (id, count, hash, signature, updated_at, ed25519) "
                "VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET "
                "count = excluded.count, hash = excluded.hash, "
                "signature = excluded.signature, updated_at = excluded.updated_at, "
                "ed25519 = excluded.ed25519",
                link.count,
                link.hash,
                link.signature,
                action.at,
                link.ed25519,
            )

    async def iter_actions(self) -> AsyncIterator[AuditAction]:
        async with self.pool().acquire() as conn, conn.transaction(readonly=True):
            async for r in conn.cursor(
                "SELECT id, at, actor, action, detail, prev_hash, hash FROM audit_actions "
                "ORDER BY id"
            ):
                yield AuditAction(_utc(r[1]), r[2], r[3], json.loads(r[4]), r[0], r[5], r[6])

    async def action_head(self) -> ActionHead | None:
        row = await self.pool().fetchrow(
            "SELECT count, hash, signature, updated_at, ed25519 FROM action_head WHERE id = 1"
        )
        return ActionHead(int(row[0]), row[1], row[2], _utc(row[3]), row[4]) if row else None
