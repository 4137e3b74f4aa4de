"""Start/end tag handling for :class:`~consentgate.rewriter.stream.StreamRewriter`.

Kept apart from the state machine so each module stays readable. Foreign content
(SVG/MathML) is tracked with a small stack of the elements that change how the
tokenizer behaves: ``svg``/``math`` and the HTML integration points inside them
(``foreignObject``, ``desc``, ``title``; ``mi``, ``mo``, ``mn``, ``ms``, ``mtext``,
``annotation-xml`` with an HTML encoding), plus the tree builder's "breakout" tags
that leave foreign content.
"""

from __future__ import annotations

import html
import re
import string
from typing import TYPE_CHECKING, Any

from ..catalog import data_document
from . import _states as S
from . import grammar as g
from .csp import csp_nonce
from .elements import (
    URL_ATTRS,
    conservative_prefix,
    first_values,
    neutralize,
    parse_attrs,
    refresh_url,
)
from .policy import script_is_executable

if TYPE_CHECKING:
    from .stream import StreamRewriter

_UPPER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_NAME = re.compile(rb"[A-Za-z][^\t\n\f\r />]*")
_WS_SLASH = re.compile(rb"[\t\n\f\r /]*+")
_WS = re.compile(rb"[\t\n\f\r ]*+")
_ATTR_NAME_RUN = re.compile(rb"[^\t\n\f\r />=]*+")
_UNQUOTED_RUN = re.compile(rb"[^\t\n\f\r >]*+")
_PRELOAD = re.compile(rb"(?i)(?:^|[\t\n\f\r ])(?:preload|modulepreload|prefetch)(?:$|[\t\n\f\r ])")
#: The attribute of a frame, an object or an embed whose data: URL is a document in an opaque
#: origin: no runtime guard reaches it, so it is unclassified content (docs/guard.md)
OPAQUE_URL = {b"iframe": b"src", b"frame": b"src", b"embed": b"src", b"object": b"data"}
_ASCII_WS = re.compile(r"[\t\n\f\r ]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def opaque_sandbox(value: bytes | None) -> bool:
    """Does a ``sandbox`` attribute value let scripts run in an opaque origin (allow-scripts
    without allow-same-origin)? Its document cannot be reached by the page's guard. Tokens
    are split on ASCII whitespace and compared ASCII case-insensitively, as the browser
    does (a no-break space is part of a token there)."""
    if value is None:
        return False
    tokens = _ASCII_WS.split(html.unescape(value.decode("latin-1")).translate(_ASCII_LOWER))
    return "allow-scripts" in tokens and "allow-same-origin" not in tokens


#: Resource hints naming only an origin: matched by host (``Catalog.hint_category``)
_HINT = re.compile(rb"(?i)(?:^|[\t\n\f\r ])(?:preconnect|dns-prefetch)(?:$|[\t\n\f\r ])")
_FONT_BREAKOUT = re.compile(rb"(?i)[\t\n\f\r /](?:color|face|size)[\t\n\f\r /=>]")
_RAWTEXT_NAMES = frozenset(b"style xmp iframe noembed noframes textarea title".split())
_URL_ELEMENTS = frozenset(URL_ATTRS) - {b"script", b"meta"}
_HEAD_OK = frozenset(b"html head title base link meta".split())
_SVG_POINTS = frozenset(b"foreignobject desc title".split())
_MATH_POINTS = frozenset(b"mi mo mn ms mtext".split())
#: MathML elements that stay MathML inside a MathML text integration point
_MATH_IN_TEXT = frozenset({b"mglyph", b"malignmark"})
_MAX_STACK = 512
#: How far past ``<noscript>`` its scripting-view end is looked for.
NOSCRIPT_LOOKAHEAD = 64 * 1024
_NOSCRIPT_END = re.compile(rb"</(?i:noscript)[\t\n\f\r />]")
_SCRIPT_URL_ATTRS = (b"src", b"href", b"xlink:href", b"data-src", b"data-lazy-src")
(_T_BEFORE, _T_NAME, _T_AFTER_NAME, _T_BEFORE_VALUE, _T_DQ, _T_SQ, _T_UNQ) = range(7)


class TagHandling:
    """Mixin: what happens at a start or end tag. Its methods run on a
    :class:`~consentgate.rewriter.stream.StreamRewriter` (``self: StreamRewriter``; the
    type checker's ``misc`` self-type check is off for this module, see pyproject.toml)."""

    # state the tag handlers set to None (the rewriter's __init__ sets them all)
    _end_re: re.Pattern[bytes] | None
    _script: tuple[int, int, int, bytes] | None
    _lt_after: tuple[bytes, bool] | None
    _meta_nonce: str | None
    _snippet_nonce: str | None

    # -- namespace tracking -----------------------------------------------------------
    def _foreign(self: StreamRewriter) -> bool:
        stack = self._stack
        return bool(stack) and stack[-1][:1] != b"!"

    def _push(self: StreamRewriter, entry: bytes) -> None:
        if len(self._stack) >= _MAX_STACK:
            self._stack_overflow += 1
        else:
            self._stack.append(entry)
            ns = entry if entry in (b"svg", b"math") else self._namespace()
            self._ns_stack.append(ns)

    def _pop_to(self: StreamRewriter, index: int) -> None:
        if self._stack_overflow:
            self._stack_overflow -= 1
            return
        del self._stack[index:]
        del self._ns_stack[index:]

    def _leave_foreign(self: StreamRewriter) -> None:
        """A breakout tag: pop until an integration point (or HTML) is current."""
        self._stack_overflow = 0
        while self._stack and self._stack[-1][:1] != b"!":
            self._stack.pop()
            self._ns_stack.pop()

    # -- start tags ---------------------------------------------------------------------
    def _start_tag(
        self: StreamRewriter, data: bytes, pos: int, end: int, name: bytes, foreign: bool
    ) -> int:
        if not foreign and name in _MATH_IN_TEXT and self._in_math_text_point():
            # mglyph and malignmark in a MathML text integration point stay MathML: what
            # follows them is foreign content (a <style> there is no raw text)
            if not _self_closing(data, pos, end):
                self._push(name)
            return end
        if foreign:
            if name in g.FOREIGN_BREAKOUT or (
                name == b"font" and _FONT_BREAKOUT.search(data, pos, end)
            ):
                self._leave_foreign()
                foreign = self._foreign()
            if foreign:
                return self._foreign_start(data, pos, end, name)
        if name == b"noscript" and self._ns_views and (self._active or self._on_token):
            wait = self._noscript_views(data, pos, end)
            if wait is not None:
                return wait
        if name == b"meta" and self._active:  # a refresh, before the snippet's placement
            self._url_element(data, pos, end, name)
        if self._pending and self._pending_start(data, pos, end, name):
            return end
        if name == b"script":
            self._script_start(data, pos, end, name, foreign=False)
            return end
        if name in _URL_ELEMENTS and self._active:
            self._url_element(data, pos, end, name)
        sc = name in (b"svg", b"math") and _self_closing(data, pos, end)
        self._enter_content(name, False, sc)
        return end

    def _noscript_views(self: StreamRewriter, data: bytes, pos: int, end: int) -> int | None:
        """``<noscript>`` is markup without scripting but raw text with it. Where the two
        views part (its ``</noscript>`` sits inside an attribute, comment or raw text of
        the markup view), the scripting view wins from there on: a browser with
        JavaScript is where a hidden ``<script>`` would run. Returns ``-1 - pos`` to wait
        for more input (at most :data:`NOSCRIPT_LOOKAHEAD` bytes), else None."""
        m = _NOSCRIPT_END.search(data, end, end + NOSCRIPT_LOOKAHEAD)
        if m is None:
            if not self._final and len(data) - end < NOSCRIPT_LOOKAHEAD:
                return -1 - pos
            return None
        raw_end = m.start()
        last = [end]

        def on_token(kind: str, buf: bytes, s: int, e: int) -> None:
            if e <= len(buf):
                last[0] = end + e

        sub = type(self)(_token_policy(), on_token=on_token)
        sub._state = S.DATA
        sub.feed(data[end:raw_end])
        if sub._state == S.DATA and not sub._buf:
            return None  # both views end the noscript at the same </noscript>
        cut = max(end, min(last[0], raw_end))
        self._ns_cut = (self._base + cut, self._base + raw_end)
        return None

    def _pending_start(self: StreamRewriter, data: bytes, pos: int, end: int, name: bytes) -> bool:
        """Place the head snippet if this tag decides where; True if fully handled."""
        if name not in _HEAD_OK:
            tag = data[pos:end]
            attrs = first_values(parse_attrs(tag, len(name) + 1))
            self._inject(pos, attrs.get(b"nonce"))
            return False
        if name != b"meta":
            return False
        attrs = first_values(parse_attrs(data[pos:end], 5))
        equiv = attrs.get(b"http-equiv", b"").strip().lower()
        if equiv == b"content-security-policy":
            found = csp_nonce([attrs.get(b"content", b"")])
            if found and self._meta_nonce is None:
                self._meta_nonce = found
        if b"charset" in attrs or equiv == b"content-type":
            self._inject(end, None)
        return True

    def _enter_content(self: StreamRewriter, name: bytes, foreign: bool, sc: bool) -> None:
        """Switch tokenizer state after an HTML start tag (raw text, plaintext, svg)."""
        if not self._switch:
            return
        if foreign:
            return
        if name in _RAWTEXT_NAMES:
            self._state = S.RAWTEXT
            self._end_re = g.rawtext_end(name)
            self._tail = len(name) + 3
        elif name == b"plaintext":
            self._state = S.PLAINTEXT
        elif name in (b"svg", b"math") and not sc:
            self._push(name)

    def _foreign_start(self: StreamRewriter, data: bytes, pos: int, end: int, name: bytes) -> int:
        sc = _self_closing(data, pos, end)
        svg = self._namespace() == b"svg"
        if name == b"script" and svg:
            self._script_start(data, pos, end, name, foreign=True, self_closing=sc)
        elif name in (b"svg", b"math"):
            if not sc:
                self._push(name)
        elif (svg and name in _SVG_POINTS) or (not svg and name in _MATH_POINTS):
            if not sc:
                self._push(b"!" + name)
        elif name == b"annotation-xml" and not svg and not sc:
            attrs = first_values(parse_attrs(data[pos:end], len(name) + 1))
            enc = attrs.get(b"encoding", b"").lower()  # exactly, ASCII case-insensitively
            self._push(b"!" + name if enc in (b"text/html", b"application/xhtml+xml") else b"-")
        elif name in (b"image", b"feimage") and self._active:
            self._url_element(data, pos, end, name)
        return end

    def _in_math_text_point(self: StreamRewriter) -> bool:
        stack = self._stack
        return bool(stack) and stack[-1][:1] == b"!" and stack[-1][1:] in _MATH_POINTS

    def _namespace(self: StreamRewriter) -> bytes:
        """The namespace of the nearest open svg/math element (b"html" when none)."""
        return self._ns_stack[-1] if self._ns_stack else b"html"

    def _script_start(
        self: StreamRewriter,
        data: bytes,
        pos: int,
        end: int,
        name: bytes,
        *,
        foreign: bool,
        self_closing: bool = False,
    ) -> None:
        held = False
        if self._active:
            tag = data[pos:end]
            attr_list = parse_attrs(tag, len(name) + 1)
            attrs = first_values(attr_list)
            category: str | None = None
            if script_is_executable(attrs):
                category = self.policy.override(attrs)
                if category is None:
                    url = next((attrs[a] for a in _SCRIPT_URL_ATTRS if attrs.get(a)), None)
                    if url is not None:
                        category = self.policy.url_category(url, script=True)
                    elif not self_closing:
                        held = True
            if category is not None and not self.policy.allows(category):
                self._neutralize(pos, end, tag, len(name) + 1, attr_list, b"script", category)
        if self_closing or not self._switch:
            return
        self._state = S.SCRIPT
        self._esc = 0
        self._script_foreign = foreign
        if held:
            self._hold = pos
            self._script = (pos, len(name) + 1, end, name)
            self._content = end

    def _decide_script(self: StreamRewriter, data: bytes, end: int) -> None:
        """Classify the held inline script whose content ends at ``end``."""
        assert self._script is not None
        start, name_end, tag_end, _ = self._script
        length = end - self._content
        text = data[self._content : self._content + min(length, self._script_cap)]
        category = self.policy.inline_category(text)
        if category is None and length > self._script_cap:
            category = "unclassified"  # too long to read whole: the conservative choice
        if category is not None and not self.policy.allows(category):
            tag = data[start:tag_end]
            self._neutralize(
                start, tag_end, tag, name_end, parse_attrs(tag, name_end), b"script", category
            )
        self._hold = -1
        self._script = None

    def _url_element(self: StreamRewriter, data: bytes, pos: int, end: int, name: bytes) -> None:
        tag = data[pos:end]
        if self.policy.element_hint.search(tag.lower()) is None:
            return
        attr_list = parse_attrs(tag, len(name) + 1)
        attrs = first_values(attr_list)
        override = self.policy.override(attrs)
        if override == "necessary":
            return
        classify = self.policy.element_url_category
        if name == b"base":  # relative URLs resolve to its origin, whatever the path
            classify = self.policy.catalog.hint_category
        elif name == b"link" and not _PRELOAD.search(attrs.get(b"rel", b"")):
            if not _HINT.search(attrs.get(b"rel", b"")):
                return
            classify = self.policy.catalog.hint_category  # preconnect, dns-prefetch
        urls = [(a, attrs[a]) for a in URL_ATTRS[name] if attrs.get(a)]
        if name == b"meta":
            if attrs.get(b"http-equiv", b"").strip().lower() != b"refresh":
                return
            urls = [(b"content", refresh_url(attrs.get(b"content", b"")))]
        if not urls:
            return
        category = override
        if category is None:
            found = []
            for attr, value in urls:
                if attr == b"srcdoc":
                    markup = html.unescape(value.decode("latin-1"))
                    c = self.policy.catalog.code_category(markup)
                    if c is not None:
                        found.append(c)
                    if opaque_sandbox(attrs.get(b"sandbox")):
                        found.append("unclassified")
                    continue
                if attr == b"csp":
                    continue  # a policy, not a URL: the frame is held below
                if OPAQUE_URL.get(name) == attr and data_document(value):
                    found.append("unclassified")
                for url in _candidates(value, attr.endswith(b"srcset")):
                    c = classify(url)
                    if c is not None:
                        found.append(c)
            if name == b"iframe" and b"csp" in attrs:
                # a policy the frame's document must obey can refuse the guard's prefix
                found.append("unclassified")
            category = self.policy.strictest(found)
        if category is not None and not self.policy.allows(category):
            self._neutralize(pos, end, tag, len(name) + 1, attr_list, name, category)
        elif name == b"iframe" and b"srcdoc" in attrs:
            self._frame_prefix(pos, end, tag, attr_list)

    def _frame_prefix(
        self: StreamRewriter, pos: int, end: int, tag: bytes, attrs: list[Any]
    ) -> None:
        """A srcdoc frame kept: its document starts with a script that has the page's runtime
        guard patch the frame's window before the document's own scripts run (docs/guard.md)."""
        if self.policy.grants_everything or self._snippet is None:
            return  # no guard on the page
        attr = next((a for a in attrs if a.name == b"srcdoc"), None)
        if attr is None or not attr.value:
            return  # an empty document runs no script
        nonce = self._snippet_nonce
        # the frame stops its document when its origin turns out opaque ("null": the guard
        # cannot reach it) unless unclassified content is granted (guard.js fp())
        stop = "" if self.policy.allows("unclassified") else "origin.length==4&&stop()"
        script = (
            f"<script nonce={nonce}>" if nonce else "<script>"
        ) + f"try{{parent.consentgateFrame(window)}}catch{{{stop}}}</script>"
        prefix = "".join(f"&#{ord(c)};" if c in "<>\"' &" else c for c in script).encode()
        value = attr.value.replace(b'"', b"&quot;")
        edited = tag[: attr.start] + b'srcdoc="' + prefix + value + b'"' + tag[attr.value_end :]
        self._edit(pos, end, edited)

    def _neutralize(
        self: StreamRewriter,
        pos: int,
        end: int,
        tag: bytes,
        name_end: int,
        attr_list: list[Any],
        element: bytes,
        category: str,
    ) -> None:
        self._edit(pos, end, neutralize(tag, name_end, attr_list, element, category))
        self.stats[category] += 1

    # -- end tags -----------------------------------------------------------------------
    def _end_tag(self: StreamRewriter, data: bytes, pos: int, m: re.Match[bytes]) -> None:
        self._end_name(pos, m.group(2).translate(_UPPER))

    def _end_name(self: StreamRewriter, pos: int, name: bytes) -> None:
        if self._pending and name in (b"head", b"body", b"html"):
            self._inject(pos, None)
        stack = self._stack
        if not stack:
            return
        if self._foreign():
            if name in (b"br", b"p"):
                self._leave_foreign()
                return
            for i in range(len(stack) - 1, -1, -1):
                if stack[i].lstrip(b"!") == name:
                    self._pop_to(i)
                    return
        elif stack[-1] == b"!" + name:
            self._pop_to(len(stack) - 1)

    # -- tags that do not fit in one chunk ---------------------------------------------
    def _incomplete_tag(
        self: StreamRewriter,
        data: bytes,
        pos: int,
        final: bool,
        *,
        end_tag: bool,
        whole: re.Match[bytes] | None = None,
    ) -> int:
        n = len(data)
        if final and whole is None:
            return n  # EOF inside a tag: the tokenizer drops it; bytes pass through
        nm = _NAME.match(data, pos + 1 + end_tag)
        assert nm is not None
        name_end = nm.end()
        if name_end >= n and whole is None and name_end - pos < 64:
            return -1 - pos  # the name may continue
        name = nm.group().translate(_UPPER)
        foreign = self._foreign()
        if end_tag:
            self._end_name(pos, name)
            self._lt_after = None
        else:
            if whole is None and n - pos <= self._tag_cap and self._needs_whole(name, foreign):
                self._wait_gt = True
                return -1 - pos
            if foreign and (name in g.FOREIGN_BREAKOUT or name == b"font"):
                self._leave_foreign()
                foreign = self._foreign()
            if self._pending and name not in _HEAD_OK:
                self._inject(pos, None)
            if self._active and (name in _URL_ELEMENTS or name == b"script"):
                prefix = conservative_prefix(name)
                if prefix and not self.policy.allows("unclassified"):
                    self._edit(name_end, name_end, prefix)
                    self.stats["unclassified"] += 1
            self._lt_after = (name, foreign)
        self._lt = [_T_BEFORE, 0]
        self._state = S.LONGTAG
        return name_end

    def _needs_whole(self: StreamRewriter, name: bytes, foreign: bool) -> bool:
        if self._pending and name == b"meta":
            return True
        if not self._active:
            return False
        return name == b"script" or name in _URL_ELEMENTS

    def _longtag(self: StreamRewriter, data: bytes, pos: int, final: bool) -> int:
        """Stream through a tag too long to hold, following the attribute states."""
        st, slash = self._lt
        n = len(data)
        while pos < n:
            if st == _T_BEFORE:
                e = _WS_SLASH.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
                if e > pos:
                    slash = data[e - 1] == 0x2F
                pos = e
                if pos >= n:
                    break
                if data[pos] == 0x3E:
                    return self._longtag_done(pos + 1, bool(slash))
                st, slash, pos = _T_NAME, 0, pos + 1
            elif st == _T_NAME:
                pos = _ATTR_NAME_RUN.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
                if pos >= n:
                    break
                c = data[pos]
                if c == 0x3E:
                    return self._longtag_done(pos + 1, False)
                st = _T_BEFORE_VALUE if c == 0x3D else _T_BEFORE if c == 0x2F else _T_AFTER_NAME
                slash = c == 0x2F
                pos += 1
            elif st == _T_AFTER_NAME:
                pos = _WS.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
                if pos >= n:
                    break
                c = data[pos]
                if c == 0x3E:
                    return self._longtag_done(pos + 1, False)
                st = _T_BEFORE_VALUE if c == 0x3D else _T_BEFORE if c == 0x2F else _T_NAME
                slash = c == 0x2F
                pos += 1
            elif st == _T_BEFORE_VALUE:
                pos = _WS.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
                if pos >= n:
                    break
                c = data[pos]
                if c == 0x3E:
                    return self._longtag_done(pos + 1, False)
                if c in (0x22, 0x27):
                    st, pos = (_T_DQ if c == 0x22 else _T_SQ), pos + 1
                else:
                    st = _T_UNQ
            elif st in (_T_DQ, _T_SQ):
                q = data.find(b'"' if st == _T_DQ else b"'", pos)
                if q < 0:
                    pos = n
                    break
                st, slash, pos = _T_BEFORE, 0, q + 1
            else:  # unquoted value
                pos = _UNQUOTED_RUN.match(data, pos).end()  # type: ignore[union-attr]  # matches empty
                if pos >= n:
                    break
                if data[pos] == 0x3E:
                    return self._longtag_done(pos + 1, False)
                st = _T_BEFORE
        self._lt = [st, slash]
        return n

    def _longtag_done(self: StreamRewriter, end: int, sc: bool) -> int:
        self._state = S.DATA
        after = self._lt_after
        if after is not None:
            name, foreign = after
            if name == b"script" and not sc and (not foreign or self._namespace() == b"svg"):
                self._state = S.SCRIPT
                self._esc = 0
                self._script_foreign = foreign
            elif foreign:
                if name in (b"svg", b"math") and not sc:
                    self._push(name)
            else:
                self._enter_content(name, False, sc)
        return end

    # -- the head snippet ---------------------------------------------------------------
    def _inject(self: StreamRewriter, at: int, tag_nonce: bytes | None) -> None:
        self._pending = False
        nonce = tag_nonce.decode("latin-1").strip() if tag_nonce else None
        self._edit(at, at, self._snippet_bytes(nonce))

    def _snippet_bytes(self: StreamRewriter, tag_nonce: str | None) -> bytes:
        self._pending = False
        if self._snippet is None:
            return b""
        # the nonce the snippet's scripts carry, kept for the srcdoc frames' prefix
        self._snippet_nonce = self._nonce or self._meta_nonce or tag_nonce or None
        return self._snippet(self._snippet_nonce)

    def _token(self: StreamRewriter, kind: str, data: bytes, start: int, end: int) -> None:
        if self._on_token is not None:
            self._on_token(kind, data, start, end)


def _self_closing(data: bytes, pos: int, end: int) -> bool:
    """Does the tag ``data[pos:end]`` carry the self-closing flag (``/>`` not in a value)?"""
    if data[end - 2] != 0x2F:
        return False
    tag = data[pos:end]
    attrs = parse_attrs(tag, _NAME.match(tag, 1).end())  # type: ignore[union-attr]
    # an unquoted value running into the '>' owns the slash
    return not (attrs and attrs[-1].value_end == len(tag) - 1 and not attrs[-1].quoted)


def _candidates(value: bytes, srcset: bool) -> list[bytes]:
    """URLs in a ``src`` or ``srcset`` value."""
    if not srcset:
        return [value]
    out = []
    for part in value.split(b","):
        words = part.split()
        if words:
            out.append(words[0])
    return out


_TOKEN_POLICY: list[Any] = []


def _token_policy() -> Any:
    if not _TOKEN_POLICY:
        from ..consent import CATEGORIES
        from .policy import RewritePolicy

        _TOKEN_POLICY.append(RewritePolicy(granted=frozenset(CATEGORIES)))
    return _TOKEN_POLICY[0]
