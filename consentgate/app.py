"""The ASGI application: consentgate's own endpoints plus the site behind it.

Requests under ``settings.prefix`` (``/_consent``) go to consentgate's Starlette app
(consent API, banner assets, declaration, admin). Everything else goes to the site:
the configured upstream through the proxy, or the built-in demo site, and HTML on
the way out is rewritten for the visitor's consent.

Each feature module contributes its routes with a ``routes(runtime)`` function so
this file only assembles them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import admin, api, banner, console
from .audit.keys import signing_key_for
from .audit.scheduler import start_daily_purge, stop
from .chain import HeadSigner
from .config import Settings
from .consent import ConsentCodec
from .errors import ApiError, api_error_handler, error_response
from .metrics import Metrics
from .regions import detector
from .site import build_site_app
from .store import ConsentStore, open_store
from .visit import Runtime, cookie_value

__all__ = ["ConsentGateApp", "Runtime", "cookie_value", "create_app", "store_options"]


def _feature_routes(runtime: Runtime) -> list[BaseRoute]:
    """Collect the feature modules' routes."""
    return [
        *api.routes(runtime),
        *banner.routes(runtime),
        *admin.routes(runtime),
        *console.routes(runtime),
    ]


def create_consent_app(runtime: Runtime) -> Starlette:
    """The Starlette app serving ``/_consent/*`` (mounted at the prefix)."""

    async def healthz(request: Request) -> Response:
        ok = await runtime.store.ping()
        return JSONResponse({"status": "ok" if ok else "degraded"}, status_code=200 if ok else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", f"no endpoint {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        allow = getattr(exc, "headers", None) or {}  # Starlette's router names the methods
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}",
            headers={"Allow": allow["Allow"]} if "Allow" in allow else None,
        )

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        *runtime.metrics.routes(runtime.store, runtime.settings.metrics_allow),
        *_feature_routes(runtime),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={ApiError: api_error_handler, 404: not_found, 405: method_not_allowed},
    )


class ConsentGateApp:
    """Top-level ASGI app: prefix -> consent app; everything else -> the site."""

    def __init__(self, settings: Settings, store: ConsentStore | None = None) -> None:
        self.settings = settings
        self.runtime = Runtime(
            settings=settings,
            codec=ConsentCodec(settings.secret_keys),
            store=store or open_store(settings.database, **store_options(settings)),
            metrics=Metrics(),
        )
        self.consent_app = create_consent_app(self.runtime)
        #: path (under the prefix) -> bare ASGI app served without Starlette's stack;
        #: feature modules register hot endpoints in ``runtime.fast_paths``.
        self.fast_paths: dict[str, ASGIApp] = self.runtime.fast_paths
        self.site_app: ASGIApp = build_site_app(self.runtime)
        self.prefix = settings.prefix

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        detector(self.runtime)  # opens the GeoIP database: a bad path fails start-up
        await self.runtime.store.open()
        retention = start_daily_purge(self.runtime.store, self.settings)
        for start in self.runtime.on_startup:
            await start()
        try:
            yield
        finally:
            await stop(retention)
            closers = list(self.runtime.on_shutdown)
            self.runtime.on_shutdown.clear()
            for close in closers:
                await close()
            await self.runtime.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            child = dict(scope)
            child["root_path"] = scope.get("root_path", "") + self.prefix
            child["path"] = path[len(self.prefix) :] or "/"
            child["app_root_path"] = child["root_path"]
            fast = self.fast_paths.get(child["path"]) if scope["type"] == "http" else None
            await (fast or self.consent_app)(child, receive, send)
            return
        if path == GPC_WELL_KNOWN and scope["type"] == "http":
            site = self.runtime.site_for(scope)
            if site.gpc_well_known:
                await _gpc_support(scope, receive, send)
                return
        await self.site_app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        cm = self.lifespan()
        try:
            await cm.__aenter__()
        except Exception as exc:  # report start-up failures to the server
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        await cm.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})


#: Global Privacy Control's support resource: consentgate honours the signal for the
#: site (marketing refused, recorded), so it says so on the site's own origin.
GPC_WELL_KNOWN = "/.well-known/gpc.json"
_GPC_BODY = b'{"gpc":true}'


async def _gpc_support(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method") not in ("GET", "HEAD"):
        response: Response = error_response(
            405,
            "method_not_allowed",
            f"use GET for {GPC_WELL_KNOWN}",
            headers={"Allow": "GET, HEAD"},
        )
    else:
        response = Response(
            _GPC_BODY,
            media_type="application/json",
            headers={"Cache-Control": "max-age=86400", "Access-Control-Allow-Origin": "*"},
        )
    await response(scope, receive, send)


def store_options(settings: Settings) -> dict[str, Any]:
    """Backend options: every store signs its chain heads with the server's keys."""
    options: dict[str, Any] = {
        "head_signer": HeadSigner(settings.secret_keys, signing_key_for(settings.data_dir))
    }
    if settings.database.startswith("postgres"):
        options["pool_size"] = settings.db_pool_size
    return options


def create_app(settings: Settings, store: ConsentStore | None = None) -> ConsentGateApp:
    return ConsentGateApp(settings, store=store)
