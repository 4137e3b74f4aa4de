"""Start tags: attribute parsing with byte positions, and the neutralizing edit.

Neutralizing changes only the start tag:

* scripts get ``type="text/plain" data-consent="<category>"`` inserted right after the
  tag name (the first of duplicate attributes wins, so it beats any later ``type``),
  and an existing ``type`` attribute is renamed ``data-consentgate-type`` (its value
  bytes untouched) so the banner can restore it;
* URL-bearing elements get ``data-consent="<category>"`` inserted and every URL
  attribute renamed ``data-consentgate-<name>`` (``src`` -> ``data-consentgate-src``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .grammar import ATTR

__all__ = ["URL_ATTRS", "Attr", "neutralize", "parse_attrs", "refresh_url"]

_UPPER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

#: Attributes holding a URL that loads something, per element.
URL_ATTRS: dict[bytes, frozenset[bytes]] = {
    b"script": frozenset({b"src", b"href", b"xlink:href", b"data-src", b"data-lazy-src"}),
    # srcdoc is the frame's document itself (markup, classified by what is written in it);
    # csp a policy imposed on it, which can refuse the runtime guard's prefix (held with it)
    b"iframe": frozenset({b"src", b"srcdoc", b"data-src", b"data-lazy-src", b"csp"}),
    b"frame": frozenset({b"src"}),
    b"embed": frozenset({b"src"}),
    b"object": frozenset({b"data"}),
    b"img": frozenset({b"src", b"srcset", b"data-src", b"data-lazy-src", b"data-srcset"}),
    b"image": frozenset({b"src", b"srcset", b"href", b"xlink:href", b"data-src"}),
    b"source": frozenset({b"src", b"srcset", b"data-src", b"data-srcset"}),
    b"video": frozenset({b"src", b"poster"}),
    b"audio": frozenset({b"src"}),
    b"input": frozenset({b"src"}),  # type=image: an image button
    b"track": frozenset({b"src"}),  # a default text track loads with its media
    # a background image (HTML's legacy attribute) and an SVG filter's image load too
    b"body": frozenset({b"background"}),
    b"table": frozenset({b"background"}),
    b"td": frozenset({b"background"}),
    b"th": frozenset({b"background"}),
    b"feimage": frozenset({b"href", b"xlink:href"}),
    b"link": frozenset({b"href", b"imagesrcset"}),
    # the document's base URL: every relative URL after it resolves there
    b"base": frozenset({b"href"}),
    # <meta http-equiv=refresh content="0;url=...">: the browser goes there
    b"meta": frozenset({b"content"}),
}

#: The URL of a refresh (``Refresh`` header, ``<meta http-equiv=refresh>``), per HTML's
#: "shared declarative refresh steps": a delay, ``;`` or ``,``, optional ``url=``, quotes.
_WS = rb"[\t\n\f\r ]*"
_REFRESH_URL = re.compile(
    rb"(?i)^"
    + _WS
    + rb"[\d.]*"
    + _WS
    + rb"[;,]?"
    + _WS
    + rb"(?:url"
    + _WS
    + rb"="
    + _WS
    + rb")?[\"']?([^\"']*)"
)


def refresh_url(value: bytes) -> bytes:
    """The URL a refresh goes to (b"": the page itself)."""
    m = _REFRESH_URL.match(value)
    return m.group(1).strip() if m else b""


class Attr(NamedTuple):
    name: bytes  # lower-cased
    start: int  # offset of the name inside the tag
    end: int  # end of the name
    value: bytes | None  # raw value without quotes (character references not decoded)
    value_end: int = 0  # offset just after the value (after its closing quote)
    quoted: bool = False


def parse_attrs(tag: bytes, name_end: int) -> list[Attr]:
    """Attributes of a complete tag ``tag`` (``<`` ... ``>``) in source order."""
    out: list[Attr] = []
    pos = name_end
    limit = len(tag) - 1
    while pos < limit:
        m = ATTR.match(tag, pos)
        if m is None:
            break
        value = m.group(2)
        quoted = value is not None and value[:1] in (b'"', b"'")
        if quoted:
            value = value[1:-1]
        out.append(Attr(m.group(1).translate(_UPPER), m.start(1), m.end(1), value, m.end(), quoted))
        pos = m.end()
    return out


def first_values(attrs: list[Attr]) -> dict[bytes, bytes]:
    """name -> value of the first occurrence (as browsers keep it); no value -> b''."""
    out: dict[bytes, bytes] = {}
    for a in attrs:
        if a.name not in out:
            out[a.name] = a.value if a.value is not None else b""
    return out


def neutralize(
    tag: bytes, name_end: int, attrs: list[Attr], element: bytes, category: str
) -> bytes:
    """The start tag made inert for ``category`` (see the module docstring)."""
    cat = category.encode()
    if element == b"script":
        insert = b' type="text/plain" data-consent="' + cat + b'"'
        renames = {b"type", *URL_ATTRS[b"script"] - {b"src"}}
    else:
        insert = b' data-consent="' + cat + b'"'
        renames = set(URL_ATTRS.get(element, ()))
    pieces = [tag[:name_end], insert]
    pos = name_end
    for a in attrs:
        if a.name in renames:
            pieces.append(tag[pos : a.start])
            pieces.append(b"data-consentgate-" + a.name.replace(b":", b"-"))
            pos = a.end
    pieces.append(tag[pos:])
    return b"".join(pieces)


def conservative_prefix(element: bytes) -> bytes:
    """Attributes inserted after the name of an over-long start tag that must be inert.

    The first of duplicate attributes wins, so these beat whatever the tag holds later."""
    if element == b"script":
        return b' type="text/plain" data-consent="unclassified" data-consentgate-oversize'
    if element in (b"iframe", b"frame"):
        extra = b' src="about:blank"'
    elif element == b"object":
        extra = b' data=""'
    elif element in (b"img", b"image", b"source"):
        extra = b' src="" srcset=""'
    elif element == b"embed":
        extra = b' src=""'
    else:
        return b""
    return b' data-consent="unclassified" data-consentgate-oversize' + extra
