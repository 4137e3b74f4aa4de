"""Running the ASGI app under uvicorn, in one process or ``--workers N``.

With one worker the app object is served directly. With several, uvicorn spawns
fresh worker processes that build the app with :func:`app_factory`; the parent
hands them its :class:`~consentgate.config.Settings` through a private run
directory (mode 0700, removed at exit) named by ``CONSENTGATE_RUN_DIR``:

* ``settings.pickle`` (mode 0600): the parent's settings, exactly as loaded, so
  every worker serves the same config, keys and database;
* ``metrics/``: ``PROMETHEUS_MULTIPROC_DIR``, so ``/_consent/metrics`` sums the
  counters of all workers whichever worker answers.

Every worker opens its own store: with PostgreSQL each is its own chain segment
and connection pool; with SQLite each worker has its own writer (its own chain
segment) and the workers take turns through the writer lock (an ``flock`` on
``<file>-writer.lock`` around each transaction, see :mod:`.store.sqlite`). The
parent opens the store once before spawning workers so the schema migration and
WAL switch happen in one process.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pickle
import re
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
import uvicorn

from .app import ConsentGateApp, create_app
from .audit.keys import signing_key_for
from .config import ConfigError, Settings, Site, ensure_secret
from .errors import ConsentGateError

__all__ = [
    "RUN_DIR_ENV",
    "AddressUnavailable",
    "app_factory",
    "check_listen_address",
    "describe",
    "make_keys",
    "mask_database",
    "run",
    "site_mode",
    "tune_malloc",
]

RUN_DIR_ENV = "CONSENTGATE_RUN_DIR"
_SETTINGS_FILE = "settings.pickle"


def _uvicorn_options(settings: Settings) -> dict[str, object]:
    from .corked import protocol_class

    return {
        # the hardened edge protocol: limits, timeouts, one framing, one write per
        # response (consentgate/corked.py)
        "http": protocol_class(),
        "timeout_keep_alive": settings.keepalive_timeout,
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,  # uvicorn's access log would write full client IPs
    }


def mask_database(url: str) -> str:
    """The database URL with any password replaced by ``***`` (user info and query)."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url  # sqlite:///PATH carries no credentials
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{hostport}"
    query = re.sub(r"(?i)((?:^|&)(?:password|passfile)=)[^&]*", r"\1***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def site_mode(site: Site) -> str:
    """How a site is served: ``proxy``, ``demo`` or ``script-tag`` (no upstream)."""
    if site.upstream:
        return "proxy"
    return "demo" if site.demo else "script-tag"


def describe(settings: Settings) -> str:
    """Start-up banner: where it listens, what it runs with, where the data lives (no secrets)."""
    from .accelerators import summary

    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = f"http://{host}:{settings.port}"

    def mode(site: Site) -> str:
        kind = site_mode(site)
        return f"proxy to {site.upstream}" if kind == "proxy" else kind

    sites = ", ".join(f"{s.id} ({mode(s)})" for s in settings.sites)
    return "\n".join(
        [
            f"consentgate listening on {base}/  (consent API {base}{settings.prefix}/api/consent)",
            f"data dir: {Path(settings.data_dir).resolve()}",
            f"consent log: {mask_database(settings.database)}",
            f"sites: {sites}",
            f"accelerators: {summary()}",
            f"config: {settings.config_file or 'none (embedded defaults)'}",
            f"workers: {settings.workers}",
        ]
    )


class AddressUnavailable(ConsentGateError, click.ClickException):
    """The listen address cannot be bound (exit 2, like any other setting mistake)."""

    exit_code = 2


def check_listen_address(host: str, port: int) -> None:
    """Bind and release ``host:port`` the way uvicorn will (``SO_REUSEADDR``), so a busy
    port is reported before anything is written to disk."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except socket.gaierror as exc:
            raise AddressUnavailable(
                f"cannot listen on {where}: the host {host!r} does not resolve ({exc.strerror}); "
                "pass --host with an address of this machine"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "the port is already in use by another program; stop it or pass --port"
            elif exc.errno == errno.EACCES:
                why = "permission denied (ports below 1024 need privileges); pass --port"
            elif exc.errno == errno.EADDRNOTAVAIL:
                why = "the address is not one of this machine's; pass --host"
            else:
                why = exc.strerror or str(exc)
            raise AddressUnavailable(f"cannot listen on {where}: {why}") from None


#: glibc mallopt parameters (malloc.h) and the values ``serve`` sets.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOPT = ((_M_TRIM_THRESHOLD, 32 << 20), (_M_TOP_PAD, 4 << 20), (_M_MMAP_THRESHOLD, 4 << 20))


def tune_malloc() -> bool:
    """Keep freed heap memory for reuse instead of returning it to the kernel at once.

    A proxied page allocates and frees ~100 KB buffers per request; with glibc's
    defaults the heap top is trimmed and grown again, and every regrowth page-faults
    (~11 minor faults per 72 KB page measured, 15-25 % of the proxy's CPU per page).
    Up to 32 MiB of free heap is kept, the heap grows 4 MiB at a time, and blocks up to
    4 MiB come from the heap rather than fresh mmaps. glibc only; False elsewhere.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc after all
        return False
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT)


def make_keys(settings: Settings) -> None:
    """The installation's keys, made on the first start: the secret (unless configured)
    and the Ed25519 signing key, so the auditor's read-only commands, which never make
    keys, find them in the data directory."""
    try:
        ensure_secret(settings)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        signing_key_for(Path(settings.data_dir))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read or make the signing key: {exc}") from None


def run(settings: Settings) -> None:
    # Nothing is written before the address is known to be free: a second `serve` on a
    # busy port leaves no data directory or secret behind.
    check_listen_address(settings.host, settings.port)
    make_keys(settings)
    click.echo(describe(settings))
    tune_malloc()
    if settings.workers <= 1:
        uvicorn.run(create_app(settings), **_uvicorn_options(settings))  # type: ignore[arg-type]
        return
    asyncio.run(_prepare_store(settings))
    run_dir = Path(tempfile.mkdtemp(prefix="consentgate-run-"))
    try:
        fd = os.open(run_dir / _SETTINGS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(settings, fh)
        metrics_dir = run_dir / "metrics"
        metrics_dir.mkdir()
        os.environ[RUN_DIR_ENV] = str(run_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        uvicorn.run(
            "consentgate.server:app_factory",
            factory=True,
            workers=settings.workers,
            **_uvicorn_options(settings),  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


async def _prepare_store(settings: Settings) -> None:
    """Create or upgrade the schema once, before the workers start."""
    app = create_app(settings)
    async with app.lifespan():
        pass


def app_factory() -> ConsentGateApp:
    """The app of one ``--workers`` process (uvicorn calls this in every worker)."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        raise RuntimeError(f"{RUN_DIR_ENV} is not set; start workers with `consentgate serve`")
    # The file is written by our parent process into a private 0700 directory.
    with open(Path(run_dir) / _SETTINGS_FILE, "rb") as fh:
        settings: Settings = pickle.load(fh)
    tune_malloc()
    return create_app(settings)
