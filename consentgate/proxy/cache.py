"""Rewriting a page as it streams, replaying a cached rewrite where the bytes match.

The rewriter is deterministic: the same input segments fed in the same order (same
site, granted categories, charset and CSP nonce) give the same output for every
segment, except for the banner snippet, which carries the visitor's own consent
state. So a rewrite is *recorded*: each decoded input segment is kept with the output
the rewriter gave for it, with a unique *marker* standing in for the snippet (the
segment that holds it is kept split around it).

A later response for the same URL is *replayed* as it streams in: as soon as the
bytes of input segment ``i`` have arrived and are byte for byte the recorded ones, the
recorded output of segment ``i`` goes out (with this visitor's snippet spliced in).
Comparing bytes costs a ``memcmp``; no hash is involved, so a hit can never serve
output computed from other bytes. At the first byte that differs (or when the page
ends early, or runs on), a fresh rewriter is fed the matched segments again (their
output was already sent, so it is discarded) and takes over from there, live; that
run is recorded in turn and replaces the entry.

Memory stays bounded: a response holds at most one partial segment besides the
recording, and recordings (like entries) are capped at a quarter of the cache and, in
total, at its size. The cache itself is an LRU bounded by bytes.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..page import PageRewriter, Snippet, UnsafePage

__all__ = ["SEGMENT", "CachedPage", "MarkerSnippet", "PageRun", "RewriteCache", "UnsafePage"]

Key = tuple[object, ...]
Parts = tuple[bytes, ...]  # one part, or two around the snippet

#: Largest input segment fed to the rewriter at once while recording: a replay holds
#: back at most this much until the rest of a segment arrives.
SEGMENT = 32 * 1024
#: A page that diverged from its recording this many times in a row is replayed only
#: on every ``_RETRY``-th request (dynamic pages: replaying would only add a re-feed).
_MAX_MISSES = 3
_RETRY = 16
#: Compressed variants (coding x banner snippet) kept per recorded page.
_MAX_ENCODED = 8


def _used(encoded: dict[tuple[str, bytes], bytes], variant: tuple[str, bytes]) -> bytes | None:
    """A kept variant, now the most recently used one; None when there is none."""
    found = encoded.pop(variant, None)
    if found is not None:
        encoded[variant] = found
    return found


class MarkerSnippet:
    """Stands in for the banner snippet while a page is rewritten for recording."""

    def __init__(self) -> None:
        self.marker = b"<!--consentgate-snippet-" + secrets.token_hex(16).encode() + b"-->"
        self.nonce: str | None = None
        self.calls = 0

    def __call__(self, nonce: str | None) -> bytes:
        self.nonce = nonce
        self.calls += 1
        return self.marker


@dataclass(slots=True)
class CachedPage:
    """A recorded rewrite: input segments, the output of each, and of ``finish()``."""

    inputs: tuple[bytes, ...]
    outputs: tuple[Parts, ...]
    tail: Parts
    nonce: str | None  # the nonce the rewriter passed to the snippet
    passthrough: str | None  # why the rewriter left the page as it was, if it did
    size: int
    misses: int = 0  # divergences in a row
    skipped: int = 0
    #: the whole replayed output, compressed, by (coding, snippet bytes): a page that
    #: arrived in one piece and was replayed whole is compressed once per variant
    encoded: dict[tuple[str, bytes], bytes] | None = None
    #: (coding, body) of the upstream's compressed body those were replayed from: the
    #: same bytes again need neither decoding nor replaying
    raw: tuple[str, bytes] | None = None


class RewriteCache:
    """Recorded rewrites by (site, URL, granted categories, charset, nonce); LRU by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        #: bytes held by recordings in progress (bounded by ``max_bytes`` in total)
        self.recording = 0
        self._entries: OrderedDict[Key, CachedPage] = OrderedDict()

    def clear(self) -> None:
        """Forget every recording (the site's declarations changed)."""
        self._entries.clear()
        self.size = 0

    @property
    def entry_max(self) -> int:
        return self.max_bytes // 4

    def get(self, key: Key) -> CachedPage | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def keep_encoded(
        self,
        key: Key,
        entry: CachedPage,
        coding: str,
        middle: bytes,
        body: bytes,
        raw: tuple[str, bytes] | None,
    ) -> None:
        """Keep ``body``, the compressed whole output of a replay of ``entry`` (and
        ``raw``, the upstream's compressed body it came from); counted in the cache's
        bytes, at most ``_MAX_ENCODED`` variants per page (least recently used out)."""
        if entry.encoded is None:
            entry.encoded = {}
        variant = (coding, middle)
        grow = 0
        evict: tuple[str, bytes] | None = None
        if variant not in entry.encoded:
            grow += len(body) + len(middle)
            if len(entry.encoded) >= _MAX_ENCODED:  # the least recently used makes room
                evict = next(iter(entry.encoded))
                grow -= len(entry.encoded[evict]) + len(evict[1])
        if raw is not None and raw != entry.raw:  # the latest compressed body wins
            grow += len(raw[1]) - (len(entry.raw[1]) if entry.raw is not None else 0)
        else:
            raw = entry.raw
        if grow <= 0 and variant in entry.encoded and raw is entry.raw:
            return
        if entry.size + grow > self.entry_max:
            return
        if evict is not None:
            del entry.encoded[evict]
        entry.encoded[variant] = body
        entry.raw = raw
        entry.size += grow
        if self._entries.get(key) is entry:
            self.size += grow
            self._evict()

    def _evict(self) -> None:
        while self.size > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self.size -= evicted.size

    def put(self, key: Key, entry: CachedPage) -> None:
        if entry.size > self.entry_max:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old.size
        self._entries[key] = entry
        self.size += entry.size
        self._evict()


class _Recording:
    __slots__ = ("cache", "inputs", "outputs", "size")

    def __init__(self, cache: RewriteCache) -> None:
        self.cache = cache
        self.inputs: list[bytes] = []
        self.outputs: list[Parts] = []
        self.size = 0

    def add(self, data: bytes, parts: Parts) -> bool:
        """Keep one segment; False (and nothing kept) once over the budget."""
        grow = len(data) + sum(len(p) for p in parts)
        cache = self.cache
        if self.size + grow > cache.entry_max or cache.recording + grow > cache.max_bytes:
            return False
        self.size += grow
        cache.recording += grow
        self.inputs.append(data)
        self.outputs.append(parts)
        return True

    def release(self) -> None:
        self.cache.recording -= self.size
        self.size = 0
        self.inputs = []
        self.outputs = []


class PageRun:
    """One page for one visitor: decoded input in, output pieces (bytes) out.

    ``feed`` and ``finish`` return lists of byte strings to send, in order. ``holding``
    says whether bytes that arrived are matched but not answered yet (a replay waiting
    for the rest of a segment); :meth:`release` answers them at once (live from there).
    Call :meth:`close` when done (it gives back the recording budget).
    """

    def __init__(
        self,
        cache: RewriteCache | None,
        key: Key | None,
        make: Callable[[Snippet | None], PageRewriter],
        snippet: Snippet | None,
    ) -> None:
        self._cache = cache if key is not None else None
        self._key = key
        self._make = make
        self._snippet = snippet
        self._middle: bytes | None = None
        self._entry: CachedPage | None = None
        self._i = 0  # replay: segment being matched
        self._j = 0  # replay: bytes of it matched so far
        self._misses = 0
        self._skipped = 0
        self._rewriter: PageRewriter | None = None
        self._marker: MarkerSnippet | None = None
        self._placed = False
        self._rec: _Recording | None = None
        self.hit = False  # the whole page came from the recording
        if self._cache is not None and key is not None:
            entry = self._cache.get(key)
            if entry is not None:
                self._misses = entry.misses
                if entry.misses >= _MAX_MISSES and entry.skipped % _RETRY != _RETRY - 1:
                    entry.skipped += 1
                    self._skipped = entry.skipped
                else:
                    self._entry = entry
        if self._entry is None:
            self._go_live()

    # -- output ------------------------------------------------------------------------
    def _render(self, parts: Parts, nonce: str | None, out: list[bytes]) -> None:
        if len(parts) == 1:
            if parts[0]:
                out.append(parts[0])
            return
        if self._middle is None:
            snippet = self._snippet
            self._middle = snippet(nonce) if snippet is not None else b""
        out += (parts[0], self._middle, parts[1])

    @property
    def passthrough(self) -> str | None:
        if self._entry is not None:
            return self._entry.passthrough
        return getattr(self._rewriter, "passthrough_reason", None)

    @property
    def holding(self) -> bool:
        return self._entry is not None and self._j > 0

    # -- live ------------------------------------------------------------------------
    def _go_live(self) -> None:
        if self._cache is not None:
            self._marker = MarkerSnippet() if self._snippet is not None else None
            self._rewriter = self._make(self._marker)
            self._rec = _Recording(self._cache)
        else:
            self._rewriter = self._make(self._snippet)

    def _split(self, out: bytes) -> Parts:
        marker = self._marker
        if marker is None or self._placed or not marker.calls:
            return (out,)
        self._placed = True
        parts = tuple(out.split(marker.marker))
        if len(parts) != 2 or marker.calls != 1:
            raise UnsafePage("snippet marker found more than once")
        return parts

    def _live(self, data: bytes, out: list[bytes]) -> None:
        rewriter = self._rewriter
        assert rewriter is not None
        if self._rec is None:
            if self._marker is None:
                result = rewriter.feed(data)
                if result:
                    out.append(result)
                return
            self._render(self._split(rewriter.feed(data)), self._marker.nonce, out)
            return
        for start in range(0, len(data), SEGMENT):
            piece = data[start : start + SEGMENT] if len(data) > SEGMENT else data
            parts = self._split(rewriter.feed(piece))
            if self._rec is not None and not self._rec.add(piece, parts):
                self._rec.release()
                self._rec = None
            self._render(parts, self._marker.nonce if self._marker else None, out)

    def _diverge(self, data: bytes, pos: int, out: list[bytes]) -> None:
        """The page differs from the recording from ``data[pos:]`` on: go live."""
        entry = self._entry
        assert entry is not None
        self._entry = None
        self._misses = entry.misses + 1
        self._go_live()
        rewriter = self._rewriter
        assert rewriter is not None
        for segment in entry.inputs[: self._i]:  # already answered: output discarded
            parts = self._split(rewriter.feed(segment))
            if self._rec is not None and not self._rec.add(segment, parts):
                self._rec.release()
                self._rec = None
        rest = entry.inputs[self._i][: self._j] if self._j else b""
        if pos < len(data):
            rest += data[pos:] if pos else data
        if rest:
            self._live(rest, out)

    # -- input -------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        entry = self._entry
        if entry is None:
            if data:
                self._live(data, out)
            return out
        inputs, outputs, n, p = entry.inputs, entry.outputs, len(data), 0
        while p < n:
            if self._i == len(inputs):  # the page runs on past the recording
                self._diverge(data, p, out)
                return out
            segment = inputs[self._i]
            j = self._j
            if j == 0 and n - p >= len(segment):
                if not data.startswith(segment, p):
                    self._diverge(data, p, out)
                    return out
                p += len(segment)
            else:
                k = min(len(segment) - j, n - p)
                if not segment.startswith(data[p : p + k], j):
                    self._diverge(data, p, out)
                    return out
                p += k
                if j + k < len(segment):
                    self._j = j + k
                    return out
                self._j = 0
            self._render(outputs[self._i], entry.nonce, out)
            self._i += 1
        return out

    def release(self) -> list[bytes]:
        """Stop waiting for the rest of a segment: answer what arrived, live from here."""
        out: list[bytes] = []
        if self.holding:
            self._diverge(b"", 0, out)
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        entry = self._entry
        if entry is not None:
            if self._i == len(entry.inputs) and self._j == 0:
                self._render(entry.tail, entry.nonce, out)
                entry.misses = 0
                self.hit = True
                return out
            self._diverge(b"", 0, out)  # the page ended early
        rewriter = self._rewriter
        assert rewriter is not None
        tail = self._split(rewriter.finish())
        self._render(tail, self._marker.nonce if self._marker else None, out)
        rec = self._rec
        if rec is not None and self._cache is not None and self._key is not None:
            size = rec.size + sum(len(p) for p in tail)
            page = CachedPage(
                tuple(rec.inputs),
                tuple(rec.outputs),
                tail,
                self._marker.nonce if self._marker else None,
                getattr(rewriter, "passthrough_reason", None),
                size,
                self._misses,
                self._skipped,
            )
            self.close()
            self._cache.put(self._key, page)
        return out

    # -- compressed output of a whole replay ----------------------------------------
    def encoded(self, coding: str) -> bytes | None:
        """The compressed whole output kept for this replay (after :meth:`finish` of a
        full hit), or None."""
        entry = self._entry
        if not self.hit or entry is None or entry.encoded is None:
            return None
        return _used(entry.encoded, (coding, self._middle or b""))

    def keep_encoded(self, coding: str, body: bytes, raw: tuple[str, bytes] | None = None) -> None:
        """Keep ``body``, this full replay's whole output compressed with ``coding``;
        ``raw``: the upstream's (coding, compressed body) it was decoded from."""
        entry = self._entry
        if self.hit and entry is not None and self._cache is not None and self._key is not None:
            middle = self._middle or b""
            self._cache.keep_encoded(self._key, entry, coding, middle, body, raw)

    def raw_replay(self, upstream_coding: str, raw: bytes, coding: str) -> bytes | None:
        """Before anything was fed: when ``raw`` is byte for byte the compressed body a
        whole replay of this page was last decoded from, the compressed output kept for
        it (this visitor's snippet, ``coding``), and the run counts as a full hit.
        None otherwise (then feed the decoded body as usual)."""
        entry = self._entry
        if entry is None or entry.encoded is None or entry.raw is None or self._i or self._j:
            return None
        if entry.raw[0] != upstream_coding or entry.raw[1] != raw:
            return None
        placed = len(entry.tail) == 2 or any(len(parts) == 2 for parts in entry.outputs)
        snippet = self._snippet
        middle = snippet(entry.nonce) if placed and snippet is not None else b""
        found = _used(entry.encoded, (coding, middle))
        if found is None:
            return None
        self._middle = middle if placed else None
        self._i = len(entry.inputs)
        entry.misses = 0
        self.hit = True
        return found

    def close(self) -> None:
        if self._rec is not None:
            self._rec.release()
            self._rec = None
