"""Export: round trip of every field in both formats, every filter, CSV safety,
BOM, atomic -o, manifest."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consentgate.audit.columns import EXPORT_COLUMNS, parse_time
from consentgate.audit.formats import BOM, read_rows
from consentgate.audit.manifest import Manifest, manifest_path
from consentgate.audit.runner import cli_store
from consentgate.config import Settings
from consentgate.store import ConsentEvent
from consentgate.store.base import StoredEvent
from consentgate.store.records import export_record
from tests.audit_support import fill_log, make_settings, run_cli, user_agent

pytestmark = pytest.mark.both_backends


@pytest.fixture
def filled(tmp_path: Path, database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 36)
    return settings


def make_event(
    event_id: str, created_at: str = "2026-01-01T00:00:00+00:00", **kw: Any
) -> ConsentEvent:
    """A record for the export tests: site alpha, initial, reject_all unless ``kw`` says."""
    fields: dict[str, Any] = {
        "consent_id": "c",
        "site_id": "alpha",
        "event_type": "initial",
        "method": "reject_all",
        "granted": frozenset({"necessary"}),
        "policy_version": "1",
        **kw,
    }
    return ConsentEvent(event_id=event_id, created_at=datetime.fromisoformat(created_at), **fields)


def stored_rows(settings: Settings) -> list[dict[str, Any]]:
    async def go() -> list[StoredEvent]:
        async with cli_store(settings) as store:
            return [r async for r in store.iter_events()]

    return [export_record(r) for r in asyncio.run(go())]


def export(settings: Settings, tmp_path: Path, fmt: str, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / f"export-{fmt}-{len(list(tmp_path.iterdir()))}.{fmt}"
    result = run_cli(settings, "export", "--format", fmt, "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    text = raw.removeprefix(BOM).decode("utf-8")
    rows = [row for _, row in read_rows(io.StringIO(text, newline=""), fmt)]
    manifest = Manifest.from_json(manifest_path(out).read_text())
    assert manifest.rows == len(rows)
    return rows


def normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Booleans as bool, everything else as it is (the store gives 0/1)."""
    bools = {"necessary", "preferences", "statistics", "marketing", "unclassified", "gpc"}
    return [{k: bool(v) if k in bools | {"erased"} else v for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip_every_field(filled: Settings, tmp_path: Path, fmt: str) -> None:
    expected = normal(stored_rows(filled))
    got = export(filled, tmp_path, fmt)
    assert got == expected
    assert len(got) > 36  # updates and withdrawals too
    # every field carries data somewhere, so the comparison covers them all
    for column in EXPORT_COLUMNS:
        if column not in ("region", "gpc", "erased"):
            assert any(r[column] for r in got), column
    assert {r["method"] for r in got} >= {"accept_all", "reject_all", "custom", "withdraw"}
    assert any(r["user_agent"].startswith("=HYPERLINK") for r in got)
    assert all("?" not in r["page_url"] for r in got)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_filter(filled: Settings, tmp_path: Path, fmt: str) -> None:
    everything = normal(stored_rows(filled))
    times = sorted(r["created_at"] for r in everything)
    since, until = times[len(times) // 4], times[3 * len(times) // 4]
    consent_id = everything[0]["consent_id"]
    cases: list[tuple[list[str], Any]] = [
        (["--site", "beta"], lambda r: r["site_id"] == "beta"),
        (["--since", since], lambda r: r["created_at"] >= since),
        (["--until", until], lambda r: r["created_at"] < until),
        (["--consent-id", consent_id], lambda r: r["consent_id"] == consent_id),
        (["--method", "withdraw"], lambda r: r["method"] == "withdraw"),
        (
            ["--site", "alpha", "--method", "custom", "--since", since, "--until", until],
            lambda r: (
                r["site_id"] == "alpha"
                and r["method"] == "custom"
                and since <= r["created_at"] < until
            ),
        ),
    ]
    for args, keep in cases:
        want = [r for r in everything if keep(r)]
        assert want, args  # the filter selects something ...
        assert len(want) < len(everything), args  # ... and leaves something out
        assert export(filled, tmp_path, fmt, *args) == want, args


def test_dates_without_time_and_offsets(filled: Settings, tmp_path: Path) -> None:
    everything = stored_rows(filled)
    first = parse_time(everything[0]["created_at"])
    day = first.date().isoformat()
    assert export(filled, tmp_path, "jsonl", "--since", day) == normal(everything)
    later = (first + timedelta(days=1)).date().isoformat()
    assert export(filled, tmp_path, "jsonl", "--since", later) == []
    local = (first - timedelta(seconds=1)).astimezone().isoformat()
    assert len(export(filled, tmp_path, "jsonl", "--since", local)) == len(everything)


def test_csv_neutralizes_formula_cells(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 4)
    nasty = [
        "=cmd|'/c calc'!A1",
        "+SUM(1)",
        "-2+3",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
        "'quoted",
        'a,b"c',
    ]

    async def add() -> None:
        async with cli_store(settings) as store:
            for i, ua in enumerate(nasty):
                await store.append(
                    make_event(f"nasty-{i}", consent_id="nasty", user_agent=ua, language=ua)
                )

    asyncio.run(add())
    out = tmp_path / "x.csv"
    result = run_cli(settings, "export", "--format", "csv", "--consent-id", "nasty", "-o", str(out))
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert [c["user_agent"] for c in cells] == [
        "'=cmd|'/c calc'!A1",
        "'+SUM(1)",
        "'-2+3",
        "'@SUM(A1)",
        "'\tTAB",
        "'\rCR",
        "''quoted",
        'a,b"c',
    ]
    # no cell of the whole file starts with a formula character
    with out.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
    # and reading it back gives the original values
    text = out.read_bytes().decode("utf-8")
    back = [r for _, r in read_rows(io.StringIO(text, newline=""), "csv")]
    assert [r["user_agent"] for r in back] == nasty
    assert [r["language"] for r in back] == nasty
    assert run_cli(settings, "verify-export", str(out)).exit_code == 0


def test_bom_and_atomic_output(filled: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out" / "log.csv"
    out.parent.mkdir()
    out.write_text("previous export\n")
    result = run_cli(filled, "export", "--format", "csv", "--bom", "-o", str(out))
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(BOM + b"seq,event_id,")
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.csv", "log.csv.manifest.json"]
    assert Manifest.from_json(manifest_path(out).read_text()).bom is True
    assert run_cli(filled, "verify-export", str(out)).exit_code == 0
    # a failing export leaves the previous file alone and no temporary file behind
    bad = run_cli(filled, "export", "--format", "jsonl", "--bom", "-o", str(out))
    assert bad.exit_code == 2 and "--bom" in bad.output
    assert out.read_bytes() == data
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.csv", "log.csv.manifest.json"]


def test_stdout_export_and_bad_filters(filled: Settings, tmp_path: Path) -> None:
    result = run_cli(filled, "export", "--format", "jsonl", "--site", "beta")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines and all('"site_id":"beta"' in line for line in lines)
    for args in (
        ["--since", "yesterday"],
        ["--method", "bribe"],
        ["--format", "xml"],
        ["--since", "2026-02-01", "--until", "2026-01-01"],
    ):
        bad = run_cli(filled, "export", *args)
        assert bad.exit_code == 2, args
        assert "Error" in bad.output


def test_manifest_describes_the_file(filled: Settings, tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    assert run_cli(filled, "export", "-o", str(out)).exit_code == 0
    m = Manifest.from_json(manifest_path(out).read_text())
    rows = stored_rows(filled)
    assert m.rows == len(rows) and m.bytes == out.stat().st_size
    assert (m.first_created_at, m.last_created_at) == (
        rows[0]["created_at"],
        rows[-1]["created_at"],
    )
    assert (m.first_seq, m.last_seq) == (rows[0]["seq"], rows[-1]["seq"])
    ((chain_id, info),) = m.chains.items()
    assert info["last_hash"] == rows[-1]["hash"] and info["rows"] == len(rows)
    assert [h["chain_id"] for h in m.heads] == [chain_id]
    assert m.signature and m.signature_ok(["test-key-newest-0123456789"])
    assert user_agent(1) in out.read_text()


def test_iter_rows_keeps_every_character_and_streams_in_batches(
    tmp_path: Path, database_url: str
) -> None:
    """The export read path (PostgreSQL: COPY text format, with its escapes) gives
    back exactly what was stored, in batches, and can stop early."""
    settings = make_settings(tmp_path, database_url)
    odd = ["back\\slash", "new\nline", "tab\there", "\b\f\v\r", "\\N", "ünï €", "", "\\\\t"]

    async def go() -> None:
        async with cli_store(settings) as store:
            for i in range(40):
                await store.append(
                    make_event(
                        f"odd-{i}",
                        "2026-02-03T04:05:06.000007+00:00",
                        consent_id=f"c{i % 3}",
                        method="custom",
                        granted=frozenset({"necessary", "statistics"} if i % 2 else {"necessary"}),
                        policy_version=odd[i % len(odd)],
                        user_agent=odd[(i + 1) % len(odd)],
                        page_url=odd[(i + 2) % len(odd)],
                        gpc=bool(i % 5 == 0),
                    )
                )
            expected = [
                tuple(export_record(e)[c] for c in EXPORT_COLUMNS)
                async for e in store.iter_events()
            ]
            batches = [b async for b in store.iter_rows(batch=7)]
            assert len(batches) >= 40 // 7
            got = [row for b in batches for row in b]
            assert [typed(r) for r in got] == [typed(r) for r in expected]
            async for _ in store.iter_rows(batch=5):
                break  # stop early: the store must go on working
            assert await store.count() == 40

    asyncio.run(go())


BOOLS = {"necessary", "preferences", "statistics", "marketing", "unclassified", "gpc", "erased"}


def typed(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Booleans as bool (SQLite gives 0/1), everything else as it is."""
    return tuple(bool(v) if c in BOOLS else v for c, v in zip(EXPORT_COLUMNS, row, strict=True))


def test_an_export_read_stopped_early_releases_the_database(
    tmp_path: Path, database_url: str
) -> None:
    """A reader that stops after one batch (an HTTP client gone mid-download) while
    the database has much more to send: closing the read returns promptly and the
    store keeps working (PostgreSQL: the COPY is cancelled inside its transaction)."""
    import contextlib

    settings = make_settings(tmp_path, database_url)

    async def go() -> None:
        async with cli_store(settings) as store:
            await asyncio.gather(
                *(
                    store.append(
                        make_event(
                            f"many-{i}", consent_id=f"c{i}", user_agent="Mozilla/5.0 " + "x" * 200
                        )
                    )
                    for i in range(3000)
                )
            )
            for _ in range(3):
                reader = store.iter_rows(batch=5)
                async with contextlib.aclosing(reader):
                    first = await anext(reader)
                    assert len(first) == 5
                    await asyncio.sleep(0.2)  # let the database fill every buffer
                assert await asyncio.wait_for(store.count(), 10) == 3000

    asyncio.run(asyncio.wait_for(go(), 60))
