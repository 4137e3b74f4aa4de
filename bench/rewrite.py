"""Rewriter throughput on the corpus pages, side by side in one run.

* consentgate's StreamRewriter, no consent (every tracker neutralized), 16 KB chunks,
  output kept; once with the inline-script classification cache cleared before every
  page ("cold") and once warm (a proxy serves the same inline scripts again and again);
  each with the C accelerator and in pure Python (``speedups=False``);
* consentgate with full consent (nothing can be neutralized: pass-through path);
* stdlib ``html.parser`` doing tokenization only (no output);
* python-lolhtml (Cloudflare lol-html, Rust) with a ``script`` element handler that
  re-types scripts whose ``src`` is a tracker (``type="text/plain"``), 16 KB chunks,
  output kept. Install it for the benchmark only: ``pip install python-lolhtml``.

``--adversarial`` also runs 50 MB adversarial inputs (``<<<<``, unterminated comment /
script / attribute, a 10 MB attribute value, deep nesting) and reports MB/s and the peak
of Python allocations (tracemalloc) for 25 MB and 50 MB; ``--big`` streams a 200 MB page
(the corpus repeated) and reports peak allocations.

    python3 bench/rewrite.py [--rounds 3] [--cpu] [--adversarial] [--big]

``--cpu`` measures process CPU time instead of wall-clock time (a busy machine).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consentgate.catalog import default_catalog
from consentgate.consent import CATEGORIES
from consentgate.rewriter import RewritePolicy, StreamRewriter
from consentgate.rewriter.stream import speedups_available

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "pages"
CHUNK = 16 * 1024
NONE = RewritePolicy(granted=frozenset({"necessary"}))
ALL = RewritePolicy(granted=frozenset(CATEGORIES))


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def consentgate(policy: RewritePolicy, cold: bool, speedups: bool) -> Callable[[bytes], int]:
    def run(data: bytes) -> int:
        if cold:
            default_catalog()._inline_cache.clear()
        rw = StreamRewriter(policy, speedups=speedups)
        out = [rw.feed(c) for c in chunks(data)]
        out.append(rw.finish())
        return len(b"".join(out))

    return run


class _Tokens(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)


def html_parser(data: bytes) -> int:
    parser = _Tokens()
    for c in chunks(data):
        parser.feed(c.decode("latin-1"))  # tokenization only; latin-1 never fails
    parser.close()
    return 0


TRACKERS = ("googletagmanager.com", "google-analytics.com", "connect.facebook.net", "hotjar.com")


def lolhtml_run() -> Callable[[bytes], int] | None:
    try:
        import lolhtml
    except ImportError:
        return None

    class Scripts:
        def element(self, el: lolhtml.Element) -> None:
            src = el.get_attribute("src") or ""
            if any(t in src for t in TRACKERS):
                el.set_attribute("type", "text/plain")
                el.set_attribute("data-consent", "statistics")

    def run(data: bytes) -> int:
        out: list[bytes] = []
        rw = lolhtml.HTMLRewriter(out.append)
        rw.on("script", Scripts())
        for c in chunks(data):
            rw.write(c)
        rw.end()
        return len(b"".join(out))

    return run


def measure(
    fn: Callable[[bytes], int], pages: list[bytes], rounds: int, clock: Callable[[], float]
) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = clock()
        for page in pages:
            fn(page)
        best = min(best, clock() - t)
    return sum(map(len, pages)) / best / 1e6


def adversarial() -> None:
    mb = 1 << 20

    def gen(head: bytes, unit: bytes, size: int, tail: bytes = b"") -> Iterator[bytes]:
        yield head
        block = unit * (CHUNK // len(unit))
        for _ in range(size // len(block)):
            yield block
        yield tail

    cases = {
        "50 MB of <<<<": lambda n: gen(b"", b"<", n),
        "unterminated comment": lambda n: gen(b"<!--", b"x-", n),
        "unterminated script": lambda n: gen(b"<script>", b"a<b;", n),
        "unterminated attribute": lambda n: gen(b'<img src="', b"ab", n),
        "10 MB attribute value": lambda n: gen(b'<img alt="', b"x", n // 5, b'" src=x>'),
        "deep nesting": lambda n: gen(b"", b"<div><span>", n),
    }
    print("\nadversarial (16 KB chunks, no consent, default 1 MiB caps)")
    for name, make in cases.items():
        row = []
        for size in (25 * mb, 50 * mb):
            rw = StreamRewriter(NONE)
            tracemalloc.start()
            t = time.perf_counter()
            total = 0
            for c in make(size):
                total += len(rw.feed(c))
            total += len(rw.finish())
            dt = time.perf_counter() - t
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            row.append(f"{size // mb} MB: {total / dt / 1e6:6.1f} MB/s peak {peak / mb:5.2f} MiB")
        print(f"  {name:24s} " + " | ".join(row))


def big(pages: list[bytes]) -> None:
    blob = b"".join(pages)
    for target in (50, 200):
        rw = StreamRewriter(NONE)
        tracemalloc.start()
        sent = 0
        t = time.perf_counter()
        while sent < target << 20:
            for c in chunks(blob):
                rw.feed(c)
            sent += len(blob)
        rw.finish()
        dt = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  {sent >> 20} MB page: {sent / dt / 1e6:6.1f} MB/s, peak {peak / 2**20:.2f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--adversarial", action="store_true")
    ap.add_argument("--big", action="store_true")
    ap.add_argument(
        "--cpu", action="store_true", help="process CPU time instead of wall-clock (busy machine)"
    )
    args = ap.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    pages = [p.read_bytes() for p in sorted(CORPUS.glob("*.html"))]
    if not pages:
        raise SystemExit(f"no corpus pages in {CORPUS} (the shared/ folder beside the checkout)")
    total = sum(map(len, pages))
    print(f"{len(pages)} pages, {total / 1e6:.1f} MB, python {platform.python_version()}")
    if not speedups_available():
        print("  (the C accelerator is not compiled: both consentgate rows are pure Python)")
    runs: list[tuple[str, Callable[[bytes], int] | None]] = [
        ("consentgate C, no consent, cold cache", consentgate(NONE, True, True)),
        ("consentgate C, no consent, warm cache", consentgate(NONE, False, True)),
        ("consentgate Python, no consent, cold", consentgate(NONE, True, False)),
        ("consentgate Python, no consent, warm", consentgate(NONE, False, False)),
        ("consentgate, full consent", consentgate(ALL, False, True)),
        ("html.parser, tokenize only", html_parser),
        ("python-lolhtml, script handler", lolhtml_run()),
    ]
    results = {}
    for name, fn in runs:
        if fn is None:
            print(f"  {name:40s} not installed (pip install python-lolhtml)")
            continue
        results[name] = measure(fn, pages, args.rounds, clock)
        print(f"  {name:40s} {results[name]:7.1f} MB/s")
    anchor = results.get("python-lolhtml, script handler")
    if anchor:
        for name, value in results.items():
            print(f"  {name:40s} {value / anchor:5.2f}x python-lolhtml")
    if args.big:
        print("\nlong page (corpus repeated), no consent, 16 KB chunks")
        big(pages)
    if args.adversarial:
        adversarial()


if __name__ == "__main__":
    main()
