"""Recorded rewrites replayed while the bytes match (consentgate/proxy/cache.py), with the
real streaming rewriter: whatever the chunking, and wherever a page changes, the visitor
gets exactly what a fresh rewrite of the bytes that arrived would give, with their own
banner snippet; memory for recordings stays within the cache's budget."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable

import pytest

from consentgate.proxy import cache as cache_module
from consentgate.proxy.cache import SEGMENT, PageRun, RewriteCache
from consentgate.rewriter import StreamRewriter
from tests.rewrite_util import NONE
from tests.upstream import page_bytes

PAGES = ["006.html", "021.html", "007.html"]  # 72 KB, 18 KB, 1.1 MB


def snippet_of(name: bytes) -> Callable[[str | None], bytes]:
    return lambda nonce: b"<script>visitor:" + name + b"</script>"


def reference(page: bytes, name: bytes = b"a") -> bytes:
    rw = StreamRewriter(NONE, snippet_of(name))
    return rw.feed(page) + rw.finish()


def make(snippet: Callable[[str | None], bytes] | None) -> StreamRewriter:
    return StreamRewriter(NONE, snippet)


def serve(cache: RewriteCache | None, page: bytes, sizes: list[int], name: bytes = b"a") -> tuple:
    """Feed ``page`` in pieces of ``sizes`` (cycled) through a PageRun; (output, run)."""
    run = PageRun(cache, ("site", b"/p"), make, snippet_of(name))
    out: list[bytes] = []
    pos, i = 0, 0
    while pos < len(page):
        size = sizes[i % len(sizes)]
        out += run.feed(page[pos : pos + size])
        pos += size
        i += 1
    out += run.finish()
    run.close()
    return b"".join(out), run


@pytest.mark.parametrize("name", PAGES)
def test_replay_matches_a_fresh_rewrite_whatever_the_chunking(name: str) -> None:
    page = page_bytes(name)
    want = reference(page)
    cache = RewriteCache(64 * 1024 * 1024)
    got, run = serve(cache, page, [len(page)])  # recorded
    assert got == want and not run.hit
    rng = random.Random(name)
    for sizes in ([1000], [SEGMENT], [SEGMENT + 1, 7], [rng.randint(1, 70_000) for _ in range(9)]):
        got, run = serve(cache, page, sizes)
        assert got == want
        assert run.hit
    assert cache.recording == 0


@pytest.mark.parametrize("where", [0, 10, 0.5, -1])
@pytest.mark.parametrize("change", ["byte", "shorter", "longer"])
def test_changed_page_is_rewritten_from_where_it_differs(where: float, change: str) -> None:
    page = page_bytes("006.html")
    cache = RewriteCache(64 * 1024 * 1024)
    serve(cache, page, [5000])
    at = int(len(page) * where) if isinstance(where, float) else where % len(page)
    if change == "byte":
        other = page[:at] + (b"X" if page[at : at + 1] != b"X" else b"Y") + page[at + 1 :]
    elif change == "shorter":
        other = page[:at]
    else:
        other = page[:at] + b"<p>more</p>" + page[at:]
    for sizes in ([3000], [len(other) or 1]):
        got, run = serve(cache, other, sizes)
        assert got == reference(other)
    assert run.hit  # the second time, the changed page had been recorded
    got, run = serve(cache, page, [7000])
    assert got == reference(page) and not run.hit


def test_each_visitor_gets_their_own_snippet() -> None:
    page = page_bytes("021.html")
    cache = RewriteCache(64 * 1024 * 1024)
    a, _ = serve(cache, page, [4096], b"a")
    b, run = serve(cache, page, [4096], b"b")
    assert run.hit
    assert b"visitor:a" in a and b"visitor:a" not in b
    assert b == reference(page, b"b")


def test_release_answers_a_partial_segment_and_goes_live() -> None:
    page = page_bytes("006.html")
    want = reference(page)
    cache = RewriteCache(64 * 1024 * 1024)
    serve(cache, page, [len(page)])
    run = PageRun(cache, ("site", b"/p"), make, snippet_of(b"a"))
    half = len(page) // 2 + 17
    out = run.feed(page[:half])
    assert run.holding  # matched bytes of a segment whose rest has not arrived
    out += run.release()
    assert not run.holding
    sent = b"".join(out)
    assert want.startswith(sent) and len(sent) > half - 1000
    out += run.feed(page[half:]) + run.finish()
    assert b"".join(out) == want


def test_recordings_stay_within_the_budget() -> None:
    page = page_bytes("007.html")  # 1.1 MB: more than a quarter of a 2 MiB cache
    cache = RewriteCache(2 * 1024 * 1024)
    got, run = serve(cache, page, [SEGMENT])
    assert got == reference(page)
    assert cache.recording == 0 and cache.size == 0  # nothing kept
    got, run = serve(cache, page, [SEGMENT])
    assert got == reference(page) and not run.hit
    small = page_bytes("021.html")
    serve(cache, small, [len(small)])
    assert 0 < cache.size <= cache.max_bytes


def test_without_a_cache_every_page_is_rewritten_live() -> None:
    page = page_bytes("021.html")
    got, run = serve(None, page, [999])
    assert got == reference(page) and not run.hit


def test_a_page_that_keeps_changing_is_replayed_only_now_and_then() -> None:
    cache = RewriteCache(64 * 1024 * 1024)
    base = page_bytes("021.html")
    hits = []
    for i in range(40):
        page = base.replace(b"<body", b"<body data-n=%d" % i, 1)
        got, run = serve(cache, page, [4000])
        assert got == reference(page)
        hits.append(run.hit)
    entry = cache.get(("site", b"/p"))
    assert entry is not None and entry.misses >= 3 and entry.skipped > 0
    assert not any(hits)


def test_a_whole_replay_keeps_its_compressed_form_per_snippet() -> None:
    page = page_bytes("006.html")
    cache = RewriteCache(64 * 1024 * 1024)
    serve(cache, page, [len(page)])  # recorded
    _, run = serve(cache, page, [len(page)])
    assert run.hit and run.encoded("gzip") is None
    run.keep_encoded("gzip", b"compressed a")
    _, run = serve(cache, page, [len(page)])
    assert run.encoded("gzip") == b"compressed a"
    assert run.encoded("br") is None
    _, run = serve(cache, page, [len(page)], name=b"b")  # another visitor's snippet
    assert run.hit and run.encoded("gzip") is None
    # a replay that was not whole keeps nothing
    changed = page[:-10] + b"changed!!!"
    _, run = serve(cache, changed, [len(page)])
    assert not run.hit and run.encoded("gzip") is None
    run.keep_encoded("gzip", b"never")
    _, run = serve(cache, changed, [len(page)])  # the new recording, replayed
    assert run.hit and run.encoded("gzip") is None


def test_the_same_compressed_body_again_is_answered_without_decoding() -> None:
    page = page_bytes("006.html")
    raw = gzip.compress(page, mtime=0)
    cache = RewriteCache(64 * 1024 * 1024)
    serve(cache, page, [len(page)])  # recorded
    want, run = serve(cache, page, [len(page)])
    run.keep_encoded("gzip", b"kept for a", ("gzip", raw))
    run = PageRun(cache, ("site", b"/p"), make, snippet_of(b"a"))
    assert run.raw_replay("gzip", raw, "gzip") == b"kept for a"
    assert run.hit and run.passthrough is None
    # other bytes, another coding, another visitor's snippet: decode and replay as usual
    for upstream, body, coding, name in [
        ("gzip", gzip.compress(page[:-1] + b"!", mtime=0), "gzip", b"a"),
        ("br", raw, "gzip", b"a"),
        ("gzip", raw, "br", b"a"),
        ("gzip", raw, "gzip", b"b"),
    ]:
        run = PageRun(cache, ("site", b"/p"), make, snippet_of(name))
        assert run.raw_replay(upstream, body, coding) is None
        out = b"".join(run.feed(page) + run.finish())
        assert run.hit and out == (want if name == b"a" else reference(page, name))


def test_compressed_variants_are_kept_least_recently_used_first_out() -> None:
    """One-off snippets (visitors with a consent of their own) must not hold every slot
    for good: the variant the most visitors share stays."""
    page = page_bytes("006.html")
    cache = RewriteCache(64 * 1024 * 1024)
    serve(cache, page, [len(page)])  # recorded
    _, run = serve(cache, page, [len(page)], name=b"common")
    run.keep_encoded("gzip", b"common gzip")
    for i in range(20):  # many one-off visitors, the common one in between
        _, run = serve(cache, page, [len(page)], name=b"one-off-%d" % i)
        run.keep_encoded("gzip", b"one-off %d" % i)
        _, run = serve(cache, page, [len(page)], name=b"common")
        assert run.encoded("gzip") == b"common gzip"
    entry = cache.get(("site", b"/p"))
    assert entry is not None and entry.encoded is not None
    assert len(entry.encoded) == cache_module._MAX_ENCODED
    _, run = serve(cache, page, [len(page)], name=b"one-off-0")  # long pushed out
    assert run.encoded("gzip") is None
    sizes = sum(len(body) + len(middle) for (_, middle), body in entry.encoded.items())
    assert 0 < sizes < entry.size <= cache.size
