"""Export throughput and peak memory: ``consentgate export`` (CSV and JSON Lines)
next to the ``sqlite3`` shell's own ``.mode csv`` dump of the same table, same run.

    python3 bench/export.py --rows 1000000 10000000 [--dir /tmp/cg-export-bench]

For each size it builds a consent log with the store's real schema (migrations of
``SQLiteStore``), fills it with direct SQL (a recursive CTE: realistic values, user
agents with commas so CSV quoting is exercised; the two secondary indexes are dropped
to make filling fast -- a full export walks ``seq`` only), then runs, each in a fresh
process measured with ``os.wait4`` (wall time, peak RSS of that process):

* ``sqlite3 -csv -header DB 'SELECT <export columns> FROM events ORDER BY seq'``
* ``python -m consentgate export --database sqlite:///DB --format csv -o FILE``
* ``sqlite3 -json DB 'SELECT ...'`` (the shell's own JSON: the like-for-like anchor of
  the next line; the "vs sqlite3" column is always against the CSV dump)
* ``python -m consentgate export --database sqlite:///DB --format jsonl -o FILE``

Output files are deleted after each run; the databases are kept in ``--dir`` for
re-runs (``--clean`` removes them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from consentgate.audit.columns import EXPORT_COLUMNS  # noqa: E402
from consentgate.store.sqlite import SQLiteStore  # noqa: E402

KEYS = "bench-key-0123456789abcdef"
FILL = """
WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?)
INSERT INTO events (seq, event_id, consent_id, site_id, event_type, method, created_at,
    necessary, preferences, statistics, marketing, unclassified, policy_version,
    banner_hash, language, page_url, region, regime, gpc, ip_masked, user_agent,
    chain_id, chain_seq, prev_hash, hash, erased)
SELECT x,
    printf('ev%020d', x),
    printf('cid%019d', (x * 7919) % 4000037),
    CASE x % 3 WHEN 0 THEN 'shop' ELSE 'blog' END,
    CASE WHEN x % 7 = 0 THEN 'update' WHEN x % 11 = 0 THEN 'withdraw' ELSE 'initial' END,
    CASE x % 3 WHEN 0 THEN 'accept_all' WHEN 1 THEN 'reject_all' ELSE 'custom' END,
    strftime('%Y-%m-%dT%H:%M:%S', 1767225600 + x / 20, 'unixepoch')
        || printf('.%06dZ', (x * 37) % 1000000),
    1, x % 2, (x % 3) = 0, (x % 5) = 0, 0, '3',
    'sha256:' || lower(hex(randomblob(8))),
    CASE x % 4 WHEN 0 THEN 'de' WHEN 1 THEN 'fr' ELSE 'en' END,
    printf('https://shop.example/products/%d', x % 50000),
    CASE x % 5 WHEN 0 THEN 'DE' WHEN 1 THEN 'US-CA' WHEN 2 THEN 'FR' ELSE '' END,
    CASE x % 5 WHEN 1 THEN 'opt-out' ELSE 'opt-in' END,
    (x % 13) = 0,
    printf('203.0.%d.0', x % 256),
    printf('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
        || '(KHTML, like Gecko) Chrome/%d.0.%d.%d Safari/537.36', 100 + x % 30, x % 5000, x % 200),
    'a3f1c2d4e5b60718293a4b5c6d7e8f90',
    x,
    lower(hex(randomblob(32))),
    lower(hex(randomblob(32))),
    0
FROM c
"""


def fresh_log(path: Path, rows: int) -> sqlite3.Connection | None:
    """A connection to fill a new log at ``path`` by direct SQL (the store's own schema, WAL,
    no fsync, autocommit), or None when ``path`` already holds ``rows`` records (reused).
    Shared with bench/console.py."""
    if path.exists():
        conn = sqlite3.connect(path)
        have = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.close()
        if have == rows:
            return None
        path.unlink()

    async def migrate() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def build(path: Path, rows: int) -> float:
    """Create (or reuse) a log of ``rows`` records; returns seconds spent filling."""
    conn = fresh_log(path, rows)
    if conn is None:
        return 0.0
    started = time.perf_counter()
    conn.execute("DROP INDEX events_consent")
    conn.execute("DROP INDEX events_site_time")
    step = 1_000_000
    for first in range(1, rows + 1, step):
        conn.execute("BEGIN")
        conn.execute(FILL, (first, min(first + step - 1, rows)))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def warm(path: Path) -> None:
    """Read the database file once so it sits in the page cache."""
    with path.open("rb") as fh:
        while fh.read(1 << 24):
            pass


def measure(cmd: list[str], stdout: Path | None, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh process: (wall seconds, peak RSS MiB)."""
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if stdout:
        out.close()  # type: ignore[union-attr]
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed: {err}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cg-export-bench"))
    ap.add_argument("--clean", action="store_true", help="Delete the databases afterwards.")
    args = ap.parse_args()
    if shutil.which("sqlite3") is None:
        raise SystemExit("needs the sqlite3 shell: apt-get install -y sqlite3")
    args.dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONSENTGATE_SECRET_KEYS": KEYS, "PYTHONPATH": str(REPO)}
    version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, sqlite3 shell {version.split()[0]}"
    )
    print("| rows | tool | seconds | rows/s | vs sqlite3 | peak RSS MiB | output MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    columns = ", ".join(EXPORT_COLUMNS)
    for rows in args.rows:
        db = args.dir / f"log-{rows}.db"
        fill = build(db, rows)
        if fill:
            print(f"<!-- filled {rows:,} rows in {fill:.0f} s -->", flush=True)
        warm(db)  # same page cache for every tool: none of them pays the first disk read
        out = args.dir / "out"
        runs = [
            (
                "sqlite3 .mode csv",
                [
                    "sqlite3",
                    "-csv",
                    "-header",
                    str(db),
                    f"SELECT {columns} FROM events ORDER BY seq",
                ],
                out,
            ),
            (
                "consentgate export csv",
                [
                    sys.executable,
                    "-m",
                    "consentgate",
                    "export",
                    "--database",
                    f"sqlite:///{db}",
                    "--format",
                    "csv",
                    "-o",
                    str(out),
                ],
                None,
            ),
            (
                "sqlite3 .mode json (JSON anchor)",
                ["sqlite3", "-json", str(db), f"SELECT {columns} FROM events ORDER BY seq"],
                out,
            ),
            (
                "consentgate export jsonl",
                [
                    sys.executable,
                    "-m",
                    "consentgate",
                    "export",
                    "--database",
                    f"sqlite:///{db}",
                    "--format",
                    "jsonl",
                    "-o",
                    str(out),
                ],
                None,
            ),
        ]
        base_rate = 0.0
        for name, cmd, stdout in runs:
            wall, rss = measure(cmd, stdout, env)
            size = out.stat().st_size / 2**20
            out.unlink()
            manifest = Path(str(out) + ".manifest.json")
            if manifest.exists():
                manifest.unlink()
            rate = rows / wall
            base_rate = base_rate or rate
            print(
                f"| {rows:,} | {name} | {wall:.1f} | {rate:,.0f} | {rate / base_rate:.2f}x "
                f"| {rss:.0f} | {size:,.0f} |",
                flush=True,
            )
        if args.clean:
            db.unlink()


if __name__ == "__main__":
    main()
