"""Configuration: a TOML file, the environment, and embedded defaults.

The settings are declared once in :data:`SERVER_SETTINGS` and :data:`SITE_SETTINGS`;
that table drives validation, ``consentgate init``'s starter file and the docs test.

Precedence (highest first): CLI flags, environment (``CONSENTGATE_SECRET_KEYS``,
``CONSENTGATE_DATABASE``, ``CONSENTGATE_DATA_DIR``), the TOML file, defaults.

Errors are :class:`ConfigError` and name the file, the key and the fix.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .consent import CATEGORIES, MAX_LIFETIME_DAYS
from .errors import ConsentGateError

__all__ = [
    "EDGE_LIMITS",
    "SEED_COOKIES",
    "SERVER_SETTINGS",
    "SITE_SETTINGS",
    "ConfigError",
    "CookieDecl",
    "Setting",
    "Settings",
    "Site",
    "effective_declarations",
    "ensure_secret",
    "load_settings",
    "shipped_locales",
    "site_id_problem",
]

DEFAULT_DATA_DIR = "./consentgate-data"
SECRET_FILE = "secret.key"


class ConfigError(ConsentGateError):
    """A configuration problem: names the file, the key and the fix."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ""
        if file:
            where += f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message)
        self.file = file
        self.key = key


#: Banner languages shipped with consentgate (``consentgate/locales/<lang>.json``).
LOCALE_DIR = Path(__file__).parent / "locales"


def shipped_locales() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in LOCALE_DIR.glob("*.json")))


@dataclass(frozen=True)
class Setting:
    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str


SERVER_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "secret_keys",
        list,
        None,
        "Signing keys, newest first (env CONSENTGATE_SECRET_KEYS, "
        "comma-separated). Default: a key generated once and kept in data_dir/secret.key.",
    ),
    Setting(
        "database",
        str,
        None,
        "sqlite:///path or postgresql://... (env CONSENTGATE_DATABASE). "
        "Default: sqlite in data_dir.",
    ),
    Setting(
        "data_dir",
        str,
        DEFAULT_DATA_DIR,
        "Where the SQLite log and generated secret live (env CONSENTGATE_DATA_DIR).",
    ),
    Setting("host", str, "127.0.0.1", "Address to listen on."),
    Setting("port", int, 8000, "Port to listen on."),
    Setting("workers", int, 1, "Worker processes."),
    Setting("prefix", str, "/_consent", "URL prefix of consentgate's own endpoints."),
    Setting(
        "region_header",
        str,
        "",
        "Trusted request header holding the visitor's country "
        "(e.g. CF-IPCountry). Empty: region unknown.",
    ),
    Setting("subdivision_header", str, "", "Trusted header holding the ISO 3166-2 subdivision."),
    Setting(
        "trusted_proxies",
        list,
        ["127.0.0.1", "::1"],
        "Peers whose region and forwarding headers are believed.",
    ),
    Setting("geoip_database", str, "", "Path to a MaxMind-format .mmdb (optional)."),
    Setting("max_body_bytes", int, 16384, "Largest accepted consent API request body."),
    Setting("db_pool_size", int, 10, "PostgreSQL connection pool size."),
    Setting("upstream_connect_timeout", float, 5.0, "Proxy: seconds to connect to an upstream."),
    Setting("upstream_read_timeout", float, 30.0, "Proxy: seconds to wait for upstream bytes."),
    # -- the HTTP edge (consentgate/corked.py): limits and timeouts, as nginx's defaults --
    Setting(
        "max_request_line",
        int,
        8192,
        "Longest request line (method, target, version) in bytes; longer: 414 and close.",
    ),
    Setting(
        "max_request_header_bytes",
        int,
        32768,
        "Largest request head (all header fields) in bytes; larger: 431 and close.",
    ),
    Setting("max_request_headers", int, 100, "Most request header fields; more: 431 and close."),
    Setting(
        "request_header_timeout",
        float,
        60.0,
        "Seconds a client has to send a request's headers (counted from the connection "
        "or the request's first byte); then 408 and close.",
    ),
    Setting(
        "request_body_timeout",
        float,
        60.0,
        "Seconds a request body may stall; then 408 and close.",
    ),
    Setting(
        "request_body_min_rate",
        int,
        240,
        "Bytes per second a request body must average once request_body_timeout has "
        "passed (a trickled body is closed with 408).",
    ),
    Setting(
        "keepalive_timeout", float, 60.0, "Seconds an idle keep-alive connection is kept open."
    ),
    Setting(
        "metrics_allow",
        list,
        [],
        "Addresses or networks that may read /_consent/metrics without a token.",
    ),
    Setting(
        "rewrite_cache_mb",
        int,
        32,
        "Proxy: memory for recorded page rewrites, replayed while the bytes match (0: off).",
    ),
)

#: the HTTP edge's limits and timeouts (all must be positive)
EDGE_LIMITS = (
    "max_request_line",
    "max_request_header_bytes",
    "max_request_headers",
    "request_header_timeout",
    "request_body_timeout",
    "request_body_min_rate",
    "keepalive_timeout",
)

SITE_SETTINGS: tuple[Setting, ...] = (
    Setting("id", str, None, "Site id: ASCII letters, digits, - and _ (at most 64)."),
    Setting("hosts", list, [], "Host names served for this site (empty: any host)."),
    Setting("upstream", str, "", "Proxy mode: the origin to forward to (http://host:port)."),
    Setting(
        "upstream_host_header", str, "", "Host header sent upstream (default: the visitor's Host)."
    ),
    Setting("policy_version", str, "1", "Bump to ask every visitor again."),
    Setting("privacy_policy_url", str, "/privacy", "Linked from the banner."),
    Setting(
        "consent_lifetime_days", int, 180, f"How long a decision lasts (max {MAX_LIFETIME_DAYS})."
    ),
    Setting("retention_days", int, 0, "Log retention; 0 means lifetime + 365 days."),
    Setting(
        "languages",
        list,
        ["en", "ru", "kk", "de", "fr"],
        f"Banner languages offered: shipped ones ({', '.join(shipped_locales())}), or "
        "another with its own [sites.texts.<lang>] table.",
    ),
    Setting(
        "default_language",
        str,
        "en",
        "Fallback when Accept-Language matches none (one of languages).",
    ),
    Setting("strict", bool, False, "Treat scripts from unknown third-party hosts as unclassified."),
    Setting(
        "block_undeclared_cookies",
        bool,
        False,
        "Proxy: drop undeclared Set-Cookie unless unclassified is granted.",
    ),
    Setting(
        "gpc_well_known",
        bool,
        True,
        "Serve /.well-known/gpc.json: the site honours Global Privacy Control.",
    ),
    Setting("allow_hosts", list, [], "Third-party hosts always allowed (strict mode)."),
    Setting("origins", list, [], "Extra origins allowed to call the API (script-tag mode)."),
    Setting("regimes", dict, {}, "Region -> regime overrides (opt-in, opt-out, notice)."),
    Setting("default_regime", str, "opt-in", "Regime for unknown regions."),
    Setting("cookies", list, [], "Cookie declarations ([[sites.cookies]])."),
    Setting("services", list, [], "Extra tracker services ([[sites.services]])."),
    Setting("category_overrides", dict, {}, "Catalog service id -> category."),
    Setting("texts", dict, {}, "Per-language text overrides ([sites.texts.en] title = ...)."),
    # the banner's look and its cookie on other sites (docs/banner.md)
    Setting(
        "theme",
        dict,
        {},
        "The banner's look ([sites.theme]: layout box|bar|dialog, font, radius, colours, "
        "dark); refused when a text/background pair fails WCAG AA or Reject all would be "
        "less prominent than Accept all.",
    ),
    Setting(
        "cookie_samesite",
        str,
        "lax",
        'SameSite of the consent cookie: lax, or "none" (always Secure, HTTPS) when the '
        "script tag is on pages of another site than consentgate.",
    ),
)


@dataclass(frozen=True)
class CookieDecl:
    """One row of the cookie declaration (the seed's columns plus provider and category)."""

    name: str
    category: str
    provider: str = ""
    description: str = ""
    created: str = ""
    expiry: str = ""
    data_used: str = ""


#: The demo site's declaration: the seed policy's cookie table.
SEED_COOKIES: tuple[CookieDecl, ...] = (
    CookieDecl(
        "_gat_gtag",
        "statistics",
        "Google",
        "Used in \u201cGoogle Analytics\u201d to increase the request rate",
        "When a specific content is selected",
        "Session",
        "Selected content.",
    ),
    CookieDecl(
        "_gid",
        "statistics",
        "Google",
        "A unique ID is registered, which is used to generate statistics when a visitor "
        "uses Our site.",
        "When a link is clicked",
        "Session",
        "A unique code is generated.",
    ),
    CookieDecl(
        "_ga",
        "statistics",
        "Google",
        "A unique ID is registered, which is used to generate statistics when a visitor "
        "uses Our site.",
        "When a link is clicked",
        "2 years",
        "A unique code is generated.",
    ),
    CookieDecl(
        "PHPSESSID",
        "necessary",
        "This site",
        "A Cookie that is essential for the functionality of the website.",
        "When a link is clicked",
        "Session",
        "A unique code is generated.",
    ),
)


@dataclass
class Site:
    id: str
    hosts: list[str] = field(default_factory=list)
    upstream: str = ""
    upstream_host_header: str = ""
    policy_version: str = "1"
    privacy_policy_url: str = "/privacy"
    consent_lifetime_days: int = 180
    retention_days: int = 0
    languages: list[str] = field(default_factory=lambda: ["en", "ru", "kk", "de", "fr"])
    default_language: str = "en"
    strict: bool = False
    block_undeclared_cookies: bool = False
    gpc_well_known: bool = True
    allow_hosts: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    regimes: dict[str, str] = field(default_factory=dict)
    default_regime: str = "opt-in"
    cookies: list[CookieDecl] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    category_overrides: dict[str, str] = field(default_factory=dict)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    theme: dict[str, Any] = field(default_factory=dict)
    cookie_samesite: str = "lax"
    demo: bool = False

    @property
    def lifetime_seconds(self) -> int:
        return self.consent_lifetime_days * 86400

    @property
    def effective_retention_days(self) -> int:
        return self.retention_days or (self.consent_lifetime_days + 365)


@dataclass
class Settings:
    secret_keys: list[str]
    database: str
    data_dir: Path
    sites: list[Site]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    prefix: str = "/_consent"
    region_header: str = ""
    subdivision_header: str = ""
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    geoip_database: str = ""
    max_body_bytes: int = 16384
    db_pool_size: int = 10
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 30.0
    rewrite_cache_mb: int = 32
    max_request_line: int = 8192
    max_request_header_bytes: int = 32768
    max_request_headers: int = 100
    request_header_timeout: float = 60.0
    request_body_timeout: float = 60.0
    request_body_min_rate: int = 240
    keepalive_timeout: float = 60.0
    metrics_allow: list[str] = field(default_factory=list)
    config_file: str | None = None

    def site_for_host(self, host: str | None) -> Site:
        """The site serving ``host`` (port ignored); the first site when none matches."""
        name = (
            (host or "").rsplit(":", 1)[0].lower()
            if host and not host.startswith("[")
            else ((host or "").split("]")[0].lstrip("[").lower())
        )
        for site in self.sites:
            if name in (h.lower() for h in site.hosts):
                return site
        for site in self.sites:
            if not site.hosts:
                return site
        return self.sites[0]

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        known = ", ".join(s.id for s in self.sites)
        raise ConfigError(f"no site {site_id!r}; configured sites: {known}", key="--site")


def _check_type(value: Any, setting: Setting, file: str | None, key: str) -> Any:
    expected = setting.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}", file=file, key=key)
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"expected a whole number, got {value!r}", file=file, key=key)
    if not isinstance(value, expected):
        names = (
            expected.__name__
            if isinstance(expected, type)
            else "/".join(t.__name__ for t in expected)
        )
        raise ConfigError(
            f"expected {names}, got {type(value).__name__} {value!r}", file=file, key=key
        )
    return value


def _apply(
    table: dict[str, Any], settings: tuple[Setting, ...], file: str | None, prefix: str
) -> dict[str, Any]:
    known = {s.name: s for s in settings}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"unknown setting; known: {', '.join(known)}", file=file, key=f"{prefix}{key}"
            )
        out[key] = _check_type(value, known[key], file, f"{prefix}{key}")
    return out


def _parse_cookie(raw: Any, file: str | None, key: str) -> CookieDecl:
    if not isinstance(raw, dict):
        raise ConfigError("each cookie is a table with name and category", file=file, key=key)
    allowed = {"name", "category", "provider", "description", "created", "expiry", "data_used"}
    extra = set(raw) - allowed
    if extra:
        raise ConfigError(
            f"unknown cookie field(s) {sorted(extra)}; known: {sorted(allowed)}", file=file, key=key
        )
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError("cookie needs a name", file=file, key=f"{key}.name")
    if raw.get("category") not in CATEGORIES:
        raise ConfigError(
            f"category must be one of {', '.join(CATEGORIES)}, got {raw.get('category')!r}",
            file=file,
            key=f"{key}.category",
        )
    return CookieDecl(**{k: str(v) for k, v in raw.items()})


def _parse_site(raw: Any, index: int, file: str | None) -> Site:
    key = f"sites[{index}]."
    if not isinstance(raw, dict):
        raise ConfigError("each [[sites]] entry is a table", file=file, key=f"sites[{index}]")
    values = _apply(raw, SITE_SETTINGS, file, key)
    if "id" not in values:
        raise ConfigError(
            'every site needs an id of letters, digits, - and _ (add id = "main")',
            file=file,
            key=f"{key}id",
        )
    problem = site_id_problem(values["id"])
    if problem:
        raise ConfigError(problem, file=file, key=f"{key}id")
    _check_languages(values, file, key)
    lifetime = values.get("consent_lifetime_days", 180)
    if not 1 <= lifetime <= MAX_LIFETIME_DAYS:
        raise ConfigError(
            f"must be between 1 and {MAX_LIFETIME_DAYS} days, got {lifetime}",
            file=file,
            key=f"{key}consent_lifetime_days",
        )
    upstream = values.get("upstream", "")
    if upstream and not upstream.startswith(("http://", "https://")):
        raise ConfigError(
            f"upstream must be an http:// or https:// URL, got {upstream!r}",
            file=file,
            key=f"{key}upstream",
        )
    from .regions.model import check_region_key

    for region, regime in values.get("regimes", {}).items():
        if regime not in ("opt-in", "opt-out", "notice"):
            raise ConfigError(
                f"regime for {region!r} must be opt-in, opt-out or notice, got {regime!r}",
                file=file,
                key=f"{key}regimes",
            )
        try:
            check_region_key(region)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=f"{key}regimes") from None
    if values.get("default_regime", "opt-in") not in ("opt-in", "opt-out", "notice"):
        raise ConfigError(
            "must be opt-in, opt-out or notice", file=file, key=f"{key}default_regime"
        )
    for sid, cat in values.get("category_overrides", {}).items():
        if cat not in CATEGORIES:
            raise ConfigError(
                f"category for {sid!r} must be one of {', '.join(CATEGORIES)}",
                file=file,
                key=f"{key}category_overrides",
            )
    from .theme import ThemeError, check_theme

    try:
        values["theme"] = check_theme(values.get("theme", {}))
    except ThemeError as exc:
        raise ConfigError(str(exc), file=file, key=f"{key}theme") from None
    if values.get("cookie_samesite", "lax") not in ("lax", "none"):
        raise ConfigError(
            f'must be "lax" or "none", got {values["cookie_samesite"]!r}',
            file=file,
            key=f"{key}cookie_samesite",
        )
    values["cookies"] = [
        _parse_cookie(c, file, f"{key}cookies[{i}]")
        for i, c in enumerate(values.get("cookies", []))
    ]
    return Site(**values)


#: A site id travels in the consent cookie, log records, metric labels and
#: ``?site=`` query strings: ASCII letters, digits, ``-`` and ``_``, at most this long.
MAX_SITE_ID = 64
_SITE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def site_id_problem(site_id: str) -> str | None:
    """Why ``site_id`` is not a valid site id, or None when it is."""
    rule = 'use ASCII letters, digits, - and _ (e.g. id = "main")'
    if not site_id:
        return f"the site id is empty; {rule}"
    if len(site_id) > MAX_SITE_ID:
        return f"the site id is {len(site_id)} characters long, at most {MAX_SITE_ID} are allowed"
    for position, char in enumerate(site_id, 1):
        if char not in _SITE_ID_CHARS:
            what = "a space" if char.isspace() else f"{char!r} (U+{ord(char):04X})"
            return f"the site id {site_id!r} contains {what} at position {position}; {rule}"
    return None


def _check_languages(values: dict[str, Any], file: str | None, key: str) -> None:
    """Every offered language is shipped or has the site's own ``[sites.texts.<lang>]``."""
    shipped = shipped_locales()
    own = {str(lang).lower() for lang in values.get("texts", {})}
    languages = values.get("languages", list(shipped))
    if not languages:
        raise ConfigError(
            f"offer at least one language; shipped: {', '.join(shipped)}",
            file=file,
            key=f"{key}languages",
        )
    for lang in languages:
        if not isinstance(lang, str) or lang.lower() not in (*shipped, *own):
            raise ConfigError(
                f"no banner texts for language {lang!r}: shipped languages are "
                f"{', '.join(shipped)}; for another one add its texts in a "
                f"[sites.texts.{lang}] table",
                file=file,
                key=f"{key}languages",
            )
    default = values.get("default_language", "en")
    if default.lower() not in (str(lang).lower() for lang in languages):
        raise ConfigError(
            f"{default!r} is not one of the site's languages ({', '.join(languages)})",
            file=file,
            key=f"{key}default_language",
        )


def effective_declarations(site: Site) -> tuple[list[CookieDecl], list[dict[str, Any]]]:
    """The site's cookie declarations and extra tracker services in force: its
    configuration plus what an admin classified in the console since (applied to
    ``site.cookies`` and ``site.services`` in place, see ``consentgate.console.discovery``).
    Whatever compiles the catalog or the declaration for a site reads these; when they
    change, ``Runtime.declarations_changed`` is called."""
    return site.cookies, site.services


#: The trackers the demo page carries besides Google Analytics (the seed's table has its
#: cookies): their cookies come from the catalog.
DEMO_SERVICES = ("meta-pixel", "youtube")


def catalog_cookies(service_ids: tuple[str, ...]) -> list[CookieDecl]:
    """Declarations of the catalog's cookies of these services."""
    from .catalog import default_catalog

    out = []
    for sid in service_ids:
        svc = default_catalog().service(sid)
        if svc is None:
            raise ConfigError(f"no catalog service {sid!r}")
        out += [
            CookieDecl(
                c.name, svc.category, svc.provider, c.purpose, "When the service loads", c.expiry
            )
            for c in svc.cookies
        ]
    return out


def demo_site() -> Site:
    """The built-in demo site: declaration = the seed's cookie table, and the catalog's
    cookies of the other trackers on the demo page."""
    cookies = [*SEED_COOKIES, *catalog_cookies(DEMO_SERVICES)]
    return Site(id="demo", cookies=cookies, demo=True, privacy_policy_url="/privacy")


def _secret_from_data_dir(data_dir: Path, create: bool = True) -> list[str]:
    """Read data_dir/secret.key, generating it (mode 0600) on first use; with
    ``create=False`` a missing file gives no keys and nothing is written."""
    path = data_dir / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return []
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return [key]
    return [k.strip() for k in text.split(",") if k.strip()]


def _check_keys(keys: list[Any], file: str | None) -> None:
    for k in keys:
        if not isinstance(k, str) or len(k) < 16:
            raise ConfigError(
                "each secret key must be a string of at least 16 characters "
                "(generate one: python -c 'import secrets; print(secrets."
                "token_urlsafe(32))')",
                file=file,
                key="secret_keys",
            )


def ensure_secret(settings: Settings) -> None:
    """Give settings loaded with ``create_secret=False`` their keys: the data
    directory's ``secret.key``, generated (mode 0600) when it is not there yet."""
    if not settings.secret_keys:
        settings.secret_keys = _secret_from_data_dir(Path(settings.data_dir))
        _check_keys(settings.secret_keys, settings.config_file)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    create_secret: bool = True,
) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and CLI overrides.

    With no keys configured, the data directory's ``secret.key`` is read, and created
    when missing; ``create_secret=False`` writes nothing and leaves ``secret_keys``
    empty instead (read-only commands, and ``serve`` until its port is known to be
    free: then :func:`ensure_secret`).
    """
    env = os.environ if environ is None else environ
    file = str(config_file) if config_file else None
    server: dict[str, Any] = {}
    sites_raw: list[Any] = []
    if file:
        try:
            with open(file, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                "file not found; create one with `consentgate init`", file=file
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=file) from None
        unknown = set(doc) - {"server", "sites"}
        if unknown:
            raise ConfigError(
                f"unknown top-level table(s) {sorted(unknown)}; expected [server] and [[sites]]",
                file=file,
            )
        server = _apply(doc.get("server", {}), SERVER_SETTINGS, file, "server.")
        sites_raw = doc.get("sites", [])
        if not isinstance(sites_raw, list):
            raise ConfigError("use [[sites]] (an array of tables)", file=file, key="sites")

    if env.get("CONSENTGATE_DATA_DIR"):
        server["data_dir"] = env["CONSENTGATE_DATA_DIR"]
    if env.get("CONSENTGATE_DATABASE"):
        server["database"] = env["CONSENTGATE_DATABASE"]
    if env.get("CONSENTGATE_SECRET_KEYS"):
        server["secret_keys"] = [
            k.strip() for k in env["CONSENTGATE_SECRET_KEYS"].split(",") if k.strip()
        ]
    for k, v in (overrides or {}).items():
        if v is not None:
            server[k] = v

    data_dir = Path(server.pop("data_dir", DEFAULT_DATA_DIR))
    sites = [_parse_site(raw, i, file) for i, raw in enumerate(sites_raw)]
    upstream = server.pop("upstream", None)
    if not sites:
        sites = [demo_site()]
        if upstream:
            sites[0] = Site(id="default", upstream=upstream, cookies=list(SEED_COOKIES))
    elif upstream:
        sites[0].upstream = upstream
    if upstream and not str(upstream).startswith(("http://", "https://")):
        raise ConfigError(f"must be an http:// or https:// URL, got {upstream!r}", key="--upstream")
    ids = [s.id for s in sites]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"site ids must be unique, got {ids}", file=file, key="sites")

    keys = server.pop("secret_keys", None)
    if keys is None:
        keys = _secret_from_data_dir(data_dir, create=create_secret)
    _check_keys(keys, file)
    database = server.pop("database", None) or f"sqlite:///{(data_dir / 'consent.db')}"
    if not database.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"database must be sqlite:///PATH or postgresql://..., got {database!r}",
            file=file,
            key="database",
        )
    prefix = server.get("prefix", "/_consent")
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise ConfigError(
            "prefix must start with / and not end with / (e.g. /_consent)",
            file=file,
            key="server.prefix",
        )
    from .regions.detect import parse_networks

    try:
        parse_networks(server.get("trusted_proxies", []))
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key="server.trusted_proxies") from None
    try:
        parse_networks(server.get("metrics_allow", []))
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key="server.metrics_allow") from None
    for name in EDGE_LIMITS:
        if name in server and not server[name] > 0:
            raise ConfigError(
                f"must be greater than 0, got {server[name]!r}", file=file, key=f"server.{name}"
            )
    return Settings(
        secret_keys=keys,
        database=database,
        data_dir=data_dir,
        sites=sites,
        config_file=file,
        **server,
    )
