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
                {
                    "name": "consentgate",
                    "in": "cookie",
                    "required": False,
                    "schema": {"type": "string"},
                },
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


def openapi_document(runtime: Runtime) -> dict[str, Any]:
    prefix = runtime.settings.prefix
    paths: dict[str, Any] = {
        f"{prefix}/api/consent": _consent_path(),
        f"{prefix}/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        f"{prefix}/healthz": {
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
        f"{prefix}/metrics": {
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
    for path, item in runtime.openapi_paths.items():
        paths[prefix + path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "consentgate",
            "version": __version__,
            "description": "Cookie-consent API. Errors are JSON "
            '{"error": {"code": ..., "message": ...}}.',
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Consent": _CONSENT_SCHEMA,
                "ConsentRequest": _REQUEST_SCHEMA,
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
            }
        },
    }
