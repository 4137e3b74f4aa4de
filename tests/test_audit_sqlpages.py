"""The compiled SQLite export reader (consentgate/audit/_sqlpages.c) gives the same pages
as Python's sqlite3 + the reference encoders: the same bytes, the same summaries (row
count, seq and time range, chain runs), for any content and any page size; values the
schema does not promise go through the reference path and are written or refused as
before. CI requires it (CONSENTGATE_REQUIRE_SPEEDUPS=1)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgate.audit.formats import CsvEncoder, JsonlEncoder
from consentgate.store import sqlite_audit
from consentgate.store.base import EventFilter
from consentgate.store.pages import STAT_COLUMNS, ExportPage
from consentgate.store.records import EXPORT_COLUMNS
from consentgate.store.sqlite import SQLiteStore
from consentgate.store.sqlite_audit import _compiled_pages

needs_reader = pytest.mark.skipif(
    _compiled_pages() is None and os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") != "1",
    reason="consentgate.audit._sqlpages is not compiled",
)
pytestmark = needs_reader

INSERT = (
    f"INSERT INTO events ({', '.join(EXPORT_COLUMNS[1:])}) "
    f"VALUES ({', '.join('?' * (len(EXPORT_COLUMNS) - 1))})"
)
BOOLS = {"necessary", "preferences", "statistics", "marketing", "unclassified", "gpc", "erased"}


def test_compiled_reader_is_built_when_required() -> None:
    if os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") == "1":
        assert _compiled_pages() is not None, "consentgate.audit._sqlpages is not compiled"


@functools.cache
def _template() -> bytes:
    """An empty consent log's file, made once by the store's own migrations."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.db"

        async def create() -> None:
            store = SQLiteStore(path)
            await store.open()
            await store.close()

        asyncio.run(create())
        return path.read_bytes()


@contextlib.contextmanager
def empty_log() -> Iterator[Path]:
    """A consent log with the real schema and no records."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.db"
        path.write_bytes(_template())
        yield path


def insert(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows straight into the table (values as given: the test decides what is odd)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM events")
        db.executemany(INSERT, [tuple(r[c] for c in EXPORT_COLUMNS[1:]) for r in rows])
        db.commit()


def pages(
    path: Path,
    encoder: Any,
    batch: int,
    flt: EventFilter | None = None,
    *,
    reader: bool = True,
    max_seq: int | None = None,
) -> Any:
    """Every page, or the exception's type when reading fails. ``reader=False``: as
    without the compiled reader (``iter_rows`` batches through ``encoder``)."""

    async def go() -> list[ExportPage]:
        store = SQLiteStore(path)
        await store.open()
        try:
            return [p async for p in store.iter_pages(flt, encoder, batch=batch, max_seq=max_seq)]
        finally:
            await store.close()

    saved = sqlite_audit._compiled_pages
    if not reader:
        sqlite_audit._compiled_pages = lambda: None  # type: ignore[assignment]
    try:
        return asyncio.run(go())
    except Exception as exc:  # compared between the two paths
        return type(exc)
    finally:
        sqlite_audit._compiled_pages = saved  # type: ignore[assignment]


def both(path: Path, fmt: str, batch: int, flt: EventFilter | None = None) -> tuple[Any, Any]:
    """(the compiled reader's pages, the pages without it), both with the compiled
    encoder, which refuses odd values with the same exceptions as before the reader."""
    make = CsvEncoder if fmt == "csv" else JsonlEncoder
    encoder = make(compiled=True)
    assert encoder.compiled
    return pages(path, encoder, batch, flt), pages(path, encoder, batch, flt, reader=False)


TEXT = st.text(
    st.one_of(
        st.sampled_from(list("=+-@\t\r',\"\n\x1f\x00\\é€😀\u2028")),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=6,
)


def record(i: int, text: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A row with seq order i: every text column from ``text``, a few chains."""
    columns: dict[str, Any] = {}
    for c in EXPORT_COLUMNS[1:]:
        if c in BOOLS:
            columns[c] = st.integers(0, 1)
        elif c == "chain_seq":
            columns[c] = st.just(i)
        elif c == "chain_id":
            columns[c] = st.sampled_from(["w-a", "w-b", "wé"])
        elif c == "event_id":
            columns[c] = st.just(f"e{i}")
        else:
            columns[c] = text
    return st.fixed_dictionaries(columns)


ROWS = st.integers(0, 14).flatmap(lambda n: st.tuples(*(record(i, TEXT) for i in range(n))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, batch=st.integers(1, 6), fmt=st.sampled_from(["csv", "jsonl"]))
def test_compiled_pages_equal_the_reference(
    rows: tuple[dict[str, Any], ...], batch: int, fmt: str
) -> None:
    """Against pure Python: sqlite3 rows, the Python encoder, the Python summary."""
    with empty_log() as path:
        insert(path, list(rows))
        make = CsvEncoder if fmt == "csv" else JsonlEncoder
        compiled = pages(path, make(compiled=True), batch)
        python = pages(path, make(compiled=False), batch)
        assert compiled == python
        assert sum(p.rows for p in compiled) == len(rows)


def plain(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: f"{c}-{i}" for c in EXPORT_COLUMNS[1:]}
    row.update({c: i % 2 for c in BOOLS}, chain_seq=i, chain_id="w", created_at=f"2026-{i:04d}")
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    "odd",
    [
        {"gpc": 2},  # a boolean that is neither 0 nor 1: refused
        {"necessary": 0.5},  # a REAL in a boolean column: refused
        {"user_agent": b"\xff\xfe"},  # a BLOB in a text column: refused
        {"chain_seq": "seven"},  # text in an integer column: written as it is
        {"page_url": 12},  # stored as text by the column's affinity: written
    ],
    ids=["bool-2", "real", "blob", "text-int", "int-text"],
)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_odd_values_go_through_the_reference_path(odd: dict[str, Any], fmt: str) -> None:
    with empty_log() as path:
        insert(path, [plain(i, **(odd if i == 4 else {})) for i in range(9)])
        compiled, python = both(path, fmt, batch=3)
        assert compiled == python


def test_invalid_utf8_is_refused_like_the_reference() -> None:
    with empty_log() as path:
        insert(path, [plain(i) for i in range(5)])
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("UPDATE events SET user_agent = CAST(x'41eda080' AS TEXT) WHERE seq = 3")
            db.execute("UPDATE events SET page_url = CAST(x'c0af' AS TEXT) WHERE seq = 4")
            db.commit()
        for fmt in ("csv", "jsonl"):
            compiled, python = both(path, fmt, batch=2)
            assert compiled == python
            assert isinstance(compiled, type) and issubclass(compiled, Exception)


def test_filters_and_bounds_bind_like_the_reference() -> None:
    with empty_log() as path:
        insert(path, [plain(i, site_id="ab"[i % 2], method="xyz"[i % 3]) for i in range(40)])
        flt = EventFilter(site_id="a", method="y")
        for fmt in ("csv", "jsonl"):
            compiled, python = both(path, fmt, 4, flt)
            assert compiled == python and sum(p.rows for p in compiled) == 6


def test_a_reader_stopped_early_closes_and_the_store_goes_on() -> None:
    """An HTTP client gone after the first page: the page read ahead is let finish, the
    reader closed, and the store keeps answering."""
    with empty_log() as path:
        insert(path, [plain(i, user_agent="x" * 300) for i in range(2000)])

        async def go() -> None:
            store = SQLiteStore(path)
            await store.open()
            try:
                for _ in range(3):
                    reader = store.iter_pages(None, CsvEncoder(compiled=True), batch=7)
                    async with contextlib.aclosing(reader):
                        first = await anext(reader)
                        assert first.rows == 7 and first.first_seq == 1
                    assert await asyncio.wait_for(store.count(), 10) == 2000
                whole = [p async for p in store.iter_pages(None, JsonlEncoder(), batch=500)]
                assert [p.rows for p in whole] == [500] * 4
            finally:
                await store.close()

        asyncio.run(asyncio.wait_for(go(), 60))


def test_since_until_and_max_seq_bind_like_the_reference() -> None:
    with empty_log() as path:
        insert(
            path, [plain(i, created_at=f"2026-01-{i % 28 + 1:02d}T00:00:00Z") for i in range(60)]
        )
        flt = EventFilter(
            since=datetime(2026, 1, 5, tzinfo=UTC), until=datetime(2026, 1, 20, tzinfo=UTC)
        )
        for fmt in ("csv", "jsonl"):
            encoder = (CsvEncoder if fmt == "csv" else JsonlEncoder)(compiled=True)
            got = pages(path, encoder, 4, flt, max_seq=50)
            want = pages(path, encoder, 4, flt, max_seq=50, reader=False)
            assert got == want and 0 < sum(p.rows for p in got) < 50
            assert all(p.last_seq <= 50 for p in got)


def test_cells_larger_than_the_buffers_grow_them() -> None:
    big = ['a,"b"' * 20_000, "=" + "é" * 70_000, "\x01\\" * 40_000]
    with empty_log() as path:
        insert(path, [plain(i, user_agent=big[i % 3], page_url=big[(i + 1) % 3]) for i in range(7)])
        for fmt in ("csv", "jsonl"):
            make = CsvEncoder if fmt == "csv" else JsonlEncoder
            for batch in (1, 2, 7):
                assert pages(path, make(compiled=True), batch) == pages(
                    path, make(compiled=False), batch
                )


def test_a_database_path_that_is_not_utf8() -> None:
    """File names are bytes: the reader opens what the store opens."""
    with empty_log() as made, tempfile.TemporaryDirectory() as tmp:
        odd = Path(os.fsdecode(os.path.join(os.fsencode(tmp), b"caf\xe9.db")))
        odd.write_bytes(made.read_bytes())
        insert(odd, [plain(i) for i in range(5)])
        compiled, python = both(odd, "csv", 2)
        assert compiled == python and sum(p.rows for p in compiled) == 5


def test_the_reader_object_refuses_a_second_init_and_reports_sqlite_errors() -> None:
    Pages = _compiled_pages()
    encoder = CsvEncoder()
    with empty_log() as path:
        insert(path, [plain(i) for i in range(3)])
        sql = "SELECT " + ", ".join(EXPORT_COLUMNS) + " FROM events WHERE seq > ? ORDER BY seq"
        args = (encoder.codes, None, 10, STAT_COLUMNS)
        reader = Pages(os.fsencode(path), sql, (), *args)
        with pytest.raises(RuntimeError, match="already initialized"):
            reader.__init__(os.fsencode(path), sql, (), encoder.codes, None, 10, (1, 9999, 3, 4))
        data, rows, *_ = reader.page(0)  # the first init's columns still hold
        assert rows == 3 and data == encoder.encode(
            sqlite3.connect(path).execute(sql, (0,)).fetchall()
        )
        reader.close()
        with pytest.raises(ValueError, match="closed"):
            reader.page(0)
        not_a_db = path.with_name("junk.db")
        not_a_db.write_bytes(b"not a database at all" * 100)
        with pytest.raises(sqlite3.OperationalError):
            Pages(os.fsencode(not_a_db), sql, (), *args)


def test_an_export_cancelled_during_a_read_ahead_does_not_wait_for_it() -> None:
    """The HTTP path: Starlette cancels the streaming task when the client goes. The
    cancellation must not join the reader's thread on the event loop (it would stall
    every other request until the page is read), and the reader is still closed."""
    real = _compiled_pages()
    release, closed, second_started = threading.Event(), threading.Event(), threading.Event()

    class SlowReader:
        def __init__(self, *args: Any) -> None:
            self._reader = real(*args)
            self._pages = 0

        def page(self, after: int) -> Any:
            self._pages += 1
            if self._pages == 2:  # the read ahead: held until the test lets it go
                second_started.set()
                release.wait(30)
            return self._reader.page(after)

        def close(self) -> None:
            self._reader.close()
            closed.set()

    with empty_log() as path:
        insert(path, [plain(i) for i in range(30)])

        async def go() -> None:
            store = SQLiteStore(path)
            await store.open()
            got: list[ExportPage] = []

            async def consume() -> None:
                async for page in store.iter_pages(None, CsvEncoder(), batch=5):
                    got.append(page)
                    await asyncio.sleep(3600)  # the client reads slowly, then goes away

            saved = sqlite_audit._compiled_pages
            sqlite_audit._compiled_pages = lambda: SlowReader  # type: ignore[assignment]
            try:
                task = asyncio.create_task(consume())
                while not second_started.is_set():
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, 20)
                # cancelled while the read ahead is still held: nothing waited for it
                assert not release.is_set() and not closed.is_set()
                assert [p.rows for p in got] == [5]
                assert await store.count() == 30  # the loop and the store go on
            finally:
                sqlite_audit._compiled_pages = saved  # type: ignore[assignment]
                release.set()
                await store.close()
            assert await asyncio.to_thread(closed.wait, 20)  # closed after the page

        asyncio.run(asyncio.wait_for(go(), 60))
