"""A cache of rewritten pages, keyed by what the rewrite depends on.

The rewriter is deterministic: the same page bytes rewritten for the same granted
categories (same site, charset and CSP nonce) give the same output, except for the
banner snippet, which carries the visitor's own consent state. So a page is rewritten
once with a unique *marker* in place of the snippet, the output is kept split at the
marker, and each visitor gets ``before + snippet(nonce) + after``.

Keys hold a SHA-256 of the decoded page, so a changed page is a new entry and a
hit can never serve another page's bytes. Bounded by total bytes (LRU).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CachedPage", "MarkerSnippet", "RewriteCache"]

Key = tuple[object, ...]


class MarkerSnippet:
    """Stands in for the banner snippet while a page is rewritten for the cache."""

    def __init__(self) -> None:
        self.marker = b"<!--consentgate-snippet-" + secrets.token_hex(16).encode() + b"-->"
        self.nonce: str | None = None
        self.calls = 0

    def __call__(self, nonce: str | None) -> bytes:
        self.nonce = nonce
        self.calls += 1
        return self.marker


@dataclass(frozen=True, slots=True)
class CachedPage:
    parts: tuple[bytes, ...]  # one part (no snippet placed) or two (split at the snippet)
    nonce: str | None
    passthrough: str | None  # why the rewriter left the page as it was, if it did

    @classmethod
    def split(cls, output: bytes, marker: MarkerSnippet, passthrough: str | None) -> CachedPage:
        parts = tuple(output.split(marker.marker))
        if len(parts) > 2 or marker.calls > 1:
            raise ValueError("snippet marker found more than once")
        return cls(parts, marker.nonce, passthrough)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)

    def render(self, snippet: Callable[[str | None], bytes] | None) -> bytes:
        if len(self.parts) == 1:
            return self.parts[0]
        middle = snippet(self.nonce) if snippet is not None else b""
        return b"".join((self.parts[0], middle, self.parts[1]))


class RewriteCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[Key, CachedPage] = OrderedDict()

    def get(self, key: Key) -> CachedPage | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: CachedPage) -> None:
        if entry.size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old.size
        self._entries[key] = entry
        self.size += entry.size
        while self.size > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self.size -= evicted.size
