"""The console's pure parts: the session codec, CSP report parsing, the rate limit."""

from __future__ import annotations

import json

import httpx2 as httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.console.csp import RateLimit, hosts_of
from consentgate.console.session import SessionCodec

KEYS = ["console-unit-key-newest-0123456789", "console-unit-key-older-0123456789"]


def test_a_session_round_trips_and_rotates_keys() -> None:
    codec = SessionCodec(KEYS)
    session = codec.new("0123456789ab")
    value = codec.dumps(session)
    assert codec.loads(value) == session
    # signed with the older key (before a rotation): still good
    assert SessionCodec(KEYS).loads(SessionCodec(KEYS[1:]).dumps(session)) == session
    # another installation's key, an edited value, garbage: no session
    assert SessionCodec(["someone-else-key-0123456789"]).loads(value) is None
    assert codec.loads(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None
    for junk in ("", "x", "e30.abc", "W10.xyz"):
        assert codec.loads(junk) is None


def test_an_idle_session_is_over() -> None:
    codec = SessionCodec(KEYS, idle=600)
    session = codec.new("0123456789ab")
    value = codec.dumps(session)
    assert codec.loads(value, now=session.seen + 599) == session
    assert codec.loads(value, now=session.seen + 601) is None
    used = codec.touched(session, now=session.seen + 500)
    assert codec.loads(codec.dumps(used), now=session.seen + 601) == used


def test_csrf_compares_the_whole_secret() -> None:
    session = SessionCodec(KEYS).new("0123456789ab")
    assert session.csrf_ok(session.csrf)
    for bad in (None, "", session.csrf[:-1], session.csrf + "x"):
        assert not session.csrf_ok(bad)


def test_reports_keep_third_party_hosts_and_page_paths_only() -> None:
    legacy = {
        "csp-report": {
            "document-uri": "https://shop.test/cart?session=secret#x",
            "blocked-uri": "https://CDN.Example.net:8443/a.js?k=v",
        }
    }
    assert hosts_of(legacy, "shop.test") == [("cdn.example.net", "/cart")]
    api = [
        {
            "type": "csp-violation",
            "body": {"blockedURL": "wss://live.example.org/s", "documentURL": "https://shop.test/"},
        },
        {"type": "csp-violation", "body": {"blockedURL": "inline", "documentURL": "x"}},
        {"type": "csp-violation", "body": {"blockedURL": "https://shop.test/own.js"}},
        {"type": "csp-violation", "body": {"blockedURL": "data:text/plain,x"}},
    ]
    assert hosts_of(api, "shop.test:443") == [("live.example.org", "/")]


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "csp-report",
                        "body",
                        "blocked-uri",
                        "blockedURL",
                        "document-uri",
                        "documentURL",
                        "x",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_report_parses_without_error(doc: object) -> None:
    json.dumps(doc)
    for host, path in hosts_of(doc, "shop.test"):
        assert host and host != "shop.test" and len(host) <= 253
        assert "?" not in path and "#" not in path


def test_the_rate_limit_allows_a_burst_then_refuses() -> None:
    limit = RateLimit(rate=0.0, burst=3)
    assert [limit.take() for _ in range(5)] == [True, True, True, False, False]


async def test_pages_of_the_built_in_site_carry_the_discovery_policy(
    client: httpx.AsyncClient,
) -> None:
    """The demo site (and the ASGI/WSGI middleware, same pipeline) adds the report-only
    policy to pages, as the proxy does; consentgate's own endpoints do not get it."""
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy-report-only"]
    assert policy.endswith("report-uri /_consent/csp-report") and "default-src 'self'" in policy
    api = await client.get("/_consent/healthz")
    assert "content-security-policy-report-only" not in api.headers
