"""The storage interface every consent-log backend implements.

Exceptions::

    StoreError                 any storage failure (carries the backend's message)

Durability promise: ``append`` returns only after the event's transaction is
durable (SQLite WAL + synchronous=FULL; PostgreSQL commit). Concurrent appends are
batched into one transaction by a single writer (group commit).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from ..consent import CATEGORIES
from ..errors import ConsentGateError

if TYPE_CHECKING:
    from .discovery import Classification, Sighting
    from .pages import ExportPage, PageEncoder
    from .rollups import RollupRow

__all__ = [
    "EVENT_FIELDS",
    "ActionHead",
    "ApiToken",
    "Attester",
    "AuditAction",
    "ChainHead",
    "CheckpointPlanner",
    "ConsentEvent",
    "ConsentStore",
    "Erasure",
    "EventFilter",
    "LogSnapshot",
    "PurgeCheckpoint",
    "StoreError",
    "StoredEvent",
    "batches",
]


class StoreError(ConsentGateError):
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
    ed25519: str = ""  # Ed25519 over chain.head_statement ("" before key pairs)


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

    # -- discovery (store/discovery.py) ---------------------------------------------------

    async def add_sightings(self, rows: list[Sighting]) -> None:
        """Add counts of what the pages set and load (first/last seen merged)."""
        raise self._unsupported("discovery")

    async def sightings(self, site_id: str) -> list[Sighting]:
        raise self._unsupported("discovery")

    async def classify(self, classification: Classification) -> None:
        """Store (or replace) a classification; other nodes learn of it."""
        raise self._unsupported("discovery")

    async def classifications(self) -> list[Classification]:
        raise self._unsupported("discovery")

    async def listen_classified(
        self, callback: Callable[[], Awaitable[None] | None]
    ) -> Callable[[], Awaitable[None]] | None:
        """Call ``callback`` when another node classifies; None: the backend cannot
        tell (the caller polls :meth:`classifications`)."""
        return None

    async def rollup_rows(self, site_id: str, since: date, until: date) -> list[RollupRow]:
        """``site_id``'s daily rollups (:mod:`~consentgate.store.rollups`) for days
        ``since`` (inclusive) to ``until`` (exclusive): kept by the writer, never a scan
        of the log."""
        raise self._unsupported("rollups")

    async def __aenter__(self) -> ConsentStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- auditor tools -------------------------------------------------------------------
    # Backend-neutral logic (chain walking, checkpoint planning, signatures) lives in
    # consentgate/audit/; a backend only stores and fetches. A backend that does not
    # implement one yet raises StoreError naming it (the auditor commands report it).

    def _unsupported(self, what: str) -> StoreError:
        return StoreError(f"{type(self).__name__} does not support {what} yet")

    #: Set by command-line tools, whose process serves nobody else: a backend may then
    #: read in the calling thread, blocking the event loop (faster for big exports).
    reads_may_block: bool = False

    async def snapshot(self) -> LogSnapshot:
        """Chain heads and the highest ``seq``, consistent with each other."""
        raise self._unsupported("snapshot")

    async def iter_rows(
        self, flt: EventFilter | None = None, *, max_seq: int | None = None, batch: int = 5000
    ) -> AsyncIterator[list[tuple[object, ...]]]:
        """Matching records as batches of tuples in ``audit.columns.EXPORT_COLUMNS``
        order, ``seq`` order, constant memory: text as ``str`` (never None), ``seq`` and
        ``chain_seq`` as ``int``, booleans as 0/1 or bool, ``created_at`` as stored text
        (``chain.format_time`` form)."""
        raise self._unsupported("iter_rows")
        yield []  # pragma: no cover - makes this an async generator

    async def iter_pages(
        self,
        flt: EventFilter | None,
        encoder: PageEncoder,
        *,
        max_seq: int | None = None,
        batch: int = 5000,
    ) -> AsyncIterator[ExportPage]:
        """:meth:`iter_rows` batches encoded by ``encoder``, with their summaries (never an
        empty page). A backend may read and encode in one step, as long as the bytes are
        ``encoder.encode``'s for the same batches."""
        from .pages import ExportPage  # pages.py needs records.py, which needs this module

        rows_in = self.iter_rows(flt, max_seq=max_seq, batch=batch)
        # aclosing: a reader that stops early closes the backend's read (and its
        # transaction) now, not whenever the generator is collected
        async with contextlib.aclosing(rows_in):
            async for rows in rows_in:
                if rows:
                    yield ExportPage.of(rows, encoder.encode(rows))

    async def purge_checkpoints(self) -> list[PurgeCheckpoint]:
        """Every purge checkpoint."""
        raise self._unsupported("purge_checkpoints")

    async def purge(
        self, site_id: str, before: datetime, plan: CheckpointPlanner, *, batch: int = 5000
    ) -> int:
        """Delete ``site_id``'s records created before ``before`` (in batches, each one
        transaction with its checkpoints from ``plan(deleted, existing_for_those_chains)``
        -> ``(upsert, remove)``; deleted = ``(chain_id, chain_seq, hash)``). Deleted
        content is overwritten, not left in free pages. Returns the number deleted."""
        raise self._unsupported("purge")

    async def erasures(self) -> list[Erasure]:
        """Every erasure attestation."""
        raise self._unsupported("erasures")

    async def erase(self, consent_id: str, attest: Attester) -> int:
        """Blank the personal fields of ``consent_id``'s records not yet erased, storing
        ``attest(record)`` for each in the same transaction; overwrite the old bytes.
        Returns how many records were erased."""
        raise self._unsupported("erase")

    async def add_token(self, token: ApiToken) -> None:
        raise self._unsupported("API tokens")

    async def get_token(self, token_id: str) -> ApiToken | None:
        raise self._unsupported("API tokens")

    async def list_tokens(self) -> list[ApiToken]:
        raise self._unsupported("API tokens")

    async def revoke_token(self, token_id: str, at: datetime) -> bool:
        """Mark revoked; False when there is no such active token."""
        raise self._unsupported("API tokens")

    async def log_action(self, action: AuditAction) -> None:
        """Record an auditor/admin action (durable before returning), linked into the
        action chain (``chain.action_hash``) and moving its signed :class:`ActionHead`
        in the same transaction."""
        raise self._unsupported("the action log")

    async def iter_actions(self) -> AsyncIterator[AuditAction]:
        """Recorded actions, oldest first."""
        raise self._unsupported("the action log")
        yield AuditAction(datetime.min, "", "")  # pragma: no cover

    async def action_head(self) -> ActionHead | None:
        """The action chain's signed head (None before the first chained action)."""
        raise self._unsupported("the action log")


# -- auditor tools (consentgate/audit/): purge checkpoints, erasures, tokens, actions ------


@dataclass(frozen=True, slots=True)
class PurgeCheckpoint:
    """Records ``first_seq..last_seq`` of ``chain_id`` were deleted by retention;
    ``last_hash`` is the hash of the last of them (what the next record links to).
    ``signature``: :class:`consentgate.audit.proofs.KeyedSigner` (purge salt)."""

    chain_id: str
    first_seq: int
    last_seq: int
    last_hash: str
    signature: str
    purged_at: datetime


@dataclass(frozen=True, slots=True)
class Erasure:
    """Attestation stored when a record's personal fields were erased: the record
    (``seq``, chain position, ``hash``) was intact, and its kept fields hash to
    ``fields_digest``."""

    seq: int
    chain_id: str
    chain_seq: int
    hash: str
    fields_digest: str
    signature: str
    erased_at: datetime


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """Chain heads and the highest ``seq``, read in one transaction."""

    heads: list[ChainHead]
    max_seq: int


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as stored: never the token itself, only its SHA-256."""

    token_id: str
    role: str  # admin | auditor
    name: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditAction:
    """Who (``actor``: ``token:<id>`` or ``cli``) did what, when."""

    at: datetime
    actor: str
    action: str  # export | subject.show | subject.export | subject.erase | token.* | purge
    detail: dict[str, object] = field(default_factory=dict)
    id: int = 0
    #: the action chain (``consentgate.chain.action_hash``); "" for actions logged before
    #: the chain existed
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class ActionHead:
    """The signed head of the audit action chain: how many chained actions, the last
    one's hash (signature: :class:`consentgate.chain.HeadSigner` over
    ``audit-actions|count|hash``)."""

    count: int
    hash: str
    signature: str
    updated_at: datetime
    ed25519: str = ""  # Ed25519 over chain.head_statement("audit-actions", count, hash)


#: ``purge`` asks this to turn deleted rows + existing checkpoints into new checkpoints.
CheckpointPlanner = Callable[
    [list[tuple[str, int, str]], list[PurgeCheckpoint]],
    tuple[list[PurgeCheckpoint], list[PurgeCheckpoint]],
]
#: ``erase`` asks this for an attestation of each record before blanking it.
Attester = Callable[[StoredEvent], Erasure]


T = TypeVar("T")


async def batches(queue: asyncio.Queue[T | None], limit: int) -> AsyncIterator[list[T]]:
    """The group-commit loop of a single writer: each batch is everything queued (up
    to ``limit``) while the previous one was being committed; ends after the ``None``
    sentinel, once what was queued before it is yielded."""
    stop = False
    while not stop:
        item = await queue.get()
        batch: list[T] = []
        if item is None:
            stop = True
        else:
            batch.append(item)
        while len(batch) < limit and not queue.empty():
            more = queue.get_nowait()
            if more is None:
                stop = True
            else:
                batch.append(more)
        if batch:
            yield batch


class QueuedAppend:
    """``append`` for a store with a single writer task: the event goes on
    ``self._queue`` with a future that the writer resolves after its commit."""

    _queue: asyncio.Queue[tuple[ConsentEvent, asyncio.Future[StoredEvent]] | None]
    _writer_task: asyncio.Task[None] | None
    _closing: bool

    async def append(self, event: ConsentEvent) -> StoredEvent:
        if self._writer_task is None or self._closing or self._writer_task.done():
            raise StoreError("the consent log is not open")
        if event.created_at.tzinfo is None:
            raise StoreError("created_at must be timezone-aware (UTC)")
        future: asyncio.Future[StoredEvent] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def close(self) -> None:
        """Let the writer commit what is queued, stop it, then disconnect."""
        self._closing = True
        if self._writer_task is not None:
            self._queue.put_nowait(None)  # drain what is queued, then stop
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        await self._close_connections()

    async def _close_connections(self) -> None:
        raise NotImplementedError
