"""Subject requests (show, export, erase) and verify-export of a received file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consentgate.config import Settings
from tests import support
from tests.audit_support import (
    db_path,
    fill_log,
    is_postgres,
    make_settings,
    page,
    run_cli,
    sql,
    user_agent,
)

pytestmark = pytest.mark.both_backends


@pytest.fixture
def filled(tmp_path: Path, database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 30)
    return settings


def consent_of(settings: Settings, i: int) -> str:
    return str(
        sql(settings, "SELECT consent_id FROM events WHERE user_agent = ?", (user_agent(i),))[0][0]
    )


def raw_bytes(settings: Settings) -> bytes:
    """Everything stored: the SQLite file with its WAL, or on PostgreSQL every row of
    every table as text."""
    if is_postgres(settings):
        return support.pg_all_rows(settings.database).encode()
    path = db_path(settings)
    data = path.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


def test_show_and_export(filled: Settings, tmp_path: Path) -> None:
    cid = consent_of(filled, 9)  # visitor 9: a choice and an update
    shown = run_cli(filled, "subject", "show", cid)
    assert shown.exit_code == 0
    assert f"consent id {cid}: 2 record(s)" in shown.output
    assert user_agent(9) in shown.output and page(9) in shown.output
    out = tmp_path / "subject.json"
    assert run_cli(filled, "subject", "export", cid, "-o", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    assert doc["consent_id"] == cid
    assert [r["event_type"] for r in doc["records"]] == ["initial", "update"]
    assert doc["records"][0]["ip_masked"] == "198.51.9.0"
    missing = run_cli(filled, "subject", "show", "no-such-consent")
    assert missing.exit_code == 1 and "no records for consent id" in missing.output
    actions = sql(filled, "SELECT actor, action FROM audit_actions ORDER BY id")
    assert [a for _, a in actions] == ["subject.show", "subject.export", "subject.show"]
    assert all(actor.startswith("cli:") for actor, _ in actions)


def test_erase_leaves_nothing_personal_and_verify_passes(filled: Settings) -> None:
    cid = consent_of(filled, 9)
    personal = [user_agent(9).encode(), b"198.51.9.0", page(9).encode()]
    for needle in personal:
        assert needle in raw_bytes(filled)
    result = run_cli(filled, "subject", "erase", cid, "--yes")
    assert result.exit_code == 0, result.output
    assert "erased 2 of 2 record(s)" in result.output
    data = raw_bytes(filled)
    for needle in personal:
        assert needle not in data, needle
    assert user_agent(7).encode() in data  # other visitors' records are untouched
    # the decision is still provable
    rows = sql(
        filled,
        "SELECT event_type, method, statistics, erased, user_agent, ip_masked, page_url "
        "FROM events WHERE consent_id = ? ORDER BY seq",
        (cid,),
    )
    assert rows == [
        ("initial", "accept_all", 1, 1, "", "", ""),
        ("update", "custom", 1, 1, "", "", ""),
    ]
    verified = run_cli(filled, "verify")
    assert verified.exit_code == 0, verified.output
    assert "2 erased" in verified.output
    again = run_cli(filled, "subject", "erase", cid, "--yes")
    assert again.exit_code == 0 and "erased 0 of 2" in again.output
    # an erased record whose kept fields are then changed is caught
    sql(
        filled,
        "UPDATE events SET marketing = 1 WHERE consent_id = ? AND event_type = 'update'",
        (cid,),
    )
    changed = run_cli(filled, "verify")
    assert changed.exit_code == 1
    assert "altered: kept fields of an erased record were changed" in changed.output


def test_erase_refuses_a_tampered_record(filled: Settings) -> None:
    cid = consent_of(filled, 7)
    sql(filled, "UPDATE events SET statistics = 1 - statistics WHERE consent_id = ?", (cid,))
    result = run_cli(filled, "subject", "erase", cid, "--yes")
    assert result.exit_code == 1 and "does not match its hash" in result.output
    assert sql(filled, "SELECT user_agent FROM events WHERE consent_id = ?", (cid,)) == [
        (user_agent(7),)
    ]


def test_erase_asks_first(filled: Settings) -> None:
    cid = consent_of(filled, 7)
    result = run_cli(filled, "subject", "erase", cid, input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output, result.output
    assert sql(filled, "SELECT erased FROM events WHERE consent_id = ?", (cid,)) == [(0,)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_verify_export_passes_then_fails_on_an_edited_copy(
    filled: Settings, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"log.{fmt}"
    assert run_cli(filled, "export", "--format", fmt, "-o", str(out)).exit_code == 0
    ok = run_cli(filled, "verify-export", str(out))
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"ok: {out} matches its manifest")

    lines = out.read_bytes().split(b"\n")
    line_no = 6  # 1-based line of the record to edit
    edited = lines[line_no - 1].replace(b"198.51.", b"198.52.", 1)
    assert edited != lines[line_no - 1]
    copy = tmp_path / f"copy.{fmt}"
    copy.write_bytes(b"\n".join([*lines[: line_no - 1], edited, *lines[line_no:]]))
    manifest = Path(str(out) + ".manifest.json")
    bad = run_cli(filled, "verify-export", str(copy), "--manifest", str(manifest))
    assert bad.exit_code == 1
    assert "SHA-256" in bad.output
    assert f"line {line_no}: record seq" in bad.output and "does not match its hash" in bad.output

    # an edited manifest (say, a smaller row count to hide a dropped line) fails its signature
    doc = json.loads(manifest.read_text())
    doc["rows"] -= 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    bad = run_cli(filled, "verify-export", str(out), "--manifest", str(forged))
    assert bad.exit_code == 1 and "manifest signature does not verify" in bad.output


def test_verify_export_needs_a_manifest_and_keys(filled: Settings, tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    assert run_cli(filled, "export", "-o", str(out)).exit_code == 0
    alone = tmp_path / "alone.jsonl"
    alone.write_bytes(out.read_bytes())
    result = run_cli(filled, "verify-export", str(alone))
    assert result.exit_code == 2 and "no manifest" in result.output
