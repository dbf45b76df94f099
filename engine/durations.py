"""Durations and date arithmetic (LANGUAGE.md section 3): `date + 28 days`, `date - 6 years`.

Days and weeks count exactly. Months and years move the calendar and keep the
day of the month, or take the month's last day when it has no such day
(`2025-01-31 + 1 month` is `2025-02-28`; `2024-02-29 + 1 year` is
`2025-02-28`). A result outside the calendar (before year 1, after 9999) is
unknown, like a missing operand.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable

UNIT_DAYS = {"day": 1, "week": 7}
UNIT_MONTHS = {"month": 1, "year": 12}


def add_months(date: dt.date, months: int) -> dt.date:
    """`date` moved by whole calendar months, clamped to the last day of the month it lands in."""
    year, month = divmod(date.month - 1 + months, 12)
    year += date.year
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise OverflowError("date out of range")
    last = calendar.monthrange(year, month + 1)[1]
    return date.replace(year=year, month=month + 1, day=min(date.day, last))


def shifter(op: str, amount: int, unit: str) -> Callable[[dt.date], dt.date | None]:
    """A function moving a date by `amount` units forwards (`+`) or back (`-`); None when
    the result would fall outside the calendar."""
    sign = 1 if op == "+" else -1
    if unit in UNIT_DAYS:
        step = dt.timedelta(days=sign * amount * UNIT_DAYS[unit]) if amount <= 10_000_000 else None

        def by_days(date: dt.date) -> dt.date | None:
            if step is None:
                return None
            try:
                return date + step
            except OverflowError:
                return None

        return by_days
    months = sign * amount * UNIT_MONTHS[unit]

    def by_months(date: dt.date) -> dt.date | None:
        try:
            return add_months(date, months)
        except (OverflowError, ValueError):
            return None

    return by_months


def duration_text(amount: int, unit: str) -> str:
    """`1 month`, `28 days`: as the language writes a duration."""
    return f"{amount} {unit}" + ("" if amount == 1 else "s")


def shift(date: dt.date, op: str, amount: int, unit: str) -> dt.date | None:
    """`date op amount unit`, or None outside the calendar."""
    return shifter(op, amount, unit)(date)
