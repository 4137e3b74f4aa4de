"""consentgate: self-hosted cookie consent with server-side tracker blocking."""

from .config import ConfigError, Settings, Site, load_settings
from .consent import CATEGORIES, Consent, ConsentCodec, CookieRejected

__version__ = "0.1.0"

__all__ = [
    "CATEGORIES",
    "ConfigError",
    "Consent",
    "ConsentCodec",
    "CookieRejected",
    "Settings",
    "Site",
    "__version__",
    "load_settings",
]
