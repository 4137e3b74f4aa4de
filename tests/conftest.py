from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from hypothesis import settings as hypothesis_settings

from consentgate.app import ConsentGateApp, create_app
from consentgate.config import Settings, load_settings
from tests import support

# Tests check behaviour, never wall-clock time: no per-example deadline (hypothesis'
# default 200 ms made property tests flaky on a loaded machine).
hypothesis_settings.register_profile("consentgate", deadline=None)
hypothesis_settings.load_profile("consentgate")

#: Storage backends a ``both_backends`` test runs against. CONSENTGATE_TEST_BACKENDS
#: (comma-separated) narrows the list for a quick local run; CI runs both.
BACKENDS: tuple[str, ...] = tuple(
    b.strip()
    for b in os.environ.get("CONSENTGATE_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip()
)
TEST_KEYS = "test-key-newest-0123456789,test-key-older-0123456789"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_backends`` (module ``pytestmark`` or per test) run once per
    backend: every fixture built on ``backend`` (``database_url``, ``settings``,
    ``app``, ``client``) follows the parameter. ``sqlite_only`` opts a test out."""
    marked = metafunc.definition.get_closest_marker("both_backends")
    if marked and "backend" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            return  # e.g. edits the SQLite file's bytes
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` (default) or ``postgres`` when the test is ``both_backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty consent log of the test's backend: a SQLite file in the test's data
    dir, or a fresh PostgreSQL database ``cg_test_<random>`` dropped afterwards."""
    if backend == "postgres":
        with support.pg_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'data' / 'consent.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Embedded defaults in a temporary data dir, with fixed keys."""
    return load_settings(
        None,
        environ={
            "CONSENTGATE_DATA_DIR": str(tmp_path / "data"),
            "CONSENTGATE_SECRET_KEYS": TEST_KEYS,
            "CONSENTGATE_DATABASE": database_url,
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


@pytest.fixture(scope="module", params=["c", "python"])
def rewriter_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a rewriter test module once with the C accelerator (when compiled) and once in
    pure Python (``StreamRewriter``'s default, ``stream.SPEEDUPS``)."""
    from consentgate.rewriter import stream

    saved = stream.SPEEDUPS
    stream.SPEEDUPS = request.param == "c" and stream.speedups_available()
    try:
        yield request.param
    finally:
        stream.SPEEDUPS = saved
