"""Subject requests by consent id: access, portability, erasure.

* **show / export**: every record of one consent id, as the export columns
  (the same JSON document serves ``consentgate subject export``, the admin API
  and the visitor's own receipt).
* **erase**: the personal fields (:data:`~consentgate.audit.columns.PERSONAL_FIELDS`:
  masked IP, user agent, page URL) are blanked and the record is flagged
  ``erased``; the decision itself (consent id, time, categories, method, policy
  version, banner hash, region, ...) stays. A record's hash covers the personal
  fields, so it can no longer be recomputed after an erasure; before blanking,
  each record is checked against its hash and a signed
  :class:`~consentgate.store.base.Erasure` attestation (position, hash, digest of
  the kept fields) is stored with it, which ``verify`` checks instead. Tampered
  records are refused, never laundered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..chain import canonical, link_hash
from ..errors import ConsentGateError
from ..store.base import ConsentStore, Erasure, EventFilter, StoredEvent
from ..store.records import export_record
from .columns import format_time
from .proofs import ERASURE_SALT, KeyedSigner, erasure_message, fields_digest

__all__ = ["Attester", "ErasureRefused", "erase_subject", "subject_document", "subject_records"]


class ErasureRefused(ConsentGateError):
    """A record of the subject does not match its hash: run ``consentgate verify``."""

    def __init__(self, record: StoredEvent) -> None:
        super().__init__(
            f"record seq {record.seq} does not match its hash; it was altered -- run "
            "`consentgate verify` before erasing"
        )
        self.record = record


async def subject_records(store: ConsentStore, consent_id: str) -> list[StoredEvent]:
    """Every record of ``consent_id`` (one visitor has a handful), oldest first."""
    return [r async for r in store.iter_events(EventFilter(consent_id=consent_id))]


def subject_document(consent_id: str, records: Sequence[StoredEvent]) -> dict[str, Any]:
    """The JSON document for access and portability requests."""
    return {
        "consent_id": consent_id,
        "generated_at": format_time(datetime.now(UTC)),
        "records": [export_record(r) for r in records],
    }


class Attester:
    """Checks a record against its hash and signs its erasure attestation."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self.signer = KeyedSigner(secret_keys, ERASURE_SALT)
        self.now = datetime.now(UTC)

    def __call__(self, record: StoredEvent) -> Erasure:
        if link_hash(record.prev_hash, canonical(record.event)) != record.hash:
            raise ErasureRefused(record)
        digest = fields_digest(record)
        message = erasure_message(record.chain_id, record.chain_seq, record.hash, digest)
        return Erasure(
            record.seq,
            record.chain_id,
            record.chain_seq,
            record.hash,
            digest,
            self.signer.sign(message),
            self.now,
        )


async def erase_subject(store: ConsentStore, consent_id: str, secret_keys: Sequence[str]) -> int:
    """Erase ``consent_id``'s personal fields; returns how many records changed."""
    return await store.erase(consent_id, Attester(secret_keys))
