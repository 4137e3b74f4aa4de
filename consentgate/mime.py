"""A response's MIME type as a browser reads it (pure: bytes in, answers out).

- :func:`parse_mime_type` is WHATWG MIME Sniffing's "parse a MIME type".
- :func:`extract_mime_type` is WHATWG Fetch's "extract a MIME type": every
  ``Content-Type`` header, comma lists included, and the *last* valid type wins (a
  ``*/*`` or an invalid item is skipped); not the first header.
- :func:`nosniff` is Fetch's "determine nosniff" (``X-Content-Type-Options``).
- :func:`sniff` is the navigation sniffer for a response whose type is unknown (no
  valid type, ``unknown/unknown``, ``application/unknown``, ``*/*``): the first
  :data:`SNIFF_BYTES` bytes of the *decoded* body, leading ASCII whitespace skipped,
  compared case-insensitively with the patterns Chromium's ``net/base/mime_sniffer.cc``
  renders as a document (``<?xml`` -> XML; ``<!DOCTYPE html``, ``<script``, ``<html``,
  ``<!--``, ``<head``, ``<iframe``, ``<h1``, ``<div``, ``<font``, ``<table``, ``<a``,
  ``<style``, ``<title``, ``<b``, ``<body``, ``<br``, ``<p`` -> HTML). It needs that many
  bytes, or the whole body when shorter, whatever the reads they arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "SNIFF_BYTES",
    "UNKNOWN_TYPES",
    "MimeType",
    "extract_mime_type",
    "is_xml_type",
    "nosniff",
    "parse_mime_type",
    "sniff",
]

#: How many decoded body bytes the HTML sniffer looks at (Chromium: 512).
SNIFF_BYTES = 512
#: Supplied types that mean "the server does not know": the browser sniffs.
UNKNOWN_TYPES = frozenset({"unknown/unknown", "application/unknown", "*/*"})

_HTTP_WS = " \t\n\r"
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ASCII_WS = b" \t\n\x0b\x0c\r"
_HTML_PATTERNS = tuple(
    b"<" + tag
    for tag in (
        b"!doctype html",
        b"script",
        b"html",
        b"!--",
        b"head",
        b"iframe",
        b"h1",
        b"div",
        b"font",
        b"table",
        b"a",
        b"style",
        b"title",
        b"b",
        b"body",
        b"br",
        b"p",
    )
)


@dataclass(frozen=True, slots=True)
class MimeType:
    type: str
    subtype: str
    parameters: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        return self.parameters.get("charset")


def _is_token(s: str) -> bool:
    return bool(s) and all(c in _TOKEN for c in s)


def _quoted_ok(s: str) -> bool:
    """HTTP quoted-string token code points: tab, 0x20-0x7E, 0x80-0xFF."""
    return all(c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff" for c in s)


def _collect_quoted(s: str, pos: int, extract_value: bool) -> tuple[str, int]:
    """Fetch's "collect an HTTP quoted string" starting at the ``"`` at ``pos``."""
    start = pos
    value = ""
    pos += 1
    while True:
        end = pos
        while end < len(s) and s[end] not in '"\\':
            end += 1
        value += s[pos:end]
        pos = end
        if pos >= len(s):
            break
        quote_or_backslash = s[pos]
        pos += 1
        if quote_or_backslash == "\\":
            if pos >= len(s):
                value += "\\"
                break
            value += s[pos]
            pos += 1
        else:
            break
    return (value if extract_value else s[start:pos]), pos


def parse_mime_type(text: str) -> MimeType | None:
    """WHATWG "parse a MIME type"; None on failure."""
    s = text.strip(_HTTP_WS)
    slash = s.find("/")
    if slash < 0:
        return None
    type_ = s[:slash]
    if not _is_token(type_):
        return None
    pos = slash + 1
    semi = s.find(";", pos)
    end = len(s) if semi < 0 else semi
    subtype = s[pos:end].rstrip(_HTTP_WS)
    if not _is_token(subtype):
        return None
    mime = MimeType(type_.lower(), subtype.lower(), {})
    pos = end
    while pos < len(s):
        pos += 1  # the ";"
        while pos < len(s) and s[pos] in _HTTP_WS:
            pos += 1
        name_end = pos
        while name_end < len(s) and s[name_end] not in ";=":
            name_end += 1
        name = s[pos:name_end].lower()
        pos = name_end
        if pos < len(s):
            if s[pos] == ";":
                continue
            pos += 1  # the "="
        if pos >= len(s):
            break
        if s[pos] == '"':
            value, pos = _collect_quoted(s, pos, True)
            while pos < len(s) and s[pos] != ";":
                pos += 1
        else:
            value_end = s.find(";", pos)
            value_end = len(s) if value_end < 0 else value_end
            value = s[pos:value_end].rstrip(_HTTP_WS)
            pos = value_end
            if not value:
                continue
        if _is_token(name) and _quoted_ok(value) and name not in mime.parameters:
            mime.parameters[name] = value
    return mime


def _split_values(values: Iterable[bytes]) -> list[str]:
    """Fetch's "get, decode, and split": the headers' values joined with ", ", split on
    commas outside quoted strings, HTTP tab/space trimmed."""
    joined = ", ".join(v.decode("latin-1") for v in values)
    out: list[str] = []
    pos = 0
    value = ""
    while True:
        end = pos
        while end < len(joined) and joined[end] not in '",':
            end += 1
        value += joined[pos:end]
        pos = end
        if pos < len(joined) and joined[pos] == '"':
            quoted, pos = _collect_quoted(joined, pos, False)
            value += quoted
            if pos < len(joined):
                continue
        out.append(value.strip(" \t"))
        if pos >= len(joined):
            return out
        pos += 1  # the ","
        value = ""


def extract_mime_type(values: Iterable[bytes]) -> MimeType | None:
    """Fetch's "extract a MIME type" from all ``Content-Type`` header values (in order);
    None is failure (no header, or no valid type in any of them)."""
    values = list(values)
    if not values:
        return None
    charset: str | None = None
    essence: str | None = None
    mime: MimeType | None = None
    for value in _split_values(values):
        found = parse_mime_type(value)
        if found is None or found.essence == "*/*":
            continue
        mime = found
        if mime.essence != essence:
            charset = mime.parameters.get("charset")
            essence = mime.essence
        elif "charset" not in mime.parameters and charset is not None:
            mime.parameters["charset"] = charset
    return mime


def nosniff(values: Iterable[bytes]) -> bool:
    """Fetch's "determine nosniff": the first ``X-Content-Type-Options`` item."""
    split = _split_values(list(values)) if values else []
    return bool(split) and split[0].lower() == "nosniff"


def is_xml_type(essence: str) -> bool:
    """An XML MIME type (``*/xml``, ``*+xml``) or XSLT: the browser builds an XML
    document from it, in which XHTML ``script`` elements, SVG scripts, event handler
    attributes, entities and style sheets can run script."""
    return essence.endswith(("+xml", "/xml")) or essence == "text/xsl"


def sniff(data: bytes) -> str | None:
    """``"text/html"``, ``"text/xml"`` or None (not a document that runs script) for an
    unknown type, from the first :data:`SNIFF_BYTES` decoded bytes (the caller waits
    for that many, or for the end of the body)."""
    head = data[:SNIFF_BYTES].lstrip(_ASCII_WS)
    nul = head.find(b"\0")
    if nul >= 0:
        head = head[:nul]
    head = head[:16].lower()
    if head.startswith(b"<?xml"):
        return "text/xml"
    if head.startswith(_HTML_PATTERNS):
        return "text/html"
    return None
