"""Streaming export: records -> CSV or JSON Lines bytes, plus the manifest.

:func:`export_stream` is shared by ``consentgate export`` and
``GET /_consent/admin/api/export``. It takes the log in encoded pages
(``store.iter_pages``), bounded by one consistent :class:`LogSnapshot` so rows
appended during a long export are not half-included, and keeps running totals (row
count, SHA-256 of every byte, time and ``seq`` range, per-chain positions) that become
the signed :class:`~consentgate.audit.manifest.Manifest`. Memory is a page or two,
whatever the log's size.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..store.base import ConsentStore, EventFilter
from ..store.pages import ExportPage
from .columns import EXPORT_COLUMNS, format_time
from .formats import CsvEncoder, Encoder, JsonlEncoder
from .manifest import Manifest

__all__ = ["ExportStats", "encoder_for", "export_stream", "filter_json"]


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

    def add_page(self, page: ExportPage) -> None:
        if not self.rows:
            self.first_created_at, self.last_created_at = page.created_min, page.created_max
            self.first_seq = page.first_seq
        else:
            self.first_created_at = min(self.first_created_at, page.created_min)
            self.last_created_at = max(self.last_created_at, page.created_max)
        self.last_seq = page.last_seq
        self.rows += page.rows
        for chain_id, rows, first_chain_seq, last_chain_seq, last_hash in page.chains:
            fresh = {"rows": 0, "first_chain_seq": first_chain_seq}
            info = self.chains.setdefault(chain_id, fresh)
            info["rows"] += rows
            info["last_chain_seq"], info["last_hash"] = last_chain_seq, last_hash

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
    actions = await store.action_head()
    encoder = encoder_for(stats.fmt, bom=stats.bom)
    header = encoder.header()
    if header:
        stats.add_bytes(header)
        yield header
    # aclosing: a reader that stops early (a client gone) closes the store's read
    # (and its transaction) now, not whenever the generator is collected
    pages = store.iter_pages(flt, encoder, max_seq=snap.max_seq, batch=batch)
    async with contextlib.aclosing(pages):
        async for page in pages:
            stats.add_page(page)
            stats.add_bytes(page.data)
            yield page.data
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
                    "ed25519": h.ed25519,
                }
                for h in snap.heads
            ],
            action_head=(
                None
                if actions is None
                else {
                    "count": actions.count,
                    "hash": actions.hash,
                    "signature": actions.signature,
                    "ed25519": actions.ed25519,
                }
            ),
        )
    )
