"""Daily rollups of the consent log, kept as consents are written.

The console's dashboard reads these, never the log itself. Each store writer adds a
batch's counts to ``consent_rollups`` in the same transaction as the batch (so the
rollups always equal the log), and deleting records (retention) takes them out again
(a trigger; PostgreSQL's dropped partitions by :func:`month_delete_sql`). Erasure
blanks only personal fields, none of which is counted here.

One row per ``(site_id, day, dim, value, method, event_type)``:

* ``day``: the record's UTC date;
* ``dim`` ``all`` (``value`` ``""``, ``method`` the decision's method), or one of
  ``region``, ``regime``, ``language`` (``value`` the record's, ``method`` ``""``);
* counts: ``events`` (records), ``gpc`` (with Global Privacy Control), and per
  optional category how many records granted it.

Pure logic: the batch arithmetic and the SQL text; the backends run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date
from typing import Any, NamedTuple

from .base import ConsentEvent

__all__ = [
    "COUNT_COLUMNS",
    "DIMENSIONS",
    "KEY_COLUMNS",
    "MONTH_DELETE",
    "OPTIONAL",
    "SELECT",
    "SQLITE_UPSERT",
    "RollupRow",
    "as_columns",
    "batch_deltas",
    "postgres_backfill",
    "postgres_schema",
    "postgres_upsert",
    "row_of",
    "sqlite_backfill",
    "sqlite_schema",
]

OPTIONAL: tuple[str, ...] = ("preferences", "statistics", "marketing", "unclassified")
DIMENSIONS: tuple[str, ...] = ("region", "regime", "language")
KEY_COLUMNS: tuple[str, ...] = ("site_id", "day", "dim", "value", "method", "event_type")
COUNT_COLUMNS: tuple[str, ...] = ("events", "gpc", *OPTIONAL)

Key = tuple[str, str, str, str, str, str]


class RollupRow(NamedTuple):
    """One rollup row as read back (the optional categories: how many granted it)."""

    day: date
    dim: str
    value: str
    method: str
    event_type: str
    events: int
    gpc: int
    preferences: int
    statistics: int
    marketing: int
    unclassified: int


def batch_deltas(events: Iterable[ConsentEvent]) -> list[tuple[object, ...]]:
    """The batch's counts: one ``(*KEY_COLUMNS, *COUNT_COLUMNS)`` tuple per key, ``day``
    as ISO text."""
    acc: dict[Key, list[int]] = {}
    for e in events:
        day = e.created_at.astimezone(UTC).date().isoformat()
        granted = e.granted
        adds = (1, 1 if e.gpc else 0, *(1 if c in granted else 0 for c in OPTIONAL))
        site, etype = e.site_id, e.event_type
        for key in (
            (site, day, "all", "", e.method, etype),
            (site, day, "region", e.region, "", etype),
            (site, day, "regime", e.regime, "", etype),
            (site, day, "language", e.language, "", etype),
        ):
            counts = acc.get(key)
            if counts is None:
                acc[key] = list(adds)
            else:
                for i, n in enumerate(adds):
                    counts[i] += n
    return [(*key, *counts) for key, counts in acc.items()]


def _backfill(day_sql: str, int_of: str) -> str:
    """``INSERT ... SELECT`` of every record's counts, grouped like the writer does."""
    sums = ", ".join(
        [
            "count(*)",
            f"sum({int_of.format('gpc')})",
            *(f"sum({int_of.format(c)})" for c in OPTIONAL),
        ]
    )
    parts = [
        f"SELECT site_id, {day_sql} AS d, 'all', '', method, event_type, {sums} "
        "FROM events GROUP BY site_id, d, method, event_type"
    ]
    for dim in DIMENSIONS:
        parts.append(
            f"SELECT site_id, {day_sql} AS d, '{dim}', {dim}, '', event_type, {sums} "
            f"FROM events GROUP BY site_id, d, {dim}, event_type"
        )
    columns = ", ".join((*KEY_COLUMNS, *COUNT_COLUMNS))
    return f"INSERT INTO consent_rollups ({columns})\n" + "\nUNION ALL\n".join(parts)


def sqlite_backfill() -> str:
    return _backfill("substr(created_at, 1, 10)", "{}")


def postgres_backfill() -> str:
    return _backfill("(created_at AT TIME ZONE 'UTC')::date", "{}::int")


def _delete_match(old: str, day_sql: str) -> str:
    """The rollup rows a deleted record ``old`` counted in."""
    dims = " OR ".join(f"(dim = '{d}' AND value = {old}.{d} AND method = '')" for d in DIMENSIONS)
    return (
        f"site_id = {old}.site_id AND day = {day_sql} AND event_type = {old}.event_type "
        f"AND ((dim = 'all' AND value = '' AND method = {old}.method) OR {dims})"
    )


def _decrements(old: str, int_of: str) -> str:
    return ", ".join(
        ["events = events - 1", f"gpc = gpc - {int_of.format(old + '.gpc')}"]
        + [f"{c} = {c} - {int_of.format(old + '.' + c)}" for c in OPTIONAL]
    )


def sqlite_schema() -> str:
    """The table, the trigger that takes deleted records out, and the back-fill."""
    counts = ",\n    ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNT_COLUMNS)
    return f"""
CREATE TABLE consent_rollups (
    site_id TEXT NOT NULL,
    day TEXT NOT NULL,
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    method TEXT NOT NULL,
    event_type TEXT NOT NULL,
    {counts},
    PRIMARY KEY ({", ".join(KEY_COLUMNS)})
) WITHOUT ROWID;
CREATE TRIGGER events_rollups_delete AFTER DELETE ON events BEGIN
    UPDATE consent_rollups SET {_decrements("OLD", "{}")}
    WHERE {_delete_match("OLD", "substr(OLD.created_at, 1, 10)")};
END;
{sqlite_backfill()};
"""


def postgres_schema() -> str:
    counts = ",\n    ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in COUNT_COLUMNS)
    day = "(OLD.created_at AT TIME ZONE 'UTC')::date"
    return f"""
CREATE TABLE consent_rollups (
    site_id text NOT NULL,
    day date NOT NULL,
    dim text NOT NULL,
    value text NOT NULL,
    method text NOT NULL,
    event_type text NOT NULL,
    {counts},
    PRIMARY KEY ({", ".join(KEY_COLUMNS)})
);
CREATE FUNCTION consent_rollups_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE consent_rollups SET {_decrements("OLD", "{}::int")}
    WHERE {_delete_match("OLD", day)};
    RETURN NULL;
END $$;
CREATE TRIGGER events_rollups_delete AFTER DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION consent_rollups_delete();
{postgres_backfill()};
"""


#: Rows deleted with a dropped month partition (it held only this site's records).
MONTH_DELETE = "DELETE FROM consent_rollups WHERE site_id = $1 AND day >= $2 AND day < $3"

SQLITE_UPSERT = (
    f"INSERT INTO consent_rollups ({', '.join((*KEY_COLUMNS, *COUNT_COLUMNS))}) "
    f"VALUES ({', '.join('?' for _ in (*KEY_COLUMNS, *COUNT_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNT_COLUMNS)
)

_SUMS = ", ".join(f"sum({c})" for c in COUNT_COLUMNS)
#: Reading a site's rollups for days ``[since, until)`` (the PRIMARY KEY's prefix):
#: the ``all`` rows day by day, the breakdowns summed over the period (dated ``since``).
SELECT = (
    f"SELECT day, dim, value, method, event_type, {', '.join(COUNT_COLUMNS)} "
    "FROM consent_rollups WHERE site_id = {0} AND day >= {1} AND day < {2} AND dim = 'all' "
    f"UNION ALL SELECT {{1}}, dim, value, '', event_type, {_SUMS} "
    "FROM consent_rollups WHERE site_id = {0} AND day >= {1} AND day < {2} AND dim <> 'all' "
    "GROUP BY dim, value, event_type"
)


def row_of(t: Sequence[Any]) -> RollupRow:
    """A row of :data:`SELECT` (``day`` a date or ISO text)."""
    day = t[0]
    if not isinstance(day, date):
        day = date.fromisoformat(day)
    return RollupRow(day, *t[1:])


def postgres_upsert(first: int) -> tuple[str, str]:
    """``(values, conflict)`` SQL pieces for the writer's statement: the arrays are
    parameters ``$first...``, in ``(*KEY_COLUMNS, *COUNT_COLUMNS)`` order."""
    types = ["text", "date", "text", "text", "text", "text"] + ["bigint"] * len(COUNT_COLUMNS)
    arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types))
    conflict = f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET " + ", ".join(
        f"{c} = consent_rollups.{c} + excluded.{c}" for c in COUNT_COLUMNS
    )
    return arrays, conflict


def as_columns(deltas: list[tuple[Any, ...]]) -> list[list[Any]]:
    """:func:`batch_deltas` column by column (``day`` as a date), for ``unnest``."""
    columns: list[list[Any]] = [list(c) for c in zip(*deltas, strict=True)] if deltas else []
    if columns:
        columns[1] = [date.fromisoformat(d) for d in columns[1]]
    return columns
