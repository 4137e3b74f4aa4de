"""Prometheus metrics at ``/_consent/metrics``.

With several worker processes (``--workers N``) the counters are aggregated
through prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import os

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

    def routes(self) -> list[Route]:
        async def metrics(request: Request) -> Response:
            return Response(self.render(), media_type=CONTENT_TYPE_LATEST)

        return [Route("/metrics", metrics, methods=["GET"])]
