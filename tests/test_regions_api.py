"""The consent API follows the visitor's region: recorded region/regime, the
regime in the cookie, opt_out/acknowledge only where they apply, re-ask."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx2 as httpx

from consentgate.app import ConsentGateApp, create_app
from consentgate.config import Settings
from consentgate.consent import COOKIE_NAME

API = "/_consent/api/consent"
DE = {"cf-ipcountry": "DE"}
US_CA = {"cf-ipcountry": "US", "cf-region-code": "CA"}


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, peer: str = "127.0.0.1"
) -> AsyncIterator[tuple[httpx.AsyncClient, ConsentGateApp]]:
    settings.region_header = "CF-IPCountry"
    settings.subdivision_header = "CF-Region-Code"
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c, app


async def events(app: ConsentGateApp) -> list:
    return [e.event async for e in app.runtime.store.iter_events()]


async def test_region_and_regime_recorded_and_in_cookie(settings: Settings) -> None:
    async with serve(settings) as (client, app):
        r = await client.post(API, json={"method": "reject_all"}, headers=DE)
        assert r.status_code == 201 and r.json()["regime"] == "opt-in"
        r = await client.post(API, json={"method": "accept_all"}, headers={**US_CA, "sec-gpc": "1"})
        assert (r.json()["regime"], r.json()["gpc"]) == ("opt-out", True)
        cookie = app.runtime.codec.loads(r.cookies[COOKIE_NAME])
        assert (cookie.regime, cookie.gpc) == ("opt-out", True)
        first, second = await events(app)
        assert (first.region, first.regime, first.gpc) == ("DE", "opt-in", False)
        assert (second.region, second.regime, second.gpc) == ("US-CA", "opt-out", True)


async def test_opt_out_only_in_opt_out_regime(settings: Settings) -> None:
    async with serve(settings) as (client, app):
        r = await client.post(API, json={"method": "opt_out"}, headers=US_CA)
        assert r.status_code == 201
        assert "marketing" not in r.json()["granted"] and "statistics" in r.json()["granted"]
        r = await client.post(API, json={"method": "opt_out", "granted": []}, headers=US_CA)
        assert r.json()["granted"] == ["necessary"]
        bad = await client.post(
            API, json={"method": "opt_out", "granted": ["marketing"]}, headers=US_CA
        )
        assert bad.status_code == 422 and "marketing" in bad.json()["error"]["message"]
        r = await client.post(API, json={"method": "opt_out"}, headers=DE)
        assert r.status_code == 422
        assert r.json()["error"] == {
            "code": "invalid_request",
            "message": "method opt_out does not apply to this visitor's regime (opt-in)",
        }
        assert [e.method for e in await events(app)] == ["opt_out", "opt_out"]


async def test_acknowledge_keeps_the_regime_default(settings: Settings) -> None:
    settings.sites[0].regimes = {"JP": "notice"}
    async with serve(settings) as (client, app):
        r = await client.post(API, json={"method": "acknowledge"}, headers={"cf-ipcountry": "JP"})
        assert r.status_code == 201 and len(r.json()["granted"]) == 5
        assert r.json()["regime"] == "notice"
        # opt-out with GPC: the default keeps marketing off, whatever the client sent
        body = {"method": "acknowledge", "granted": ["marketing"]}
        r = await client.post(API, json=body, headers={**US_CA, "sec-gpc": "1"})
        assert r.status_code == 201 and "marketing" not in r.json()["granted"]
        assert "statistics" in r.json()["granted"]
        for headers in (DE, {}):  # opt-in: nothing to acknowledge, consent is asked
            r = await client.post(API, json={"method": "acknowledge"}, headers=headers)
            assert r.status_code == 422, headers
        notice, opt_out = await events(app)
        assert (notice.region, notice.regime, notice.method) == ("JP", "notice", "acknowledge")
        assert (opt_out.region, opt_out.regime, opt_out.gpc) == ("US-CA", "opt-out", True)


async def test_get_names_the_regime_for_script_tag_mode(settings: Settings) -> None:
    settings.sites[0].origins = ["https://shop.example"]
    async with serve(settings) as (client, _app):
        origin = {"origin": "https://shop.example"}
        r = await client.get(API, headers={**US_CA, **origin})
        assert r.status_code == 404 and r.headers["consentgate-regime"] == "opt-out"
        exposed = r.headers["access-control-expose-headers"]
        assert exposed == "Consentgate-Regime, Consentgate-Warning"
        assert (await client.get(API, headers=DE)).headers["consentgate-regime"] == "opt-in"


async def test_moving_into_a_stricter_regime_asks_again(settings: Settings) -> None:
    async with serve(settings) as (client, _app):
        r = await client.post(API, json={"method": "opt_out"}, headers=US_CA)
        client.cookies.set(COOKIE_NAME, r.cookies[COOKIE_NAME])
        assert (await client.get(API, headers=US_CA)).status_code == 200
        gone = await client.get(API, headers=DE)  # opt-out consent, now in an opt-in region
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "no_consent"
        # a consent given under opt-in still counts in an opt-out region
        r = await client.post(API, json={"method": "reject_all"}, headers=DE)
        client.cookies.set(COOKIE_NAME, r.cookies[COOKIE_NAME])
        again = await client.get(API, headers=US_CA)
        assert again.status_code == 200 and again.json()["regime"] == "opt-in"


async def test_spoofed_header_from_untrusted_peer(settings: Settings) -> None:
    settings.trusted_proxies = ["10.0.0.0/8"]
    async with serve(settings, peer="127.0.0.1") as (client, app):
        r = await client.post(API, json={"method": "reject_all"}, headers=US_CA)
        assert r.json()["regime"] == "opt-in"
        r = await client.post(API, json={"method": "opt_out"}, headers=US_CA)
        assert r.status_code == 422  # cannot claim California to skip consent
        (ev,) = await events(app)
        assert (ev.region, ev.regime) == ("", "opt-in")


async def test_auditor_export_filters_by_region_and_regime(settings: Settings) -> None:
    from consentgate.audit import tokens as tok

    async with serve(settings) as (client, app):
        for headers, method in ((DE, "reject_all"), (US_CA, "opt_out"), ({}, "accept_all")):
            assert (await client.post(API, json={"method": method}, headers=headers)).is_success
        _, token = await tok.issue(app.runtime.store, "auditor", "dpo")
        auth = {"Authorization": f"Bearer {token}"}

        async def export(**params: str) -> list[dict]:
            r = await client.get("/_consent/admin/api/export", params=params, headers=auth)
            assert r.status_code == 200, r.text
            return [json.loads(line) for line in r.text.splitlines()]

        assert [r["method"] for r in await export(region="us-ca")] == ["opt_out"]
        assert [r["method"] for r in await export(regime="opt-in")] == ["reject_all", "accept_all"]
        assert [r["region"] for r in await export(region="")] == [""]
        assert [r["region"] for r in await export(region="DE", regime="opt-out")] == []
        for bad in ({"region": "Germany"}, {"region": "XX"}, {"regime": "opt_in"}):
            r = await client.get("/_consent/admin/api/export", params=bad, headers=auth)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"


async def test_gpc_support_resource_on_the_sites_origin(settings: Settings) -> None:
    """``/.well-known/gpc.json`` (Global Privacy Control's support resource) says the
    site honours the signal: answered by consentgate, never forwarded upstream; a site
    can turn it off (then the path is the site's again)."""
    import dataclasses

    proxied = dataclasses.replace(settings.sites[0], upstream="http://127.0.0.1:9")  # closed
    async with serve(dataclasses.replace(settings, sites=[proxied])) as (client, _):
        r = await client.get("/.well-known/gpc.json")
        assert r.status_code == 200 and r.json() == {"gpc": True}
        assert r.headers["content-type"] == "application/json"
        assert r.headers["access-control-allow-origin"] == "*"
        head = await client.head("/.well-known/gpc.json")
        assert head.status_code == 200 and head.content == b""
        post = await client.post("/.well-known/gpc.json")
        assert post.status_code == 405 and post.json()["error"]["code"] == "method_not_allowed"
    off = dataclasses.replace(proxied, gpc_well_known=False)
    async with serve(dataclasses.replace(settings, sites=[off])) as (client, _):
        r = await client.get("/.well-known/gpc.json")
        assert r.status_code == 502  # forwarded to the (closed) upstream
