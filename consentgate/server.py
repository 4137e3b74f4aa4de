"""Running the ASGI app under uvicorn.

One worker runs the app in-process. ``--workers N`` (N > 1) hands uvicorn an app
factory: the settings travel to the worker processes in a private (0600) pickle
file named by ``CONSENTGATE_WORKER_SETTINGS``, and Prometheus counters are shared
through ``PROMETHEUS_MULTIPROC_DIR``. Each worker writes its own chain segment.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path

import click
import uvicorn

from .app import ConsentGateApp, create_app
from .config import Settings, Site

__all__ = ["describe", "run", "worker_app"]

WORKER_SETTINGS_ENV = "CONSENTGATE_WORKER_SETTINGS"


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
        ]
    )


def worker_app() -> ConsentGateApp:
    """uvicorn app factory for worker processes."""
    path = os.environ[WORKER_SETTINGS_ENV]
    with open(path, "rb") as fh:
        settings: Settings = pickle.load(fh)  # our own 0600 file, written by run()
    return create_app(settings)


def run(settings: Settings) -> None:
    click.echo(describe(settings))
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,  # uvicorn's access log would write full client IPs
    }
    if settings.workers <= 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    with tempfile.TemporaryDirectory(prefix="consentgate-") as tmp:
        path = Path(tmp) / "settings.pickle"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(settings, fh)
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        os.environ[WORKER_SETTINGS_ENV] = str(path)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        uvicorn.run(
            "consentgate.server:worker_app",
            factory=True,
            workers=settings.workers,
            **options,  # type: ignore[arg-type]
        )
