"""Date arithmetic by the calendar (LANGUAGE.md section 3): a table of edge cases, each
decided by the engine and by the reference interpreter."""

import datetime as dt

import pytest
from reference import reference_decide

import engine
from engine.durations import shift
from engine.loader import load_set
from engine.symbols import build_vocabulary

D = dt.date

CALENDAR = [
    # (date, op, amount, unit, expected)
    (D(2025, 1, 31), "+", 1, "month", D(2025, 2, 28)),   # no 31 February: the month's last day
    (D(2024, 1, 31), "+", 1, "month", D(2024, 2, 29)),   # a leap year's February
    (D(2025, 1, 31), "+", 2, "month", D(2025, 3, 31)),   # the day is kept when the month has it
    (D(2025, 3, 31), "-", 1, "month", D(2025, 2, 28)),
    (D(2024, 2, 29), "+", 1, "year", D(2025, 2, 28)),    # no 29 February in 2025
    (D(2024, 2, 29), "+", 4, "year", D(2028, 2, 29)),    # the next leap year keeps it
    (D(2024, 2, 29), "-", 6, "year", D(2018, 2, 28)),    # `- 6 years` across a leap day
    (D(2031, 3, 1), "-", 6, "year", D(2025, 3, 1)),
    (D(2030, 2, 28), "-", 6, "year", D(2024, 2, 28)),    # lands on a leap year: 28th stays 28th
    (D(2025, 12, 31), "+", 1, "month", D(2026, 1, 31)),  # over the year's end
    (D(2025, 1, 15), "-", 1, "month", D(2024, 12, 15)),
    (D(2025, 1, 31), "+", 12, "month", D(2026, 1, 31)),
    (D(2024, 2, 28), "+", 1, "day", D(2024, 2, 29)),     # days count exactly
    (D(2025, 2, 28), "+", 1, "day", D(2025, 3, 1)),
    (D(2025, 5, 10), "+", 28, "day", D(2025, 6, 7)),
    (D(2025, 3, 1), "-", 2, "week", D(2025, 2, 15)),
    (D(2025, 6, 1), "+", 0, "year", D(2025, 6, 1)),
    (D(9999, 12, 1), "+", 1, "month", None),             # outside the calendar: unknown
    (D(1, 1, 1), "-", 1, "day", None),
]


@pytest.mark.parametrize(("date", "op", "amount", "unit", "expected"), CALENDAR,
                         ids=[f"{c[0]} {c[1]} {c[2]} {c[3]}" for c in CALENDAR])
def test_calendar(date, op, amount, unit, expected):
    assert shift(date, op, amount, unit) == expected


def test_month_steps_do_not_undo_each_other():
    there = shift(D(2025, 1, 31), "+", 1, "month")
    assert shift(there, "-", 1, "month") == D(2025, 1, 28)


VOCABULARY = """actions { view }
roles { clerk }
purposes { care }
categories { health }
classifications official < secret
agencies { trust }
attributes {
  resource.on date
}
"""


def _request(on, today):
    resource = {"category": "health", "classification": "official", "owner": "trust"}
    if on is not None:
        resource["on"] = on.isoformat()
    return {"requester": {"role": "clerk", "agency": "trust"}, "action": "view", "purpose": "care",
            "resource": resource, "context": {"date": today.isoformat()}}


def _both(tmp_path, condition, request):
    (tmp_path / "set.policy").write_text(VOCABULARY + f'permit p {{\n  when {condition}\n  because "x"\n}}\n')
    policy = engine.load(tmp_path)
    policy_set, _ = load_set(tmp_path)
    reference = reference_decide(policy_set, build_vocabulary(policy_set), request)
    return policy.decide(request).decision, reference.decision


@pytest.mark.parametrize(("date", "op", "amount", "unit", "expected"), [c for c in CALENDAR if c[4] is not None],
                         ids=[f"{c[0]} {c[1]} {c[2]} {c[3]}" for c in CALENDAR if c[4] is not None])
def test_engine_and_reference_agree_on_the_calendar(tmp_path, date, op, amount, unit, expected):
    words = f"{amount} {unit}" + ("" if amount == 1 else "s")
    request = _request(date, expected)
    assert _both(tmp_path, f"resource.on {op} {words} == context.date", request) == ("permit", "permit")
    request = _request(date, expected + dt.timedelta(days=1))
    assert _both(tmp_path, f"resource.on {op} {words} == context.date", request) == ("deny", "deny")


TIME_LIMITS = [
    # (condition, resource.on, context.date, decision)
    ("context.date <= resource.on + 28 days", D(2025, 5, 10), D(2025, 6, 7), "permit"),   # the 28th day
    ("context.date <= resource.on + 28 days", D(2025, 5, 10), D(2025, 6, 8), "deny"),
    ("resource.on < context.date - 6 years", D(2019, 5, 31), D(2025, 6, 1), "permit"),
    ("resource.on < context.date - 6 years", D(2019, 6, 1), D(2025, 6, 1), "deny"),       # exactly six years
    ("resource.on < context.date -6 years", D(2019, 5, 31), D(2025, 6, 1), "permit"),     # `-6` is subtraction
    ("resource.on + 1 month - 1 month == resource.on", D(2025, 1, 31), D(2025, 6, 1), "deny"),
    ("context.date <= resource.on + 28 days", None, D(2025, 6, 1), "deny"),               # unknown: no permit
    ("not (context.date > resource.on + 28 days)", None, D(2025, 6, 1), "deny"),
    ("resource.on + 1 month > 9999-12-30", D(9999, 12, 1), D(2025, 6, 1), "deny"),        # outside the calendar
]


@pytest.mark.parametrize(("condition", "on", "today", "decision"), TIME_LIMITS, ids=[t[0] for t in TIME_LIMITS])
def test_time_limits(tmp_path, condition, on, today, decision):
    assert _both(tmp_path, condition, _request(on, today)) == (decision, decision)


def test_unknown_date_makes_a_deny_rule_apply(tmp_path):
    (tmp_path / "set.policy").write_text(VOCABULARY + 'permit p {\n  because "x"\n}\n'
                                         'deny retained {\n  unless resource.on >= context.date - 6 years\n'
                                         '  because "retention"\n}\n')
    decision = engine.load(tmp_path).decide(_request(None, D(2025, 6, 1)))
    assert (decision.decision, [r.rule for r in decision.reasons], decision.reasons[0].missing) == (
        "deny", ["retained"], ("resource.on",))
