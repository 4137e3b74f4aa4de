"""The console's pages in the OpenAPI document (``runtime.openapi_paths``).

The console is server-rendered HTML for people, not an API; it is documented so the
document names everything the server answers (``tests/test_openapi_complete.py``
fails on a route missing here). Every page but sign-in needs the session cookie
``consentgate_console``; without it a page redirects (303) to sign-in and a form is
answered 403. Forms are ``application/x-www-form-urlencoded`` and carry the session's
``csrf`` field.
"""

from __future__ import annotations

from typing import Any

from .session import COOKIE

__all__ = ["PATHS"]

_HTML = {"text/html": {"schema": {"type": "string"}}}
_SESSION = {
    "name": COOKIE,
    "in": "cookie",
    "required": False,
    "schema": {"type": "string"},
    "description": "The console session (signed; set by sign-in).",
}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": _HTML}


_SEE_OTHER = {
    "description": "Redirect (to sign-in without a session, or to the page that shows the "
    "result of a form).",
    "headers": {"Location": {"schema": {"type": "string"}}},
}
_DENIED = _html(
    "The session has ended (forms), the CSRF field is wrong, or the token's role may not do this."
)
_STORE = _html("The consent log is unavailable.")


def _form(*fields: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["csrf"],
                    "properties": {name: {"type": "string"} for name in ("csrf", *fields)},
                }
            }
        },
    }


def _page(
    operation: str,
    summary: str,
    ok: dict[str, Any] | None = None,
    *,
    form: tuple[str, ...] | None = None,
    query: tuple[str, ...] = (),
    more: dict[str, Any] | None = None,
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [_SESSION]
    params += [
        {"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query
    ]
    op: dict[str, Any] = {
        "operationId": operation,
        "summary": summary,
        "tags": ["console"],
        "parameters": params,
        "responses": {
            **(ok if ok is not None else {"200": _html("The page.")}),
            "303": _SEE_OTHER,
            "403": _DENIED,
            "503": _STORE,
            **(more or {}),
        },
    }
    if form is not None:
        op["requestBody"] = _form(*form)
    return op


_EXPORT_TYPES = {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
}

PATHS: dict[str, dict[str, Any]] = {
    "/admin": {
        "get": {
            "operationId": "consoleRoot",
            "summary": "The console: redirects to the dashboard.",
            "tags": ["console"],
            "responses": {"303": _SEE_OTHER},
        }
    },
    "/admin/": {
        "get": {
            "operationId": "consoleHome",
            "summary": "The console: redirects to the dashboard.",
            "tags": ["console"],
            "responses": {"303": _SEE_OTHER},
        }
    },
    "/admin/console.css": {
        "get": {
            "operationId": "consoleCss",
            "summary": "The console's stylesheet.",
            "tags": ["console"],
            "responses": {
                "200": {
                    "description": "CSS.",
                    "content": {"text/css": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/admin/sign-in": {
        "get": {
            "operationId": "consoleSignInForm",
            "summary": "The sign-in form (an API token from `consentgate tokens create`).",
            "tags": ["console"],
            "parameters": [
                {"name": "next", "in": "query", "required": False, "schema": {"type": "string"}}
            ],
            "responses": {"200": _html("The form.")},
        },
        "post": {
            "operationId": "consoleSignIn",
            "summary": "Sign in with a token: a session cookie and a redirect.",
            "tags": ["console"],
            "requestBody": _form("token", "next"),
            "responses": {
                "303": _SEE_OTHER,
                "401": _html("Unknown or revoked token: the form again."),
                "403": _html("The form expired (its CSRF field does not match)."),
            },
        },
    },
    "/admin/sign-out": {
        "post": _page("consoleSignOut", "End the session.", {}, form=()),
    },
    "/admin/dashboard": {
        "get": _page(
            "consoleDashboard",
            "Consent rates per category, decisions per day and method, for a period.",
            query=("site", "days", "start", "end"),
            more={"400": _html("A period that cannot be read; the default period shown.")},
        )
    },
    "/admin/discovery": {
        "get": _page(
            "consoleDiscovery",
            "Cookies and third-party hosts the pages really set and load, not yet declared.",
            query=("site", "done"),
        )
    },
    "/admin/discovery/classify": {
        "post": _page(
            "consoleClassify",
            "Declare a discovered cookie or host in a category.",
            {},
            form=("site", "kind", "name", "category"),
        )
    },
    "/admin/exports": {"get": _page("consoleExports", "The export form.")},
    "/admin/exports/download": {
        "get": _page(
            "consoleExportDownload",
            "The export, streamed (the admin API's export for the form's fields).",
            {"200": {"description": "The export.", "content": _EXPORT_TYPES}},
            query=("format", "site", "since", "until", "consent_id", "method", "region"),
            more={"400": _html("An invalid field.")},
        )
    },
    "/admin/verify": {
        "get": _page("consoleVerify", "The log's verification: the current run and history."),
        "post": _page("consoleVerifyStart", "Start a verification run.", {}, form=()),
    },
    "/admin/manifests": {"get": _page("consoleManifests", "Export manifests and the public key.")},
    "/admin/manifests/{export_id}": {
        "get": _page(
            "consoleManifest",
            "One export's signed manifest, as a download.",
            {
                "200": {
                    "description": "The manifest.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Manifest"}}
                    },
                }
            },
            more={"404": _html("No such export.")},
        )
        | {
            "parameters": [
                _SESSION,
                {"name": "export_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ]
        }
    },
    "/admin/lookup": {
        "get": _page(
            "consoleLookup",
            "A subject's records by consent id.",
            query=("consent_id", "erased"),
            more={"404": _html("No records for this consent id.")},
        )
    },
    "/admin/lookup/erase": {
        "post": _page("consoleErase", "Erase a subject's records.", {}, form=("consent_id",))
    },
    "/admin/tokens": {
        "get": _page("consoleTokens", "API tokens."),
        "post": _page(
            "consoleTokenCreate",
            "Create a token; its secret is shown once, on this page.",
            {"201": _html("The page, with the new token.")},
            form=("role", "name"),
        ),
    },
    "/admin/tokens/revoke": {
        "post": _page("consoleTokenRevoke", "Revoke a token.", {}, form=("token_id",))
    },
    "/admin/actions": {"get": _page("consoleActions", "The audit action log.")},
}
