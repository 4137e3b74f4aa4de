"""The html5lib tokenizer suite (../shared/corpus/html5lib-tests/tokenizer/) drives the
rewriter's tokenizer for the token kinds it produces.

The rewriter's tokenizer reports byte spans of start tags, end tags, comments, bogus
comments and doctypes (``on_token``) and parses attributes with byte positions; this
driver turns those spans into html5lib tokens and compares them with the suite.

Exclusions, all deliberate:

* ``Character`` tokens are not compared: the rewriter never tokenizes text, it copies it
  byte for byte (character references, NUL and CR handling never change the output).
* ``DOCTYPE`` tokens are compared by their presence only: the rewriter only needs the
  doctype's extent (it always ends at the first ``>``), never its name or identifiers.
* ``Script data state`` with a ``lastStartTag`` other than ``script`` (or none): the
  rewriter enters script data only after ``<script>``, so its appropriate end tag is
  always ``</script>``.
* Inputs with lone surrogates (``unicodeCharsProblematic``): they cannot be bytes of any
  ASCII-compatible encoding.
* ``xmlViolation.test``: it tests an XML-coercing serializer, not the tokenizer.

The parse-error lists are not compared (the rewriter reports no errors).
"""

from __future__ import annotations

import html.entities
import json
import re
from typing import Any

import pytest
from html5lib.constants import replacementCharacters

from consentgate.consent import CATEGORIES
from consentgate.rewriter import RewritePolicy, StreamRewriter, _states
from consentgate.rewriter.elements import first_values, parse_attrs
from consentgate.rewriter.grammar import rawtext_end
from tests.support import CORPUS

SUITE = CORPUS / "html5lib-tests" / "tokenizer"
ALL = RewritePolicy(granted=frozenset(CATEGORIES))
NEVER = re.compile(rb"(?!)")
STATES = {
    "Data state": _states.DATA,
    "PLAINTEXT state": _states.PLAINTEXT,
    "RCDATA state": _states.RAWTEXT,
    "RAWTEXT state": _states.RAWTEXT,
    "Script data state": _states.SCRIPT,
    "CDATA section state": _states.CDATA,
}


FILES = sorted(
    p.name
    for p in SUITE.glob("*.test")
    if p.name not in ("xmlViolation.test", "unicodeCharsProblematic.test")
)


def _cases(name: str) -> list[tuple[int, dict[str, Any], str]]:
    cases = []
    for i, test in enumerate(json.loads((SUITE / name).read_text()).get("tests", [])):
        for state in test.get("initialStates", ["Data state"]):
            if state == "Script data state" and test.get("lastStartTag") != "script":
                continue
            cases.append((i, test, state))
    return cases


def _unescape_double(s: str) -> str:
    return re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), s)


def _deep_unescape(value: Any) -> Any:
    if isinstance(value, str):
        return _unescape_double(value)
    if isinstance(value, list):
        return [_deep_unescape(v) for v in value]
    if isinstance(value, dict):
        return {_unescape_double(k): _deep_unescape(v) for k, v in value.items()}
    return value


def _text(raw: bytes) -> str:
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")


_REF = re.compile(r"&(?:#[xX]([0-9a-fA-F]+);?|#([0-9]+);?|([A-Za-z0-9]+)(;?))")
_NAMED = html.entities.html5


def _numeric(num: int) -> str:
    if num == 0 or num > 0x10FFFF or 0xD800 <= num <= 0xDFFF:
        return "\ufffd"
    return replacementCharacters.get(num, chr(num))


def unescape_attr(s: str) -> str:
    """Character references in an attribute value, per the spec's attribute rules."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return _numeric(int(m.group(1), 16))
        if m.group(2) is not None:
            return _numeric(int(m.group(2)))
        name, semi = m.group(3), m.group(4)
        if semi and name + ";" in _NAMED:
            return _NAMED[name + ";"]
        for i in range(len(name), 0, -1):
            if name[:i] in _NAMED:  # a legacy reference without ';'
                nxt = name[i : i + 1] or semi or s[m.end() : m.end() + 1]
                if nxt and (nxt == "=" or nxt.isalnum()):
                    return m.group(0)
                return _NAMED[name[:i]] + name[i:] + semi
        return m.group(0)

    return _REF.sub(repl, s)


def _comment_data(raw: bytes) -> str:
    if raw.startswith(b"<!--"):
        body = raw[4:]
        if body in (b">", b"->"):
            return ""
        for end in (b"--!>", b"-->"):
            if body.endswith(end) and len(body) >= len(end):
                return _text(body[: -len(end)])
        for tail in (b"--!", b"--", b"-"):  # EOF in a comment end state
            if body.endswith(tail):
                return _text(body[: -len(tail)])
        return _text(body)
    start = 1 if raw.startswith(b"<?") else 2  # <?x keeps the '?'; <!x and </x drop 2
    body = raw[start:]
    return _text(body[:-1] if body.endswith(b">") else body)


def tokens(data: bytes, state: str, last: str | None) -> list[list[Any]]:
    out: list[list[Any]] = []

    def on_token(kind: str, buf: bytes, start: int, end: int) -> None:
        raw = buf[start:end]
        if kind in ("start", "end"):
            name_end = re.match(rb"</?[^\t\n\f\r />]*", raw).end()  # type: ignore[union-attr]
            name = _text(raw[1 + (kind == "end") : name_end]).lower()
            if kind == "end":
                out.append(["EndTag", name])
                return
            attrs = {
                _text(k): unescape_attr(_text(v))
                for k, v in first_values(parse_attrs(raw, name_end)).items()
            }
            token: list[Any] = ["StartTag", name, attrs]
            if raw.endswith(b"/>") and _self_closing(raw, name_end):
                token.append(True)
            out.append(token)
        elif raw[:9].lower() == b"<!doctype":
            out.append(["DOCTYPE"])
        else:
            out.append(["Comment", _comment_data(raw)])

    rw = StreamRewriter(ALL, on_token=on_token, switch_states=False)
    rw._state = STATES[state]
    if state in ("RCDATA state", "RAWTEXT state"):
        rw._end_re = rawtext_end(last.encode()) if last else NEVER
        rw._tail = 64
    rw.feed(data)
    rw.finish()
    return out


def _self_closing(raw: bytes, name_end: int) -> bool:
    attrs = parse_attrs(raw, name_end)
    return not (attrs and attrs[-1].value_end == len(raw) - 1 and not attrs[-1].quoted)


def _expected(test: dict[str, Any]) -> list[list[Any]]:
    out = []
    for tok in test["output"]:
        if test.get("doubleEscaped"):
            tok = _deep_unescape(tok)
        if tok[0] == "Character":
            continue
        if tok[0] == "DOCTYPE":
            out.append(["DOCTYPE"])
        elif tok[0] == "StartTag":
            out.append(tok[:3] + ([True] if len(tok) > 3 and tok[3] else []))
        else:
            out.append(tok)
    return out


@pytest.mark.parametrize("name", FILES)
def test_html5lib_tokenizer(name: str) -> None:
    failures = []
    for i, test, state in _cases(name):
        text = test["input"]
        if test.get("doubleEscaped"):
            text = _unescape_double(text)
        got = tokens(text.encode("utf-8"), state, test.get("lastStartTag"))
        want = _expected(test)
        if got != want:
            failures.append(f"#{i} {test['description']!r} ({state}): {got} != {want}")
    assert failures == []


def test_suite_is_present_and_large() -> None:
    assert len(FILES) == 12
    assert sum(len(_cases(name)) for name in FILES) > 6900
