"""The dashboard's figures come from rollups kept by the writer; they must equal what
the log holds: after writes, after a retention purge, and for a log written before
the rollups existed (the migration back-fills them)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.app import store_options
from consentgate.audit.retention import CheckpointPlan
from consentgate.config import Settings
from consentgate.console.figures import Period, PeriodError, build, period_of
from consentgate.store import open_store
from consentgate.store.base import ConsentEvent, ConsentStore
from consentgate.store.rollups import OPTIONAL, batch_deltas, row_of
from tests.audit_support import KEYS, fill_log, make_settings

pytestmark = pytest.mark.both_backends

TODAY = datetime.now(UTC).date()
WIDE = Period(TODAY - timedelta(days=400), TODAY + timedelta(days=2))


def expected(events: list[ConsentEvent], site_id: str, period: Period) -> dict[str, Any]:
    """The figures counted straight from the records (the reference)."""
    mine = [
        e
        for e in events
        if e.site_id == site_id and period.since <= e.created_at.date() < period.until
    ]
    decisions = [e for e in mine if e.event_type != "withdraw"]
    by_region: Counter[tuple[str, str]] = Counter()
    for e in decisions:
        for c in OPTIONAL:
            by_region[(e.region, c)] += c in e.granted
    return {
        "decisions": len(decisions),
        "withdrawals": len(mine) - len(decisions),
        "gpc": sum(e.gpc for e in decisions),
        "methods": Counter(e.method for e in decisions),
        "daily": Counter((e.created_at.date(), e.method) for e in decisions),
        "granted": {c: sum(c in e.granted for e in decisions) for c in OPTIONAL},
        "languages": Counter(e.language for e in decisions),
        "by_region": {k: v for k, v in by_region.items() if v},
    }


def actual(rows: list[Any], period: Period) -> dict[str, Any]:
    d = build(rows, period)
    by_region = {
        (b.value, c): b.granted[c] for b in d.breakdowns["region"] for c in OPTIONAL if b.granted[c]
    }
    return {
        "decisions": d.decisions,
        "withdrawals": d.withdrawals,
        "gpc": d.gpc,
        "methods": Counter({m: d.method_total(m) for m in d.methods}),
        "daily": Counter(
            {(day, m): n for day, per in d.by_day.items() for m, n in per.items() if n}
        ),
        "granted": d.granted,
        "languages": Counter(
            {b.value: b.decisions for b in d.breakdowns["language"] if b.decisions}
        ),
        "by_region": by_region,
    }


async def compare(settings: Settings, period: Period = WIDE) -> int:
    store = open_store(settings.database, **store_options(settings))
    async with store:
        events = [s.event async for s in store.iter_events()]
        for site in ("alpha", "beta"):
            rows = await store.rollup_rows(site, period.since, period.until)
            assert actual(rows, period) == expected(events, site, period), site
    return len(events)


async def append_old(store: ConsentStore, n: int, days_ago: int) -> None:
    """Records dated in the past (a month the retention purge will reach)."""
    at = datetime.now(UTC) - timedelta(days=days_ago)
    for i in range(n):
        await store.append(
            ConsentEvent(
                event_id=f"old-{days_ago}-{i}",
                consent_id=f"c-old-{i}",
                site_id="beta",
                event_type=("initial", "update", "withdraw")[i % 3],
                method=("accept_all", "custom", "withdraw")[i % 3],
                created_at=at + timedelta(minutes=i),
                granted=frozenset({"necessary", "statistics"} if i % 3 == 1 else {"necessary"}),
                policy_version="1",
                region=("DE", "FR")[i % 2],
                language="de",
                gpc=i % 4 == 0,
            )
        )


def test_rollups_equal_the_log_after_writes_and_a_purge(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 24)

    async def scenario() -> None:
        store = open_store(settings.database, **store_options(settings))
        async with store:
            await append_old(store, 9, 60)
            await append_old(store, 6, 3)
        total = await compare(settings)
        assert total == 24 + 8 + 5 + 15  # visitors, updates (i%3==0), withdrawals (i%5==0), old
        # a short period shows only its days
        await compare(settings, period_of("7", None, None, TODAY))
        store = open_store(settings.database, **store_options(settings))
        async with store:
            purged = await store.purge(
                "beta", datetime.now(UTC) - timedelta(days=30), CheckpointPlan(KEYS.split(","))
            )
            assert purged == 9
        assert await compare(settings) == total - 9

    asyncio.run(scenario())


@pytest.mark.sqlite_only
def test_the_migration_back_fills_an_older_log(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 12)
    path = Path(settings.database.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:  # as a log written before the rollups existed
        conn.execute("DROP TRIGGER events_rollups_delete")
        for table in ("consent_rollups", "discovery", "classifications"):
            conn.execute(f"DROP TABLE {table}")
        for table in ("chain_heads", "action_head"):  # schema 6
            conn.execute(f"ALTER TABLE {table} DROP COLUMN ed25519")
        conn.execute("DELETE FROM schema_version WHERE version >= 4")
    conn.close()
    assert asyncio.run(compare(settings)) == 12 + 4 + 3


def test_periods() -> None:
    today = date(2026, 3, 10)
    assert period_of(None, None, None, today).days[0] == date(2026, 2, 9)
    assert len(period_of("7", None, None, today).days) == 7
    assert period_of("90", None, None, today).last == today
    custom = period_of(None, "2026-01-01", "2026-01-31", today)
    assert len(custom.days) == 31
    for bad in [("5", None, None), (None, "2026-02-01", "2026-01-01"), (None, "x", "y")]:
        with pytest.raises(PeriodError):
            period_of(*bad, today)


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["alpha", "beta"]),
        st.integers(0, 12),  # days ago
        st.sampled_from(["accept_all", "reject_all", "custom", "close", "gpc", "withdraw"]),
        st.sampled_from(["initial", "update", "withdraw"]),
        st.sampled_from(["", "DE", "US-CA"]),
        st.sampled_from(["opt-in", "opt-out"]),
        st.sampled_from(["", "en", "de"]),
        st.frozensets(st.sampled_from(OPTIONAL)),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=60)
@given(_EVENTS, st.integers(1, 30))
def test_batch_counts_fold_to_the_figures_of_the_records(raw: list[Any], span: int) -> None:
    """Whatever the records and however a writer batches them, the rollups give the
    figures counted from the records themselves."""
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    events = [
        ConsentEvent(f"e{i}", f"c{i}", site, etype, method, now - timedelta(days=ago),
                     frozenset({"necessary"}) | granted, "1", region=region, regime=regime,
                     language=lang, gpc=gpc)
        for i, (site, ago, method, etype, region, regime, lang, granted, gpc) in enumerate(raw)
    ]  # fmt: skip
    period = Period(now.date() - timedelta(days=span - 1), now.date() + timedelta(days=1))
    # two writer batches, summed like the upsert does
    totals: dict[tuple[Any, ...], list[int]] = {}
    for batch in (events[: len(events) // 2], events[len(events) // 2 :]):
        for row in batch_deltas(batch):
            acc = totals.setdefault(row[:6], [0] * 6)
            for i, n in enumerate(row[6:]):
                acc[i] += n
    for site in ("alpha", "beta"):
        rows = [
            row_of((date.fromisoformat(k[1]), *k[2:], *v))
            for k, v in totals.items()
            if k[0] == site
        ]
        assert actual(rows, period) == expected(events, site, period)
