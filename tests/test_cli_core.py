from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from consentgate.chain import canonical_row, link_hash
from consentgate.cli import cli
from consentgate.commands.init import starter_toml
from consentgate.config import SERVER_SETTINGS, SITE_SETTINGS, load_settings
from consentgate.store import ConsentEvent
from consentgate.store.records import EXPORT_COLUMNS
from consentgate.store.sqlite import SQLiteStore
from tests import support


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONSENTGATE_SECRET_KEYS", "CONSENTGATE_DATABASE", "CONSENTGATE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_init_writes_a_file_that_loads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cg.toml"
    runner = CliRunner()
    result = runner.invoke(cli, ["init", str(path)])
    assert result.exit_code == 0, result.output
    assert path.stat().st_mode & 0o077 == 0
    text = path.read_text()
    for setting in (*SERVER_SETTINGS, *SITE_SETTINGS):
        assert setting.name in text

    again = runner.invoke(cli, ["init", str(path)])
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert path.read_text() == text
    forced = runner.invoke(cli, ["init", str(path), "--force"])
    assert forced.exit_code == 0 and path.read_text() != text  # a fresh example key

    missing_dir = runner.invoke(cli, ["init", str(tmp_path / "no" / "cg.toml")])
    assert missing_dir.exit_code == 2 and "does not exist" in missing_dir.output


def test_init_round_trips_through_load_settings(tmp_path: Path) -> None:
    env = {"CONSENTGATE_DATA_DIR": str(tmp_path / "data")}
    text = starter_toml()
    as_is = tmp_path / "as-is.toml"
    as_is.write_text(text)
    plain = load_settings(as_is, environ=env)
    assert [s.id for s in plain.sites] == ["main"]

    # every commented setting line, uncommented unchanged, gives the same settings
    uncommented = re.sub(r"^# (\w+ = .*)$", r"\1", text, flags=re.M)
    assert uncommented.count("\n") == text.count("\n")
    full = tmp_path / "full.toml"
    full.write_text(uncommented)
    loaded = load_settings(full, environ=env)
    key = re.search(r'secret_keys = \["([^"]+)"\]', text)
    assert key and loaded.secret_keys == [key.group(1)]
    assert loaded.sites == plain.sites
    for setting in SERVER_SETTINGS:
        if setting.default is not None and setting.name != "data_dir":
            assert getattr(loaded, setting.name) == setting.default, setting.name


def make_log(path: Path, n: int) -> list[ConsentEvent]:
    events = [
        ConsentEvent(
            event_id=f"e{i}",
            consent_id=f"c{i}",
            site_id="demo",
            event_type="initial",
            method="accept_all",
            created_at=datetime(2026, 5, 1, 12, 0, i, 123, tzinfo=UTC),
            granted=frozenset({"necessary", "statistics"}),
            policy_version="1",
            user_agent="Überbrowser",
        )
        for i in range(n)
    ]

    async def fill() -> None:
        async with SQLiteStore(path) as store:
            for e in events:
                await store.append(e)

    asyncio.run(fill())
    return events


def test_export_jsonl(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_log(data / "consent.db", 3)
    (data / "secret.key").write_text("cli-core-test-key-0123456789\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--data-dir", str(data), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event_id"] for r in lines] == ["e0", "e1", "e2"]
    assert list(lines[0]) == list(EXPORT_COLUMNS)
    assert lines[0]["created_at"] == "2026-05-01T12:00:00.000123Z"
    assert lines[0]["statistics"] is True and lines[0]["marketing"] is False
    assert lines[0]["user_agent"] == "Überbrowser"
    # the exported line is enough to recompute the chain
    prev = lines[0]["prev_hash"]
    for rec in lines:
        assert rec["prev_hash"] == prev
        assert link_hash(prev, canonical_row(rec)) == rec["hash"]
        prev = rec["hash"]

    out = tmp_path / "out.jsonl"
    via_db = runner.invoke(
        cli,
        ["export", "--database", f"sqlite:///{data / 'consent.db'}", "-o", str(out)],
        env={"CONSENTGATE_SECRET_KEYS": "cli-core-test-key-0123456789"},
    )
    assert via_db.exit_code == 0, via_db.output
    assert out.read_text() == result.stdout


def test_export_refuses_a_missing_log(tmp_path: Path) -> None:
    runner = CliRunner()
    gone = runner.invoke(cli, ["export", "--data-dir", str(tmp_path / "nope")])
    assert gone.exit_code == 2 and "is not a directory" in gone.output
    assert not (tmp_path / "nope").exists()
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(cli, ["export", "--data-dir", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "no consent log" in empty.output
    assert not (tmp_path / "empty" / "consent.db").exists()
    fmt = runner.invoke(cli, ["export", "--data-dir", str(tmp_path), "--format", "xml"])
    assert fmt.exit_code == 2


def test_serve_on_embedded_defaults_prints_where_it_listens(tmp_path: Path) -> None:
    port = support.free_port()
    with support.consentgate_server(cwd=tmp_path, port=port) as (base, proc):
        assert proc.stdout is not None
        head = [proc.stdout.readline().decode() for _ in range(7)]
        r = httpx.post(base + "/_consent/api/consent", json={"method": "reject_all"})
        assert r.status_code == 201
    text = "".join(head)
    assert f"listening on http://127.0.0.1:{port}/" in text
    data_dir = (tmp_path / "consentgate-data").resolve()
    assert f"data dir: {data_dir}" in text
    assert "embedded defaults" in text
    assert (data_dir / "consent.db").is_file() and (data_dir / "secret.key").is_file()
    assert (data_dir / "secret.key").read_text().strip() not in text
