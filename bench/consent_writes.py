"""Benchmark: acknowledged (durable) consents per second through the real HTTP API.

Starts a real ``consentgate serve`` (uvicorn; once with one worker and once with
one worker per core unless --workers says otherwise) on loopback, drives it with
CLIENTS concurrent keep-alive connections for SECONDS, and reports acknowledged
consents/s with p50/p99 latency. In the same run it measures the raw ceiling of the
same SQLite schema: ``sqlite3`` ``executemany`` in one process (WAL,
synchronous=FULL), committing batches of CLIENTS rows, with the
hash chain computed as the server does, and once more as one big transaction.

    python3 bench/consent_writes.py --seconds 10 --clients 64
    python3 bench/consent_writes.py --database postgresql://postgres@127.0.0.1/test --nodes 2

With ``--database postgresql://...`` the same run also serves that database, with one
node and with ``--nodes`` nodes sharing it (SQLite is always measured first, one node).

The load generator is a lean asyncio HTTP/1.1 client (uvloop when installed) in
its own process; it shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from consentgate.chain import ChainState  # noqa: E402
from consentgate.store import ConsentEvent  # noqa: E402
from consentgate.store.records import event_values  # noqa: E402
from consentgate.store.sqlite import _INSERT, _UPSERT_HEAD, MIGRATIONS  # noqa: E402

BODY = json.dumps({"granted": ["statistics"], "method": "custom", "language": "en"}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- load generator ------------------------------------------------------------------


async def client_loop(port: int, stop_at: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /_consent/api/consent HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nUser-Agent: bench/1.0\r\n"
        b"Referer: http://127.0.0.1/page?x=1\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
    )
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 201"):
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


async def drive(
    ports: list[int], clients: int, seconds: float
) -> tuple[list[float], list[str], float]:
    """``clients`` connections spread evenly over ``ports`` (one per node)."""
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(client_loop(ports[i % len(ports)], stop_at, latencies, errors) for i in range(clients))
    )
    return latencies, errors, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (Linux /proc; the
    ``--workers`` processes are children), to report CPU per consent independently
    of what else runs on the machine."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_load(
    ports: list[int], clients: int, seconds: float, server_pids: list[int]
) -> dict[str, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(drive(ports, min(clients, 8), 1.0))  # warm-up, not counted
    server_cpu = sum(cpu_seconds(pid) for pid in server_pids)
    own_cpu = sum(os.times()[:2])
    latencies, errors, elapsed = asyncio.run(drive(ports, clients, seconds))
    server_cpu = sum(cpu_seconds(pid) for pid in server_pids) - server_cpu
    own_cpu = sum(os.times()[:2]) - own_cpu
    latencies.sort()
    n = len(latencies)
    return {
        "acknowledged": n,
        "errors": len(errors),
        "per_second": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "server_cpu_us": server_cpu / n * 1e6 if n else 0.0,
        "server_cpu_share": server_cpu / elapsed,
        "client_cpu_us": own_cpu / n * 1e6 if n else 0.0,
    }


# -- HTTP floor: the same uvicorn answering 201 from memory ---------------------------

FLOOR_APP = """
import uvicorn
BODY = b'{"consent_id":"x"}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False,
            lifespan="off")
"""


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(proc.stderr.read().decode() if proc.stderr else "") from None
            time.sleep(0.1)


def http_floor(clients: int, seconds: float) -> dict[str, float]:
    port = free_port()
    code = FLOOR_APP.replace("PORT", str(port))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        return run_load([port], clients, seconds, [proc.pid])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# -- raw SQLite ceiling --------------------------------------------------------------


def make_event(i: int) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"bench-{i}-{os.urandom(8).hex()}",
        consent_id=os.urandom(16).hex(),
        site_id="demo",
        event_type="initial",
        method="custom",
        created_at=datetime.now(UTC),
        granted=frozenset({"necessary", "statistics"}),
        policy_version="1",
        language="en",
        page_url="http://127.0.0.1/page",
        ip_masked="127.0.0.0",
        user_agent="bench/1.0",
    )


def raw_ceiling(path: Path, batch: int, seconds: float) -> float:
    """Rows/s: build event + chain link + executemany + head upsert + COMMIT per batch."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for _, script in MIGRATIONS:
        conn.executescript(script)
    chain = ChainState()
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        rows = []
        for i in range(batch):
            event = make_event(done + i)
            rows.append(event_values(event, chain.chain_id, *chain.advance(event)))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        conn.execute(
            _UPSERT_HEAD, (chain.chain_id, chain.chain_seq, chain.prev_hash, "", "now", "")
        )
        conn.execute("COMMIT")
        done += batch
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


# -- main ----------------------------------------------------------------------------


def log_count(database: str, data_dir: Path) -> int:
    """Records in the log (SQLite file in ``data_dir`` or the PostgreSQL database)."""
    if not database.startswith("postgres"):
        path = data_dir / "consent.db"
        if not path.exists():
            return 0
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            conn.close()
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(database)
        try:
            exists = await conn.fetchval("SELECT to_regclass('events') IS NOT NULL")
            return int(await conn.fetchval("SELECT count(*) FROM events")) if exists else 0
        finally:
            await conn.close()

    return asyncio.run(count())


def serve_and_load(
    database: str, nodes: int, workers: int, clients: int, seconds: float, tmp: str
) -> tuple[dict[str, float], int]:
    """``nodes`` real servers on ``database`` (each with ``workers``), loaded together.
    Returns the load figures and how many records the log gained."""
    data_dir = Path(tmp) / f"data-{abs(hash(database))}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["PYTHONPATH"] = str(REPO)
    env["CONSENTGATE_SECRET_KEYS"] = "bench-shared-key-0123456789abcdef"  # nodes share it
    before = log_count(database, data_dir)
    servers: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for _ in range(nodes):
            port = free_port()
            cmd = [
                sys.executable, "-m", "consentgate", "serve", "--host", "127.0.0.1",
                "--port", str(port), "--data-dir", str(data_dir), "--workers", str(workers),
            ]  # fmt: skip
            if database.startswith("postgres"):
                cmd += ["--database", database]
            servers.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
            ports.append(port)
            wait_port(port, servers[-1])
        http = run_load(ports, clients, seconds, [s.pid for s in servers])
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(30)
    return http, log_count(database, data_dir) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration (max 60)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="worker processes per server; several values run one after the other "
        "(default: 1 and one per core)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="servers on the same database")
    parser.add_argument(
        "--database",
        help="also run against this database URL (postgresql://...), beside SQLite",
    )
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), 60.0)
    databases = ["sqlite"] + ([args.database] if args.database else [])

    results: list[tuple[str, int, int, dict[str, float], int]] = []
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        for database in databases:
            # SQLite is one file on one machine: one node; PostgreSQL: --nodes nodes
            for nodes in sorted({1, args.nodes if database != "sqlite" else 1}):
                for workers in args.workers:
                    http, stored = serve_and_load(
                        database, nodes, workers, args.clients, seconds, tmp
                    )
                    results.append((database, nodes, workers, http, stored))
        floor = http_floor(args.clients, seconds)
        raw_batch = raw_ceiling(Path(tmp) / "raw.db", args.clients, seconds)
        raw_big = raw_ceiling(Path(tmp) / "raw-big.db", 20000, min(seconds, 5.0))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{args.clients} keep-alive clients for {seconds:.0f}s, spread over the nodes")
    for database, nodes, workers, http, stored in results:
        name = "SQLite (WAL, synchronous=FULL)" if database == "sqlite" else "PostgreSQL"
        print(f"consentgate serve x{nodes} --workers {workers}, {name}:")
        print(f"  acknowledged consents/s : {http['per_second']:8.0f}   "
              f"(p50 {http['p50_ms']:.1f} ms, p99 {http['p99_ms']:.1f} ms, "
              f"{http['acknowledged']:.0f} acknowledged, {http['errors']:.0f} errors, "
              f"{stored} new in the log)")  # fmt: skip
        print(f"  server CPU per consent    : {http['server_cpu_us']:8.0f} us "
              f"(servers used {http['server_cpu_share']:.2f} cores; load generator "
              f"{http['client_cpu_us']:.0f} us per consent)")  # fmt: skip
    print(f"uvicorn 201 from memory     : {floor['per_second']:8.0f} req/s  "
          f"(p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms; server CPU "
          f"{floor['server_cpu_us']:.0f} us per request, {floor['server_cpu_share']:.2f} cores)"
          )  # fmt: skip
    print(
        f"raw SQLite, batches of {args.clients:<4}  : {raw_batch:8.0f} rows/s "
        "(same schema + chain, executemany, one COMMIT per batch)"
    )
    print(f"raw SQLite, one big tx      : {raw_big:8.0f} rows/s (batches of 20000)")
    for _, _, _, http, stored in results:
        if stored < http["acknowledged"]:
            raise SystemExit("FAIL: fewer records in the log than acknowledged")


if __name__ == "__main__":
    main()
