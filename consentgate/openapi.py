"""The OpenAPI 3.1 document served at ``/_consent/openapi.json``.

It describes what the server really does (``tests/test_openapi.py`` fuzzes the
server from this document and checks every response against it). Feature modules
may add their own paths: ``runtime.openapi_paths[path] = item``
with ``path`` relative to the prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import __version__
from .consent import CATEGORIES
from .store.records import EXPORT_COLUMNS

if TYPE_CHECKING:
    from .visit import Runtime

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


_COOKIE_HEADER = {
    "Set-Cookie": {
        "description": "The signed `consentgate` cookie (Path=/; SameSite=Lax; HttpOnly; "
        "Secure on HTTPS; Max-Age = the site's consent lifetime).",
        "schema": {"type": "string"},
    }
}

_CONSENT_COOKIE = {
    "name": "consentgate",
    "in": "cookie",
    "required": False,
    "schema": {"type": "string"},
    "description": "The signed consent cookie.",
}

_CONSENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "consent_id",
        "granted",
        "policy_version",
        "given_at",
        "expires_at",
        "site",
        "regime",
        "gpc",
    ],
    "additionalProperties": False,
    "properties": {
        "consent_id": {"type": "string", "minLength": 1},
        "granted": {
            "type": "array",
            "items": {"enum": list(CATEGORIES)},
            "description": "Always contains necessary.",
        },
        "policy_version": {"type": "string"},
        "given_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "site": {"type": "string"},
        "regime": {"enum": ["opt-in", "opt-out", "notice"]},
        "gpc": {"type": "boolean"},
    },
}

_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["method"],
    "additionalProperties": False,
    "properties": {
        "method": {
            "enum": ["accept_all", "reject_all", "custom", "close", "opt_out", "acknowledge"],
            "description": "accept_all must grant every category; reject_all and close "
            '(banner closed) grant only necessary; custom needs granted. opt_out ("Do Not '
            'Sell or Share", opt-out regime only) refuses marketing; acknowledge (notice '
            "or opt-out regime) records the regime's default: every category, marketing off "
            "with GPC.",
        },
        "granted": {
            "type": "array",
            "maxItems": 4 * len(CATEGORIES),
            "items": {"enum": list(CATEGORIES)},
            "description": "Category ids; necessary is always added. Optional for "
            "accept_all/reject_all/close, where it must match the method.",
        },
        "page_url": {
            "type": "string",
            "maxLength": 2048,
            "description": "Stored without query, fragment or credentials. Default: Referer.",
        },
        "language": {
            "type": "string",
            "maxLength": 35,
            "pattern": "^([A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)?$",
        },
        "banner_hash": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9:+/=_.-]*$"},
        "cookies": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Names (never values) of the cookies in the page's "
            "document.cookie, for the console's discovery; names that are empty, over 200 "
            "characters or hold '=' are ignored, and any after the first 100.",
        },
    },
}


def _consent_path() -> dict[str, Any]:
    common_errors = {
        "403": _error("Cross-origin request from an origin no site allows."),
    }
    return {
        "get": {
            "operationId": "getConsent",
            "summary": "The visitor's current consent, from the signed cookie.",
            "parameters": [
                _CONSENT_COOKIE,
                {
                    "name": "optional",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["1"]},
                    "description": "1: answer 200 null instead of 404 without a consent "
                    "(what the banner asks, so that no error shows in the console).",
                },
            ],
            "responses": {
                "200": _json(
                    {"oneOf": [{"$ref": "#/components/schemas/Consent"}, {"type": "null"}]},
                    "A valid consent cookie (null: none, with optional=1). A request from a "
                    "page on another site (Sec-Fetch-Site: cross-site) for a site whose "
                    "cookie is SameSite=Lax also gets a Consentgate-Warning header: the "
                    'browser will not keep the cookie (fix: cookie_samesite = "none", HTTPS).',
                ),
                "404": _error(
                    "No decision yet, or the cookie is tampered, expired, for another site "
                    "or for an older policy version (code no_consent)."
                ),
                **common_errors,
            },
        },
        "post": {
            "operationId": "recordConsent",
            "summary": "Record a decision; answered only once the record is durable.",
            "parameters": [
                {
                    "name": "Sec-GPC",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "1 = Global Privacy Control; recorded with the decision.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ConsentRequest"}}
                },
            },
            "responses": {
                "201": {
                    **_json({"$ref": "#/components/schemas/Consent"}, "Recorded."),
                    "headers": _COOKIE_HEADER,
                },
                "400": _error("The body is not JSON (code invalid_json)."),
                "413": _error("The body is over max_body_bytes (code payload_too_large)."),
                "415": _error(
                    "Content-Type is not application/json (code unsupported_media_type)."
                ),
                "422": _error(
                    "Unknown field, wrong type, unknown category, or method and granted "
                    "disagree (code invalid_request)."
                ),
                "503": _error("The consent log is unavailable; nothing was recorded."),
                **common_errors,
            },
        },
        "delete": {
            "operationId": "withdrawConsent",
            "summary": "Withdraw: record a withdraw event and set the all-refused cookie.",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "description": "What the banner sends, as with a decision; "
                            "without: the banner's language for Accept-Language and the "
                            "hash of its text in that language.",
                            "properties": {
                                "page_url": {"type": "string", "maxLength": 2048},
                                "language": {"type": "string", "maxLength": 35},
                                "banner_hash": {"type": "string", "maxLength": 128},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    **_json({"$ref": "#/components/schemas/Consent"}, "Withdrawn."),
                    "headers": _COOKIE_HEADER,
                },
                "400": _error("The body is not JSON (code invalid_json)."),
                "422": _error("Unknown field or wrong type (code invalid_request)."),
                "503": _error("The consent log is unavailable; nothing was recorded."),
                **common_errors,
            },
        },
        "options": {
            "operationId": "preflightConsent",
            "summary": "CORS preflight; allowed for origins of configured sites.",
            "responses": {
                "204": {"description": "Allowed."},
                **common_errors,
            },
        },
    }


# -- the visitor's receipt ------------------------------------------------------------

_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One consent log record, as exported (docs/audit.md).",
    "required": list(EXPORT_COLUMNS),
    "additionalProperties": False,
    "properties": {
        "seq": {"type": "integer"},
        "event_id": {"type": "string"},
        "consent_id": {"type": "string"},
        "site_id": {"type": "string"},
        "event_type": {"enum": ["initial", "update", "withdraw"]},
        "method": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        **{c: {"type": "boolean"} for c in CATEGORIES},
        "policy_version": {"type": "string"},
        "banner_hash": {"type": "string"},
        "language": {"type": "string"},
        "page_url": {"type": "string"},
        "region": {"type": "string"},
        "regime": {"type": "string"},
        "gpc": {"type": "boolean"},
        "ip_masked": {"type": "string"},
        "user_agent": {"type": "string"},
        "chain_id": {"type": "string"},
        "chain_seq": {"type": "integer"},
        "prev_hash": {"type": "string"},
        "hash": {"type": "string"},
        "erased": {"type": "boolean"},
    },
}

_SUBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["consent_id", "generated_at", "records"],
    "additionalProperties": False,
    "properties": {
        "consent_id": {"type": "string"},
        "generated_at": {"type": "string", "format": "date-time"},
        "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
    },
}

_DOWNLOAD = {
    "Content-Disposition": {
        "description": 'attachment; filename="..."',
        "schema": {"type": "string"},
    }
}


def _receipt_path() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "getReceipt",
            "summary": "The visitor's own records (by their valid consent cookie), as a "
            "JSON download.",
            "parameters": [_CONSENT_COOKIE],
            "responses": {
                "200": {
                    **_json({"$ref": "#/components/schemas/Subject"}, "The records."),
                    "headers": _DOWNLOAD,
                },
                "404": _error("No valid consent cookie on the request (code no_consent)."),
                "503": _error("The consent log is unavailable (code store_unavailable)."),
            },
        }
    }


# -- banner assets and the declaration ---------------------------------------------------

_ASSET_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "Weak; the content hash."},
    "Cache-Control": {
        "schema": {"type": "string"},
        "description": "One year and immutable when `v` is the current hash, else 5 minutes.",
    },
    "Vary": {"schema": {"type": "string"}},
}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", **schema},
        "description": description,
    }


_SITE = _query("site", "Site id (default: the site of the Host header).")
_LANG = _query("l", "Language (default: from Accept-Language).")
_VERSION = _query("v", "Content hash: when current, the response is cacheable for a year.")
_ETAG = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
}


def _asset(
    operation: str, summary: str, media: str, schema: dict[str, Any], params: list[Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The asset (gzip or brotli by Accept-Encoding).",
            "headers": _ASSET_HEADERS,
            "content": {media: {"schema": schema}},
        },
        "304": {"description": "Not modified (If-None-Match matched)."},
    }
    if _SITE in params:
        responses["404"] = _error("No such site (code unknown_site).")
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "parameters": [*params, _ETAG],
            "responses": responses,
        }
    }


def _asset_paths() -> dict[str, Any]:
    text = {"type": "string"}
    banner_js = _asset(
        "bannerJs",
        "The banner: code, CSS and first-layer texts for the site and language.",
        "text/javascript",
        text,
        [
            _SITE,
            _LANG,
            _VERSION,
            _query(
                "r",
                "Regime: only that view's texts (default: every view's, for script-tag mode).",
                enum=["opt-in", "opt-out", "notice"],
            ),
        ],
    )
    banner_js["get"]["responses"]["400"] = _error("Unknown regime `r` (code invalid_regime).")
    details = {
        "type": "object",
        "required": ["t", "c", "k"],
        "properties": {
            "t": {"type": "object", "additionalProperties": {"type": "string"}},
            "c": {
                "type": "array",
                "description": "Per category: [id, name, description, [[cookie, provider, "
                "description, expiry], ...]].",
                "items": {"type": "array"},
            },
            "k": {"description": "Cookie name patterns per category (deletion on withdraw)."},
        },
    }
    return {
        "/banner.js": banner_js,
        "/banner.json": _asset(
            "bannerDetails",
            "The second layer: texts, categories with their declared cookies.",
            "application/json",
            details,
            [_SITE, _LANG, _VERSION],
        ),
        "/banner-more.js": _asset(
            "bannerMore",
            "What banner.js loads on demand: the second layer's markup, the floating "
            "controls and blocked embeds' placeholders, with their CSS and texts.",
            "text/javascript",
            text,
            [_SITE, _LANG, _VERSION],
        ),
        "/banner.css": _asset(
            "bannerCss", "The banner's stylesheet.", "text/css", text, [_VERSION]
        ),
        "/declaration": _asset(
            "declaration",
            "The cookie declaration as an HTML fragment (the seed's columns plus provider "
            "and category).",
            "text/html",
            text,
            [_SITE, _LANG, _VERSION],
        ),
        "/declaration.js": _asset(
            "declarationJs",
            "A script that puts the declaration into [data-consentgate-declaration].",
            "text/javascript",
            text,
            [_SITE, _LANG, _VERSION],
        ),
    }


# -- the auditor / admin API ------------------------------------------------------------

_MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An export's signed manifest (docs/audit.md).",
    "required": ["manifest", "rows", "sha256", "signature", "heads"],
    "properties": {
        "manifest": {"const": "consentgate-export/1"},
        "file": {"type": "string"},
        "format": {"enum": ["csv", "jsonl"]},
        "rows": {"type": "integer"},
        "bytes": {"type": "integer"},
        "sha256": {"type": "string"},
        "heads": {"type": "array", "items": {"type": "object"}},
        "signature": {"type": "string"},
        "export_id": {"type": "string"},
    },
}

_TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["token_id", "role", "name", "created_at", "revoked_at"],
    "properties": {
        "token_id": {"type": "string"},
        "role": {"enum": ["admin", "auditor"]},
        "name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "token": {"type": "string", "description": "The secret; only in the 201 answer."},
    },
}


def _admin(
    operation: str,
    summary: str,
    ok: dict[str, Any],
    extra: dict[str, Any] | None = None,
    **more: Any,
) -> dict[str, Any]:
    return {
        "operationId": operation,
        "summary": summary,
        "security": [{"bearer": []}],
        **more,
        "responses": {
            **ok,
            "401": _error("No, an unknown or a revoked token (code unauthorized)."),
            "403": _error("The token's role may not use this endpoint (code forbidden)."),
            "503": _error("The consent log is unavailable (code store_unavailable)."),
            **(extra or {}),
        },
    }


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _admin_paths() -> dict[str, Any]:
    subject = _json({"$ref": "#/components/schemas/Subject"}, "The subject's records.")
    no_records = {"404": _error("No records for this consent id (code not_found).")}
    consent_id = [_path_param("consent_id")]
    export_params = [
        _query("format", "csv or jsonl (default jsonl).", enum=["csv", "jsonl"]),
        _query("site", "Only this site id."),
        _query("since", "Created at or after (ISO 8601).", format="date-time"),
        _query("until", "Created before (ISO 8601).", format="date-time"),
        _query("consent_id", "Only this consent id."),
        _query("method", "Only this decision method."),
        _query("region", 'Only this region (DE, US-CA; "" for unknown).'),
        _query("regime", "Only this regime.", enum=["opt-in", "opt-out", "notice"]),
        _query("bom", "1: start the CSV with a UTF-8 BOM."),
    ]
    text = {"type": "string"}
    return {
        "/admin/api/export": {
            "get": _admin(
                "exportLog",
                "Stream the consent log (auditor, admin); the signed manifest follows at "
                "/admin/api/exports/{export_id}/manifest.",
                {
                    "200": {
                        "description": "The export, streamed.",
                        "headers": {
                            **_DOWNLOAD,
                            "X-Consentgate-Export-Id": {"schema": {"type": "string"}},
                        },
                        "content": {
                            "text/csv": {"schema": text},
                            "application/x-ndjson": {"schema": text},
                        },
                    }
                },
                {"400": _error("An unknown or invalid parameter (code invalid_parameter).")},
                parameters=export_params,
            )
        },
        "/admin/api/exports/{export_id}/manifest": {
            "get": _admin(
                "exportManifest",
                "The signed manifest of a finished export.",
                {"200": _json({"$ref": "#/components/schemas/Manifest"}, "The manifest.")},
                {"404": _error("No finished export with this id (code not_found).")},
                parameters=[_path_param("export_id")],
            )
        },
        "/admin/api/subjects/{consent_id}": {
            "get": _admin(
                "subjectShow",
                "A subject access request: every record of one consent id.",
                {"200": subject},
                no_records,
                parameters=consent_id,
            )
        },
        "/admin/api/subjects/{consent_id}/export": {
            "get": _admin(
                "subjectExport",
                "Portability: the same document as a download.",
                {"200": {**subject, "headers": _DOWNLOAD}},
                no_records,
                parameters=consent_id,
            )
        },
        "/admin/api/subjects/{consent_id}/erase": {
            "post": _admin(
                "subjectErase",
                "Erasure (admin): personal fields erased, the chain kept verifiable.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["consent_id", "records", "erased"],
                            "properties": {
                                "consent_id": {"type": "string"},
                                "records": {"type": "integer"},
                                "erased": {"type": "integer"},
                            },
                        },
                        "Erased.",
                    )
                },
                {
                    **no_records,
                    "409": _error("A record does not match its hash (code record_altered)."),
                },
                parameters=consent_id,
            )
        },
        "/admin/api/tokens": {
            "get": _admin(
                "listTokens",
                "API tokens (admin).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["tokens"],
                            "properties": {
                                "tokens": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Token"},
                                }
                            },
                        },
                        "The tokens, revoked ones included.",
                    )
                },
            ),
            "post": _admin(
                "createToken",
                "Create a token (admin); its secret is shown only in this answer.",
                {"201": _json({"$ref": "#/components/schemas/Token"}, "Created.")},
                {
                    "400": _error("The body is not JSON (code invalid_json)."),
                    "422": _error("Unknown field, role or a bad name (code invalid_body)."),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["role"],
                                "additionalProperties": False,
                                "properties": {
                                    "role": {"enum": ["admin", "auditor"]},
                                    "name": {"type": "string", "maxLength": 200},
                                },
                            }
                        }
                    },
                },
            ),
        },
        "/admin/api/tokens/{token_id}": {
            "delete": _admin(
                "revokeToken",
                "Revoke a token (admin).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["token_id", "revoked"],
                            "properties": {
                                "token_id": {"type": "string"},
                                "revoked": {"const": True},
                            },
                        },
                        "Revoked.",
                    )
                },
                {"404": _error("No active token with this id (code not_found).")},
                parameters=[_path_param("token_id")],
            )
        },
        "/admin/api/actions": {
            "get": _admin(
                "listActions",
                "The audit action log, a hash chain (admin).",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["actions"],
                            "properties": {
                                "actions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["id", "at", "actor", "action", "detail"],
                                        "properties": {
                                            "id": {"type": "integer"},
                                            "at": {"type": "string", "format": "date-time"},
                                            "actor": {"type": "string"},
                                            "action": {"type": "string"},
                                            "detail": {"type": "object"},
                                            "prev_hash": {"type": ["string", "null"]},
                                            "hash": {"type": ["string", "null"]},
                                        },
                                    },
                                }
                            },
                        },
                        "Every action, oldest first.",
                    )
                },
            )
        },
    }


# -- service endpoints --------------------------------------------------------------------


def _service_paths() -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness and consent-log health.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        },
                        "Healthy.",
                    ),
                    "503": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "degraded"}},
                        },
                        "The consent log is not answering.",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format). Needs an API "
                "token (Authorization: Bearer, any role) or a scraper address in "
                "metrics_allow.",
                "responses": {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _error("No valid token and not an allowed scraper address."),
                },
            }
        },
    }


def _gpc_path() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "gpcSupport",
            "summary": "Global Privacy Control support resource, on the site's own origin "
            "(sites with gpc_well_known = true; otherwise the site answers).",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["gpc"],
                        "properties": {"gpc": {"const": True}},
                    },
                    "The site honours GPC.",
                ),
                "405": _error("Not GET or HEAD (code method_not_allowed)."),
            },
        }
    }


def openapi_document(runtime: Runtime) -> dict[str, Any]:
    prefix = runtime.settings.prefix
    paths: dict[str, Any] = {
        f"{prefix}/api/consent": _consent_path(),
        f"{prefix}/api/consent/receipt": _receipt_path(),
        **{prefix + path: item for path, item in _asset_paths().items()},
        **{prefix + path: item for path, item in _admin_paths().items()},
        **{prefix + path: item for path, item in _service_paths().items()},
        "/.well-known/gpc.json": _gpc_path(),
    }
    for path, item in runtime.openapi_paths.items():
        paths[prefix + path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "consentgate",
            "version": __version__,
            "description": "Cookie-consent API, banner assets, the auditor API and the "
            'service endpoints. Errors are JSON {"error": {"code": ..., "message": ...}}.',
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Consent": _CONSENT_SCHEMA,
                "ConsentRequest": _REQUEST_SCHEMA,
                "Record": _RECORD_SCHEMA,
                "Subject": _SUBJECT_SCHEMA,
                "Manifest": _MANIFEST_SCHEMA,
                "Token": _TOKEN_SCHEMA,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `consentgate tokens create` (role "
                    "admin or auditor).",
                }
            },
        },
    }
