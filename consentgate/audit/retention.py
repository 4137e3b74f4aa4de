"""Retention: which records a purge deletes and the checkpoints that keep the rest
verifiable. Pure logic; the store deletes and saves in one transaction.

Each site keeps its records for ``Site.effective_retention_days`` (default: consent
lifetime + 365 days). Segments mix sites, so a purge can delete records from the
middle of a segment. For every maximal run of deleted positions the purge stores a
signed :class:`~consentgate.store.base.PurgeCheckpoint` (``first_seq..last_seq`` and
the hash of the last deleted record); runs that touch an existing checkpoint are
merged into one, so a segment never needs more checkpoints than it has gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby

from ..config import Site
from ..store.base import PurgeCheckpoint
from .proofs import PURGE_SALT, KeyedSigner, checkpoint_message

__all__ = ["CheckpointPlan", "cutoff", "plan_checkpoints"]


def cutoff(site: Site, now: datetime | None = None) -> datetime:
    """Records of ``site`` created before this instant are past retention."""
    return (now or datetime.now(UTC)) - timedelta(days=site.effective_retention_days)


class CheckpointPlan:
    """The ``plan`` callable a store's ``purge`` calls for each deleted batch."""

    def __init__(self, secret_keys: Sequence[str], now: datetime | None = None) -> None:
        self.signer = KeyedSigner(secret_keys, PURGE_SALT)
        self.now = now

    def __call__(
        self, deleted: list[tuple[str, int, str]], existing: list[PurgeCheckpoint]
    ) -> tuple[list[PurgeCheckpoint], list[PurgeCheckpoint]]:
        return plan_checkpoints(deleted, existing, self.signer, self.now or datetime.now(UTC))


def plan_checkpoints(
    deleted: list[tuple[str, int, str]],
    existing: list[PurgeCheckpoint],
    signer: KeyedSigner,
    now: datetime,
) -> tuple[list[PurgeCheckpoint], list[PurgeCheckpoint]]:
    """Checkpoints to save and to remove after deleting ``(chain_id, chain_seq, hash)``.

    ``existing`` are the checkpoints already stored for the chains involved.
    """
    # intervals per chain: (first, last, last_hash, old checkpoint or None)
    by_chain: dict[str, list[tuple[int, int, str, PurgeCheckpoint | None]]] = {}
    for cp in existing:
        by_chain.setdefault(cp.chain_id, []).append((cp.first_seq, cp.last_seq, cp.last_hash, cp))
    for chain_id, rows in groupby(sorted(deleted), key=lambda r: r[0]):
        for _, pos, digest in rows:
            by_chain.setdefault(chain_id, []).append((pos, pos, digest, None))
    upsert: list[PurgeCheckpoint] = []
    remove: list[PurgeCheckpoint] = []
    for chain_id, intervals in by_chain.items():
        intervals.sort(key=lambda i: i[0])
        merged: list[tuple[int, int, str, list[PurgeCheckpoint | None]]] = []
        for first, last, digest, old in intervals:
            if merged and first <= merged[-1][1] + 1:
                m_first, m_last, m_digest, olds = merged[-1]
                if last > m_last:
                    m_last, m_digest = last, digest
                merged[-1] = (m_first, m_last, m_digest, [*olds, old])
            else:
                merged.append((first, last, digest, [old]))
        for first, last, digest, olds in merged:
            previous = [o for o in olds if o is not None]
            if len(previous) == len(olds):  # nothing new in this interval
                continue
            remove.extend(previous)
            message = checkpoint_message(chain_id, first, last, digest)
            upsert.append(PurgeCheckpoint(chain_id, first, last, digest, signer.sign(message), now))
    return upsert, remove
