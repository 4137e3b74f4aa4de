"""The built-in demo site: what ``consentgate serve`` shows with no config and no upstream.

Pages:

- ``/``        the canonical GA4 (gtag.js), Google Tag Manager (+ noscript iframe) and Meta
               Pixel (+ noscript img) snippets and a YouTube embed, exactly as the vendors
               publish them: consentgate's rewriter blocks them server-side.
- ``/marked``  script-tag mode: elements marked by hand (``type="text/plain"`` with
               ``data-consent``, Cookiebot's ``data-cookieconsent``, vanilla-cookieconsent's
               ``data-category``) under a nonce-based Content-Security-Policy.
- ``/privacy`` a privacy page with the cookie declaration (``/_consent/declaration.js``).

Every page carries a ``data-consentgate-open`` link; the banner's floating control is on
every page too.
"""

from __future__ import annotations

import secrets

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .visit import Runtime

__all__ = ["GA4_ID", "GTM_ID", "PIXEL_ID", "demo_app", "render"]

GA4_ID = "G-DEMO000000"
GTM_ID = "GTM-DEMO000"
PIXEL_ID = "000000000000000"
YOUTUBE = "https://www.youtube.com/embed/M7lc1UVf-VE"

GA4 = f"""<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id={GA4_ID}"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){{dataLayer.push(arguments);}}
  gtag('js', new Date());

  gtag('config', '{GA4_ID}');
</script>"""

GTM_HEAD = f"""<!-- Google Tag Manager -->
<script>(function(w,d,s,l,i){{w[l]=w[l]||[];w[l].push({{'gtm.start':
new Date().getTime(),event:'gtm.js'}});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);
}})(window,document,'script','dataLayer','{GTM_ID}');</script>
<!-- End Google Tag Manager -->"""

GTM_BODY = f"""<!-- Google Tag Manager (noscript) -->
<noscript><iframe src="https://www.googletagmanager.com/ns.html?id={GTM_ID}"
height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>
<!-- End Google Tag Manager (noscript) -->"""

PIXEL = f"""<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s)
{{if(f.fbq)return;n=f.fbq=function(){{n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)}};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}}(window, document,'script',
'https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '{PIXEL_ID}');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none"
src="https://www.facebook.com/tr?id={PIXEL_ID}&ev=PageView&noscript=1"
/></noscript>
<!-- End Meta Pixel Code -->"""

YOUTUBE_EMBED = (
    f'<iframe width="560" height="315" src="{YOUTUBE}" title="YouTube video player" '
    'frameborder="0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; '
    'gyroscope; picture-in-picture; web-share" referrerpolicy="strict-origin-when-cross-origin" '
    "allowfullscreen></iframe>"
)

STYLE = """<style>
body{font:17px/1.6 system-ui,sans-serif;max-width:48rem;margin:0 auto;padding:1rem 1.5rem 6rem;
color:#1b1b1b}
nav a{margin-inline-end:1rem}
iframe{max-width:100%}
.consentgate-declaration{border-collapse:collapse;font-size:.9rem}
.consentgate-declaration th,.consentgate-declaration td{border:1px solid #999;padding:.3rem;
text-align:start;vertical-align:top}
</style>"""

NAV = (
    '<nav><a href="/">Home</a><a href="/marked">Marked by hand</a>'
    '<a href="/privacy">Privacy policy</a>'
    '<a href="#" data-consentgate-open>Cookie settings</a></nav>'
)


def _page(title: str, head: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} · consentgate demo</title>\n{STYLE}\n{head}\n</head>\n<body>\n"
        f"<header>{NAV}</header>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )


def home() -> str:
    body = f"""{GTM_BODY}
<p>This page carries the snippets exactly as Google and Meta publish them: Google Analytics 4,
Google Tag Manager, the Meta Pixel and a YouTube embed. consentgate rewrites the page on its way
out, so none of them loads, runs or sets a cookie until you agree to its category.</p>
<h2>A video</h2>
{YOUTUBE_EMBED}
<p>Change your choice at any time with the round button in the corner or
<button type="button" data-consentgate-open>open the cookie settings</button>.</p>
{PIXEL}"""
    return _page("consentgate demo", f"{GA4}\n{GTM_HEAD}", body)


def marked(nonce: str) -> str:
    """Script-tag mode: markup a site writes by hand; the banner activates it on consent."""
    n = f'nonce="{nonce}"'
    head = f"""<script type="text/plain" data-consent="statistics" {n}
 src="https://www.googletagmanager.com/gtag/js?id={GA4_ID}" async></script>
<script type="text/plain" data-consent="statistics" {n}>
  window.dataLayer = window.dataLayer || [];
  function gtag(){{dataLayer.push(arguments);}}
  gtag('js', new Date());
  gtag('config', '{GA4_ID}');
  (window.__demoOrder = window.__demoOrder || []).push('ga-inline');
</script>"""
    body = f"""<p>Elements marked by hand, as a site using the one-tag embed would write them.
This page sends a nonce-based Content-Security-Policy: activated scripts keep their nonce.</p>
<script type="text/plain" data-cookieconsent="statistics" {n}>
  (window.__demoOrder = window.__demoOrder || []).push('cookiebot-statistics');
</script>
<script type="text/plain" data-category="analytics" {n}>
  (window.__demoOrder = window.__demoOrder || []).push('vanilla-analytics');
</script>
<script type="text/plain" data-consent="marketing" {n}>
  (window.__demoOrder = window.__demoOrder || []).push('marketing');
</script>
<script type="text/plain" data-consent="statistics, marketing" {n}>
  (window.__demoOrder = window.__demoOrder || []).push('statistics+marketing');
</script>
<iframe data-consent="marketing" data-consentgate-src="{YOUTUBE}" width="560" height="315"
 title="YouTube video player" allowfullscreen></iframe>"""
    return _page("Marked by hand", head, body)


def privacy(prefix: str) -> str:
    body = f"""<p>We only use cookies that are necessary for this site to work, unless you agree to
more. You can change or withdraw your consent at any time:
<button type="button" data-consentgate-open>cookie settings</button>.</p>
<h2>Your rights</h2>
<p>You may ask for access to, correction of, erasure or portability of your personal data, and
withdraw your consent at any time. Your consent ID is shown in the cookie settings.</p>
<h2>Cookies</h2>
<div data-consentgate-declaration></div>
<script src="{prefix}/declaration.js" async></script>"""
    return _page("Privacy policy", "", body)


def render(path: str, prefix: str = "/_consent", nonce: str = "") -> str | None:
    """The demo page at ``path``, or None when there is none."""
    if path in ("/", "/index.html"):
        return home()
    if path == "/marked":
        return marked(nonce or secrets.token_urlsafe(12))
    if path == "/privacy":
        return privacy(prefix)
    return None


def demo_app(runtime: Runtime) -> ASGIApp:
    """The demo as an ASGI app; ``site.py`` wraps it in the rewriting middleware, which
    blocks the trackers and injects the banner."""
    prefix = runtime.settings.prefix

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        nonce = secrets.token_urlsafe(12)
        page = render(path, prefix, nonce)
        headers = {"Cache-Control": "no-store"}
        if path == "/marked":
            headers["Content-Security-Policy"] = (
                f"script-src 'self' 'nonce-{nonce}' https://www.googletagmanager.com; "
                "object-src 'none'; base-uri 'self'"
            )
        if page is None:
            text = _page("Not found", "", '<p>No such page. <a href="/">Home</a></p>')
            response = HTMLResponse(text, status_code=404, headers=headers)
        else:
            response = HTMLResponse(page, headers=headers)
        await response(scope, receive, send)

    return app
