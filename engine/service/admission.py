"""What a caller may say in a decision request, checked before the engine decides it.

- The date is the service's, not the caller's: `context.date` is set from the
  service's clock (today in ENGINE_TIMEZONE, read once per request or batch),
  and a request that sends one is refused with 422 naming `context.date`,
  unless ENGINE_DATE_CALLERS names the caller (`*`: every caller, for test
  harnesses and replays; with no API keys configured only `*` allows it).
- A caller speaks only for its own agencies: ENGINE_KEY_AGENCIES binds each
  API key name to the agencies or groups it may name as `requester.agency`
  (`case_system=council_csc,council_asc;police_portal=police`). Once it is
  set, a key it does not list may speak for no agency (`name=*` for any).
  Another agency gets 403 naming `requester.agency`, and the audit trail
  records the refusal.
- Every string is Unicode text of bounded length (engine.service.limits).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from engine import clock
from engine.service.errors import ApiError
from engine.service.limits import DEFAULT_MAX_STRING, check_strings

EVERYONE = "*"
_LONDON = ZoneInfo(clock.DEFAULT_TIMEZONE)
_DATES: dict[dt.tzinfo, tuple[int, str]] = {}  # zone -> (the second it was worked out in, the date)


def parse_date_callers(text: str | None) -> frozenset[str]:
    """`"replay,harness"` or `"*"` -> the caller names allowed to send `context.date`."""
    return frozenset(name.strip() for name in (text or "").split(",") if name.strip())


def parse_key_agencies(text: str | None) -> dict[str, frozenset[str]]:
    """`"case_system=council_csc,council_asc;police_portal=police"` -> {key name: agencies or groups}."""
    bindings: dict[str, frozenset[str]] = {}
    for item in (text or "").split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, names = item.partition("=")
        name = name.strip()
        agencies = frozenset(part.strip() for part in names.split(",") if part.strip())
        if not sep or not name or not agencies:
            raise ValueError(f"entry {item!r} is not of the form key_name=agency,group,…")
        if name in bindings:
            raise ValueError(f"key name {name!r} is given twice")
        bindings[name] = agencies
    return bindings


@dataclass(frozen=True)
class Admission:
    """The operator's rules for what callers may say; `admit` applies them to one request."""

    date_callers: frozenset[str] = frozenset()
    key_agencies: Mapping[str, frozenset[str]] | None = None
    zone: dt.tzinfo = _LONDON
    max_string: int = DEFAULT_MAX_STRING

    @classmethod
    def from_settings(cls, *, date_callers: str | None, key_agencies: str | None, timezone: str | None,
                      max_string: int | None, key_names: list[str]) -> Admission:
        """Built from the settings' text; ValueError naming the setting that cannot work."""
        callers = parse_date_callers(date_callers)
        unknown = sorted(callers - {EVERYONE} - set(key_names))
        if unknown:
            raise ValueError(f"ENGINE_DATE_CALLERS names {unknown[0]!r}, which is not an API key name "
                             f"(ENGINE_API_KEYS); use `*` to let every caller set dates")
        try:
            bindings = parse_key_agencies(key_agencies)
        except ValueError as err:
            raise ValueError(f"ENGINE_KEY_AGENCIES: {err}") from None
        unknown = sorted(set(bindings) - set(key_names))
        if unknown:
            raise ValueError(f"ENGINE_KEY_AGENCIES binds {unknown[0]!r}, which is not an API key name (ENGINE_API_KEYS)")
        if bindings and not key_names:
            raise ValueError("ENGINE_KEY_AGENCIES needs ENGINE_API_KEYS: without keys no caller is known")
        if max_string is not None and max_string < 1:
            raise ValueError("ENGINE_MAX_STRING must be at least 1")
        return cls(callers, bindings or None, clock.zone(timezone), max_string or DEFAULT_MAX_STRING)

    def today(self) -> str:
        """Today in the service's zone, as `context.date` is written; read once per request or batch."""
        # Zone offsets are whole seconds, so the date cannot change within one second of
        # POSIX time: the date is worked out once a second, not for every request.
        second = int(time.time())
        known = _DATES.get(self.zone)
        if known is not None and known[0] == second:
            return known[1]
        text = dt.datetime.fromtimestamp(second, self.zone).date().isoformat()
        _DATES[self.zone] = (second, text)
        return text

    def may_set_dates(self, caller: str | None) -> bool:
        return EVERYONE in self.date_callers or (caller is not None and caller in self.date_callers)

    def admit(self, request: dict[str, Any], caller: str | None, policy: Any, today: str,
              audit: Any = None, prefix: str = "") -> dict[str, Any]:
        """The request to decide (with the service's date), or ApiError 403/422 naming the field."""
        check_strings(request, self.max_string, prefix.rstrip("."))
        if self.key_agencies is not None:
            self._check_agency(request, caller, policy, audit, prefix)
        context = request.get("context")
        if context is None:
            request["context"] = {"date": today}
        elif isinstance(context, dict):
            if "date" not in context:
                request["context"] = {**context, "date": today}
            elif not self.may_set_dates(caller):
                who = f"caller `{caller}`" if caller is not None else "a caller"
                raise ApiError(422, "date_not_allowed",
                               f"{who} may not set `context.date`: the service decides as of its own date ({today})",
                               field=f"{prefix}context.date")
        return request  # a context that is not an object is the engine's to refuse

    def _check_agency(self, request: dict[str, Any], caller: str | None, policy: Any, audit: Any,
                      prefix: str) -> None:
        requester = request.get("requester")
        agency = requester.get("agency") if isinstance(requester, dict) else None
        if not isinstance(agency, str):
            return  # missing or not a name: the engine refuses it with 422
        allowed = self.key_agencies.get(caller or "", frozenset()) if self.key_agencies else frozenset()
        if EVERYONE in allowed or agency in _expand(allowed, policy):
            return
        field = f"{prefix}requester.agency"
        message = (f"caller `{caller}` may not speak for agency `{agency}`"
                   + (f"; its key is bound to {', '.join(sorted(allowed))}" if allowed else
                      "; its key is bound to no agency (ENGINE_KEY_AGENCIES)"))
        if audit is not None:
            audit.record_refusal(caller, "forbidden_agency", message, request=request, field=field)
        raise ApiError(403, "forbidden_agency", message, field=field)


def _expand(names: frozenset[str], policy: Any) -> frozenset[str]:
    """Agencies and the members of groups, by the served policy's groups (they may change on reload)."""
    groups = policy.vocabulary.groups
    found: set[str] = set()
    for name in names:
        members = groups.get(name)
        if members is None:
            found.add(name)
        else:
            found.update(members)
    return frozenset(found)
