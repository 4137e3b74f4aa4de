"""Third-party hosts learned from CSP reports.

The proxy adds to each page a policy of its own that only *reports*
(``Content-Security-Policy-Report-Only``: :func:`report_only_policy`), allowing the
page's own origin, inline code, ``data:`` and ``blob:``: every other host the page
loads from is reported by the browser to ``POST <prefix>/csp-report``. It is a
separate header, so the site's own ``Content-Security-Policy`` (enforced) and
``Content-Security-Policy-Report-Only`` headers are kept as they are and evaluated
on their own, as browsers do with several policies: nothing is weakened and nothing
is ever blocked by ours.

The endpoint reads at most :data:`MAX_BODY` bytes, takes at most :data:`RATE` reports
a second (burst :data:`BURST`) per process, keeps only the blocked URL's host and the
page's path (never the page's query, the visitor's address or user agent), and
counts repeats of a host instead of storing them (:meth:`Discovery.see`).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from ..errors import error_response
from ..visit import Runtime
from .discovery import discovery

__all__ = ["MAX_BODY", "RATE", "RateLimit", "hosts_of", "report_only_policy"]

MAX_BODY = 16 * 1024
RATE = 20.0
BURST = 100.0
_MEDIA = ("application/csp-report", "application/reports+json", "application/json")


def report_only_policy(prefix: str) -> bytes:
    return (
        "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; "
        f"report-uri {prefix}/csp-report"
    ).encode("ascii")


class RateLimit:
    """A token bucket: ``rate`` per second, at most ``burst`` at once."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def hosts_of(doc: Any, own_host: str) -> list[tuple[str, str]]:
    """``(third-party host, page path)`` pairs of a report body (the legacy
    ``{"csp-report": {...}}`` form or a Reporting API list)."""
    reports: list[dict[str, Any]] = []
    if isinstance(doc, dict) and isinstance(doc.get("csp-report"), dict):
        r = doc["csp-report"]
        reports.append({"blocked": r.get("blocked-uri"), "page": r.get("document-uri")})
    elif isinstance(doc, list):
        for item in doc[:50]:
            body = item.get("body") if isinstance(item, dict) else None
            if isinstance(body, dict):
                reports.append({"blocked": body.get("blockedURL"), "page": body.get("documentURL")})
    out: list[tuple[str, str]] = []
    own = own_host.rsplit(":", 1)[0].lower()
    for r in reports:
        blocked, page = r["blocked"], r["page"]
        if not isinstance(blocked, str):
            continue
        try:
            parts = urlsplit(blocked)
            host = (parts.hostname or "").lower()
        except ValueError:
            continue
        if parts.scheme not in ("http", "https", "ws", "wss") or not host or host == own:
            continue
        path = ""
        if isinstance(page, str):
            try:
                path = urlsplit(page).path
            except ValueError:
                path = ""
        out.append((host[:253], path))
    return out


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


#: The endpoint in the OpenAPI document (``runtime.openapi_paths``).
OPENAPI: dict[str, Any] = {
    "post": {
        "operationId": "cspReport",
        "summary": "A browser's report of the report-only policy the proxy adds to pages "
        "(the console's third-party host discovery).",
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": ["object", "array"]}}
                for media in ("application/csp-report", "application/reports+json")
            },
        },
        "responses": {
            "204": {"description": "Recorded (or nothing third-party in it)."},
            "400": _error("Not JSON."),
            "413": _error(f"Over {MAX_BODY} bytes."),
            "415": _error("Not a CSP report."),
            "429": _error(f"Over {RATE:.0f} reports a second (burst {BURST:.0f})."),
        },
    }
}


def endpoint(runtime: Runtime) -> Any:
    limit = RateLimit()

    async def csp_report(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in _MEDIA:
            return error_response(415, "unsupported_media_type", "send a CSP report")
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_BODY:
            return error_response(413, "too_large", f"a report is at most {MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return error_response(413, "too_large", f"a report is at most {MAX_BODY} bytes")
        if not limit.take():
            return error_response(429, "too_many_requests", "too many reports; try later")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return error_response(400, "invalid_json", "the report is not JSON")
        site = runtime.site_for(request)
        reg = discovery(runtime)
        for host, path in hosts_of(doc, request.headers.get("host", "")):
            reg.see(site.id, "host", host, path)
        return Response(status_code=204)

    return csp_report
