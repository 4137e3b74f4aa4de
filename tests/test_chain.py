from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import assume, given
from hypothesis import strategies as st

from consentgate.chain import (
    ChainState,
    HeadSigner,
    canonical,
    canonical_row,
    format_time,
    genesis,
    link_hash,
)
from consentgate.consent import CATEGORIES
from consentgate.store import ConsentEvent, StoredEvent
from consentgate.store.base import EVENT_FIELDS
from consentgate.store.records import export_record

events = st.builds(
    ConsentEvent,
    event_id=st.text(min_size=1, max_size=30),
    consent_id=st.text(min_size=1, max_size=30),
    site_id=st.text(max_size=10),
    event_type=st.sampled_from(["initial", "update", "withdraw"]),
    method=st.text(max_size=12),
    created_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    granted=st.frozensets(st.sampled_from(CATEGORIES)),
    policy_version=st.text(max_size=8),
    banner_hash=st.text(max_size=20),
    language=st.text(max_size=8),
    page_url=st.text(max_size=40),
    region=st.text(max_size=6),
    regime=st.sampled_from(["opt-in", "opt-out", "notice"]),
    gpc=st.booleans(),
    ip_masked=st.text(max_size=20),
    user_agent=st.text(max_size=40),
)


@given(events)
def test_canonical_of_an_event_equals_canonical_of_its_exported_row(event: ConsentEvent) -> None:
    data = canonical(event)
    stored = StoredEvent(seq=1, event=event)
    exported = json.loads(json.dumps(export_record(stored)))  # through a JSON Lines export
    assert canonical_row(exported) == data
    doc = json.loads(data)
    assert list(doc) == sorted(EVENT_FIELDS)
    assert data.isascii()
    assert doc["created_at"] == format_time(event.created_at)
    assert all(isinstance(doc[c], bool) for c in (*CATEGORIES, "gpc"))


def test_format_time_is_utc_with_microseconds() -> None:
    plus3 = timezone(timedelta(hours=3))
    assert (
        format_time(datetime(2026, 1, 2, 6, 4, 5, 6, tzinfo=plus3)) == "2026-01-02T03:04:05.000006Z"
    )


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.timezones()))
def test_format_time_matches_the_stored_text_form(value: datetime) -> None:
    """The hashed text of ``created_at`` never changes: the same as the strftime form
    every record so far was hashed with (whatever the input's timezone)."""
    utc = value.astimezone(UTC)
    assume(utc.year >= 1000)  # an early instant in a +hh:mm zone lands before year 1000
    assert format_time(value) == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_chain_links_from_genesis_and_restores() -> None:
    chain = ChainState("abc")
    event = ConsentEvent(
        "e", "c", "s", "initial", "custom", datetime(2026, 1, 1, tzinfo=UTC), frozenset(), "1"
    )
    snap = chain.snapshot()
    seq, prev, digest = chain.advance(event)
    assert (seq, prev) == (1, genesis("abc")) and prev == "genesis:abc"
    assert digest == hashlib.sha256(b"genesis:abc" + canonical(event)).hexdigest()
    assert digest == link_hash(prev, canonical(event))
    assert chain.advance(event)[1] == digest
    chain.restore(snap)
    assert chain.snapshot() == (0, "genesis:abc")


def test_head_signer_rotation() -> None:
    old = HeadSigner(["old-key-0123456789abcdef"])
    sig = old.sign("chain", 5, "ff" * 32)
    rotated = HeadSigner(["new-key-0123456789abcdef", "old-key-0123456789abcdef"])
    assert rotated.verify("chain", 5, "ff" * 32, sig)
    assert not rotated.verify("chain", 6, "ff" * 32, sig)
    assert not rotated.verify("chain", 5, "ee" * 32, sig)
    assert not rotated.verify("chain", 5, "ff" * 32, "not-a-signature")
    assert not rotated.verify("chain", 5, "ff" * 32, "\u00e9")
    assert rotated.sign("chain", 5, "ff" * 32) != sig
