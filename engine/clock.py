"""What "today" means: the date in the configured time zone.

`ENGINE_TIMEZONE` (an IANA name, default `Europe/London`) says where the
organisation is. A UTC date would be yesterday between midnight and 1 am in
a British summer, so a retention period or an agreement's last day would end
an hour late; the library, the commands and the service all count days here.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Europe/London"


def zone(name: str | None = None) -> ZoneInfo:
    """The named time zone (default: ENGINE_TIMEZONE, else Europe/London); ValueError when unknown."""
    name = name or os.environ.get("ENGINE_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as Europe/London") from None


def configured_zone() -> ZoneInfo:
    """ENGINE_TIMEZONE, or Europe/London when it is unset or unknown (`engine serve` refuses unknown ones)."""
    try:
        return zone()
    except ValueError:
        return ZoneInfo(DEFAULT_TIMEZONE)


def today(tz: dt.tzinfo | None = None) -> dt.date:
    """Today's date in `tz` (default: the configured zone)."""
    return dt.datetime.now(tz or configured_zone()).date()


def next_midnight(day: dt.date, tz: dt.tzinfo) -> float:
    """The POSIX time at which `day` ends in `tz`."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).timestamp()
