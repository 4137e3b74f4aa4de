"""The storage interface every consent-log backend implements.

Exceptions::

    StoreError                 any storage failure (carries the backend's message)

Durability promise: ``append`` returns only after the event's transaction is
durable (SQLite WAL + synchronous=FULL; PostgreSQL commit). Concurrent appends are
batched into one transaction by a single writer (group commit).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from datetime import datetime

from ..consent import CATEGORIES

__all__ = [
    "EVENT_FIELDS",
    "ChainHead",
    "ConsentEvent",
    "ConsentStore",
    "EventFilter",
    "StoreError",
    "StoredEvent",
]


class StoreError(Exception):
    """A storage failure."""


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One decision, as the API layer records it. Personal fields arrive already
    minimised: ``ip_masked`` is never a full address; ``page_url`` has no query."""

    event_id: str
    consent_id: str
    site_id: str
    event_type: str  # initial | update | withdraw
    method: str
    created_at: datetime  # server UTC, tz-aware
    granted: frozenset[str]
    policy_version: str
    banner_hash: str = ""
    language: str = ""
    page_url: str = ""
    region: str = ""
    regime: str = "opt-in"
    gpc: bool = False
    ip_masked: str = ""
    user_agent: str = ""

    def row(self) -> dict[str, object]:
        """Flat dict: the five category booleans instead of ``granted``."""
        # Not dataclasses.asdict: its deep copies dominated the write path's CPU time.
        d: dict[str, object] = {name: getattr(self, name) for name in _EVENT_ATTRS}
        granted = self.granted
        for c in CATEGORIES:
            d[c] = c in granted
        return d


_EVENT_ATTRS: tuple[str, ...] = tuple(f.name for f in fields(ConsentEvent) if f.name != "granted")


#: Column order of exports and of the hashed canonical record.
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "consent_id",
    "site_id",
    "event_type",
    "method",
    "created_at",
    *CATEGORIES,
    "policy_version",
    "banner_hash",
    "language",
    "page_url",
    "region",
    "regime",
    "gpc",
    "ip_masked",
    "user_agent",
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: the event plus its place in the log and its hash chain."""

    seq: int  # global, increasing within a store
    event: ConsentEvent
    chain_id: str = ""  # writer segment the record belongs to
    chain_seq: int = 0  # position within that chain
    prev_hash: str = ""
    hash: str = ""
    erased: bool = False


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The signed head of one writer's chain segment (see ``docs/consent-log.md``)."""

    chain_id: str
    chain_seq: int  # last record's position in the segment
    hash: str  # last record's hash
    signature: str  # consentgate.chain.HeadSigner over chain_id|chain_seq|hash
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EventFilter:
    site_id: str | None = None
    consent_id: str | None = None
    method: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    region: str | None = None
    regime: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ConsentStore(abc.ABC):
    """An append-only consent log."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, run migrations, start the writer."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    @abc.abstractmethod
    async def append(self, event: ConsentEvent) -> StoredEvent:
        """Record ``event``; returns once it is durable."""

    @abc.abstractmethod
    async def latest(self, consent_id: str) -> StoredEvent | None:
        """The newest event for ``consent_id``."""

    @abc.abstractmethod
    def iter_events(self, flt: EventFilter | None = None) -> AsyncIterator[StoredEvent]:
        """Events in ``seq`` order, streamed (constant memory)."""

    @abc.abstractmethod
    async def count(self, flt: EventFilter | None = None) -> int:
        """How many events match."""

    @abc.abstractmethod
    async def chain_heads(self) -> list[ChainHead]:
        """Every chain segment's signed head, oldest first."""

    async def ping(self) -> bool:
        """Health check."""
        return True

    async def __aenter__(self) -> ConsentStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
