"""ConsentGateMiddleware follows the visitor's regime like the proxy: the same shop app
wrapped in-process, visitors from DE, US-CA (with and without GPC) and a spoofed header
from an untrusted peer; which trackers are active, which Set-Cookie headers survive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest

from consentgate.config import Settings
from consentgate.middleware import ConsentGateMiddleware
from tests.regions_shop import TRACKERS, Elements, shop_app

DE = {"cf-ipcountry": "DE"}
US_CA = {"cf-ipcountry": "US", "cf-region-code": "CA"}
GA_ONLY = {"ga-loader", "ga-config"}


@contextlib.asynccontextmanager
async def wrapped(settings: Settings, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    settings.region_header = "CF-IPCountry"
    settings.subdivision_header = "CF-Region-Code"
    app = ConsentGateMiddleware(shop_app(), settings=settings)
    async with app.gate.lifespan():
        transport = httpx.ASGITransport(app=app, client=(peer, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
            yield c


async def visit(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[set[str], set[str]]:
    r = await client.get("/shop", headers=headers)
    assert r.status_code == 200
    page = Elements()
    page.feed(r.text)
    assert set(page.active) == TRACKERS
    cookies = {  # set, not expired (refused categories' cookies are expired, as the proxy does)
        v.split("=", 1)[0] for v in r.headers.get_list("set-cookie") if "max-age=0" not in v.lower()
    }
    return {name for name, on in page.active.items() if on}, cookies


@pytest.mark.parametrize(
    ("headers", "active", "cookies"),
    [
        (DE, set(), {"PHPSESSID"}),
        (US_CA, TRACKERS, {"PHPSESSID", "_ga", "_fbp"}),
        ({**US_CA, "sec-gpc": "1"}, GA_ONLY, {"PHPSESSID", "_ga"}),
        ({}, set(), {"PHPSESSID"}),
    ],
    ids=["DE", "US-CA", "US-CA+GPC", "unknown"],
)
async def test_middleware_follows_the_regime(
    settings: Settings, headers: dict[str, str], active: set[str], cookies: set[str]
) -> None:
    async with wrapped(settings) as client:
        assert await visit(client, headers) == (active, cookies)


async def test_middleware_ignores_a_spoofed_header(settings: Settings) -> None:
    settings.trusted_proxies = ["10.0.0.0/8"]
    async with wrapped(settings) as client:
        assert await visit(client, US_CA) == (set(), {"PHPSESSID"})


async def test_middleware_opt_out_then_travel(settings: Settings) -> None:
    async with wrapped(settings) as client:
        r = await client.post("/_consent/api/consent", json={"method": "opt_out"}, headers=US_CA)
        assert r.status_code == 201
        client.cookies.set("consentgate", r.cookies["consentgate"])
        assert await visit(client, US_CA) == (GA_ONLY, {"PHPSESSID", "_ga"})
        assert await visit(client, DE) == (set(), {"PHPSESSID"})  # stricter: asked again
        r = await client.get("/shop", headers=US_CA)
        vary = {v.strip().lower() for v in r.headers["vary"].split(",")}
        assert {"cookie", "sec-gpc", "cf-ipcountry", "cf-region-code"} <= vary
