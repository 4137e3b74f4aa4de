"""PostgreSQL schema: versioned migrations and monthly partitions of the event log.

Migrations run at :meth:`PostgresStore.open` under a session advisory lock, so
several nodes starting at once apply each step exactly once. Applied versions are
kept in ``consentgate_migrations``.

``events`` is range-partitioned by month on ``created_at``. Partitions are
named ``events_pYYYYMM``; :func:`ensure_partitions` creates the current
month plus :data:`MONTHS_AHEAD` months ahead at start-up, and the writer creates
any other month on demand before it inserts into it (under a transaction-level
advisory lock, so two nodes never race on the same ``CREATE TABLE``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from ..consent import CATEGORIES
from . import discovery, rollups

__all__ = [
    "EVENTS",
    "MIGRATIONS",
    "MONTHS_AHEAD",
    "ensure_partition",
    "ensure_partitions",
    "existing_partitions",
    "migrate",
    "month_of",
    "month_range",
    "partition_name",
]

EVENTS = "events"
#: Months of partitions created ahead of the current one.
MONTHS_AHEAD = 3
#: pg_advisory_lock keys (arbitrary constants, "cg" namespace).
MIGRATE_LOCK = 0x6367_0001
PARTITION_LOCK = 0x6367_0002
#: Held by a writer from taking its ``seq`` numbers until its commit: ``seq`` order is
#: commit order across all nodes, so "every seq <= max(seq) is visible" holds.
SEQ_LOCK = 0x6367_0003
PURGE_LOCK = 0x6367_0004
#: Held while an audit action is linked into the action chain and its head moved.
ACTIONS_LOCK = 0x6367_0005

_CATEGORY_COLUMNS = ",\n    ".join(f"{c} boolean NOT NULL" for c in CATEGORIES)

#: (version, description, SQL). Never edit an applied step: append a new one.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "partitioned event log, chain heads",
        f"""
CREATE SEQUENCE IF NOT EXISTS events_seq AS bigint;
CREATE TABLE {EVENTS} (
    seq bigint NOT NULL DEFAULT nextval('events_seq'),
    event_id text NOT NULL,
    consent_id text NOT NULL,
    site_id text NOT NULL,
    event_type text NOT NULL,
    method text NOT NULL,
    created_at timestamptz NOT NULL,
    {_CATEGORY_COLUMNS},
    policy_version text NOT NULL,
    banner_hash text NOT NULL DEFAULT '',
    language text NOT NULL DEFAULT '',
    page_url text NOT NULL DEFAULT '',
    region text NOT NULL DEFAULT '',
    regime text NOT NULL DEFAULT '',
    gpc boolean NOT NULL DEFAULT false,
    ip_masked text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    chain_id text NOT NULL,
    chain_seq bigint NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    erased boolean NOT NULL DEFAULT false,
    PRIMARY KEY (seq, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX {EVENTS}_consent ON {EVENTS} (consent_id, seq);
CREATE INDEX {EVENTS}_site ON {EVENTS} (site_id, created_at);
CREATE INDEX {EVENTS}_created ON {EVENTS} (created_at);
CREATE INDEX {EVENTS}_method ON {EVENTS} (method, created_at);
CREATE INDEX {EVENTS}_region ON {EVENTS} (region, created_at);
CREATE INDEX {EVENTS}_regime ON {EVENTS} (regime, created_at);
CREATE INDEX {EVENTS}_chain ON {EVENTS} (chain_id, chain_seq);
CREATE TABLE chain_heads (
    chain_id text PRIMARY KEY,
    chain_seq bigint NOT NULL,
    hash text NOT NULL,
    signature text NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
""",
    ),
    (
        2,
        "purge checkpoints, erasures, API tokens, action log",
        """
CREATE TABLE purge_checkpoints (
    chain_id text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    last_hash text NOT NULL,
    signature text NOT NULL,
    purged_at timestamptz NOT NULL,
    PRIMARY KEY (chain_id, first_seq)
);
CREATE TABLE erasures (
    seq bigint PRIMARY KEY,
    chain_id text NOT NULL,
    chain_seq bigint NOT NULL,
    hash text NOT NULL,
    fields_digest text NOT NULL,
    signature text NOT NULL,
    erased_at timestamptz NOT NULL
);
CREATE TABLE api_tokens (
    token_id text PRIMARY KEY,
    role text NOT NULL,
    name text NOT NULL DEFAULT '',
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE TABLE audit_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    detail text NOT NULL DEFAULT '{}'
);
""",
    ),
    (
        3,
        "the audit actions as a hash chain with a signed head",
        """
ALTER TABLE audit_actions ADD COLUMN prev_hash text NOT NULL DEFAULT '';
ALTER TABLE audit_actions ADD COLUMN hash text NOT NULL DEFAULT '';
CREATE TABLE action_head (
    id int PRIMARY KEY CHECK (id = 1),
    count bigint NOT NULL,
    hash text NOT NULL,
    signature text NOT NULL,
    updated_at timestamptz NOT NULL
);
-- a node still running older code cannot add unchained actions (fails loudly instead)
ALTER TABLE audit_actions ADD CONSTRAINT audit_actions_chained CHECK (hash <> '') NOT VALID;
""",
    ),
    (4, "daily rollups kept by the writers (the console's dashboard)", rollups.postgres_schema()),
    (5, "what the pages set and load, and its classification", discovery.postgres_schema()),
    (
        6,
        "chain heads and the action head also signed with the Ed25519 key pair",
        """
ALTER TABLE chain_heads ADD COLUMN ed25519 text NOT NULL DEFAULT '';
ALTER TABLE action_head ADD COLUMN ed25519 text NOT NULL DEFAULT '';
""",
    ),
)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS consentgate_migrations ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM consentgate_migrations")}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO consentgate_migrations (version, description) VALUES ($1, $2)",
                    version,
                    description,
                )
            applied.append(version)
        await ensure_partitions(conn, datetime.now(UTC))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)
    return applied


def month_of(when: datetime) -> tuple[int, int]:
    when = when.astimezone(UTC)
    return when.year, when.month


def _add_months(month: tuple[int, int], n: int) -> tuple[int, int]:
    index = month[0] * 12 + (month[1] - 1) + n
    return index // 12, index % 12 + 1


def month_range(month: tuple[int, int]) -> tuple[datetime, datetime]:
    """[start, end) of a month in UTC."""
    nxt = _add_months(month, 1)
    return (
        datetime(month[0], month[1], 1, tzinfo=UTC),
        datetime(nxt[0], nxt[1], 1, tzinfo=UTC),
    )


def partition_name(month: tuple[int, int]) -> str:
    return f"{EVENTS}_p{month[0]:04d}{month[1]:02d}"


async def existing_partitions(conn: asyncpg.Connection) -> dict[tuple[int, int], str]:
    """Month -> partition table name, for every partition of the event table."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass",
        EVENTS,
    )
    out: dict[tuple[int, int], str] = {}
    for (name,) in rows:
        suffix = name.removeprefix(f"{EVENTS}_p")
        if len(suffix) == 6 and suffix.isdigit():
            out[(int(suffix[:4]), int(suffix[4:]))] = name
    return out


async def ensure_partition(conn: asyncpg.Connection, month: tuple[int, int]) -> None:
    """Create the partition holding ``month`` if it does not exist yet."""
    start, end = month_range(month)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF {EVENTS} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


async def ensure_partitions(
    conn: asyncpg.Connection, now: datetime, ahead: int = MONTHS_AHEAD
) -> None:
    """The current month's partition and ``ahead`` more."""
    have = await existing_partitions(conn)
    current = month_of(now)
    for n in range(ahead + 1):
        month = _add_months(current, n)
        if month not in have:
            await ensure_partition(conn, month)
