"""Warnings that depend on the date, kept true for a service that runs past midnight.

A set's warnings are worked out when it loads; an agreement whose last day
passes while the service runs would still be shown as in force. `GET /policy`
therefore reads the warnings for the service's date: the load's own when the
date is the load's, otherwise the set checked again as of that date (once per
policy version and date, off the event loop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from engine.checker import check
from engine.errors import Diagnostic, sorted_diagnostics


class DatedWarnings:
    """`await warnings(policy, day)`: the served set's warnings as of `day`."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, dt.date], list[Diagnostic]] = {}

    async def warnings(self, policy: Any, day: dt.date, zone: dt.tzinfo) -> list[Diagnostic]:
        if policy.loaded_at.astimezone(zone).date() == day:
            return list(policy.warnings)
        key = (policy.version, day)
        found = self._memo.get(key)
        if found is None:
            found = await asyncio.to_thread(_warnings_on, policy, day)
            self._memo = {key: found}  # only today's is ever asked for again
        return found


def _warnings_on(policy: Any, day: dt.date) -> list[Diagnostic]:
    _vocab, found = check(policy.policy_set, today=day)
    return [diagnostic for diagnostic in sorted_diagnostics(found) if not diagnostic.is_error]
