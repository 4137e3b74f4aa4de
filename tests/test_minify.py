"""The banner's whitespace/comment minifier keeps code meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate.minify import minify_css, minify_js


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


def test_minified_banner_keeps_strings_and_templates() -> None:
    source = (Path(__file__).parent.parent / "consentgate/static/banner/banner.js").read_text()
    out = minify_js(source)
    assert len(out) < len(source) * 0.95
    assert "//" not in out.replace("://", "")
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
