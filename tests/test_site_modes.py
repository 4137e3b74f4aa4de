"""The demo only when asked: no config and no upstream shows the demo; a configured site
without upstream (what ``consentgate init`` writes) serves consentgate's endpoints and a
plain page saying so, never the demo's tracker snippets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from consentgate.app import create_app
from consentgate.cli import cli
from consentgate.config import Settings, load_settings
from tests import support

KEY = "site-modes-test-key-0123456789"
TRACKERS = ("googletagmanager", "fbevents", "facebook.com/tr", "youtube.com", "gtag(")


def settings_for(tmp_path: Path, config: Path | None) -> Settings:
    return load_settings(
        config,
        environ={"CONSENTGATE_SECRET_KEYS": KEY, "CONSENTGATE_DATA_DIR": str(tmp_path / "data")},
    )


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c


@pytest.fixture
async def init_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = tmp_path / "consentgate.toml"
    assert CliRunner().invoke(cli, ["init", str(config)]).exit_code == 0
    async for c in client_for(settings_for(tmp_path, config)):
        yield c


async def test_an_init_config_serves_a_plain_page_not_the_demo(
    init_client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/marked", "/privacy"):
        r = await init_client.get(path)
        assert r.status_code == (200 if path == "/" else 404)
        assert r.headers["content-type"].startswith("text/html")
        assert "consentgate is running for site main" in r.text
        assert "no <code>upstream</code>" in r.text
        assert "&lt;script src=&quot;/_consent/banner.js?site=main&quot;&gt;" in r.text
        assert "<script" not in r.text  # nothing runs on it, not even the banner
        for tracker in TRACKERS:
            assert tracker not in r.text, (path, tracker)
    # consentgate's own endpoints are all there
    assert (await init_client.get("/_consent/banner.js?site=main")).status_code == 200
    assert (await init_client.get("/_consent/declaration")).status_code == 200
    posted = await init_client.post("/_consent/api/consent", json={"method": "reject_all"})
    assert posted.status_code == 201 and posted.json()["site"] == "main"


async def test_no_config_and_no_upstream_still_shows_the_demo(tmp_path: Path) -> None:
    async for c in client_for(settings_for(tmp_path, None)):
        home = await c.get("/")
        assert home.status_code == 200 and "consentgate demo" in home.text
        assert "googletagmanager.com/gtag/js" in home.text  # neutralised, still present
        assert "/_consent/banner" in home.text


async def test_proxy_site_and_script_tag_site_side_by_side(tmp_path: Path) -> None:
    config = tmp_path / "cg.toml"
    config.write_text(
        '[[sites]]\nid = "shop"\nhosts = ["shop.example"]\nupstream = "http://127.0.0.1:9"\n'
        '[[sites]]\nid = "blog"\nhosts = ["blog.example"]\n'
    )
    async for c in client_for(settings_for(tmp_path, config)):
        blog = await c.get("/", headers={"Host": "blog.example"})
        assert blog.status_code == 200 and "running for site blog" in blog.text
        assert "consentgate demo" not in blog.text
        shop = await c.get("/", headers={"Host": "shop.example"})
        assert shop.status_code == 502  # proxied: nothing listens on port 9


def test_serve_after_init_on_a_real_server(tmp_path: Path) -> None:
    """As a new owner would: `consentgate init`, then `consentgate serve --config`."""
    config = tmp_path / "consentgate.toml"
    assert CliRunner().invoke(cli, ["init", str(config)]).exit_code == 0
    with support.consentgate_server("--config", str(config), cwd=tmp_path) as (base, proc):
        assert proc.stdout is not None
        head = "".join(proc.stdout.readline().decode() for _ in range(4))
        page = httpx.get(base + "/")
    assert "sites: main (script-tag)" in head
    assert page.status_code == 200 and "consentgate is running for site main" in page.text
    assert not any(t in page.text for t in TRACKERS)
