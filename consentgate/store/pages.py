"""Export pages: a batch of log records already encoded, with what the manifest needs of it.

:meth:`ConsentStore.iter_pages <consentgate.store.base.ConsentStore.iter_pages>` yields
:class:`ExportPage` objects. Any backend can build them from its ``iter_rows`` batches
(:meth:`ExportPage.of`); the SQLite backend reads and encodes whole pages in C
(``consentgate/audit/_sqlpages.c``) and only hands Python the bytes and this summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from .records import EXPORT_COLUMNS

__all__ = ["STAT_COLUMNS", "ChainRun", "ExportPage", "PageEncoder"]

_CREATED = EXPORT_COLUMNS.index("created_at")
_SEQ = EXPORT_COLUMNS.index("seq")
_CHAIN = EXPORT_COLUMNS.index("chain_id")
_CHAIN_SEQ = EXPORT_COLUMNS.index("chain_seq")
_HASH = EXPORT_COLUMNS.index("hash")
#: Where the summary's columns are (the C reader's ``stat_columns``).
STAT_COLUMNS: tuple[int, int, int, int] = (_CREATED, _CHAIN, _CHAIN_SEQ, _HASH)
_created = itemgetter(_CREATED)
_chain = itemgetter(_CHAIN)

#: One chain's records in a page: ``(chain_id, rows, first_chain_seq, last_chain_seq,
#: last_hash)``.
ChainRun = tuple[str, int, int, int, str]


class PageEncoder(Protocol):
    """What a backend needs of an encoder (``consentgate.audit.formats``)."""

    #: True when the encoder writes through the compiled ``_csvenc`` (a backend may then
    #: use a compiled reader that writes the same bytes).
    compiled: bool
    #: Column kinds as the compiled code numbers them (0 text, 1 integer, 2 boolean).
    codes: tuple[int, ...]
    #: JSON Lines: each column's key as JSON (``'"seq":'``); CSV: None.
    keys: tuple[str, ...] | None

    def encode(self, rows: Sequence[tuple[Any, ...]]) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ExportPage:
    """``rows`` records in ``seq`` order, encoded as ``data``."""

    data: bytes
    rows: int
    first_seq: int
    last_seq: int
    created_min: str
    created_max: str
    #: per chain, in the order the chains first appear in the page
    chains: list[ChainRun]

    @classmethod
    def of(cls, rows: Sequence[tuple[Any, ...]], data: bytes) -> ExportPage:
        """The page of a non-empty batch of ``EXPORT_COLUMNS`` tuples encoded as ``data``."""
        created = list(map(_created, rows))
        return cls(
            data=data,
            rows=len(rows),
            first_seq=rows[0][_SEQ],
            last_seq=rows[-1][_SEQ],
            created_min=min(created),
            created_max=max(created),
            chains=_chain_runs(rows),
        )


def _chain_runs(rows: Sequence[tuple[Any, ...]]) -> list[ChainRun]:
    first, last = rows[0], rows[-1]
    if len(set(map(_chain, rows))) == 1:  # the usual page: one writer's records
        return [(first[_CHAIN], len(rows), first[_CHAIN_SEQ], last[_CHAIN_SEQ], last[_HASH])]
    runs: dict[str, list[Any]] = {}
    for row in rows:
        run = runs.get(row[_CHAIN])
        if run is None:
            runs[row[_CHAIN]] = [row[_CHAIN], 1, row[_CHAIN_SEQ], row[_CHAIN_SEQ], row[_HASH]]
        else:
            run[1] += 1
            run[3], run[4] = row[_CHAIN_SEQ], row[_HASH]
    return [tuple(run) for run in runs.values()]  # type: ignore[misc]
