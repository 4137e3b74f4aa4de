"""PostgreSQL-only behaviour of the consent log: migrations under concurrent start,
monthly partitions, several writers (chain segments), recovery after a lost connection.

The backend-neutral store behaviour runs on PostgreSQL through the ``both_backends``
suites; this module covers what only the PostgreSQL backend has.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from consentgate.audit.retention import CheckpointPlan
from consentgate.audit.verify import verify_store
from consentgate.chain import HeadSigner
from consentgate.store import EventFilter, StoreError, open_store
from consentgate.store.base import ConsentEvent
from consentgate.store.postgres import PostgresStore
from consentgate.store.postgres_schema import MIGRATIONS, MONTHS_AHEAD, month_of, partition_name
from tests import support

pytestmark = pytest.mark.postgres

KEYS = ["pg-test-key-0123456789abcdef"]


def make_event(
    i: int = 0, *, created_at: datetime | None = None, site: str = "demo", method: str = "custom"
) -> ConsentEvent:
    return ConsentEvent(
        event_id=secrets.token_hex(8),
        consent_id=f"c{i % 7}",
        site_id=site,
        event_type="initial",
        method=method,
        created_at=created_at or datetime.now(UTC),
        granted=frozenset({"necessary", "statistics"} if i % 2 else {"necessary"}),
        policy_version="1",
        language="de",
        page_url="https://example.test/päge",
        region="DE" if i % 3 else "US-CA",
        regime="opt-in" if i % 3 else "opt-out",
        gpc=bool(i % 5 == 0),
        ip_masked="203.0.113.0",
        user_agent="Mozilla/5.0 ü",
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    with support.pg_database() as url:
        yield url


def new_store(url: str) -> PostgresStore:
    store = open_store(url, head_signer=HeadSigner(KEYS), pool_size=2)
    assert isinstance(store, PostgresStore)
    return store


async def test_nodes_starting_at_once_migrate_once(pg_url: str) -> None:
    stores = [new_store(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            versions = [
                r[0] for r in await conn.fetch("SELECT version FROM consentgate_migrations")
            ]
            tables = {
                r[0]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'events'::regclass"
                )
            }
        finally:
            await conn.close()
        assert sorted(versions) == [v for v, _, _ in MIGRATIONS]
        now = datetime.now(UTC)
        month = month_of(now)
        expected = {partition_name(month)}
        for _ in range(MONTHS_AHEAD):
            month = (month[0] + month[1] // 12, month[1] % 12 + 1)
            expected.add(partition_name(month))
        assert expected <= tables
    finally:
        for s in stores:
            await s.close()


async def test_event_of_any_month_gets_its_partition(pg_url: str) -> None:
    store = new_store(pg_url)
    async with store:
        old = await store.append(
            make_event(1, created_at=datetime(2019, 2, 28, 23, 59, tzinfo=UTC))
        )
        new = await store.append(make_event(2))
        conn = await asyncpg.connect(pg_url)
        try:
            where = await conn.fetchval(
                "SELECT tableoid::regclass::text FROM events WHERE event_id = $1",
                old.event.event_id,
            )
        finally:
            await conn.close()
        assert where == "events_p201902"
        assert [s.event for s in [x async for x in store.iter_events()]] == [old.event, new.event]
    # a second node learns the partition exists and writes there too
    async with new_store(pg_url) as other:
        await other.append(make_event(3, created_at=datetime(2019, 2, 1, tzinfo=UTC)))
        assert await other.count(EventFilter(until=datetime(2019, 3, 1, tzinfo=UTC))) == 2


async def test_concurrent_writers_keep_separate_chains(pg_url: str) -> None:
    stores = [new_store(pg_url) for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        results = await asyncio.gather(*(stores[i % 3].append(make_event(i)) for i in range(900)))
        assert len({r.event.event_id for r in results}) == 900
        assert len({r.seq for r in results}) == 900
        counts = await support.walk_chains(stores[0].url, KEYS)
        assert sorted(counts.values()) == [300, 300, 300]
        assert {r.chain_id for r in results} == set(counts)
        # what each writer acknowledged is what is stored
        stored = {s.event.event_id: s async for s in stores[1].iter_events()}
        for r in results:
            assert stored[r.event.event_id] == r
    finally:
        for s in stores:
            await s.close()


async def test_round_trip_and_filters(pg_url: str) -> None:
    async with new_store(pg_url) as store:
        base = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
        written = [
            await store.append(
                make_event(
                    i,
                    created_at=base + timedelta(days=i),
                    site="a" if i % 2 else "b",
                    method="accept_all" if i < 3 else "reject_all",
                )
            )
            for i in range(6)
        ]
        read = [s async for s in store.iter_events()]
        assert read == written
        assert await store.latest("c1") == written[1]
        assert await store.latest("nobody") is None
        cases = [
            (EventFilter(site_id="a"), [1, 3, 5]),
            (EventFilter(method="reject_all", site_id="b"), [4]),
            (EventFilter(since=base + timedelta(days=1), until=base + timedelta(days=3)), [1, 2]),
            (EventFilter(region="US-CA"), [0, 3]),
            (EventFilter(regime="opt-in", consent_id="c4"), [4]),
        ]
        for flt, indexes in cases:
            assert [s async for s in store.iter_events(flt)] == [written[i] for i in indexes]
            assert await store.count(flt) == len(indexes)


async def test_writer_recovers_after_its_connection_is_killed(pg_url: str) -> None:
    async with new_store(pg_url) as store:
        first = await store.append(make_event(1))
        conn = await asyncpg.connect(pg_url)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert killed >= 1
        acknowledged = [first]
        for i in range(2, 6):
            # a failed append is not acknowledged: the caller knows it was not recorded
            with contextlib.suppress(StoreError):
                acknowledged.append(await store.append(make_event(i)))
        assert len(acknowledged) >= 4
        stored = {s.event.event_id async for s in store.iter_events()}
        assert {a.event.event_id for a in acknowledged} <= stored
        await support.walk_chains(store.url, KEYS)


async def test_bad_url_is_a_store_error() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:5432/cg_no_such_database_x")
    with pytest.raises(StoreError, match="cannot open consent log"):
        await store.open()


async def test_verify_passes_while_two_nodes_write(pg_url: str) -> None:
    """seq order is commit order across writers, so a snapshot's max_seq is an exact
    cut: verifying a live log never sees a record beyond its snapshot's heads."""
    stores = [new_store(pg_url) for _ in range(2)]
    for s in stores:
        await s.open()
    stop = asyncio.Event()

    async def write(store: PostgresStore) -> int:
        n = 0
        while not stop.is_set():
            await asyncio.gather(*(store.append(make_event(i)) for i in range(20)))
            n += 20
        return n

    try:
        writers = [asyncio.create_task(write(s)) for s in stores]
        results = []
        async with new_store(pg_url) as auditor:
            for _ in range(8):
                await asyncio.sleep(0.05)
                results.append(await verify_store(auditor, KEYS))
        stop.set()
        written = sum(await asyncio.gather(*writers))
        assert all(r.ok for r in results), [str(r.problem) for r in results if not r.ok]
        assert results[-1].checked > results[0].checked > 0
        async with new_store(pg_url) as auditor:
            final = await verify_store(auditor, KEYS)
        assert final.ok and final.checked == written and final.chains == 2
    finally:
        for s in stores:
            await s.close()


async def test_purge_drops_a_whole_expired_partition(pg_url: str) -> None:
    old = datetime(2019, 2, 10, tzinfo=UTC)
    async with new_store(pg_url) as store:
        for i in range(5):
            await store.append(make_event(i, created_at=old + timedelta(hours=i), site="a"))
        await store.append(make_event(9, created_at=datetime(2019, 3, 2, tzinfo=UTC), site="b"))
        await store.append(make_event(10, created_at=datetime(2019, 3, 3, tzinfo=UTC), site="a"))
        kept = await store.append(make_event(11, site="a"))
        plan = CheckpointPlan(KEYS)
        assert await store.purge("a", datetime(2019, 4, 1, tzinfo=UTC), plan) == 6
        conn = await asyncpg.connect(pg_url)
        try:
            tables = {r[0] for r in await conn.fetch("SELECT relname::text FROM pg_class")}
        finally:
            await conn.close()
        assert "events_p201902" not in tables  # only site a's records: dropped whole
        assert "events_p201903" in tables  # site b's record is still there
        assert [s.event.site_id async for s in store.iter_events()] == ["b", "a"]
        assert (await store.latest(kept.event.consent_id)) is not None
        checkpoints = await store.purge_checkpoints()
        assert [(c.first_seq, c.last_seq) for c in checkpoints] == [(1, 5), (7, 7)]
        result = await verify_store(store, KEYS)
        assert result.ok, result.problem
        assert (result.checked, result.purged) == (2, 6)
        # the purge is idempotent and a new record of that month gets a new partition,
        # also on another node that still believed the dropped partition existed
        assert await store.purge("a", datetime(2019, 4, 1, tzinfo=UTC), plan) == 0
        await store.append(make_event(12, created_at=old, site="a"))
        async with new_store(pg_url) as other:
            await store.purge("a", datetime(2019, 4, 1, tzinfo=UTC), plan)
            acked = await other.append(make_event(13, created_at=old, site="a"))
            assert acked.chain_seq == 1  # its segment went on: no failed batch
        result = await verify_store(store, KEYS)
        assert result.ok and result.checked == 3


def test_copy_text_parsing_refuses_what_it_cannot_read() -> None:
    """The COPY reader: escapes undone, types restored, a short row or a cut-off
    line is an error rather than a shifted export."""
    from consentgate.store.postgres_copy import parse_copy_text
    from consentgate.store.records import EXPORT_COLUMNS

    def line(**values: str) -> str:
        cells = []
        for name in EXPORT_COLUMNS:
            default = "7" if name in ("seq", "chain_seq") else "x"
            if name in ("necessary", "preferences", "statistics", "marketing", "unclassified"):
                default = "t"
            if name in ("gpc", "erased"):
                default = "f"
            cells.append(values.get(name, default))
        return "\t".join(cells) + "\n"

    (row,) = parse_copy_text(line(user_agent="a\\tb\\nc\\\\d\\\\N", seq="42"))
    by_name = dict(zip(EXPORT_COLUMNS, row, strict=True))
    assert by_name["user_agent"] == "a\tb\nc\\d\\N"
    assert by_name["seq"] == 42 and by_name["necessary"] is True and by_name["gpc"] is False
    assert parse_copy_text("") == []
    with pytest.raises(ValueError, match="whole lines"):
        parse_copy_text(line()[:-1])
    with pytest.raises(ValueError, match="columns"):
        parse_copy_text(line() + "1\t2\n")
