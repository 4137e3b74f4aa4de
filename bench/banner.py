"""What the banner costs a first-time visitor: bytes (gzip -9, brotli 11) and the time from
navigation start to the banner on screen in headless Chromium, next to the anchors.

    python3 bench/banner.py [--runs 15] [--no-anchors]
    python3 bench/banner.py --budget    # issue 16's byte budget only (no browser, no npm)

Bytes: consentgate's ``banner.js`` as served (code + CSS + first-layer texts + cookie
deletion patterns, one file), the inline head snippet, and the second layer's
``banner.json`` (fetched only when a visitor opens the settings), per language. Anchors
measured in the same run from the packages on the npm registry (``npm pack`` into
``bench/.cache``): Osano cookieconsent 3 (``build/cookieconsent.min.{js,css}``) and
vanilla-cookieconsent 3 (``dist/cookieconsent.umd.js`` + ``dist/cookieconsent.css``).
Silktide, tarteaucitron and Klaro are quoted from PRODUCT.md.

Time: a real ``consentgate serve`` with the demo page (GA4, GTM, Meta Pixel, YouTube; every
third-party request answered locally, empty) and, for vanilla-cookieconsent, a static page
with its files and a minimal config served from loopback. Each run is a fresh browser
context (cold cache); "visible" is the first animation frame after the banner's dialog is
in the DOM, read from ``performance.now()`` (= time since navigation start), with
``prefers-reduced-motion`` so no fade-in is counted.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import brotli

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from consentgate.banner import assets as banner_assets  # noqa: E402
from consentgate.config import load_settings  # noqa: E402
from consentgate.consent import ConsentCodec  # noqa: E402
from consentgate.guard import guard_script  # noqa: E402
from consentgate.injection import head_snippet_for  # noqa: E402
from consentgate.metrics import Metrics  # noqa: E402
from consentgate.regions import UNKNOWN, decide  # noqa: E402
from consentgate.visit import Runtime  # noqa: E402

CACHE = REPO / "bench" / ".cache"
ANCHORS = {
    "Osano cookieconsent 3.1.1": (
        "cookieconsent@3.1.1",
        ["package/build/cookieconsent.min.js", "package/build/cookieconsent.min.css"],
    ),
    "vanilla-cookieconsent 3.1.0": (
        "vanilla-cookieconsent@3.1.0",
        ["package/dist/cookieconsent.umd.js", "package/dist/cookieconsent.css"],
    ),
}
QUOTED = {  # PRODUCT.md, gzip -9 of JS+CSS
    "Osano cookieconsent": 8.1,
    "Silktide": 7.4,
    "vanilla-cookieconsent": 15.5,
    "tarteaucitron": 60.0,
    "Klaro": 68.9,
}
VISIBLE = """
window.__bannerAt = null;
(function poll() {
  const q = () => {
    const h = document.querySelector('#consentgate');
    if (h && h.shadowRoot && h.shadowRoot.querySelector('.b')) return true;
    return !!document.querySelector('#cc-main .cm, .cc-window');
  };
  if (q()) requestAnimationFrame(() => { window.__bannerAt = performance.now(); });
  else requestAnimationFrame(poll);
})();
"""


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def sizes(data: bytes) -> tuple[int, int, int]:
    return len(data), len(gzip.compress(data, 9)), len(brotli.compress(data, quality=11))


def consentgate_bytes() -> list[tuple[str, int, int, int]]:
    """Per language: the proxy-mode first visit (the inline head snippet: runtime guard,
    Consent Mode defaults, banner tag; and the ``banner.js`` it links, without the guard,
    for the site's default regime, here opt-in) and its total, script-tag mode's
    ``banner.js`` (the guard first, both views' texts, no snippet), the on-demand
    ``banner.json``; and the runtime guard alone (code and the site's data)."""
    tmp = tempfile.mkdtemp()
    settings = load_settings(
        None, environ={"CONSENTGATE_DATA_DIR": tmp, "CONSENTGATE_SECRET_KEYS": "b" * 24}
    )
    runtime = Runtime(settings, ConsentCodec(settings.secret_keys), None, Metrics())  # type: ignore[arg-type]
    assets = banner_assets(runtime)
    site = settings.sites[0]
    regime = decide(site, UNKNOWN, None, False).regime
    rows = [
        (
            "runtime guard alone (code + site data)",
            *sizes(guard_script(assets.guard(site), None).encode()),
        )
    ]
    for lang in ("en", "ru", "kk", "de", "fr"):
        js = assets.banner(site, lang, regime, guard=False).body
        snippet = head_snippet_for(runtime, site, None, {"accept-language": lang})(None)
        second = assets.details(site, lang).body
        first, inline = sizes(js), sizes(snippet)
        total = tuple(a + b for a, b in zip(first, inline, strict=True))
        rows.append((f"banner.js ({lang}, {regime})", *first))
        rows.append((f"inline head snippet with the guard ({lang})", *inline))
        rows.append((f"**first visit ({lang}): snippet + banner.js**", *total))
        script_tag = assets.banner(site, lang).body
        rows.append((f"banner.js with the guard, script-tag mode ({lang})", *sizes(script_tag)))
        rows.append((f"banner.json, 2nd layer on demand ({lang})", *sizes(second)))
        more = assets.more(site, lang).body
        rows.append((f"banner-more.js, on demand ({lang})", *sizes(more)))
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


def budget() -> None:
    """Issue 16's budget, gzip -9: per language and regime (with and without GPC), the
    banner's side of a first visit (inline head snippet without the guard + banner.js with
    ``g=0``; script-tag mode: banner.js without the guard), the runtime guard inline, and
    the worst total. The demo site with the JP notice regime, as tests/test_banner.py."""
    from consentgate.banner import head_snippet
    from consentgate.config import SEED_COOKIES, Site
    from consentgate.guard import guard_script
    from consentgate.regions import parse_region

    def gz(data: bytes) -> int:
        return len(gzip.compress(data, 9))

    tmp = tempfile.mkdtemp()
    settings = load_settings(
        None, environ={"CONSENTGATE_DATA_DIR": tmp, "CONSENTGATE_SECRET_KEYS": "b" * 24}
    )
    site = Site(id="demo", cookies=list(SEED_COOKIES), demo=True, regimes={"JP": "notice"})
    settings.sites = [site]
    runtime = Runtime(settings, ConsentCodec(settings.secret_keys), None, Metrics())  # type: ignore[arg-type]
    assets = banner_assets(runtime)
    guard = gz(guard_script(assets.guard(site), ["necessary"]).encode())
    cols = ["opt-in", "opt-in+GPC", "opt-out", "opt-out+GPC", "notice", "notice+GPC"]
    print(f"| language | {' | '.join(cols)} | script-tag | banner-more.js | banner.json |")
    print("|---" + "|---:" * (len(cols) + 3) + "|")
    worst = 0
    for lang in ("en", "ru", "kk", "de", "fr"):
        row = []
        for region in ("DE", "US-CA", "JP"):
            for gpc in (False, True):
                decision = decide(site, parse_region(region), None, gpc)
                headers = {"accept-language": lang, **({"sec-gpc": "1"} if gpc else {})}
                snippet = head_snippet(runtime, site, None, headers, decision)(None)
                js = assets.banner(site, lang, decision.regime, guard=False).body
                row.append(gz(snippet) + gz(js))
        row.append(gz(assets.banner(site, lang, guard=False).body))
        worst = max(worst, *row)
        lazy = [gz(assets.more(site, lang).body), gz(assets.details(site, lang).body)]
        print(f"| {lang} | {' | '.join(f'{n:,}' for n in row + lazy)} |")
    print(f"\nbanner side, worst: {worst:,} B; runtime guard inline: {guard:,} B;")
    print(f"first visit, worst: {worst + guard:,} B (issue 16: <= 7,000 B, guard <= 1,500 B)")
    shutil.rmtree(tmp, ignore_errors=True)


def fetch_anchor(spec: str) -> Path | None:
    CACHE.mkdir(parents=True, exist_ok=True)
    name = spec.replace("@", "-")
    found = sorted(CACHE.glob(f"{name}*.tgz"))
    if found:
        return found[0]
    if not shutil.which("npm"):
        return None
    subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=CACHE, check=True, capture_output=True, timeout=120
    )
    found = sorted(CACHE.glob(f"{name}*.tgz"))
    return found[0] if found else None


def anchor_files(spec: str, members: list[str]) -> list[bytes] | None:
    tgz = fetch_anchor(spec)
    if tgz is None:
        return None
    with tarfile.open(tgz) as tar:
        return [tar.extractfile(m).read() for m in members]  # type: ignore[union-attr]


VANILLA_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>vanilla</title>
<link rel="stylesheet" href="/cookieconsent.css">
<script defer src="/cookieconsent.umd.js"></script>
<script defer src="/init.js"></script></head><body><main><h1>Demo</h1>
<p>Same page weight as consentgate's demo, without trackers.</p></main></body></html>"""
VANILLA_INIT = """CookieConsent.run({
  hideFromBots: false,  // Playwright sets navigator.webdriver
  categories: {necessary: {enabled: true, readOnly: true}, analytics: {}, marketing: {}},
  language: {default: 'en', translations: {en: {
    consentModal: {title: 'Cookies on this site', description: 'We use cookies.',
      acceptAllBtn: 'Accept all', acceptNecessaryBtn: 'Reject all',
      showPreferencesBtn: 'Customize'},
    preferencesModal: {title: 'Cookie settings', acceptAllBtn: 'Accept all',
      acceptNecessaryBtn: 'Reject all', savePreferencesBtn: 'Save choices', sections: []}}}}
});"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_dir(path: Path) -> ThreadingHTTPServer:
    handler = partial(_Quiet, directory=str(path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def time_to_banner(url: str, runs: int, local: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    out: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs + 1):
            context = browser.new_context(reduced_motion="reduce")
            context.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if r.request.url.startswith(local)
                    else r.fulfill(status=204, body="")
                ),
            )
            context.add_init_script(VISIBLE)
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.__bannerAt !== null", timeout=20000)
            out.append(page.evaluate("window.__bannerAt"))
            context.close()
        browser.close()
    return out[1:]  # the first run warms the browser itself


def stats(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"median {statistics.median(values):.0f} ms, p90 {q[-1]:.0f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-anchors", action="store_true", help="skip npm pack")
    parser.add_argument("--budget", action="store_true", help="issue 16's byte budget only")
    args = parser.parse_args()
    if args.budget:
        budget()
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print("\n| what | raw | gzip -9 | brotli 11 |\n|---|---:|---:|---:|")
    for name, raw, gz, br in consentgate_bytes():
        print(f"| consentgate {name} | {raw:,} B | {gz:,} B | {br:,} B |")
    vanilla: list[bytes] | None = None
    if not args.no_anchors:
        for name, (spec, members) in ANCHORS.items():
            files = anchor_files(spec, members)
            if files is None:
                print(f"| {name} | npm not available | | |")
                continue
            if "vanilla" in name:
                vanilla = files
            raw = b"".join(files)
            gz = sum(len(gzip.compress(f, 9)) for f in files)
            br = sum(len(brotli.compress(f, quality=11)) for f in files)
            print(f"| {name} (JS+CSS, measured) | {len(raw):,} B | {gz:,} B | {br:,} B |")
    for name, value in QUOTED.items():
        print(f"| {name} (PRODUCT.md) | | {value} KB | |")

    from support import consentgate_server

    data = tempfile.mkdtemp()
    with consentgate_server("--data-dir", data) as (base, _):
        times = time_to_banner(base + "/", args.runs, base)
    shutil.rmtree(data, ignore_errors=True)
    print(f"\nnavigation start -> banner visible, consentgate demo page: {stats(times)}")
    if vanilla is not None:
        site = Path(tempfile.mkdtemp())
        (site / "index.html").write_text(VANILLA_PAGE)
        (site / "cookieconsent.umd.js").write_bytes(vanilla[0])
        (site / "cookieconsent.css").write_bytes(vanilla[1])
        (site / "init.js").write_text(VANILLA_INIT)
        server = serve_dir(site)
        local = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            times = time_to_banner(local + "/", args.runs, local)
        finally:
            server.shutdown()
            shutil.rmtree(site, ignore_errors=True)
        print(f"navigation start -> banner visible, vanilla-cookieconsent 3: {stats(times)}")


if __name__ == "__main__":
    main()
