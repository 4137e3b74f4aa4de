"""The streaming rewriter: bytes in, bytes out, any chunking, bounded memory.

The tokenizer only wakes up at ``<``: a possessive regular expression (``RUN_HTML``)
skips text, comments and every tag that cannot matter in one C-level match, and
Python handles the few constructs that can (scripts, URL-bearing elements, raw-text
elements, SVG/MathML, the head until the snippet is placed). Script, RAWTEXT and
RCDATA bodies are skipped with ``re.search`` for their end.

Chunk invariance: a decision only ever depends on input bytes, never on where a
chunk ended. An incomplete construct at the end of a chunk is kept for the next
``feed`` (at most :data:`TAG_CAP` bytes for a tag the rewriter must read whole,
:data:`SCRIPT_CAP` bytes for an inline script it must classify); beyond those caps
the conservative decision of :mod:`.elements` applies, decided by length alone.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable

from ..catalog import CATEGORY_RANK, OBFUSCATION_HINTS
from . import grammar as g
from ._states import (
    BOGUS,
    CDATA,
    COMMENT,
    DATA,
    DEFAULT_SCRIPT_CAP,
    DEFAULT_TAG_CAP,
    LONGTAG,
    PASS,
    PLAINTEXT,
    RAWTEXT,
    SCRIPT,
    SNIFF,
)
from ._tags import TagHandling
from .policy import JS_TYPES, RewritePolicy

try:
    from . import _speedups
except ImportError:  # not compiled (no C compiler at install time): pure Python
    _speedups = None  # type: ignore[assignment]

__all__ = ["SPEEDUPS", "StreamRewriter", "speedups_available"]

#: Use the C accelerator by default (when compiled); CONSENTGATE_PURE_PYTHON=1 turns it off.
SPEEDUPS = _speedups is not None and os.environ.get("CONSENTGATE_PURE_PYTHON", "") in ("", "0")


def speedups_available() -> bool:
    """Is the C accelerator (``consentgate.rewriter._speedups``) compiled and importable?"""
    return _speedups is not None


log = logging.getLogger("consentgate.rewriter")

HeadSnippet = Callable[[str | None], bytes]

_ESC_NONE, _ESC, _ESC_DOUBLE = 0, 1, 2
_WAIT_MIN, _WAIT_MAX = 1024, 64 * 1024

_UPPER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_WS_RUN = re.compile(rb"[\t\n\f\r ]*+")


class StreamRewriter(TagHandling):
    """Rewrite one HTML document for one visitor. ``feed`` chunks, then ``finish``.

    ``head_snippet(nonce)`` returns the markup placed once, early in ``<head>``: after a
    ``<meta charset>``/``http-equiv=content-type``, else before the first element that is
    not ``html``/``head``/``title``/``base``/``link``/``meta`` (or non-blank text, or
    ``</head>``). The nonce passed is ``nonce`` (the caller's, from the CSP header), else
    one from a ``<meta http-equiv=Content-Security-Policy>`` seen earlier, else the
    ``nonce`` attribute of the element the snippet is placed before.

    ``charset``: the Content-Type charset, when known; UTF-16/32 (by BOM or header)
    and other non-ASCII-compatible encodings pass through unrewritten.
    ``stats`` counts neutralized elements per category.
    """

    def __init__(
        self,
        policy: RewritePolicy,
        head_snippet: HeadSnippet | None = None,
        *,
        nonce: str | None = None,
        charset: str | None = None,
        on_token: Callable[[str, bytes, int, int], None] | None = None,
        switch_states: bool = True,
        tag_cap: int = DEFAULT_TAG_CAP,
        script_cap: int = DEFAULT_SCRIPT_CAP,
        record_edits: bool = False,
        noscript_views: bool | None = None,
        speedups: bool | None = None,
    ) -> None:
        self.policy = policy
        self.stats: Counter[str] = Counter()
        self.passthrough_reason: str | None = None
        self._snippet = head_snippet
        self._nonce = nonce
        self._charset = (charset or "").strip().lower()
        self._active = not policy.grants_everything
        self._pending = head_snippet is not None
        self._on_token = on_token
        # on_token(kind, data, start, end) sees every token (tests); switch_states=False
        # keeps the tokenizer in its state at start tags (the html5lib tokenizer suite)
        self._switch = switch_states
        # both views of <noscript> (default: on, except when reporting markup tokens)
        self._ns_views = on_token is None if noscript_views is None else noscript_views
        self._tag_cap = tag_cap
        self._script_cap = script_cap
        self._meta_nonce: str | None = None
        self._snippet_nonce: str | None = None  # the nonce the head snippet was given
        self._input = b""  # the data being processed (edits slice it)
        self._buf = b""
        self._parts: list[bytes] = []  # chunks of a held script not yet joined to _buf
        self._parts_len = 0
        self._pos = 0  # scan position inside _buf
        self._hold = -1  # start of a held script start tag inside _buf, or -1
        self._state = SNIFF
        self._end_re: re.Pattern[bytes] | None = None  # RAWTEXT/RCDATA end
        self._tail = 0  # bytes kept back while streaming a body
        self._esc = _ESC_NONE
        # held script: tag start, name end (inside the tag), tag end, name
        self._script: tuple[int, int, int, bytes] | None = None
        self._content = 0  # start of the held script's content
        self._script_foreign = False
        self._stack: list[bytes] = []  # open svg/math elements and integration points
        self._ns_stack: list[bytes] = []  # namespace in effect at each stack level
        self._stack_overflow = 0
        self._lt: list[int] = [0, 0]  # long tag: sub-state, self-closing flag
        self._lt_after: tuple[bytes, bool] | None = None
        self._seen = 0
        self._finished = False
        self._out: list[bytes | memoryview] = []  # pieces of one feed's output
        self._emit = 0
        self._base = 0  # absolute offset of the buffer's first byte
        self._wait_gt = False  # an incomplete tag is held: nothing to do until a '>'
        self._final = False
        # (start, end): a <noscript> whose views part; [start, end) is raw text
        self._ns_cut: tuple[int, int] | None = None
        #: (start, end, replacement) in input offsets, when ``record_edits`` (tests)
        self.edits: list[tuple[int, int, bytes]] | None = [] if record_edits else None
        #: state-handler calls so far: a machine-independent measure of work (tests)
        self.steps = 0
        # the C accelerator for the data state (None: pure Python); see _speedups.c
        use_c = SPEEDUPS if speedups is None else speedups and _speedups is not None
        fast = use_c and self._active and on_token is None and switch_states and self._ns_views
        self._fast = _scanner(policy) if fast else None
        self._c_script_end = _speedups.script_end if use_c else None
        self._wait_limit = 0

    # -- public API ---------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bytes:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not chunk:
            return b""
        self._seen += len(chunk)
        if self._state == PASS and not self._buf:
            return bytes(chunk)
        if (
            self._wait_gt
            and b">" not in chunk
            and len(self._buf) + len(chunk) - self._pos <= self._tag_cap
        ):
            self._buf += chunk  # the held tag cannot be complete yet
            return b""
        if (
            self._hold == 0
            and self._state == SCRIPT
            and self._ns_cut is None
            and self._extend_held_script(chunk)
        ):
            return b""
        if self._parts:
            self._join_parts()
        data = self._buf + chunk if self._buf else bytes(chunk)
        # the C path keeps at most this much of an unfinished construct: re-reading it
        # at each feed stays linear (amortized over the chunks) and memory bounded
        self._wait_limit = min(max(_WAIT_MIN, 4 * len(chunk)), _WAIT_MAX)
        return self._process(data, final=False)

    def finish(self) -> bytes:
        if self._finished:
            return b""
        if self._parts:
            self._join_parts()
        out = self._process(self._buf, final=True)
        self._finished = True
        if self._pending and self._seen:
            out += self._snippet_bytes(None)
        return out

    def _extend_held_script(self, chunk: bytes) -> bool:
        """A held inline script (its start tag at the buffer's start) continues: look for
        its end in the chunk alone (plus the few bytes a ``</script`` may straddle). If
        it is not there and the script stays within ``script_cap``, keep the chunk aside
        and return True: ``_buf + parts`` is joined once, when the script ends, instead
        of copying the growing buffer at every feed."""
        size = len(self._buf) + self._parts_len
        if size + len(chunk) - self._content > self._script_cap:
            return False
        start = self._pos  # resume point: at most 9 bytes before the end
        local = self._tail_from(start, size) + chunk
        esc = self._esc
        end = self._script_end(local, 0)
        if end >= 0:
            self._esc = esc  # found: the ordinary path reads it again from _pos
            return False
        self.steps += 1
        self._parts.append(chunk)
        self._parts_len += len(chunk)
        self._pos = start + max(-end - 1, len(local) - 9)
        return True

    def _tail_from(self, start: int, size: int) -> bytes:
        """``(_buf + parts)[start:]`` (a few bytes) without joining everything."""
        need = size - start
        if need <= 0:
            return b""
        pieces: list[bytes] = []
        got = 0
        for part in reversed(self._parts):
            pieces.append(part)
            got += len(part)
            if got >= need:
                break
        else:
            pieces.append(self._buf)
        return b"".join(reversed(pieces))[-need:]

    def _join_parts(self) -> None:
        self._buf += b"".join(self._parts)
        self._parts = []
        self._parts_len = 0

    # -- driver --------------------------------------------------------------------------
    def _process(self, data: bytes, final: bool) -> bytes:
        out = self._out = []
        self._input = data
        self._emit = 0
        n = len(data)
        pos = self._pos
        handlers = self._handlers
        self._wait_gt = False
        self._final = final
        while pos < n:
            self.steps += 1
            if self._ns_cut is not None and self._base + pos >= self._ns_cut[0]:
                pos = self._cut_noscript(pos)
                continue
            new = handlers[self._state](self, data, pos, final)
            if new < 0:  # need more input; keep data[-new - 1:]
                pos = -new - 1
                break
            pos = new
        if final:
            self._finish_states(data)
            pos = n
        keep = pos if self._hold < 0 else min(pos, self._hold)
        if keep > self._emit:  # a view when joined with more pieces: one copy, not two
            out.append(memoryview(data)[self._emit : keep] if out else data[self._emit : keep])
        self._buf = data[keep:]
        self._pos = pos - keep
        self._base += keep
        if self._hold >= 0:
            self._hold -= keep
            self._content -= keep
            if self._script is not None:
                s, ne, te, name = self._script
                self._script = (s - keep, ne, te - keep, name)
        self._out = []
        return b"".join(out)

    def _cut_noscript(self, pos: int) -> int:
        """Skip to the scripting view's ``</noscript>`` (see ``_noscript_views``)."""
        assert self._ns_cut is not None
        end = self._ns_cut[1] - self._base
        self._ns_cut = None
        if end < pos:
            return pos
        self._state = DATA
        self._hold = -1  # a script in there is noscript text for a browser with JS
        self._script = None
        return end

    def _finish_states(self, data: bytes) -> None:
        if self._state == SCRIPT and self._hold >= 0:
            self._decide_script(data, len(data))

    def _edit(self, start: int, end: int, replacement: bytes) -> None:
        if self.edits is not None:
            self.edits.append((self._base + start, self._base + end, replacement))
        if start > self._emit:
            self._out.append(self._input[self._emit : start])
        self._out.append(replacement)
        self._emit = end

    # -- states --------------------------------------------------------------------------
    def _sniff(self, data: bytes, pos: int, final: bool) -> int:
        if len(data) < 4 and not final:
            return -1 - pos
        head = data[:4]
        reason = None
        if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")):
            reason = "UTF-16/32 byte order mark"
        elif _looks_utf16(head):
            reason = "UTF-16 without BOM"
        elif self._charset and _not_ascii_compatible(self._charset):
            reason = f"charset {self._charset}"
        if reason is not None:
            log.warning("not rewriting a page in a non-ASCII-compatible encoding (%s)", reason)
            self.passthrough_reason = reason
            self._pending = False
            self._state = PASS
            return pos
        if not self._active and not self._pending and self._on_token is None:
            self._state = PASS
            return pos
        self._state = DATA
        return 3 if head.startswith(b"\xef\xbb\xbf") else pos

    def _pass(self, data: bytes, pos: int, final: bool) -> int:
        return len(data)

    def _data(self, data: bytes, pos: int, final: bool) -> int:
        if self._pending:
            return self._pending_data(data, pos, final)
        if not self._active and self._on_token is None:
            self._state = PASS
            return pos
        foreign = self._foreign()
        if self._on_token is not None or self._ns_cut is not None:
            pos = g.RUN_TEXT.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
            if self._ns_cut is not None and self._base + pos >= self._ns_cut[0]:
                return self._cut_noscript(pos)
        else:
            if self._fast is not None and not self._stack:
                pos, self._emit, work, incomplete = self._fast.run(
                    data,
                    pos,
                    self._emit,
                    self._out,
                    self.stats,
                    self.edits,
                    self._base,
                    self._tag_cap,
                    self._script_cap,
                )
                self.steps += work
                if pos >= len(data):
                    return pos
                if incomplete and not final and len(data) - pos <= self._wait_limit:
                    # keep the unfinished construct for the next feed (where C reads it
                    # whole) rather than streaming it through Python: the same output,
                    # as a chunk boundary at pos would give
                    return -1 - pos
            run = g.RUN_FOREIGN if foreign else g.RUN_IP if self._stack else g.RUN_HTML
            pos = run.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
        if pos >= len(data):
            return pos
        return self._construct(data, pos, final, foreign)

    def _pending_data(self, data: bytes, pos: int, final: bool) -> int:
        n = len(data)
        pos = _WS_RUN.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
        if pos >= n:
            return pos
        if data[pos] != 0x3C or (pos + 1 < n and data[pos + 1] not in _TAG_OPENERS):
            self._inject(pos, None)  # text: the body starts here
            return pos
        if pos + 1 >= n:
            if not final:
                return -1 - pos
            self._inject(pos, None)
            return pos
        return self._construct(data, pos, final, self._foreign())

    def _construct(self, data: bytes, pos: int, final: bool, foreign: bool) -> int:
        """Handle the construct starting with ``<`` at ``pos`` (not skipped by the run)."""
        n = len(data)
        if pos + 1 >= n:
            return n if final else -1 - pos
        c = data[pos + 1]
        if c == 0x21:  # <!
            return self._markup_decl(data, pos, final, foreign)
        if c == 0x3F:  # <? bogus comment
            return self._bogus(data, pos, pos + 1, final)
        if c == 0x2F:  # </
            if pos + 2 >= n:
                return n if final else -1 - pos
            d = data[pos + 2]
            if d == 0x3E:
                return pos + 3
            if not (0x41 <= d <= 0x5A or 0x61 <= d <= 0x7A):
                return self._bogus(data, pos, pos + 2, final)
            m = g.TAG.match(data, pos)
            if m is None:
                return self._incomplete_tag(data, pos, final, end_tag=True)
            if self._on_token is not None:
                self._on_token("end", data, pos, m.end())
            self._end_tag(data, pos, m)
            return m.end()
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            m = g.TAG.match(data, pos)
            if m is None or m.end() - pos > self._tag_cap:
                return self._incomplete_tag(data, pos, final, end_tag=False, whole=m)
            if self._on_token is not None:
                self._on_token("start", data, pos, m.end())
            return self._start_tag(data, pos, m.end(), m.group(2).translate(_UPPER), foreign)
        return pos + 1  # a '<' that starts nothing

    def _markup_decl(self, data: bytes, pos: int, final: bool, foreign: bool) -> int:
        n = len(data)
        if data.startswith(b"<!--", pos):
            if n - pos < 6 and not final:
                return -1 - pos
            if data.startswith(b">", pos + 4):
                end = pos + 5
            elif data.startswith(b"->", pos + 4):
                end = pos + 6
            else:
                m = g.COMMENT_END.search(data, pos + 4)
                if m is None:
                    self._token("comment", data, pos, n)
                    self._state = COMMENT
                    return pos + 4
                end = m.end()
            self._token("comment", data, pos, end)
            return end
        if n - pos < 9 and not final and (b"<!--".startswith(data[pos:]) or foreign):
            return -1 - pos
        if foreign and data.startswith(b"<![CDATA[", pos):
            self._state = CDATA
            return pos + 9
        return self._bogus(data, pos, pos + 2, final)

    def _bogus(self, data: bytes, pos: int, start: int, final: bool) -> int:
        end = data.find(b">", start)
        if end < 0:
            self._token("bogus", data, pos, len(data))
            self._state = BOGUS
            return len(data)
        self._token("bogus", data, pos, end + 1)
        return end + 1

    def _comment(self, data: bytes, pos: int, final: bool) -> int:
        m = g.COMMENT_END.search(data, pos)
        if m is None:
            return _stream_tail(data, pos, 3, final)
        self._state = DATA
        return m.end()

    def _bogus_body(self, data: bytes, pos: int, final: bool) -> int:
        end = data.find(b">", pos)
        if end < 0:
            return len(data)
        self._state = DATA
        return end + 1

    def _cdata(self, data: bytes, pos: int, final: bool) -> int:
        m = g.CDATA_END.search(data, pos)
        if m is None:
            return _stream_tail(data, pos, 2, final)
        self._state = DATA
        return m.end()

    def _rawtext(self, data: bytes, pos: int, final: bool) -> int:
        assert self._end_re is not None
        m = self._end_re.search(data, pos)
        if m is None:
            return _stream_tail(data, pos, self._tail, final)
        self._state = DATA
        return m.start()

    def _plaintext(self, data: bytes, pos: int, final: bool) -> int:
        return len(data)

    def _script_body(self, data: bytes, pos: int, final: bool) -> int:
        end = self._script_end(data, pos)
        held = self._hold >= 0
        if end < 0:
            if held and len(data) - self._content > self._script_cap:
                self._decide_script(data, self._content + self._script_cap + 1)
            return _stream_tail(data, -end - 1, 9, final)
        if held:
            self._decide_script(data, end)
        self._state = DATA
        return end

    def _script_end(self, data: bytes, pos: int) -> int:
        """Offset of the ``</script`` ending the script, or ``-1 - resume`` if not found."""
        if self._script_foreign:
            m = g.rawtext_end(b"script").search(data, pos)
            return m.start() if m else -1 - pos
        if self._c_script_end is not None and type(data) is bytes:
            end, self._esc = self._c_script_end(data, pos, self._esc)
            return end
        while True:
            if self._esc == _ESC_NONE:
                m = g.SCRIPT_EVENT.search(data, pos)
                if m is None:
                    return -1 - pos
                if data[m.start() + 1] == 0x2F:
                    return m.start()
                self._esc = _ESC
                pos = m.start() + 2  # the dashes of <!-- count towards -->
            elif self._esc == _ESC:
                m = g.SCRIPT_ESCAPED_EVENT.search(data, pos)
                if m is None:
                    return -1 - pos
                if data[m.start()] == 0x2D:  # -->
                    self._esc = _ESC_NONE
                    pos = m.end()
                elif m.group(1):
                    return m.start()
                else:
                    self._esc = _ESC_DOUBLE
                    pos = m.end() + 1
            else:
                m = g.SCRIPT_DOUBLE_EVENT.search(data, pos)
                if m is None:
                    return -1 - pos
                self._esc = _ESC_NONE if data[m.start()] == 0x2D else _ESC
                pos = m.end() + (0 if data[m.start()] == 0x2D else 1)

    _handlers: dict[int, Callable[[StreamRewriter, bytes, int, bool], int]] = {}


_TAG_OPENERS = frozenset(b"!/?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _stream_tail(data: bytes, pos: int, tail: int, final: bool) -> int:
    """Everything but the last ``tail`` bytes is safe to emit; keep the rest."""
    n = len(data)
    if final:
        return n
    return -1 - max(pos, n - tail)


def _not_ascii_compatible(charset: str) -> bool:
    name = charset.replace("_", "-")
    return name.startswith(("utf-16", "utf-32", "ucs-2", "ucs-4", "unicode")) or name in (
        "cp037",
        "cp500",
        "cp875",
        "cp1026",
        "cp1140",
        "ibm037",
        "ebcdic-cp-us",
        "utf-7",
        "hz-gb-2312",
        "iso-2022-jp",
        "iso-2022-kr",
        "iso-2022-cn",
    )


StreamRewriter._handlers = {
    DATA: StreamRewriter._data,
    COMMENT: StreamRewriter._comment,
    BOGUS: StreamRewriter._bogus_body,
    RAWTEXT: StreamRewriter._rawtext,
    SCRIPT: StreamRewriter._script_body,
    PLAINTEXT: StreamRewriter._plaintext,
    CDATA: StreamRewriter._cdata,
    PASS: StreamRewriter._pass,
    SNIFF: StreamRewriter._sniff,
    LONGTAG: StreamRewriter._longtag,
}


def _scanner(policy: RewritePolicy) -> _speedups.Scanner:
    """The C scanner for ``policy`` (one per policy: it holds the hint tables)."""
    scanner = policy.__dict__.get("_speedups_scanner")
    if scanner is None:
        catalog = policy.catalog
        # RewritePolicy.element_hint's words
        words = [*catalog.hint_words, *OBFUSCATION_HINTS]
        words += [b"data-consent", b"data-cookieconsent"]
        words += [b"srcdoc", b"csp"]
        scanner = _speedups.Scanner(
            policy.granted,
            JS_TYPES,
            CATEGORY_RANK,
            words,
            catalog.inline_anchors,
            policy.script_url_category,
            policy.element_url_category,
            policy.inline_category,
        )
        policy.__dict__["_speedups_scanner"] = scanner
    return scanner


def _looks_utf16(head: bytes) -> bool:
    """``<`` as UTF-16 followed by another UTF-16 ASCII character: zero bytes alternate.

    A lone ``\x00<`` is not enough: browsers do not sniff BOM-less UTF-16, so they read
    ``\x00<script ...>`` as a script element, and passing such a page through
    unrewritten would let its trackers run.
    """
    if len(head) < 4:
        return False
    big = head[0] == 0 and head[1] == 0x3C and head[2] == 0 and head[3] != 0
    little = head[0] == 0x3C and head[1] == 0 and head[2] != 0 and head[3] == 0
    return big or little
