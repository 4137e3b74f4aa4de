"""Benchmark: the console's dashboard against the log it summarizes.

Fills a consent log with ROWS records (default 10 M) spread over the last 120 days
by direct SQL (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL; realistic
values, chain columns filled but not a valid chain), builds the daily rollups with
the same back-fill the schema migration runs, then in the same run measures:

* **dashboard render**: ``GET /_consent/admin/dashboard`` through the real app
  (in-process ASGI, a signed-in session) for 7, 30 and 90 days: p50/p95 over
  RENDERS requests each; the page reads the rollups (``store.rollup_rows``);
* **full-scan GROUP BY**: the same figures (decisions per day and method, granted
  per category, by region) computed by ``GROUP BY`` over the 90 days of records,
  the anchor a dashboard without rollups would pay.

    python3 bench/console.py                          # 10 M rows, SQLite
    python3 bench/console.py --database postgresql://postgres@127.0.0.1/test
    python3 bench/console.py --rows 200000 --renders 20   # a quick sanity run

The SQLite file is kept in the temp directory and reused when it holds ROWS rows;
with ``--database`` the tables are dropped and refilled (use a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import httpx2 as httpx  # noqa: E402
from export import fresh_log  # noqa: E402  (bench/export.py, beside this script)

from consentgate.app import create_app  # noqa: E402
from consentgate.audit import tokens as tok  # noqa: E402
from consentgate.config import load_settings  # noqa: E402
from consentgate.console.session import COOKIE, SessionCodec  # noqa: E402
from consentgate.store import rollups  # noqa: E402
from consentgate.store.postgres_schema import ensure_partition, migrate  # noqa: E402

KEYS = "bench-key-0123456789abcdef"
DAYS = 120
REGIONS = ["DE", "FR", "US-CA", "GB", "IT", "ES", "NL", "PL", "SE", "US-NY", "BR", "JP", "KZ"]

# x -> a record; created_at spreads ROWS records evenly over DAYS days ending now
_SQLITE_FILL = """
WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?)
INSERT INTO events (seq, event_id, consent_id, site_id, event_type, method, created_at,
    necessary, preferences, statistics, marketing, unclassified, policy_version,
    banner_hash, language, page_url, region, regime, gpc, ip_masked, user_agent,
    chain_id, chain_seq, prev_hash, hash, erased)
SELECT x, printf('ev%012d', x), 'cid' || (x * 7919 % 4000037),
    CASE x % 4 WHEN 0 THEN 'blog' ELSE 'shop' END,
    CASE WHEN x % 7 = 0 THEN 'update' WHEN x % 11 = 0 THEN 'withdraw' ELSE 'initial' END,
    CASE WHEN x % 11 = 0 AND x % 7 <> 0 THEN 'withdraw'
         ELSE CASE x % 5 WHEN 0 THEN 'accept_all' WHEN 1 THEN 'reject_all' WHEN 2 THEN 'custom'
              WHEN 3 THEN 'close' ELSE 'gpc' END END,
    strftime('%Y-%m-%dT%H:%M:%S', ? + x * ?, 'unixepoch') || '.000000Z',
    1, x % 2, x % 3 = 0, x % 5 = 0, 0, '3', 'sha256:b',
    CASE x % 4 WHEN 0 THEN 'de' WHEN 1 THEN 'fr' ELSE 'en' END,
    'https://shop.example/p', {regions}, CASE x % 13 WHEN 2 THEN 'opt-out' ELSE 'opt-in' END,
    x % 13 = 0, '203.0.113.0', 'Mozilla/5.0', 'bench', x, 'p', 'h', 0
FROM c
"""
_PG_FILL = """
INSERT INTO events (seq, event_id, consent_id, site_id, event_type, method, created_at,
    necessary, preferences, statistics, marketing, unclassified, policy_version,
    banner_hash, language, page_url, region, regime, gpc, ip_masked, user_agent,
    chain_id, chain_seq, prev_hash, hash, erased)
SELECT x, 'ev' || lpad(x::text, 12, '0'), 'cid' || (x * 7919 % 4000037),
    CASE x % 4 WHEN 0 THEN 'blog' ELSE 'shop' END,
    CASE WHEN x % 7 = 0 THEN 'update' WHEN x % 11 = 0 THEN 'withdraw' ELSE 'initial' END,
    CASE WHEN x % 11 = 0 AND x % 7 <> 0 THEN 'withdraw'
         ELSE CASE x % 5 WHEN 0 THEN 'accept_all' WHEN 1 THEN 'reject_all' WHEN 2 THEN 'custom'
              WHEN 3 THEN 'close' ELSE 'gpc' END END,
    to_timestamp($3 + x * $4),
    true, x % 2 = 1, x % 3 = 0, x % 5 = 0, false, '3', 'sha256:b',
    CASE x % 4 WHEN 0 THEN 'de' WHEN 1 THEN 'fr' ELSE 'en' END,
    'https://shop.example/p', {regions}, CASE x % 13 WHEN 2 THEN 'opt-out' ELSE 'opt-in' END,
    x % 13 = 0, '203.0.113.0', 'Mozilla/5.0', 'bench', x, 'p', 'h', false
FROM generate_series($1::bigint, $2::bigint) AS x
"""
# the figures the dashboard shows, by scanning the records of 90 days
_SCAN = [
    "SELECT {day}, method, count(*) FROM events WHERE site_id = {p1} AND created_at >= {p2} "
    "AND event_type <> 'withdraw' GROUP BY 1, 2",
    "SELECT count(*), sum(gpc{i}), sum(preferences{i}), sum(statistics{i}), sum(marketing{i}) "
    "FROM events WHERE site_id = {p1} AND created_at >= {p2} AND event_type <> 'withdraw'",
    "SELECT region, event_type, count(*), sum(statistics{i}) FROM events "
    "WHERE site_id = {p1} AND created_at >= {p2} GROUP BY 1, 2",
    "SELECT language, event_type, count(*), sum(statistics{i}) FROM events "
    "WHERE site_id = {p1} AND created_at >= {p2} GROUP BY 1, 2",
]


def _regions_sql() -> str:
    whens = " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(REGIONS))
    return f"CASE x % {len(REGIONS) + 1} {whens} ELSE '' END"


def _span(rows: int) -> tuple[float, float]:
    """(start epoch, seconds between records): DAYS days ending now."""
    end = datetime.now(UTC)
    start = end - timedelta(days=DAYS)
    return start.timestamp(), (end - start).total_seconds() / rows


def fill_sqlite(path: Path, rows: int) -> float:
    conn = fresh_log(path, rows)
    if conn is None:
        return 0.0
    started = time.perf_counter()
    sql = _SQLITE_FILL.format(regions=_regions_sql())
    start, step = _span(rows)
    # the secondary indexes are built once at the end (event ids and chain positions
    # arrive in order, so their unique indexes only ever append)
    indexes = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for (create,) in indexes:
        conn.execute("DROP INDEX " + create.split()[2])
    for first in range(1, rows + 1, 1_000_000):
        conn.execute("BEGIN")
        conn.execute(sql, (first, min(first + 999_999, rows), start, step))
        conn.execute("COMMIT")
    for (create,) in indexes:
        conn.execute(create)
    conn.execute("BEGIN")
    conn.execute("DELETE FROM consent_rollups")
    conn.execute(rollups.sqlite_backfill())
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


async def fill_postgres(url: str, rows: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        for table in ("events", "chain_heads", "consent_rollups", "discovery", "classifications",
                      "purge_checkpoints", "erasures", "api_tokens", "audit_actions",
                      "action_head", "consentgate_migrations"):  # fmt: skip
            await conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        await conn.execute("DROP SEQUENCE IF EXISTS events_seq")
        await conn.execute("DROP FUNCTION IF EXISTS consent_rollups_delete() CASCADE")
        await migrate(conn)
        started = time.perf_counter()
        day = datetime.now(UTC) - timedelta(days=DAYS + 31)
        while day < datetime.now(UTC) + timedelta(days=31):
            await ensure_partition(conn, (day.year, day.month))
            day += timedelta(days=28)
        sql = _PG_FILL.format(regions=_regions_sql())
        start, step = _span(rows)
        for first in range(1, rows + 1, 1_000_000):
            await conn.execute(sql, first, min(first + 999_999, rows), start, step)
        await conn.execute(f"SELECT setval('events_seq', {rows})")
        await conn.execute("DELETE FROM consent_rollups")
        await conn.execute(rollups.postgres_backfill())
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE consent_rollups")
        return time.perf_counter() - started
    finally:
        await conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def renders(database: str, data_dir: Path, n: int) -> dict[int, list[float]]:
    config = data_dir.parent / "console-bench.toml"
    config.write_text('[[sites]]\nid = "shop"\n\n[[sites]]\nid = "blog"\n')
    settings = load_settings(
        config,
        environ={
            "CONSENTGATE_DATA_DIR": str(data_dir),
            "CONSENTGATE_SECRET_KEYS": KEYS,
            "CONSENTGATE_DATABASE": database,
        },
    )
    app = create_app(settings)
    out: dict[int, list[float]] = {}
    async with app.lifespan():
        record, _ = await tok.issue(app.runtime.store, "auditor", "bench")
        cookie = SessionCodec([KEYS]).dumps(SessionCodec([KEYS]).new(record.token_id))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            c.cookies.set(COOKIE, cookie, path="/_consent/admin")
            for days in (7, 30, 90):
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = await c.get(f"/_consent/admin/dashboard?site=shop&days={days}")
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200 and "total-decisions" in r.text, r.status_code
                out[days] = times
    return out


def scan_sqlite(path: Path, runs: int) -> list[float]:
    since = (datetime.now(UTC) - timedelta(days=89)).strftime("%Y-%m-%d")
    conn = sqlite3.connect(path)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for q in _SCAN:
            conn.execute(q.format(day="substr(created_at, 1, 10)", p1="?", p2="?", i=""),
                         ("shop", since)).fetchall()  # fmt: skip
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


async def scan_postgres(url: str, runs: int) -> list[float]:
    since = datetime.now(UTC) - timedelta(days=89)
    conn = await asyncpg.connect(url)
    times = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            for q in _SCAN:
                sql = q.format(day="created_at::date", p1="$1", p2="$2", i="::int")
                await conn.fetch(sql, "shop", since)
            times.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return times


def report(
    name: str, fill: float, rows: int, timing: dict[int, list[float]], scan: list[float]
) -> None:
    if fill:
        print(f"  filled {rows:,} rows and their rollups in {fill:.0f} s")
    for days, times in timing.items():
        print(
            f"  dashboard {days:>2} days : p50 {pct(times, 0.5) * 1000:7.1f} ms   "
            f"p95 {pct(times, 0.95) * 1000:7.1f} ms   ({len(times)} renders)"
        )
    print(
        f"  full-scan GROUP BY (90 days, same figures): median {statistics.median(scan):.2f} s "
        f"({len(scan)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--database", help="also run on this PostgreSQL database (it is wiped)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    tmp = Path(tempfile.gettempdir()) / "consentgate-bench-console"
    tmp.mkdir(exist_ok=True)
    db = tmp / f"console-{args.rows}.db"
    print(f"SQLite, {args.rows:,} records over {DAYS} days:")
    fill = fill_sqlite(db, args.rows)
    timing = asyncio.run(renders(f"sqlite:///{db}", tmp / "data", args.renders))
    report("sqlite", fill, args.rows, timing, scan_sqlite(db, args.scans))
    if args.database:
        print(f"PostgreSQL, {args.rows:,} records over {DAYS} days:")
        fill = asyncio.run(fill_postgres(args.database, args.rows))
        timing = asyncio.run(renders(args.database, tmp / "data", args.renders))
        report(
            "postgres",
            fill,
            args.rows,
            timing,
            asyncio.run(scan_postgres(args.database, args.scans)),
        )


if __name__ == "__main__":
    main()
