"""The consent model and its signed cookie codec.

Pure logic: nothing here knows about HTTP. The web layer turns a request's
``consentgate`` cookie into a :class:`Consent` with :meth:`ConsentCodec.loads`
and back with :meth:`ConsentCodec.dumps`.

Cookie payload (compact JSON, then signed with itsdangerous)::

    {"i": consent_id, "g": granted bitmask, "v": policy_version,
     "t": given_at (unix s), "e": expires_at (unix s), "s": site_id,
     "r": regime, "p": 1 if GPC was on}

Key rotation: ``secret_keys`` is newest first (as in ``CONSENTGATE_SECRET_KEYS``);
the newest key signs, every key verifies.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from itsdangerous import BadData, BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from .errors import ConsentGateError

__all__ = [
    "CATEGORIES",
    "NON_NECESSARY",
    "Consent",
    "ConsentCodec",
    "CookieRejected",
    "EventType",
    "Method",
    "new_consent_id",
    "parse_categories",
]

#: Fixed, ordered category ids. The order defines the cookie bitmask.
CATEGORIES: tuple[str, ...] = (
    "necessary",
    "preferences",
    "statistics",
    "marketing",
    "unclassified",
)
NON_NECESSARY: tuple[str, ...] = CATEGORIES[1:]

COOKIE_NAME = "consentgate"
COOKIE_SALT = "consentgate.consent-cookie.v1"
# itsdangerous's compact JSON, one encoder instance for the hot path.
_COOKIE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: Hard upper bound on the cookie lifetime (browsers cap at 400 days).
MAX_LIFETIME_DAYS = 400


class Method(StrEnum):
    ACCEPT_ALL = "accept_all"
    REJECT_ALL = "reject_all"
    CUSTOM = "custom"
    CLOSE = "close"  # banner closed without a choice: refusal
    GPC = "gpc"  # recorded automatically from Global Privacy Control
    WITHDRAW = "withdraw"
    ACKNOWLEDGE = "acknowledge"  # notice regime
    OPT_OUT = "opt_out"  # "Do Not Sell or Share" in an opt-out regime


class EventType(StrEnum):
    INITIAL = "initial"
    UPDATE = "update"
    WITHDRAW = "withdraw"


class CookieRejected(ConsentGateError):
    """A consent cookie failed verification. ``reason`` is one of
    ``malformed``, ``bad_signature``, ``expired``, ``wrong_site``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_ID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes -> base-62 digits by one ``bytes.translate``: the 248 values below
# 4 * 62 map to ``value % 62`` (each digit exactly 4 times: uniform); 248-255 are
# dropped, so no digit is favoured.
_ID_DIGITS = bytes(_ID_ALPHABET[v % 62] for v in range(256))
_ID_DROP = bytes(range(4 * 62, 256))
_ID_LENGTH = 22


def new_consent_id() -> str:
    """A random, unguessable id: 22 base-62 characters (about 131 bits).

    Letters and digits only, so an id never begins with ``-`` (which a command line
    would read as an option) nor with a character that CSV-injection protection
    rewrites in exports. Event ids use the same generator.
    """
    # 32 random bytes keep 22 or more digits unless 11+ of them are dropped
    # (probability ~1e-9); then draw again. One os.urandom call per id: this runs
    # twice per consent write.
    while True:
        digits = secrets.token_bytes(32).translate(_ID_DIGITS, _ID_DROP)
        if len(digits) >= _ID_LENGTH:
            return digits[:_ID_LENGTH].decode("ascii")


def parse_categories(values: Any) -> frozenset[str]:
    """Validate a list of category ids; ``necessary`` is always included.

    Raises ``ValueError`` naming the bad value.
    """
    if not isinstance(values, list | tuple | set | frozenset):
        raise ValueError("granted must be a list of category ids")
    out = {"necessary"}
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"category ids are strings, got {type(v).__name__}")
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of {', '.join(CATEGORIES)}")
        out.add(v)
    return frozenset(out)


@functools.lru_cache(maxsize=256)
def _iso_second(t: int) -> str:
    """``2026-01-02T03:04:05Z`` (cached: consents given in one second share it)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _mask(granted: frozenset[str]) -> int:
    return sum(1 << i for i, c in enumerate(CATEGORIES) if c in granted)


def _unmask(mask: int) -> frozenset[str]:
    return frozenset(c for i, c in enumerate(CATEGORIES) if mask & (1 << i)) | {"necessary"}


@dataclass(frozen=True, slots=True)
class Consent:
    """One visitor's current consent, as carried by the cookie."""

    consent_id: str
    granted: frozenset[str]
    policy_version: str
    given_at: int
    expires_at: int
    site_id: str = "default"
    regime: str = "opt-in"
    gpc: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def allows(self, category: str) -> bool:
        return category == "necessary" or category in self.granted

    @property
    def refused(self) -> frozenset[str]:
        return frozenset(CATEGORIES) - self.granted

    def is_expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def with_granted(self, granted: frozenset[str]) -> Consent:
        return replace(self, granted=granted | {"necessary"})

    def to_json(self) -> dict[str, Any]:
        """The public API shape (``GET/POST /_consent/api/consent``)."""

        return {
            "consent_id": self.consent_id,
            "granted": [c for c in CATEGORIES if c in self.granted],
            "policy_version": self.policy_version,
            "given_at": _iso_second(self.given_at),
            "expires_at": _iso_second(self.expires_at),
            "site": self.site_id,
            "regime": self.regime,
            "gpc": self.gpc,
        }


# A leading "." marks a zlib-compressed payload: dumps() never writes one, but
# itsdangerous does when compressing is shorter, and such cookies stay valid.
_COOKIE_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _canonical_cookie(value: str) -> bool:
    """``payload.signature`` in URL-safe base64 exactly as :meth:`ConsentCodec.dumps`
    writes it. Base64 decoders forgive other spellings of the same bytes (``/`` for
    ``_``, different unused bits in the last character), so without this check a
    modified cookie could still verify."""
    if not _COOKIE_SHAPE.fullmatch(value):
        return False
    try:
        return all(
            base64_encode(base64_decode(part)) == part.encode("ascii")
            for part in value.removeprefix(".").split(".")
        )
    except BadData:
        return False


class ConsentCodec:
    """Signs and verifies the ``consentgate`` cookie.

    ``secret_keys`` newest first; at least one key, each at least 16 characters.
    """

    def __init__(self, secret_keys: list[str] | tuple[str, ...], salt: str = COOKIE_SALT) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        # itsdangerous takes keys oldest -> newest and signs with the last.
        self._serializer = URLSafeSerializer(list(reversed(list(secret_keys))), salt=salt)
        # dumps() is on every consent's hot path: derive the newest key's HMAC once
        # instead of per call (itsdangerous re-derives and also tries zlib each time).
        signer = self._serializer.make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = signer.sep.encode() if isinstance(signer.sep, str) else signer.sep

    def dumps(self, consent: Consent) -> str:
        payload: dict[str, Any] = {
            "i": consent.consent_id,
            "g": _mask(consent.granted),
            "v": consent.policy_version,
            "t": consent.given_at,
            "e": consent.expires_at,
            "s": consent.site_id,
        }
        if consent.regime != "opt-in":
            payload["r"] = consent.regime
        if consent.gpc:
            payload["p"] = 1
        # Exactly itsdangerous's URL-safe format (uncompressed variant), so loads()
        # verifies it with any key of the list.
        value = base64_encode(_COOKIE_JSON.encode(payload).encode("utf-8"))
        mac = self._mac.copy()
        mac.update(value)
        return (value + self._sep + base64_encode(mac.digest())).decode("ascii")

    def loads(self, value: str, *, site_id: str | None = None, now: float | None = None) -> Consent:
        """Verify and decode; raises :class:`CookieRejected` on any problem."""
        if not value or len(value) > 4096 or not _canonical_cookie(value):
            raise CookieRejected("malformed")
        try:
            data = self._serializer.loads(value)
        except BadSignature as exc:
            raise CookieRejected("bad_signature") from exc
        except (ValueError, json.JSONDecodeError) as exc:  # pragma: no cover - itsdangerous wraps
            raise CookieRejected("malformed") from exc
        try:
            consent = Consent(
                consent_id=str(data["i"]),
                granted=_unmask(int(data["g"])),
                policy_version=str(data["v"]),
                given_at=int(data["t"]),
                expires_at=int(data["e"]),
                site_id=str(data.get("s", "default")),
                regime=str(data.get("r", "opt-in")),
                gpc=bool(data.get("p", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CookieRejected("malformed") from exc
        if site_id is not None and consent.site_id != site_id:
            raise CookieRejected("wrong_site")
        if consent.is_expired(now):
            raise CookieRejected("expired")
        return consent
