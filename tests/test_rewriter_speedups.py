"""The C accelerator (``consentgate/rewriter/_speedups.c``) against the pure-Python
rewriter, which is the reference: for every input and every chunking, the same output,
the same stats and the same edits.

Inputs: hypothesis HTML built from fragments that reach every construct the C scanner
handles or hands back (scripts in all escape states, raw-text elements, URL elements
with and without tracker hints, noscript, SVG with integration points, comments, bogus
comments, incomplete tags), random chunkings; the corpus pages; the html5lib tokenizer
suite's inputs. ``CONSENTGATE_REQUIRE_SPEEDUPS=1`` (set by .ci/run) makes a missing
accelerator a failure instead of a silent fallback.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.catalog import load_catalog
from consentgate.rewriter import RewritePolicy, StreamRewriter, elements, grammar, stream
from consentgate.rewriter import _tags as tags
from tests.rewrite_util import ALL, NONE, feed_in_pieces
from tests.support import CORPUS

PAGES = sorted((CORPUS / "pages").glob("*.html"))
STRICT = RewritePolicy(
    granted=frozenset({"necessary", "preferences"}),
    strict=True,
    first_party_hosts=frozenset({"example.com"}),
    allow_hosts=frozenset({"cdn.jsdelivr.net"}),
)
STATS = RewritePolicy(granted=frozenset({"necessary", "statistics"}))


def _rewrite(
    data: bytes, sizes: list[int], speedups: bool, policy: RewritePolicy = NONE, **kw: object
) -> tuple[bytes, Counter[str], list[tuple[int, int, bytes]] | None]:
    rw = StreamRewriter(policy, speedups=speedups, record_edits=True, **kw)  # type: ignore[arg-type]
    return feed_in_pieces(rw, data, sizes), rw.stats, rw.edits


def _same(data: bytes, sizes: list[int], policy: RewritePolicy = NONE, **kw: object) -> bytes:
    c = _rewrite(data, sizes, True, policy, **kw)
    py = _rewrite(data, sizes, False, policy, **kw)
    assert c[0] == py[0]
    assert c[1] == py[1]
    assert c[2] == py[2]
    return c[0]


def test_accelerator_is_loaded_when_required() -> None:
    """CI sets CONSENTGATE_REQUIRE_SPEEDUPS=1: the C path must be compiled and in use."""
    if os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") == "1":
        assert stream.speedups_available(), "consentgate.rewriter._speedups is not compiled"
        assert stream.SPEEDUPS, "CONSENTGATE_PURE_PYTHON is set"
    if stream.speedups_available():
        assert StreamRewriter(NONE, speedups=True)._fast is not None
    assert StreamRewriter(NONE, speedups=False)._fast is None
    assert StreamRewriter(ALL, speedups=True)._fast is None  # nothing to neutralize


FRAGMENTS = [
    "<script>", "</script>", "</script >", "</SCRIPT/>", "<script src='https://www.googletagmanager.com/gtag/js?id=G'>",
    "<script src=//connect.facebook.net/en_US/fbevents.js>", "<script src=/matomo.js>",
    "<script src=https://cdn.example.org/lib.js>", "<script src=https://example.com/a.js>",
    "<script type=module>", "<script type='text/plain' data-consent='statistics'>",
    "<script type=' TEXT/JavaScript '>", "<script type=''>", "<script type>",
    "<script language=javascript>", "<script language=vbscript>", "<script language>",
    "<script TYPE=text/javascript SRC=https://www.google-analytics.com/analytics.js>",
    "<script data-src=https://static.hotjar.com/c/hotjar-1.js href=x xlink:href=y>",
    "<script src='' data-lazy-src=https://snap.licdn.com/li.lms-analytics/insight.min.js>",
    "gtag('config','G-1');", "fbq('init','1');", "_hjSettings={hjid:1};", "<!--", "-->",
    "--!>", "<!-->", "<!--->", "<script>", "</SCRIPT ", "<iframe src=//youtube.com/embed/x>",
    "<iframe src=https://www.youtube.com/embed/x data-consent=marketing>", "<iframe>",
    "</iframe>", "<img src=https://www.facebook.com/tr?id=1>", "<img src=/a.png alt=x>",
    "<img src=a.png alt='&#103;oogle'>", "<img src='https:\\\\www.facebook.com/tr'>",
    "<noscript>", "</noscript>", "<noscript><img src=https://www.facebook.com/tr?id=1></noscript>",
    "<noscript><iframe src=https://www.googletagmanager.com/ns.html?id=GTM-1></iframe></noscript>",
    "<svg>", "</svg>", "<svg/>", "<svg a=/>", "<math>", "<mi>", "<![CDATA[", "]]>",
    "<foreignObject>", "</foreignObject>", "<desc>", "</desc>", "<title>", "</title>",
    "<svg viewBox='0 0 1 1'><path d='M0 0'/></svg>", "<svg><title>x</title><g></g></svg>",
    "<image href=https://www.facebook.com/tr>", "<image href=/x.png>", "<svg><script>",
    "<script href='https://www.google-analytics.com/analytics.js'/>", "<textarea>",
    "</textarea>", "<style>", "</style>", "<xmp>", "</xmp>", "<plaintext>", "<noembed>",
    "</noembed>", "<noframes>", "</noframes>", "<font color=red>", "<p>", "<br>", "<b>",
    "<a title='<script src=//connect.facebook.net/x/fbevents.js>'>", "<", "</", "<!", "<?",
    "<!doctype html>", "<head>", "<meta charset=utf-8>", "<body>", "\"", "'", "=",
    " ", "\n", ">", "/>", "<link rel=preload href=https://www.googletagmanager.com/gtm.js>",
    "<link rel=stylesheet href=https://www.googletagmanager.com/x.css>",
    "<link rel=modulepreload imagesrcset='https://www.facebook.com/tr 1x'>",
    "<object data=https://hotjar.com/x>", "<embed src=//clarity.ms/t>", "<frame src=x>",
    "<source srcset='https://www.facebook.com/tr?id=1 1x, /a.png 2x'>", "</p>", "é",
    "<script data-cookieconsent=ignore src=https://hotjar.com/x>", "&amp;", "&#x2F;", "\x00",
    "<img srcset='https://www.facebook.com/tr?id=1 1x, /a.png 2x'>", "<source src=x>",
    "<noscript><p title=\"", "</noscript>\">", "<noscript><style>", "<noscript><!--",
    "<div title='x>'>", "<div a=\"b\"c>", "<x =y>", "<a b = c>", "< p>", "</>", "</ x>",
    "<svg><foreignObject><p>", "<svg><desc><script>", "<svg><title><svg>", "<font face=x>",
    "<font>", "<svg><br>", "</br>", "<svg><image href=//hotjar.com/x/>", "<svg><g/><use/>",
    "<noscript><svg>", "<noscript><script>x</script>", "<noscript></noscript>", "<math/>",
    "<svg><style><img src=https://www.facebook.com/tr></style></svg>", "<svg><![CDATA[x]]>",
    "<link rel='  Preload ' href=https://www.googletagmanager.com/gtm.js>", "<svg><p>",
    "<img src=https://www.facebook.com/tr data-src=//doubleclick.net/x srcset=', ,'>",
    "<link rel=preconnect href=https://www.googletagmanager.com>", "<link rel=x href=//a>",
    "<link rel='dns-prefetch preload' href=//connect.facebook.net/en_US/fbevents.js>",
    "<link rel=DNS-Prefetch href=//hotjar.com>", "<link rel='icon preconnect' href=/x>",
    "<iframe src='javascript:document.write(\"<script src=//doubleclick.net/x></script>\")'>",
]  # fmt: skip
html = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
)
cuts = st.lists(st.integers(1, 64), min_size=1, max_size=12)
policies = st.sampled_from([NONE, STRICT, STATS])


@settings(max_examples=400, deadline=None)
@given(html, cuts, policies)
def test_random_html_random_chunks(data: bytes, sizes: list[int], policy: RewritePolicy) -> None:
    _same(data, sizes, policy)
    _same(data, [], policy)


@settings(max_examples=150, deadline=None)
@given(html, cuts, st.sampled_from([None, "n0nce"]))
def test_random_html_with_head_snippet(data: bytes, sizes: list[int], nonce: str | None) -> None:
    _same(data, sizes, head_snippet=lambda n: b"<script nonce=" + (n or "-").encode() + b">")
    _same(data, sizes, nonce=nonce, head_snippet=lambda n: b"<b>", tag_cap=64, script_cap=32)


@settings(max_examples=100, deadline=None)
@given(html, cuts)
def test_random_html_small_caps(data: bytes, sizes: list[int]) -> None:
    _same(data, sizes, tag_cap=40, script_cap=16)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_corpus_page(page: object) -> None:
    data = page.read_bytes()  # type: ignore[attr-defined]
    out = _same(data, [16 * 1024])
    assert _same(data, [4093, 977]) == out


def test_corpus_with_site_catalog() -> None:
    """A catalog with site services and overrides changes the hint words and categories."""
    data = b"".join(p.read_bytes() for p in PAGES[:20])
    policy = RewritePolicy(granted=frozenset({"necessary"}), catalog=load_catalog(None))
    _same(data, [16 * 1024], policy)
    _same(data, [16 * 1024], STRICT)


def _html5lib_inputs() -> list[bytes]:
    out = []
    for path in sorted((CORPUS / "html5lib-tests" / "tokenizer").glob("*.test")):
        for test in json.loads(path.read_text()).get("tests", []):
            text = test["input"]
            if test.get("doubleEscaped"):
                text = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
            out.append(text.encode("utf-8", "surrogatepass"))
    return out


def test_html5lib_tokenizer_inputs() -> None:
    inputs = _html5lib_inputs()
    assert len(inputs) > 1000
    for data in inputs:
        for sizes in ([], [1], [3, 7]):
            _same(data, sizes)
            _same(b"<script src=https://www.googletagmanager.com/gtm.js>" + data, sizes)
            _same(b"<svg><desc>" + data, sizes)


def test_fragment_pairs() -> None:
    """Every fragment pair around trackers: a construct the C scanner misreads (where it
    ends, what state follows) shifts or hides a neutralization."""
    tracker = (
        b"<script src=https://www.googletagmanager.com/gtm.js></script><img src=//hotjar.com/x>"
    )
    frags = [f.encode() for f in FRAGMENTS]
    for a in frags:
        for b in frags:
            data = a + tracker + b + tracker + b"gtag('js')</script>" + tracker
            _same(data, [])
            _same(data, [len(a) + 7, 50])


def test_c_tables_match_python() -> None:
    if not stream.speedups_available():
        return  # nothing to compare (the accelerator test above fails in CI instead)
    from consentgate.rewriter import _speedups

    tables = _speedups.tables()
    assert tables["URL_ATTRS"] == {k: set(v) for k, v in elements.URL_ATTRS.items()}
    assert tables["FOREIGN_BREAKOUT"] == set(grammar.FOREIGN_BREAKOUT)
    assert tables["RAWTEXT_NAMES"] == set(tags._RAWTEXT_NAMES)
    assert tables["URL_ELEMENTS"] == set(elements.URL_ATTRS)


words = st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=6, unique=True)


@settings(max_examples=300, deadline=None)
@given(
    words, st.lists(st.sampled_from([b"a", b"b", b"ab", b"ba", b"\x00", b"A", b"-"]), max_size=30)
)
def test_literals_find_what_the_alternation_finds(ws: list[bytes], parts: list[bytes]) -> None:
    """Catalog.match_inline's anchor scan in C: re.finditer's spans, exactly."""
    if not stream.speedups_available():
        return
    from consentgate.rewriter import _speedups

    text = b"".join(parts) + b"".join(ws)
    regex = re.compile(b"|".join(re.escape(w) for w in ws))
    assert _speedups.Literals(ws).finditer(text) == [m.span() for m in regex.finditer(text)]


def test_catalog_anchor_scan_on_corpus_scripts() -> None:
    catalog = load_catalog(None)
    assert catalog._anchor is not None
    if stream.speedups_available() and stream.SPEEDUPS:
        assert catalog._find_anchors is not None
    for page in PAGES[:40]:
        for m in re.finditer(rb"<script[^>]*>(.*?)</script", page.read_bytes(), re.S):
            text = m.group(1)
            spans = [a.span() for a in catalog._anchor.finditer(text)]
            if catalog._find_anchors is not None:
                assert catalog._find_anchors(text) == spans
            assert catalog.match_inline(text, cache=False) == _regex_match_inline(catalog, text)


def _regex_match_inline(catalog: object, text: bytes) -> list[object]:
    """match_inline with the regular-expression anchor scan (the reference)."""
    saved = catalog._find_anchors  # type: ignore[attr-defined]
    catalog._find_anchors = None  # type: ignore[attr-defined]
    try:
        return catalog.match_inline(text, cache=False)  # type: ignore[attr-defined]
    finally:
        catalog._find_anchors = saved  # type: ignore[attr-defined]
