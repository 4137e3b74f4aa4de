"""A small, conservative JavaScript and CSS minifier for the banner's own sources.

:func:`minify_js` removes whitespace and comments. Strings, template literals (with nested
``${...}``) and regular expression literals pass through untouched. Line breaks are kept
(one per run) because the banner's source relies on automatic semicolon insertion.
:func:`mangle_js`, run before it, gives the banner's own bindings short names (only names
the source declares; never a property, an object key, a shorthand or a global).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["mangle_js", "minify_css", "minify_js"]

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


def _template_end(source: str, j: int) -> tuple[int, bool]:
    """A template literal's text from ``j`` (after its opening `` ` `` or a ``}``): the index
    after its closing `` ` `` (False) or after the ``${`` that interrupts it (True)."""
    n = len(source)
    while j < n:
        c = source[j]
        if c == "\\":
            j += 2
        elif c == "`":
            return j + 1, False
        elif source.startswith("${", j):
            return j + 2, True
        else:
            j += 1
    raise ValueError("unterminated template literal")


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
        end, interrupted = _template_end(source, j)
        emit(source[j:end])
        if interrupted:
            braces.append(depth)
            depth += 1
        return end

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


# ---- renaming: shorter names for the banner's own bindings --------------------------------

_KEYWORDS = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "let",
        "new",
        "null",
        "of",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "async",
        "await",
        "get",
        "set",
        "arguments",
        "undefined",
        "eval",
        "NaN",
        "Infinity",
    ]
)
_DECLARE = frozenset({"const", "let", "var", "function", "class"})
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"\.?[0-9][0-9A-Za-z_.]*")


def _tokens(source: str) -> list[tuple[str, str]]:
    """The source as (kind, text) tokens, every character kept: ``id``, ``num``, ``str``
    (strings, regular expressions, template text), ``ws`` (whitespace and comments) and
    ``p`` (one punctuation character)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(source)
    braces: list[int] = []  # brace depth at each open template ${
    depth = 0

    def significant() -> tuple[str, str]:
        for kind, text in reversed(out):
            if kind != "ws":
                return kind, text
        return "p", "("

    def template(j: int) -> int:
        """Template text from j (after ` or }) to its end or to the next ${."""
        nonlocal depth
        end, interrupted = _template_end(source, j)
        out.append(("str", source[j:end]))
        if interrupted:
            braces.append(depth)
            depth += 1
        return end

    while i < n:
        c = source[i]
        if c in " \t\r\n":
            j = i
            while j < n and source[j] in " \t\r\n":
                j += 1
            out.append(("ws", source[i:j]))
            i = j
        elif source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(("ws", source[i:j]))
            i = j
        elif source.startswith("/*", i):
            j = source.index("*/", i + 2) + 2
            out.append(("ws", source[i:j]))
            i = j
        elif c in "'\"":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(("str", source[i : j + 1]))
            i = j + 1
        elif c == "`":
            i = template(i + 1)
            out[-1] = ("str", "`" + out[-1][1])
        elif c == "/" and _regex_start(significant()):
            j, in_class = i + 1, False
            while source[j] != "/" or in_class:
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            j += 1
            while j < n and source[j].isalpha():
                j += 1
            out.append(("str", source[i:j]))
            i = j
        elif m := _IDENT.match(source, i):
            out.append(("id", m.group()))
            i = m.end()
        elif m := _NUMBER.match(source, i):
            out.append(("num", m.group()))
            i = m.end()
        else:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if braces and braces[-1] == depth:
                    braces.pop()
                    i = template(i + 1)
                    out[-1] = ("str", "}" + out[-1][1])
                    continue
            out.append(("p", c))
            i += 1
    return out


def _regex_start(previous: tuple[str, str]) -> bool:
    kind, text = previous
    if kind in ("num", "str"):
        return False
    if kind == "id":
        return text in _REGEX_KEYWORDS
    return text not in ")]}"


def _short_names() -> Iterator[str]:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    yield from letters
    for first in letters:
        for second in letters + "0123456789_$":
            yield first + second


def _declarator_lists(toks: list[tuple[str, str]], sig: list[int]) -> set[int]:
    """Token indexes of the names declared after the first in ``let``/``const``/``var``
    lists on one line (``let a = 1, b, c``). A list ends at a line break or ``;`` outside
    brackets: a name not found here is only left unrenamed."""
    out: set[int] = set()
    for k, t in enumerate(sig):
        if toks[t][1] not in ("let", "const", "var"):
            continue
        depth, expect_name = 0, True
        for i in range(t + 1, len(toks)):
            kind, text = toks[i]
            if kind == "ws":
                if "\n" in text and depth == 0:
                    break
                continue
            if expect_name:
                if kind != "id":
                    break  # destructuring: left alone
                if i != sig[k + 1]:
                    out.add(i)
                expect_name = False
                continue
            if text in "([{":
                depth += 1
            elif text in ")]}":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and text == ";":
                break
            elif depth == 0 and text == ",":
                expect_name = True
    return out


def mangle_js(source: str) -> str:
    """``source`` with its own bindings given short names, for code that is one closure
    (the banner). Conservative: a name is renamed only when the source declares it
    (``const``/``let``/``var``/``function``, a declarator after a comma, a parameter) and
    never appears as a shorthand property or a destructured name; a property name (after
    ``.``, an object key, after ``get``/``set``) is never touched. Globals, properties and
    keywords keep their names, and no new name collides with one of them."""
    toks = _tokens(source)
    sig = [i for i, (kind, _) in enumerate(toks) if kind != "ws"]

    def at(k: int) -> str:
        return toks[sig[k]][1] if 0 <= k < len(sig) else ";"

    declared: set[str] = set()
    unsafe: set[str] = set()
    counts: dict[str, int] = {}
    keep_at: set[int] = set()  # token indexes that are property names (or keys)
    listed = _declarator_lists(toks, sig)  # let a = 1, b, c: b and c are no shorthand
    inside: list[str] = []  # per significant token, the bracket it is in
    stack: list[str] = []
    for t in sig:
        text = toks[t][1]
        if text in ")]}" and stack:
            stack.pop()
        inside.append(stack[-1] if stack else "")
        if text in "([{":
            stack.append(text)
    for k, t in enumerate(sig):
        kind, text = toks[t]
        if kind != "id" or text in _KEYWORDS:
            continue
        counts[text] = counts.get(text, 0) + 1
        before, after, after2 = at(k - 1), at(k + 1), at(k + 2)
        spread = before == "." and at(k - 2) == "."
        key = after == ":" and before in "{," and inside[k] == "{"
        if (before == "." and not spread) or before in ("get", "set") or key:
            keep_at.add(t)
        elif t in listed:
            declared.add(text)
        elif before in "{," and after in ",}" and inside[k] == "{":
            unsafe.add(text)  # a shorthand property, or a destructured name
        if before in _DECLARE or (before == "," and after == "=" and after2 not in "=>"):
            declared.add(text)
        if after == "=" and after2 == ">":
            declared.add(text)  # x => ...
    # parameters: the names in ( ... ) before => or after function [name]
    for k, t in enumerate(sig):
        text = toks[t][1]
        if text == "(" and "function" in (at(k - 1), at(k - 2)):
            opened = k
        elif text == "=" and at(k + 1) == ">" and at(k - 1) == ")":
            depth, opened = 0, k - 1
            while opened >= 0:
                depth += {")": 1, "(": -1}.get(at(opened), 0)
                if depth == 0:
                    break
                opened -= 1
        else:
            continue
        depth = 0
        for j in range(opened, len(sig)):
            name = at(j)
            depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(name, 0)
            if depth == 0:
                break
            if depth == 1 and _IDENT.fullmatch(name) and at(j - 1) in "(," and at(j + 1) in ",)=":
                declared.add(name)
    renamed = sorted(declared - unsafe - _KEYWORDS, key=lambda s: (-counts.get(s, 0), s))
    # names that stay bindings or globals (a property name is neither: C.a and a local a
    # do not meet)
    kept = {
        text
        for i, (kind, text) in enumerate(toks)
        if kind == "id" and i not in keep_at and text not in renamed
    }
    fresh = (s for s in _short_names() if s not in kept and s not in _KEYWORDS)
    names = dict(zip(renamed, fresh, strict=False))
    # const -> let: the same meaning in code that never assigns to a constant, and the
    # shorter word compresses better beside the other lets
    names["const"] = "let"
    return "".join(
        names.get(text, text) if kind == "id" and i not in keep_at else text
        for i, (kind, text) in enumerate(toks)
    )
