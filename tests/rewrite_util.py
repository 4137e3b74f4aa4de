"""Helpers for the rewriter tests."""

from __future__ import annotations

from consentgate.consent import CATEGORIES
from consentgate.rewriter import RewritePolicy, StreamRewriter

NONE = RewritePolicy(granted=frozenset({"necessary"}))
ALL = RewritePolicy(granted=frozenset(CATEGORIES))


def feed_in_pieces(rw: StreamRewriter, data: bytes, sizes: list[int]) -> bytes:
    """Feed ``data`` to ``rw`` in pieces of the given sizes (cycled), then finish."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        out.append(rw.feed(data[pos : pos + size]))
        pos += size
        i += 1
    out.append(rw.finish())
    return b"".join(out)


def chunked(data: bytes, sizes: list[int], policy: RewritePolicy = NONE, **kw: object) -> bytes:
    """Rewrite ``data`` fed in pieces of the given sizes (cycled)."""
    return feed_in_pieces(StreamRewriter(policy, **kw), data, sizes)  # type: ignore[arg-type]


def start_tags(data: bytes) -> set[tuple[int, int]]:
    """Byte spans of every start tag the tokenizer finds (all tokens reported), with
    the scripting view of <noscript> where it differs, as the rewriter sees them."""
    found: set[tuple[int, int]] = set()
    rw = StreamRewriter(
        ALL,
        on_token=lambda k, buf, s, e: k == "start" and found.add((rw._base + s, rw._base + e)),
        noscript_views=True,
    )
    rw.feed(data)
    rw.finish()
    return found


def apply(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out, pos = [], 0
    for start, end, replacement in edits:
        out += [data[pos:start], replacement]
        pos = end
    out.append(data[pos:])
    return b"".join(out)
