"""Exports from PostgreSQL through ``COPY (SELECT …) TO STDOUT``.

``COPY`` streams the result as text lines with no per-row protocol round trip and no
per-row record objects; the lines become row tuples column by column (the loops stay
in C), the shape :meth:`ConsentStore.iter_rows` promises.

Memory stays flat: the ``COPY`` runs in a task whose sink hands each chunk over a
small bounded queue, so when the consumer (the export encoder, the HTTP client, the
disk) is slower, the sink waits, asyncpg stops reading the socket and the server
waits on its side of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from ..audit.columns import BOOL_COLUMNS, INT_COLUMNS
from ..store.records import EXPORT_COLUMNS

__all__ = ["copy_rows", "parse_copy_text"]

#: Chunks of COPY output in flight between the connection and the consumer.
_QUEUE_CHUNKS = 8
_END = b""

# COPY's text format escapes backslash and these control characters; NULL is \N
# (the exported columns are NOT NULL, so it never occurs).
_ESCAPES = {"\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
_BOOLS = {"t": True, "f": False}


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


def _converters(columns: tuple[str, ...]) -> list[Callable[[Any], Any] | None]:
    out: list[Callable[[Any], Any] | None] = []
    for name in columns:
        if name in INT_COLUMNS:
            out.append(int)
        elif name in BOOL_COLUMNS:
            out.append(_BOOLS.__getitem__)
        else:
            out.append(None)  # text, as it is (unescaped where needed)
    return out


_CONVERT = _converters(EXPORT_COLUMNS)


def parse_copy_text(text: str) -> list[tuple[Any, ...]]:
    """Complete lines of ``COPY … TO STDOUT`` text output -> typed row tuples in
    :data:`EXPORT_COLUMNS` order (``seq``/``chain_seq`` as ``int``, booleans as
    ``bool``, text as ``str``)."""
    if not text:
        return []
    if not text.endswith("\n"):
        raise ValueError("COPY output must be whole lines")
    width = len(_CONVERT)
    lines = text.count("\n")
    if text.count("\t") != lines * (width - 1):
        raise ValueError(f"COPY returned a row without {width} columns")
    # One flat list of every cell; column i is every width-th cell from i.
    cells = text[:-1].replace("\n", "\t").split("\t")
    escaped = "\\" in text
    columns: list[Any] = []
    for i, convert in enumerate(_CONVERT):
        col = cells[i::width]
        if convert is not None:
            columns.append(map(convert, col))
        elif escaped:
            columns.append(map(_unescape, col))
        else:
            columns.append(col)
    return list(zip(*columns, strict=True))


async def copy_rows(
    conn: asyncpg.Connection, query: str, args: list[Any], batch: int
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Run ``COPY (query) TO STDOUT`` on ``conn`` and yield batches of ``batch``
    row tuples (the last one shorter). Closing the generator early cancels the COPY
    (asyncpg sends PostgreSQL a cancel request); close it (``contextlib.aclosing``)
    before the transaction around it ends."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)

    async def sink(data: bytes) -> None:
        if data:
            await queue.put(data)

    async def run() -> None:
        try:
            await conn.copy_from_query(query, *args, output=sink, format="text")
        except asyncio.CancelledError:
            raise  # the consumer went away: nobody reads the queue any more
        except BaseException:
            await queue.put(_END)  # wake the consumer; ``await task`` re-raises
            raise
        await queue.put(_END)

    task = asyncio.ensure_future(run())
    pending = b""
    rows: list[tuple[Any, ...]] = []
    try:
        while True:
            chunk = await queue.get()
            if not chunk:  # _END: the COPY finished or failed
                break
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if not cut:
                continue
            rows.extend(parse_copy_text(pending[:cut].decode("utf-8")))
            pending = pending[cut:]
            while len(rows) >= batch:
                yield rows[:batch]
                del rows[:batch]
        await task  # raises what the COPY raised
        if pending:
            raise ValueError("COPY output ended inside a row")
        if rows:
            yield rows
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
