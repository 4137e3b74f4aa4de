"""UTF-16 sniffing must not become a way around blocking."""

from __future__ import annotations

import pytest

from tests.rewrite_util import NONE, chunked

# once with the C accelerator, once in pure Python (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("rewriter_impl")

GTAG = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'


def test_a_leading_nul_is_not_utf16_and_the_tracker_is_still_neutralized() -> None:
    # Browsers do not sniff BOM-less UTF-16: they parse this as a script element.
    out = chunked(b"\x00" + GTAG, [], NONE)
    assert b'type="text/plain"' in out
    assert b'data-consent="statistics"' in out


def test_real_bomless_utf16_passes_through_untouched() -> None:
    for codec in ("utf-16-be", "utf-16-le"):
        page = GTAG.decode().encode(codec)
        assert chunked(page, [], NONE) == page
