from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx2 as httpx
import pytest

from consentgate.app import ConsentGateApp, create_app
from consentgate.audit import tokens
from consentgate.config import Settings, Site
from consentgate.consent import CATEGORIES, Consent, ConsentCodec
from consentgate.texts import banner_hash, texts_for

API = "/_consent/api/consent"
JSON = {"content-type": "application/json"}

pytestmark = pytest.mark.both_backends


@contextlib.asynccontextmanager
async def serve(
    settings: Settings,
    client: tuple[str, int] = ("127.0.0.1", 5000),
    base: str = "http://localhost",
) -> AsyncIterator[tuple[httpx.AsyncClient, ConsentGateApp]]:
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            yield c, app


async def metrics_text(client: httpx.AsyncClient, app: ConsentGateApp) -> str:
    """/_consent/metrics as a scraper with an auditor token reads it."""
    _, token = await tokens.issue(app.runtime.store, "auditor", "scraper")
    r = await client.get("/_consent/metrics", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.text


async def events(app: ConsentGateApp) -> list:
    return [e.event async for e in app.runtime.store.iter_events()]


def cookie_attrs(response: httpx.Response) -> dict[str, str]:
    jar = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    morsel = jar["consentgate"]
    return {k: v for k, v in morsel.items() if v} | {"value": morsel.value}


async def test_post_records_and_sets_signed_cookie(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    r = await client.post(
        API,
        json={
            "granted": ["statistics"],
            "method": "custom",
            "language": "de",
            "banner_hash": "sha256:abc",
        },
        headers={
            "referer": "https://user:pw@shop.example:8443/cart?id=42#top",
            "user-agent": "Mozilla/5.0 " + "x" * 400,
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body["granted"] == ["necessary", "statistics"]
    assert body["policy_version"] == "1" and body["site"] == "demo" and body["gpc"] is False
    attrs = cookie_attrs(r)
    assert attrs["path"] == "/" and attrs["samesite"].lower() == "lax"
    assert attrs["max-age"] == str(180 * 86400) and attrs["httponly"] is True
    assert "secure" not in attrs
    consent = app.runtime.codec.loads(attrs["value"])
    assert consent.consent_id == body["consent_id"]
    (ev,) = await events(app)
    assert ev.consent_id == body["consent_id"] and ev.event_type == "initial"
    assert ev.method == "custom" and ev.granted == {"necessary", "statistics"}
    assert ev.page_url == "https://shop.example:8443/cart"
    assert ev.ip_masked == "127.0.0.0" and ev.language == "de" and ev.banner_hash == "sha256:abc"
    assert len(ev.user_agent) == 256 and ev.region == "" and ev.created_at.tzinfo is not None

    got = await client.get(API)
    assert got.status_code == 200 and got.json() == body


async def test_update_keeps_consent_id_and_withdraw_refuses_all(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    first = (await client.post(API, json={"method": "accept_all"})).json()
    assert first["granted"] == list(CATEGORIES)
    second = await client.post(API, json={"granted": ["marketing"], "method": "custom"})
    assert second.status_code == 201 and second.json()["consent_id"] == first["consent_id"]
    gone = await client.delete(API)
    assert gone.status_code == 200
    assert gone.json()["granted"] == ["necessary"]
    assert gone.json()["consent_id"] == first["consent_id"]
    assert (await client.get(API)).json()["granted"] == ["necessary"]
    log = await events(app)
    assert [(e.event_type, e.method) for e in log] == [
        ("initial", "accept_all"),
        ("update", "custom"),
        ("withdraw", "withdraw"),
    ]
    assert log[2].granted == {"necessary"}


async def test_delete_without_prior_consent_is_recorded(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    r = await client.delete(API)
    assert r.status_code == 200 and r.json()["granted"] == ["necessary"]
    assert cookie_attrs(r)["value"]
    (ev,) = await events(app)
    assert ev.event_type == "withdraw" and ev.consent_id == r.json()["consent_id"]


@pytest.mark.parametrize(
    ("body", "granted"),
    [
        ({"method": "reject_all"}, ["necessary"]),
        ({"method": "reject_all", "granted": []}, ["necessary"]),
        ({"method": "close"}, ["necessary"]),
        ({"method": "accept_all", "granted": list(CATEGORIES)}, list(CATEGORIES)),
        ({"method": "custom", "granted": ["necessary"]}, ["necessary"]),
        ({"method": "custom", "granted": ["marketing", "marketing"]}, ["necessary", "marketing"]),
    ],
)
async def test_methods(client: httpx.AsyncClient, body: dict, granted: list[str]) -> None:
    r = await client.post(API, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["granted"] == granted


async def test_gpc_is_recorded_even_with_accept_all(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    r = await client.post(API, json={"method": "accept_all"}, headers={"sec-gpc": "1"})
    assert r.status_code == 201 and r.json()["gpc"] is True
    (ev,) = await events(app)
    assert ev.gpc is True and ev.granted == set(CATEGORIES)


ERRORS = [
    (b"{", JSON, 400, "invalid_json"),
    (b"\xff\xfe", JSON, 400, "invalid_json"),
    (b'{"method": NaN}', JSON, 400, "invalid_json"),
    (b"[" * 5000 + b"]" * 5000, JSON, 400, "invalid_json"),
    (b"[]", JSON, 422, "invalid_request"),
    (b'"accept_all"', JSON, 422, "invalid_request"),
    (b'{"method": "custom", "granted": ["tracking"]}', JSON, 422, "invalid_request"),
    (b'{"method": "custom", "granted": "statistics"}', JSON, 422, "invalid_request"),
    (b'{"method": "custom", "granted": [1]}', JSON, 422, "invalid_request"),
    (b'{"method": "custom", "granted": [null]}', JSON, 422, "invalid_request"),
    (b'{"method": "custom"}', JSON, 422, "invalid_request"),
    (b'{"method": 1, "granted": []}', JSON, 422, "invalid_request"),
    (b'{"granted": []}', JSON, 422, "invalid_request"),
    (b'{"method": "withdraw", "granted": []}', JSON, 422, "invalid_request"),
    (b'{"method": "custom", "granted": [], "extra": 1}', JSON, 422, "invalid_request"),
    (b'{"method": "accept_all", "granted": ["statistics"]}', JSON, 422, "invalid_request"),
    (b'{"method": "reject_all", "granted": ["marketing"]}', JSON, 422, "invalid_request"),
    (b'{"method": "reject_all", "page_url": 7}', JSON, 422, "invalid_request"),
    (b'{"method": "reject_all", "language": "not a tag!"}', JSON, 422, "invalid_request"),
    (b'{"method": "reject_all", "banner_hash": "<script>"}', JSON, 422, "invalid_request"),
    (b'{"method": "reject_all"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    (b'{"method": "reject_all"}', {}, 415, "unsupported_media_type"),
    (
        b'{"method": "reject_all"}',
        {"content-type": "application/json; charset=latin-1"},
        415,
        "unsupported_media_type",
    ),
    (
        b'{"method": "reject_all", "page_url": "' + b"a" * 20000 + b'"}',
        JSON,
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(("body", "headers", "status", "code"), ERRORS)
async def test_bad_input_is_a_4xx_json_error(
    client: httpx.AsyncClient,
    app: ConsentGateApp,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    r = await client.post(API, content=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert "set-cookie" not in r.headers
    assert await events(app) == []
    metrics = await metrics_text(client, app)
    assert f'consentgate_api_errors_total{{code="{code}"}} 1.0' in metrics


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"method": "reject_all", "page_url": "'
        for _ in range(40):
            yield b"a" * 1000
        yield b'"}'

    r = await client.post(API, content=chunks(), headers=JSON)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_other_methods_are_405_json(client: httpx.AsyncClient) -> None:
    r = await client.put(API, json={})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = await client.get("/_consent/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_tampered_foreign_expired_and_old_policy_cookies_are_no_consent(
    settings: Settings,
) -> None:
    async with serve(settings) as (client, app):
        r = await client.post(API, json={"method": "accept_all"})
        value = cookie_attrs(r)["value"]
        client.cookies.clear()
        tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
        now = int(time.time())
        base = Consent("x" * 22, frozenset(CATEGORIES), "1", now, now + 60, site_id="demo")
        foreign = ConsentCodec(["someone-else-0123456789"]).dumps(base)
        expired = app.runtime.codec.dumps(
            Consent("x" * 22, frozenset(CATEGORIES), "1", now - 120, now - 60, site_id="demo")
        )
        other_site = app.runtime.codec.dumps(
            Consent("x" * 22, frozenset(CATEGORIES), "1", now, now + 60, site_id="elsewhere")
        )
        old_policy = app.runtime.codec.dumps(
            Consent("old-id", frozenset(CATEGORIES), "0", now, now + 60, site_id="demo")
        )
        for bad in (tampered, foreign, expired, other_site, old_policy, "garbage", "x" * 5000):
            got = await client.get(API, headers={"cookie": f"consentgate={bad}"})
            assert got.status_code == 404, bad
            assert got.json()["error"]["code"] == "no_consent"
        assert (await client.get(API)).status_code == 404
        metrics = await metrics_text(client, app)
        for reason in ("bad_signature", "expired", "wrong_site", "old_policy", "malformed"):
            assert f'consentgate_cookie_rejected_total{{reason="{reason}"}}' in metrics
        # a valid cookie of an older policy keeps its consent id on the new decision
        again = await client.post(
            API, json={"method": "reject_all"}, headers={"cookie": f"consentgate={old_policy}"}
        )
        assert again.json()["consent_id"] == "old-id"
        assert (await events(app))[-1].event_type == "update"
        # a tampered cookie starts a new consent
        fresh = await client.post(
            API, json={"method": "reject_all"}, headers={"cookie": f"consentgate={tampered}"}
        )
        assert fresh.json()["consent_id"] != r.json()["consent_id"]


async def test_key_rotation_keeps_old_cookies_valid(settings: Settings) -> None:
    old_key = settings.secret_keys[1]
    settings.secret_keys = [old_key]
    async with serve(settings) as (client, _):
        value = cookie_attrs(await client.post(API, json={"method": "accept_all"}))["value"]
    settings.secret_keys = ["rotated-in-key-0123456789abc", old_key]
    async with serve(settings) as (client, _):
        got = await client.get(API, headers={"cookie": f"consentgate={value}"})
        assert got.status_code == 200
        renewed = await client.post(
            API, json={"method": "reject_all"}, headers={"cookie": f"consentgate={value}"}
        )
        new_value = cookie_attrs(renewed)["value"]
        assert (
            ConsentCodec(["rotated-in-key-0123456789abc"]).loads(new_value).consent_id
            == (got.json()["consent_id"])
        )
    settings.secret_keys = ["rotated-in-key-0123456789abc"]
    async with serve(settings) as (client, _):
        assert (
            await client.get(API, headers={"cookie": f"consentgate={value}"})
        ).status_code == 404


async def test_https_sets_secure(settings: Settings) -> None:
    async with serve(settings, base="https://localhost") as (client, _):
        r = await client.post(API, json={"method": "reject_all"})
        assert cookie_attrs(r)["secure"] is True
    async with serve(settings) as (client, _):
        r = await client.post(
            API, json={"method": "reject_all"}, headers={"x-forwarded-proto": "https"}
        )
        assert cookie_attrs(r)["secure"] is True  # 127.0.0.1 is a trusted proxy
    async with serve(settings, client=("198.51.100.7", 4000)) as (client, _):
        r = await client.post(
            API, json={"method": "reject_all"}, headers={"x-forwarded-proto": "https"}
        )
        assert "secure" not in cookie_attrs(r)


async def test_forwarded_for_region_and_regime_only_from_trusted_proxies(
    settings: Settings,
) -> None:
    settings.region_header = "CF-IPCountry"
    settings.sites[0].regimes = {"US": "opt-out"}
    headers = {"x-forwarded-for": "2001:db8:abcd:12:1::7, 10.0.0.9", "cf-ipcountry": "us"}
    settings.trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
    async with serve(settings) as (client, app):
        r = await client.post(API, json={"method": "reject_all"}, headers=headers)
        assert r.json()["regime"] == "opt-out"
        (ev,) = await events(app)
        assert ev.ip_masked == "2001:db8:abcd::" and ev.region == "US" and ev.regime == "opt-out"
    async with serve(settings, client=("198.51.100.77", 1)) as (client, app):
        await client.post(API, json={"method": "reject_all"}, headers=headers)
        ev = (await events(app))[-1]
        assert ev.ip_masked == "198.51.100.0" and ev.region == "" and ev.regime == "opt-in"


def two_sites(settings: Settings) -> Settings:
    settings.sites = [
        Site(id="shop", hosts=["shop.example"], origins=["https://cdn-shop.example:8443"]),
        Site(id="blog", hosts=["blog.example"]),
    ]
    return settings


async def test_cors_preflight_and_credentials_for_configured_origins(settings: Settings) -> None:
    async with serve(two_sites(settings), base="http://consent.example") as (client, app):
        pre = await client.options(
            API,
            headers={
                "origin": "https://blog.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "https://blog.example"
        assert pre.headers["access-control-allow-credentials"] == "true"
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "content-type" in pre.headers["access-control-allow-headers"].lower()
        r = await client.post(
            API, json={"method": "reject_all"}, headers={"origin": "https://cdn-shop.example:8443"}
        )
        assert r.status_code == 201 and r.json()["site"] == "shop"
        assert r.headers["access-control-allow-origin"] == "https://cdn-shop.example:8443"
        assert "origin" in r.headers["vary"].lower()

        evil = {"origin": "https://evil.example"}
        pre = await client.options(API, headers={**evil, "access-control-request-method": "POST"})
        assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
        r = await client.post(API, json={"method": "accept_all"}, headers=evil)
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in r.headers
        assert (await client.delete(API, headers=evil)).status_code == 403
        same = await client.post(
            API, json={"method": "reject_all"}, headers={"origin": "http://consent.example"}
        )
        assert same.status_code == 201 and "access-control-allow-origin" not in same.headers
        assert [e.site_id for e in await events(app)] == ["shop", "shop"]


async def test_site_chosen_by_host(settings: Settings) -> None:
    async with serve(two_sites(settings), base="http://blog.example") as (client, _):
        r = await client.post(API, json={"method": "reject_all"})
        assert r.json()["site"] == "blog"


async def test_metrics_and_healthz(client: httpx.AsyncClient, app: ConsentGateApp) -> None:
    await client.post(API, json={"method": "accept_all"})
    text = await metrics_text(client, app)
    assert 'consentgate_consents_total{method="accept_all",site="demo",type="initial"} 1.0' in text
    assert "consentgate_write_seconds_count 1.0" in text
    assert (await client.get("/_consent/healthz")).json() == {"status": "ok"}


@pytest.mark.sqlite_only
async def test_a_failing_consent_log_is_503_and_sets_no_cookie(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    store = app.runtime.store
    await store._writer_db.close()  # type: ignore[attr-defined]  # the disk "goes away"
    r = await client.post(API, json={"method": "accept_all"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "store_unavailable"
    assert "set-cookie" not in r.headers
    again = await client.delete(API)  # the writer survived the failure and answers again
    assert again.status_code == 503


async def test_a_page_url_with_control_characters_is_not_stored(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    """A NUL or a lone surrogate in a visitor's page_url once failed the whole batch
    (other visitors' consents with it): a URL with control characters is no URL."""
    results = await asyncio.gather(
        client.post(API, json={"method": "reject_all", "page_url": "https://a.example/x\u0000y"}),
        client.post(API, json={"method": "reject_all", "page_url": "https://a.example/\u001b[2J"}),
        client.post(
            API,
            content=b'{"method": "reject_all", "page_url": "https://a.example/\\ud800"}',
            headers={"content-type": "application/json"},
        ),
        client.post(API, json={"method": "accept_all", "page_url": "https://a.example/ok"}),
    )
    assert [r.status_code for r in results] == [201, 201, 201, 201]
    stored = sorted(ev.page_url for ev in await events(app))
    assert stored == ["", "", "", "https://a.example/ok"]


async def test_withdraw_records_language_and_banner_hash_like_a_decision(
    client: httpx.AsyncClient, app: ConsentGateApp
) -> None:
    """issue 18: a withdrawal is recorded with the banner's language (not the raw
    Accept-Language) and the hash of the banner text, as decisions are."""
    site = app.runtime.settings.sites[0]
    german = {"accept-language": "de-DE,de;q=0.9,en;q=0.5"}
    shown = banner_hash(texts_for(site, "de"))
    await client.post(API, json={"method": "accept_all", "language": "de", "banner_hash": shown})
    # an API client's bare DELETE: what the banner shows this visitor
    assert (await client.delete(API, headers=german)).status_code == 200
    # the banner's DELETE: the same context fields as its POST
    context = {"page_url": "https://shop.example/p?x=1", "language": "fr", "banner_hash": "h:1"}
    assert (await client.request("DELETE", API, json=context)).status_code == 200
    decided, bare, sent = await events(app)
    assert (decided.language, decided.banner_hash) == ("de", shown)
    assert (bare.event_type, bare.language, bare.banner_hash) == ("withdraw", "de", shown)
    assert (sent.language, sent.banner_hash, sent.page_url) == (
        "fr",
        "h:1",
        "https://shop.example/p",
    )
    for bad in ({"granted": ["marketing"]}, {"language": "not a tag!"}, {"banner_hash": "<x>"}):
        r = await client.request("DELETE", API, json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad
    r = await client.request("DELETE", API, content=b"{", headers=JSON)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert len(await events(app)) == 3  # refused requests record nothing


async def test_optional_get_is_no_error_and_cross_site_pages_are_warned(
    settings: Settings,
) -> None:
    """issue 18: the banner's ``?optional=1`` GET answers ``200 null`` without a consent
    (API clients keep their 404); a request from a page on another site is told that a
    SameSite=Lax cookie will not be kept, unless the site's cookie is SameSite=None."""
    async with serve(two_sites(settings), base="http://consent.example") as (client, _):
        origin = {"origin": "https://blog.example"}
        cross = {**origin, "sec-fetch-site": "cross-site"}
        r = await client.get(API, params={"optional": "1"}, headers=origin)
        assert r.status_code == 200 and r.json() is None
        assert "consentgate-warning" not in r.headers
        assert (await client.get(API, headers=origin)).status_code == 404
        r = await client.get(API, params={"optional": "1"}, headers=cross)
        assert r.status_code == 200 and "cookie_samesite" in r.headers["consentgate-warning"]
        assert "Consentgate-Warning" in r.headers["access-control-expose-headers"]
        same_site = {**origin, "sec-fetch-site": "same-site"}
        r = await client.get(API, params={"optional": "1"}, headers=same_site)
        assert "consentgate-warning" not in r.headers
        posted = await client.post(API, json={"method": "reject_all"}, headers=cross)
        assert cookie_attrs(posted)["samesite"].lower() == "lax"
        got = await client.get(API, params={"optional": "1"}, headers=cross)
        assert got.status_code == 200 and got.json()["consent_id"] == posted.json()["consent_id"]

    none = two_sites(settings)
    for site in none.sites:
        site.cookie_samesite = "none"
    async with serve(none, base="http://consent.example") as (client, _):
        r = await client.get(API, params={"optional": "1"}, headers=cross)
        assert "consentgate-warning" not in r.headers
        posted = await client.post(API, json={"method": "reject_all"}, headers=cross)
        attrs = cookie_attrs(posted)
        assert attrs["samesite"].lower() == "none" and attrs["secure"] is True
