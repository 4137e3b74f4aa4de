"""Adversarial inputs: linear work, bounded memory, conservative decisions.

No wall-clock assertions: work is counted in tokenizer steps (``StreamRewriter.steps``)
and memory with tracemalloc, for an input of n and of 2n bytes. The inputs are generated
chunk by chunk so only the rewriter's own buffers count. Here n is 1 MB with the caps
lowered to 64 KiB (same code paths, faster); the benchmark (bench/rewrite.py
--adversarial) runs the full 50 MB with the default 1 MiB caps.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from consentgate.rewriter import StreamRewriter
from tests.rewrite_util import ALL, NONE

# once with the C accelerator, once in pure Python (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("rewriter_impl")

CHUNK = 16 * 1024
MB = 1 << 20
CAP = 64 * 1024


def _stream(head: bytes, unit: bytes, size: int, tail: bytes = b"") -> Iterator[bytes]:
    yield head
    block = unit * (CHUNK // len(unit))
    sent = 0
    while sent < size:
        yield block
        sent += len(block)
    if tail:
        yield tail


def _run(chunks: Iterator[bytes], policy=NONE) -> tuple[int, int, int, bytes]:  # type: ignore[no-untyped-def]
    """(steps, peak traced bytes, output length, output head) for one rewrite."""
    rw = StreamRewriter(
        policy,
        head_snippet=lambda n: b"<script src=/_consent/banner.js>",
        tag_cap=CAP,
        script_cap=CAP,
    )
    tracemalloc.start()
    total = 0
    head = b""
    try:
        for chunk in chunks:
            out = rw.feed(chunk)
            total += len(out)
            if len(head) < 4096:
                head += out[:4096]
        out = rw.finish()
        total += len(out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rw.steps, peak, total, head


# name -> (input generator, n); tag-dense inputs use a smaller n (Python work per tag)
CASES: dict[str, tuple[Callable[[int], Iterator[bytes]], int]] = {
    "lt-run": (lambda n: _stream(b"", b"<", n), MB),
    "unterminated-comment": (lambda n: _stream(b"<p><!--", b"x<!-- -- -!>", n), MB),
    "unterminated-script": (lambda n: _stream(b"<script>", b"var a='</scrip';<!--", n), MB),
    "unterminated-attribute": (lambda n: _stream(b'<img src="', b"ab>cd'", n), MB),
    "huge-attribute-value": (lambda n: _stream(b'<div title="', b"x>" * 8, n, b'">ok'), MB),
    "huge-script-attribute": (
        lambda n: _stream(b"<script data-x='", b"y" * 16, n, b"'>x()"),
        MB,
    ),
    "deep-nesting": (lambda n: _stream(b"", b"<div><span><svg><g><math><mi>", n), MB // 8),
    "deep-html-nesting": (lambda n: _stream(b"", b"<div><span><table><tr><td>", n), MB),
    "many-scripts": (lambda n: _stream(b"", b"<script>gtag('js')</script>", n), MB // 8),
    "bogus-doctype": (lambda n: _stream(b"<!doctype ", b"a", n), MB),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_linear_work_and_bounded_memory(case: str) -> None:
    make, n = CASES[case]
    steps1, peak1, _, _ = _run(make(n))
    steps2, peak2, out2, _ = _run(make(2 * n))
    assert out2 >= 2 * n  # nothing deleted
    assert steps2 <= 2 * steps1 + 64, (steps1, steps2)
    # memory: the 64 KiB caps and a few chunks, not the page size
    assert peak2 < 6 * CAP + 4 * CHUNK, peak2
    assert peak2 < peak1 + 2 * CHUNK, (peak1, peak2)


def test_oversize_script_is_neutralized_as_unclassified() -> None:
    data = b"<script>" + b"x=1;" * (300 * 1024) + b"</script><p>after"
    rw = StreamRewriter(NONE, script_cap=64 * 1024)
    out = b"".join(rw.feed(data[i : i + 5000]) for i in range(0, len(data), 5000))
    out += rw.finish()
    assert out.startswith(b'<script type="text/plain" data-consent="unclassified">x=1;')
    assert out.endswith(b"</script><p>after")
    rw = StreamRewriter(ALL, script_cap=64 * 1024)
    assert rw.feed(data) + rw.finish() == data


def test_oversize_tracker_tag_is_held_back_conservatively() -> None:
    pad = b"a" * 300_000
    data = b'<img alt="' + pad + b'" src="https://www.facebook.com/tr?id=1"><p>x</p>'
    for size in (4096, len(data)):
        rw = StreamRewriter(NONE, tag_cap=64 * 1024)
        out = b"".join(rw.feed(data[i : i + size]) for i in range(0, len(data), size))
        out += rw.finish()
        assert out.startswith(b'<img data-consent="unclassified" data-consentgate-oversize')
        assert b'src="" srcset=""' in out[:200]  # the first attribute wins
        assert out.endswith(b'src="https://www.facebook.com/tr?id=1"><p>x</p>')


def test_long_boring_tag_streams_without_holding() -> None:
    rw = StreamRewriter(NONE)
    out = rw.feed(b'<div title="' + b"z" * 100_000)
    assert len(out) > 100_000  # passed on at once, not held
    out += rw.feed(b'"><script src=https://hotjar.com/x></script>') + rw.finish()
    assert b'<script type="text/plain" data-consent="statistics" src=https://hotjar' in out


def test_long_inline_script_is_classified_by_its_end() -> None:
    """A held inline script arrives in many chunks (kept aside, joined once at its end):
    the signature at its very end still decides it, with any chunking."""
    body = b"var x = '<!-- a </scrip b -->';\n" * 8000 + b"gtag('config', 'G-1');"
    data = b"<p>a</p><script>" + body + b"</script><p>after</p>"
    whole = StreamRewriter(NONE)
    expected = whole.feed(data) + whole.finish()
    assert expected.startswith(b'<p>a</p><script type="text/plain" data-consent="statistics">')
    for size in (1, 7, 1000, 16 * 1024):
        if size == 1:
            data_ = data[:20_000] + b"gtag('config', 'G-1');</script>"  # keep it quick
            rw, ref = StreamRewriter(NONE), StreamRewriter(NONE)
            out = b"".join(rw.feed(data_[i : i + 1]) for i in range(len(data_))) + rw.finish()
            assert out == ref.feed(data_) + ref.finish()
            continue
        rw = StreamRewriter(NONE)
        out = b"".join(rw.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out + rw.finish() == expected
