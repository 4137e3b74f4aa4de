"""URL-bearing elements the catalog matches without a plain tracker URL.

Resource hints to tracker hosts: ``<link rel=preconnect|dns-prefetch>`` name an origin
and are matched by host (any service on that host or a parent domain, the strictest
category wins); ``preload``/``prefetch``/``modulepreload`` name a URL and are matched as
URLs. Both neutralized like other URL-bearing elements, so the banner restores them."""

from __future__ import annotations

import pytest

from consentgate.catalog import default_catalog
from consentgate.rewriter import RewritePolicy
from tests.rewrite_util import ALL, NONE, chunked

# once with the C accelerator, once in pure Python (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("rewriter_impl")

STATS = RewritePolicy(granted=frozenset({"necessary", "statistics"}))


@pytest.mark.parametrize(
    ("tag", "category"),
    [
        ("<link rel=preconnect href=https://www.googletagmanager.com>", "marketing"),
        ("<link rel=dns-prefetch href=//www.google-analytics.com>", "statistics"),
        ("<link rel='DNS-Prefetch' href='https://static.hotjar.com/'>", "statistics"),
        ("<link rel='preconnect dns-prefetch' href=https://connect.facebook.net>", "marketing"),
        ("<link rel=preconnect href=https://www.facebook.com crossorigin>", "marketing"),
        ("<link rel=preload as=script href=https://www.googletagmanager.com/gtm.js>", "statistics"),
        ("<link rel=prefetch href=https://snap.licdn.com/li.lms-analytics/i.js>", "marketing"),
        ("<link rel=modulepreload href=https://www.clarity.ms/tag/x.js>", "statistics"),
    ],
)
def test_hints_to_tracker_hosts_are_neutralized(tag: str, category: str) -> None:
    page = f"<!doctype html><html><head>{tag}</head><body><p>x</p></body></html>".encode()
    for sizes in ([], [7]):
        out = chunked(page, sizes, NONE)
        assert f'data-consent="{category}"'.encode() in out, out
        assert b" href=" not in out and b"data-consentgate-href=" in out
    assert chunked(page, [], ALL) == page


def test_hint_category_is_the_strictest_service_on_the_host() -> None:
    catalog = default_catalog()
    # googletagmanager.com carries GTM and gtag.js (statistics) and Ads' gtag.js (marketing)
    assert catalog.hint_category(b"https://www.googletagmanager.com") == "marketing"
    assert catalog.hint_category(b"//region1.google-analytics.com/") == "statistics"
    assert catalog.hint_category(b"https://fonts.googleapis.com") is None
    assert catalog.hint_category(b"https://example.com") is None
    assert catalog.hint_category(b"/relative") is None


def test_hints_elsewhere_are_untouched() -> None:
    page = (
        b"<head><link rel=preconnect href=https://fonts.gstatic.com crossorigin>"
        b"<link rel=dns-prefetch href=//cdn.example.net><link rel=canonical "
        b"href=https://www.facebook.com/page><link rel=stylesheet href=/s.css></head><p>x"
    )
    for policy in (NONE, STATS):
        assert chunked(page, [], policy) == page
        assert chunked(page, [5], policy) == page


def test_statistics_consent_restores_statistics_hints_only() -> None:
    page = (
        b"<p><link rel=dns-prefetch href=//www.google-analytics.com>"
        b"<link rel=preconnect href=https://connect.facebook.net>"
    )
    out = chunked(page, [], STATS)
    assert b"<link rel=dns-prefetch href=//www.google-analytics.com>" in out
    assert b'data-consent="marketing"' in out


def test_javascript_url_frames_are_classified_by_their_code() -> None:
    """An iframe whose ``src`` is a ``javascript:`` URL writing its own document (old ad
    tags, corpus page 023) runs a loader in a document no guard reaches."""
    tag = (
        "<iframe src='javascript:(function(){document.open();document.write(\"<script "
        'src=\\"http://pagead2.googlesyndication.com/pagead/show_ads.js\\"></script>")})()\'>'
    )
    page = f"<p>{tag}</iframe><iframe src='javascript:void(0)'></iframe>".encode()
    out = chunked(page, [], NONE)
    assert out.count(b'data-consent="marketing"') == 1 and b"data-consentgate-src=" in out
    assert b"<iframe src='javascript:void(0)'>" in out
    assert chunked(page, [], ALL) == page
