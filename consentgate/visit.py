"""What every request handler shares: the :class:`Runtime` and the visitor's consent.

This module sits below every feature (``api``, ``banner``, ``admin``, ``demo``, the
proxy, the middleware) and above the pure core (``config``, ``consent``, ``regions``):
features import it, never ``app`` (which only assembles them). Dependency direction::

    cli -> server -> app -> features -> page -> visit -> pure core

A :class:`Runtime` is built once per process by :class:`consentgate.app.ConsentGateApp`;
the services features share hang from it as typed fields, not by string key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import ASGIApp, Scope

from .config import Settings, Site
from .consent import COOKIE_NAME, Consent, ConsentCodec, CookieRejected
from .cookies import UndeclaredCookies
from .metrics import Metrics

if TYPE_CHECKING:
    from .regions import RegionDetector
    from .store import ConsentStore

__all__ = ["DiscoveryHooks", "Runtime", "cookie_value"]


@dataclass(frozen=True)
class DiscoveryHooks:
    """What the page pipeline tells the console's discovery (``consentgate.console``)."""

    #: the banner's report: cookie names in ``document.cookie`` with a decision
    #: ``(site, names, page URL)``
    script_cookies: Callable[[Site, list[str], str], None]
    #: the ``Content-Security-Policy-Report-Only`` value the proxy adds to pages
    report_only: bytes


@dataclass(eq=False)
class Runtime:
    """Everything a request handler needs; one per process (compared by identity)."""

    settings: Settings
    codec: ConsentCodec
    store: ConsentStore
    metrics: Metrics
    #: path (under the prefix) -> bare ASGI app served without Starlette's stack; a
    #: feature registers its hot endpoints here (``api`` does ``/api/consent``)
    fast_paths: dict[str, ASGIApp] = field(default_factory=dict)
    #: coroutines run when the server shuts down (the proxy closes its pool)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: extra OpenAPI path items (relative to the prefix) a feature documents
    openapi_paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: built on first use by :func:`consentgate.regions.detector` (opens GeoIP)
    region_detector: RegionDetector | None = None
    #: cookie names nobody declared, recorded once (proxy and middleware alike)
    undeclared: UndeclaredCookies = field(init=False)
    #: coroutines run at start-up, once the store is open (the console's discovery)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: called when a site's declarations change (a classification in the console):
    #: whatever was decided or built with the old ones is forgotten
    declarations_changed: list[Callable[[], None]] = field(default_factory=list)
    #: the console's discovery, as the page pipeline feeds it (None: no console)
    discovery: DiscoveryHooks | None = None

    def __post_init__(self) -> None:
        self.undeclared = UndeclaredCookies(self.settings.data_dir)

    def site_for(self, request_or_scope: Request | Scope) -> Site:
        if isinstance(request_or_scope, Request):
            host = request_or_scope.headers.get("host")
        else:
            host = dict(request_or_scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        return self.settings.site_for_host(host)

    def consent_from_cookie(self, value: str | None, site: Site) -> Consent | None:
        """The visitor's consent, or None. A rejected cookie is counted and ignored.
        A consent given under an older policy version counts as none (re-ask)."""
        if not value:
            return None
        try:
            consent = self.codec.loads(value, site_id=site.id)
        except CookieRejected as exc:
            self.metrics.cookie_rejected(exc.reason)
            return None
        if consent.policy_version != site.policy_version:
            self.metrics.cookie_rejected("old_policy")
            return None
        return consent

    def consent_of(self, scope: Scope, site: Site) -> Consent | None:
        """The consent carried by the request's ``consentgate`` cookie, or None."""
        return self.consent_from_cookie(cookie_value(scope), site)


def cookie_value(scope: Scope) -> str | None:
    """The raw ``consentgate`` cookie value from an ASGI scope."""
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE_NAME:
                    return str(v)
    return None
