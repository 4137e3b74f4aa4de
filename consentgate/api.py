"""The consent API: ``/_consent/api/consent`` (POST record, GET current, DELETE withdraw).

Every decision becomes one log record, acknowledged only after the store says it
is durable. Client mistakes are 4xx JSON ``{"error": {"code", "message"}}``:

=====  ==========================  ============================================
400    ``invalid_json``            body is not JSON (or NaN/Infinity, too deep)
403    ``origin_not_allowed``      cross-origin request from an unconfigured origin
404    ``no_consent``              GET without a valid consent cookie (``?optional=1``:
                                   ``200 null`` instead, what the banner asks, so a
                                   visitor without a decision is no error in the console)
413    ``payload_too_large``       body over ``settings.max_body_bytes``
415    ``unsupported_media_type``  POST without ``Content-Type: application/json``
422    ``invalid_request``         unknown field, wrong type, unknown category,
                                   method and granted disagree
503    ``store_unavailable``       the consent log could not make the record durable
=====  ==========================  ============================================

``DELETE`` (withdraw) takes the same optional ``page_url``, ``language`` and ``banner_hash``
as a decision; without them the record gets the banner's language for the visitor's
``Accept-Language`` and the hash of that language's banner text, as the banner sends.

A request from a page on another *site* (``Sec-Fetch-Site: cross-site``) to a site whose
consent cookie is ``SameSite=Lax`` gets a ``Consentgate-Warning`` header: the browser will
not keep the cookie, so the banner would ask again on every visit. The banner prints it in
the console; ``cookie_samesite = "none"`` (HTTPS) is the fix (docs/banner.md).

Requiring ``application/json`` is also the CSRF defence: a cross-site page cannot
send it without a CORS preflight, and preflights pass only for configured origins.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .config import Site
from .consent import (
    CATEGORIES,
    COOKIE_NAME,
    Consent,
    CookieRejected,
    EventType,
    Method,
    new_consent_id,
)
from .errors import ApiError, error_response
from .openapi import openapi_document
from .regions import decide_scope, effective_granted, method_allowed
from .store import ConsentEvent, StoreError
from .texts import banner_hash, pick_language, texts_for
from .visit import Runtime
from .visitor import (
    TrustedProxies,
    clean_page_url,
    client_address,
    mask_ip,
    normalize_language,
    truncate_user_agent,
)

__all__ = ["API_METHODS", "BODY_FIELDS", "routes"]

#: Methods a visitor's POST may carry (``withdraw`` is DELETE).
API_METHODS: tuple[str, ...] = (
    Method.ACCEPT_ALL,
    Method.REJECT_ALL,
    Method.CUSTOM,
    Method.CLOSE,
    Method.OPT_OUT,  # opt-out regime: "Do Not Sell or Share My Personal Information"
    Method.ACKNOWLEDGE,  # notice regime
)
BODY_FIELDS: tuple[str, ...] = (
    "granted",
    "method",
    "page_url",
    "language",
    "banner_hash",
    "cookies",
)
#: ``cookies``: names in the page's ``document.cookie`` (never values), for discovery
MAX_COOKIE_NAMES = 100
#: What a withdrawal (DELETE) may carry: the context of a decision, no choice.
CONTEXT_FIELDS: tuple[str, ...] = ("page_url", "language", "banner_hash")
_BANNER_HASH = re.compile(r"^[A-Za-z0-9:+/=_.-]{0,128}$")
_ALL = frozenset(CATEGORIES)
_NECESSARY = frozenset({"necessary"})
_ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
_HEADERS_KEY = "consentgate.headers"
_ROUTE_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "OPTIONS"})
#: Response header of GET naming the visitor's regime (opt-in, opt-out or notice).
REGIME_HEADER = "Consentgate-Regime"
#: Response header explaining why the consent cookie cannot be kept (printed by the banner).
WARNING_HEADER = "Consentgate-Warning"
CROSS_SITE_WARNING = (
    "this page is on another site than consentgate, so the browser drops the SameSite=Lax "
    "consent cookie and every visit asks again; serve consentgate on the page's site or set "
    'cookie_samesite = "none" over HTTPS (see docs/banner.md, script tag on another site)'
)


def _headers(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict, built once per request (the first of
    repeated headers wins, as with Starlette's ``Headers.get``)."""
    cached = request.scope.get(_HEADERS_KEY)
    if cached is None:
        cached = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(request.scope.get("headers") or ())
        }
        request.scope[_HEADERS_KEY] = cached
    return cached  # type: ignore[no-any-return]


def _utf8(value: str | None) -> str | None:
    """A header value as text: its bytes as UTF-8 when they are (browsers send UTF-8),
    else as ISO-8859-1 (the ASGI headers' own decoding above)."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


# Starlette's JSONResponse rendering, with one encoder instead of one per response.
_RESPONSE_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _json_response(
    doc: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        _RESPONSE_JSON.encode(doc).encode("utf-8"),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder instance (json.loads with options builds a new one per call).
_BODY_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode and validate a POST body; raises :class:`ApiError` (400/422)."""
    doc = _object(raw, BODY_FIELDS)
    method = doc.get("method")
    if method not in API_METHODS:
        raise _invalid(f"method must be one of {', '.join(API_METHODS)}, got {method!r}")
    if "granted" in doc:
        granted = _parse_granted(doc["granted"])
    elif method == Method.ACCEPT_ALL:
        granted = _ALL
    elif method in (Method.REJECT_ALL, Method.CLOSE):
        granted = _NECESSARY
    elif method == Method.OPT_OUT:
        granted = _ALL - {"marketing"}
    elif method == Method.ACKNOWLEDGE:
        granted = _ALL  # replaced by the regime's default when recorded
    else:
        raise _invalid('granted is required when method is "custom"')
    if method == Method.ACCEPT_ALL and granted != _ALL:
        raise _invalid(f"accept_all must grant every category ({', '.join(CATEGORIES)})")
    if method in (Method.REJECT_ALL, Method.CLOSE) and granted != _NECESSARY:
        raise _invalid(f'{method} grants only "necessary"; use method "custom" to pick categories')
    if method == Method.OPT_OUT and "marketing" in granted:
        raise _invalid('opt_out refuses "marketing" (sale and sharing); leave it out of granted')
    return {"method": method, "granted": granted, **_parse_context(doc)}


def _object(raw: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object body holding only ``fields``; raises :class:`ApiError` (400/422)."""
    try:
        doc = _BODY_JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid(f"the body must be a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise _invalid(f"unknown field(s) {unknown}; allowed: {', '.join(fields)}")
    return doc


def parse_context(raw: bytes) -> dict[str, Any]:
    """Decode and validate a withdrawal's optional body (``page_url``, ``language``,
    ``banner_hash``; empty: none of them); raises :class:`ApiError` (400/422)."""
    if not raw.strip():
        return {}
    doc = _object(raw, CONTEXT_FIELDS)
    return {k: v for k, v in _parse_context(doc).items() if v}


def _parse_context(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, limit in (("page_url", 2048), ("language", 35), ("banner_hash", 128)):
        value = doc.get(name, "")
        if not isinstance(value, str):
            raise _invalid(f"{name} must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise _invalid(f"{name} is longer than {limit} characters")
        out[name] = value
    if out["language"] and not normalize_language(out["language"]):
        raise _invalid(f"language must be a language tag like en or pt-BR, got {out['language']!r}")
    if not _BANNER_HASH.match(out["banner_hash"]):
        raise _invalid("banner_hash may only hold letters, digits and :+/=_.-")
    names = doc.get("cookies", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _invalid("cookies must be a list of cookie names (strings, no values)")
    # the first MAX_COOKIE_NAMES plausible names; an empty document.cookie gives [""]
    out["cookies"] = [n for n in names if 0 < len(n) <= 200 and "=" not in n][:MAX_COOKIE_NAMES]
    return out


def _parse_granted(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise _invalid(f"granted must be a list of category ids, got {type(value).__name__}")
    if len(value) > 4 * len(CATEGORIES):
        raise _invalid("granted lists too many entries")
    for item in value:
        if not isinstance(item, str):
            raise _invalid(f"granted holds category ids (strings), got {type(item).__name__}")
        if item not in _ALL:
            raise _invalid(f"unknown category {item!r}; known: {', '.join(CATEGORIES)}")
    return frozenset(value) | _NECESSARY


class ConsentApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.trusted = TrustedProxies(self.settings.trusted_proxies)
        self._origins: dict[str, Site] = {}
        self._origin_hosts: dict[str, Site] = {}
        self._consent_counters: dict[tuple[str, str, str], Any] = {}
        self._site_by_host: dict[str, Site] = {}
        for site in self.settings.sites:
            for origin in site.origins:
                self._origins.setdefault(origin.rstrip("/").lower(), site)
            for host in site.hosts:
                self._origin_hosts.setdefault(host.lower(), site)

    # -- routing ---------------------------------------------------------------------

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint as a bare ASGI app. ``ConsentGateApp`` dispatches
        ``{prefix}/api/consent`` here directly, skipping Starlette's middleware and
        router: the consent write is the hottest path of the server."""
        request = Request(scope, receive)
        if request.method in _ROUTE_METHODS:
            try:
                response = await self.endpoint(request)
            except ClientDisconnect:  # the visitor left mid-body: nothing to answer
                return
        else:
            response = error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.url.path}",
                headers={"Allow": _ALLOWED_METHODS},
            )
        await response(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        origin = _headers(request).get("origin")
        site, cors = self._site_and_cors(request, origin)
        try:
            if request.method == "OPTIONS":
                response = self._preflight(request, origin, cors)
            elif origin and cors is None and not self._same_origin(request, origin):
                raise ApiError(
                    403,
                    "origin_not_allowed",
                    f"origin {origin!r} is not configured for any site (add it to "
                    "[[sites]] hosts or origins)",
                )
            elif request.method == "POST":
                response = await self.post(request, site)
            elif request.method == "DELETE":
                response = await self.delete(request, site)
            else:
                response = self.get(request, site)
        except ApiError as exc:
            self.runtime.metrics.api_errors.labels(code=exc.code).inc()
            response = error_response(exc.status, exc.code, exc.message)
        if cors:
            response.headers.update(cors)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _site_and_cors(
        self, request: Request, origin: str | None
    ) -> tuple[Site, dict[str, str] | None]:
        if origin:
            site = self._origin_site(origin)
            if site is not None:
                return site, {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Expose-Headers": f"{REGIME_HEADER}, {WARNING_HEADER}",
                    "Vary": "Origin",
                }
        host = _headers(request).get("host", "")
        site = self._site_by_host.get(host)
        if site is None:
            site = self.settings.site_for_host(host)
            if len(self._site_by_host) >= 1024:  # Host is the client's to choose: bounded
                self._site_by_host.clear()
            self._site_by_host[host] = site
        return site, None

    def _origin_site(self, origin: str) -> Site | None:
        site = self._origins.get(origin.rstrip("/").lower())
        if site is not None:
            return site
        try:
            host = urlsplit(origin).hostname
        except ValueError:
            return None
        return self._origin_hosts.get(host or "")

    @staticmethod
    def _same_origin(request: Request, origin: str) -> bool:
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        return bool(netloc) and netloc == _headers(request).get("host", "").lower()

    def _preflight(
        self, request: Request, origin: str | None, cors: dict[str, str] | None
    ) -> Response:
        if origin and cors is None:
            raise ApiError(
                403, "origin_not_allowed", f"origin {origin!r} is not configured for any site"
            )
        headers = {"Allow": _ALLOWED_METHODS}
        if cors:
            headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, DELETE",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Access-Control-Max-Age": "600",
                }
            )
        return Response(status_code=204, headers=headers)

    # -- handlers --------------------------------------------------------------------

    def get(self, request: Request, site: Site) -> Response:
        consent = self.runtime.consent_from_cookie(request.cookies.get(COOKIE_NAME), site)
        # a consent given under a less strict regime than the visitor's now: ask again
        decision = decide_scope(self.runtime, site, request.scope, consent)
        headers = {REGIME_HEADER: decision.regime}  # the banner's mode in script-tag mode
        if self._cookie_dropped(request, site):
            headers[WARNING_HEADER] = CROSS_SITE_WARNING
        if decision.consent is None:
            if request.query_params.get("optional") == "1":
                return _json_response(None, 200, headers=headers)  # type: ignore[arg-type]
            self.runtime.metrics.api_errors.labels(code="no_consent").inc()
            return error_response(
                404, "no_consent", "no valid consent cookie for this site", headers=headers
            )
        return _json_response(decision.consent.to_json(), 200, headers=headers)

    @staticmethod
    def _cookie_dropped(request: Request, site: Site) -> bool:
        """The browser will not keep a ``SameSite=Lax`` cookie set in answer to a request
        from a page on another site (it says so in ``Sec-Fetch-Site``)."""
        cross = _headers(request).get("sec-fetch-site") == "cross-site"
        return cross and site.cookie_samesite != "none"

    async def post(self, request: Request, site: Site) -> Response:
        content_type = _headers(request).get("content-type", "")
        media, _, params = content_type.partition(";")
        charset = params.strip().lower().removeprefix("charset=").strip('"')
        if media.strip().lower() != "application/json" or charset not in ("", "utf-8", "utf8"):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send Content-Type: application/json, got {content_type or 'none'!r}",
            )
        body = parse_body(await self._read_body(request))
        prior = self._prior(request, site)
        event_type = EventType.UPDATE if prior else EventType.INITIAL
        response = await self._record(
            request, site, prior, event_type, body["method"], body["granted"], body, 201
        )
        discovery = self.runtime.discovery
        if discovery is not None and body["cookies"]:
            discovery.script_cookies(site, body["cookies"], body["page_url"])
        return response

    async def delete(self, request: Request, site: Site) -> Response:
        body = parse_context(await self._read_body(request))
        if "language" not in body or "banner_hash" not in body:
            # as the banner would send them: its language for this visitor, its text's hash
            lang = pick_language(_headers(request).get("accept-language"), site)
            body.setdefault("language", lang)
            body.setdefault("banner_hash", banner_hash(texts_for(site, body["language"])))
        prior = self._prior(request, site)
        return await self._record(
            request, site, prior, EventType.WITHDRAW, Method.WITHDRAW, _NECESSARY, body, 200
        )

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = ApiError(
            413, "payload_too_large", f"the body is larger than {limit} bytes (max_body_bytes)"
        )
        declared = _headers(request).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise too_large
        return bytes(chunks)

    def _prior(self, request: Request, site: Site) -> Consent | None:
        """The visitor's earlier consent (any policy version) to keep the consent id."""
        value = request.cookies.get(COOKIE_NAME)
        if not value:
            return None
        try:
            return self.runtime.codec.loads(value, site_id=site.id)
        except CookieRejected as exc:
            self.runtime.metrics.cookie_rejected(exc.reason)
            return None

    async def _record(
        self,
        request: Request,
        site: Site,
        prior: Consent | None,
        event_type: str,
        method: str,
        granted: frozenset[str],
        body: dict[str, Any],
        status: int,
    ) -> Response:
        headers = _headers(request)
        peer = request.client.host if request.client else None
        trusted_peer = peer in self.trusted
        decision = decide_scope(self.runtime, site, request.scope, prior)
        region, regime, gpc = decision.region.code, decision.regime, decision.gpc
        if not method_allowed(method, regime):
            raise _invalid(f"method {method} does not apply to this visitor's regime ({regime})")
        if method == Method.ACKNOWLEDGE:  # the notice was seen: keep the regime's default
            granted = effective_granted(None, regime, gpc)
        now = datetime.now(UTC)
        given_at = int(now.timestamp())
        consent = Consent(
            consent_id=prior.consent_id if prior else new_consent_id(),
            granted=granted,
            policy_version=site.policy_version,
            given_at=given_at,
            expires_at=given_at + site.lifetime_seconds,
            site_id=site.id,
            regime=regime,
            gpc=gpc,
        )
        event = ConsentEvent(
            event_id=new_consent_id(),
            consent_id=consent.consent_id,
            site_id=site.id,
            event_type=str(event_type),
            method=str(method),
            created_at=now,
            granted=granted,
            policy_version=site.policy_version,
            banner_hash=body.get("banner_hash", ""),
            language=normalize_language(body.get("language") or headers.get("accept-language")),
            page_url=clean_page_url(body.get("page_url") or headers.get("referer")),
            region=region,
            regime=regime,
            gpc=gpc,
            ip_masked=mask_ip(client_address(peer, headers.get("x-forwarded-for"), self.trusted)),
            user_agent=truncate_user_agent(_utf8(headers.get("user-agent"))),
        )
        started = time.perf_counter()
        try:
            await self.runtime.store.append(event)
        except StoreError:
            raise ApiError(
                503, "store_unavailable", "the consent could not be recorded; try again"
            ) from None
        self.runtime.metrics.write_latency.observe(time.perf_counter() - started)
        key = (site.id, str(event_type), str(method))
        counter = self._consent_counters.get(key)
        if counter is None:
            counter = self.runtime.metrics.consents.labels(site=key[0], type=key[1], method=key[2])
            self._consent_counters[key] = counter
        counter.inc()
        response = _json_response(consent.to_json(), status)
        # Built by hand (not Response.set_cookie / SimpleCookie): this is the hot path,
        # and the signed value is URL-safe base64 that needs no quoting.
        cookie = (
            f"{COOKIE_NAME}={self.runtime.codec.dumps(consent)}; HttpOnly; "
            f"Max-Age={site.lifetime_seconds}; Path=/; SameSite={site.cookie_samesite}"
        )
        if site.cookie_samesite == "none" or self._is_https(request, trusted_peer):
            cookie += "; Secure"
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
        return response

    @staticmethod
    def _is_https(request: Request, trusted_peer: bool) -> bool:
        if request.scope.get("scheme") == "https":
            return True
        proto = _headers(request).get("x-forwarded-proto", "") if trusted_peer else ""
        return proto.split(",", 1)[0].strip().lower() == "https"


def routes(runtime: Runtime) -> list[BaseRoute]:
    api = ConsentApi(runtime)
    runtime.fast_paths["/api/consent"] = api.asgi

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(runtime))

    return [
        Route("/api/consent", api.endpoint, methods=["GET", "POST", "DELETE", "OPTIONS"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
