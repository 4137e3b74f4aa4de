"""Discovery and classification across two real nodes on one PostgreSQL database.

Node B sees an undeclared cookie in its upstream's ``Set-Cookie``; the sighting
reaches the database and shows on node A's discovery page. An admin classifies it on
node A; node B hears of it (``LISTEN``/``NOTIFY``) and its next proxied response
drops the cookie for a visitor without consent, and its declaration lists it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest

from consentgate.store.discovery import Classification
from consentgate.store.postgres import PostgresStore
from tests import support
from tests.upstream import running_upstream

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KEYS = "console-node-key-0123456789abcdef"
PAGE = "/pages/021.html?cookies=1"
ADMIN = "/_consent/admin"


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def set_cookie_names(base: str) -> list[str]:
    r = httpx.get(base + PAGE)
    assert r.status_code == 200
    return [v.split("=", 1)[0] for v in r.headers.get_list("set-cookie")]


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get(ADMIN + "/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = client.post(ADMIN + "/sign-in", data={"csrf": csrf.group(1), "token": token, "next": ""})
    assert r.status_code == 303, r.text


def test_a_classification_on_one_node_reaches_the_other(tmp_path: Path) -> None:
    with support.pg_database() as url, running_upstream() as upstream:
        env = {"CONSENTGATE_SECRET_KEYS": KEYS}
        args = ("--upstream", upstream.url, "--database", url)
        with (
            support.consentgate_server(*args, "--data-dir", str(tmp_path / "a"), env=env) as (
                node_a,
                _,
            ),
            support.consentgate_server(*args, "--data-dir", str(tmp_path / "b"), env=env) as (
                node_b,
                _,
            ),
        ):
            token = subprocess.run(
                [sys.executable, "-m", "consentgate", "tokens", "create", "--role", "admin",
                 "--database", url, "--data-dir", str(tmp_path / "a")],
                env=support.cli_env(env), capture_output=True, text=True, timeout=60, check=True,
            ).stdout.strip()  # fmt: skip
            assert "mystery_pref" in set_cookie_names(node_b)  # seen by node B only
            with httpx.Client(base_url=node_a) as admin:
                sign_in(admin, token)
                eventually(
                    lambda: "mystery_pref" in admin.get(ADMIN + "/discovery").text,
                    "node B's sighting on node A's discovery page",
                )
                page = admin.get(ADMIN + "/discovery").text
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                assert csrf is not None
                r = admin.post(
                    ADMIN + "/discovery/classify",
                    data={
                        "csrf": csrf.group(1),
                        "site": "default",
                        "kind": "set-cookie",
                        "name": "mystery_pref",
                        "category": "marketing",
                    },
                )
                assert r.status_code == 303, r.text
            assert "mystery_pref" not in set_cookie_names(node_a)  # at once where classified
            eventually(
                lambda: "mystery_pref" not in set_cookie_names(node_b),
                "node B dropping the newly classified cookie",
                timeout=10,
            )
            assert "mystery_pref" in httpx.get(node_b + "/_consent/declaration").text


async def test_postgres_notifies_every_listener_of_a_classification() -> None:
    with support.pg_database() as url:
        writer, listener = PostgresStore(url), PostgresStore(url)
        async with writer, listener:
            heard = asyncio.Event()
            stop = await listener.listen_classified(heard.set)
            try:
                when = datetime.now(UTC)
                await writer.classify(
                    Classification("s", "host", "cdn.test", "marketing", when, "t")
                )
                await asyncio.wait_for(heard.wait(), 10)
                assert [c.name for c in await listener.classifications()] == ["cdn.test"]
            finally:
                await stop()
