"""Row <-> event conversion shared by the SQL backends.

A stored row holds every field of :data:`~consentgate.store.base.EVENT_FIELDS`
(the five categories as booleans, ``created_at`` as ISO-8601 UTC text with
microseconds) plus ``seq``, the chain fields and ``erased``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..chain import format_time
from ..consent import CATEGORIES
from .base import EVENT_FIELDS, ConsentEvent, StoredEvent

__all__ = [
    "CHAIN_COLUMNS",
    "EXPORT_COLUMNS",
    "INSERT_COLUMNS",
    "event_values",
    "export_record",
    "parse_time",
    "stored_from_row",
]

CHAIN_COLUMNS: tuple[str, ...] = ("chain_id", "chain_seq", "prev_hash", "hash")
#: Columns an append writes (``seq`` is assigned by the database).
INSERT_COLUMNS: tuple[str, ...] = (*EVENT_FIELDS, *CHAIN_COLUMNS)
#: Keys of an exported record, in order (``erased``: see docs/audit.md).
EXPORT_COLUMNS: tuple[str, ...] = ("seq", *EVENT_FIELDS, *CHAIN_COLUMNS, "erased")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`consentgate.chain.format_time`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def event_values(
    event: ConsentEvent, chain_id: str, chain_seq: int, prev_hash: str, hash_: str
) -> tuple[Any, ...]:
    """Values for :data:`INSERT_COLUMNS`, in order (booleans as ints)."""
    granted = event.granted
    return (
        event.event_id,
        event.consent_id,
        event.site_id,
        event.event_type,
        event.method,
        format_time(event.created_at),
        *(1 if c in granted else 0 for c in CATEGORIES),
        event.policy_version,
        event.banner_hash,
        event.language,
        event.page_url,
        event.region,
        event.regime,
        1 if event.gpc else 0,
        event.ip_masked,
        event.user_agent,
        chain_id,
        chain_seq,
        prev_hash,
        hash_,
    )


def stored_from_row(row: Mapping[str, Any]) -> StoredEvent:
    """A :class:`StoredEvent` from a row mapping with the stored columns."""
    event = ConsentEvent(
        event_id=row["event_id"],
        consent_id=row["consent_id"],
        site_id=row["site_id"],
        event_type=row["event_type"],
        method=row["method"],
        created_at=parse_time(row["created_at"]),
        granted=frozenset(c for c in CATEGORIES if row[c]),
        policy_version=row["policy_version"],
        banner_hash=row["banner_hash"],
        language=row["language"],
        page_url=row["page_url"],
        region=row["region"],
        regime=row["regime"],
        gpc=bool(row["gpc"]),
        ip_masked=row["ip_masked"],
        user_agent=row["user_agent"],
    )
    return StoredEvent(
        seq=int(row["seq"]),
        event=event,
        chain_id=row["chain_id"],
        chain_seq=int(row["chain_seq"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        erased=bool(row["erased"]),
    )


def export_record(stored: StoredEvent) -> dict[str, Any]:
    """A JSON-ready flat record (:data:`EXPORT_COLUMNS`): categories and ``gpc`` as
    booleans, ``created_at`` as ISO-8601 UTC text. ``canonical_row`` of it is the
    hashed encoding."""
    row = stored.event.row()
    row["created_at"] = format_time(stored.event.created_at)
    row.update(
        seq=stored.seq,
        chain_id=stored.chain_id,
        chain_seq=stored.chain_seq,
        prev_hash=stored.prev_hash,
        hash=stored.hash,
        erased=stored.erased,
    )
    return {name: row[name] for name in EXPORT_COLUMNS}
