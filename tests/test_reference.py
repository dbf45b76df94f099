import copy
import datetime as dt

import pytest

from engine import ast
from reference import RefDecision, reference_decide
from engine.source import Source
from engine.symbols import build_vocabulary
from engine.syntax import parse

VOCABULARY = """
actions { view, share, export }
roles {
  social_worker
  senior_social_worker : social_worker
  police_officer
  detective : police_officer
  lead : senior_social_worker, detective
  gp
}
purposes {
  safeguarding { children { child_protection }, adults }
  care { children }
  research
  marketing
}
categories {
  special_category { health, criminal_record }
  social_care, education
}
classifications public < official < official_sensitive < secret
agencies { council, police, nhs, school, housing }
group partners = { council, police, nhs }
group everyone = { partners, school }
attributes {
  requester.vetted     bool                                  default false
  requester.clearance  classification                        default official
  requester.home       agency
  context.emergency    bool                                  default false
  context.consent      one of { given, refused, not_sought } default not_sought
  context.risk         bool
  context.count        number                                default 1
  resource.age         number
  resource.recorded    date
  resource.tag         string
  context.approver     role
}
agreement isa { parties partners }
agreement dated { parties everyone
  valid 2025-01-01 to 2025-12-31 }
agreement school_to_council {
  from school
  to council
}
"""

BASE = {
    "requester": {"id": "u1", "role": "social_worker", "agency": "council"},
    "action": "view",
    "resource": {"id": "r1", "category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "child_protection",
    "context": {"date": "2025-06-01"},
}


def decide(rules: str, changes: dict | None = None, header: str = "") -> RefDecision:
    files = [parse(Source("00_vocab.policy", header + VOCABULARY)), parse(Source("10_rules.policy", rules))]
    policy_set = ast.PolicySet(tuple(files))
    return reference_decide(policy_set, build_vocabulary(policy_set), request(changes or {}))


def request(changes: dict) -> dict:
    """BASE with `changes` applied: {"resource.owner": "police"}; None removes the field."""
    built = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        here = built
        for part in parents:
            here = here.setdefault(part, {})
        if value is None:
            here.pop(last, None)
        else:
            here[last] = value
    return built


def header(combine: str) -> str:
    return f'policy "test" {{\n  combine {combine}\n}}\n'


# (id, rules, request changes, decision, reasons)
CLAUSES = [
    ("empty rule applies", "permit p {\n}", {}, "permit", ["p"]),
    ("no rules: deny, no reasons", "", {}, "deny", []),
    ("action listed", "permit p {\n action share, view\n}", {}, "permit", ["p"]),
    ("action not listed", "permit p {\n action share\n}", {}, "deny", []),
    ("role exact", "permit p {\n role social_worker\n}", {}, "permit", ["p"]),
    ("role inherits", "permit p {\n role social_worker\n}", {"requester.role": "senior_social_worker"}, "permit", ["p"]),
    ("role multi-inheritance second parent", "permit p {\n role police_officer\n}", {"requester.role": "lead"},
     "permit", ["p"]),
    ("role parent does not cover child's parent", "permit p {\n role detective\n}",
     {"requester.role": "police_officer"}, "deny", []),
    ("purpose below in tree", "permit p {\n purpose safeguarding\n}", {}, "permit", ["p"]),
    ("purpose above does not match", "permit p {\n purpose child_protection\n}",
     {"purpose": "safeguarding"}, "deny", []),
    ("purpose by full dotted path", "permit p {\n purpose safeguarding.children\n}", {}, "permit", ["p"]),
    ("purpose other subtree with same leaf name", "permit p {\n purpose care.children\n}", {}, "deny", []),
    ("request purpose by full path", "permit p {\n purpose care\n}", {"purpose": "care.children"}, "permit", ["p"]),
    ("data category below", "permit p {\n data special_category\n}", {}, "permit", ["p"]),
    ("data category other", "permit p {\n data social_care\n}", {}, "deny", []),
    ("data up to at the limit", "permit p {\n data health up to official\n}", {}, "permit", ["p"]),
    ("data up to above the limit", "permit p {\n data health up to official\n}",
     {"resource.classification": "secret"}, "deny", []),
    ("data any up to", "permit p {\n data any up to official_sensitive\n}", {"resource.category": "education"},
     "permit", ["p"]),
    ("repeated clauses must all hold", "permit p {\n action view\n action share\n}", {}, "deny", []),
    ("agency listed", "permit p {\n agency council\n}", {}, "permit", ["p"]),
    ("agency through nested group", "permit p {\n agency everyone\n}", {"requester.agency": "school"},
     "permit", ["p"]),
    ("agency outside group", "permit p {\n agency partners\n}", {"requester.agency": "housing"}, "deny", []),
    ("owner through group", "permit p {\n owner partners\n}", {}, "permit", ["p"]),
    ("owner not listed", "permit p {\n owner school\n}", {}, "deny", []),
    ("under two-way, no dates", "permit p {\n under isa\n}", {}, "permit", ["p"]),
    ("under two-way, owner not party", "permit p {\n under isa\n}", {"resource.owner": "school"}, "deny", []),
    ("under dated, first day", "permit p {\n under dated\n}", {"context.date": "2025-01-01"}, "permit", ["p"]),
    ("under dated, last day", "permit p {\n under dated\n}", {"context.date": "2025-12-31"}, "permit", ["p"]),
    ("under dated, day after", "permit p {\n under dated\n}", {"context.date": "2026-01-01"}, "deny", []),
    ("under one-way, right direction", "permit p {\n under school_to_council\n}", {"resource.owner": "school"},
     "permit", ["p"]),
    ("under one-way, reverse direction", "permit p {\n under school_to_council\n}",
     {"requester.agency": "school", "resource.owner": "council"}, "deny", []),
    ("under any of several", "permit p {\n under school_to_council, isa\n}", {}, "permit", ["p"]),
]

CONDITIONS = [
    ("when true", "context.emergency", {"context.emergency": True}, "permit"),
    ("when default false", "context.emergency", {}, "deny"),
    ("when enum bare name", "context.consent == given", {"context.consent": "given"}, "permit"),
    ("when enum default", "context.consent == not_sought", {}, "permit"),
    ("!= enum", "context.consent != given", {}, "permit"),
    ("in set action", "action in {share, export}", {"action": "export"}, "permit"),
    ("in set miss", "action in {share, export}", {}, "deny"),
    ("in group", "resource.owner in partners", {}, "permit"),
    ("in nested group miss", "resource.owner in partners", {"resource.owner": "school"}, "deny"),
    ("is role inherits", "requester.role is social_worker", {"requester.role": "lead"}, "permit"),
    ("is purpose below", "purpose is safeguarding", {}, "permit"),
    ("== purpose exact never through tree", "purpose == safeguarding", {}, "deny"),
    ("== purpose short name resolves", "purpose == child_protection", {"purpose": "safeguarding.children.child_protection"},
     "permit"),
    ("is classification means equal", "resource.classification is official", {}, "permit"),
    ("classification order", "resource.classification > requester.clearance", {"resource.classification": "secret"},
     "permit"),
    ("classification order default", "resource.classification <= requester.clearance", {}, "permit"),
    ("number compare", "resource.age < 18", {"resource.age": 12}, "permit"),
    ("number compare false", "resource.age < 18", {"resource.age": 18}, "deny"),
    ("number decimal", "resource.age >= 17.5", {"resource.age": 18}, "permit"),
    ("date compare", "resource.recorded < 2020-01-01", {"resource.recorded": "2019-12-31"}, "permit"),
    ("context.date defaults to today", "context.date == " + dt.date.today().isoformat(), {"context.date": None},
     "permit"),
    ("has given", "has resource.tag", {"resource.tag": "x"}, "permit"),
    ("has not given even with default", "has context.emergency", {}, "deny"),
    ("has given default value", "has context.emergency", {"context.emergency": False}, "permit"),
    ("string equality", 'resource.tag == "x"', {"resource.tag": "x"}, "permit"),
    ("not", "not context.emergency", {}, "permit"),
    ("and / or precedence", "context.emergency or requester.vetted and context.consent == given",
     {"context.emergency": True}, "permit"),
    ("parentheses", "(context.emergency or requester.vetted) and context.consent == given",
     {"context.emergency": True}, "deny"),
    ("bool literal", "true", {}, "permit"),
    ("agency attribute equality", "requester.agency == resource.owner", {"resource.owner": "council"}, "permit"),
    ("role attribute is", "context.approver is police_officer", {"context.approver": "detective"}, "permit"),
    ("== bool literal", "requester.vetted == false", {}, "permit"),
]

# (id, effect, clause, request changes, decision, reasons): context.risk and
# resource.age have no default, so omitting them makes conditions unknown.
UNKNOWNS = [
    ("permit that might apply does not", "permit", "when context.risk", {}, "deny", []),
    ("deny that might apply does", "deny", "when context.risk", {}, "deny", ["d"]),
    ("deny that might apply, unless", "deny", "unless context.risk", {}, "deny", ["d"]),
    ("not unknown is unknown", "permit", "when not context.risk", {}, "deny", []),
    ("true or unknown is true", "permit", "when context.risk or true", {}, "permit", ["p"]),
    ("false and unknown is false", "deny", "when context.risk and false", {}, "permit", ["p"]),
    ("false or unknown is unknown (deny)", "deny", "when context.risk or false", {}, "deny", ["d"]),
    ("comparison with missing is unknown", "deny", "when resource.age < 18", {}, "deny", ["d"]),
    ("unknown deny with a false clause does not apply", "deny", "action export\n when context.risk", {},
     "permit", ["p"]),
    ("missing in set is unknown", "deny", "when context.approver in {gp}", {}, "deny", ["d"]),
    ("missing is is unknown", "deny", "when context.approver is gp", {}, "deny", ["d"]),
    ("missing in group is unknown", "deny", "when requester.home in partners", {}, "deny", ["d"]),
    ("missing in empty set is unknown", "deny", "when context.approver in {}", {}, "deny", ["d"]),
    ("given in empty set is false", "deny", "when requester.role in {}", {}, "permit", ["p"]),
    ("missing set member, operand matches another", "permit", "when requester.role in {social_worker, context.approver}",
     {}, "permit", ["p"]),
    ("missing set member, no other match", "deny", "when requester.role in {gp, context.approver}", {}, "deny", ["d"]),
    ("has is never unknown", "deny", "when has context.risk", {}, "permit", ["p"]),
    ("known false deny does not apply", "deny", "when context.risk", {"context.risk": False}, "permit", ["p"]),
]


@pytest.mark.parametrize(("rules", "changes", "decision", "reasons"),
                         [c[1:] for c in CLAUSES], ids=[c[0] for c in CLAUSES])
def test_clauses(rules, changes, decision, reasons):
    got = decide(rules, changes)
    assert (got.decision, got.reasons) == (decision, reasons)


@pytest.mark.parametrize(("expr", "changes", "decision"), [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS])
def test_conditions(expr, changes, decision):
    assert decide(f"permit p {{\n when {expr}\n}}", changes).decision == decision
    assert decide(f"permit p {{\n unless {expr}\n}}", changes).decision == ("deny" if decision == "permit" else "permit")


@pytest.mark.parametrize(("effect", "clause", "changes", "decision", "reasons"),
                         [c[1:] for c in UNKNOWNS], ids=[c[0] for c in UNKNOWNS])
def test_missing_attributes_fail_closed(effect, clause, changes, decision, reasons):
    name = "p" if effect == "permit" else "d"
    rules = f"permit p {{\n}}\n{effect} {name} {{\n {clause}\n}}" if effect == "deny" else f"permit p {{\n {clause}\n}}"
    got = decide(rules, changes)
    assert (got.decision, got.reasons) == (decision, reasons)


RULES = """
permit p1 {
  action view
}
deny d1 {
  purpose research
}
permit p2 {
  role social_worker
}
deny d2 {
  action share
}
"""

# (id, combine, request changes, decision, reasons)
COMBINING = [
    ("deny-overrides: all applying permits", "deny-overrides", {}, "permit", ["p1", "p2"]),
    ("deny-overrides: deny wins", "deny-overrides", {"purpose": "research"}, "deny", ["d1"]),
    ("deny-overrides: all applying denies", "deny-overrides", {"purpose": "research", "action": "share"},
     "deny", ["d1", "d2"]),
    ("deny-overrides: nothing applies", "deny-overrides", {"requester.role": "gp", "action": "export"}, "deny", []),
    ("permit-overrides: permit wins", "permit-overrides", {"purpose": "research"}, "permit", ["p1", "p2"]),
    ("permit-overrides: denies when no permit", "permit-overrides",
     {"purpose": "research", "action": "share", "requester.role": "gp"}, "deny", ["d1", "d2"]),
    ("permit-overrides: nothing applies", "permit-overrides", {"requester.role": "gp", "action": "export"},
     "deny", []),
    ("first-applicable: first permit", "first-applicable", {"purpose": "research"}, "permit", ["p1"]),
    ("first-applicable: first deny", "first-applicable", {"purpose": "research", "action": "share"}, "deny", ["d1"]),
    ("first-applicable: later permit", "first-applicable", {"action": "export"}, "permit", ["p2"]),
    ("first-applicable: nothing applies", "first-applicable", {"requester.role": "gp", "action": "export"},
     "deny", []),
]


@pytest.mark.parametrize(("combine", "changes", "decision", "reasons"),
                         [c[1:] for c in COMBINING], ids=[c[0] for c in COMBINING])
def test_combining(combine, changes, decision, reasons):
    got = decide(RULES, changes, header(combine))
    assert (got.decision, got.reasons) == (decision, reasons)


def test_no_header_combines_deny_overrides():
    assert decide(RULES, {"purpose": "research"}).reasons == ["d1"]


def test_first_applicable_skips_a_permit_that_might_apply_and_stops_at_a_deny_that_might():
    rules = "permit p {\n when context.risk\n}\ndeny d {\n when resource.age > 3\n}\npermit q {\n}"
    got = decide(rules, {}, header("first-applicable"))
    assert (got.decision, got.reasons) == ("deny", ["d"])


OBLIGATIONS = """
on any obligation record
on permit obligation log action when action in {share, export}
permit p1 {
  action view, share
  obligation audit
  obligation redact "nhs_number" unless requester.role is gp
  obligation notify resource.owner, 3, true, 2025-01-02
  obligation tag resource.tag
}
on deny obligation escalate unless purpose is marketing
permit p2 {
  role social_worker
  obligation audit
  obligation record
  obligation consent_check when context.risk
}
on permit obligation mark resource.classification when resource.classification >= official_sensitive
deny d1 {
  purpose marketing
  obligation alert when context.risk
  obligation alert
}
"""

# (id, request changes, decision, obligations)
OBLIGATION_CASES = [
    ("rules in reasons and policy-wide, set order, deduplicated", {},
     "permit", [("record", ()), ("audit", ()), ("redact", ("nhs_number",)), ("notify", ("nhs", 3, True, "2025-01-02")),
                ("tag", (None,), ("resource.tag",)), ("consent_check", (), ("context.risk",))]),
    ("conditional policy-wide when true", {"action": "share", "resource.classification": "secret", "resource.tag": "t"},
     "permit", [("record", ()), ("log", ("share",)), ("audit", ()), ("redact", ("nhs_number",)),
                ("notify", ("nhs", 3, True, "2025-01-02")), ("tag", ("t",)), ("consent_check", (), ("context.risk",)),
                ("mark", ("secret",))]),
    ("unless true drops it; an omitted argument is undetermined", {"requester.role": "gp", "action": "view"},
     "permit", [("record", ()), ("audit", ()), ("notify", ("nhs", 3, True, "2025-01-02")),
                ("tag", (None,), ("resource.tag",))]),
    ("only the deciding rule's obligations; unknown condition undetermined", {"action": "export"},
     "permit", [("record", ()), ("log", ("export",)), ("audit", ()), ("consent_check", (), ("context.risk",))]),
    ("deny because nothing permits gets deny obligations", {"action": "export", "requester.role": "gp"},
     "deny", [("record", ()), ("escalate", ())]),
    ("deny rule obligations; undetermined and applying count once, as applying", {"purpose": "marketing"},
     "deny", [("record", ()), ("alert", ())]),
    ("deny rule obligations; same name and args once", {"purpose": "marketing", "context.risk": True},
     "deny", [("record", ()), ("alert", ())]),
]


@pytest.mark.parametrize(("changes", "decision", "obligations"),
                         [c[1:] for c in OBLIGATION_CASES], ids=[c[0] for c in OBLIGATION_CASES])
def test_obligations(changes, decision, obligations):
    got = decide(OBLIGATIONS, changes)
    assert (got.decision, shown(got.obligations)) == (decision, obligations)


def shown(obligations):
    """(name, args) for one that applies; (name, args, needs) for an undetermined one."""
    return [(name, args) if status == "applies" else (name, args, needs) for name, args, status, needs in obligations]


def test_obligations_with_different_arguments_are_kept_apart():
    rules = "on any obligation n 1\non any obligation n 2\non any obligation n 1.0\non any obligation n true\n"
    assert shown(decide(rules).obligations) == [("n", (1,)), ("n", (2,)), ("n", (True,))]


def test_a_date_argument_is_reported_as_iso_text_and_deduplicated_with_the_same_text():
    rules = 'on any obligation n 2025-01-01\non any obligation n "2025-01-01"\n'
    assert shown(decide(rules).obligations) == [("n", ("2025-01-01",))]


def test_obligation_argument_of_tree_attribute_is_the_full_name():
    got = decide("on any obligation note purpose, requester.clearance\n")
    assert shown(got.obligations) == [("note", ("safeguarding.children.child_protection", "official"))]


def test_rule_id_may_match_a_purpose_name():
    assert decide("permit research {\n purpose research\n}", {"purpose": "research"}).reasons == ["research"]


def test_obligations_follow_set_order_across_files():
    files = [parse(Source("00_vocab.policy", VOCABULARY + "on any obligation first\n")),
             parse(Source("10_rules.policy", "permit p {\n obligation second\n}\non any obligation third\n"))]
    policy_set = ast.PolicySet(tuple(files))
    got = reference_decide(policy_set, build_vocabulary(policy_set), request({}))
    assert shown(got.obligations) == [("first", ()), ("second", ()), ("third", ())]


NEAR = """
permit needs_two {
  action share
  role police_officer
  because "x"
}
permit needs_one {
  purpose research
  obligation audit
}
permit needs_unknown {
  action view
  when context.risk
}
permit needs_three {
  action export
  role gp
  data education
}
permit needs_one_later {
  owner school
}
"""


def test_near_misses_fewest_failed_clauses_ties_in_set_order_unknown_counts_as_failed():
    got = decide(NEAR)
    assert (got.decision, got.reasons) == ("deny", [])
    assert got.near_misses == [("needs_one", ["purpose"]), ("needs_unknown", ["when"]),
                               ("needs_one_later", ["owner"])]


def test_no_near_misses_when_a_rule_applied():
    assert decide(NEAR, {"purpose": "research"}).near_misses == []


def test_a_deny_that_might_apply_names_what_was_missing_in_written_order():
    rules = ("deny d {\n when resource.age < 18 or context.risk or has resource.tag\n"
             " unless requester.vetted\n when context.approver is gp and resource.age > 3\n}\n")
    got = decide(rules)
    assert (got.decision, got.reasons) == ("deny", ["d"])
    assert got.missing == {"d": ["resource.age", "context.risk", "context.approver"]}
