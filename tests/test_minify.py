"""The banner's whitespace/comment minifier keeps code meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate.minify import _tokens, mangle_js, minify_css, minify_js


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("const a = b / c / d", "const a=b/c/d"),
        ("x.split(/[\\s,]+/ ).map( y )", "x.split(/[\\s,]+/).map(y)"),
        ("if (/a b/.test(s)) f()", "if(/a b/.test(s))f()"),
        ("s = 'a // b' + \"c /* d */\"", "s='a // b'+\"c /* d */\""),
        ("f() // trailing comment\ng()", "f()\ng()"),
        ("/* block */ let  x = 1", "let x=1"),
        ("t = `a ${ b ? `c ${ d } e` : '}' } f`", "t=`a ${b?`c ${d} e`:'}'} f`"),
        ("return\nx", "return\nx"),
        ("a = b\n(c)", "a=b\n(c)"),
        ("const o = {\n  a: 1,\n  b: 2\n}\nfoo()", "const o={a:1,b:2}\nfoo()"),
        ("a + +b - -c", "a+ +b- -c"),
        ("x = /[/]/g.test(y) ? 1 : 2", "x=/[/]/g.test(y)?1:2"),
        (
            "p.replace(/[.+?^${}()|[\\]\\\\]/g, '\\\\$&')",
            "p.replace(/[.+?^${}()|[\\]\\\\]/g,'\\\\$&')",
        ),
        ("a\n.b()", "a.b()"),
    ],
)
def test_minify_js(source: str, expected: str) -> None:
    assert minify_js(source) == expected


BANNER = Path(__file__).parent.parent / "consentgate/static/banner"


@pytest.mark.parametrize("name", ["banner.js", "more.js"])
def test_minified_banner_sources_shrink_without_comments(name: str) -> None:
    source = (BANNER / name).read_text()
    out = minify_js(source)
    assert len(out) < len(source) * 0.95
    assert "//" not in out.replace("://", "")


def test_minified_banner_keeps_strings_and_templates() -> None:
    # banner.js and banner-more.js's code (more.js) together
    out = minify_js((BANNER / "banner.js").read_text()) + minify_js(
        (BANNER / "more.js").read_text()
    )
    for kept in (
        "' checked'",
        "' disabled'",
        '`<div class="b${n>1?\' s" aria-modal="true\':\'\'}" role="dialog" ',
        "<b>${k[0]}</b> · ${T.provider}: ",
        "/^data-(?:consentgate|cookieblock)-(.+)/",
    ):
        assert kept in out


def test_minify_css() -> None:
    css = "/* c */\n.a > b:focus ,\n.c { color : red ; width: calc(100% - 2rem) ; }\n"
    assert minify_css(css) == ".a>b:focus,.c{color:red;width:calc(100% - 2rem)}"
    assert minify_css("p { color: red ! important }") == "p{color:red!important}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # a binding and its uses get one short name; properties and globals keep theirs
        ("const name = 1; x.name = name", "const a = 1; x.name = a"),
        (
            "const value = window.location; document.title = value",
            "const a = window.location; document.title = a",
        ),
        # shorthand properties and destructured names keep the name everywhere
        (
            "const alpha = 1; const o = { alpha, b: alpha }",
            "const alpha = 1; const a = { alpha, b: alpha }",
        ),
        ("const { alpha, beta } = obj; f(alpha)", "const { alpha, beta } = obj; f(alpha)"),
        # an object key is a property name, its value a use
        ("const key = 1; o = { key: key }", "const a = 1; o = { key: a }"),
        # spread is no property access
        ("const list = []; f(...list)", "const a = []; f(...a)"),
        # every name of a declarator list, and parameters
        ("let first = 1, second, third; g(first, second, third)", "let a = 1, b, c; g(a, b, c)"),
        ("function f(alpha, beta) { return alpha + beta }", "function c(a, b) { return a + b }"),
        ("const h = (gamma, delta) => gamma; k(eps => eps)", "const d = (b, c) => b; k(a => a)"),
        # strings, templates and regular expressions are text
        (
            "const word = 'word'; t = `${word} word`; r = /word/g",
            "const a = 'word'; t = `${a} word`; r = /word/g",
        ),
        # a new name never meets a name that stays (a global here)
        ("const longname = 1; a(longname)", "const b = 1; a(b)"),
        ("get consent() { return consent }", "get consent() { return consent }"),
    ],
)
def test_mangle_js(source: str, expected: str) -> None:
    assert mangle_js(source) == expected.replace("const ", "let ")  # const -> let too


@pytest.mark.parametrize("name", ["banner.js", "more.js"])
def test_mangled_banner_keeps_every_property_string_and_global(name: str) -> None:
    """Only identifiers change: every other token of the banner is the same, in order,
    and every property name and global stays."""
    source = (BANNER / name).read_text()
    out = mangle_js(source)
    before, after = _tokens(source), _tokens(out)
    assert [t for t in before if t[0] != "id"] == [t for t in after if t[0] != "id"]
    assert len(before) == len(after)
    for (_, old), (_, new) in zip(before, after, strict=True):
        if old in ("window", "document", "location", "navigator", "fetch", "JSON", "console"):
            assert new == old
    assert len(minify_js(out)) < len(minify_js(source)) * 0.93
