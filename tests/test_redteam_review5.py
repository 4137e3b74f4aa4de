"""A fifth hostile review of the runtime guard (docs/guard.md, after session 7's import
map): run-time techniques by which a first-party inline script, for a visitor without
consent, still has Chromium send a request to a catalogued tracker host through
consentgate. Each case is a page in the style of `tests/test_redteam_review4.py` (URLs
split, so no signature decides the script on the server) checked with the browser as the
oracle by `check`: directly the tracker is reached; through the proxy and the middleware
without consent it must not be.

Every case failed on the guard the review read (2cbb37c); those still not held are strict
xfails (`UNFIXED`, `MARKUP_UNFIXED`), each in docs/guard.md "What it cannot do". Each
comment says why 2cbb37c missed the case.
"""

from __future__ import annotations

import pytest

from tests.oracle import Variant
from tests.test_browser_oracle import World, world
from tests.test_redteam_oracle import HTML, page
from tests.test_redteam_review4 import PARSE, _variant, check_held, check_out_of_route

__all__ = ["world"]  # the module-scoped fixture, shared by the tests below

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the same tracker URLs with the host's trailing dot (a fully qualified name: the URL parser
# keeps it, DNS resolves it to the same host, the TLS name check accepts it)
DOT = (
    "var UD='https://www.google'+'-analytics.com./g/collect?v=2',"
    "GD='https://www.google'+'tagmanager.com./gtag/js?id=G-X';"
)
# an <option> (parsed by DOMParser) holding a preload of the gtag script
OPTION = (
    f"{PARSE}var o=P('<select><option>a<link rel=preload as=script href=\"'+G+'\"></option>"
    "</select>').querySelector('option'),s=document.createElement('select');d.append(s);"
)
# a declarative shadow root (Document.parseHTMLUnsafe builds it; DOMParser does not)
DSD = (
    "var x=Document.parseHTMLUnsafe('<div><template shadowrootmode=open shadowrootclonable>"
    "<img src=\"'+U+'\"></template></div>').body.firstChild;"
)
# a page import map (added at run time) naming the gtag script
IMPORT_MAP = "var s=document.createElement('script');s.type='importmap';"

TECHNIQUES = {
    # 1. a trailing dot on the host: cat() matches hostname + path against
    #    '([^/]*\.)?google-analytics\.com\/...', and 'www.google-analytics.com./g/collect'
    #    has '.' before the '/'; the hint-host patterns end in '$' after 'com'; the import
    #    map's 'https://www.googletagmanager.com/' prefix does not match '...com./'
    "trailing-dot-fetch": f"{DOT}fetch(UD).catch(()=>0)",
    "trailing-dot-image": f"{DOT}new Image().src=UD",
    "trailing-dot-script": (
        f"{DOT}var s=document.createElement('script');s.src=GD;document.head.append(s)"
    ),
    "trailing-dot-import": f"{DOT}import(GD).catch(()=>0)",
    # 2. the import map matches the serialised URL's prefix: userinfo or a port before the
    #    path make another prefix (cat() reads hostname and would hold both)
    # 3. the page's own import map, added at run time (Chromium merges later maps): a bare
    #    name mapped to the tracker (the guard's map has no entry for it), or a scope, which
    #    wins over the guard's top-level "imports" entry for the very same URL. Neither the
    #    script's text (textContent) nor a document.write'd map's content is read
    "import-map-bare-name": (
        f"{IMPORT_MAP}s.textContent=JSON.stringify({{imports:{{x:G}}}});document.head.append(s);"
        "import('x').catch(()=>0)"
    ),
    "import-map-scope-overrides-guard": (
        f"{IMPORT_MAP}s.textContent=JSON.stringify({{scopes:{{'/':{{[G]:G}}}}}});"
        "document.head.append(s);import(G).catch(()=>0)"
    ),
    "import-map-document-write": (
        'document.write(\'<script type=importmap>{"imports":{"x":"\'+G+\'"}}<\\/script>'
        '<script type=module>import "x"<\\/script>\')'
    ),
    # 4. a named character reference the URL parser's IDNA step maps away (&shy; U+00AD,
    #    &ZeroWidthSpace; U+200B): the markup is ASCII, holds no hint word ('goo&shy;gle'),
    #    no '&#' - html() and tg() pass it whole; the browser decodes it, the host becomes
    #    www.google-analytics.com
    "shy-entity-inner-html": (
        "d.innerHTML='<img src=\"https://www.goo&shy;gle-analytics.com/g/collect?v=2\">'"
    ),
    "zero-width-space-entity-inner-html": (
        "d.innerHTML='<img src=\"https://www.goo&ZeroWidthSpace;gle-analytics.com/g/collect?v=2\">'"
    ),
    "shy-entity-document-write": (
        'document.write(\'<script src="https://www.goo&shy;gletagmanager.com/gtag/js?id=G-X">'
        "<\\/script>')"
    ),
    # 5. a declarative shadow root (Document.parseHTMLUnsafe): scan() runs querySelectorAll,
    #    which does not enter shadow roots, so the <img> in it keeps its src when the host is
    #    imported (clonable), adopted or inserted
    "declarative-shadow-root-import-node": f"{DSD}document.importNode(x,true)",
    "declarative-shadow-root-adopt-node": f"{DSD}document.adoptNode(x)",
    "declarative-shadow-root-append": f"{DSD}d.append(x)",
    # 6. insertion paths not hooked: DocumentType's ChildNode methods (after/before/
    #    replaceWith are own methods of DocumentType.prototype), the document's body setter,
    #    a select's and its options collection's indexed setters
    "doctype-after": (
        f"{PARSE}var x=P('<img src=\"'+U+'\">').body.firstChild;"
        "document.documentElement.remove();document.doctype.after(x)"
    ),
    "document-body-setter": f"{PARSE}document.body=P('<body><img src=\"'+U+'\">').body",
    # 7. SVGAnimatedString.baseVal (docs/guard.md says held; it sets the attribute without
    #    any hooked setter) on an SVG <image> already in the page
    # 8. a percent-escaped path character: the URL parser keeps '%67' in the pathname, the
    #    catalog's 'google-analytics.com/g/collect' does not match '/%67/collect'; the server
    #    decodes it (RFC 3986: the same URL)
    "percent-escaped-path": (
        "fetch('https://www.google'+'-analytics.com/%67/collect?v=2').catch(()=>0)"
    ),
    # 9. a path the catalog does not list on a host it does (google-analytics.com's
    #    patterns are path-scoped): GA4's Measurement Protocol endpoint
    "catalog-unlisted-path-on-tracker-host": (
        "fetch('https://www.google'+'-analytics.com/mp/collect?v=2').catch(()=>0)"
    ),
}

# held since: an unreserved character percent-escaped in a path-scoped pattern's path
TECHNIQUES["percent-escaped-path-scoped-host"] = (
    "fetch('https://www.google'+'tagmanager.com/%67tag/js?id=G-X').catch(()=>0)"
)

# Not held (strict xfails): an import map matches a URL prefix (userinfo, a port make
# another); a select's indexed setters cannot be wrapped; SVGAnimatedString.baseVal
UNFIXED = {
    "import-userinfo": (
        "import('https://a@www.google'+'tagmanager.com/gtag/js?id=G-X').catch(()=>0)"
    ),
    "import-non-default-port": (
        "import('https://www.google'+'tagmanager.com:444/gtag/js?id=G-X').catch(()=>0)"
    ),
    "select-index-setter": f"{OPTION}s[0]=o",
    "options-collection-index-setter": f"{OPTION}s.options[0]=o",
    "svg-image-href-base-val": (
        "var s=document.createElementNS(SN,'svg'),i=document.createElementNS(SN,'image');"
        "i.setAttribute('width',9);i.setAttribute('height',9);s.append(i);d.append(s);"
        "i.href.baseVal=U"
    ),
}

# The page's own markup (the rewriter, not the guard)
MARKUP = {
    # an import map in the markup naming the tracker; a module imports its bare name
    "markup-percent-escaped-path": page(
        '<img src="https://www.google-analytics.com/%67/collect?v=2">'
    ),
    "markup-percent-escaped-path-scoped-host": page(
        '<script src="https://www.googletagmanager.com/%67tag/js?id=G-X"></script>'
    ),
}


# not read by the rewriter: an import map in the markup naming a tracker URL
MARKUP_UNFIXED = {
    "markup-import-map": page(
        '<script type=importmap>{"imports":{"x":"https://www.googletagmanager.com/gtag/js?id=G-X"}}'
        '</script><script type=module>import "x"</script>'
    ),
}


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_new_technique(world: World, name: str) -> None:
    check_held(world, _variant(TECHNIQUES[name]))


@pytest.mark.parametrize("name", list(UNFIXED))
@pytest.mark.xfail(strict=True, reason="not held: docs/guard.md, What it cannot do")
def test_unfixed_technique(world: World, name: str) -> None:
    check_held(world, _variant(UNFIXED[name]))


@pytest.mark.parametrize("name", list(MARKUP_UNFIXED))
@pytest.mark.xfail(strict=True, reason="not held: docs/guard.md, What it cannot do")
def test_markup_unfixed(world: World, name: str) -> None:
    check_held(world, Variant(headers=HTML, body=MARKUP_UNFIXED[name]))


@pytest.mark.parametrize("name", list(MARKUP))
def test_markup_case(world: World, name: str) -> None:
    check_held(world, Variant(headers=HTML, body=MARKUP[name]))


# Requests Playwright's route never sees (a WebSocket handshake): the console shows the
# attempt, as in tests/test_redteam_review4.py
OUT_OF_ROUTE = {
    # WebSocketStream (shipped in this Chromium) is a WebSocket the guard does not wrap
    "websocket-stream": (
        "try{new WebSocketStream('wss://www.google'+'-analytics.com/g/collect')"
        ".opened.catch(()=>0)}catch{}",
        "google-analytics.com/g/collect",
    ),
}


@pytest.mark.parametrize("name", list(OUT_OF_ROUTE))
def test_out_of_route_request(world: World, name: str) -> None:
    check_out_of_route(world, name, *OUT_OF_ROUTE[name])
