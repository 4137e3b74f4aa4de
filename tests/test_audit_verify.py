"""`consentgate verify` on a log filled through the API, then tampered with
directly in SQLite (the sqlite3 module, or the raw file bytes)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.chain import canonical_row, link_hash
from consentgate.config import Settings
from tests.audit_support import db_path, fill_log, make_settings, run_cli, sql, user_agent

pytestmark = pytest.mark.both_backends


@pytest.fixture
def filled(tmp_path: Path, database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 30)
    return settings


def verify(settings: Settings) -> tuple[int, str]:
    result = run_cli(settings, "verify")
    return result.exit_code, result.output


def test_a_real_log_verifies(filled: Settings) -> None:
    code, out = verify(filled)
    assert code == 0, out
    total = sql(filled, "SELECT COUNT(*) FROM events")[0][0]
    assert out.startswith(f"ok: {total} records in 1 chain(s)")


def test_update_of_one_field_is_caught_at_that_record(filled: Settings) -> None:
    seq, event_id = sql(filled, "SELECT seq, event_id FROM events WHERE seq = 17")[0]
    sql(filled, "UPDATE events SET marketing = 1 - marketing WHERE seq = 17")
    code, out = verify(filled)
    assert code == 1
    assert "altered: content does not match its hash" in out
    assert f"seq {seq}," in out and event_id in out
    assert "first bad record:" in out


def test_delete_of_one_row_is_caught(filled: Settings) -> None:
    chain_seq = sql(filled, "SELECT chain_seq FROM events WHERE seq = 12")[0][0]
    sql(filled, "DELETE FROM events WHERE seq = 12")
    code, out = verify(filled)
    assert code == 1
    assert f"missing: records #{chain_seq}..#{chain_seq} of this chain were removed" in out
    assert "seq 13," in out  # named at the record after the gap


def test_delete_of_the_tail_is_caught_by_the_signed_head(filled: Settings) -> None:
    last = sql(filled, "SELECT MAX(chain_seq) FROM events")[0][0]
    sql(filled, "DELETE FROM events WHERE chain_seq >= ?", (last - 1,))
    code, out = verify(filled)
    assert code == 1
    assert f"missing: records #{last - 1}..#{last} (the end of this chain" in out


def _forged_row(settings: Settings, seq: int) -> dict[str, object]:
    cols = [c[1] for c in sql(settings, "PRAGMA table_info(events)")]
    row = dict(
        zip(cols, sql(settings, "SELECT * FROM events WHERE seq = ?", (seq,))[0], strict=True)
    )
    row.pop("seq")
    row["event_id"] = "forged-" + str(seq)
    for c in ("necessary", "preferences", "statistics", "marketing", "unclassified", "gpc"):
        row[c] = bool(row[c])
    return row


def _insert(settings: Settings, row: dict[str, object]) -> None:
    for c in ("necessary", "preferences", "statistics", "marketing", "unclassified", "gpc"):
        row[c] = int(bool(row[c]))
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    sql(settings, f"INSERT INTO events ({names}) VALUES ({marks})", tuple(row.values()))


def test_an_edit_that_recomputed_its_own_hash_is_named_at_that_record(
    filled: Settings,
) -> None:
    seq, event_id, pos = sql(filled, "SELECT seq, event_id, chain_seq FROM events WHERE seq = 9")[0]
    row = _forged_row(filled, seq)
    row["event_id"] = event_id
    row["marketing"] = not row["marketing"]
    row["hash"] = link_hash(str(row["prev_hash"]), canonical_row(row))  # knows the recipe
    for c in ("necessary", "preferences", "statistics", "marketing", "unclassified", "gpc"):
        row[c] = int(bool(row[c]))
    sets = ", ".join(f"{name} = ?" for name in row)
    sql(filled, f"UPDATE events SET {sets} WHERE seq = ?", (*row.values(), seq))
    code, out = verify(filled)
    assert code == 1
    assert "altered: content and hash were both changed" in out
    assert f"seq {seq}," in out and event_id in out  # the edited record, not the next one
    assert pos == sql(filled, "SELECT chain_seq FROM events WHERE seq = 9")[0][0]


def test_an_inserted_row_with_a_valid_hash_is_caught(filled: Settings) -> None:
    last_seq, last_pos, last_hash = sql(
        filled, "SELECT seq, chain_seq, hash FROM events ORDER BY seq DESC LIMIT 1"
    )[0]
    row = _forged_row(filled, last_seq)
    row["marketing"] = True
    row["chain_seq"], row["prev_hash"] = last_pos + 1, last_hash
    row["hash"] = link_hash(last_hash, canonical_row(row))  # the tamperer knows the recipe
    _insert(filled, row)
    code, out = verify(filled)
    assert code == 1
    assert "inserted: record beyond its chain's signed head" in out
    assert "forged-" in out


def test_an_inserted_chain_without_a_head_is_caught(filled: Settings) -> None:
    row = _forged_row(filled, 5)
    row["chain_id"] = "f" * 32
    row["chain_seq"], row["prev_hash"] = 1, "genesis:" + "f" * 32
    row["hash"] = link_hash(str(row["prev_hash"]), canonical_row(row))
    _insert(filled, row)
    code, out = verify(filled)
    assert code == 1 and "inserted: record of a chain with no signed head" in out


def test_a_forged_head_is_caught(filled: Settings) -> None:
    sql(filled, "UPDATE chain_heads SET chain_seq = chain_seq - 1")
    code, out = verify(filled)
    assert code == 1 and "inserted: record beyond its chain's signed head" in out
    sql(filled, "UPDATE chain_heads SET chain_seq = chain_seq + 1, signature = 'x'")
    code, out = verify(filled)
    assert code == 1 and "forged: chain head signature" in out


@pytest.mark.sqlite_only
def test_one_byte_changed_in_the_file_fails_at_that_record(filled: Settings) -> None:
    target = 7  # one record: no update, no withdrawal
    seq = sql(filled, "SELECT seq FROM events WHERE user_agent = ?", (user_agent(target),))[0][0]
    path = db_path(filled)
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0
    data = bytearray(path.read_bytes())
    needle = f"TestAgent-{target:04d}".encode()
    offsets = [m.start() for m in re.finditer(re.escape(needle), bytes(data))]
    assert len(offsets) == 1
    data[offsets[0] + len("TestAgent-")] ^= 0x01  # '0' -> '1': one byte, same length
    path.write_bytes(bytes(data))
    code, out = verify(filled)
    assert code == 1
    assert f"altered: content does not match its hash (seq {seq}," in out


def test_an_erased_flag_set_by_hand_is_caught(filled: Settings) -> None:
    sql(filled, "UPDATE events SET erased = 1, user_agent = '' WHERE seq = 3")
    code, out = verify(filled)
    assert code == 1 and "marked erased without an erasure attestation" in out and "seq 3," in out


def test_verify_usage_errors(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    result = run_cli(settings, "verify")
    assert result.exit_code == 2 and "is not a directory" in result.output
    settings.data_dir.mkdir()
    result = run_cli(settings, "verify")
    assert result.exit_code == 2 and "no consent log" in result.output
    assert not db_path(settings).exists()


def export_manifest(settings: Settings, tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.jsonl"
    result = run_cli(settings, "export", "-o", str(out))
    assert result.exit_code == 0, result.output
    return tmp_path / f"{name}.jsonl.manifest.json"


def test_a_chain_removed_with_its_head_is_caught_against_an_earlier_export(
    tmp_path: Path, database_url: str
) -> None:
    """The log alone cannot show a whole segment deleted together with its signed head;
    an earlier export's manifest, which lists every head, can."""
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 12)
    fill_log(settings, 8, start=12)  # a second server run: a second chain
    manifest = export_manifest(settings, tmp_path, "march")
    fill_log(settings, 5, start=20)  # the log goes on after the export: still fine
    ok = run_cli(settings, "verify", "--against", str(manifest))
    assert ok.exit_code == 0, ok.output
    assert "all 2 head(s) of 1 earlier export(s) found" in ok.output

    second = sql(settings, "SELECT chain_id FROM events WHERE seq = 13")[0][0]
    sql(settings, "DELETE FROM events WHERE chain_id = ?", (second,))
    sql(settings, "DELETE FROM chain_heads WHERE chain_id = ?", (second,))
    assert verify(settings)[0] == 0  # consistent without it: the gap this option closes
    caught = run_cli(settings, "verify", "--against", str(manifest))
    assert caught.exit_code == 1
    assert "missing: the whole chain" in caught.output and second in caught.output


@pytest.mark.sqlite_only
def test_a_rolled_back_file_is_caught_against_an_earlier_export(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    fill_log(settings, 10)
    old = db_path(settings).read_bytes()  # a backup (the store is closed: no WAL left)
    fill_log(settings, 10, start=10)
    manifest = export_manifest(settings, tmp_path, "april")
    db_path(settings).write_bytes(old)  # restored: everything after the backup is gone
    assert verify(settings)[0] == 0
    caught = run_cli(settings, "verify", "--against", str(manifest))
    assert caught.exit_code == 1 and "missing:" in caught.output


def test_records_purged_by_retention_still_satisfy_an_earlier_export(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 10)
    manifest = export_manifest(settings, tmp_path, "may")
    later = (datetime.now(UTC) + timedelta(days=2000)).isoformat()
    assert run_cli(settings, "purge", "--now", later).exit_code == 0
    assert sql(settings, "SELECT COUNT(*) FROM events")[0][0] == 0
    ok = run_cli(settings, "verify", "--against", str(manifest))
    assert ok.exit_code == 0, ok.output


def test_an_edited_or_unreadable_earlier_manifest_is_refused(
    filled: Settings, tmp_path: Path
) -> None:
    manifest = export_manifest(filled, tmp_path, "june")
    doc = json.loads(manifest.read_text())
    doc["heads"][0]["chain_seq"] -= 3  # pretend the chain was shorter
    forged = tmp_path / "forged.manifest.json"
    forged.write_text(json.dumps(doc))
    result = run_cli(filled, "verify", "--against", str(forged))
    assert result.exit_code == 1 and "signature does not verify" in result.output
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    result = run_cli(filled, "verify", "--against", str(junk))
    assert result.exit_code == 2 and "junk.json" in result.output


def test_the_action_log_is_a_chain_verify_walks(filled: Settings, tmp_path: Path) -> None:
    """Exports and subject requests are logged as a hash chain with a signed head: an
    edited, removed or appended action is caught like a record."""
    for name in ("a", "b", "c"):
        export_manifest(filled, tmp_path, name)
    consent_id = sql(filled, "SELECT consent_id FROM events WHERE seq = 3")[0][0]
    assert run_cli(filled, "subject", "show", consent_id).exit_code == 0
    ids = [r[0] for r in sql(filled, "SELECT id FROM audit_actions ORDER BY id")]
    assert len(ids) >= 4
    code, out = verify(filled)
    assert code == 0, out
    assert f"{len(ids)} audit action(s) chained" in out

    original = sql(filled, "SELECT detail FROM audit_actions WHERE id = ?", (ids[1],))[0][0]
    sql(filled, "UPDATE audit_actions SET detail = '{}' WHERE id = ?", (ids[1],))
    code, out = verify(filled)
    assert code == 1 and f"altered: audit action #{ids[1]} does not match its hash" in out
    sql(filled, "UPDATE audit_actions SET detail = ? WHERE id = ?", (original, ids[1]))
    assert verify(filled)[0] == 0

    kept = sql(filled, "SELECT * FROM audit_actions WHERE id = ?", (ids[1],))[0]
    sql(filled, "DELETE FROM audit_actions WHERE id = ?", (ids[1],))
    code, out = verify(filled)
    assert code == 1 and f"audit action #{ids[2]} does not link to the one before it" in out
    marks = ", ".join("?" for _ in kept)
    sql(
        filled,
        f"INSERT INTO audit_actions OVERRIDING SYSTEM VALUE VALUES ({marks})"
        if "postgres" in filled.database
        else f"INSERT INTO audit_actions VALUES ({marks})",
        kept,
    )
    assert verify(filled)[0] == 0

    sql(filled, "DELETE FROM audit_actions WHERE id = ?", (ids[-1],))
    code, out = verify(filled)
    assert code == 1
    assert f"missing: the action chain holds {len(ids) - 1} action(s), its signed head" in out


@pytest.mark.sqlite_only
def test_actions_logged_before_the_chain_existed_stay_readable(tmp_path: Path) -> None:
    """A log made by an older consentgate (schema 2): its actions have no hash; they are
    counted as unchained, and the chain starts with the first action after the upgrade.
    (Made by hand on today's schema: today's writer keeps tables schema 2 lacked.)"""
    settings = make_settings(tmp_path)
    fill_log(settings, 5)  # no action logged yet: the chain is empty
    trigger = sql(settings, "SELECT sql FROM sqlite_master WHERE name = 'audit_actions_chained'")
    sql(settings, "DROP TRIGGER audit_actions_chained")  # what schema 2 allowed
    sql(
        settings,
        "INSERT INTO audit_actions (at, actor, action, detail) VALUES (?, ?, 'export', '{}')",
        ("2026-01-01T00:00:00.000000Z", "cli:old"),
    )
    sql(settings, trigger[0][0])
    export_manifest(settings, tmp_path, "upgraded")  # logs the first chained action
    code, out = verify(settings)
    assert code == 0, out
    assert "1 audit action(s) chained (1 older unchained)" in out


def test_a_wiped_or_cut_back_action_log_is_caught_against_an_earlier_export(
    filled: Settings, tmp_path: Path
) -> None:
    """The log alone cannot show its whole action chain deleted with its head, or cut
    back to an older head row copied beforehand; the manifests record the action head."""
    first = export_manifest(filled, tmp_path, "first")
    consent_id = sql(filled, "SELECT consent_id FROM events WHERE seq = 2")[0][0]
    assert run_cli(filled, "subject", "show", consent_id).exit_code == 0
    old_head = sql(filled, "SELECT count, hash, signature, updated_at FROM action_head")[0]
    assert run_cli(filled, "subject", "show", consent_id).exit_code == 0
    second = export_manifest(filled, tmp_path, "second")
    assert json.loads(second.read_text())["action_head"]["count"] == old_head[0] + 1
    both = run_cli(filled, "verify", "--against", str(first), "--against", str(second))
    assert both.exit_code == 0, both.output

    # cut back: the actions after the copied head deleted, the old head row put back
    sql(
        filled,
        "DELETE FROM audit_actions WHERE id > (SELECT MIN(id) FROM audit_actions) + ?",
        (old_head[0] - 1,),
    )
    sql(
        filled,
        "UPDATE action_head SET count = ?, hash = ?, signature = ?, updated_at = ?",
        old_head,
    )
    assert verify(filled)[0] == 0  # consistent in itself
    caught = run_cli(filled, "verify", "--against", str(second))
    assert caught.exit_code == 1 and "actions were removed from its end" in caught.output

    # wiped: every action and the head
    sql(filled, "DELETE FROM audit_actions")
    sql(filled, "DELETE FROM action_head")
    assert verify(filled)[0] == 0
    caught = run_cli(filled, "verify", "--against", str(first), "--against", str(second))
    assert caught.exit_code == 1 and "missing: the action chain holds 0 action(s)" in caught.output


def test_unchained_actions_cannot_be_added_after_the_upgrade(filled: Settings) -> None:
    """A process still running older code (no hash) fails loudly instead of leaving an
    action outside the chain."""
    with pytest.raises(Exception, match="chain"):
        sql(
            filled,
            "INSERT INTO audit_actions (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (datetime(2026, 1, 1, tzinfo=UTC), "cli:old", "export", "{}"),
        )


def test_actions_logged_while_verify_walks_and_odd_details(
    tmp_path: Path, database_url: str
) -> None:
    """The head is read before the walk: an action logged meanwhile is covered by the
    head read after it. Details with integer keys or a lone surrogate hash the same
    after the round trip through the database."""
    import asyncio

    from consentgate.audit.runner import cli_store
    from consentgate.audit.verify import VerifyResult, verify_actions
    from consentgate.store.base import AuditAction

    settings = make_settings(tmp_path, database_url)
    fill_log(settings, 3)

    async def go() -> VerifyResult:
        async with cli_store(settings) as store:
            at = datetime.now(UTC)
            await store.log_action(AuditAction(at, "cli:t", "purge", {"n": {9: 1, 10: 2}}))
            await store.log_action(AuditAction(at, "cli:t", "export", {"x": "\udc80 é"}))
            head = await store.action_head()
            await store.log_action(AuditAction(at, "cli:t", "export", {}))  # during the walk
            result = VerifyResult()
            await verify_actions(
                settings.secret_keys, store.iter_actions(), head, store.action_head, result
            )
            return result

    result = asyncio.run(go())
    assert result.ok, result.problem
    assert result.actions == 3
    assert verify(settings)[0] == 0
