"""Durable consent writes with several nodes: SQLite beside PostgreSQL in one run.

Three measurements, each against every ``--database`` given:

* ``store``: P processes ("nodes"), each with its own store and C concurrent
  ``append`` callers, for T seconds: acknowledged (durable) consents per second.
* ``http``: N real ``consentgate serve`` nodes on the database, loaded with ``wrk``
  (one wrk per node, fresh visitor per request): acknowledged ``201`` per second.
* ``raw`` (PostgreSQL only), the database's own ceiling next to ours: ``pgbench``
  with one single-row INSERT per transaction (commit/fsync bound) and asyncpg
  ``COPY`` of 1,000-row batches per transaction (no hashing, no HTTP).

Example (what bench/README.md reports)::

    python3 bench/consent_nodes.py --seconds 5 \\
        --database sqlite:////tmp/cg-bench/consent.db \\
        --database postgresql://postgres@127.0.0.1:5432/cg_bench

PostgreSQL databases are created if missing and emptied before each measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import httpx2 as httpx  # noqa: E402

from consentgate.chain import HeadSigner  # noqa: E402
from consentgate.consent import CATEGORIES  # noqa: E402
from consentgate.store import ConsentEvent, open_store  # noqa: E402

KEYS = ["bench-key-0123456789abcdef0123456789"]
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120 Safari/537.36"
)
WRK_LUA = f"""
wrk.method = "POST"
wrk.body = '{{"method": "accept_all", "page_url": "https://shop.example/cart", "language": "en"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "{UA}"
"""


def event() -> ConsentEvent:
    return ConsentEvent(
        event_id=secrets.token_hex(16),
        consent_id=secrets.token_urlsafe(16),
        site_id="demo",
        event_type="initial",
        method="accept_all",
        created_at=datetime.now(UTC),
        granted=frozenset(CATEGORIES),
        policy_version="1",
        banner_hash="sha256:" + "ab" * 16,
        language="en",
        page_url="https://shop.example/cart",
        region="DE",
        regime="opt-in",
        ip_masked="203.0.113.0",
        user_agent=UA,
    )


# -- databases -----------------------------------------------------------------------


def reset(url: str) -> None:
    """An empty log at ``url``."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return

    async def go() -> None:
        base, name = url.rsplit("/", 1)
        admin = await asyncpg.connect(base + "/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    asyncio.run(go())


def kind(url: str) -> str:
    return "SQLite" if url.startswith("sqlite") else "PostgreSQL"


# -- store -----------------------------------------------------------------------------


async def _store_node(url: str, clients: int, seconds: float) -> tuple[int, int]:
    store = open_store(url, head_signer=HeadSigner(KEYS))
    await store.open()
    done = 0
    end = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await store.append(event())
            done += 1

    await asyncio.gather(*(caller() for _ in range(clients)))
    commits = int(getattr(store, "commits", 0))
    await store.close()
    return done, commits


def _store_process(url: str, clients: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_store_node(url, clients, seconds)))


def bench_store(url: str, nodes: int, clients: int, seconds: float) -> tuple[float, float]:
    """(durable consents/s, mean events per commit)."""
    reset(url)
    asyncio.run(_store_node(url, 1, 0.01))  # migrate once
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [
        mp.Process(target=_store_process, args=(url, clients, seconds, out)) for _ in range(nodes)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    commits = sum(r[1] for r in results)
    return done / seconds, done / max(commits, 1)


# -- http ------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_nodes(url: str, nodes: int, workers: int = 1) -> Iterator[list[str]]:
    procs: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["CONSENTGATE_SECRET_KEYS"] = ",".join(KEYS)
    env["PYTHONPATH"] = str(REPO)
    data = tempfile.mkdtemp(prefix="cg-bench-")
    try:
        for _ in range(nodes):
            port = _free_port()
            cmd = [sys.executable, "-m", "consentgate", "serve", "--port", str(port)]
            cmd += ["--database", url, "--data-dir", data, "--workers", str(workers)]
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            _wait(base + "/_consent/healthz")
        yield bases
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def bench_http(
    url: str, nodes: int, seconds: float, connections: int, workers: int = 1
) -> tuple[float, int]:
    """(acknowledged consents/s summed over nodes, non-2xx responses)."""
    reset(url)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_LUA)
        script = fh.name
    try:
        with serve_nodes(url, nodes, workers) as bases:
            runs = [
                subprocess.Popen(
                    [
                        *("wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", script),
                        base + "/_consent/api/consent",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for base in bases
            ]
            outputs = [r.communicate()[0] for r in runs]
    finally:
        os.unlink(script)
    rate = 0.0
    errors = 0
    for out in outputs:
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors += int(bad.group(1)) if bad else 0
        rate += (total - (int(bad.group(1)) if bad else 0)) / seconds
    return rate, errors


# -- raw PostgreSQL ceilings -----------------------------------------------------------

RAW_TABLE = """
CREATE TABLE raw_events (
    seq bigserial PRIMARY KEY, event_id text, consent_id text, site_id text,
    created_at timestamptz, granted smallint, user_agent text, hash text
)"""


def bench_pgbench(url: str, seconds: float, clients: int) -> float:
    """pgbench: one single-row INSERT per transaction (each commit waits for fsync)."""
    reset(url)
    host = re.match(r"postgres(?:ql)?://(?:([^@:]+)@)?([^:/]+):?(\d*)/(.+)", url)
    assert host, url
    user, hostname, port, name = host.groups()

    async def create() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute(RAW_TABLE)
        await conn.close()

    asyncio.run(create())
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(
            "INSERT INTO raw_events (event_id, consent_id, site_id, created_at, granted, "
            "user_agent, hash) VALUES (md5(random()::text), md5(random()::text), 'demo', "
            f"now(), 31, '{UA}', md5(random()::text) || md5(random()::text));\n"
        )
        script = fh.name
    try:
        out = subprocess.run(
            [
                *("pgbench", "-n", "-h", hostname, "-p", port or "5432", "-U", user or "postgres"),
                *(f"-c{clients}", "-j2", f"-T{int(seconds)}", "-f", script, name),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


async def _copy_ceiling(url: str, seconds: float, batch: int) -> float:
    conn = await asyncpg.connect(url, server_settings={"synchronous_commit": "on"})
    await conn.execute(RAW_TABLE)
    rows = [
        (
            secrets.token_hex(16),
            secrets.token_urlsafe(16),
            "demo",
            datetime.now(UTC),
            31,
            UA,
            "h" * 64,
        )
        for _ in range(batch)
    ]
    cols = ["event_id", "consent_id", "site_id", "created_at", "granted", "user_agent", "hash"]
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        async with conn.transaction():
            await conn.copy_records_to_table("raw_events", records=rows, columns=cols)
        done += batch
    await conn.close()
    return done / seconds


def bench_copy(url: str, seconds: float, batch: int = 1000) -> float:
    reset(url)
    return asyncio.run(_copy_ceiling(url, seconds, batch))


# -- export (PostgreSQL) ----------------------------------------------------------------

PG_FILL = """
INSERT INTO events (seq, event_id, consent_id, site_id, event_type, method, created_at,
    necessary, preferences, statistics, marketing, unclassified, policy_version,
    banner_hash, language, page_url, region, regime, gpc, ip_masked, user_agent,
    chain_id, chain_seq, prev_hash, hash)
SELECT x, 'ev' || x, 'cid' || (x * 7919) % 4000037, CASE x % 3 WHEN 0 THEN 'shop' ELSE 'blog' END,
    'initial', 'accept_all', now() - interval '1 second' * x / 20,
    true, x % 2 = 0, x % 3 = 0, x % 5 = 0, false, '3', 'sha256:' || md5(x::text), 'en',
    'https://shop.example/products/' || x % 50000, 'DE', 'opt-in', x % 13 = 0, '203.0.113.0',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
        || 'Chrome/' || 100 + x % 30 || '.0 Safari/537.36',
    'a3f1c2d4e5b60718293a4b5c6d7e8f90', x, md5(x::text) || md5(x::text), md5(x::text)
FROM generate_series(1::bigint, $1::bigint) AS x
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``cmd`` in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{cmd[:4]} failed: {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def bench_export(url: str, rows: int) -> list[tuple[str, float, float]]:
    """``consentgate export`` (CSV, JSONL) of ``rows`` records next to psql's
    ``COPY (SELECT ... ORDER BY seq) TO STDOUT WITH CSV``: (what, rows/s, peak MiB)."""
    reset(url)
    asyncio.run(_store_node(url, 1, 0.01))  # schema

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(PG_FILL, rows)
            await conn.execute("ANALYZE events")
        finally:
            await conn.close()

    asyncio.run(fill())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["CONSENTGATE_SECRET_KEYS"] = ",".join(KEYS)
    env["PYTHONPATH"] = str(REPO)
    out = Path(tempfile.mkdtemp(prefix="cg-export-"))
    results = []
    try:
        query = "SELECT * FROM events ORDER BY seq"
        cmd = ["psql", url, "-qc", f"\\copy ({query}) TO '{out / 'copy.csv'}' WITH CSV HEADER"]
        wall, rss = _timed(cmd, env)
        results.append(("psql COPY ... TO STDOUT (anchor)", rows / wall, rss))
        for fmt in ("csv", "jsonl"):
            cmd = [sys.executable, "-m", "consentgate", "export", "--database", url]
            cmd += ["--format", fmt, "-o", str(out / f"log.{fmt}")]
            wall, rss = _timed(cmd, env)
            results.append((f"consentgate export --format {fmt}", rows / wall, rss))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return results


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", action="append", required=True, help="repeatable")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=256, help="concurrent appends per node")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections per node")
    parser.add_argument("--skip", action="append", default=[], help="store|http|raw|export")
    parser.add_argument("--export-rows", type=int, default=500_000)
    args = parser.parse_args()
    lines = ["| database | what | nodes | consents/s | note |", "|---|---|---|---|---|"]

    def row(url: str, what: str, nodes: object, rate: float, note: str = "") -> None:
        lines.append(f"| {kind(url)} | {what} | {nodes} | {rate:,.0f} | {note} |")
        print(lines[-1], flush=True)

    print("\n".join(lines), flush=True)
    for url in args.database:
        if "store" not in args.skip:
            for nodes in (1, 2):
                rate, per_commit = bench_store(url, nodes, args.clients, args.seconds)
                row(url, "store.append", nodes, rate, f"{per_commit:.0f} events/commit")
        if "http" not in args.skip:
            for nodes in (1, 2):
                rate, errors = bench_http(url, nodes, args.seconds, args.connections)
                row(url, "HTTP POST (wrk)", nodes, rate, f"{errors} errors")
        if "raw" not in args.skip and not url.startswith("sqlite"):
            row(url, "pgbench 1-row INSERT/commit", "-", bench_pgbench(url, args.seconds, 32))
            row(url, "asyncpg COPY 1000 rows/commit", "-", bench_copy(url, args.seconds))
        if "export" not in args.skip and not url.startswith("sqlite"):
            for what, rate, rss in bench_export(url, args.export_rows):
                lines.append(
                    f"| {kind(url)} | {what} | - | {rate:,.0f} rows/s | peak RSS {rss:.0f} MiB |"
                )
                print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
