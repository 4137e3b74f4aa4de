"""Several consentgate nodes on one PostgreSQL consent log.

Two real ``consentgate serve`` processes share only the secret keys (environment)
and the database URL. Under concurrent load one node is killed with SIGKILL: every
consent a node acknowledged (201) must be in the log, and every chain segment must
still verify (each node is its own segment; the killed one ends at its last
committed, signed head).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx2 as httpx
import pytest

from tests import support

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KEYS = "node-shared-key-newest-0123456789,node-shared-key-older-0123456789"
API = "/_consent/api/consent"


async def load(
    base: str, acked: list[str], stop: asyncio.Event, clients: int = 8
) -> tuple[int, int]:
    """POST consents from ``clients`` concurrent clients until ``stop``; the consent id
    of every 201 goes to ``acked``. Returns (acknowledged, failed)."""
    failed = 0

    async def one_client() -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            while not stop.is_set():
                client.cookies.clear()  # every POST is a new visitor: a new consent id
                try:
                    r = await client.post(API, json={"method": "accept_all"})
                except httpx.HTTPError:
                    failed += 1
                    await asyncio.sleep(0.01)
                    continue
                if r.status_code == 201:
                    acked.append(r.json()["consent_id"])
                else:
                    failed += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return len(acked), failed


async def wait_for(predicate: object, timeout: float = 60) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_two_nodes_one_killed_mid_load_lose_no_acknowledged_consent(
    tmp_path: Path,
) -> None:
    with support.pg_database() as url:
        env = {"CONSENTGATE_SECRET_KEYS": KEYS}
        args = ("--database", url)
        with (
            support.consentgate_server(*args, "--data-dir", str(tmp_path / "a"), env=env) as (
                base_a,
                _,
            ),
            support.consentgate_server(*args, "--data-dir", str(tmp_path / "b"), env=env) as (
                base_b,
                proc_b,
            ),
        ):
            acked_a: list[str] = []
            acked_b: list[str] = []
            stop = asyncio.Event()
            runs = [
                asyncio.create_task(load(base_a, acked_a, stop)),
                asyncio.create_task(load(base_b, acked_b, stop)),
            ]
            await wait_for(lambda: len(acked_a) >= 200 and len(acked_b) >= 200)
            os.kill(proc_b.pid, signal.SIGKILL)  # mid-load: requests are in flight
            proc_b.wait(10)
            await wait_for(lambda: len(acked_a) >= 600)
            stop.set()
            (n_a, _), (n_b, failed_b) = await asyncio.gather(*runs)
            assert failed_b >= 1  # the killed node's clients saw it die
            assert n_a >= 600 and n_b >= 200
            # the survivor still serves and records
            async with httpx.AsyncClient(base_url=base_a) as client:
                r = await client.post(API, json={"method": "reject_all"})
                assert r.status_code == 201
                acked_a.append(r.json()["consent_id"])

        conn = await asyncpg.connect(url)
        try:
            stored = {r[0] for r in await conn.fetch("SELECT consent_id FROM events")}
        finally:
            await conn.close()
        acknowledged = set(acked_a) | set(acked_b)
        assert len(acknowledged) == len(acked_a) + len(acked_b)  # one new consent per POST
        assert acknowledged <= stored  # no acknowledged record lost
        segments = await support.walk_chains(url, KEYS.split(","))
        assert len(segments) >= 2  # each node wrote its own chain segment
        assert sum(segments.values()) == len(stored)
        verified = subprocess.run(
            [sys.executable, "-m", "consentgate", "verify", "--database", url],
            env=support.cli_env({"CONSENTGATE_SECRET_KEYS": KEYS}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"{len(stored)} records" in verified.stdout
