"""Running the ASGI app under uvicorn."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .config import Settings

__all__ = ["run"]


def run(settings: Settings) -> None:
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        proxy_headers=False,
        server_header=False,
    )
