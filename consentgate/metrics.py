"""Prometheus metrics at ``/_consent/metrics``.

Not public: a scraper sends an API token (``Authorization: Bearer cgt_...``, any role,
``consentgate tokens create``) or connects from an address in ``metrics_allow``; anyone
else gets 401. With several worker processes (``--workers N``) the counters are
aggregated through prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import error_response
from .visitor import TrustedProxies

if TYPE_CHECKING:
    from .store import ConsentStore

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.consents = Counter(
            "consentgate_consents",
            "Consent decisions recorded",
            ["site", "type", "method"],
            registry=self.registry,
        )
        self.rejected_cookies = Counter(
            "consentgate_cookie_rejected",
            "Consent cookies that failed verification",
            ["reason"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "consentgate_api_errors", "Consent API client errors", ["code"], registry=self.registry
        )
        self.write_latency = Histogram(
            "consentgate_write_seconds",
            "Time to make a consent record durable",
            registry=self.registry,
        )
        self.rewrites = Counter(
            "consentgate_rewritten_pages", "HTML pages rewritten", ["site"], registry=self.registry
        )
        self.neutralized = Counter(
            "consentgate_neutralized_elements",
            "Elements held back until consent",
            ["category"],
            registry=self.registry,
        )

    def cookie_rejected(self, reason: str) -> None:
        self.rejected_cookies.labels(reason=reason).inc()

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def routes(self, store: ConsentStore, allow: Iterable[str] = ()) -> list[Route]:
        """``GET /metrics`` for scrapers with a token, or from ``allow``'s addresses."""
        from .audit import tokens

        scrapers = TrustedProxies(allow)

        async def metrics(request: Request) -> Response:
            if not (request.client and request.client.host in scrapers):
                scheme, _, value = request.headers.get("authorization", "").partition(" ")
                token = None
                if scheme.lower() == "bearer" and value.strip():
                    token = await tokens.authenticate(store, value.strip())
                if token is None:
                    return error_response(
                        401,
                        "unauthorized",
                        "metrics need Authorization: Bearer <token> (consentgate tokens "
                        "create) or a scraper address in metrics_allow",
                        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
                    )
            return Response(
                self.render(),
                media_type=CONTENT_TYPE_LATEST,
                headers={"Cache-Control": "no-store"},
            )

        return [Route("/metrics", metrics, methods=["GET"])]
