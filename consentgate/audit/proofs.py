"""Signed statements the auditor tools add next to the hash chain.

Pure logic (no storage, no HTTP). Each statement is signed like a chain head: an
itsdangerous :class:`~itsdangerous.Signer` (SHA-256, a salt per purpose), newest
secret key signs, every configured key verifies.

* **Purge checkpoint** (salt ``consentgate.purge-checkpoint``): records
  ``first_seq..last_seq`` of chain ``chain_id`` were deleted by retention; the last
  of them had hash ``last_hash``. The record after the gap links to ``last_hash``.
* **Erasure attestation** (salt ``consentgate.erasure``): the record at
  ``chain_id``/``chain_seq`` with hash ``hash`` was checked intact when it was erased,
  and its remaining (non-personal) fields have digest ``fields_digest``.
* **Export manifest** (salt ``consentgate.export-manifest``): see
  :mod:`consentgate.audit.manifest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from itsdangerous import BadSignature, Signer

from ..store.base import EVENT_FIELDS, StoredEvent
from .columns import PERSONAL_FIELDS, format_time

__all__ = [
    "ERASURE_SALT",
    "MANIFEST_SALT",
    "PURGE_SALT",
    "KeyedSigner",
    "fields_digest",
]

PURGE_SALT = "consentgate.purge-checkpoint"
ERASURE_SALT = "consentgate.erasure"
MANIFEST_SALT = "consentgate.export-manifest"


class KeyedSigner:
    """HMAC signatures over text messages for one purpose (``salt``)."""

    def __init__(self, secret_keys: Sequence[str], salt: str) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self._signer = Signer(
            list(reversed(list(secret_keys))), salt=salt, digest_method=hashlib.sha256
        )

    def sign(self, message: str) -> str:
        return self._signer.get_signature(message.encode("utf-8")).decode("ascii")

    def verify(self, message: str, signature: str) -> bool:
        try:
            return self._signer.verify_signature(message.encode("utf-8"), signature.encode("ascii"))
        except (BadSignature, UnicodeEncodeError):
            return False


def fields_digest(stored: StoredEvent) -> str:
    """SHA-256 over the record's non-personal fields (what an erasure keeps)."""
    row = stored.event.row()
    doc = {}
    for name in EVENT_FIELDS:
        if name in PERSONAL_FIELDS:
            continue
        value = row[name]
        doc[name] = format_time(value) if isinstance(value, datetime) else value
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def checkpoint_message(chain_id: str, first_seq: int, last_seq: int, last_hash: str) -> str:
    return f"purge|{chain_id}|{first_seq}|{last_seq}|{last_hash}"


def erasure_message(chain_id: str, chain_seq: int, hash_: str, digest: str) -> str:
    return f"erase|{chain_id}|{chain_seq}|{hash_}|{digest}"
