import datetime as dt
from dataclasses import dataclass

import pytest

from engine import ast, checker
from engine._graph import cycles
from engine import pipeline
from engine.errors import Severity
from engine.loader import parse_sources
from engine.source import Source

VOCABULARY = """\
policy "Test set" {
  version "1"
  combine deny-overrides
}
actions { view, share, export }
roles {
  social_worker "Social worker"
  senior_social_worker : social_worker
  police_officer
  detective : police_officer
  gp, nurse
}
purposes {
  safeguarding { children, adults }
  research { children }
  direct_care
  marketing
}
categories {
  special_category { health, criminal_record }
  social_care, education
}
classifications public < official < official_sensitive < secret
agencies {
  mcc "Manchester City Council"
  gmp "Greater Manchester Police"
  nhs
  st_marys
}
group partners = { mcc, gmp, nhs }
group everyone = { partners, st_marys }
attributes {
  requester.vetted      bool default false
  requester.team        string default "none"
  requester.clearance   classification default official
  context.consent       one of { given, refused, not_sought } default not_sought
  context.emergency     bool default false
  context.approved_by   role
  resource.subject_age  number
  resource.recorded_on  date
}
agreement dsa "Data sharing agreement" {
  parties   partners
  valid     2024-04-01 to 2099-03-31
  reference "DSA-1"
}
agreement school_referrals {
  from st_marys
  to   mcc
}
"""

VOCAB_LINES = VOCABULARY.count("\n")


def rules(text):
    return {"00_vocabulary.policy": VOCABULARY, "20_rules.policy": text}


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


def alone(text):
    return {"20_rules.policy": text}


@dataclass
class Row:
    id: str
    files: dict
    where: str  # file:line:col, the file relative to the set
    message: str
    help: str | None
    underlined: str
    severity: Severity = Severity.ERROR


def warn(*args):
    return Row(*args, severity=Severity.WARNING)


def rule(*clauses, name="r", because=True):
    lines = [f"permit {name} {{"] + [f"  {c}" for c in clauses]
    if because:
        lines.append('  because "a reason"')
    return "\n".join(lines + ["}", ""])


def many_rules(count, bad_at=None, prefix="r"):
    out = []
    for i in range(1, count + 1):
        role = "socail_worker" if i == bad_at else "social_worker"
        out.append(rule(f"role {role}", "action view", name=f"{prefix}{i}"))
    return "\n".join(out)


R = "20_rules.policy"

ROWS = [
    # --- syntax ---------------------------------------------------------------------
    Row("unterminated string", alone('permit r {\n  because "no end\n}\n'), f"{R}:2:11",
        "unterminated string", 'a string ends with `"` on the same line; write `\\"` for a quote inside it',
        '"no end'),
    Row("stray closing brace", alone("actions { view }\n}\n"), f"{R}:2:1",
        "unexpected `}`: no block is open here", "remove it, or add the `{` it should close", "}"),
    Row("misspelt declaration", alone("permitt r {\n  role gp\n}\n"), f"{R}:1:1",
        "unknown word `permitt`", "did you mean `permit`?", "permitt"),
    Row("misspelt clause keyword", alone("permit r {\n  whn context.emergency\n}\n"), f"{R}:2:3",
        "unknown word `whn`", "did you mean `when`?", "whn"),
    Row("singular block keyword", alone("role { gp }\n"), f"{R}:1:1",
        "unexpected keyword `role`", "did you mean `roles`?", "role"),
    Row("keyword used as name", alone("roles {\n  gp\n  policy\n}\n"), f"{R}:3:3",
        "`policy` is a keyword and cannot be used as a name", "choose another name, such as `policy_`", "policy"),
    Row("keyword as rule id", alone("permit when {\n  role gp\n}\n"), f"{R}:1:8",
        "`when` is a keyword and cannot be used as a name", "choose another name, such as `when_`", "when"),
    Row("missing opening brace", alone("permit r\n  role gp\n}\n"), f"{R}:1:9",
        "unexpected end of line", 'expected `{`, a "string"', " "),
    Row("block never closed", alone('permit r {\n  role gp\n  because "x"\n'), f"{R}:3:14",
        "unexpected end of file: a block is not closed", "add the `}` that closes the `{` at line 1, column 10",
        " "),
    Row("trailing comma", alone("permit r {\n  role gp, nurse,\n}\n"), f"{R}:2:17",
        "a list cannot end with `,`", "remove the `,`, or add the next value after it", ","),
    Row("single quotes", alone("permit r {\n  role 'gp'\n}\n"), f"{R}:2:8",
        "unexpected character `'`", 'strings use double quotes: "like this"', "'"),
    Row("symbolic and", alone("permit r {\n  when a && b\n}\n"), f"{R}:2:10",
        "unexpected character `&`", "write `and`, `or` and `not` as words", "&"),
    Row("unfinished comparison", alone("permit r {\n  when a ==\n}\n"), f"{R}:3:1",
        "unexpected `}`", 'expected `(`, `action`, `false`, `purpose`, `true`, a "string", ...', "}"),
    Row("unclosed parenthesis", alone("permit r {\n  when (a or b\n}\n"), f"{R}:3:1",
        "unexpected `}`", "expected `)`", "}"),
    Row("impossible date", alone("agreement a {\n  parties mcc\n  valid 2024-02-30 to 2025-01-01\n}\n"), f"{R}:3:9",
        "`2024-02-30` is not a real date", "February 2024 has 29 days", "2024-02-30"),
    Row("bad combining", alone('policy "p" {\n  combine deny_overrides\n}\n'), f"{R}:2:11",
        "unexpected `deny_overrides`", "expected deny-overrides, permit-overrides or first-applicable",
        "deny_overrides"),
    Row("two declarations on a line", alone("actions { view } roles { gp }\n"), f"{R}:1:18",
        "unexpected keyword `roles`", "expected a new line, the end of the file", "roles"),
    Row("header field twice", alone('policy "p" {\n  version "1"\n  version "2"\n}\n'), f"{R}:3:3",
        "`version` is given twice in the policy header", None, 'version "2"'),
    Row("agreement field twice", alone("agreement a {\n  parties x\n  parties y\n}\n"), f"{R}:3:3",
        "`parties` is given twice in agreement `a`", None, "parties y"),
    Row("missing value in group", alone("group g = { a b }\n"), f"{R}:1:15",
        "unexpected `b`", "expected `,`, `}`", "b"),
    # --- names ------------------------------------------------------------------------
    Row("unknown role in rule 14 of file 3", {
        "00_vocabulary.policy": VOCABULARY,
        "10_first.policy": many_rules(5, prefix="a"),
        "20_second.policy": many_rules(5, prefix="b"),
        "30_third.policy": many_rules(20, bad_at=14, prefix="c"),
    }, "30_third.policy:80:8", "unknown role `socail_worker`", "did you mean `social_worker`?", "socail_worker"),
    Row("unknown role, nothing close", rules(rule("role archivist", "action view")), f"{R}:2:8",
        "unknown role `archivist`", "declare it in `roles { … }`", "archivist"),
    Row("role clause naming an agency", rules(rule("role mcc", "action view")), f"{R}:2:8",
        "unknown role `mcc`", "`mcc` is declared as an agency", "mcc"),
    Row("unknown action", rules(rule("action veiw")), f"{R}:2:10",
        "unknown action `veiw`", "did you mean `view`?", "veiw"),
    Row("unknown purpose", rules(rule("purpose safeguardng")), f"{R}:2:11",
        "unknown purpose `safeguardng`", "did you mean `safeguarding`?", "safeguardng"),
    Row("ambiguous short name", rules(rule("purpose children")), f"{R}:2:11",
        "`children` is ambiguous: it could be `safeguarding.children`, `research.children`",
        "write the full dotted name", "children"),
    Row("unknown category", rules(rule("data helth up to official")), f"{R}:2:8",
        "unknown category `helth`", "did you mean `health`?", "helth"),
    Row("unknown agency or group", rules(rule("agency partnres")), f"{R}:2:10",
        "unknown agency or group `partnres`", "did you mean `partners`?", "partnres"),
    Row("unknown owner", rules(rule("owner nobody_at_all")), f"{R}:2:9",
        "unknown agency or group `nobody_at_all`", "declare it in `agencies { … }` or as a `group`", "nobody_at_all"),
    Row("unknown agreement", rules(rule("under dsaa")), f"{R}:2:9",
        "unknown agreement `dsaa`", "did you mean `dsa`?", "dsaa"),
    Row("up to names a category", rules(rule("data health up to health")), f"{R}:2:21",
        "`up to` needs a classification, but `health` is a category",
        "the classifications, lowest first: `public`, `official`, `official_sensitive`, `secret`", "health"),
    Row("up to names an agency", rules(rule("data health up to gmp")), f"{R}:2:21",
        "`up to` needs a classification, but `gmp` is an agency",
        "the classifications, lowest first: `public`, `official`, `official_sensitive`, `secret`", "gmp"),
    Row("up to unknown", rules(rule("data any up to offical")), f"{R}:2:18",
        "unknown classification `offical`", "did you mean `official`?", "offical"),
    # --- duplicates ---------------------------------------------------------------------
    Row("duplicate rule id across files", {
        "00_vocabulary.policy": VOCABULARY,
        "10_a.policy": rule("role gp", name="share_notes"),
        "20_b.policy": "\n" + rule("role nurse", name="share_notes"),
    }, "20_b.policy:2:8", "rule `share_notes` is declared twice", "first declared at 10_a.policy:1:8",
        "share_notes"),
    Row("duplicate role", rules("roles {\n  gp\n}\n"), f"{R}:2:3",
        "role `gp` is declared twice", "first declared at 00_vocabulary.policy:11:3", "gp"),
    Row("group named like an agency", rules("group gmp = { mcc }\n"), f"{R}:1:7",
        "group `gmp` has the same name as an agency", "first declared at 00_vocabulary.policy:26:3", "gmp"),
    Row("duplicate tree node", rules("purposes {\n  safeguarding {\n    adults\n  }\n}\n"), f"{R}:2:3",
        "purpose `safeguarding` is declared twice", "first declared at 00_vocabulary.policy:14:3",
        "safeguarding"),
    Row("duplicate attribute", rules("attributes {\n  requester.vetted bool\n}\n"), f"{R}:2:3",
        "attribute `requester.vetted` is declared twice", "first declared at 00_vocabulary.policy:33:3",
        "requester.vetted"),
    Row("second policy header", rules('policy "Another" {\n  version "2"\n}\n'), f"{R}:1:1",
        "the `policy` header is given twice",
        "first given at 00_vocabulary.policy:1:1; a policy set has at most one header", "policy"),
    Row("second classifications line", rules("classifications top_secret\n"), f"{R}:1:1",
        "classifications are declared twice",
        "first declared at 00_vocabulary.policy:23:1; list every level on one line, lowest first",
        "classifications"),
    # --- roles and groups ------------------------------------------------------------------
    Row("role cycle", alone("roles {\n  a : c\n  b : a\n  c : b\n}\n"), f"{R}:2:3",
        "role inheritance forms a cycle: a -> c -> b -> a", "remove one of these parents", "a"),
    Row("role its own parent", alone("roles {\n  a : a\n}\n"), f"{R}:2:3",
        "role inheritance forms a cycle: a -> a", "remove one of these parents", "a"),
    Row("unknown parent role", rules("roles {\n  manager : socal_worker\n}\n"), f"{R}:2:13",
        "unknown role `socal_worker`", "did you mean `social_worker`?", "socal_worker"),
    Row("group cycle", rules("group g = { h }\ngroup h = { g, mcc }\n"), f"{R}:1:7",
        "group `g` contains itself: g -> h -> g", "a group lists agencies and other groups, never itself", "g"),
    Row("group contains itself", rules("group g = { g, mcc }\n"), f"{R}:1:7",
        "group `g` contains itself", "a group lists agencies and other groups, never itself", "g"),
    Row("unknown group member", rules("group g = { mcc, gpm }\n"), f"{R}:1:18",
        "unknown agency or group `gpm`", "did you mean `gmp`?", "gpm"),
    warn("empty group", rules("group g = {}\n"), f"{R}:1:7",
         "group `g` has no members", "list its agencies, or remove the group", "g"),
    # --- attributes ---------------------------------------------------------------------------
    Row("attribute outside the request", rules("attributes {\n  user.age number\n}\n"), f"{R}:2:3",
        "attribute `user.age` must start with `requester.`, `resource.` or `context.`",
        "attributes describe the requester, the resource or the context of a request", "user.age"),
    Row("built-in redeclared", rules("attributes {\n  context.date date\n}\n"), f"{R}:2:3",
        "`context.date` is built in and cannot be declared",
        "the built-in attributes are `requester.role`, `requester.agency`, `action`, `purpose`, "
        "`resource.category`, `resource.classification`, `resource.owner`, `requester.id`, `resource.id`, "
        "`context.date`", "context.date"),
    Row("bool default not a bool", rules("attributes {\n  context.urgent bool default no\n}\n"), f"{R}:2:31",
        "the default of `context.urgent` must be true or false", "for example `default false`", "no"),
    Row("number default a string", rules('attributes {\n  context.count number default "3"\n}\n'), f"{R}:2:32",
        "the default of `context.count` must be a number", "for example `default 0`", '"3"'),
    Row("classification default unknown", rules("attributes {\n  context.level classification default offical\n}\n"),
        f"{R}:2:40", "unknown classification `offical`", "did you mean `official`?", "offical"),
    Row("classification default a category", rules("attributes {\n  context.level classification default health\n}\n"),
        f"{R}:2:40", "unknown classification `health`", "`health` is declared as a category", "health"),
    Row("one-of default not a choice", rules("attributes {\n  context.mood one of { calm, upset } default angry\n}\n"),
        f"{R}:2:47", "unknown value `angry` for `context.mood`", "`context.mood` is one of `calm`, `upset`", "angry"),
    Row("empty one of", rules("attributes {\n  context.mood one of {}\n}\n"), f"{R}:2:16",
        "`one of` lists no values", "list the values it may take", "one of {}"),
    # --- agreements ------------------------------------------------------------------------------
    Row("agreement ends before it starts", rules("agreement late {\n  parties partners\n  valid 2026-01-01 to 2025-01-01\n}\n"),
        f"{R}:3:3", "agreement `late` ends before it starts",
        "write the start date first: `valid 2025-01-01 to 2026-01-01`", "valid 2026-01-01 to 2025-01-01"),
    warn("agreement expired", rules("agreement old {\n  parties partners\n  valid 2019-01-01 to 2020-12-31\n}\n"),
         f"{R}:3:23", "agreement `old` expired on 2020-12-31",
         "rules under it no longer apply; renew its `valid` dates or remove it", "2020-12-31"),
    Row("agreement without agencies", rules('agreement empty {\n  reference "X"\n}\n'), f"{R}:1:11",
        "agreement `empty` names no agencies", "add `parties` for two-way sharing, or `from` and `to` for one way",
        "empty"),
    Row("agreement both ways and one way", rules("agreement mixed {\n  parties partners\n  to mcc\n}\n"), f"{R}:1:11",
        "agreement `mixed` has both `parties` and `from`/`to`",
        "use `parties` for two-way sharing, or `from` and `to` for one way, not both", "mixed"),
    Row("agreement from without to", rules("agreement half {\n  from nhs\n}\n"), f"{R}:1:11",
        "agreement `half` has `from` but no `to`",
        "a one-way agreement names who discloses (`from`) and who receives (`to`)", "half"),
    Row("agreement to without from", rules("agreement half {\n  to nhs\n}\n"), f"{R}:1:11",
        "agreement `half` has `to` but no `from`",
        "a one-way agreement names who discloses (`from`) and who receives (`to`)", "half"),
    Row("agreement party unknown", rules("agreement a2 {\n  parties mcc, nsh\n}\n"), f"{R}:2:16",
        "unknown agency or group `nsh`", "did you mean `nhs`?", "nsh"),
    # --- expressions -------------------------------------------------------------------------------
    Row("unknown enum value", rules(rule("when context.consent == givn")), f"{R}:2:27",
        "unknown value `givn` for `context.consent`", "did you mean `given`?", "givn"),
    Row("number compared with date", rules(rule("when resource.subject_age < 2015-04-01")), f"{R}:2:8",
        "cannot compare `resource.subject_age` (a number) with `2015-04-01` (a date)",
        "both sides must be the same kind of value", "resource.subject_age < 2015-04-01"),
    Row("bool attribute compared with enum value", rules(rule("when requester.vetted == given")), f"{R}:2:28",
        "`given` is not a value of `requester.vetted`, which is true or false", "write `true` or `false`", "given"),
    Row("enum attribute compared with bool", rules(rule("when context.consent == true")), f"{R}:2:8",
        "cannot compare `context.consent` (one of given, refused, not_sought) with `true` (true or false)",
        "`context.consent` is one of `given`, `refused`, `not_sought`", "context.consent == true"),
    Row("enum attribute compared with string", rules(rule('when context.consent == "given"')), f"{R}:2:8",
        'cannot compare `context.consent` (one of given, refused, not_sought) with `"given"` (a string)',
        "`context.consent` is one of `given`, `refused`, `not_sought`", 'context.consent == "given"'),
    Row("string compared with bare name", rules(rule("when requester.team == MASH")), f"{R}:2:26",
        "`MASH` is not a value of `requester.team`, which is a string", 'write text in double quotes: `"MASH"`',
        "MASH"),
    Row("agency compared with role", rules(rule("when resource.owner == requester.role")), f"{R}:2:8",
        "cannot compare `resource.owner` (an agency) with `requester.role` (a role)",
        "both sides must be the same kind of value", "resource.owner == requester.role"),
    Row("ordering strings", rules(rule('when requester.team < "m"')), f"{R}:2:8",
        "`<` cannot order strings", "`<`, `<=`, `>` and `>=` compare numbers, dates and classifications only",
        'requester.team < "m"'),
    Row("ordering bools", rules(rule("when requester.vetted >= true")), f"{R}:2:8",
        "`>=` cannot order true/false values",
        "`<`, `<=`, `>` and `>=` compare numbers, dates and classifications only", "requester.vetted >= true"),
    Row("ordering roles", rules(rule("when requester.role > social_worker")), f"{R}:2:8",
        "`>` cannot order roles",
        "`<`, `<=`, `>` and `>=` compare numbers, dates and classifications only; "
        "write `is` to test a role and those below it", "requester.role > social_worker"),
    Row("ordering classification by unknown level", rules(rule("when resource.classification >= sekret")),
        f"{R}:2:35", "unknown classification `sekret`", "did you mean `secret`?", "sekret"),
    Row("in group on a role", rules(rule("when requester.role in partners")), f"{R}:2:8",
        "`in partners` needs an agency, but `requester.role` is a role",
        "groups hold agencies: test `requester.agency` or `resource.owner`", "requester.role"),
    Row("in an agency", rules(rule("when requester.agency in gmp")), f"{R}:2:28",
        "`gmp` is an agency, not a group", "write `requester.agency == gmp`", "gmp"),
    Row("in unknown group", rules(rule("when resource.owner in partnrs")), f"{R}:2:26",
        "unknown group `partnrs`", "did you mean `partners`?", "partnrs"),
    Row("in a bare value instead of a set", rules(rule("when action in share")), f"{R}:2:18",
        "unknown group `share`", "to test a list of values write `action in {share}`", "share"),
    Row("in with a literal on the left", rules(rule('when "view" in {view, share}')), f"{R}:2:8",
        "`in` needs an attribute on its left, not `\"view\"`", "for example `action in {view, share}`", '"view"'),
    Row("in set with unknown value", rules(rule("when action in {view, shar}")), f"{R}:2:25",
        "unknown action `shar`", "did you mean `share`?", "shar"),
    Row("group inside a set", rules(rule("when resource.owner in {gmp, partners}")), f"{R}:2:32",
        "unknown agency `partners`", "`partners` is a group; to test its agencies write `resource.owner in partners`",
        "partners"),
    Row("is on a string", rules(rule("when requester.team is MASH")), f"{R}:2:8",
        "`is` cannot test `requester.team`, which is a string", "compare it with `==`", "requester.team is MASH"),
    Row("is with a group", rules(rule("when requester.agency is partners")), f"{R}:2:28",
        "`partners` is a group, not an agency", "write `requester.agency in partners`", "partners"),
    Row("is with unknown role", rules(rule("when context.approved_by is detectve")), f"{R}:2:31",
        "unknown role `detectve`", "did you mean `detective`?", "detectve"),
    Row("has undeclared attribute", rules(rule("when has resource.recorded")), f"{R}:2:12",
        "unknown attribute `resource.recorded`", "did you mean `resource.recorded_on`?", "resource.recorded"),
    Row("undeclared attribute", rules(rule("when context.risk_of_harm")), f"{R}:2:8",
        "unknown attribute `context.risk_of_harm`", "declare it in an `attributes { … }` block",
        "context.risk_of_harm"),
    Row("bare name missing its root", rules(rule("when vetted")), f"{R}:2:8",
        "unknown attribute `vetted`", "did you mean `requester.vetted`?", "vetted"),
    Row("when on a non-bool attribute", rules(rule("when context.consent")), f"{R}:2:8",
        "`context.consent` is not true or false: it is one of given, refused, not_sought",
        "compare it with a value, e.g. `context.consent == given`", "context.consent"),
    Row("unless on a number", rules(rule("unless resource.subject_age")), f"{R}:2:10",
        "`resource.subject_age` is not true or false: it is a number",
        "compare it with a value, e.g. `resource.subject_age >= 18`", "resource.subject_age"),
    Row("when on a literal", rules(rule('when "yes"')), f"{R}:2:8",
        "`when` needs a condition that is true or false, not a string",
        "write a comparison, or name an attribute that is true or false", '"yes"'),
    Row("and with a non-bool operand", rules(rule("when context.emergency and requester.team")), f"{R}:2:30",
        "`requester.team` is not true or false: it is a string",
        'compare it with a value, e.g. `requester.team == "text"`', "requester.team"),
    Row("bracketed condition compared", rules(rule("when (context.emergency or requester.vetted) == false")),
        f"{R}:2:9", "a condition in brackets cannot be compared",
        "use the condition as it is, or `not (…)` for the opposite", "context.emergency or requester.vetted"),
    Row("is with an attribute on the right", rules(rule("when requester.role is context.approved_by")),
        f"{R}:2:26", "the right of `is` must be a value, not the attribute `context.approved_by`",
        "compare two attributes with `==`: `requester.role == context.approved_by`", "context.approved_by"),
    # --- obligations ---------------------------------------------------------------------------------
    Row("obligation argument bare word", rules(rule("role gp", "obligation redact nhs_number")), f"{R}:3:21",
        "obligation argument `nhs_number` is not an attribute", 'write text in double quotes: `"nhs_number"`',
        "nhs_number"),
    Row("obligation argument unknown attribute", rules(rule("role gp", "obligation notify resource.ownr")),
        f"{R}:3:21", "unknown attribute `resource.ownr`", "did you mean `resource.owner`?", "resource.ownr"),
    Row("obligation condition typed", rules(rule("role gp", "obligation audit when context.consent == yes")),
        f"{R}:3:44", "unknown value `yes` for `context.consent`",
        "`context.consent` is one of `given`, `refused`, `not_sought`", "yes"),
    Row("policy obligation condition typed", rules("on permit obligation log when action in {share, exprt}\n"),
        f"{R}:1:49", "unknown action `exprt`", "did you mean `export`?", "exprt"),
    # --- warnings ------------------------------------------------------------------------------------
    warn("missing because", rules(rule("role gp", because=False)), f"{R}:1:8",
         "rule `r` has no `because`", 'add `because "…"` with the law or agreement clause it rests on', "r"),
    warn("empty because", rules(rule("role gp", 'because "  "', because=False)), f"{R}:1:8",
         "rule `r` has no `because`", 'add `because "…"` with the law or agreement clause it rests on', "r"),
    warn("two becauses", rules(rule("role gp", 'because "one"')), f"{R}:4:3",
         "rule `r` has more than one `because`", "join the reasons into one `because`", 'because "a reason"'),
    warn("rule without conditions", rules(rule("obligation audit")), f"{R}:1:8",
         "rule `r` has no conditions: it applies to every request",
         "add clauses such as `action`, `role`, `purpose` or `when`", "r"),
    warn("value listed twice", rules(rule("role gp, nurse, gp")), f"{R}:2:19",
         "`gp` is listed twice", "remove one", "gp"),
    warn("has on a required attribute", rules(rule("when has requester.role")), f"{R}:2:8",
         "`has requester.role` is always true", "every request must give `requester.role`", "has requester.role"),
]


# Durations, sets and roles held at agencies (LANGUAGE.md sections 1-3).
R2 = "20_rules.policy"
F2 = "10_forms.policy"

NEW_FORM_ROWS = [
    # --- durations and date arithmetic -------------------------------------------------
    Row("plus with a number", with_forms(rule("when context.date <= resource.discharged_on + 28")), f"{R2}:2:24",
        "`+` needs a date and a duration, not `resource.discharged_on` (a date) and `28` (a number)",
        "say what the number counts: `resource.discharged_on + 28 days`", "resource.discharged_on + 28"),
    Row("duration before the date", with_forms(rule("when context.date <= 28 days + resource.discharged_on")),
        f"{R2}:2:24", "`+` needs the date first, then the duration",
        "write `resource.discharged_on + 28 days`", "28 days + resource.discharged_on"),
    Row("number minus duration", with_forms(rule("when resource.subject_age - 1 year > 17")), f"{R2}:2:8",
        "`-` needs a date and a duration, not `resource.subject_age` (a number) and `1 year` (a duration)",
        "dates move by durations, like `context.date - 6 years`; no other arithmetic exists",
        "resource.subject_age - 1 year"),
    Row("date minus date", with_forms(rule("when context.date - resource.closed_on > 6 years")), f"{R2}:2:8",
        "`-` needs a date and a duration, not `context.date` (a date) and `resource.closed_on` (a date)",
        "dates move by durations, like `context.date - 6 years`; no other arithmetic exists",
        "context.date - resource.closed_on"),
    Row("duration compared alone", with_forms(rule("when context.date < 6 months")), f"{R2}:2:8",
        "`6 months` is a duration: it can only be added to or taken from a date",
        "for example `resource.discharged_on + 6 months`", "context.date < 6 months"),
    Row("unit without a number", with_forms(rule("when context.date < resource.closed_on + years")), f"{R2}:2:44",
        "`years` needs a number before it", "write a whole number and the unit, like `28 years`", "years"),
    # --- sets ------------------------------------------------------------------------
    Row("set of bool", declare("attributes {\n  context.flags set of bool\n}\n"), f"{F2}:2:17",
        "`context.flags` cannot be a set of true/false values", "declare one `bool` attribute per fact instead",
        "set of bool"),
    Row("comparing sets", with_forms(rule("when context.consented == context.consented")), f"{R2}:2:8",
        "`context.consented` is a set of purposes and cannot be compared",
        "test a member with `x in context.consented`, or whether it was given with `has context.consented`",
        "context.consented == context.consented"),
    Row("ordering a set", with_forms(rule("when context.levels < official")), f"{R2}:2:8",
        "`context.levels` is a set of classifications and cannot be compared",
        "test a member with `x in context.levels`, or whether it was given with `has context.levels`",
        "context.levels < official"),
    Row("set left of in", with_forms(rule("when context.consented in {direct_care}")), f"{R2}:2:8",
        "`context.consented` is a set of purposes and cannot stand left of `in` or `is`",
        "test one value instead: `x in context.consented`", "context.consented"),
    Row("set left of is", with_forms(rule("when context.consented is safeguarding")), f"{R2}:2:8",
        "`context.consented` is a set of purposes and cannot stand left of `in` or `is`",
        "test one value instead: `x in context.consented`", "context.consented"),
    Row("member of the wrong type", with_forms(rule("when requester.role in context.consented")), f"{R2}:2:8",
        "`requester.role` (a role) cannot be a member of `context.consented` (a set of purposes)",
        "both sides must be the same kind of value", "requester.role in context.consented"),
    Row("undeclared member name", with_forms(rule("when reserch in context.consented")), f"{R2}:2:8",
        "unknown purpose `reserch`", "did you mean `research`?", "reserch"),
    Row("in a plain attribute", with_forms(rule("when purpose in resource.closed_on")), f"{R2}:2:19",
        "`resource.closed_on` is not a set: it is a date",
        "`in` takes a `set of …` attribute, a group, or values in braces: `x in {a, b}`; to compare two values "
        "write `x == resource.closed_on`", "resource.closed_on"),
    Row("set as a condition", with_forms(rule("when context.consented")), f"{R2}:2:8",
        "`context.consented` is not true or false: it is a set of purposes",
        "test a member with `x in context.consented`, or whether it was given with `has context.consented`",
        "context.consented"),
    Row("set as an obligation argument", with_forms(rule("role gp", "obligation tell context.consented")), f"{R2}:3:19",
        "`context.consented` is a set and cannot be an obligation argument",
        "pass a single value, or write the obligation once per case with `when`", "context.consented"),
    Row("set default not a set", declare("attributes {\n  context.p set of purpose default research\n}\n"),
        f"{F2}:2:36", "the default of `context.p` must be a set", "write `default {}` for none, or `default {a, b}`",
        "research"),
    Row("set default with unknown member", declare("attributes {\n  context.p set of purpose default {reserch}\n}\n"),
        f"{F2}:2:37", "unknown purpose `reserch`", "did you mean `research`?", "reserch"),
    Row("braces for a single value", declare("attributes {\n  context.p purpose default {research}\n}\n"),
        f"{F2}:2:29", "`context.p` holds one value, not a set", "write a single value, or declare it `set of …`",
        "{research}"),
    # --- roles held at agencies ----------------------------------------------------------
    Row("at names an undeclared agency", declare("roles {\n  pharmacist at nhs, boots\n}\n"), f"{F2}:2:22",
        "unknown agency or group `boots`", "declare it in `agencies { … }` or as a `group`", "boots"),
    Row("at names a role", declare("roles {\n  pharmacist at gp\n}\n"), f"{F2}:2:17",
        "unknown agency or group `gp`", "did you mean `gmp`?", "gp"),
    warn("role held nowhere", declare("roles {\n  ward_clerk at nhs\n  locum_clerk : ward_clerk at gmp\n}\n"),
         f"{F2}:3:3", "role `locum_clerk` can be held at no agency",
         "its `at` shares no agency with that of `ward_clerk`", "locum_clerk"),
    # --- the new keywords --------------------------------------------------------------
    Row("at used as a name", declare("actions {\n  at\n}\n"), f"{F2}:2:3",
        "`at` became a keyword (for roles held at agencies) and cannot be used as a name",
        "rename it, such as `at_`, everywhere it is used", "at"),
    Row("set used as a rule id", declare("permit set {\n  role gp\n}\n"), f"{F2}:1:8",
        "`set` became a keyword (for set-valued attributes) and cannot be used as a name",
        "rename it, such as `set_`, everywhere it is used", "set"),
]
NEW_FORM_ROWS += [
    Row("duration as a default", declare("attributes {\n  context.by date default 28 days\n}\n"), f"{F2}:2:27",
        "`28 days` is a length of time, which can only move a date",
        "write it after a date, like `resource.discharged_on + 28 days`; lengths of time are not defaults, set "
        "members or obligation arguments", "28 days"),
]
ROWS += NEW_FORM_ROWS


def _write(tmp_path, files):
    root = tmp_path / "policies"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def _underlined(span):
    line, carets = span.snippet().split("\n")
    start = len(carets) - len(carets.lstrip())
    return (line + " ")[start : len(carets)]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_broken_policy(row, tmp_path, monkeypatch):
    _write(tmp_path, row.files)
    monkeypatch.chdir(tmp_path)
    diagnostics = pipeline.run("policies").diagnostics
    assert len(diagnostics) == 1, "\n\n".join(
        d.render() for d in diagnostics
    )
    (found,) = diagnostics
    assert (str(found.span), found.message, found.help, _underlined(found.span), found.severity) == (
        row.where,
        row.message,
        row.help,
        row.underlined,
        row.severity,
    )


def test_table_is_large():
    assert len(ROWS) >= 40


# --- policies that must be clean ----------------------------------------------------------

EVERY_CONSTRUCT = """\
on any    obligation record_decision when action in {share, export}
on permit obligation mark resource.classification when resource.classification >= official_sensitive
on deny   obligation escalate unless purpose is marketing

permit child_protection "Share for child protection enquiries" {
  action      view, share
  role        social_worker, police_officer
  agency      partners, st_marys
  purpose     safeguarding.children
  data        social_care, education, health up to official_sensitive
  owner       everyone
  under       dsa, school_referrals
  when        context.emergency or context.consent == given
  unless      requester.team == "blocked" or resource.subject_age > 17.5
  obligation  audit
  obligation  redact "nhs_number", 3, true, 2025-01-01 unless requester.role is gp
  obligation  notify resource.owner, requester.agency, action, purpose
  because     "Children Act 1989 s.47"
}

deny no_marketing "Never for marketing" {
  purpose  marketing
  because  "UK GDPR Art. 21(3)"
}

permit classified {
  data any up to secret
  when resource.classification <= requester.clearance and not has context.approved_by
  when given == context.consent and official < resource.classification
  when resource.owner == requester.agency and requester.agency in partners
  when resource.recorded_on < context.date and context.date >= 2020-01-01
  when resource.category is special_category and purpose is safeguarding
  when requester.role is senior_social_worker and action in {view}
  when context.approved_by is detective and requester.clearance is official
  when resource.classification in {official, secret} and requester.agency is mcc
  when (requester.vetted or context.emergency) and requester.vetted != false and (resource.subject_age) >= 1
  when context.consent in {given, refused} and has resource.subject_age
  when requester.team in {"MASH", "duty"} and resource.subject_age in {16, 17}
  when requester.id == "u-1" or resource.id != "r-1"
  because "test"
}
"""

CLEAN = {
    "every construct": rules(EVERY_CONSTRUCT),
    "vocabulary alone": {"00_vocabulary.policy": VOCABULARY},
    "empty file": {"00_empty.policy": "# nothing yet\n"},
    "same name in different namespaces": rules(
        "actions { direct_care }\n" + rule("purpose direct_care", "action direct_care", name="direct_care")
    ),
    "full dotted name disambiguates": rules(rule("purpose safeguarding.children, research.children")),
    "attribute of every vocabulary type": rules(
        "attributes {\n"
        "  context.act action default view\n  context.who role default gp\n  context.from agency default gmp\n"
        "  context.why purpose default safeguarding.adults\n  context.what category default health\n"
        "  context.when date default 2025-01-01\n  context.n number default 2.5\n"
        "}\n"
        + rule("when context.act == view and context.who is gp and context.from in partners",
               "when context.why is safeguarding and context.what is special_category and context.n < 3")
    ),
    "agreement without dates": rules("agreement forever {\n  parties mcc, gmp\n}\n"),
    "role with several parents": rules("roles {\n  lead : social_worker, detective\n}\n"),
    "nested groups": rules("group outer = { everyone, partners }\n"),
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
    diagnostics = pipeline.run("policies").diagnostics
    assert diagnostics == [], "\n\n".join(d.render() for d in diagnostics)


def test_example_policies_are_clean():
    diagnostics = pipeline.run(None).diagnostics
    assert [d.render() for d in diagnostics] == []


# --- the checker itself --------------------------------------------------------------------


def _set(*texts):
    sources = [Source(f"policies/{i}.policy", t) for i, t in enumerate(texts)]
    policy_set, syntax = parse_sources(sources)
    assert syntax == []
    return policy_set


def test_every_diagnostic_is_reported_sorted():
    policy_set = _set(VOCABULARY, rule("role socail_worker", "purpose resaerch") + rule("action veiw", name="s"))
    _vocab, diagnostics = checker.check(policy_set)
    assert [d.message for d in diagnostics] == [
        "unknown role `socail_worker`",
        "unknown purpose `resaerch`",
        "unknown action `veiw`",
    ]
    assert [d.span.line for d in diagnostics] == [2, 3, 7]


def test_check_returns_the_vocabulary():
    vocab, _ = checker.check(_set(VOCABULARY))
    assert "social_worker" in vocab.roles.ancestors["senior_social_worker"]
    assert vocab.groups["everyone"] == {"mcc", "gmp", "nhs", "st_marys"}


def test_passes_are_named_and_ordered():
    names = [name for name, _ in checker.PASSES]
    assert names[0] == "header" and names[-1] == "analysis"
    assert names.index("attributes") < names.index("expressions")
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "run"), checker.PASSES, ids=[n for n, _ in checker.PASSES])
def test_each_pass_runs_alone(name, run):
    ctx = checker.Context.of(_set(VOCABULARY, EVERY_CONSTRUCT))
    assert run(ctx) == []


def test_role_pass_alone_finds_a_cycle():
    ctx = checker.Context.of(_set("roles {\n  a : b\n  b : a\n}\n"))
    assert [d.message for d in checker.check_roles(ctx)] == ["role inheritance forms a cycle: a -> b -> a"]


def test_cycle_search_has_no_recursion_limit():
    names = [f"r{i}" for i in range(5000)]
    chain = {name: [names[i + 1]] for i, name in enumerate(names[:-1])}
    assert cycles(names, chain) == []
    chain[names[-1]] = [names[0]]
    (found,) = cycles(names, chain)
    assert (found[0], found[-1], len(found)) == ("r0", "r0", 5001)


def test_cycles_are_named_from_the_first_declared_member():
    edges = {"a": ["b"], "b": ["c", "a"], "c": ["b"], "d": ["d"], "e": []}
    assert cycles(["e", "c", "a", "b", "d"], edges) == [["c", "b", "c"], ["d", "d"]]


def test_expiry_is_judged_against_today():
    policy_set = _set(VOCABULARY, "agreement a {\n  parties mcc\n  valid 2024-01-01 to 2025-12-31\n}\n")
    _, before = checker.check(policy_set, today=dt.date(2025, 12, 31))
    _, after = checker.check(policy_set, today=dt.date(2026, 1, 1))
    assert before == []
    assert [d.code for d in after] == ["agreement_expired"]


def test_deeply_nested_condition_is_a_diagnostic():
    expr = "not " * 400 + "context.emergency"
    policy_set = _set(VOCABULARY, rule(f"when {expr}"))
    _, diagnostics = checker.check(policy_set)
    assert [d.code for d in diagnostics] in ([], ["nested_too_deeply"])


def test_diagnostics_have_stable_codes():
    policy_set = _set(VOCABULARY, rule("role socail_worker", "when context.consent == givn"), "roles { gp }\n")
    _, diagnostics = checker.check(policy_set)
    assert sorted(d.code for d in diagnostics) == ["duplicate_name", "unknown_name", "unknown_value"]


def test_syntax_error_in_vocabulary_does_not_flood_unknown_names(tmp_path, monkeypatch):
    _write(tmp_path, {"00_vocabulary.policy": VOCABULARY + "roles { gp nurse }\n", "20_rules.policy": rule("role gp")})
    monkeypatch.chdir(tmp_path)
    diagnostics = pipeline.run("policies").diagnostics
    assert [d.code for d in diagnostics] == ["policy_parse_error"]


class _Analysis:
    calls = 0

    @staticmethod
    def analyse(policy_set, vocabulary, *, today=None):
        _Analysis.calls += 1
        return []


def test_analysis_runs_only_without_errors(monkeypatch):
    monkeypatch.setattr(checker, "analyse", _Analysis.analyse)
    _Analysis.calls = 0
    checker.check(_set(VOCABULARY, rule("role gp")))
    checker.check(_set(VOCABULARY, rule("role gpp")))
    checker.check(_set(VOCABULARY, rule("role gp")), analysis=False)
    assert _Analysis.calls == 1


def test_rules_in_every_file_are_checked():
    policy_set = _set(VOCABULARY, rule("role gp"), rule("role gpp", name="s"))
    _, diagnostics = checker.check(policy_set)
    assert [str(d.span) for d in diagnostics] == ["policies/2.policy:2:8"]


def test_unused_ast_is_not_required():
    # a set of only rules, with nothing declared, reports each unknown name once
    policy_set = _set(rule("role gp", "purpose research"))
    _, diagnostics = checker.check(policy_set)
    assert [d.message for d in diagnostics] == ["unknown role `gp`", "unknown purpose `research`"]
    assert isinstance(policy_set.files[0].declarations[0], ast.Rule)
