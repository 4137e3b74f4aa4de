"""A small shop upstream for the region tests: a real uvicorn on loopback serving one
page with the canonical GA4 and Meta Pixel snippets, a YouTube embed, and cookies of
three categories (``PHPSESSID`` necessary, ``_ga`` statistics, ``_fbp`` marketing)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests import support

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-TEST12345"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-TEST12345');
</script>
<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s)
{if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}(window, document,'script',
'https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '123456789012345');
fbq('track', 'PageView');
</script>
</head>
<body>
<h1>Shop</h1>
<iframe width="560" height="315" src="https://www.youtube.com/embed/M7lc1UVf-VE"
 title="Video"></iframe>
</body></html>
"""

COOKIES = (
    "PHPSESSID=s3ss10n; Path=/; HttpOnly",
    "_ga=GA1.1.111.222; Path=/; Max-Age=63072000",
    "_fbp=fb.1.111.222; Path=/; Max-Age=7776000",
)


async def _page(request: Request) -> HTMLResponse:
    response = HTMLResponse(PAGE)
    for value in COOKIES:
        response.headers.append("set-cookie", value)
    return response


TRACKERS = frozenset({"ga-loader", "ga-config", "meta-pixel", "youtube"})


class Elements(HTMLParser):
    """Tracker elements of a page and whether each is active (would run or load)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.active: dict[str, bool] = {}
        self.banner: dict[str, str | None] | None = None
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "iframe" and "youtube" in (a.get("src") or a.get("data-consentgate-src") or ""):
            self.active["youtube"] = bool(a.get("src"))
        if tag == "script":
            self._script = a
            src = a.get("src") or ""
            if "googletagmanager.com/gtag/js" in src:
                self.active["ga-loader"] = a.get("type") != "text/plain"
            if "/banner.js" in src:
                self.banner = a

    def handle_data(self, data: str) -> None:
        if self._script is None:
            return
        running = self._script.get("type") != "text/plain"
        if "gtag('config'" in data:
            self.active["ga-config"] = running
        if "fbq('init'" in data:
            self.active["meta-pixel"] = running

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


def shop_app() -> Starlette:
    return Starlette(routes=[Route("/", _page), Route("/shop", _page)])


@contextlib.contextmanager
def shop_upstream() -> Iterator[str]:
    app = shop_app()
    port = support.free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the shop upstream did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def write_config(path: Path, upstream: str, trusted: list[str], geoip: Path | None = None) -> Path:
    """A config whose site proxies ``upstream`` and believes CF-style region headers
    from ``trusted`` peers (and looks addresses up in ``geoip``, if given)."""
    quoted = ", ".join(f'"{t}"' for t in trusted)
    database = f'geoip_database = "{geoip}"' if geoip else ""
    path.write_text(
        f"""[server]
{database}
region_header = "CF-IPCountry"
subdivision_header = "CF-Region-Code"
trusted_proxies = [{quoted}]

[[sites]]
id = "shop"
upstream = "{upstream}"
cookies = [
  {{ name = "PHPSESSID", category = "necessary" }},
  {{ name = "_ga", category = "statistics" }},
  {{ name = "_fbp", category = "marketing" }},
]
"""
    )
    return path


@contextlib.contextmanager
def shop_proxy(
    tmp: Path, upstream: str, trusted: list[str], env: dict[str, str], geoip: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """A real ``consentgate serve`` in front of ``upstream`` (config and data under
    ``tmp``); yields its base URL and the config file."""
    config = write_config(tmp / "consentgate.toml", upstream, trusted, geoip)
    args = ("--config", str(config), "--data-dir", str(tmp / "data"))
    with support.consentgate_server(*args, env=env) as (base, _proc):
        yield base, config
