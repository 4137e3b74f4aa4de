"""The compiled export encoders (consentgate/audit/_csvenc.c: CSV and JSON Lines)
write exactly the bytes of the pure-Python ones, for any batch; CI requires them."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.audit import formats
from consentgate.audit.columns import EXPORT_COLUMNS
from consentgate.audit.formats import CsvEncoder, JsonlEncoder

# Text that hits every rule: formula starts, the quote triggers, the separator the
# Python encoder scans with, non-ASCII (UTF-8 bytes), empty cells.
SPECIAL = st.sampled_from(
    ["=", "+", "-", "@", "\t", "\r", "'", ",", '"', "\n", "\x1f", "é", "€", "😀"]
)
TEXT = st.lists(st.one_of(SPECIAL, st.text(max_size=3)), max_size=6).map("".join)
COLUMNS = ("seq", "site_id", "necessary", "user_agent", "chain_seq", "gpc", "page_url")


def rows_with(text: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[object, ...]]:
    """Rows of :data:`COLUMNS` whose text cells come from ``text``."""
    return st.tuples(
        st.integers(min_value=-(2**70), max_value=2**70),
        text,
        st.sampled_from([0, 1, True, False]),
        text,
        st.integers(min_value=0, max_value=10**6),
        st.booleans(),
        text,
    )


ROW = rows_with(TEXT)

needs_c = pytest.mark.skipif(
    formats._C_ENCODE is None and os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") != "1",
    reason="consentgate.audit._csvenc is not compiled",
)


def test_compiled_encoder_is_loaded_when_required() -> None:
    """CI sets CONSENTGATE_REQUIRE_SPEEDUPS=1: the compiled encoder must be in use."""
    if os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") == "1":
        assert formats._C_ENCODE is not None, "consentgate.audit._csvenc is not compiled"
        assert CsvEncoder()._c is not None and JsonlEncoder()._c is not None
    assert CsvEncoder(compiled=False)._c is None and JsonlEncoder(compiled=False)._c is None


@needs_c
@settings(max_examples=400)
@given(st.lists(ROW, min_size=1, max_size=12))
def test_compiled_and_python_encoders_write_the_same_bytes(rows: list[tuple[object, ...]]) -> None:
    compiled = CsvEncoder(COLUMNS, compiled=True).encode(rows)
    python = CsvEncoder(COLUMNS, compiled=False).encode(rows)
    assert compiled == python


# JSON Lines: every character class encode_basestring treats apart (controls, quote,
# backslash, DEL, line/paragraph separators, non-BMP)
JSON_TEXT = st.text(
    st.one_of(
        st.characters(max_codepoint=0x7F),
        st.sampled_from(["\u2028", "\u2029", "é", "😀", "\ufeff"]),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=8,
)
JSON_ROW = rows_with(JSON_TEXT)


@needs_c
@settings(max_examples=400)
@given(st.lists(JSON_ROW, min_size=1, max_size=12))
def test_compiled_and_python_json_lines_are_the_same_bytes(
    rows: list[tuple[object, ...]],
) -> None:
    compiled = JsonlEncoder(COLUMNS, compiled=True).encode(rows)
    assert compiled == JsonlEncoder(COLUMNS, compiled=False).encode(rows)
    assert compiled.count(b"\n") == len(rows)  # no raw newline inside a line


@needs_c
def test_compiled_encoder_refuses_what_python_refuses() -> None:
    for bad in [(1, None, 0, "", 1, True, ""), (1, "", 2, "", 1, True, ""), (1, "", 0, "")]:
        with pytest.raises((TypeError, ValueError)):
            CsvEncoder(COLUMNS, compiled=True).encode([bad])
    with pytest.raises(UnicodeEncodeError):
        CsvEncoder(COLUMNS, compiled=True).encode([(1, "\ud800", 0, "", 1, True, "")])
    with pytest.raises((TypeError, ValueError)):
        JsonlEncoder(COLUMNS, compiled=True).encode([(1, None, 0, "", 1, True, "")])


@needs_c
def test_full_export_rows() -> None:
    row = tuple(
        1 if c in ("seq", "chain_seq") else True if c in formats.BOOL_COLUMNS else f'{c}, "x"'
        for c in EXPORT_COLUMNS
    )
    assert CsvEncoder(compiled=True).encode([row] * 3) == CsvEncoder(compiled=False).encode(
        [row] * 3
    )
    assert JsonlEncoder(compiled=True).encode([row]) == JsonlEncoder(compiled=False).encode([row])
