"""Pure parts of the auditor tools: encoders, checkpoint planning, tokens, columns."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from consentgate.audit import tokens as tok
from consentgate.audit.columns import BOOL_COLUMNS, EXPORT_COLUMNS, INT_COLUMNS
from consentgate.audit.formats import CsvEncoder, JsonlEncoder, neutralize, read_rows
from consentgate.audit.proofs import PURGE_SALT, KeyedSigner, checkpoint_message
from consentgate.audit.retention import plan_checkpoints
from consentgate.store.base import PurgeCheckpoint
from consentgate.store.sqlite_audit import EXPORT_SELECT

REPO = Path(__file__).resolve().parent.parent
KEYS = ["unit-test-key-0123456789"]
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def rows_strategy() -> st.SearchStrategy[list[tuple[object, ...]]]:
    cells = [
        st.booleans() if c in BOOL_COLUMNS else st.integers(0, 10**12) if c in INT_COLUMNS else text
        for c in EXPORT_COLUMNS
    ]
    return st.lists(st.tuples(*cells), min_size=1, max_size=8)


@given(rows_strategy())
def test_both_formats_read_back_exactly(rows: list[tuple[object, ...]]) -> None:
    for fmt, enc in (("csv", CsvEncoder()), ("jsonl", JsonlEncoder())):
        data = (enc.header() + enc.encode(rows)).decode("utf-8")
        back = [
            tuple(r[c] for c in EXPORT_COLUMNS)
            for _, r in read_rows(io.StringIO(data, newline=""), fmt)
        ]
        assert back == rows, fmt


@given(rows_strategy())
def test_no_csv_cell_starts_a_formula(rows: list[tuple[object, ...]]) -> None:
    data = (CsvEncoder().header() + CsvEncoder().encode(rows)).decode("utf-8")
    for row in csv.reader(io.StringIO(data, newline="")):
        assert len(row) == len(EXPORT_COLUMNS)
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell


def test_neutralize_cases() -> None:
    assert [
        neutralize(v) for v in ("=1", "+1", "-1", "@x", "\tx", "\rx", "'x", "x=1", "", "ok")
    ] == ["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "''x", "x=1", "", "ok"]


def test_csv_columns_quote_only_when_needed() -> None:
    base = dict.fromkeys(EXPORT_COLUMNS, "v")
    base.update(dict.fromkeys(BOOL_COLUMNS, True))
    base.update(dict.fromkeys(INT_COLUMNS, 7))
    row = dict(base, user_agent='Mozilla/5.0 (KHTML, like "Gecko")', page_url="=HYPERLINK(1)")
    line = CsvEncoder().encode([tuple(row[c] for c in EXPORT_COLUMNS)]).decode()
    assert '"Mozilla/5.0 (KHTML, like ""Gecko"")"' in line
    assert ",'=HYPERLINK(1)," in line and ",true," in line and line.startswith("7,v,")


def test_a_bom_only_for_csv() -> None:
    assert CsvEncoder(bom=True).header().startswith(b"\xef\xbb\xbfseq,")
    assert JsonlEncoder().header() == b""


def _cp(first: int, last: int, h: str, chain: str = "c") -> PurgeCheckpoint:
    signer = KeyedSigner(KEYS, PURGE_SALT)
    sig = signer.sign(checkpoint_message(chain, first, last, h))
    return PurgeCheckpoint(chain, first, last, h, sig, datetime.now(UTC))


def test_checkpoints_merge_with_neighbours() -> None:
    signer = KeyedSigner(KEYS, PURGE_SALT)
    now = datetime.now(UTC)
    deleted = [("c", 1, "h1"), ("c", 2, "h2"), ("c", 5, "h5"), ("d", 3, "g3")]
    upsert, remove = plan_checkpoints(deleted, [], signer, now)
    assert sorted((c.chain_id, c.first_seq, c.last_seq, c.last_hash) for c in upsert) == [
        ("c", 1, 2, "h2"),
        ("c", 5, 5, "h5"),
        ("d", 3, 3, "g3"),
    ]
    assert remove == []
    existing = [_cp(1, 2, "h2"), _cp(5, 5, "h5")]
    upsert, remove = plan_checkpoints([("c", 3, "h3"), ("c", 4, "h4")], existing, signer, now)
    assert [(c.first_seq, c.last_seq, c.last_hash) for c in upsert] == [(1, 5, "h5")]
    assert sorted(c.first_seq for c in remove) == [1, 5]
    assert signer.verify(checkpoint_message("c", 1, 5, "h5"), upsert[0].signature)
    # an untouched existing checkpoint is neither rewritten nor removed
    upsert, remove = plan_checkpoints([("c", 9, "h9")], existing, signer, now)
    assert [(c.first_seq, c.last_seq) for c in upsert] == [(9, 9)] and remove == []


def test_tokens() -> None:
    token_id, token = tok.new_token()
    assert tok.parse_token(token) == token_id and len(token) > 50
    assert (
        tok.redact(f"Authorization: Bearer {token}") == f"Authorization: Bearer cgt_{token_id}_***"
    )
    for bad in ("", "cgt_", "cgt_zzzzzzzzzzzz_" + "a" * 40, token + "!"):
        try:
            tok.parse_token(bad)
        except tok.TokenError:
            continue
        raise AssertionError(bad)
    assert tok.can("admin", "tokens") and not tok.can("auditor", "tokens")
    assert tok.can("auditor", "export") and not tok.can("auditor", "subject.erase")
    assert tok.hash_token(token) != tok.hash_token(token + "x")


def test_store_select_matches_the_export_columns() -> None:
    assert tuple(c.strip() for c in EXPORT_SELECT.split(",")) == EXPORT_COLUMNS


def test_every_column_is_documented() -> None:
    doc = (REPO / "docs" / "consent-log.md").read_text()
    section = doc[doc.index("## Export columns") :]
    for column in EXPORT_COLUMNS:
        assert re.search(rf"`{column}`", section), column
