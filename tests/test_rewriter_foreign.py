"""SVG integration points (``<title>``, ``<desc>``, ``<foreignObject>``) end at their end
tag: the content after them is SVG again, and after ``</svg>`` HTML."""

from __future__ import annotations

import pytest

from consentgate.rewriter import StreamRewriter
from tests.rewrite_util import NONE, chunked

# once with the C accelerator, once in pure Python (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("rewriter_impl")


def test_integration_point_end_tag_returns_to_svg() -> None:
    # the Python tokenizer's own stack (the C path keeps an unfinished <svg> for later)
    rw = StreamRewriter(NONE, speedups=False)
    rw.feed(b"<svg><title>x</title><desc>y</desc><foreignObject><p>z</p></foreignObject>")
    assert rw._stack == [b"svg"]
    rw.feed(b"</svg><p>")
    assert rw._stack == []


def test_style_in_svg_after_a_title_is_markup() -> None:
    """In SVG, <style> is not raw text: an <img> in it breaks out and loads."""
    data = b"<svg><title>t</title><style><img src=https://www.facebook.com/tr></style></svg>"
    for sizes in ([], [7], [40]):
        out = chunked(data, sizes)
        assert b'<img data-consent="marketing" data-consentgate-src=' in out
