"""The dashboard's figures for one site and period, from the daily rollups.

Pure logic: :func:`build` folds :class:`~consentgate.store.rollups.RollupRow` rows
(what ``store.rollup_rows`` returns; never a scan of the log) into the numbers the
dashboard shows. A *decision* is a record of type ``initial`` or ``update``; a
*withdrawal* one of type ``withdraw``. A category's acceptance rate is the share of
decisions that granted it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from ..errors import ConsentGateError
from ..store.rollups import DIMENSIONS, OPTIONAL, RollupRow

__all__ = [
    "METHODS",
    "PERIODS",
    "Breakdown",
    "Dashboard",
    "Period",
    "PeriodError",
    "build",
    "period_of",
]

#: Decision methods in the order the dashboard lists them (others follow, sorted).
METHODS: tuple[str, ...] = (
    "accept_all",
    "reject_all",
    "custom",
    "close",
    "gpc",
    "acknowledge",
    "opt_out",
)
PERIODS: tuple[int, ...] = (7, 30, 90)
#: The longest custom range (days): the rollups hold a row per day.
MAX_DAYS = 3660
WITHDRAW = "withdraw"


class PeriodError(ConsentGateError, ValueError):
    """A period that cannot be shown (names the value and the accepted forms)."""


@dataclass(frozen=True)
class Period:
    since: date  # first day shown
    until: date  # the day after the last one shown

    @property
    def days(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days)]

    @property
    def last(self) -> date:
        return self.until - timedelta(days=1)


def period_of(days: str | None, start: str | None, end: str | None, today: date) -> Period:
    """``days`` one of 7/30/90 (default 30, ending today), or a custom ``start``..``end``
    (ISO dates, both included)."""
    if start or end:
        try:
            first = date.fromisoformat(start or "")
            last = date.fromisoformat(end or "")
        except ValueError:
            raise PeriodError("start and end must be dates like 2026-01-31") from None
        if last < first:
            raise PeriodError(f"end {last} is before start {first}")
        if (last - first).days >= MAX_DAYS:
            raise PeriodError(f"a custom period may cover at most {MAX_DAYS} days")
        return Period(first, last + timedelta(days=1))
    n = int(days) if days and days.isdigit() else 30 if not days else -1
    if n not in PERIODS:
        raise PeriodError(f"days must be one of {', '.join(map(str, PERIODS))}, got {days!r}")
    return Period(today - timedelta(days=n - 1), today + timedelta(days=1))


@dataclass
class Breakdown:
    """Decisions and withdrawals of one region, regime or language."""

    value: str
    decisions: int = 0
    withdrawals: int = 0
    granted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPTIONAL, 0))

    def rate(self, category: str) -> float:
        return self.granted[category] / self.decisions if self.decisions else 0.0


@dataclass
class Dashboard:
    period: Period
    methods: list[str]
    #: day -> method -> decisions that day
    by_day: dict[date, dict[str, int]]
    withdrawals_by_day: dict[date, int]
    decisions: int
    withdrawals: int
    gpc: int
    granted: dict[str, int]
    #: "region" | "regime" | "language" -> rows, most decisions first
    breakdowns: dict[str, list[Breakdown]]

    def rate(self, category: str) -> float:
        return self.granted[category] / self.decisions if self.decisions else 0.0

    def method_total(self, method: str) -> int:
        return sum(day.get(method, 0) for day in self.by_day.values())


def build(rows: Iterable[RollupRow], period: Period) -> Dashboard:
    by_day: dict[date, dict[str, int]] = {d: {} for d in period.days}
    withdrawals_by_day: dict[date, int] = dict.fromkeys(period.days, 0)
    granted = dict.fromkeys(OPTIONAL, 0)
    decisions = withdrawals = gpc = 0
    parts: dict[str, dict[str, Breakdown]] = {d: {} for d in DIMENSIONS}
    seen: set[str] = set()
    for r in rows:
        if not (period.since <= r.day < period.until):
            continue
        if r.dim == "all":
            if r.event_type == WITHDRAW:
                withdrawals += r.events
                withdrawals_by_day[r.day] += r.events
                continue
            decisions += r.events
            gpc += r.gpc
            seen.add(r.method)
            day = by_day[r.day]
            day[r.method] = day.get(r.method, 0) + r.events
            for c in OPTIONAL:
                granted[c] += getattr(r, c)
        elif r.dim in parts:
            b = parts[r.dim].get(r.value)
            if b is None:
                b = parts[r.dim][r.value] = Breakdown(r.value)
            if r.event_type == WITHDRAW:
                b.withdrawals += r.events
            else:
                b.decisions += r.events
                for c in OPTIONAL:
                    b.granted[c] += getattr(r, c)
    methods = [m for m in METHODS if m in seen] + sorted(seen - set(METHODS))
    return Dashboard(
        period=period,
        methods=methods,
        by_day=by_day,
        withdrawals_by_day=withdrawals_by_day,
        decisions=decisions,
        withdrawals=withdrawals,
        gpc=gpc,
        granted=granted,
        breakdowns={
            d: sorted(v.values(), key=lambda b: (-b.decisions - b.withdrawals, b.value))
            for d, v in parts.items()
        },
    )
