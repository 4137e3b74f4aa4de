"""The admin/auditor HTTP API under ``/_consent/admin/api`` and the visitor's receipt.

Auth: ``Authorization: Bearer <token>`` (``consentgate tokens create``). No or an
unknown/revoked token -> 401; a role without the permission -> 403.

=======================================================  =========  ==============
endpoint                                                 auditor    admin
=======================================================  =========  ==============
``GET  /admin/api/export?format=&site=&since=&until=``   yes        yes
``     &consent_id=&method=&bom=``  (streamed)
``GET  /admin/api/exports/{export_id}/manifest``         yes        yes
``GET  /admin/api/subjects/{consent_id}``                yes        yes
``GET  /admin/api/subjects/{consent_id}/export``         yes        yes
``POST /admin/api/subjects/{consent_id}/erase``          no         yes
``GET|POST /admin/api/tokens``, ``DELETE .../{id}``      no         yes
``GET  /admin/api/actions``                              no         yes
=======================================================  =========  ==============

Every export and subject action is logged (``token:<id>``, action, time, what)
before the response starts. ``GET /api/consent/receipt`` returns the visitor's
own records (by their valid cookie) as a JSON download.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .audit import tokens as tok
from .audit.columns import format_time, parse_time
from .audit.export import ExportStats, export_stream, filter_json
from .audit.formats import FORMATS
from .audit.keys import signing_key_for
from .audit.manifest import Manifest
from .audit.subjects import ErasureRefused, erase_subject, subject_document, subject_records
from .consent import CookieRejected, Method
from .errors import ApiError, error_response
from .regions import REGIMES, region_filter
from .store.base import ApiToken, AuditAction, EventFilter, StoreError
from .visit import Runtime, cookie_value

__all__ = ["routes"]

_EXPORT_PARAMS = frozenset(
    {"format", "site", "since", "until", "consent_id", "method", "region", "regime", "bom"}
)
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
Handler = Callable[[Request, ApiToken], Awaitable[Response]]
log = logging.getLogger("consentgate.audit")


class AdminApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = runtime.store

    # -- plumbing ------------------------------------------------------------------------

    def guard(self, permission: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                token = await self._authenticate(request)
                if not tok.can(token.role, permission):
                    raise ApiError(
                        403, "forbidden", f"a {token.role} token may not use this endpoint"
                    )
                response = await handler(request, token)
            except ApiError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                response = error_response(exc.status, exc.code, exc.message, headers)
            except StoreError as exc:
                response = error_response(503, "store_unavailable", str(exc))
            response.headers["Cache-Control"] = "no-store"
            return response

        return endpoint

    async def _authenticate(self, request: Request) -> ApiToken:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> (create one with `consentgate tokens create`)",
            )
        token = await tok.authenticate(self.store, value.strip())
        if token is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        return token

    async def log(self, token: ApiToken, action: str, detail: dict[str, Any]) -> None:
        """Record the action durably, and name it (never the token) in the server log."""
        actor = f"token:{token.token_id}"
        await self.store.log_action(AuditAction(datetime.now(UTC), actor, action, detail))
        log.info("%s (%s) %s", actor, token.role, action)

    # -- export --------------------------------------------------------------------------

    def _export_filter(self, request: Request) -> tuple[str, bool, EventFilter]:
        q = request.query_params
        unknown = sorted(set(q) - _EXPORT_PARAMS)
        if unknown:
            raise ApiError(
                400,
                "invalid_parameter",
                f"unknown parameter(s) {unknown}; known: {', '.join(sorted(_EXPORT_PARAMS))}",
            )
        fmt = q.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ApiError(400, "invalid_parameter", f"format must be csv or jsonl, got {fmt!r}")
        bom = q.get("bom", "0").lower() in ("1", "true", "yes")
        if bom and fmt != "csv":
            raise ApiError(400, "invalid_parameter", "bom only applies to format=csv")
        method = q.get("method")
        if method is not None and method not in {m.value for m in Method}:
            raise ApiError(400, "invalid_parameter", f"unknown method {method!r}")
        region = q.get("region")
        try:
            region = None if region is None else region_filter(region)
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        regime = q.get("regime")
        if regime is not None and regime not in REGIMES:
            raise ApiError(
                400,
                "invalid_parameter",
                f"regime must be one of {', '.join(REGIMES)}, got {regime!r}",
            )
        times: dict[str, datetime | None] = {}
        for name in ("since", "until"):
            raw = q.get(name)
            try:
                times[name] = parse_time(raw) if raw else None
            except ValueError:
                raise ApiError(
                    400, "invalid_parameter", f"{name} must be ISO 8601 (2026-01-31T00:00:00Z)"
                ) from None
        flt = EventFilter(
            site_id=q.get("site"),
            consent_id=q.get("consent_id"),
            method=method,
            region=region,
            regime=regime,
            since=times["since"],
            until=times["until"],
        )
        return fmt, bom, flt

    async def export(self, request: Request, token: ApiToken) -> Response:
        fmt, bom, flt = self._export_filter(request)
        export_id = secrets.token_hex(8)
        name = f"consent-log-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{fmt}"
        await self.log(
            token, "export", {"export_id": export_id, "format": fmt, "filters": filter_json(flt)}
        )
        stats = ExportStats(fmt, bom=bom)
        result: list[Manifest] = []
        keys = self.runtime.settings.secret_keys

        async def body() -> AsyncIterator[bytes]:
            async for chunk in export_stream(self.store, flt, stats, result):
                yield chunk
            manifest = result[0]
            manifest.file, manifest.export_id = name, export_id
            manifest.sign(keys, signing_key_for(self.runtime.settings.data_dir))
            await self.log(
                token,
                "export.manifest",
                {"export_id": export_id, "manifest": json.loads(manifest.to_json())},
            )

        return StreamingResponse(
            body(),
            media_type=_MEDIA[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Consentgate-Export-Id": export_id,
            },
        )

    async def manifest(self, request: Request, token: ApiToken) -> Response:
        export_id = request.path_params["export_id"]
        async for action in self.store.iter_actions():
            if action.action == "export.manifest" and action.detail.get("export_id") == export_id:
                return JSONResponse(action.detail["manifest"])
        raise ApiError(404, "not_found", f"no finished export {export_id!r}")

    # -- subjects ------------------------------------------------------------------------

    async def _subject(self, request: Request, token: ApiToken, action: str) -> dict[str, Any]:
        consent_id = request.path_params["consent_id"]
        records = await subject_records(self.store, consent_id)
        await self.log(token, action, {"consent_id": consent_id, "records": len(records)})
        if not records:
            raise ApiError(404, "not_found", f"no records for consent id {consent_id!r}")
        return subject_document(consent_id, records)

    async def subject_show(self, request: Request, token: ApiToken) -> Response:
        return JSONResponse(await self._subject(request, token, "subject.show"))

    async def subject_export(self, request: Request, token: ApiToken) -> Response:
        doc = await self._subject(request, token, "subject.export")
        name = f"consent-{doc['consent_id']}.json"
        return JSONResponse(doc, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def subject_erase(self, request: Request, token: ApiToken) -> Response:
        consent_id = request.path_params["consent_id"]
        records = await subject_records(self.store, consent_id)
        if not records:
            await self.log(token, "subject.erase", {"consent_id": consent_id, "records": 0})
            raise ApiError(404, "not_found", f"no records for consent id {consent_id!r}")
        try:
            erased = await erase_subject(self.store, consent_id, self.runtime.settings.secret_keys)
        except ErasureRefused as exc:
            await self.log(token, "subject.erase", {"consent_id": consent_id, "refused": str(exc)})
            raise ApiError(409, "record_altered", str(exc)) from None
        await self.log(token, "subject.erase", {"consent_id": consent_id, "records": erased})
        return JSONResponse({"consent_id": consent_id, "records": len(records), "erased": erased})

    # -- tokens and the action log ------------------------------------------------------

    async def tokens(self, request: Request, token: ApiToken) -> Response:
        if request.method == "GET":
            listed = await self.store.list_tokens()
            return JSONResponse({"tokens": [_token_json(t) for t in listed]})
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(body, dict) or set(body) - {"role", "name"}:
            raise ApiError(422, "invalid_body", 'send {"role": "admin"|"auditor", "name": "..."}')
        role, name = body.get("role"), body.get("name", "")
        if role not in tok.ROLES or not isinstance(name, str) or len(name) > 200:
            raise ApiError(
                422, "invalid_body", f"role must be one of {', '.join(tok.ROLES)}; name a string"
            )
        if not tok.printable(name):
            raise ApiError(
                422, "invalid_body", "name must be printable text (no control characters)"
            )
        record, secret = await tok.issue(self.store, role, name)
        await self.log(token, "token.create", {"token_id": record.token_id, "role": role})
        return JSONResponse({**_token_json(record), "token": secret}, status_code=201)

    async def revoke(self, request: Request, token: ApiToken) -> Response:
        token_id = request.path_params["token_id"]
        if not await self.store.revoke_token(token_id, datetime.now(UTC)):
            raise ApiError(404, "not_found", f"no active token {token_id!r}")
        await self.log(token, "token.revoke", {"token_id": token_id})
        return JSONResponse({"token_id": token_id, "revoked": True})

    async def actions(self, request: Request, token: ApiToken) -> Response:
        out = [
            {
                "id": a.id,
                "at": format_time(a.at),
                "actor": a.actor,
                "action": a.action,
                "detail": a.detail,
                "prev_hash": a.prev_hash,
                "hash": a.hash,
            }
            async for a in self.store.iter_actions()
        ]
        return JSONResponse({"actions": out})

    # -- the visitor's receipt -----------------------------------------------------------

    async def receipt(self, request: Request) -> Response:
        site = self.runtime.site_for(request)
        value = cookie_value(request.scope)
        try:
            if not value:
                raise CookieRejected("malformed")
            consent = self.runtime.codec.loads(value, site_id=site.id)
        except CookieRejected:
            return error_response(404, "no_consent", "no valid consent cookie on this request")
        try:
            records = await subject_records(self.store, consent.consent_id)
        except StoreError:
            return error_response(503, "store_unavailable", "the consent log is unavailable")
        doc = subject_document(consent.consent_id, records)
        name = f"consent-receipt-{consent.consent_id}.json"
        return JSONResponse(
            doc,
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )


def _token_json(t: ApiToken) -> dict[str, Any]:
    return {
        "token_id": t.token_id,
        "role": t.role,
        "name": t.name,
        "created_at": format_time(t.created_at),
        "revoked_at": format_time(t.revoked_at) if t.revoked_at else None,
    }


def routes(runtime: Runtime) -> list[BaseRoute]:
    api = AdminApi(runtime)
    g = api.guard
    base = "/admin/api"
    return [
        Route(f"{base}/export", g("export", api.export), methods=["GET"]),
        Route(f"{base}/exports/{{export_id}}/manifest", g("export", api.manifest), methods=["GET"]),
        Route(
            f"{base}/subjects/{{consent_id}}", g("subject.show", api.subject_show), methods=["GET"]
        ),
        Route(
            f"{base}/subjects/{{consent_id}}/export",
            g("subject.export", api.subject_export),
            methods=["GET"],
        ),
        Route(
            f"{base}/subjects/{{consent_id}}/erase",
            g("subject.erase", api.subject_erase),
            methods=["POST"],
        ),
        Route(f"{base}/tokens", g("tokens", api.tokens), methods=["GET", "POST"]),
        Route(f"{base}/tokens/{{token_id}}", g("tokens", api.revoke), methods=["DELETE"]),
        Route(f"{base}/actions", g("tokens", api.actions), methods=["GET"]),
        Route("/api/consent/receipt", api.receipt, methods=["GET"]),
    ]
