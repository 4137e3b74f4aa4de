"""The consent log: an append-only, tamper-evident event store.

``open_store(url)`` picks the backend from the database URL:
``sqlite:///path`` -> :class:`~consentgate.store.sqlite.SQLiteStore`,
``postgresql://...`` -> :class:`~consentgate.store.postgres.PostgresStore`.
The API layer only ever sees :class:`~consentgate.store.base.ConsentStore`.
"""

from __future__ import annotations

from .base import ChainHead, ConsentEvent, ConsentStore, EventFilter, StoredEvent, StoreError

__all__ = [
    "ChainHead",
    "ConsentEvent",
    "ConsentStore",
    "EventFilter",
    "StoreError",
    "StoredEvent",
    "open_store",
]


def open_store(url: str, **options: object) -> ConsentStore:
    """A store for ``url`` (not yet opened: ``await store.open()``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), **options)  # type: ignore[arg-type]
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, **options)  # type: ignore[arg-type]
    raise StoreError(f"unsupported database URL {url!r}; use sqlite:///PATH or postgresql://...")
