import datetime as dt

import pytest

import engine
from engine import ast
from engine.analysis import analyse
from engine.governance.terms import FALSE, MISSING, TRUE, UNK, Compiler, const, reduce
from engine.checker import check
from engine.loader import load_set
from engine.source import Source
from engine.symbols import build_vocabulary
from engine.syntax import parse

VOCABULARY = """
actions { view, share, export }
roles {
  nurse
  lead : nurse
  doctor
}
purposes {
  care { urgent, routine }
  research
}
categories { health, contact }
classifications official < sensitive < secret
agencies { hospital, council, police }
group health_partners = { hospital, council }
attributes {
  context.emergency  bool  default false
  context.reason     string
}
agreement care_isa { parties health_partners }
agreement old_isa {
  parties health_partners
  valid 2020-01-01 to 2020-12-31
}
agreement long_isa {
  parties health_partners
  valid 2020-01-01 to 2999-12-31
}
agreement future_isa {
  parties health_partners
  valid 2998-01-01 to 2999-12-31
}
agreement police_in {
  from hospital
  to police
}
"""


def policy_set_of(rules: str, combine: str = "deny-overrides") -> ast.PolicySet:
    header = f'policy "t" {{\n  combine {combine}\n}}\n'
    files = (parse(Source("00_vocabulary.policy", header + VOCABULARY)), parse(Source("10_rules.policy", rules)))
    return ast.PolicySet(files)


def findings(rules: str, combine: str = "deny-overrides", today: dt.date | None = None) -> list[tuple[str, str]]:
    policy_set = policy_set_of(rules, combine)
    return [(d.code, d.message) for d in analyse(policy_set, build_vocabulary(policy_set), today=today)]


def rule(effect: str, name: str, *clauses: str) -> str:
    body = "".join(f"  {c}\n" for c in clauses)
    return f'{effect} {name} {{\n{body}  because "test"\n}}\n'


FIRES = [
    ("disjoint purposes",
     rule("permit", "p", "purpose care.urgent", "purpose research"),
     ("rule_never_applies", "permit rule `p` can never apply: its `purpose` clauses have no value in common")),
    ("disjoint data clauses",
     rule("deny", "d", "data health", "data contact"),
     ("rule_never_applies", "deny rule `d` can never apply: its `data` clauses have no value in common")),
    ("agency outside the agreement",
     rule("permit", "p", "agency police", "under care_isa"),
     ("rule_never_applies", "permit rule `p` can never apply: no agreement in `under care_isa`")),
    ("owner against a one-way agreement",
     rule("permit", "p", "owner council", "under police_in"),
     ("rule_never_applies", "permit rule `p` can never apply: no agreement in `under police_in`")),
    ("condition against up to",
     rule("permit", "p", "data health up to official", "when resource.classification > official"),
     ("rule_never_applies", "permit rule `p` can never apply: its conditions never hold where its other")),
    ("condition against the action clause",
     rule("permit", "p", "action view", "unless action in {view, share}"),
     ("rule_never_applies", "its conditions never hold")),
    ("agreement expired",
     rule("permit", "p", "under old_isa"),
     ("agreement_expired", "permit rule `p` can no longer apply: its agreements ended by 2020-12-31")),
    ("permit under deny",
     rule("permit", "p", "action view", "role nurse") + rule("deny", "d", "role nurse"),
     ("permit_never_effective", "permit rule `p` never takes effect: deny rule `d` applies to every request")),
    ("permit under deny with the same condition",
     rule("permit", "p", "role lead", "when context.emergency", "obligation audit")
     + rule("deny", "d", "when context.emergency"),
     ("permit_never_effective", "deny rule `d`")),
    ("duplicate",
     rule("permit", "a", "action view", "role nurse") + rule("permit", "b", "role nurse", "action view"),
     ("duplicate_rule", "rule `b` repeats rule `a`")),
    ("subsumed, same effect",
     rule("permit", "wide", "role nurse", "obligation audit")
     + rule("permit", "narrow", "action view", "role lead", "obligation audit"),
     ("subsumed_rule", "rule `narrow` adds nothing: rule `wide` applies to every request it does")),
    ("subsumed, wider one unconditional",
     rule("deny", "narrow", "purpose research", "when context.emergency") + rule("deny", "wide", "purpose research"),
     ("subsumed_rule", "rule `narrow` adds nothing: rule `wide`")),
    ("obligation condition against the action clause",
     rule("permit", "p", "action view", "obligation suppress when action == export"),
     ("obligation_never_applies", "obligation `suppress` of rule `p` never applies")),
    ("obligation condition against the role clause",
     rule("permit", "p", "role doctor", "obligation brief unless requester.role is doctor"),
     ("obligation_never_applies", "obligation `brief` of rule `p` never applies")),
    ("policy-wide obligation that never holds",
     "on permit obligation both when action == view and action == share\n",
     ("obligation_never_applies", "policy-wide obligation `both` never applies")),
]


@pytest.mark.parametrize(("rules", "expected"), [f[1:] for f in FIRES], ids=[f[0] for f in FIRES])
def test_warning_fires(rules, expected):
    found = findings(rules)
    assert len(found) == 1, found
    code, message = found[0]
    assert code == expected[0] and expected[1] in message


COMBINING_FIRES = [
    ("permit-overrides: deny under an unconditional permit", "permit-overrides",
     rule("deny", "d", "role lead", "data contact") + rule("permit", "p", "role nurse"),
     ("deny_never_effective", "deny rule `d` never takes effect: permit rule `p` applies to every request")),
    ("first-applicable: later rule inside an earlier one", "first-applicable",
     rule("permit", "a", "role nurse") + rule("deny", "b", "role lead", "action view"),
     ("rule_shadowed", "rule `b` never decides: the earlier rule `a` applies to every request it does")),
    ("first-applicable: deny after a deny with fewer conditions", "first-applicable",
     rule("deny", "a", "purpose research") + rule("deny", "b", "purpose research", "unless context.emergency"),
     ("rule_shadowed", "rule `b` never decides")),
]


@pytest.mark.parametrize(("combine", "rules", "expected"), [f[1:] for f in COMBINING_FIRES],
                         ids=[f[0] for f in COMBINING_FIRES])
def test_warning_fires_for_combining(combine, rules, expected):
    found = findings(rules, combine)
    assert len(found) == 1, found
    assert found[0][0] == expected[0] and expected[1] in found[0][1]


QUIET = [
    ("overlapping purposes", "deny-overrides", rule("permit", "p", "purpose care", "purpose care.urgent")),
    ("agreement still valid", "deny-overrides", rule("permit", "p", "under long_isa")),
    ("agreement not yet valid", "deny-overrides", rule("permit", "p", "under future_isa")),
    ("expired agreement beside a current one", "deny-overrides", rule("permit", "p", "under old_isa, care_isa")),
    ("one-way agreement the right way", "deny-overrides",
     rule("permit", "p", "agency police", "owner hospital", "under police_in")),
    ("condition on the context only", "deny-overrides",
     rule("permit", "p", "data health up to official", "when context.emergency and has context.reason")),
    ("condition that holds somewhere", "deny-overrides",
     rule("permit", "p", "data any up to sensitive", "when resource.classification > official")),
    ("deny with a condition the permit lacks", "deny-overrides",
     rule("permit", "p", "role nurse") + rule("deny", "d", "role nurse", "when context.emergency")),
    ("deny with a different condition", "deny-overrides",
     rule("permit", "p", "role nurse", "when context.emergency")
     + rule("deny", "d", "role nurse", "unless context.emergency")),
    ("deny narrower than the permit", "deny-overrides",
     rule("permit", "p", "role nurse") + rule("deny", "d", "role lead")),
    ("deny under the same agreement on other dates", "deny-overrides",
     rule("permit", "p", "under care_isa") + rule("deny", "d", "under long_isa")),
    ("subsumed but adds an obligation", "deny-overrides",
     rule("permit", "wide", "role nurse") + rule("permit", "narrow", "role lead", "obligation audit")),
    ("subsumed by a rule with a condition", "deny-overrides",
     rule("permit", "wide", "role nurse", "when context.emergency") + rule("permit", "narrow", "role lead")),
    ("same clauses, other effect, permit-overrides", "permit-overrides",
     rule("permit", "p", "role nurse", "when context.emergency") + rule("deny", "d", "role nurse")),
    ("first-applicable: later rule broader", "first-applicable",
     rule("permit", "a", "role lead") + rule("permit", "b", "role nurse")),
    ("first-applicable: deny after a conditional permit", "first-applicable",
     rule("permit", "a", "role nurse", "when context.emergency")
     + rule("deny", "b", "role nurse", "when context.emergency")),
    ("first-applicable: not deny-overrides", "first-applicable",
     rule("deny", "d", "role nurse") + rule("permit", "p", "action share") + rule("permit", "q", "action view")),
    ("obligation condition that can hold", "deny-overrides",
     rule("permit", "p", "action view, export", "obligation suppress when action == export")),
    ("obligation condition on the context", "deny-overrides",
     rule("permit", "p", "action view", "obligation tell unless context.emergency")),
    ("a permit that needs a context value the deny excludes", "deny-overrides",
     rule("permit", "p", "role nurse", "when context.reason == \"consent\"")
     + rule("deny", "d", "role nurse", "unless context.reason == \"consent\"")),
    ("a permit and a deny on dates either side of a day", "deny-overrides",
     rule("permit", "p", "role nurse", "when context.date <= 2025-01-01")
     + rule("deny", "d", "role nurse", "when context.date > 2025-01-01")),
    ("unknown names are the checker's business", "deny-overrides",
     rule("permit", "p", "role surgeon") + rule("permit", "q", "role surgeon")),
]


@pytest.mark.parametrize(("combine", "rules"), [q[1:] for q in QUIET], ids=[q[0] for q in QUIET])
def test_warning_does_not_fire(combine, rules):
    assert findings(rules, combine) == []


def test_example_policies_have_no_analysis_warnings():
    policy_set, errors = load_set(None)
    assert errors == []
    assert analyse(policy_set, build_vocabulary(policy_set)) == []


# old_isa ends 2020-12-31: in force on the first date, expired on the second (and today).
@pytest.mark.parametrize(("today", "expected"), [
    (dt.date(2020, 6, 1), []),
    (dt.date(2021, 1, 1), [("agreement_expired",
                            "permit rule `p` can no longer apply: its agreements ended by 2020-12-31")]),
], ids=["in force then", "ended the day before"])
def test_agreement_expiry_is_judged_on_the_date_given(today, expected):
    assert findings(rule("permit", "p", "under old_isa"), today=today) == expected


def test_check_judges_rules_under_agreements_on_its_own_date():
    policy_set = policy_set_of(rule("permit", "p", "under old_isa"))
    _vocabulary, in_force = check(policy_set, today=dt.date(2020, 6, 1))
    _vocabulary, expired = check(policy_set, today=dt.date(2021, 6, 1))
    assert [d.code for d in in_force] == []
    assert [d.code for d in expired] == ["agreement_expired", "agreement_expired"]  # the agreement, the rule


def test_engine_check_reports_analysis_warnings_with_spans(tmp_path):
    (tmp_path / "00_vocabulary.policy").write_text(VOCABULARY)
    (tmp_path / "10_rules.policy").write_text(rule("permit", "p", "action view", "role nurse")
                                              + rule("deny", "d", "role nurse"))
    result = engine.check_path(tmp_path)
    [found] = [d for d in result.diagnostics if d.code == "permit_never_effective"]
    assert not found.is_error
    assert (found.span.line, found.span.column) == (1, 8)
    assert found.span.snippet().splitlines()[1].strip() == "^"


# --- terms and three-valued reduction ----------------------------------------------------


@pytest.fixture
def compiler():
    files = (parse(Source("v.policy", VOCABULARY)),)
    return Compiler(build_vocabulary(ast.PolicySet(files)))


def condition(compiler, text: str):
    parsed = parse(Source("r.policy", rule("permit", "x", f"when {text}")))
    return compiler.rule(parsed.declarations[0]).term


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("context.emergency", {"context.emergency": MISSING}, UNK),
    ("not context.emergency", {"context.emergency": MISSING}, UNK),
    ("context.emergency or action == view", {"context.emergency": MISSING, "action": "view"}, TRUE),
    ("context.emergency and action == view", {"context.emergency": MISSING, "action": "share"}, FALSE),
    ("requester.role is nurse", {"requester.role": "lead"}, TRUE),
    ("requester.role == nurse", {"requester.role": "lead"}, FALSE),
    ("resource.classification >= sensitive", {"resource.classification": "secret"}, TRUE),
    ("purpose is care", {"purpose": "care.urgent"}, TRUE),
    ("resource.owner in health_partners", {"resource.owner": "police"}, FALSE),
    ("resource.owner == requester.agency", {"resource.owner": "police", "requester.agency": "police"}, TRUE),
    ("has context.reason", {("has", "context.reason"): False}, FALSE),
], ids=lambda v: str(v))
def test_reduce_three_valued(compiler, text, env, expected):
    assert reduce(condition(compiler, text), env) == expected


def test_reduce_keeps_what_is_not_known_yet(compiler):
    term = condition(compiler, "resource.owner == requester.agency")
    partly = reduce(term, {"requester.agency": "police"})
    assert partly == ("eq", ("a", "resource.owner"), const("police"))
    assert reduce(partly, {"resource.owner": "police"}) == TRUE


def test_under_resolves_pair_by_pair(compiler):
    parsed = parse(Source("r.policy", rule("permit", "x", "under long_isa")))
    term = compiler.rule(parsed.declarations[0]).term
    on = {"context.date": dt.date(2025, 1, 1), "requester.agency": "hospital"}
    assert reduce(term, on) == ("in", ("a", "resource.owner"), frozenset({("s", "hospital"), ("s", "council")}))
    assert reduce(term, dict(on, **{"context.date": dt.date(2019, 1, 1)})) == FALSE
