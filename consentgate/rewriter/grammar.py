"""Byte-level regular expressions for the WHATWG tokenizer states the rewriter needs.

Every pattern works on ``bytes`` of any ASCII-compatible encoding: tag and attribute
syntax only uses ASCII, so nothing is ever decoded. Quantifiers are possessive or
atomic, so a failing match (an incomplete construct at the end of a chunk) costs
linear time and never backtracks.

The attribute grammar follows the spec's states exactly: names run until
whitespace, ``/``, ``>`` or ``=`` (a leading ``=`` belongs to the name); ``"`` and
``'`` only start a value right after ``=``; unquoted values run until whitespace or
``>``; a ``/`` not followed by ``>`` is skipped like whitespace.
"""

from __future__ import annotations

import re

__all__ = [
    "ATTR",
    "BOGUS_END",
    "CDATA_END",
    "COMMENT_END",
    "FOREIGN_BREAKOUT",
    "RUN_FOREIGN",
    "RUN_HTML",
    "RUN_IP",
    "RUN_TEXT",
    "SCRIPT_DOUBLE_EVENT",
    "SCRIPT_ESCAPED_EVENT",
    "SCRIPT_EVENT",
    "TAG",
    "rawtext_end",
]

_WS = rb"\t\n\f\r "
# A value after '=' is mandatory: quoted, unquoted (never starting with a quote), or
# empty right before '>'. An unclosed quote therefore never matches: the tag is incomplete.
_VALUE = rb"(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'][^\t\n\f\r >]*+|(?=>))"
ATTRS = (
    rb"(?:[\t\n\f\r /]*+[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb"|(?![\t\n\f\r ]*+=)))*+"
    rb"[\t\n\f\r /]*+"
)
_NAME = rb"[A-Za-z][^\t\n\f\r />]*+"

#: A complete start or end tag; group 1 is ``/`` for end tags, group 2 the raw name.
TAG = re.compile(rb"<(/?)(" + _NAME + rb")" + ATTRS + rb">")

#: One attribute inside a tag (apply from just after the tag name).
ATTR = re.compile(
    rb"[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(" + _VALUE[3:-1] + rb")|(?![\t\n\f\r ]*+=))"
)

_DELIM = rb"(?=[\t\n\f\r />])"
# Start tags the rewriter must look at in HTML content (the rest are skipped in C).
_HTML_INTERESTING = (
    rb"(?i:s(?:cript|tyle|vg|ource)|i(?:frame|mg|mage|nput)|frame|embed|object|link|base|meta|video|audio|"
    rb"t(?:extarea|itle|rack|able|[dh])|body|xmp|no(?:embed|frames|script)|plaintext|math|"
    rb"mglyph|malignmark)" + _DELIM
)
# In SVG/MathML content: tags that change the namespace or are scripts.
_FOREIGN_INTERESTING = (
    rb"(?i:s(?:cript|vg|pan|trong|trike|ub|up|mall)|math|foreignobject|desc|title|"
    rb"m[ionst]|mtext|annotation-xml|b|big|blockquote|body|br|center|code|d[dlt]|div|"
    rb"em|embed|h[1-6]|head|hr|i|img|image|li|listing|menu|meta|nobr|ol|p|pre|ruby|s|"
    rb"table|tt|u|ul|var|font|iframe|frame|object|source|link|feimage)" + _DELIM
)
_OTHER = (
    rb"|<!--(?:-?>|[\s\S]*?--!?>)"  # comments, including <!--> and <!--->, ending -->/--!>
    rb"|<!(?!--)[^>]*+>"  # doctype and bogus comments (and <![CDATA[ in HTML content)
    rb"|<\?[^>]*+>|</>|</(?![A-Za-z>])[^>]*+>"  # more bogus comments; </> is dropped
    rb"|<(?=[^A-Za-z!/?])"  # a '<' that starts nothing is text
)
# In foreign content <![CDATA[ starts a CDATA section, handled outside the run.
_OTHER_FOREIGN = _OTHER.replace(rb"<!(?!--)", rb"<!(?!--)(?!\[CDATA\[)")

#: Longest run of HTML content needing no attention: text, uninteresting tags, comments.
RUN_HTML = re.compile(
    rb"(?:[^<]++|<(?!" + _HTML_INTERESTING + rb")" + _NAME + ATTRS + rb">"
    rb"|</" + _NAME + ATTRS + rb">" + _OTHER + rb")*+"
)
#: The same inside SVG/MathML; end tags matter here (they close foreign elements).
RUN_FOREIGN = re.compile(
    rb"(?:[^<]++|<(?!" + _FOREIGN_INTERESTING + rb")" + _NAME + ATTRS + rb">"
    rb"|</(?!(?i:svg|math|foreignobject|desc|title|m[ionst]|mtext|annotation-xml|br|p|script)"
    + _DELIM
    + rb")"
    + _NAME
    + ATTRS
    + rb">"
    + _OTHER_FOREIGN
    + rb")*+"
)
#: HTML content inside an SVG/MathML integration point: its end tags matter.
RUN_IP = re.compile(
    rb"(?:[^<]++|<(?!" + _HTML_INTERESTING + rb")" + _NAME + ATTRS + rb">"
    rb"|</(?!(?i:svg|math|foreignobject|desc|title|m[ionst]|mtext|annotation-xml)"
    + _DELIM
    + rb")"
    + _NAME
    + ATTRS
    + rb">"
    + _OTHER
    + rb")*+"
)
#: Only text (used before the head snippet is placed, and by the token test driver).
RUN_TEXT = re.compile(rb"(?:[^<]++|<(?=[^A-Za-z!/?]))*+")

COMMENT_END = re.compile(rb"--!?>")
BOGUS_END = re.compile(rb">")
CDATA_END = re.compile(rb"]]>")

FOREIGN_BREAKOUT = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i "
    b"img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table "
    b"tt u ul var".split()
)

_RAWTEXT_END: dict[bytes, re.Pattern[bytes]] = {}


def rawtext_end(name: bytes) -> re.Pattern[bytes]:
    """``</name`` followed by whitespace, ``/`` or ``>`` (an appropriate end tag)."""
    pattern = _RAWTEXT_END.get(name)
    if pattern is None:
        pattern = re.compile(rb"</(?i:" + re.escape(name) + rb")" + _DELIM)
        _RAWTEXT_END[name] = pattern
    return pattern


#: Script data: the first place the escape state can change or the script can end.
SCRIPT_EVENT = re.compile(rb"<(?:!--|/(?i:script)" + _DELIM + rb")")
#: Script data escaped: ``-->`` leaves, ``<script`` enters double-escaped, ``</script`` ends.
SCRIPT_ESCAPED_EVENT = re.compile(rb"-->|<(/?)(?i:script)" + _DELIM)
#: Script data double escaped: ``-->`` returns to script data, ``</script`` to escaped.
SCRIPT_DOUBLE_EVENT = re.compile(rb"-->|</(?i:script)" + _DELIM)
