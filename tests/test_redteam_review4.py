"""A fourth hostile review of the runtime guard (docs/guard.md, session 7): run-time
techniques by which a first-party inline script, for a visitor without consent, still had
Chromium send a request to a catalogued tracker host through consentgate. Each case is a
page in the style of `tests/test_redteam_oracle.py` (URLs split, so no signature decides
the script on the server) checked with the browser as the oracle by `check`: directly the
tracker is reached; through the proxy and the middleware without consent it must not be.

Every case failed on the guard the review read (fe42ebf); those still not held are strict
xfails (`UNFIXED`), each listed in docs/guard.md "What it cannot do".
"""

from __future__ import annotations

import pytest
from playwright.sync_api import ConsoleMessage

from tests.oracle import Variant
from tests.test_browser_oracle import World, check, world
from tests.test_redteam_oracle import HTML, page

__all__ = ["world"]  # the module-scoped fixture, shared by the tests below

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# U: a Google Analytics hit, G: the gtag script (split: nothing on the server sees them)
URLS = (
    "var U='https://www.google'+'-analytics.com/g/collect?v=2',"
    "G='https://www.google'+'tagmanager.com/gtag/js?id=G-X';"
    "var SN='http://www.w3.org/2000/svg',XL='http://www.w3.org/1999/xlink';"
)
# an element or a subtree parsed by DOMParser (inert: no setter of the guard's saw it)
PARSE = "var P=s=>new DOMParser().parseFromString(s,'text/html');"
LINK_G = "'<link rel=preload as=script href=\"'+G+'\">'"
# true while the guard (its functions at / el / so / cat / t) is converting a value
IN_GUARD = "var ng=()=>/ at (at|el|t|so|cat) /.test(Error().stack);"

# Held since session 7; each comment says why fe42ebf's guard missed it
TECHNIQUES = {
    # markup given as an object (not a string): html() returns what has no .replace
    # untouched, and the browser makes it a string afterwards
    "inner-html-object": "d.innerHTML={toString(){return '<img src='+U+'>'}}",
    "set-html-unsafe-object": "d.setHTMLUnsafe({toString(){return '<img src='+U+'>'}})",
    "insert-adjacent-html-object": (
        "d.insertAdjacentHTML('beforeend',{toString(){return '<img src='+U+'>'}})"
    ),
    "contextual-fragment-object": (
        "document.createRange().createContextualFragment({toString(){return '<img src='+U+'>'}})"
    ),
    # an element made in the page's document with its URL already set, without any
    # setter or insertion: an <img> starts loading as it is created (clone, adoption,
    # XSLT output)
    "import-node-dom-parser-img": (
        f"{PARSE}document.importNode(P('<img src='+U+'>').body.firstChild)"
    ),
    "adopt-node-dom-parser-img": (
        f"{PARSE}document.adoptNode(P('<img src='+U+'>').body.firstChild)"
    ),
    "parse-html-unsafe-import-node": (
        "document.importNode(Document.parseHTMLUnsafe('<img src='+U+'>').body.firstChild)"
    ),
    "xslt-transform-to-fragment-img": (
        'var xs=new DOMParser().parseFromString(\'<xsl:stylesheet version="1.0" xmlns:xsl='
        '"http://www.w3.org/1999/XSL/Transform"><xsl:template match="/"><img xmlns='
        "\"http://www.w3.org/1999/xhtml\" src=\"'+U.replace(/&/g,'&amp;')+'\"/></xsl:template>"
        "</xsl:stylesheet>','text/xml');var p=new XSLTProcessor();p.importStylesheet(xs);"
        "p.transformToFragment(new DOMParser().parseFromString('<a/>','text/xml'),document)"
    ),
    # network APIs the guard does not wrap
    "event-source-prototype-constructor": "new EventSource.prototype.constructor(U)",
    "cache-add": "caches.open('x').then(c=>c.add(U)).catch(()=>0)",
    "cache-add-all": "caches.open('x').then(c=>c.addAll([U])).catch(()=>0)",
    "paint-worklet-add-module": "CSS.paintWorklet.addModule(G).catch(()=>0)",
    "document-open-three-arguments": "document.open(U,'_blank','')",
    "frame-document-open-three-arguments": (
        "var f=document.createElement('iframe');d.append(f);f.contentDocument.open(U,'_blank','')"
    ),
    # URL attributes el() does not know
    "set-attribute-ns-other-xlink-prefix": (
        "var s=document.createElementNS(SN,'svg'),i=document.createElementNS(SN,'image');"
        "i.setAttributeNS(XL,'foo:href',U);s.append(i);d.append(s)"
    ),
    "set-attribute-node-ns-other-xlink-prefix": (
        "var s=document.createElementNS(SN,'svg'),i=document.createElementNS(SN,'image'),"
        "a=document.createAttributeNS(XL,'q:href');a.value=U;i.setAttributeNodeNS(a);"
        "s.append(i);d.append(s)"
    ),
    "svg-script-href-any-xlink-prefix": (
        "var s=document.createElementNS(SN,'script');s.setAttributeNS(XL,'q:href',G);"
        "var v=document.createElementNS(SN,'svg');v.append(s);d.append(v)"
    ),
    "svg-set-href-inner-html": (
        "d.innerHTML='<svg><image width=10 height=10><set attributeName=href to=\"'+U+'\"/>"
        "</image></svg>'"
    ),
    "svg-animate-values-inner-html": (
        "d.innerHTML='<svg><image width=10 height=10><animate attributeName=href values=\"'+U+'\""
        " dur=1s /></image></svg>'"
    ),
    "svg-set-href-set-attribute": (
        "var s=document.createElementNS(SN,'svg'),i=document.createElementNS(SN,'image'),"
        "a=document.createElementNS(SN,'set');a.setAttribute('attributeName','href');"
        "a.setAttribute('to',U);i.setAttribute('width',10);i.setAttribute('height',10);"
        "i.append(a);s.append(i);d.append(s)"
    ),
    "svg-set-feimage-href": (
        "d.innerHTML='<svg width=20 height=20><filter id=ff><feImage><set attributeName=href "
        "to=\"'+U+'\"/></feImage></filter><rect filter=url(#ff) width=10 height=10 /></svg>'"
    ),
    # innerHTML is passed unchecked on any element whose localName is script or style: an
    # SVG (or other-namespace) one parses its markup as HTML, and the <img> loads
    "svg-style-inner-html": ("document.createElementNS(SN,'style').innerHTML='<img src='+U+'>'"),
    "svg-script-inner-html": ("document.createElementNS(SN,'script').innerHTML='<img src='+U+'>'"),
    # scan()'s selector misses attributes el() knows
    "scan-misses-nested-xlink-href": (
        f"{PARSE}d.append(P('<div><svg><image width=9 height=9 xlink:href=\"'+U+'\"/></svg>"
        "</div>').body.firstChild)"
    ),
    "scan-misses-imagesrcset": (
        f"{PARSE}d.append(P('<div><link rel=preload as=image imagesrcset=\"'+U+' 1x\"></div>')"
        ".body.firstChild)"
    ),
    # insertion paths that are not hooked (no scan, no fr())
    "table-caption-setter": (
        f"{PARSE}var x=P('<table><caption>'+{LINK_G}+'</caption></table>')"
        ".querySelector('caption'),t=document.createElement('table');d.append(t);t.caption=x"
    ),
    "table-thead-setter": (
        f"{PARSE}var x=P('<table><thead><tr><td>'+{LINK_G}+'</td></tr></thead></table>')"
        ".querySelector('thead'),t=document.createElement('table');d.append(t);t.tHead=x"
    ),
    "select-add-option": (
        f"{PARSE}var o=P('<select><option>a'+{LINK_G}+'</option></select>')"
        ".querySelector('option'),s=document.createElement('select');d.append(s);s.add(o)"
    ),
    # a shadow root of a detached element: filled unchecked (its host is not connected,
    # the node is the page's document's), and scan() of the host does not enter it
    "detached-shadow-root-link": (
        f"{PARSE}var h=document.createElement('div'),r=h.attachShadow({{mode:'open'}});"
        f"r.append(document.importNode(P({LINK_G}).head.firstChild));d.append(h)"
    ),
    "detached-shadow-root-template-script": (
        f"{PARSE}var t=P('<template><script src=\"'+G+'\"><\\/script></template>')"
        ".querySelector('template'),h=document.createElement('div'),r=h.attachShadow("
        "{mode:'open'});r.append(document.importNode(t.content,true));d.append(h)"
    ),
    # an attribute NAME that is an object: never made a string once (its toString
    # answers the guard "alt" and the browser "src")
    "set-attribute-name-object": (
        f"{IN_GUARD}new Image().setAttribute({{toString:()=>ng()?'alt':'src'}},U)"
    ),
    "set-attribute-ns-name-object": (
        f"{IN_GUARD}new Image().setAttributeNS(null,{{toString:()=>ng()?'alt':'src'}},U)"
    ),
    # an <object>'s frame made by the layout a read of offsetWidth forces, reached by its
    # contentWindow (now hooked, as an iframe's)
    "object-pending-content-window": (
        "var o=document.createElement('object');o.type='text/html';o.data='/nope';d.append(o);"
        "o.offsetWidth;o.contentWindow.navigator.sendBeacon(U)"
    ),
}

# Found and NOT held (strict xfails: each turns into a failure once it is held); each is in
# docs/guard.md "What it cannot do"
UNFIXED = {
    # the guard reads the node's own (shadowable) properties, not the platform's
    "attr-own-name": (
        "var i=new Image(),a=document.createAttribute('src');a.value=U;"
        "Object.defineProperty(a,'name',{value:'alt'});i.setAttributeNode(a)"
    ),
    "attr-own-value": (
        "var i=new Image(),a=document.createAttribute('src');a.value=U;"
        "Object.defineProperty(a,'value',{value:'/x.png'});i.setAttributeNode(a)"
    ),
    "element-own-local-name": (
        "var l=document.createElement('link');l.rel='preload';l.as='script';"
        "Object.defineProperty(l,'localName',{value:'a'});l.href=G;document.head.append(l)"
    ),
    "element-own-dataset": (
        "var i=new Image();Object.defineProperty(i,'dataset',{value:{consent:'necessary'}});i.src=U"
    ),
    "element-own-attributes-scan": (
        f"{PARSE}var x=P({LINK_G}).head.firstChild;"
        "Object.defineProperty(x,'attributes',{value:[]});d.append(x)"
    ),
    # any script may declare its own element necessary (documented for the site's
    #  markup; at run time a tag can do it too)
    "data-consent-necessary-at-run-time": "var i=new Image();i.dataset.consent='necessary';i.src=U",
    # a blob: document in a frame that is not its first (a new realm, no prefix, no load
    #  before its scripts ran): a second src, a reload
    "blob-frame-second-navigation": (
        "var f=document.createElement('iframe');f.src=URL.createObjectURL(new Blob(['<p>1'],"
        "{type:'text/html'}));f.onload=()=>{f.onload=null;f.src=URL.createObjectURL(new Blob("
        "['<script>fetch(parent.U)<\\/script>'],{type:'text/html'}))};d.append(f)"
    ),
    "blob-frame-reload": (
        "var f=document.createElement('iframe');f.src=URL.createObjectURL(new Blob(['<p>x"
        "<script>name&&fetch(parent.U);name=1<\\/script>'],{type:'text/html'}));"
        "f.onload=()=>{f.onload=null;f.contentWindow.location.reload()};d.append(f)"
    ),
    # an <embed> frame made by the layout a read of offsetWidth forces, after the append
    # that inserted it (whose check of the page's frames found none yet), reached by index
    "embed-pending-frames-index": (
        "var o=document.createElement('embed');o.type='text/html';o.src='/nope';d.append(o);"
        "o.offsetWidth;frames[0].navigator.sendBeacon(U)"
    ),
    # a font loaded by the FontFace API (a script call, though the docs count fonts as CSS)
    "font-face-load": "new FontFace('f','url('+U+')').load().catch(()=>0)",
    # a download started by a link click: a request, no navigation
    "anchor-download-click": (
        "var a=document.createElement('a');a.href=U;a.download='x';d.append(a);a.click()"
    ),
}


def _variant(js: str) -> Variant:
    return Variant(headers=HTML, body=page(f"<div id=d></div><script>{URLS}{js}</script>"))


def check_held(world: World, v: Variant) -> None:
    """The oracle's check, and that the case tests something: directly, the tracker runs."""
    found = check(world, v)
    assert found["direct"].tracker, (
        "a direct visit did not reach the tracker: the case tests nothing"
    )


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_new_technique(world: World, name: str) -> None:
    check_held(world, _variant(TECHNIQUES[name]))


@pytest.mark.parametrize("name", list(UNFIXED))
@pytest.mark.xfail(strict=True, reason="not held: docs/guard.md, What it cannot do")
def test_unfixed_technique(world: World, name: str) -> None:
    check_held(world, _variant(UNFIXED[name]))


# Requests Chromium makes outside the renderer (or over a WebSocket), which Playwright's
# route never sees: the console shows the attempt (a name lookup of the tracker's host
# failing; through consentgate, its report-only CSP reporting the connection too).
OUT_OF_ROUTE = {  # name: (script, what the console says when Chromium tried the host)
    "websocket-prototype-constructor": (
        "try{new WebSocket.prototype.constructor('wss://www.google'+'-analytics.com/g/collect')}catch{}",
        "WebSocket connection to 'wss://www.google-analytics.com/g/collect' failed",
    ),
}


# not held (docs/guard.md): a payment method's manifest, a FedCM provider's config file
OUT_OF_ROUTE_UNFIXED = {
    "payment-request-manifest": (
        "new PaymentRequest([{supportedMethods:'https://www.google'+'-analytics.com/g/collect'}],"
        "{total:{label:'x',amount:{currency:'USD',value:'1'}}}).canMakePayment().catch(()=>0)",
        'payment manifest "https://www.google-analytics.com',
    ),
    "fedcm-config-url": (
        "navigator.credentials.get({identity:{providers:[{configURL:'https://www.google'+"
        "'-analytics.com/g/collect',clientId:'x'}]}}).catch(()=>0)",
        "config file resulted in a network error",
    ),
}


def _attempted(world: World, url: str, needle: str) -> bool:
    messages: list[str] = []

    def listen(m: ConsoleMessage) -> None:
        messages.append(m.text)

    world.none.on("console", listen)
    try:
        world.none.goto(url, wait_until="load", timeout=8000)
        world.none.wait_for_timeout(1500)
    finally:
        world.none.remove_listener("console", listen)
    return any(needle in m for m in messages)


def check_out_of_route(world: World, name: str, js: str, needle: str) -> None:
    """Directly, Chromium tries the tracker's host (the console says so); through
    consentgate, for a visitor without consent, it does not."""
    path = world.registry.add(_variant(js))
    assert _attempted(world, world.direct + path, needle), "directly, Chromium made no attempt"
    for base in (world.proxy, world.middleware):
        assert not _attempted(world, base + path, needle), f"{name}: tracker host tried via {base}"


@pytest.mark.parametrize("name", list(OUT_OF_ROUTE))
def test_out_of_route_request(world: World, name: str) -> None:
    check_out_of_route(world, name, *OUT_OF_ROUTE[name])


def test_out_of_route_check_can_pass(world: World) -> None:
    """The console check sees a held WebSocket as held (so the failures above are real)."""
    js = "try{new WebSocket('wss://www.google'+'-analytics.com/g/collect')}catch{}"
    needle = OUT_OF_ROUTE["websocket-prototype-constructor"][1]
    path = world.registry.add(_variant(js))
    assert _attempted(world, world.direct + path, needle)
    for base in (world.proxy, world.middleware):
        assert not _attempted(world, base + path, needle)


@pytest.mark.parametrize("name", list(OUT_OF_ROUTE_UNFIXED))
@pytest.mark.xfail(strict=True, reason="not held: docs/guard.md, What it cannot do")
def test_out_of_route_unfixed(world: World, name: str) -> None:
    check_out_of_route(world, name, *OUT_OF_ROUTE_UNFIXED[name])
