"""Checker tables for durations, sets and roles held at agencies (LANGUAGE.md sections 1-3):
each broken policy gets one diagnostic, with its position, wording, help and underline."""

import pytest
from test_checker import VOCABULARY, Row, _underlined, _write, rule, warn

from engine.commands.check import diagnose

MORE = """attributes {
  resource.discharged_on date
  resource.closed_on     date
  context.consented      set of purpose default {}
  context.levels         set of classification
}
"""


def with_forms(text):
    return {"00_vocabulary.policy": VOCABULARY, "10_forms.policy": MORE, "20_rules.policy": text}


def declare(text):
    return {"00_vocabulary.policy": VOCABULARY, "10_forms.policy": text}


R = "20_rules.policy"
F = "10_forms.policy"

ROWS = [
    # --- durations and date arithmetic -------------------------------------------------
    Row("plus with a number", with_forms(rule("when context.date <= resource.discharged_on + 28")), f"{R}:2:24",
        "`+` needs a date and a duration, not `resource.discharged_on` (a date) and `28` (a number)",
        "say what the number counts: `resource.discharged_on + 28 days`", "resource.discharged_on + 28"),
    Row("duration before the date", with_forms(rule("when context.date <= 28 days + resource.discharged_on")),
        f"{R}:2:24", "`+` needs the date first, then the duration",
        "write `resource.discharged_on + 28 days`", "28 days + resource.discharged_on"),
    Row("number minus duration", with_forms(rule("when resource.subject_age - 1 year > 17")), f"{R}:2:8",
        "`-` needs a date and a duration, not `resource.subject_age` (a number) and `1 year` (a duration)",
        "dates move by durations, like `context.date - 6 years`; no other arithmetic exists",
        "resource.subject_age - 1 year"),
    Row("date minus date", with_forms(rule("when context.date - resource.closed_on > 6 years")), f"{R}:2:8",
        "`-` needs a date and a duration, not `context.date` (a date) and `resource.closed_on` (a date)",
        "dates move by durations, like `context.date - 6 years`; no other arithmetic exists",
        "context.date - resource.closed_on"),
    Row("duration compared alone", with_forms(rule("when context.date < 6 months")), f"{R}:2:8",
        "`6 months` is a duration: it can only be added to or taken from a date",
        "for example `resource.discharged_on + 6 months`", "context.date < 6 months"),
    Row("unit without a number", with_forms(rule("when context.date < resource.closed_on + years")), f"{R}:2:44",
        "`years` needs a number before it", "write a whole number and the unit, like `28 years`", "years"),
    # --- sets ------------------------------------------------------------------------
    Row("set of bool", declare("attributes {\n  context.flags set of bool\n}\n"), f"{F}:2:17",
        "`context.flags` cannot be a set of true/false values", "declare one `bool` attribute per fact instead",
        "set of bool"),
    Row("comparing sets", with_forms(rule("when context.consented == context.consented")), f"{R}:2:8",
        "`context.consented` is a set of purposes and cannot be compared",
        "test a member with `x in context.consented`, or whether it was given with `has context.consented`",
        "context.consented == context.consented"),
    Row("ordering a set", with_forms(rule("when context.levels < official")), f"{R}:2:8",
        "`context.levels` is a set of classifications and cannot be compared",
        "test a member with `x in context.levels`, or whether it was given with `has context.levels`",
        "context.levels < official"),
    Row("set left of in", with_forms(rule("when context.consented in {direct_care}")), f"{R}:2:8",
        "`context.consented` is a set of purposes and cannot stand left of `in` or `is`",
        "test one value instead: `x in context.consented`", "context.consented"),
    Row("set left of is", with_forms(rule("when context.consented is safeguarding")), f"{R}:2:8",
        "`context.consented` is a set of purposes and cannot stand left of `in` or `is`",
        "test one value instead: `x in context.consented`", "context.consented"),
    Row("member of the wrong type", with_forms(rule("when requester.role in context.consented")), f"{R}:2:8",
        "`requester.role` (a role) cannot be a member of `context.consented` (a set of purposes)",
        "both sides must be the same kind of value", "requester.role in context.consented"),
    Row("undeclared member name", with_forms(rule("when reserch in context.consented")), f"{R}:2:8",
        "unknown purpose `reserch`", "did you mean `research`?", "reserch"),
    Row("in a plain attribute", with_forms(rule("when purpose in resource.closed_on")), f"{R}:2:19",
        "`resource.closed_on` is not a set: it is a date",
        "`in` takes a `set of …` attribute, a group, or values in braces: `x in {a, b}`; to compare two values "
        "write `x == resource.closed_on`", "resource.closed_on"),
    Row("set as a condition", with_forms(rule("when context.consented")), f"{R}:2:8",
        "`context.consented` is not true or false: it is a set of purposes",
        "test a member with `x in context.consented`, or whether it was given with `has context.consented`",
        "context.consented"),
    Row("set as an obligation argument", with_forms(rule("role gp", "obligation tell context.consented")), f"{R}:3:19",
        "`context.consented` is a set and cannot be an obligation argument",
        "pass a single value, or write the obligation once per case with `when`", "context.consented"),
    Row("set default not a set", declare("attributes {\n  context.p set of purpose default research\n}\n"),
        f"{F}:2:36", "the default of `context.p` must be a set", "write `default {}` for none, or `default {a, b}`",
        "research"),
    Row("set default with unknown member", declare("attributes {\n  context.p set of purpose default {reserch}\n}\n"),
        f"{F}:2:37", "unknown purpose `reserch`", "did you mean `research`?", "reserch"),
    Row("braces for a single value", declare("attributes {\n  context.p purpose default {research}\n}\n"),
        f"{F}:2:29", "`context.p` holds one value, not a set", "write a single value, or declare it `set of …`",
        "{research}"),
    # --- roles held at agencies ----------------------------------------------------------
    Row("at names an undeclared agency", declare("roles {\n  pharmacist at nhs, boots\n}\n"), f"{F}:2:22",
        "unknown agency or group `boots`", "declare it in `agencies { … }` or as a `group`", "boots"),
    Row("at names a role", declare("roles {\n  pharmacist at gp\n}\n"), f"{F}:2:17",
        "unknown agency or group `gp`", "did you mean `gmp`?", "gp"),
    warn("role held nowhere", declare("roles {\n  ward_clerk at nhs\n  locum_clerk : ward_clerk at gmp\n}\n"),
         f"{F}:3:3", "role `locum_clerk` can be held at no agency",
         "its `at` shares no agency with that of `ward_clerk`", "locum_clerk"),
    # --- the new keywords --------------------------------------------------------------
    Row("at used as a name", declare("actions {\n  at\n}\n"), f"{F}:2:3",
        "`at` became a keyword (for roles held at agencies) and cannot be used as a name",
        "rename it, such as `at_`, everywhere it is used", "at"),
    Row("set used as a rule id", declare("permit set {\n  role gp\n}\n"), f"{F}:1:8",
        "`set` became a keyword (for set-valued attributes) and cannot be used as a name",
        "rename it, such as `set_`, everywhere it is used", "set"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_broken_policy(row, tmp_path, monkeypatch):
    _write(tmp_path, row.files)
    monkeypatch.chdir(tmp_path)
    _policy_set, diagnostics = diagnose("policies")
    assert len(diagnostics) == 1, "\n\n".join(d.render() for d in diagnostics)
    (found,) = diagnostics
    assert (str(found.span), found.message, found.help, _underlined(found.span), found.severity) == (
        f"policies/{row.where}", row.message, row.help, row.underlined, row.severity)


CLEAN = {
    "time limits": with_forms(rule("when context.date <= resource.discharged_on + 28 days",
                                   "unless resource.closed_on < context.date - 6 years",
                                   "when resource.discharged_on + 1 month - 1 week >= 2025-01-31")),
    "minus glued to the number": with_forms(rule("unless resource.closed_on < context.date -6 years")),
    "membership": with_forms(rule("when purpose in context.consented", "when research in context.consented",
                                  "when has context.consented", "unless official_sensitive in context.levels")),
    "roles at agencies and groups": declare('roles {\n  pharmacist "Pharmacist" at nhs, partners\n'
                                            "  chief_pharmacist : pharmacist at nhs\n}\n"),
    "unit words stay names elsewhere": declare("actions { days }\nagencies { month }\n"),
}


@pytest.mark.parametrize("files", CLEAN.values(), ids=CLEAN.keys())
def test_clean_policy(files, tmp_path, monkeypatch):
    _write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    _policy_set, diagnostics = diagnose("policies")
    assert [d.render() for d in diagnostics if d.is_error or d.code != "missing_because"] == []
