"""Export columns: what an auditor's file holds, in which order, in which form.

Columns are ``seq``, :data:`consentgate.store.base.EVENT_FIELDS`, then the
record's place in the tamper-evident log (``chain_id``, ``chain_seq``,
``prev_hash``, ``hash``) and ``erased`` -- the core's JSON Lines keys plus ``erased``. Every value
is a ``str``, ``int`` or ``bool`` in a :data:`Row`; ``created_at`` is ISO 8601
UTC with microseconds and a ``Z`` (fixed width, so it sorts as text).

Documented column by column in ``docs/consent-log.md``; a test keeps the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..consent import CATEGORIES
from ..store.base import EVENT_FIELDS, ConsentEvent, StoredEvent

__all__ = [
    "BOOL_COLUMNS",
    "CHAIN_FIELDS",
    "EXPORT_COLUMNS",
    "INT_COLUMNS",
    "PERSONAL_FIELDS",
    "Row",
    "event_row",
    "format_time",
    "parse_time",
    "row_to_stored",
]

#: The record's place in the log (``seq`` leads the row, the rest follow the event).
CHAIN_FIELDS: tuple[str, ...] = ("seq", "chain_id", "chain_seq", "prev_hash", "hash", "erased")
EXPORT_COLUMNS: tuple[str, ...] = ("seq", *EVENT_FIELDS, *CHAIN_FIELDS[1:])
BOOL_COLUMNS: frozenset[str] = frozenset({*CATEGORIES, "gpc", "erased"})
INT_COLUMNS: frozenset[str] = frozenset({"seq", "chain_seq"})
#: Fields a subject erasure blanks (the rest proves the decision).
PERSONAL_FIELDS: tuple[str, ...] = ("ip_masked", "user_agent", "page_url")

Row = tuple[Any, ...]


def format_time(dt: datetime) -> str:
    """``2026-11-22T02:31:34.000000Z`` (UTC, fixed width)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; also accepts any ISO 8601 form with an offset."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def event_row(stored: StoredEvent) -> Row:
    """One stored event as a row in :data:`EXPORT_COLUMNS` order."""
    e = stored.event
    g = e.granted
    return (
        stored.seq,
        e.event_id,
        e.consent_id,
        e.site_id,
        e.event_type,
        e.method,
        format_time(e.created_at),
        *(c in g for c in CATEGORIES),
        e.policy_version,
        e.banner_hash,
        e.language,
        e.page_url,
        e.region,
        e.regime,
        bool(e.gpc),
        e.ip_masked,
        e.user_agent,
        stored.chain_id,
        stored.chain_seq,
        stored.prev_hash,
        stored.hash,
        bool(stored.erased),
    )


def row_to_stored(values: dict[str, Any]) -> StoredEvent:
    """Rebuild a :class:`StoredEvent` from an exported row (values already typed)."""
    event = ConsentEvent(
        event_id=values["event_id"],
        consent_id=values["consent_id"],
        site_id=values["site_id"],
        event_type=values["event_type"],
        method=values["method"],
        created_at=parse_time(values["created_at"]),
        granted=frozenset(c for c in CATEGORIES if values[c]),
        policy_version=values["policy_version"],
        banner_hash=values["banner_hash"],
        language=values["language"],
        page_url=values["page_url"],
        region=values["region"],
        regime=values["regime"],
        gpc=bool(values["gpc"]),
        ip_masked=values["ip_masked"],
        user_agent=values["user_agent"],
    )
    return StoredEvent(
        seq=int(values["seq"]),
        event=event,
        chain_id=values["chain_id"],
        chain_seq=int(values["chain_seq"]),
        prev_hash=values["prev_hash"],
        hash=values["hash"],
        erased=bool(values["erased"]),
    )
