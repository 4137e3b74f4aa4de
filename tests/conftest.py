from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest

from consentgate.app import ConsentGateApp, create_app
from consentgate.config import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary data dir, with fixed keys."""
    return load_settings(
        None,
        environ={
            "CONSENTGATE_DATA_DIR": str(tmp_path / "data"),
            "CONSENTGATE_SECRET_KEYS": "test-key-newest-0123456789,test-key-older-0123456789",
        },
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[ConsentGateApp]:
    application = create_app(settings)
    async with application.lifespan():
        yield application


@pytest.fixture
async def client(app: ConsentGateApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c
