"""Hypothesis: random HTML, random chunkings.

Never an exception; the output does not depend on the chunking; full consent is the
identity; the output is the input with some start tags replaced - and those are
exactly start tags the tokenizer reports, each rewritten from its own bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.rewriter import StreamRewriter
from tests.rewrite_util import ALL, NONE, apply, chunked, start_tags

# once with the C accelerator, once in pure Python (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("rewriter_impl")

FRAGMENTS = [
    "<script>", "</script>", "<script src='https://www.googletagmanager.com/gtag/js?id=G'>",
    "<script type=module>", "<script type='text/plain' data-consent='statistics'>",
    "gtag('config','G-1');", "fbq('init','1');", "_hjSettings={hjid:1};", "<!--", "-->",
    "--!>", "<!-->", "<!--->", "<script>", "</SCRIPT ", "<iframe src=//youtube.com/embed/x>",
    "</iframe>", "<img src=https://www.facebook.com/tr?id=1>", "<noscript>", "</noscript>",
    "<svg>", "</svg>", "<math>", "<mi>", "<![CDATA[", "]]>", "<foreignObject>", "<desc>",
    "<script href='https://www.google-analytics.com/analytics.js'/>", "<textarea>",
    "</textarea>", "<title>", "</title>", "<style>", "</style>", "<xmp>", "<plaintext>",
    "<a title='<script src=//connect.facebook.net/x/fbevents.js>'>", "<", "</", "<!", "<?",
    "<!doctype html>", "<head>", "<meta charset=utf-8>", "<body>", "<p>", "\"", "'", "=",
    " ", "\n", ">", "/>", "<link rel=preload href=https://www.googletagmanager.com/gtm.js>",
    "<object data=https://hotjar.com/x>", "<embed src=//clarity.ms/t>", "<b>", "<br>", "</p>",
    "<script data-cookieconsent=ignore src=https://hotjar.com/x>", "&amp;", "&#x2F;", "\x00",
    "<img srcset='https://www.facebook.com/tr?id=1 1x, /a.png 2x'>", "<source src=x>", "é",
    "<noscript><p title=\"", "</noscript>\">", "<noscript><style>", "<noscript><!--",
    "<link rel=preconnect href=https://www.googletagmanager.com>", "<link rel=dns-prefetch>",
]  # fmt: skip
html = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
)
cuts = st.lists(st.integers(1, 64), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(html, cuts)
def test_chunking_never_changes_the_output(data: bytes, sizes: list[int]) -> None:
    assert chunked(data, sizes) == chunked(data, [])
    assert chunked(data, sizes, ALL) == data


@settings(max_examples=300, deadline=None)
@given(html, cuts)
def test_only_start_tags_change(data: bytes, sizes: list[int]) -> None:
    rw = StreamRewriter(NONE, record_edits=True)
    out = b"".join(rw.feed(data[i : i + sizes[0]]) for i in range(0, len(data), sizes[0]))
    out += rw.finish()
    assert rw.edits is not None
    assert apply(data, rw.edits) == out
    tags = start_tags(data)
    for start, end, replacement in rw.edits:
        assert (start, end) in tags
        name = data[start:end].split(None, 1)[0].rstrip(b">").rstrip(b"/")
        assert replacement.startswith(name)
        assert replacement.endswith(data[end - 1 : end])


@settings(max_examples=200, deadline=None)
@given(html, cuts)
def test_with_snippet_injected_exactly_once(data: bytes, sizes: list[int]) -> None:
    snippet = b"<script data-x=cg></script>"
    out = chunked(data, sizes, ALL, head_snippet=lambda nonce: snippet)
    assert out == chunked(data, [], ALL, head_snippet=lambda nonce: snippet)
    if data:
        assert out.count(snippet) == data.count(snippet) + 1
        i = out.index(snippet)
        assert out[:i] + out[i + len(snippet) :] == data
