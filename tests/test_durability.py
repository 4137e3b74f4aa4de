"""Acknowledged means durable: 500 concurrent consents, `kill -9` mid-load, restart,
and every consent the server answered 201 for is in the log with an intact chain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from consentgate.chain import HeadSigner, canonical_row, genesis, link_hash
from consentgate.store.sqlite import SQLiteStore
from tests import support

pytestmark = pytest.mark.slow

TOTAL = 500
KILL_AFTER = 120


async def load_then_kill(base: str, proc: subprocess.Popen[bytes]) -> tuple[list[str], int]:
    acknowledged: list[str] = []
    failures = 0
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:

        async def one(i: int) -> None:
            nonlocal failures
            body = {"granted": ["statistics"] if i % 2 else [], "method": "custom"}
            try:
                r = await client.post(
                    "/_consent/api/consent", json=body, headers={"user-agent": f"load-{i}"}
                )
            except httpx.TransportError:
                failures += 1
                return
            assert r.status_code == 201, r.text
            acknowledged.append(r.json()["consent_id"])
            if len(acknowledged) == KILL_AFTER:
                os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no flush: like a crash

        await asyncio.gather(*(one(i) for i in range(TOTAL)))
    return acknowledged, failures


def export(data_dir: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "consentgate", "export", "--data-dir", str(data_dir)],
        env=support.cli_env(),
        capture_output=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def test_every_acknowledged_consent_survives_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with support.consentgate_server("--data-dir", str(data_dir)) as (base, proc):
        acknowledged, failures = asyncio.run(load_then_kill(base, proc))
        assert proc.wait(10) == -signal.SIGKILL
    assert len(acknowledged) >= KILL_AFTER
    assert failures > 0, "the kill must land while requests are in flight"
    assert len(acknowledged) + failures == TOTAL

    # restart on the same data dir: it opens, records, and opens a new chain segment
    with support.consentgate_server("--data-dir", str(data_dir)) as (base, _):
        after = httpx.post(base + "/_consent/api/consent", json={"method": "accept_all"})
        assert after.status_code == 201

    records = export(data_dir)
    in_log = {r["consent_id"] for r in records}
    missing = set(acknowledged) - in_log
    assert not missing, f"{len(missing)} acknowledged consents lost"
    assert after.json()["consent_id"] in in_log
    assert len({r["event_id"] for r in records}) == len(records)

    # the hash chain is intact in both segments and matches the signed heads
    segments: dict[str, list[dict]] = {}
    for r in records:
        segments.setdefault(r["chain_id"], []).append(r)
    assert len(segments) == 2
    for chain_id, seg in segments.items():
        prev = genesis(chain_id)
        for n, r in enumerate(sorted(seg, key=lambda r: r["chain_seq"]), start=1):
            assert r["chain_seq"] == n and r["prev_hash"] == prev
            assert link_hash(prev, canonical_row(r)) == r["hash"]
            prev = r["hash"]

    keys = (data_dir / "secret.key").read_text().strip().split(",")

    async def heads() -> list:
        async with SQLiteStore(data_dir / "consent.db") as store:
            return await store.chain_heads()

    signer = HeadSigner(keys)
    for head in asyncio.run(heads()):
        last = max(segments[head.chain_id], key=lambda r: r["chain_seq"])
        assert (head.chain_seq, head.hash) == (last["chain_seq"], last["hash"])
        assert signer.verify(head.chain_id, head.chain_seq, head.hash, head.signature)
