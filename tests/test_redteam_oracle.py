"""Cases a hostile reviewer found where a tracker ran through consentgate for a visitor
without consent (issue 14's promise), each checked with the browser as the oracle, as
`tests/test_browser_oracle.py` does: directly, through `consentgate serve --upstream`
and through the middleware, without consent (the tracker never runs nor is requested)
and with full consent (the tracker runs exactly when it runs directly).
"""

from __future__ import annotations

import base64
import gzip
from urllib.parse import quote

import pytest

from tests.oracle import TRACKER, Variant
from tests.test_browser_oracle import PAD, World, check, visit, world

__all__ = ["world"]  # the module-scoped fixture, shared by the tests below

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HTML = [("Content-Type", "text/html")]
PIXEL = "https://www.google-analytics.com/g/collect?v=2&tid=G-ORACLE"
SCRIPT = f'<script src="{TRACKER}"></script>'
SPLIT = "'https://www.google'+'-analytics.com/g/collect?v=2'"
SPLIT_GA = "'https://www.google'+'tagmanager.com/gtag/js?id=G-X'"
# code run in an opaque-origin frame (it cannot read the page's variables): the URL is built
# there, in backquotes (the code sits in quoted strings and attributes)
OPAQUE_JS = (
    "var s=document.createElement(`script`);s.src=`https://www.google`+`tagmanager.com/gtag/"
    "js?id=G-X`;document.head.appendChild(s)"
)
OPAQUE_FETCH = "fetch(`https://www.google`+`-analytics.com/g/collect?v=2`)"
# a data: document with OPAQUE_FETCH (DATA: its URL in u); a sandboxed srcdoc frame made
# by DOMParser (SB: in x), inserted by other paths
DATA = f"var u='data:text/html,'+encodeURIComponent('<script>{OPAQUE_FETCH}<\\/script>');"
SB = (
    "var x=new DOMParser().parseFromString('<iframe sandbox=allow-scripts srcdoc=\"<script>"
    f"{OPAQUE_FETCH}<\\/script>\"></iframe>','text/html').body.firstChild;"
)
CSP_ATTR = "f.setAttribute('csp',\"script-src 'nonce-abc'\");"
# once frame f has loaded: sandboxed (opaque) and reloaded
RELOAD = "f.onload=()=>{f.onload=null;f.sandbox='allow-scripts';f.contentWindow.location.reload()};"
# a tab and a line break, made at run time (T, N): nothing on the server sees them
T = "var T=String.fromCharCode(9),N=String.fromCharCode(10);"


def page(body: str = "", head: str = "") -> bytes:
    return (
        f"<!doctype html><html><head><title>t</title>{head}</head><body>{PAD}{body}</body></html>"
    ).encode()


CASES: dict[str, Variant] = {
    # two Content-Encoding headers are one list (gzip, gzip): a page coded twice
    "two-content-encoding-headers": Variant(
        headers=[*HTML, ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
        body=gzip.compress(gzip.compress(page(SCRIPT))),
    ),
    # headers the browser acts on before any markup
    "link-preload-header": Variant(
        headers=[*HTML, ("Link", f"<{TRACKER}>; rel=preload; as=script")], body=page()
    ),
    "link-header-among-others": Variant(
        headers=[
            *HTML,
            ("Link", f'</a.css>; rel=preload; as=style, <{TRACKER}>; rel="preload"; as=script'),
        ],
        body=page(),
    ),
    "refresh-header-to-pixel": Variant(headers=[*HTML, ("Refresh", f"0;url={PIXEL}")], body=page()),
    "meta-refresh-to-pixel": Variant(
        headers=HTML, body=page(head=f'<meta http-equiv="refresh" content="0;url={PIXEL}">')
    ),
    # <base href>: relative script URLs resolve on the tracker's host
    "base-href": Variant(
        headers=HTML,
        body=page(
            '<script src="js?id=G-ORACLE"></script>',
            '<base href="https://www.googletagmanager.com/gtag/">',
        ),
    ),
    # pixels in media and image-button attributes
    "video-poster": Variant(headers=HTML, body=page(f'<video poster="{PIXEL}"></video>')),
    "input-image": Variant(headers=HTML, body=page(f'<input type="image" src="{PIXEL}">')),
    # frames whose document is written in the markup
    "srcdoc": Variant(
        headers=HTML,
        body=page(f'<iframe srcdoc="{SCRIPT.replace(chr(34), "&quot;")}"></iframe>'),
    ),
    "data-iframe": Variant(
        headers=HTML, body=page(f'<iframe src="data:text/html,{quote(SCRIPT)}"></iframe>')
    ),
    "data-iframe-base64": Variant(
        headers=HTML,
        body=page(
            '<iframe src="data:text/html;base64,'
            + base64.b64encode(SCRIPT.encode()).decode()
            + '"></iframe>'
        ),
    ),
    "object-data": Variant(
        headers=HTML, body=page(f'<object data="data:text/html,{quote(SCRIPT)}"></object>')
    ),
    "embed-data": Variant(
        headers=HTML,
        body=page(f'<embed type="text/html" src="data:text/html,{quote(SCRIPT)}">'),
    ),
    "srcdoc-split-inline": Variant(
        headers=HTML,
        body=page(
            "<iframe srcdoc=\"&lt;script&gt;var s=document.createElement('script');"
            f's.src={SPLIT_GA};document.head.appendChild(s)&lt;/script&gt;"></iframe>'
        ),
    ),
    # no tracker word anywhere in the frame's tag (the URL comes from the parent)
    "srcdoc-no-hint-word": Variant(
        headers=HTML,
        body=page(
            "<script>var u='https://www.goo'+'gletagmanager.com/gtag/js?id=G-X'</script>"
            "<iframe srcdoc=\"&lt;script&gt;var s=document.createElement('script');"
            's.src=parent.u;document.head.appendChild(s)&lt;/script&gt;"></iframe>'
        ),
    ),
    # the same under a nonce CSP (a srcdoc document shares it: the guard's script needs it)
    "srcdoc-split-inline-nonce": Variant(
        headers=[*HTML, ("Content-Security-Policy", "script-src 'nonce-r4nd0m'")],
        body=page(
            "<iframe srcdoc=\"&lt;script nonce=r4nd0m&gt;var s=document.createElement('script');"
            f's.src={SPLIT_GA};s.nonce=`r4nd0m`;document.head.appendChild(s)&lt;/script&gt;"></iframe>'
        ),
    ),
    # the runtime guard: a same-origin about:blank frame has its own fetch, Image and
    # prototypes (the URL is split, so no signature decides the inline script on the server)
    "about-blank-content-window": Variant(
        headers=HTML,
        body=page(
            f"<iframe id=f></iframe><script>var u={SPLIT};var w=f.contentWindow;"
            "w.fetch(u);new w.Image().src=u+'&i';w.navigator.sendBeacon(u+'&b')</script>"
        ),
    ),
    "about-blank-frames-index": Variant(
        headers=HTML,
        body=page(f"<iframe></iframe><script>window[0].fetch({SPLIT})</script>"),
    ),
    "about-blank-appended": Variant(
        headers=HTML,
        body=page(
            "<script>document.body.appendChild(document.createElement('iframe'));"
            f"var d=frames[0].document,s=d.createElement('script');s.src={SPLIT_GA};"
            "d.head.appendChild(s)</script>"
        ),
    ),
    "about-blank-inner-html": Variant(
        headers=HTML,
        body=page(
            "<div id=d></div><script>d.innerHTML='<iframe></iframe>';"
            f"new frames[0].Image().src={SPLIT}</script>"
        ),
    ),
}

# Run-time techniques the guard did not see, each in a first-party inline script (URLs
# split, so that no signature decides the script on the server).
TECHNIQUES = {
    "set-attribute-node-img": (
        f"var i=new Image(),a=document.createAttribute('src');a.value={SPLIT};i.setAttributeNode(a)"
    ),
    "attr-value-img": (
        f"var i=new Image();i.setAttribute('src','/x.png');i.getAttributeNode('src').value={SPLIT}"
    ),
    "set-attribute-node-script": (
        "var s=document.createElement('script');document.head.appendChild(s);"
        f"var a=document.createAttribute('src');a.value={SPLIT_GA};s.setAttributeNode(a)"
    ),
    # session 6: an attribute node's value changed or given by the other paths (the map an
    # element's attributes are, Node's nodeValue / textContent), on an image never attached
    "set-named-item-img": (
        f"var i=new Image(),a=document.createAttribute('src');a.value={SPLIT};"
        "i.attributes.setNamedItem(a)"
    ),
    "set-named-item-ns-img": (
        f"var i=new Image(),a=document.createAttribute('src');a.value={SPLIT};"
        "i.attributes.setNamedItemNS(a)"
    ),
    "attr-node-value-img": (
        "var i=new Image();i.setAttribute('src','/x.png');"
        f"i.getAttributeNode('src').nodeValue={SPLIT}"
    ),
    "attr-text-content-img": (
        f"var i=new Image();i.setAttribute('src','/x.png');i.attributes[0].textContent={SPLIT}"
    ),
    "attr-node-value-srcdoc": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<p>x';d.append(f);"
        "f.getAttributeNode('srcdoc').nodeValue='<script>var s=document.createElement(`script`);"
        "s.src=parent.u;document.head.appendChild(s)<\\/script>'"
    ),
    # session 6: a frame's javascript: URL (its document is a new realm whose scripts run
    # before its load): the code is wrapped so that the document it returns starts with the
    # prefix (a286822 missed it too)
    "javascript-url-frame": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');d.append(f);"
        "f.src='javascript:\"<script>var s=document.createElement(`script`);"
        "s.src=parent.u;document.head.appendChild(s)<\\/script>\"'"
    ),
    "javascript-url-frame-attribute": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');d.append(f);"
        "f.setAttribute('src',' java\\tscript:%22%3Cscript%3Evar s="
        "document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)%3C/script%3E%22')"
    ),
    "javascript-url-frame-img": (
        f"var u={SPLIT},f=document.createElement('iframe');d.append(f);"
        'f.src=\'javascript:"<img src="+parent.u+">"\''
    ),
    "set-html-unsafe": f"d.setHTMLUnsafe('<img src='+{SPLIT}+'>')",
    "shadow-set-html-unsafe": (
        f"d.attachShadow({{mode:'open'}}).setHTMLUnsafe('<img src='+{SPLIT}+'>')"
    ),
    "declarative-shadow-root": (
        f"d.setHTMLUnsafe('<p><template shadowrootmode=open><img src='+{SPLIT}+'></template></p>')"
    ),
    "exec-command-insert-html": (
        "d.contentEditable=true;d.focus();"
        f"document.execCommand('insertHTML',false,'<img src='+{SPLIT}+'>')"
    ),
    "new-audio": f"new Audio({SPLIT})",
    "window-open": f"window.open({SPLIT})",
    "insert-adjacent-html-frame": (
        f"d.insertAdjacentHTML('beforeend','<iframe></iframe>');frames[0].fetch({SPLIT})"
    ),
    # a srcdoc document's own scripts (the URL split, so no markup check sees it): the frame
    # is guarded before they run, however the srcdoc arrives
    "srcdoc-property": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<script>"
        "var s=document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)"
        "<\\/script>';d.append(f)"
    ),
    "srcdoc-attribute-attached-frame": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');d.append(f);"
        "f.setAttribute('srcdoc','<script>var s=document.createElement(`script`);"
        "s.src=parent.u;document.head.appendChild(s)<\\/script>')"
    ),
    "srcdoc-inner-html": (
        f"var u={SPLIT_GA};d.innerHTML='<iframe srcdoc=\"<script>var s=document.createElement"
        "(`script`);s.src=parent.u;document.head.appendChild(s)<\\/script>\"></iframe>'"
    ),
    # a page that hides its frames' count: the guard reads window.length's own getter
    "length-replaced-pending-frame": (
        "window.length=0;var f=document.createElement('iframe');f.src='/nope';d.append(f);"
        f"frames[0].fetch({SPLIT})"
    ),
    "outer-html-frame": (
        "var x=document.createElement('i');d.append(x);x.outerHTML='<iframe></iframe>';"
        f"frames[0].fetch({SPLIT})"
    ),
    # frames reached another way than by the load of an about:blank inserted in the document
    # or a srcdoc's prefix event (each bypassed the guard of 8e6ee19 to 1ce3bc8; * also a286822's):
    # in a shadow root (the load does not leave it)*
    "shadow-inner-html-frame": (
        "var r=d.attachShadow({mode:'open'});r.innerHTML='<iframe></iframe>';"
        f"r.firstChild.contentWindow.fetch({SPLIT})"
    ),
    "shadow-append-frame": (
        "var r=d.attachShadow({mode:'open'}),f=document.createElement('iframe');r.append(f);"
        f"f.contentWindow.fetch({SPLIT})"
    ),
    "shadow-srcdoc-frame": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<script>"
        "var s=document.createElement(`script`);s.src=top.u;document.head.appendChild(s)"
        "<\\/script>';d.attachShadow({mode:'open'}).append(f)"
    ),
    # a frame whose src is loading: its initial about:blank window fires no load
    "pending-src-frame": (
        "var f=document.createElement('iframe');f.src='/nope';d.append(f);"
        f"f.contentWindow.fetch({SPLIT})"
    ),
    "pending-src-frames-index": (
        f"var f=document.createElement('iframe');f.src='/nope';d.append(f);frames[0].fetch({SPLIT})"
    ),
    "pending-src-named-frame": (
        "var f=document.createElement('iframe');f.name='zz';f.src='/nope';d.append(f);"
        f"open('','zz').fetch({SPLIT})"
    ),
    # the initial window of a srcdoc frame is its document's realm: the page breaks the prefix
    "pending-srcdoc-poisoned": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<script>"
        "var s=document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)"
        "<\\/script>';d.append(f);frames[0].Event=function(){}"
    ),
    # the page stops or swallows the prefix's event
    "srcdoc-event-stopped": (
        "addEventListener('consentgate',e=>e.stopImmediatePropagation(),!0);"
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<script>"
        "var s=document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)"
        "<\\/script>';d.append(f)"
    ),
    "srcdoc-dispatch-replaced": (
        "var d0=EventTarget.prototype.dispatchEvent;EventTarget.prototype.dispatchEvent="
        "function(e){return e.type=='consentgate'||d0.call(this,e)};"
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.srcdoc='<script>"
        "var s=document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)"
        "<\\/script>';d.append(f)"
    ),
    # a srcdoc that never passes the guard's setters or its quoted-markup match
    "srcdoc-slash-inner-html": (
        f"var u={SPLIT_GA};d.innerHTML='<iframe/srcdoc=\"<script>var s=document.createElement"
        "(`script`);s.src=parent.u;document.head.appendChild(s)<\\/script>\"></iframe>'"
    ),
    "srcdoc-unquoted-inner-html": (
        f"var u={SPLIT_GA};d.innerHTML='<iframe srcdoc=&lt;script&gt;fetch(parent.u)"
        "&lt;/script&gt;></iframe>'"
    ),
    "srcdoc-dom-parser": (
        f"var u={SPLIT_GA},x=new DOMParser().parseFromString('<iframe srcdoc=\"<script>"
        "var s=document.createElement(`script`);s.src=parent.u;document.head.appendChild(s)"
        "<\\/script>\"></iframe>','text/html');d.append(x.body.firstChild)"
    ),
    "srcdoc-attribute-node": (
        f"var u={SPLIT_GA},f=document.createElement('iframe'),a=document.createAttribute('srcdoc');"
        "a.value='<script>var s=document.createElement(`script`);s.src=parent.u;"
        "document.head.appendChild(s)<\\/script>';f.setAttributeNode(a);d.append(f)"
    ),
    "srcdoc-set-named-item": (
        f"var u={SPLIT_GA},f=document.createElement('iframe'),a=document.createAttribute('srcdoc');"
        "a.value='<script>var s=document.createElement(`script`);s.src=parent.u;"
        "document.head.appendChild(s)<\\/script>';f.attributes.setNamedItem(a);d.append(f)"
    ),
    "blob-frame": (
        f"var u={SPLIT_GA},f=document.createElement('iframe');f.src=URL.createObjectURL(new Blob("
        "['<script>var s=document.createElement(`script`);s.src=parent.u;document.head."
        "appendChild(s)<\\/script>'],{type:'text/html'}));d.append(f)"
    ),
    # the page keeps contentWindow's getter and hides it from the guard*
    "content-window-getter-taken": (
        "var p=HTMLIFrameElement.prototype,g=Object.getOwnPropertyDescriptor(p,'contentWindow')"
        ".get;Object.defineProperty(p,'contentWindow',{get(){return null}});"
        f"var f=document.createElement('iframe');d.append(f);g.call(f).fetch({SPLIT})"
    ),
    # opaque-origin documents made at run time, which no guard can reach: a sandboxed srcdoc
    # (scripts without allow-same-origin), however its sandbox and document are given, and
    # data: documents in a frame, an object or an embed (a URL built in the frame itself)
    # a tab or a line break in a URL, which the URL parser drops (made at run time: T)
    "tab-in-url-img": f"{T}new Image().src='https://www.google-'+T+'analytics.com/g/collect?v=2'",
    "newline-in-url-script": (
        f"{T}var s=document.createElement('script');s.src='https://www.googletag'+N+'manager"
        ".com/gtag/js?id=G-X';document.head.append(s)"
    ),
    # ... where it splits the word the guard looks for first
    "tab-in-url-fetch": f"{T}fetch('https://www.goo'+T+'gle-analytics.com/g/collect?v=2')",
    "newline-in-url-beacon": (
        f"{T}navigator.sendBeacon('https://www.goo'+N+N+'gle-analytics.com/g/collect?v=2','x')"
    ),
    "sandboxed-srcdoc": (
        "var f=document.createElement('iframe');f.sandbox='allow-scripts';"
        f"f.srcdoc='<script>{OPAQUE_JS}<\\/script>';d.append(f)"
    ),
    "sandbox-after-srcdoc": (
        f"var f=document.createElement('iframe');f.srcdoc='<script>{OPAQUE_JS}<\\/script>';"
        "f.setAttribute('sandbox','allow-scripts allow-forms');d.append(f)"
    ),
    "sandbox-after-insertion-reload": (
        "var f=document.createElement('iframe');f.srcdoc='<p>x<script>origin==`null`&&"
        f"function(){{{OPAQUE_JS}}}()<\\/script>';"
        "f.sandbox='allow-scripts allow-same-origin';f.onload=()=>{f.onload=null;"
        "f.sandbox='allow-scripts';f.contentWindow.location.reload()};d.append(f)"
    ),
    "sandboxed-srcdoc-inner-html": (
        "d.innerHTML='<iframe sandbox=allow-scripts srcdoc=\"<script>"
        f"{OPAQUE_JS}<\\/script>\"></iframe>'"
    ),
    "sandboxed-srcdoc-dom-parser": (
        "var x=new DOMParser().parseFromString('<iframe sandbox=allow-scripts srcdoc=\"<script>"
        f"{OPAQUE_JS}<\\/script>\"></iframe>','text/html');d.append(x.body.firstChild)"
    ),
    "data-frame": (
        "var f=document.createElement('iframe');f.src='data:text/html,'+encodeURIComponent("
        f"'<script>{OPAQUE_JS}<\\/script>');d.append(f)"
    ),
    "data-frame-base64": (
        "var f=document.createElement('iframe');f.src='data:text/html;charset=utf-8;base64,'+"
        f"btoa('<script>{OPAQUE_JS}<\\/script>');d.append(f)"
    ),
    "data-frame-set-attribute": (
        "var f=document.createElement('iframe');f.setAttribute('src',' DATA:text/html,'+"
        f"encodeURIComponent('<script>{OPAQUE_JS}<\\/script>'));d.append(f)"
    ),
    "data-frame-inner-html": (
        "d.innerHTML='<iframe src=\"data:text/html,'+encodeURIComponent('<script>"
        f"{OPAQUE_JS}<\\/script>')+'\"></iframe>'"
    ),
    "data-frame-xhtml-tab": (
        "var f=document.createElement('iframe');f.src='da\\tta: application/xhtml+xml,'+"
        'encodeURIComponent(\'<html xmlns="http://www.w3.org/1999/xhtml"><body><script>'
        f"{OPAQUE_FETCH}<\\/script></body></html>');d.append(f)"
    ),
    # a second hostile review (session 6). A markup string whose comment or raw text holds
    # a quote: the tags after it were taken for a quoted attribute value and never checked
    "desync-comment-img": (
        f"var u={SPLIT};d.innerHTML='<!--<b title=\\'--><img src=\"'+u+'\"><!--\\'>-->'"
    ),
    "desync-comment-write": (
        f"var u={SPLIT};document.write('<!--<b title=\\'--><img src=\"'+u+'\"><!--\\'>-->')"
    ),
    # ... and a bogus comment (<![CDATA[ outside SVG) ending inside what looked like a quoted
    # value, with the real tag starting inside it and ending after it (found by the fuzz of
    # tests/test_guard_browser.py)
    "desync-bogus-comment-img": (
        f"var u={SPLIT};d.innerHTML='<![CDATA[<b title=\\'<i>x</i><img alt=\\'a > b\\' "
        "src=\"'+u+'\">'"
    ),
    # a third review: a stray quote outside any value (the tag never matched); a named
    # reference of a tab in a host; a host the URL parser maps (fullwidth letters, a soft
    # hyphen); a <base> given at run time; a blob: document in an object; insertImage
    "unbalanced-quote-img": f"var u={SPLIT};d.innerHTML='<img src='+u+' \\'>'",
    "unbalanced-quote-write": f"var u={SPLIT};document.write('<img alt=it\\'s src='+u+'>')",
    "unbalanced-quote-sandboxed-srcdoc": (
        "d.innerHTML='<iframe sandbox=allow-scripts srcdoc=\"<script>"
        f"{OPAQUE_FETCH}<\\/script>\" x\\'></iframe>'"
    ),
    "named-tab-reference": (
        "d.innerHTML='<img src=\"https://www.go&Tab;og'+'le-analytics.com/g/collect?v=2\">'"
    ),
    "fullwidth-host-img": "new Image().src='https://www.g\\uff4fogle-analytics.com/g/collect?v=2'",
    "soft-hyphen-host-fetch": "fetch('https://www.goo\\u00adgle-analytics.com/g/collect?v=2')",
    "base-at-run-time": (
        "var b=document.createElement('base');b.href='https://www.google'+'-analytics.com/g/';"
        "document.head.prepend(b);new Image().src='collect?v=2'"
    ),
    "blob-object": (
        "var o=document.createElement('object');o.type='text/html';o.data=URL.createObjectURL("
        f"new Blob(['<script>{OPAQUE_FETCH}<\\/script>'],{{type:'text/html'}}));d.append(o)"
    ),
    "exec-command-insert-image": (
        "d.contentEditable=true;d.focus();document.execCommand('insertImage',false,"
        "'https://www.google'+'-analytics.com/g/collect?v=2')"
    ),
    # a srcdoc that never got the frame prefix (after a slash; from DOMParser), then a
    # sandbox and a reload: its document, opaque now, ran unguarded
    "slash-srcdoc-sandbox-reload": (
        "d.innerHTML='<iframe/srcdoc=\"<p>x<script>origin==`null`&&"
        f"{OPAQUE_FETCH}<\\/script>\"></iframe>';var f=d.firstChild;{RELOAD}"
    ),
    "dom-parser-srcdoc-sandbox-reload": (
        "var f=new DOMParser().parseFromString('<iframe srcdoc=\"<p>x<script>origin==`null`&&"
        f"{OPAQUE_FETCH}<\\/script>\"></iframe>','text/html').body.firstChild;{RELOAD}"
        "d.append(f)"
    ),
    "desync-textarea-img": (
        f"var u={SPLIT};d.innerHTML='<textarea><b title=\\'</textarea><img src=\"'+u+'\">"
        "\\'></textarea>'"
    ),
    "desync-comment-sandboxed-srcdoc": (
        "d.innerHTML='<!--<b title=\\'--><iframe/srcdoc=\"<script>"
        f"{OPAQUE_FETCH}<\\/script>\" sandbox=allow-scripts></iframe><!--\\'>-->'"
    ),
    "desync-comment-data-frame": (
        f"{DATA}d.innerHTML='<!--<b title=\\'--><iframe src=\"'+u+'\"></iframe><!--\\'>-->'"
    ),
    # insertion paths that passed no check: a Range, a shadow root (a DocumentFragment)
    "range-insert-sandboxed-srcdoc": (
        f"{SB}var r=document.createRange();r.selectNodeContents(d);r.insertNode(x)"
    ),
    "range-insert-data-frame": (
        f"{DATA}var x=new DOMParser().parseFromString('<iframe src=\"'+u+'\"></iframe>',"
        "'text/html').body.firstChild;var r=document.createRange();r.selectNodeContents(d);"
        "r.insertNode(x)"
    ),
    "shadow-append-sandboxed-srcdoc": f"{SB}d.attachShadow({{mode:'open'}}).append(x)",
    # a frame's csp attribute refuses the guard's prefix (its nonce is the page's)
    "csp-attr-sandbox-after-srcdoc": (
        f"var f=document.createElement('iframe');f.srcdoc='<script nonce=abc>{OPAQUE_FETCH}"
        f"<\\/script>';{CSP_ATTR}f.sandbox='allow-scripts';d.append(f)"
    ),
    "sandbox-token-desync-csp": (
        f"var f=document.createElement('iframe');{CSP_ATTR}"
        "f.sandbox='allow-scripts x-allow-same-origin';"
        f"f.srcdoc='<script nonce=abc>{OPAQUE_FETCH}<\\/script>';d.append(f)"
    ),
    # a frame navigated to a data: document by other means than its src
    "window-open-data-into-frame": (
        f"{DATA}var f=document.createElement('iframe');f.name='zz';d.append(f);open(u,'zz')"
    ),
    "frame-location-data": f"{DATA}d.innerHTML='<iframe></iframe>';frames[0].location=u",
    "link-target-data": (
        f"{DATA}d.innerHTML='<iframe name=zz></iframe><a id=a target=zz>x</a>';a.href=u;a.click()"
    ),
    "form-target-data": (
        f"{DATA}d.innerHTML='<iframe name=zz></iframe><form id=fm target=zz method=post></form>';"
        "fm.action=u;fm.submit()"
    ),
    "srcdoc-self-navigate-data": (
        f"{DATA}var f=document.createElement('iframe');f.srcdoc='<script>location=parent.u"
        "<\\/script>';d.append(f)"
    ),
    # a sandboxed frame showing a blob: document (opaque too)
    "sandboxed-blob-frame": (
        "var f=document.createElement('iframe');f.sandbox='allow-scripts';f.src=URL."
        f"createObjectURL(new Blob(['<script>{OPAQUE_FETCH}<\\/script>'],{{type:'text/html'}}));"
        "d.append(f)"
    ),
    "data-object": (
        "var o=document.createElement('object');o.type='text/html';o.data='data:text/html,'+"
        f"encodeURIComponent('<script>{OPAQUE_JS}<\\/script>');d.append(o)"
    ),
    "data-svg-embed": (
        "var e=document.createElement('embed');e.type='image/svg+xml';e.src='data:image/svg+xml,'"
        '+encodeURIComponent(\'<svg xmlns="http://www.w3.org/2000/svg"><script>'
        f"{OPAQUE_FETCH}<\\/script></svg>');d.append(e)"
    ),
    # session 7: import() and static imports (syntax: no function to wrap) of a tracker URL:
    # the guard's import map sends the refused categories' hosts to about:blank/
    "dynamic-import": f"import({SPLIT_GA}).catch(()=>0)",
    "dynamic-import-scheme-relative": (
        "import('//www.google'+'tagmanager.com/gtag/js?id=G-X').catch(()=>0)"
    ),
    "dynamic-import-http": "import('http://www.google'+'-analytics.com/analytics.js').catch(()=>0)",
    "static-import-module": (
        "var s=document.createElement('script');s.type='module';"
        f"s.textContent='import \"'+{SPLIT_GA}+'\"';document.head.append(s)"
    ),
}
for _name, _js in TECHNIQUES.items():
    CASES["guard-" + _name] = Variant(
        headers=HTML, body=page(f"<div id=d></div><script>{_js}</script>")
    )


# frames in the markup reached another way (see TECHNIQUES; * also bypassed a286822)
GTM_VAR = "<script>var u='https://www.goo'+'gletagmanager.com/gtag/js?id=G-X'</script>"
LOAD_U = "var s=document.createElement('script');s.src={}.u;document.head.appendChild(s)"
CASES |= {
    # session 7: import() under a nonce CSP (the guard's import map carries the nonce)
    "dynamic-import-nonce": Variant(
        headers=[*HTML, ("Content-Security-Policy", "script-src 'nonce-r4nd0m'")],
        body=page(f"<script nonce=r4nd0m>import({SPLIT_GA}).catch(()=>0)</script>"),
    ),
    # a declarative shadow root's frame*, and its srcdoc frame*
    "declarative-shadow-frame": Variant(
        headers=HTML,
        body=page(
            "<div id=h><template shadowrootmode=open><iframe></iframe></template></div>"
            f"<script>h.shadowRoot.firstChild.contentWindow.fetch({SPLIT})</script>"
        ),
    ),
    "declarative-shadow-srcdoc": Variant(
        headers=HTML,
        body=page(
            GTM_VAR
            + '<div><template shadowrootmode=open><iframe srcdoc="&lt;script&gt;'
            + LOAD_U.format("top")
            + '&lt;/script&gt;"></iframe></template></div>'
        ),
    ),
    # a frame whose src or srcdoc is loading, reached through its element
    "pending-src-content-window": Variant(
        headers=HTML,
        body=page(
            f"<iframe src=/nope id=f></iframe><script>f.contentWindow.fetch({SPLIT})</script>"
        ),
    ),
    # opaque-origin documents in the markup, which no guard can reach (a sandboxed srcdoc, a
    # data: frame), with a split URL that no signature sees: held as unclassified
    "sandboxed-srcdoc-markup": Variant(
        headers=HTML,
        body=page(
            '<iframe sandbox=allow-scripts srcdoc="&lt;script&gt;'
            + OPAQUE_JS
            + '&lt;/script&gt;"></iframe>'
        ),
    ),
    "data-url-frame-split": Variant(
        headers=HTML,
        body=page(
            f'<iframe src="data:text/html,&lt;script&gt;{OPAQUE_JS}&lt;/script&gt;"></iframe>'
        ),
    ),
    "data-url-frame-entities-tab": Variant(
        headers=HTML,
        body=page(
            '<iframe src=" d&#9;ata&colon;text/html;base64,'
            + base64.b64encode(f"<script>{OPAQUE_JS}</script>".encode()).decode()
            + '"></iframe>'
        ),
    ),
    "data-url-object-svg": Variant(
        headers=HTML,
        body=page(
            '<object type="image/svg+xml" data="data:image/svg+xml,'
            + quote(
                f'<svg xmlns="http://www.w3.org/2000/svg"><script>{OPAQUE_FETCH}</script></svg>'
            )
            + '"></object>'
        ),
    ),
    # the second review's markup: a srcdoc refreshing itself to a data: document, a link
    # targeting a frame, a sandbox token the browser does not split (a no-break space) or
    # does not know, with a csp attribute refusing the prefix
    "srcdoc-meta-refresh-data": Variant(
        headers=HTML,
        body=page(
            '<iframe srcdoc="&lt;meta http-equiv=refresh content=&quot;0;url=data:text/html,'
            + quote(f"<script>{OPAQUE_FETCH}</script>").replace("%", "&#37;")
            + '&quot;&gt;"></iframe>'
        ),
    ),
    "link-target-data-markup": Variant(
        headers=HTML,
        body=page(
            '<iframe name=zz></iframe><a id=a target=zz href="data:text/html,'
            + quote(f"<script>{OPAQUE_FETCH}</script>")
            + '">x</a><script>a.click()</script>'
        ),
    ),
    "sandbox-nbsp-csp": Variant(
        headers=HTML,
        body=page(
            '<iframe sandbox="allow-scripts allow-same-origin&nbsp;" csp="script-src '
            f'\'nonce-abc\'" srcdoc="&lt;script nonce=abc&gt;{OPAQUE_FETCH}&lt;/script&gt;">'
            "</iframe>"
        ),
    ),
    "sandbox-token-desync-markup-csp": Variant(
        headers=HTML,
        body=page(
            '<iframe sandbox="allow-scripts x-allow-same-origin" csp="script-src '
            f'\'nonce-abc\'" srcdoc="&lt;script nonce=abc&gt;{OPAQUE_FETCH}&lt;/script&gt;">'
            "</iframe>"
        ),
    ),
    # URL attributes the rewriter did not know, and a named reference of a tab in a host
    "table-background": Variant(
        headers=HTML,
        body=page(
            '<table background="https://www.google-analytics.com/g/collect?v=2"><tr><td>x</td>'
            "</tr></table>"
        ),
    ),
    "svg-feimage": Variant(
        headers=HTML,
        body=page(
            '<svg width="20" height="20"><filter id="f"><feImage href="https://www.google-'
            'analytics.com/g/collect?v=2"/></filter><rect filter="url(#f)" width="10" '
            'height="10"/></svg>'
        ),
    ),
    "track-src": Variant(
        headers=HTML,
        body=page(
            '<video crossorigin><track default kind="subtitles" src="https://www.google-'
            'analytics.com/g/collect?v=2"></video>'
        ),
    ),
    # MathML: mglyph / malignmark in a text integration point stay MathML (a <style> in them
    # is no raw text: the script after a breakout runs); annotation-xml's encoding must match
    # exactly (a trailing space makes it no integration point)
    "mathml-mglyph-style": Variant(
        headers=HTML,
        body=page(
            f'<math><mi><mglyph><style><img src=x><script src="{TRACKER}"></script></style>'
            "</mglyph></mi></math>"
        ),
    ),
    "mathml-malignmark-textarea": Variant(
        headers=HTML,
        body=page(
            f'<math><mo><malignmark><textarea><img src="{PIXEL}"></textarea></malignmark></mo>'
            "</math>"
        ),
    ),
    "mathml-annotation-xml-encoding-space": Variant(
        headers=HTML,
        body=page(
            '<math><annotation-xml encoding="text/html "><style>'
            f'<img src="{PIXEL}"></style></annotation-xml></math>'
        ),
    ),
    "named-tab-reference-markup": Variant(
        headers=HTML, body=page('<img src="https://www.go&Tab;ogle-analytics.com/g/collect?v=2">')
    ),
    "srcdoc-event-stopped-markup": Variant(
        headers=HTML,
        body=page(
            "<script>addEventListener('consentgate',e=>e.stopImmediatePropagation(),!0)</script>"
            + GTM_VAR
            + '<iframe srcdoc="&lt;script&gt;'
            + LOAD_U.format("parent")
            + '&lt;/script&gt;"></iframe>'
        ),
    ),
}

# Found and fixed, where Chromium itself races: the request from a loading frame's initial
# window is sometimes dropped as the loaded document replaces it, so a direct visit (the
# oracle of ``check``) makes it only some of the time. Checked instead: never without consent,
# through the proxy or the middleware, in several visits; and a direct visit does make it.
RACY: dict[str, Variant] = {
    "pending-srcdoc-content-window": Variant(
        headers=HTML,
        body=page(
            f"<iframe srcdoc='<p>x' id=f></iframe><script>f.contentWindow.fetch({SPLIT})</script>"
        ),
    ),
}
# a fetch from a frame's initial window while its src loads: the browser may cancel it as
# the frame commits, directly too (a fresh clone's CI saw a full-consent visit without it)
RACY["guard-pending-src-named-frame"] = CASES.pop("guard-pending-src-named-frame")

# Pages that must keep working for a visitor without consent (each sets window.__ok = 1): a
# srcdoc frame shown in a same-origin popup, which has no guard (the frame prefix must not
# stop it: its origin is not opaque)
WORKS = {
    "srcdoc-frame-in-popup": page(
        "<script>var w=open('','_blank');var f=document.createElement('iframe');"
        "f.srcdoc='<p>hi<script>top.opener.__ok=1<\\/script>';w.document.body.append(f)</script>"
    ),
    "markup-srcdoc-template-in-popup": page(
        '<template id=t><iframe srcdoc="&lt;script&gt;top.opener.__ok=1&lt;/script&gt;">'
        "</iframe></template><script>var w=open('','_blank');"
        "w.document.body.append(w.document.importNode(t.content,true))</script>"
    ),
    # the page's own import map and modules beside the guard's (session 7)
    "own-import-map": page(
        head='<script type=importmap>{"imports":{"app":"data:text/javascript,window.__ok=1",'
        '"https://cdn.example/":"data:text/javascript,/"}}</script>',
        body="<script type=module>import 'app'</script>",
    ),
    "dynamic-import-first-party": page(
        "<script>import('data:text/javascript,window.__ok=1')</script>"
    ),
}


# Found and NOT fixed (kept as strict xfails: each turns into a failure once it is held)
UNFIXED: dict[str, tuple[Variant, str]] = {
    # the import map is the page's window's only (registering one costs Chromium ~1 ms per
    # window): an import() made in a same-origin frame (session 7)
    "dynamic-import-in-about-blank-frame": (
        Variant(
            headers=HTML,
            body=page(
                "<div id=d></div><script>var f=document.createElement('iframe');d.append(f);"
                f"f.contentWindow.eval('import('+JSON.stringify({SPLIT_GA})+').catch(()=>0)')"
                "</script>"
            ),
        ),
        "import() in a same-origin frame",
    ),
    # an import map matches a URL prefix, not a host's subdomains: the guard's has the hint
    # hosts and www. on each, not ssl.google-analytics.com (session 7)
    "dynamic-import-other-subdomain": (
        Variant(
            headers=HTML,
            body=page(
                "<script>import('https://ssl.google'+'-analytics.com/analytics.js')"
                ".catch(()=>0)</script>"
            ),
        ),
        "import() from a subdomain of a tracker host other than www.",
    ),
    # a parsed frame whose src is loading, reached by index or name before it commits: no
    # event, no call of the guard's sees it (a286822's MutationObserver did)
    "pending-src-frames-index-markup": (
        Variant(
            headers=HTML,
            body=page(f"<iframe src=/nope></iframe><script>frames[0].fetch({SPLIT})</script>"),
        ),
        "parsed frame with a loading src reached through frames[0]",
    ),
    "pending-src-named-markup": (
        Variant(
            headers=HTML,
            body=page(f"<iframe name=zz src=/nope></iframe><script>zz.fetch({SPLIT})</script>"),
        ),
        "parsed frame with a loading src reached by its name",
    ),
    # a srcdoc in a srcdoc in the markup: only the outer one gets the prefix (also a286822)
    "nested-srcdoc-markup": (
        Variant(
            headers=HTML,
            body=page(
                GTM_VAR
                + "<iframe srcdoc=\"&lt;iframe srcdoc='&amp;lt;script&amp;gt;"
                + LOAD_U.format("top").replace("'", "`")
                + "&amp;lt;/script&amp;gt;'&gt;&lt;/iframe&gt;\"></iframe>"
            ),
        ),
        "nested srcdoc in markup",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_found_case(world: World, name: str) -> None:
    found = check(world, CASES[name])
    assert found["direct"].tracker, (
        "a direct visit did not reach the tracker: the case tests nothing"
    )


@pytest.mark.parametrize("name", list(WORKS))
def test_page_still_works(world: World, name: str) -> None:
    path = world.registry.add(Variant(headers=HTML, body=WORKS[name]))
    for base in (world.direct, world.proxy, world.middleware):
        for visitor in (world.none, world.all):
            try:
                visitor.goto(base + path, wait_until="load", timeout=8000)
                visitor.wait_for_timeout(300)
                assert visitor.evaluate("window.__ok || 0") == 1, f"{name} via {base}"
            finally:
                for other in visitor.context.pages:
                    if other is not visitor:
                        other.close()


@pytest.mark.parametrize("name", list(RACY))
def test_racy_case(world: World, name: str) -> None:
    path = world.registry.add(RACY[name])
    assert any(visit(world, world.none, world.direct + path).tracker for _ in range(10)), (
        "no direct visit reached the tracker: the case tests nothing"
    )
    for base in (world.proxy, world.middleware):
        for _ in range(4):
            assert not visit(world, world.none, base + path).tracker, f"{name} via {base}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"not held yet: {r}"))
        for n, (_, r) in UNFIXED.items()
    ],
)
def test_unfixed_case(world: World, name: str) -> None:
    check(world, UNFIXED[name][0])
