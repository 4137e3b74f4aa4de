"""A kept ``srcdoc`` frame starts with the script that has the page's runtime guard patch the
frame before the frame's own scripts run (docs/guard.md); Chromium checks the effect in
tests/test_redteam_oracle.py, this checks the markup."""

from __future__ import annotations

import html

import pytest

from consentgate.consent import CATEGORIES
from consentgate.rewriter import RewritePolicy, rewrite_bytes

# the frame stops its document if its origin turns out opaque, "null" (unclassified not
# granted); a frame in a window without the guard (a same-origin popup) goes on
PREFIX = (
    "<script{}>try{{parent.consentgateFrame(window)}}catch{{origin.length==4&&stop()}}</script>"
)


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


def test_with_unclassified_granted_an_opaque_frame_is_not_stopped() -> None:
    page = b"<html><head></head><body><iframe srcdoc='<b>x</b>'></iframe></body></html>"
    policy = RewritePolicy(granted=frozenset({"unclassified"}))
    out = srcdoc_of(rewrite_bytes(page, policy, snippet))
    assert out == "<script>try{parent.consentgateFrame(window)}catch{}</script><b>x</b>"


SCRIPT = "&lt;script&gt;fetch('/x')&lt;/script&gt;"


@both
@pytest.mark.parametrize(
    ("tag", "held"),
    [
        # a srcdoc whose sandbox lets scripts run in an opaque origin
        (f'<iframe sandbox="allow-scripts" srcdoc="{SCRIPT}">', True),
        (f'<iframe sandbox=" ALLOW-SCRIPTS\tallow-forms " srcdoc="{SCRIPT}">', True),
        (f'<iframe sandbox="allow-scripts allow-same-origin" srcdoc="{SCRIPT}">', False),
        (f'<iframe sandbox srcdoc="{SCRIPT}">', False),  # no script runs
        (f'<iframe sandbox="allow-&#115;cripts" srcdoc="{SCRIPT}">', True),
        # tokens split on ASCII whitespace only: "allow-same-origin\xa0" is another token
        (f'<iframe sandbox="allow-scripts allow-same-origin&nbsp;" srcdoc="{SCRIPT}">', True),
        (f'<iframe sandbox="allow-scripts x-allow-same-origin" srcdoc="{SCRIPT}">', True),
        (f'<iframe sandbox="allow-scripts\x0callow-same-origin" srcdoc="{SCRIPT}">', False),
        # a csp attribute: a policy on the frame's document can refuse the guard's prefix
        (f'<iframe csp="script-src \'none\'" srcdoc="{SCRIPT}">', True),
        ('<iframe csp="script-src \'none\'" src="/x.html">', True),
        # data: documents in a frame, an object, an embed (any type but an image or a PDF)
        ('<iframe src="data:text/html,%3Cp%3Ex">', True),
        ('<iframe src=" DATA:text/html;base64,PHA+">', True),
        ('<iframe src="d&#9;ata&colon;,x">', True),
        ('<frame src="data:application/xhtml+xml,x">', True),
        ('<object data="data:image/svg+xml,%3Csvg/%3E">', True),
        ('<embed src="data:IMAGE/SVG+XML;charset=utf-8,x">', True),
        ('<iframe src="data:text/plain,x">', True),
        ('<iframe src="data:image/png;base64,iVBO">', False),
        ('<object data="data:application/pdf;base64,JVBE">', False),
        ('<iframe data-src="data:text/html,x">', False),  # not a URL the frame loads
        ('<img src="data:image/svg+xml,%3Csvg/%3E">', False),  # an image runs no script
    ],
)
def test_an_opaque_document_is_held_as_unclassified(speedups: bool, tag: str, held: bool) -> None:
    """No runtime guard reaches a document in an opaque origin: held until unclassified
    content is granted (docs/guard.md)."""
    page = f"<html><head></head><body>{tag}</body></html>".encode()
    out = rewrite_bytes(page, RewritePolicy(granted=frozenset()), snippet, speedups=speedups)
    assert (b'data-consent="unclassified"' in out) is held, out
    granted = RewritePolicy(granted=frozenset({"unclassified"}))
    assert b"data-consent" not in rewrite_bytes(page, granted, snippet, speedups=speedups)
