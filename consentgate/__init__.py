"""consentgate: self-hosted cookie consent with server-side tracker blocking."""

from .config import ConfigError, Settings, Site, load_settings
from .consent import CATEGORIES, Consent, ConsentCodec, CookieRejected
from .errors import ApiError, ConsentGateError

__version__ = "0.1.0"

__all__ = [
    "CATEGORIES",
    "ApiError",
    "ConfigError",
    "Consent",
    "ConsentCodec",
    "ConsentGateError",
    "CookieRejected",
    "Settings",
    "Site",
    "__version__",
    "load_settings",
]
