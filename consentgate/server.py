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
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import click
import uvicorn

from .app import ConsentGateApp, create_app
from .config import Settings, Site

__all__ = ["RUN_DIR_ENV", "app_factory", "describe", "run", "tune_malloc"]

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


def describe(settings: Settings) -> str:
    """Start-up banner: where it listens, where the data lives (no secrets)."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = f"http://{host}:{settings.port}"
    database = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", settings.database)

    def mode(site: Site) -> str:
        if site.upstream:
            return f"proxy to {site.upstream}"
        return "demo" if site.demo else "no upstream"

    sites = ", ".join(f"{s.id} ({mode(s)})" for s in settings.sites)
    return "\n".join(
        [
            f"consentgate listening on {base}/  (consent API {base}{settings.prefix}/api/consent)",
            f"data dir: {Path(settings.data_dir).resolve()}",
            f"consent log: {database}",
            f"sites: {sites}",
            f"config: {settings.config_file or 'none (embedded defaults)'}",
            f"workers: {settings.workers}",
        ]
    )


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


def run(settings: Settings) -> None:
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
