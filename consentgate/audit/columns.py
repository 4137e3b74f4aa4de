"""Export columns: what an auditor's file holds, in which order, in which form.

The columns are :data:`consentgate.store.records.EXPORT_COLUMNS`: ``seq``, the
:data:`~consentgate.store.base.EVENT_FIELDS`, the record's place in the
tamper-evident log (``chain_id``, ``chain_seq``, ``prev_hash``, ``hash``) and
``erased``. A :data:`Row` holds them in that order as ``str``, ``int`` or
``bool``/0-1; ``created_at`` is ISO 8601 UTC with microseconds and a ``Z``
(:func:`consentgate.chain.format_time`: fixed width, so it sorts as text).

Documented column by column in ``docs/consent-log.md``; a test keeps the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..chain import format_time
from ..consent import CATEGORIES
from ..store.records import EXPORT_COLUMNS
from ..store.records import parse_time as _parse_stored_time

__all__ = [
    "BOOL_COLUMNS",
    "EXPORT_COLUMNS",
    "INT_COLUMNS",
    "PERSONAL_FIELDS",
    "Row",
    "format_time",
    "parse_time",
]

BOOL_COLUMNS: frozenset[str] = frozenset({*CATEGORIES, "gpc", "erased"})
INT_COLUMNS: frozenset[str] = frozenset({"seq", "chain_seq"})
#: Fields a subject erasure blanks (the rest proves the decision).
PERSONAL_FIELDS: tuple[str, ...] = ("ip_masked", "user_agent", "page_url")

Row = tuple[Any, ...]


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant; ``Z`` or an offset, UTC when it has none."""
    dt = _parse_stored_time(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
