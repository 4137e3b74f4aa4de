from __future__ import annotations

import pytest

from consentgate.visitor import (
    TrustedProxies,
    clean_page_url,
    client_address,
    mask_ip,
    normalize_language,
)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("[2001:db8::1]", "2001:db8::"),
        ("not-an-ip", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_ip_never_keeps_the_full_address(address: str | None, masked: str) -> None:
    assert mask_ip(address) == masked


def test_client_address_believes_only_trusted_proxies() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "bogus"])
    assert client_address("127.0.0.1", "203.0.113.5, 10.1.2.3", trusted) == "203.0.113.5"
    assert client_address("198.51.100.1", "203.0.113.5", trusted) == "198.51.100.1"
    assert client_address("127.0.0.1", "garbage", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "10.0.0.1, 10.0.0.2", trusted) == "10.0.0.1"
    assert client_address(None, "203.0.113.5", trusted) == ""


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://a.example/x/y?q=1#f", "https://a.example/x/y"),
        ("http://u:p@A.example:81", "http://a.example:81/"),
        ("https://[2001:db8::1]:8443/p?x", "https://[2001:db8::1]:8443/p"),
        ("javascript:alert(1)", ""),
        ("/relative", ""),
        ("http://bad:port/", ""),
        (None, ""),
    ],
)
def test_clean_page_url(url: str | None, clean: str) -> None:
    assert clean_page_url(url) == clean


def test_language() -> None:
    assert normalize_language("de-CH,de;q=0.9,en;q=0.8") == "de-CH"
    assert normalize_language("<b>") == ""
