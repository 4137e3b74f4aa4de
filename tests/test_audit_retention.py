"""Retention purge keeps the remaining chain verifiable; the server purges daily."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.app import create_app
from consentgate.audit.scheduler import purge_loop, stop
from consentgate.store import ConsentEvent
from tests.audit_support import fill_log, make_settings, run_cli, sql

pytestmark = pytest.mark.both_backends


def later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_purge_then_verify_passes(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 30)
    fill_log(settings, 10, start=30)  # a second server run: a second chain
    sites = dict(sql(settings, "SELECT site_id, COUNT(*) FROM events GROUP BY site_id"))
    assert run_cli(settings, "verify").exit_code == 0

    # beta keeps 30 days, alpha lifetime + 365: a month later only beta's records go,
    # from the middle of both chains (the sites' records interleave)
    dry = run_cli(settings, "purge", "--dry-run", "--now", later(31))
    assert f"beta: would delete {sites['beta']} record(s)" in dry.output
    assert "alpha: would delete 0 record(s)" in dry.output
    assert sql(settings, "SELECT COUNT(*) FROM events")[0][0] == sum(sites.values())
    result = run_cli(settings, "purge", "--now", later(31))
    assert result.exit_code == 0, result.output
    assert f"beta: deleted {sites['beta']} record(s)" in result.output
    assert sql(settings, "SELECT DISTINCT site_id FROM events") == [("alpha",)]
    assert sql(settings, "SELECT COUNT(*) FROM purge_checkpoints")[0][0] > 2
    verified = run_cli(settings, "verify")
    assert verified.exit_code == 0, verified.output
    assert f"{sites['beta']} purged under signed checkpoints" in verified.output

    # the kept part is still protected: deleting a kept record is caught
    kept = sql(settings, "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET 3")[0][0]
    backup = sql(settings, "SELECT * FROM events WHERE seq = ?", (kept,))[0]
    sql(settings, "DELETE FROM events WHERE seq = ?", (kept,))
    assert run_cli(settings, "verify").exit_code == 1
    sql(settings, f"INSERT INTO events VALUES ({', '.join('?' for _ in backup)})", backup)
    assert run_cli(settings, "verify").exit_code == 0

    # new records after a purge, then everything expires: one checkpoint per chain
    fill_log(settings, 6, start=40)
    assert run_cli(settings, "purge", "--now", later(2000)).exit_code == 0
    assert sql(settings, "SELECT COUNT(*) FROM events")[0][0] == 0
    heads = sql(settings, "SELECT COUNT(*) FROM chain_heads")[0][0]
    assert sql(settings, "SELECT COUNT(*) FROM purge_checkpoints")[0][0] == heads == 3
    final = run_cli(settings, "verify")
    assert final.exit_code == 0, final.output


def test_a_stretched_checkpoint_is_caught(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 12)
    assert run_cli(settings, "purge", "--now", later(31)).exit_code == 0
    first, last = sql(
        settings, "SELECT first_seq, last_seq FROM purge_checkpoints ORDER BY first_seq LIMIT 1"
    )[0]
    # hide the deletion of the next kept record by widening the checkpoint unsigned
    nxt = sql(settings, "SELECT seq, hash FROM events WHERE chain_seq = ?", (last + 1,))[0]
    sql(settings, "DELETE FROM events WHERE seq = ?", (nxt[0],))
    sql(
        settings,
        "UPDATE purge_checkpoints SET last_seq = ?, last_hash = ? WHERE first_seq = ?",
        (last + 1, nxt[1], first),
    )
    result = run_cli(settings, "verify")
    assert result.exit_code == 1 and "forged: purge checkpoint" in result.output


def test_purge_site_option(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 6)
    result = run_cli(settings, "purge", "--site", "gamma")
    assert result.exit_code == 2 and "no site 'gamma'" in result.output
    result = run_cli(settings, "purge", "--site", "alpha", "--now", later(2000))
    assert result.exit_code == 0 and "beta" not in result.output
    assert sql(settings, "SELECT DISTINCT site_id FROM events") == [("beta",)]


def test_the_server_purges_on_its_own(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 4)

    async def go() -> list[str]:
        app = create_app(settings)
        async with app.lifespan():
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert "consentgate-retention" in names
            store = app.runtime.store
            old = datetime.now(UTC) - timedelta(days=45)
            for i in range(3):
                await store.append(
                    ConsentEvent(
                        event_id=f"old-{i}",
                        consent_id=f"old-{i}",
                        site_id="beta",
                        event_type="initial",
                        method="reject_all",
                        created_at=old,
                        granted=frozenset({"necessary"}),
                        policy_version="1",
                    )
                )
            task = asyncio.create_task(purge_loop(store, settings, first_delay=0, interval=3600))
            try:
                for _ in range(2000):
                    if any([a.action == "purge" async for a in store.iter_actions()]):
                        break
                    await asyncio.sleep(0.01)
            finally:
                await stop(task)
            return [a.actor async for a in store.iter_actions() if a.action == "purge"]

    assert asyncio.run(go()) == ["scheduler"]
    assert sql(settings, "SELECT COUNT(*) FROM events WHERE event_id LIKE 'old-%'")[0][0] == 0
    assert sql(settings, "SELECT COUNT(*) FROM events")[0][0] > 0
    assert run_cli(settings, "verify").exit_code == 0
