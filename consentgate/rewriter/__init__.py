"""The streaming HTML rewriter: pure, byte-level, no HTTP.

```python
policy = RewritePolicy(granted=frozenset({"necessary"}), catalog=load_catalog(site))
rw = StreamRewriter(policy, head_snippet=None)
out = rw.feed(chunk) ...; out += rw.finish()
rw.stats  # Counter: neutralized elements per category
```
"""

from __future__ import annotations

from collections.abc import Iterable

from .policy import RewritePolicy
from .stream import HeadSnippet, StreamRewriter

__all__ = ["HeadSnippet", "RewritePolicy", "StreamRewriter", "rewrite_bytes"]


def rewrite_bytes(
    data: bytes | Iterable[bytes],
    policy: RewritePolicy,
    head_snippet: HeadSnippet | None = None,
    **options: object,
) -> bytes:
    """Rewrite a whole page (or an iterable of chunks) in one call."""
    rw = StreamRewriter(policy, head_snippet, **options)  # type: ignore[arg-type]
    chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    out = [rw.feed(bytes(c)) for c in chunks]
    out.append(rw.finish())
    return b"".join(out)
