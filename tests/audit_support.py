"""Shared by the tests/test_audit_*.py files: a two-site consent log filled with
real consents through the consent API (in-process), and CLI helpers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx2 as httpx
from click.testing import CliRunner, Result

from consentgate.app import create_app
from consentgate.cli import cli
from consentgate.config import Settings, load_settings
from tests import support

KEYS = "test-key-newest-0123456789,test-key-older-0123456789"
CONFIG = """
[[sites]]
id = "alpha"
hosts = ["alpha.test"]

[[sites]]
id = "beta"
hosts = ["beta.test"]
retention_days = 30
"""


def make_settings(tmp_path: Path, database: str | None = None) -> Settings:
    """Two sites in a temporary data dir; ``database`` (the ``database_url`` fixture)
    puts the log on PostgreSQL for ``both_backends`` tests."""
    config = tmp_path / "consentgate.toml"
    config.write_text(CONFIG)
    environ = {"CONSENTGATE_DATA_DIR": str(tmp_path / "data"), "CONSENTGATE_SECRET_KEYS": KEYS}
    if database:
        (tmp_path / "data").mkdir(exist_ok=True)
        environ["CONSENTGATE_DATABASE"] = database
    return load_settings(config, environ=environ)


def user_agent(i: int) -> str:
    if i % 11 == 3:
        return f'=HYPERLINK("http://evil.test/{i}","x") UA-{i:04d}'
    return f"Mozilla/5.0 (X11; TestAgent-{i:04d}; like Gecko) Probe/{i:04d}"


def ip(i: int) -> str:
    return f"198.51.{i % 250}.{(i * 7) % 250 + 1}"


def page(i: int) -> str:
    return f"https://shop.example/page-{i:04d}/checkout"


async def post_consents(client: httpx.AsyncClient, n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` visitors; every third updates, every fifth withdraws afterwards."""
    made: list[dict[str, Any]] = []
    for i in range(start, start + n):
        client.cookies.clear()
        host = "alpha.test" if i % 2 == 0 else "beta.test"
        method = ("accept_all", "reject_all", "custom")[i % 3]
        body: dict[str, Any] = {
            "method": method,
            "page_url": page(i) + "?utm=secret#frag",
            "language": ("en", "de", "fr-CA")[i % 3],
            "banner_hash": ("sha256:abc", "=1+2", "-3", "+4")[i % 4],
        }
        if method == "custom":
            body["granted"] = ["statistics"] if i % 2 else ["preferences", "marketing"]
        headers = {"user-agent": user_agent(i), "x-forwarded-for": ip(i), "host": host}
        r = await client.post("/_consent/api/consent", json=body, headers=headers)
        assert r.status_code == 201, r.text
        made.append(r.json())
        if i % 3 == 0:
            r = await client.post(
                "/_consent/api/consent",
                json={"method": "custom", "granted": ["statistics"]},
                headers=headers,
            )
            assert r.status_code == 200 or r.status_code == 201, r.text
        if i % 5 == 0:
            r = await client.delete("/_consent/api/consent", headers=headers)
            assert r.status_code < 300, r.text
    return made


async def _fill(settings: Settings, n: int, start: int) -> list[dict[str, Any]]:
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alpha.test") as c:
            return await post_consents(c, n, start)


def fill_log(settings: Settings, n: int = 40, start: int = 0) -> list[dict[str, Any]]:
    """Run the app, record ``n`` visitors' consents through the API, stop the app."""
    return asyncio.run(_fill(settings, n, start))


def run_cli(settings: Settings, *args: str, input: str | None = None) -> Result:
    """``consentgate ARGS --config ...`` in-process, with the test keys."""
    database = settings.database if is_postgres(settings) else None
    runner = CliRunner(
        env={
            "CONSENTGATE_SECRET_KEYS": KEYS,
            "CONSENTGATE_DATA_DIR": None,
            "CONSENTGATE_DATABASE": database,
        }
    )
    return runner.invoke(
        cli,
        [*args, "--config", str(settings.config_file), "--data-dir", str(settings.data_dir)],
        input=input,
        catch_exceptions=False,
    )


def is_postgres(settings: Settings) -> bool:
    return settings.database.startswith(("postgresql://", "postgres://"))


def db_path(settings: Settings) -> Path:
    return Path(settings.database.removeprefix("sqlite:///"))


def sql(settings: Settings, statement: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run SQL directly on the log file with the sqlite3 module (the tamperer's tool);
    on PostgreSQL the same statement through :func:`tests.support.pg_sql`."""
    if is_postgres(settings):
        return support.pg_sql(settings.database, statement, args)
    conn = sqlite3.connect(db_path(settings))
    try:
        with conn:
            return list(conn.execute(statement, args))
    finally:
        conn.close()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
