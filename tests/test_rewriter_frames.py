"""A kept ``srcdoc`` frame starts with the script that has the page's runtime guard patch the
frame before the frame's own scripts run (docs/guard.md); Chromium checks the effect in
tests/test_redteam_oracle.py, this checks the markup."""

from __future__ import annotations

import html

import pytest

from consentgate.consent import CATEGORIES
from consentgate.rewriter import RewritePolicy, rewrite_bytes

PREFIX = "<script{}>parent.consentgateFrame(window)</script>"


def snippet(nonce: str | None) -> bytes:
    return b"<script>guard</script>"


def srcdoc_of(page: bytes) -> str:
    start = page.index(b'srcdoc="') + len(b'srcdoc="')
    return html.unescape(page[start : page.index(b'"', start)].decode())


#: the C scanner and the pure-Python path decide alike
both = pytest.mark.parametrize("speedups", [True, False], ids=["c", "python"])


@both
def test_a_srcdoc_without_any_tracker_word_gets_the_prefix_in_any_quoting(speedups: bool) -> None:
    for attr in (
        'srcdoc="<p>a&quot;b</p>"',
        "srcdoc='<p>a\"b</p>'",
        "srcdoc=&lt;p&gt;ab&lt;/p&gt;",
    ):
        page = f"<html><head></head><body><iframe {attr} id=f></iframe></body></html>".encode()
        out = rewrite_bytes(page, RewritePolicy(granted=frozenset()), snippet, speedups=speedups)
        doc = srcdoc_of(out)
        assert doc.startswith(PREFIX.format("")), out
        assert doc.removeprefix(PREFIX.format("")) in ('<p>a"b</p>', "<p>ab</p>")
        assert b" id=f>" in out


@both
def test_the_prefix_carries_the_nonce_the_snippet_was_given(speedups: bool) -> None:
    page = b"<html><head></head><body><iframe srcdoc='<b>x</b>'></iframe></body></html>"
    policy = RewritePolicy(granted=frozenset())
    out = rewrite_bytes(page, policy, snippet, nonce="r4nd0m", speedups=speedups)
    assert srcdoc_of(out) == PREFIX.format(" nonce=r4nd0m") + "<b>x</b>"
    meta = page.replace(
        b"<head>",
        b"<head><meta http-equiv=content-security-policy content=\"script-src 'nonce-m3ta'\">",
    )
    out = rewrite_bytes(meta, policy, snippet, speedups=speedups)
    assert srcdoc_of(out) == PREFIX.format(" nonce=m3ta") + "<b>x</b>"


@both
def test_an_empty_srcdoc_is_left_alone(speedups: bool) -> None:
    page = b"<html><head></head><body><iframe srcdoc='' src=/x></iframe></body></html>"
    out = rewrite_bytes(page, RewritePolicy(granted=frozenset()), snippet, speedups=speedups)
    assert out.endswith(b"<body><iframe srcdoc='' src=/x></iframe></body></html>")


def test_no_prefix_without_a_guard_on_the_page() -> None:
    page = b"<html><head></head><body><iframe srcdoc='<b>x</b>'></iframe></body></html>"
    everything = RewritePolicy(granted=frozenset(CATEGORIES))
    assert b"consentgate" not in rewrite_bytes(page, everything, snippet)
    assert b"consentgate" not in rewrite_bytes(page, RewritePolicy(granted=frozenset()), None)
