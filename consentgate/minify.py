"""A small, conservative JavaScript and CSS minifier for the banner's own sources.

Only whitespace and comments go; names are kept. Strings, template literals (with nested
``${...}``) and regular expression literals pass through untouched. Line breaks are kept
(one per run) because the banner's source relies on automatic semicolon insertion.
"""

from __future__ import annotations

import re

__all__ = ["minify_css", "minify_js"]

_WORD = re.compile(r"[A-Za-z0-9_$]")
# After these characters (or keywords) a "/" starts a regular expression, not a division.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^\n")
# A line break next to these cannot end a statement, so it can go.
_NO_BREAK_AFTER = set("{[(,;:=&|?+-*<>!")
_NO_BREAK_BEFORE = set(")]},.;:?&|=")
_GLUED = ("++", "--", "+-", "-+")
_REGEX_KEYWORDS = ("return", "typeof", "case", "do", "else", "in", "of", "void", "yield")


def _is_word(ch: str) -> bool:
    return bool(ch) and bool(_WORD.match(ch))


def minify_js(source: str) -> str:
    out: list[str] = []
    i, n = 0, len(source)
    braces: list[int] = []  # brace depth at each open template ${ ... }
    depth = 0
    pending = ""  # whitespace seen since the last emitted character: "", " " or "\n"

    def last() -> str:
        return out[-1][-1] if out and out[-1] else ""

    def emit(text: str) -> None:
        nonlocal pending
        if pending:
            prev = last()
            if (
                pending == "\n"
                and out
                and prev not in _NO_BREAK_AFTER
                and text[0] not in _NO_BREAK_BEFORE
            ):
                out.append("\n")
            elif (_is_word(prev) and _is_word(text[0])) or prev + text[0] in _GLUED:
                out.append(" ")
            pending = ""
        out.append(text)

    def template_from(j: int) -> int:
        """Copy a template literal body starting after ` (or after }); return the index after
        its end or after the ${ that interrupts it."""
        nonlocal depth
        start = j
        while j < n:
            c = source[j]
            if c == "\\":
                j += 2
                continue
            if c == "`":
                emit(source[start : j + 1])
                return j + 1
            if c == "$" and j + 1 < n and source[j + 1] == "{":
                emit(source[start : j + 2])
                braces.append(depth)
                depth += 1
                return j + 2
            j += 1
        raise ValueError("unterminated template literal")

    while i < n:
        c = source[i]
        if c in " \t\r\n":
            if c == "\n" or (pending == "\n"):
                pending = "\n"
            elif not pending:
                pending = " "
            i += 1
            continue
        if source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
            continue
        if source.startswith("/*", i):
            end = source.index("*/", i + 2)
            i = end + 2
            continue
        if c in "'\"":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            emit(source[i : j + 1])
            i = j + 1
            continue
        if c == "`":
            emit("`")
            i = template_from(i + 1)
            continue
        if c == "/" and _regex_allowed(out, pending):
            j, in_class = i + 1, False
            while True:
                d = source[j]
                if d == "\\":
                    j += 2
                    continue
                if d == "[":
                    in_class = True
                elif d == "]":
                    in_class = False
                elif d == "/" and not in_class:
                    break
                j += 1
            j += 1
            while j < n and source[j].isalpha():
                j += 1
            emit(source[i:j])
            i = j
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if braces and braces[-1] == depth:
                braces.pop()
                emit("}")
                i = template_from(i + 1)
                continue
        emit(c)
        i += 1
    return "".join(out).strip()


def _regex_allowed(out: list[str], pending: str = "") -> bool:
    text = "".join(out[-8:]).rstrip()
    if not text:
        return True
    if pending == "\n" and text[-1] in ")]}":
        return False
    if text[-1] in _REGEX_AFTER:
        return True
    return any(
        text.endswith(k) and (len(text) == len(k) or not _is_word(text[-len(k) - 1]))
        for k in _REGEX_KEYWORDS
    )


def minify_css(source: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r" ?([{}:;,>!]) ?", r"\1", text).replace(";}", "}").strip()
