"""Streaming encoders and readers for the two export formats.

CSV (RFC 4180, ``\\r\\n`` line ends, UTF-8, optional BOM) is made safe to open in
Excel and LibreOffice: a text cell beginning with ``=``, ``+``, ``-``, ``@``, tab
or carriage return is prefixed with an apostrophe, so a spreadsheet shows it as
text instead of running it as a formula. A cell that already begins with an
apostrophe gets one more, so :func:`read_rows` can undo the prefix losslessly.
Booleans are ``true``/``false``.

JSON Lines: one compact JSON object per line (UTF-8, never a BOM), booleans and
integers as JSON values.

An encoder turns a batch of :data:`~consentgate.audit.columns.Row` into bytes;
nothing holds more than one batch, so memory stays flat in the row count.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, Protocol

from ..errors import ConsentGateError
from .columns import BOOL_COLUMNS, EXPORT_COLUMNS, INT_COLUMNS, Row

__all__ = [
    "BOM",
    "FORMATS",
    "CsvEncoder",
    "Encoder",
    "FormatError",
    "JsonlEncoder",
    "neutralize",
    "read_rows",
    "unneutralize",
]

BOM = b"\xef\xbb\xbf"
FORMATS = ("csv", "jsonl")
#: First characters a spreadsheet would treat as a formula (plus our own escape).
_DANGER = frozenset("=+-@\t\r'")


class FormatError(ConsentGateError, ValueError):
    """An export file that cannot be read: carries the 1-based ``line``."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def neutralize(value: str) -> str:
    """The CSV-safe form of a text cell."""
    return "'" + value if value and value[0] in _DANGER else value


def unneutralize(value: str) -> str:
    return value[1:] if value[:1] == "'" else value


class Encoder(Protocol):
    def header(self) -> bytes: ...

    def encode(self, rows: Sequence[Row]) -> bytes: ...


_TF = {0: "false", 1: "true"}  # True and False too; anything else is refused
_QUOTE = re.compile('[,"\r\n]')
_SEP = "\x1f"  # joins a column's cells for one C-speed scan
_DANGER_AFTER_SEP = re.compile("\x1f[=+\\-@\t\r']")


def _csv_cell(value: str) -> str:
    value = neutralize(value)
    if _QUOTE.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_text_column(col: tuple[str, ...]) -> Sequence[str]:
    """A text column made CSV-safe. Scans the whole column at once and only
    touches cells one by one when something in the column needs it."""
    joined = _SEP + _SEP.join(col)
    if joined.count(_SEP) != len(col):  # the separator itself occurs in the data
        return [_csv_cell(v) for v in col]
    if _DANGER_AFTER_SEP.search(joined):
        return [_csv_cell(v) for v in col]
    if "," in joined or '"' in joined or "\n" in joined or "\r" in joined:
        # quote every cell of this column (still valid CSV)
        quoted = joined[1:].replace('"', '""').replace(_SEP, '"' + _SEP + '"')
        return ('"' + quoted + '"').split(_SEP)
    return col


def _json_text_column(col: tuple[str, ...]) -> Iterable[str]:
    return map(encode_basestring, col)


def _kinds(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        "bool" if c in BOOL_COLUMNS else "int" if c in INT_COLUMNS else "text" for c in columns
    )


def _cells(
    kinds: tuple[str, ...],
    rows: Sequence[Row],
    text: Callable[[tuple[str, ...]], Iterable[str]],
) -> Iterator[tuple[str, ...]]:
    """Rows of formatted cells, converted column by column (the loops stay in C)."""
    outs: list[Iterable[str]] = []
    for kind, col in zip(kinds, zip(*rows, strict=True), strict=True):
        if kind == "int":
            outs.append(map(str, col))
        elif kind == "bool":
            outs.append(map(_TF.__getitem__, col))
        else:
            outs.append(text(col))
    return zip(*outs, strict=True)


def _compiled(name: str) -> Any:
    """A function of the compiled encoders (``_csvenc.c``: the same bytes as the Python
    code here), or None: not compiled, or ``CONSENTGATE_PURE_PYTHON=1``."""
    if os.environ.get("CONSENTGATE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _csvenc  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(_csvenc, name)


_C_ENCODE: Callable[[Sequence[Row], tuple[int, ...]], bytes] | None = _compiled("encode")
_C_JSONL: Callable[[Sequence[Row], tuple[int, ...], tuple[str, ...]], bytes] | None = _compiled(
    "encode_jsonl"
)
_KIND_CODES = {"text": 0, "int": 1, "bool": 2}


def _choose(compiled: bool | None, function: Any) -> Any:
    """``function`` (a compiled encoder, or None) unless ``compiled`` is False;
    ``compiled=True`` insists on it."""
    if compiled and function is None:
        raise RuntimeError("consentgate.audit._csvenc is not compiled")
    return function if compiled in (None, True) else None


def _encode_csv(kinds: tuple[str, ...], rows: Sequence[Row]) -> bytes:
    """Pure-Python CSV of ``rows`` (the reference for the compiled encoder)."""
    cells = _cells(kinds, rows, _csv_text_column)
    return ("\r\n".join(map(",".join, cells)) + "\r\n").encode("utf-8")


class CsvEncoder:
    """Batch -> CSV bytes, column by column: compiled when ``_csvenc`` is built,
    else in Python with the loops kept in C."""

    def __init__(
        self,
        columns: tuple[str, ...] = EXPORT_COLUMNS,
        *,
        bom: bool = False,
        compiled: bool | None = None,
    ) -> None:
        self.columns = columns
        self.bom = bom
        self._kinds = _kinds(columns)
        self.codes = tuple(_KIND_CODES[k] for k in self._kinds)
        self.keys: tuple[str, ...] | None = None
        self._c = _choose(compiled, _C_ENCODE)
        self.compiled = self._c is not None

    def header(self) -> bytes:
        return (BOM if self.bom else b"") + (",".join(self.columns) + "\r\n").encode("utf-8")

    def encode(self, rows: Sequence[Row]) -> bytes:
        if not rows:
            return b""
        if self._c is not None:
            return self._c(rows, self.codes)
        return _encode_csv(self._kinds, rows)


class JsonlEncoder:
    """Batch -> JSON Lines bytes: compiled when ``_csvenc`` is built, else through a
    per-row template (keys written once)."""

    def __init__(
        self, columns: tuple[str, ...] = EXPORT_COLUMNS, *, compiled: bool | None = None
    ) -> None:
        self.columns = columns
        self._kinds = _kinds(columns)
        self.codes = tuple(_KIND_CODES[k] for k in self._kinds)
        self.keys: tuple[str, ...] | None = tuple(f"{encode_basestring(c)}:" for c in columns)
        self._template = "{" + ",".join(f"{key}%s" for key in self.keys) + "}"
        self._c = _choose(compiled, _C_JSONL)
        self.compiled = self._c is not None

    def header(self) -> bytes:
        return b""

    def encode(self, rows: Sequence[Row]) -> bytes:
        if not rows:
            return b""
        if self._c is not None:
            return self._c(rows, self.codes, self.keys)
        lines = map(self._template.__mod__, _cells(self._kinds, rows, _json_text_column))
        return ("\n".join(lines) + "\n").encode("utf-8")


def _typed(name: str, value: str, line: int) -> Any:
    if name in BOOL_COLUMNS:
        if value not in ("true", "false"):
            raise FormatError(f"column {name}: expected true or false, got {value!r}", line)
        return value == "true"
    if name in INT_COLUMNS:
        try:
            return int(value)
        except ValueError:
            raise FormatError(f"column {name}: expected an integer, got {value!r}", line) from None
    return unneutralize(value)


def read_rows(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parse an export back: ``(line_number, {column: typed value})`` per record.

    ``lines`` is the decoded text (BOM removed), split keeping line ends.
    Raises :class:`FormatError` for a malformed line.
    """
    if fmt == "jsonl":
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"not JSON ({exc.msg})", n) from None
            if not isinstance(obj, dict) or set(obj) != set(EXPORT_COLUMNS):
                raise FormatError("not a consent record (wrong columns)", n)
            yield n, obj
        return
    counter = _LineCounter(lines)
    reader = csv.reader(counter)
    header = next(reader, None)
    if header is None:
        raise FormatError("empty file, expected a header row", 1)
    if tuple(header) != EXPORT_COLUMNS:
        raise FormatError(f"unexpected header {header!r}", 1)
    for cells in reader:
        n = counter.start
        if len(cells) != len(header):
            raise FormatError(f"expected {len(header)} cells, got {len(cells)}", n)
        yield n, {h: _typed(h, v, n) for h, v in zip(header, cells, strict=True)}


class _LineCounter:
    """Feeds lines to csv.reader and remembers where the current record started."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self.line = 0
        self.start = 0
        self._in_record = False

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self.line += 1
        if not self._in_record:
            self.start = self.line
        # a record continues while a quoted cell is open (odd number of quotes so far)
        self._open = (getattr(self, "_open", 0) + line.count('"')) % 2
        self._in_record = bool(self._open)
        return line
