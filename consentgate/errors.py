"""consentgate's exceptions, from one root, and HTTP error responses
(``{"error": {"code": ..., "message": ...}}``).

Every exception consentgate raises on purpose is a :class:`ConsentGateError`, so
``except consentgate.ConsentGateError`` catches them all. Each carries its data as
attributes and a message naming the thing, the value and the fix::

    ConsentGateError               the root                         consentgate.errors
    ├── ApiError                   client mistake -> 4xx JSON       consentgate.errors
    ├── ConfigError                configuration (file, key)        consentgate.config
    ├── CookieRejected             bad consent cookie (reason)      consentgate.consent
    ├── CatalogError, ValueError   tracker catalog does not load    consentgate.catalog
    ├── StoreError                 the consent log failed           consentgate.store
    ├── UnsafePage                 page cannot be made safe: 502    consentgate.page
    ├── DecodeError                body vs its Content-Encoding     consentgate.proxy.encoding
    ├── UpstreamError              upstream failed (status)         consentgate.proxy.client
    │   ├── UpstreamConnectError   no connection
    │   ├── UpstreamTimeout        no answer in time (phase, seconds)
    │   └── UpstreamProtocolError  not valid HTTP/1.1, or hung up
    ├── ClientGone                 the visitor left mid-upload      consentgate.proxy.app
    ├── TokenError, ValueError     admin/auditor token              consentgate.audit.tokens
    ├── FormatError, ValueError    unknown export format            consentgate.audit.formats
    ├── ErasureRefused             erasure cannot be done           consentgate.audit.subjects
    ├── PublicKeyError, ValueError an auditor public key unusable   consentgate.audit.keys
    ├── ThemeError, ValueError     a banner theme setting invalid   consentgate.theme
    ├── PeriodError, ValueError    a console period invalid         consentgate.console.figures
    ├── Forbidden                  a console action not allowed     consentgate.console.views
    └── AddressUnavailable         the listen address cannot be bound consentgate.server
                                   (also a click.ClickException: exit 2)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["ApiError", "ConsentGateError", "api_error_handler", "error_response"]


class ConsentGateError(Exception):
    """The root of every exception consentgate raises on purpose (tree above)."""


class ApiError(ConsentGateError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)
