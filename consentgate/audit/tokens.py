"""API tokens for the admin/auditor HTTP API.

A token reads ``cgt_<id>_<secret>``: ``id`` (12 hex digits) names it in lists and
in the action log; ``secret`` is 256 random bits. Only ``sha256(token)`` is
stored; a presented token's hash is compared with every stored one with
:func:`hmac.compare_digest` (constant time, and the same work whichever id the
token names, so an id's existence cannot be timed). The token itself is shown once, when it is
created, and never logged: :func:`redact` replaces anything token-shaped.

Roles: ``admin`` may do everything; ``auditor`` may export, view subjects, read the
console and run ``verify`` from it, but not erase, classify or manage tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from ..errors import ConsentGateError
from ..store.base import ApiToken, ConsentStore

__all__ = [
    "PREFIX",
    "ROLES",
    "TokenError",
    "authenticate",
    "can",
    "hash_token",
    "issue",
    "new_token",
    "parse_token",
    "printable",
    "redact",
]

PREFIX = "cgt_"
ROLES = ("admin", "auditor")
#: What each role may do.
_READ = frozenset({"export", "subject.show", "subject.export", "console.read", "verify"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": _READ | {"subject.erase", "tokens", "discovery.classify"},
    "auditor": _READ,
}
_TOKEN_RE = re.compile(r"cgt_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class TokenError(ConsentGateError, ValueError):
    """A malformed token or a bad role."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """``(token_id, token)`` -- fresh randomness from :mod:`secrets`."""
    token_id = secrets.token_hex(6)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> str:
    """The id part of a well-formed token; :class:`TokenError` otherwise."""
    if not _TOKEN_RE.fullmatch(token):
        raise TokenError("not a consentgate API token (expected cgt_<id>_<secret>)")
    return token[len(PREFIX) : len(PREFIX) + 12]


def can(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def redact(text: str) -> str:
    """``text`` with anything token-shaped replaced by ``cgt_<id>_***``."""
    return _TOKEN_RE.sub(lambda m: m.group(0)[:16] + "_***", text)


async def issue(store: ConsentStore, role: str, name: str = "") -> tuple[ApiToken, str]:
    """Create and store a token; returns the record and the token (shown once)."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    token_id, token = new_token()
    record = ApiToken(token_id, role, name, hash_token(token), datetime.now(UTC))
    await store.add_token(record)
    return record, token


async def authenticate(store: ConsentStore, token: str) -> ApiToken | None:
    """The active token record matching ``token``, or None.

    The work does not depend on which id the token names: every stored token is read
    and compared (there are few), so whether an id exists cannot be timed.
    """
    try:
        token_id = parse_token(token)
    except TokenError:
        token_id = ""
    presented = hash_token(token)
    found = None
    for record in await store.list_tokens():
        same_hash = hmac.compare_digest(record.token_hash, presented)
        if same_hash and record.token_id == token_id and record.revoked_at is None:
            found = record
    return found


def printable(text: str) -> bool:
    """No control characters and no lone surrogates (not storable as UTF-8)."""
    return _UNPRINTABLE.search(text) is None
