"""The consent log store. Tests marked ``both_backends`` run on SQLite and PostgreSQL
(``database_url`` fixture, tests/conftest.py); the rest are SQLite specifics."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.chain import HeadSigner, canonical_row, genesis, link_hash
from consentgate.store import ConsentEvent, EventFilter, StoredEvent, StoreError, open_store
from consentgate.store.sqlite import MIGRATIONS, SQLiteStore, schema_version

KEYS = ["store-test-newest-0123456789", "store-test-older-0123456789"]


def event(n: int, **kw: object) -> ConsentEvent:
    base: dict[str, object] = {
        "event_id": f"ev-{n}",
        "consent_id": f"c-{n % 7}",
        "site_id": "a" if n % 2 else "b",
        "event_type": "initial",
        "method": "custom",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        "granted": frozenset({"necessary", "statistics"}),
        "policy_version": "1",
        "page_url": "https://example.test/caf\u00e9",
        "ip_masked": "203.0.113.0",
    }
    base.update(kw)
    return ConsentEvent(**base)  # type: ignore[arg-type]


def check_chains(events: list[StoredEvent], signer: HeadSigner, heads: list) -> None:
    """Recompute every segment from genesis and match its signed head."""
    by_chain: dict[str, list[StoredEvent]] = {}
    for e in events:
        by_chain.setdefault(e.chain_id, []).append(e)
    assert {h.chain_id for h in heads} == set(by_chain)
    for head in heads:
        segment = sorted(by_chain[head.chain_id], key=lambda e: e.chain_seq)
        prev = genesis(head.chain_id)
        for i, e in enumerate(segment, start=1):
            assert e.chain_seq == i
            assert e.prev_hash == prev
            row = e.event.row()
            assert link_hash(prev, canonical_row(row)) == e.hash
            prev = e.hash
        assert (head.chain_seq, head.hash) == (len(segment), prev)
        assert signer.verify(head.chain_id, head.chain_seq, head.hash, head.signature)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "consent.db"


@pytest.mark.both_backends
async def test_append_read_back_and_filters(database_url: str) -> None:
    signer = HeadSigner(KEYS)
    async with open_store(database_url, head_signer=signer) as store:
        stored = [await store.append(event(n)) for n in range(1, 21)]
        assert [s.seq for s in stored] == list(range(1, 21))
        assert (await store.latest("c-3")).event.event_id == "ev-17"  # type: ignore[union-attr]
        assert await store.latest("nobody") is None
        back = [e async for e in store.iter_events()]
        assert [e.event for e in back] == [s.event for s in stored]
        assert back[0].event.page_url == "https://example.test/caf\u00e9"
        assert await store.count() == 20
        assert await store.count(EventFilter(site_id="a")) == 10
        since = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
        until = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
        window = [
            e.event.event_id async for e in store.iter_events(EventFilter(since=since, until=until))
        ]
        assert window == [f"ev-{n}" for n in range(5, 10)]
        check_chains(back, signer, await store.chain_heads())
        assert await store.ping()
    assert not await store.ping()


@pytest.mark.both_backends
async def test_concurrent_appends_are_group_committed(database_url: str) -> None:
    signer = HeadSigner(KEYS)
    store = open_store(database_url, head_signer=signer)
    async with store:
        results = await asyncio.gather(*(store.append(event(n)) for n in range(1200)))
        assert sorted(r.seq for r in results) == list(range(1, 1201))
        assert store.commits < 100  # batches, not one transaction per event
        check_chains([e async for e in store.iter_events()], signer, await store.chain_heads())


@pytest.mark.both_backends
async def test_paging_streams_every_event(database_url: str) -> None:
    async with open_store(database_url) as store:
        await asyncio.gather(*(store.append(event(n)) for n in range(1234)))
        seqs = [e.seq async for e in store.iter_events()]
        assert seqs == list(range(1, 1235))
        assert await store.count(EventFilter(consent_id="c-0")) == len(range(0, 1234, 7))


@pytest.mark.both_backends
async def test_each_open_starts_a_new_signed_segment(database_url: str) -> None:
    signer = HeadSigner(KEYS)
    for round_ in range(3):
        async with open_store(database_url, head_signer=signer) as store:
            for n in range(5):
                await store.append(event(round_ * 10 + n))
    async with open_store(database_url, head_signer=signer) as store:
        heads = await store.chain_heads()
        assert len(heads) == 3
        check_chains([e async for e in store.iter_events()], signer, heads)
        # a rotated key list still verifies the old heads
        rotated = HeadSigner(["brand-new-key-0123456789", *KEYS])
        assert all(rotated.verify(h.chain_id, h.chain_seq, h.hash, h.signature) for h in heads)
        assert not HeadSigner(["someone-else-0123456789"]).verify(
            heads[0].chain_id, heads[0].chain_seq, heads[0].hash, heads[0].signature
        )


async def test_failed_batch_fails_its_callers_and_starts_a_new_segment(db_path: Path) -> None:
    signer = HeadSigner(KEYS)
    async with SQLiteStore(db_path, head_signer=signer) as store:
        await store.append(event(1))
        with pytest.raises(StoreError):
            await store.append(event(2, event_id="ev-1"))  # UNIQUE event_id violated
        await store.append(event(3))
        events = [e async for e in store.iter_events()]
        assert [e.event.event_id for e in events] == ["ev-1", "ev-3"]
        # after a failed transaction the writer continues in a fresh segment
        assert events[0].chain_id != events[1].chain_id and events[1].chain_seq == 1
        check_chains(events, signer, await store.chain_heads())


@pytest.mark.both_backends
async def test_naive_time_and_closed_store_are_refused(database_url: str) -> None:
    store = open_store(database_url)
    with pytest.raises(StoreError):
        await store.append(event(1))
    async with store:
        with pytest.raises(StoreError):
            await store.append(event(1, created_at=datetime(2026, 1, 1)))


@pytest.mark.both_backends
async def test_close_flushes_queued_events(database_url: str) -> None:
    store = open_store(database_url)
    await store.open()
    pending = [asyncio.ensure_future(store.append(event(n))) for n in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    async with open_store(database_url) as again:
        assert await again.count() == 50


def test_schema_is_versioned_and_pragmas_are_durable(db_path: Path) -> None:
    async def make() -> None:
        async with SQLiteStore(db_path) as store:
            await store.append(event(1))
            writer = store._writer_db
            assert writer is not None

            def pragma(conn: sqlite3.Connection, name: str) -> object:
                return conn.execute(f"PRAGMA {name}").fetchone()[0]

            assert await writer.run(pragma, "synchronous") == 2  # FULL
            assert await writer.run(pragma, "journal_mode") == "wal"

    asyncio.run(make())
    conn = sqlite3.connect(db_path)
    assert schema_version(conn) == MIGRATIONS[-1][0]
    conn.execute("INSERT INTO schema_version VALUES (999, 'future')")
    conn.commit()
    conn.close()

    async def reopen() -> None:
        with pytest.raises(StoreError, match="newer than this consentgate"):
            async with SQLiteStore(db_path):
                pass

    asyncio.run(reopen())


def test_unknown_database_url() -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        open_store("mysql://nope")


async def test_writer_survives_a_broken_connection(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    async with store:
        await store.append(event(1))
        db = store._writer_db
        assert db is not None
        await db.close()
        for n in (2, 3):
            with pytest.raises(StoreError, match="could not write"):
                await store.append(event(n))
        assert store._writer_task is not None and not store._writer_task.done()
    async with SQLiteStore(db_path) as again:
        assert [e.event.event_id async for e in again.iter_events()] == ["ev-1"]


async def test_two_writers_on_one_file_take_turns_and_lose_nothing(db_path: Path) -> None:
    """Two stores on one file (as two ``--workers`` processes would be): their
    transactions are serialized by the writer lock, both segments stay intact."""
    signer = HeadSigner(KEYS)
    async with (
        SQLiteStore(db_path, head_signer=signer) as one,
        SQLiteStore(db_path, head_signer=signer) as two,
    ):
        stored = await asyncio.gather(
            *(
                (one if n % 2 else two).append(event(n, consent_id=f"c-{n % 13}"))
                for n in range(600)
            )
        )
        assert one.commits + two.commits < 300  # still group-committed
    assert sorted(s.seq for s in stored) == list(range(1, 601))
    async with SQLiteStore(db_path, head_signer=signer) as store:
        heads = await store.chain_heads()
        assert len(heads) == 2
        check_chains([e async for e in store.iter_events()], signer, heads)
    assert Path(f"{db_path}-writer.lock").exists()


async def test_a_write_waits_for_the_writer_lock(db_path: Path) -> None:
    """Another process's writer holds ``<file>-writer.lock``: the commit (and the
    acknowledgement) waits for it, then goes through."""
    import fcntl
    import os

    async with SQLiteStore(db_path) as store:
        await store.append(event(0))
        fd = os.open(f"{db_path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            pending = asyncio.ensure_future(store.append(event(1)))
            await asyncio.sleep(0.3)
            assert not pending.done()
            fcntl.flock(fd, fcntl.LOCK_UN)
            assert (await asyncio.wait_for(pending, 10)).event.event_id == "ev-1"
        finally:
            os.close(fd)


async def test_a_writer_lock_held_too_long_fails_the_batch_not_the_writer(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer elsewhere that never lets go: the waiting batch fails (503 upstream)
    instead of queueing forever; once the lock is free, writes go through again."""
    import fcntl
    import os

    from consentgate.store import sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "LOCK_TIMEOUT", 0.3)
    async with SQLiteStore(db_path) as store:
        await store.append(event(0))
        fd = os.open(f"{db_path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with pytest.raises(StoreError, match=r"writer\.lock"):
                await asyncio.wait_for(store.append(event(1)), 10)
        finally:
            os.close(fd)
        assert (await store.append(event(2))).event.event_id == "ev-2"
        assert await store.count() == 2
