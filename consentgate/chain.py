"""The consent log's hash chain: canonical record encoding, link hashes, signed heads.

Pure logic, shared by every store backend and by the auditor tools (``verify``).
The format is documented in ``docs/consent-log.md``; in short:

* every store writer opens a new **chain segment** when it starts: a random
  ``chain_id`` whose first record links to ``prev_hash = "genesis:" + chain_id``;
* each record's ``hash = sha256(prev_hash.encode("ascii") + canonical(record))``
  as lowercase hex, and ``chain_seq`` counts 1, 2, 3, ... within the segment;
* the segment's head (``chain_id``, last ``chain_seq``, last ``hash``) is written in
  the same transaction as the records, with an HMAC signature
  (:class:`HeadSigner`) so that truncating the log or rewriting a whole segment
  needs the server's secret key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from itsdangerous import BadSignature, Signer

from .store.base import EVENT_FIELDS, AuditAction, ConsentEvent

__all__ = [
    "ACTIONS_CHAIN",
    "GENESIS_PREFIX",
    "HEAD_SALT",
    "ActionLink",
    "ChainState",
    "HeadSigner",
    "action_detail_json",
    "action_hash",
    "canonical",
    "canonical_row",
    "format_time",
    "genesis",
    "head_message",
    "head_statement",
    "link_action",
    "link_hash",
    "new_chain_id",
]

GENESIS_PREFIX = "genesis:"
HEAD_SALT = "consentgate.chain-head"


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: ``2026-01-02T03:04:05.000006Z``."""
    if value.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (UTC)")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat ends in "+00:00" for UTC; same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # for years 1000-9999, at a fraction of its cost (twice per consent write).
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


# One encoder instance: json.dumps() with options builds a new encoder per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_row(row: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a flat record (the keys of ``EVENT_FIELDS``).

    Compact JSON with sorted keys, ASCII only (non-ASCII as ``\\uXXXX``); the five
    category columns and ``gpc`` are JSON booleans; ``created_at`` is a string in
    :func:`format_time`'s form.
    """
    doc: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = row[name]
        if isinstance(value, datetime):
            value = format_time(value)
        doc[name] = value
    return _CANONICAL_JSON.encode(doc).encode("ascii")


def canonical(event: ConsentEvent) -> bytes:
    """Canonical bytes of ``event``: the same bytes as :func:`canonical_row` of its
    row (the store's write path; ``tests/test_chain.py`` pins the equality)."""
    doc = event.row()  # the five categories are already booleans
    doc["created_at"] = format_time(event.created_at)
    doc["gpc"] = bool(event.gpc)
    return _CANONICAL_JSON.encode(doc).encode("ascii")


def link_hash(prev_hash: str, canonical_bytes: bytes) -> str:
    """``sha256(prev_hash bytes + canonical bytes)`` as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes).hexdigest()


def new_chain_id() -> str:
    """A random chain segment id (128 bits, hex)."""
    return secrets.token_hex(16)


#: The auditor actions' own chain (who exported, erased, ... what, when): one per log,
#: its head signed like a segment's under this reserved id (segments' ids are hex).
ACTIONS_CHAIN = "audit-actions"


def action_detail_json(detail: Mapping[str, Any]) -> str:
    """An audit action's ``detail`` as stored and hashed: JSON with sorted keys, after a
    JSON round trip (so keys are text and what is read back dumps to the same text)."""
    return json.dumps(json.loads(json.dumps(detail)), sort_keys=True)


def action_hash(prev_hash: str, action: AuditAction) -> str:
    """An audit action's link hash: its time, actor and action as a JSON array, then its
    detail as stored (:func:`action_detail_json`)."""
    head = json.dumps([format_time(action.at), action.actor, action.action], separators=(",", ":"))
    return link_hash(prev_hash, (head + action_detail_json(action.detail)).encode("ascii"))


@dataclass(frozen=True, slots=True)
class ActionLink:
    """Where an audit action goes in the action chain, and the head it moves to."""

    prev_hash: str
    hash: str
    count: int  # the head's count with this action
    signature: str  # the new head's ("" without a signer)
    ed25519: str = ""  # the new head's Ed25519 signature ("" without a key pair)


def link_action(
    head: tuple[int, str] | None, action: AuditAction, signer: HeadSigner | None
) -> ActionLink:
    """Link ``action`` after the action head ``(count, hash)`` (None: the chain is empty)."""
    count, prev = (int(head[0]), head[1]) if head else (0, genesis(ACTIONS_CHAIN))
    hash_ = action_hash(prev, action)
    signature = signer.sign(ACTIONS_CHAIN, count + 1, hash_) if signer else ""
    public = signer.sign_public(ACTIONS_CHAIN, count + 1, hash_) if signer else ""
    return ActionLink(prev, hash_, count + 1, signature, public)


def genesis(chain_id: str) -> str:
    """The ``prev_hash`` of a segment's first record."""
    return GENESIS_PREFIX + chain_id


def head_message(chain_id: str, chain_seq: int, hash_: str) -> bytes:
    """What a head signature covers: ``chain_id|chain_seq|hash``."""
    return f"{chain_id}|{chain_seq}|{hash_}".encode("ascii")


def head_statement(chain_id: str, chain_seq: int, hash_: str) -> str:
    """What a head's Ed25519 signature covers: ``chain-head|chain_id|chain_seq|hash``."""
    return "chain-head|" + head_message(chain_id, int(chain_seq), hash_).decode("ascii")


class PublicSigner(Protocol):
    """An Ed25519 key pair (``consentgate.audit.keys.SigningKey``)."""

    def sign(self, message: str) -> str: ...


class HeadSigner:
    """Signs chain heads with the newest secret key; verifies with any configured key.

    ``secret_keys`` newest first, as in ``Settings.secret_keys``. The signature is
    itsdangerous's HMAC signature (``Signer`` with salt ``consentgate.chain-head``,
    key derivation ``django-concat``, digest SHA-256), URL-safe base64 text.
    """

    def __init__(
        self, secret_keys: Sequence[str], public_signer: PublicSigner | None = None
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        #: also signs every head with the installation's Ed25519 key (checked with the
        #: public key alone); None: heads carry only the HMAC
        self.public_signer = public_signer
        # itsdangerous wants oldest -> newest and signs with the last.
        self._signer = Signer(
            list(reversed(list(secret_keys))), salt=HEAD_SALT, digest_method=hashlib.sha256
        )

    def sign(self, chain_id: str, chain_seq: int, hash_: str) -> str:
        return self._signer.get_signature(head_message(chain_id, chain_seq, hash_)).decode("ascii")

    def sign_public(self, chain_id: str, chain_seq: int, hash_: str) -> str:
        """The head's Ed25519 signature (``head_statement``), "" without a key pair."""
        if self.public_signer is None:
            return ""
        return self.public_signer.sign(head_statement(chain_id, chain_seq, hash_))

    def verify(self, chain_id: str, chain_seq: int, hash_: str, signature: str) -> bool:
        try:
            return self._signer.verify_signature(
                head_message(chain_id, chain_seq, hash_), signature.encode("ascii")
            )
        except (BadSignature, UnicodeEncodeError):
            return False


class ChainState:
    """A writer's position in its own segment. ``advance`` links one record."""

    __slots__ = ("chain_id", "chain_seq", "prev_hash")

    def __init__(self, chain_id: str | None = None) -> None:
        self.chain_id = chain_id or new_chain_id()
        self.chain_seq = 0
        self.prev_hash = genesis(self.chain_id)

    def advance(self, event: ConsentEvent) -> tuple[int, str, str]:
        """Link ``event``: returns ``(chain_seq, prev_hash, hash)`` and moves on."""
        prev = self.prev_hash
        digest = link_hash(prev, canonical(event))
        self.chain_seq += 1
        self.prev_hash = digest
        return self.chain_seq, prev, digest

    def snapshot(self) -> tuple[int, str]:
        return self.chain_seq, self.prev_hash

    def restore(self, snap: tuple[int, str]) -> None:
        """Undo ``advance`` calls after a failed transaction."""
        self.chain_seq, self.prev_hash = snap
