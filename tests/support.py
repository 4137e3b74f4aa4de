"""Helpers shared by the test tiers: free ports, real `consentgate serve` processes, and
the browser tests' Chromium and page helpers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2 as httpx

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
# ../shared next to the checkout; worktrees under /work/wt/<name> find it one level up.
SHARED = next(
    (p / "shared" for p in REPO.parents if (p / "shared" / "corpus").is_dir()),
    REPO.parent / "shared",
)
CORPUS = SHARED / "corpus"
SEEDS = SHARED / "seeds"


#: Headless Debian Chromium for the browser tests (never a downloaded browser).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # nothing the browser sends itself, past route interception (fetchLater, pings), can
    # leave the machine: every host but loopback is "not found"
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """Headless Debian Chromium through sync Playwright, for a module-scoped fixture (not a
    session one: sync Playwright keeps an event loop running in this thread while it is
    open, which would break later tests that call asyncio.run())."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def wait_until(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` in the page (works under a strict CSP, unlike wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        page.wait_for_timeout(50)


def settle(page: Page, quiet: float = 0.4, timeout: float = 10.0) -> None:
    """Wait until the page has loaded and no request was seen for ``quiet`` seconds
    (Playwright's "networkidle" never comes for some frames swapped in by the banner)."""
    page.wait_for_load_state("load")
    seen: list[float] = [time.monotonic()]

    def note(_: object) -> None:
        seen.append(time.monotonic())

    page.context.on("request", note)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() - seen[-1] < quiet and time.monotonic() < deadline:
            page.wait_for_timeout(50)
    finally:
        page.context.remove_listener("request", note)


def banner_button(page: Page, name: str) -> Any:
    """The banner's button with exactly this accessible name."""
    return page.locator("#consentgate").get_by_role("button", name=name, exact=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-3000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} not answering after {timeout}s: {last}")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


@contextlib.contextmanager
def consentgate_server(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m consentgate serve ARGS --port P` and yield (base_url, process)."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "consentgate",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    proc = subprocess.Popen(
        cmd, env=cli_env(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/_consent/healthz", proc=proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def static_site(page: str) -> ThreadingHTTPServer:
    """A foreign origin serving one page (script-tag mode, or an upstream) on a real
    loopback port: Chromium's local-network checks refuse a route-fulfilled page talking
    to loopback. ``shutdown()`` and ``server_close()`` it when done."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


#: The PostgreSQL server the tests use (trust auth on loopback; CI starts it).
PG_ADMIN_URL = os.environ.get("CONSENTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _in_thread(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a private event loop and thread, so sync helpers work from
    sync fixtures and tests whether or not a loop is running."""
    import asyncio
    import threading

    out: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(work()))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def _pg_admin(sql: str) -> None:
    """Run one statement on the admin database."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _in_thread(go)


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, empty database ``cg_test_<random>`` on the test server; dropped after."""
    import secrets

    name = f"cg_test_{secrets.token_hex(6)}"
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def walk_chains(url: str, keys: list[str]) -> dict[str, int]:
    """Recompute every chain segment of the log at ``url`` from its genesis and check
    its signed head (asserting); returns chain_id -> number of records."""
    from consentgate.chain import HeadSigner, canonical, genesis, link_hash
    from consentgate.store import StoredEvent, open_store

    signer = HeadSigner(keys)
    by_chain: dict[str, list[StoredEvent]] = {}
    async with open_store(url) as store:
        async for stored in store.iter_events():
            by_chain.setdefault(stored.chain_id, []).append(stored)
        heads = await store.chain_heads()
    assert {h.chain_id for h in heads} == set(by_chain)
    for head in heads:
        prev = genesis(head.chain_id)
        records = sorted(by_chain[head.chain_id], key=lambda s: s.chain_seq)
        for n, stored in enumerate(records, start=1):
            assert (stored.chain_seq, stored.prev_hash) == (n, prev)
            assert stored.hash == link_hash(prev, canonical(stored.event))
            prev = stored.hash
        assert (head.chain_seq, head.hash) == (len(records), prev)
        assert signer.verify(head.chain_id, head.chain_seq, head.hash, head.signature)
    return {c: len(r) for c, r in by_chain.items()}


_PG_BOOLS = "necessary|preferences|statistics|marketing|unclassified|gpc|erased"


def pg_sql(url: str, statement: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one SQLite-dialect statement of the tests' tamperer on PostgreSQL: ``?``
    placeholders, 0/1 booleans and ``PRAGMA table_info`` are translated."""
    import re

    import asyncpg

    if statement.startswith("PRAGMA table_info("):
        table = statement[len("PRAGMA table_info(") : -1]
        statement = (
            "SELECT ordinal_position - 1, column_name::text FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position"
        )
    count = iter(range(1, 1000))
    statement = re.sub(r"\?", lambda _: f"${next(count)}", statement)
    statement = re.sub(rf"\b1 - ({_PG_BOOLS})\b", r"(NOT \1)", statement)
    statement = re.sub(rf"\b({_PG_BOOLS}) = ([01])\b", r"\1 = \2::boolean", statement)

    async def go() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            prepared = await conn.prepare(statement)
            kinds = [t.name for t in prepared.get_parameters()]
            values = [
                bool(v) if kind == "bool" and isinstance(v, int) else v
                for kind, v in zip(kinds, args, strict=True)
            ]
            return [tuple(r) for r in await prepared.fetch(*values)]
        finally:
            await conn.close()

    return _in_thread(go)


def pg_all_rows(url: str) -> str:
    """Every row of every table of the database's public schema, as text."""
    tables = pg_sql(
        url,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    return "\n".join(
        str(row[0]) for (table,) in tables for row in pg_sql(url, f"SELECT t::text FROM {table} t")
    )
