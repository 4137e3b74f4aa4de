"""What the runtime guard costs a page: main-thread time in headless Chromium, with and
without the guard, in the same run, over the shared corpus pages.

    python3 bench/guard.py [--pages N] [--runs 5] [--baseline OLD_GUARD.js]

Each corpus page is served from loopback in two variants that differ only by the guard:
both carry an inline script where the rewriter places the head snippet; in one it is the
guard (``consentgate.guard``, the demo site's data, a visitor who has not decided: every
hook installed), in the other it is empty. (An inline script there is in every rewritten
page anyway - the head snippet's Consent Mode defaults - and where the parser meets one
changes its own work: the empty one keeps that out of the guard's figure.) Every other
host resolves to "not found" (``tests/support.py``'s Chromium arguments: nothing leaves the
machine, both variants alike).
Main-thread time is read from DevTools (``Performance.getMetrics``) once the page has
loaded and gone quiet: ``ThreadTime``, the CPU time of the page's main thread, and
``TaskDuration``, the wall time of its tasks (on a busy machine it counts time the thread
waited for a core, so it is noisier). The variants alternate, in a fresh page each time,
which goes first alternating too; per page the median over the runs; the added time is
with minus without; the median over the pages is the figure. The guard's own start (its
inline script, timed with ``performance.now()``) is reported too. Target (issue 16):
median added <= 3 ms per page.

``--baseline FILE`` (a guard.js source, e.g. ``git show REV:consentgate/static/banner/guard.js``)
makes the "without" variant that guard instead of the empty script: the figures are then what
the current guard adds over that one, both measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from support import CHROMIUM, CHROMIUM_ARGS, CORPUS  # noqa: E402

from consentgate.config import SEED_COOKIES, Site  # noqa: E402
from consentgate.consent import CATEGORIES  # noqa: E402
from consentgate.guard import guard_code, guard_data, guard_script  # noqa: E402
from consentgate.minify import mangle_js, minify_js  # noqa: E402
from consentgate.rewriter import RewritePolicy, rewrite_bytes  # noqa: E402


def variants(names: list[str], baseline: Path | None = None) -> dict[str, bytes]:
    site = Site(id="demo", cookies=list(SEED_COOKIES), demo=True)
    data = guard_data(site)
    guard = guard_script(f"{guard_code()}({data}", ["necessary"]).encode()
    other = b""
    if baseline is not None:  # minified and mangled as guard_code() does it
        code = minify_js(mangle_js(baseline.read_text(encoding="utf-8"))).rstrip().rstrip(";")
        other = guard_script(f"{code}({data}", ["necessary"]).encode()
    everything = RewritePolicy(granted=frozenset(CATEGORIES))  # placement only: no edits
    out = {}
    for name in names:
        page = (CORPUS / "pages" / name).read_bytes()
        for kind, script in (("without", other), ("with", guard)):
            # the guard's own start (its script) is timed too
            timed = b"window.__g0=performance.now();" + script
            timed += b"window.__g=performance.now()-__g0;"
            out[f"/{kind}/{name}"] = rewrite_bytes(
                page, everything, lambda _n, t=timed: b"<script>" + t + b"</script>"
            )
    return out


class Handler(BaseHTTPRequestHandler):
    def __init__(self, pages: dict[str, bytes], *args: object) -> None:
        self.pages = pages
        super().__init__(*args)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main_thread_ms(browser, url: str) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(main-thread CPU ms, main-thread task wall ms, the guard's start ms) of one visit."""
    page = browser.new_page()
    try:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(url, wait_until="load")
        page.wait_for_timeout(150)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        start = page.evaluate("window.__g || 0")
        return metrics["ThreadTime"] * 1000, metrics["TaskDuration"] * 1000, start
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=0, help="the first N pages (0: all)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--baseline", type=Path, help="another guard.js: measure what this one adds over it"
    )
    args = parser.parse_args()
    if args.baseline is not None and not args.baseline.is_file():
        parser.error(f"--baseline: no such file: {args.baseline}")
    from playwright.sync_api import sync_playwright

    names = sorted(p.name for p in (CORPUS / "pages").glob("*.html"))
    names = names[: args.pages] if args.pages else names
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, variants(names, args.baseline)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    added: dict[str, list[float]] = {"cpu": [], "wall": []}
    starts: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            main_thread_ms(browser, f"{base}/without/{names[0]}")  # warm the browser
            for name in names:
                runs: dict[str, list[tuple[float, float, float]]] = {"with": [], "without": []}
                for i in range(args.runs):
                    for kind in ("with", "without")[:: 1 if i % 2 else -1]:
                        runs[kind].append(main_thread_ms(browser, f"{base}/{kind}/{name}"))
                starts.extend(r[2] for r in runs["with"])
                line = []
                for j, metric in enumerate(("cpu", "wall")):
                    w = statistics.median(r[j] for r in runs["with"])
                    wo = statistics.median(r[j] for r in runs["without"])
                    added[metric].append(w - wo)
                    line.append(f"{metric} {wo:.1f} -> {w:.1f} ms ({w - wo:+.1f})")
                print(f"{name}: " + ", ".join(line), flush=True)
            browser.close()
    finally:
        server.shutdown()
    print(
        "\nmain-thread time added by the guard"
        + (f" over {args.baseline}" if args.baseline else "")
        + f" over {len(names)} corpus pages ({args.runs} runs "
        f"each), median over the pages of the per-page medians: CPU (ThreadTime) "
        f"{statistics.median(added['cpu']):+.2f} ms, task wall time (TaskDuration) "
        f"{statistics.median(added['wall']):+.2f} ms (target: <= 3 ms); the guard's own start "
        f"(its script): median {statistics.median(starts):.2f} ms, max {max(starts):.2f} ms"
    )


if __name__ == "__main__":
    main()
