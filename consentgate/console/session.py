"""The console's session: a signed cookie naming an API token, with a CSRF secret.

Sign-in takes an API token (``consentgate tokens create``); the session cookie holds
only the token's id, a random CSRF secret and the time of the last request, signed
with the server's keys (itsdangerous, salt ``consentgate.console-session``, newest
key signs, every key verifies). Every request re-reads the token record, so a
revoked token ends its sessions at once. The cookie is ``HttpOnly``,
``SameSite=Strict``, ``Path=<prefix>/admin``, ``Secure`` on HTTPS, and has no
``Max-Age`` (gone with the browser); a session idle for :data:`IDLE_SECONDS` is over.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["COOKIE", "IDLE_SECONDS", "SALT", "Session", "SessionCodec"]

COOKIE = "consentgate_console"
SALT = "consentgate.console-session"
#: A session unused this long is over (seconds).
IDLE_SECONDS = 30 * 60


@dataclass(frozen=True, slots=True)
class Session:
    token_id: str
    csrf: str
    seen: int  # unix time of the last request

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, presented or "")


class SessionCodec:
    def __init__(self, secret_keys: Sequence[str], idle: int = IDLE_SECONDS) -> None:
        self._s = URLSafeSerializer(list(reversed(list(secret_keys))), salt=SALT)
        self.idle = idle

    def new(self, token_id: str) -> Session:
        return Session(token_id, secrets.token_urlsafe(24), int(time.time()))

    def dumps(self, session: Session) -> str:
        return str(self._s.dumps([session.token_id, session.csrf, session.seen]))

    def loads(self, value: str | None, now: float | None = None) -> Session | None:
        """The session, or None: missing, forged, malformed or idle too long."""
        if not value:
            return None
        try:
            token_id, csrf, seen = self._s.loads(value)
        except (BadSignature, ValueError, TypeError):
            return None
        if not (isinstance(token_id, str) and isinstance(csrf, str) and isinstance(seen, int)):
            return None
        if (now if now is not None else time.time()) - seen > self.idle:
            return None
        return Session(token_id, csrf, seen)

    def touched(self, session: Session, now: float | None = None) -> Session:
        """The session, used now (the idle timeout starts again)."""
        return Session(session.token_id, session.csrf, int(now if now is not None else time.time()))
