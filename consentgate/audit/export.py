"""Streaming export: records -> CSV or JSON Lines bytes, plus the manifest.

:func:`export_stream` is shared by ``consentgate export`` and
``GET /_consent/admin/api/export``. It reads the log in batches
(``store.iter_rows``), bounded by one consistent :class:`LogSnapshot` so rows
appended during a long export are not half-included, encodes each batch, and
keeps running totals (row count, SHA-256 of every byte, time and ``seq`` range,
per-chain positions) that become the signed :class:`~consentgate.audit.manifest.Manifest`.
Memory is one batch, whatever the log's size.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from ..store.base import ConsentStore, EventFilter
from .columns import EXPORT_COLUMNS, format_time
from .formats import CsvEncoder, Encoder, JsonlEncoder
from .manifest import Manifest

__all__ = ["ExportStats", "encoder_for", "export_stream", "filter_json"]

_CREATED = EXPORT_COLUMNS.index("created_at")
_SEQ = EXPORT_COLUMNS.index("seq")
_CHAIN = EXPORT_COLUMNS.index("chain_id")
_CHAIN_SEQ = EXPORT_COLUMNS.index("chain_seq")
_HASH = EXPORT_COLUMNS.index("hash")
_created = itemgetter(_CREATED)
_chain = itemgetter(_CHAIN)


def encoder_for(fmt: str, *, bom: bool = False) -> Encoder:
    if fmt == "csv":
        return CsvEncoder(bom=bom)
    if fmt == "jsonl":
        return JsonlEncoder()
    raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")


def filter_json(flt: EventFilter) -> dict[str, str]:
    """The filters that were applied, for the manifest and the action log."""
    out: dict[str, str] = {}
    for name in ("site_id", "consent_id", "method", "region", "regime"):
        value = getattr(flt, name)
        if value is not None:
            out[name] = value
    if flt.since is not None:
        out["since"] = format_time(flt.since)
    if flt.until is not None:
        out["until"] = format_time(flt.until)
    return out


@dataclass
class ExportStats:
    """Running totals while the bytes go out."""

    fmt: str
    bom: bool = False
    rows: int = 0
    size: int = 0
    first_created_at: str = ""
    last_created_at: str = ""
    first_seq: int = 0
    last_seq: int = 0
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    _sha: Any = field(default_factory=hashlib.sha256)

    def add_bytes(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)

    def add_rows(self, rows: list[tuple[Any, ...]]) -> None:
        created = list(map(_created, rows))
        lo, hi = min(created), max(created)
        if not self.rows:
            self.first_created_at, self.last_created_at = lo, hi
            self.first_seq = rows[0][_SEQ]
        else:
            self.first_created_at = min(self.first_created_at, lo)
            self.last_created_at = max(self.last_created_at, hi)
        self.last_seq = rows[-1][_SEQ]
        self.rows += len(rows)
        chains = set(map(_chain, rows))
        if len(chains) == 1:  # the usual batch: one writer's records
            self._chain(rows[0], rows[-1], len(rows))
            return
        for cid, n in Counter(map(_chain, rows)).items():
            mine = [r for r in rows if r[_CHAIN] == cid]
            self._chain(mine[0], mine[-1], n)

    def _chain(self, first: tuple[Any, ...], last: tuple[Any, ...], n: int) -> None:
        fresh = {"rows": 0, "first_chain_seq": first[_CHAIN_SEQ]}
        info = self.chains.setdefault(first[_CHAIN], fresh)
        info["rows"] += n
        info["last_chain_seq"], info["last_hash"] = last[_CHAIN_SEQ], last[_HASH]

    @property
    def sha256(self) -> str:
        return str(self._sha.hexdigest())


async def export_stream(
    store: ConsentStore,
    flt: EventFilter,
    stats: ExportStats,
    manifest_out: list[Manifest],
    *,
    batch: int = 5000,
) -> AsyncIterator[bytes]:
    """Yield the file's bytes; when exhausted, append the unsigned manifest to
    ``manifest_out`` (the caller signs it and names the file)."""
    snap = await store.snapshot()
    encoder = encoder_for(stats.fmt, bom=stats.bom)
    header = encoder.header()
    if header:
        stats.add_bytes(header)
        yield header
    # aclosing: a reader that stops early (a client gone) closes the store's read
    # (and its transaction) now, not whenever the generator is collected
    rows_in = store.iter_rows(flt, max_seq=snap.max_seq, batch=batch)
    async with contextlib.aclosing(rows_in):
        async for rows in rows_in:
            if not rows:
                continue
            data = encoder.encode(rows)
            stats.add_rows(rows)
            stats.add_bytes(data)
            yield data
    manifest_out.append(
        Manifest(
            file="",
            format=stats.fmt,
            bom=stats.bom,
            columns=list(EXPORT_COLUMNS),
            rows=stats.rows,
            bytes=stats.size,
            sha256=stats.sha256,
            first_created_at=stats.first_created_at,
            last_created_at=stats.last_created_at,
            first_seq=stats.first_seq,
            last_seq=stats.last_seq,
            filters=filter_json(flt),
            exported_at=format_time(datetime.now(UTC)),
            log_max_seq=snap.max_seq,
            chains=stats.chains,
            heads=[
                {
                    "chain_id": h.chain_id,
                    "chain_seq": h.chain_seq,
                    "hash": h.hash,
                    "signature": h.signature,
                }
                for h in snap.heads
            ],
        )
    )
