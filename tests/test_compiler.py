import functools

import pytest

from conftest import DELETE, policy, request, rule
from engine.compiler import compile_policy
from engine.loader import parse_sources
from engine.source import Source
from engine.symbols import build_vocabulary


@functools.cache
def permit_only(clauses: str):
    return policy(rule(clauses))


# (clauses of one permit rule, changes to the request, whether the rule applies)
CLAUSES = [
    ("action listed", "action view, share", {"action": "share"}, True),
    ("action not listed", "action view, share", {"action": "export"}, False),
    ("role listed", "role social_worker", {}, True),
    ("role inherits", "role social_worker", {"requester.role": "senior_social_worker"}, True),
    ("role inherits from a second parent", "role police_officer", {"requester.role": "lead"}, True),
    ("role parent is not below child", "role senior_social_worker", {}, False),
    ("role unrelated", "role social_worker", {"requester.role": "detective"}, False),
    ("agency direct", "agency council", {}, True),
    ("agency through a group", "agency partners", {"requester.agency": "nhs"}, True),
    ("agency outside the group", "agency partners", {"requester.agency": "school"}, False),
    ("agency mixing names and groups", "agency school, health_bodies", {"requester.agency": "nhs"}, True),
    ("purpose exact", "purpose safeguarding.children", {}, True),
    ("purpose below", "purpose safeguarding", {}, True),
    ("purpose by short name", "purpose children", {"purpose": "children"}, True),
    ("purpose above is not below", "purpose children", {"purpose": "safeguarding"}, False),
    ("purpose sibling", "purpose safeguarding.children", {"purpose": "adults"}, False),
    ("data category below", "data special_category", {}, True),
    ("data category elsewhere", "data special_category", {"resource.category": "education"}, False),
    ("data up to: at the limit", "data health up to official", {}, True),
    ("data up to: below", "data health up to official", {"resource.classification": "public"}, True),
    ("data up to: above", "data health up to official", {"resource.classification": "secret"}, False),
    ("data up to: right level, wrong category", "data health up to secret", {"resource.category": "education"},
     False),
    ("data any up to: within", "data any up to official_sensitive", {"resource.category": "education"}, True),
    ("data any up to: above", "data any up to official_sensitive", {"resource.classification": "secret"}, False),
    ("owner direct", "owner nhs", {}, True),
    ("owner through a group", "owner health_bodies", {}, True),
    ("owner elsewhere", "owner partners", {"resource.owner": "school"}, False),
    ("under: both parties", "under isa", {}, True),
    ("under: owner not a party", "under isa", {"resource.owner": "school"}, False),
    ("under: requester not a party", "under isa", {"requester.agency": "housing"}, False),
    ("under: first valid day", "under isa", {"context.date": "2024-04-01"}, True),
    ("under: last valid day", "under isa", {"context.date": "2025-03-31"}, True),
    ("under: the day before", "under isa", {"context.date": "2024-03-31"}, False),
    ("under: the day after", "under isa", {"context.date": "2025-04-01"}, False),
    ("under one-way: owner discloses to requester", "under oneway",
     {"requester.agency": "police", "resource.owner": "nhs"}, True),
    ("under one-way: not the other way", "under oneway", {"requester.agency": "nhs", "resource.owner": "police"},
     False),
    ("under without valid dates", "under forever",
     {"resource.owner": "school", "context.date": "1990-01-01"}, True),
    ("under any of several", "under isa, forever", {"resource.owner": "school", "context.date": "2030-01-01"},
     True),
    ("when true", "when context.risk_of_harm", {"context.risk_of_harm": True}, True),
    ("when false by default", "when context.risk_of_harm", {}, False),
    ("unless false", "unless requester.vetted", {}, True),
    ("unless true", "unless requester.vetted", {"requester.vetted": True}, False),
    ("repeated clauses: both hold", "purpose safeguarding\npurpose children", {}, True),
    ("repeated clauses: one fails", "purpose safeguarding\npurpose children", {"purpose": "adults"}, False),
    ("repeated roles need both", "role social_worker\nrole police_officer", {}, False),
    ("repeated roles: a role under both", "role social_worker\nrole police_officer", {"requester.role": "lead"},
     True),
    ("every clause at once", "action view\nrole social_worker\nagency partners\npurpose safeguarding\n"
     "data health up to official\nowner nhs\nunder isa\nwhen not requester.vetted", {}, True),
]


@pytest.mark.parametrize(("clauses", "changes", "applies"), [c[1:] for c in CLAUSES], ids=[c[0] for c in CLAUSES])
def test_clause(clauses, changes, applies):
    decision = permit_only(clauses).decide(request(changes), use_cache=False)
    assert decision.permitted is applies


# (condition, changes, True / False / None for unknown)
EXPRESSIONS = [
    ("or: one true", "context.risk_of_harm or context.consent == given", {"context.consent": "given"}, True),
    ("or: both false", "context.risk_of_harm or context.consent == given", {}, False),
    ("or: unknown or true", "resource.subject_age < 18 or context.risk_of_harm", {"context.risk_of_harm": True},
     True),
    ("or: unknown or false", "resource.subject_age < 18 or context.risk_of_harm", {}, None),
    ("and: unknown and false", "resource.subject_age < 18 and context.risk_of_harm", {}, False),
    ("and: unknown and true", "resource.subject_age < 18 and not context.risk_of_harm", {}, None),
    ("not unknown", "not (resource.subject_age < 18)", {}, None),
    ("number compare", "resource.subject_age < 18", {"resource.subject_age": 17}, True),
    ("number at the bound", "resource.subject_age < 18", {"resource.subject_age": 18}, False),
    ("decimal equals integer", "resource.subject_age == 18", {"resource.subject_age": 18.0}, True),
    ("date compare", "resource.recorded_on < 2020-01-01", {"resource.recorded_on": "2019-12-31"}, True),
    ("date compare false", "resource.recorded_on < 2020-01-01", {"resource.recorded_on": "2020-01-01"}, False),
    ("classification order", "requester.clearance >= official_sensitive", {"requester.clearance": "secret"}, True),
    ("classification default", "requester.clearance >= official_sensitive", {}, False),
    ("classification attributes compared", "resource.classification <= requester.clearance", {}, True),
    ("classification attributes compared, above", "resource.classification <= requester.clearance",
     {"resource.classification": "secret"}, False),
    ("string equality", 'requester.team == "MASH"', {"requester.team": "MASH"}, True),
    ("string default", 'requester.team == "MASH"', {}, False),
    ("one of", "context.consent == given", {"context.consent": "given"}, True),
    ("not equal", "context.consent != given", {}, True),
    ("in a set", "context.consent in {given, refused}", {"context.consent": "refused"}, True),
    ("not in a set", "context.consent in {given, refused}", {}, False),
    ("action in a set", "action in {share, export}", {"action": "export"}, True),
    ("in a group", "requester.agency in partners", {}, True),
    ("outside a group", "requester.agency in partners", {"requester.agency": "school"}, False),
    ("is follows roles", "requester.role is social_worker", {"requester.role": "lead"}, True),
    ("== does not follow roles", "requester.role == social_worker", {"requester.role": "lead"}, False),
    ("is follows purposes", "purpose is safeguarding", {}, True),
    ("is by short name", "purpose is children", {"purpose": "safeguarding.children"}, True),
    ("== compares full names", "purpose == children", {"purpose": "children"}, True),
    ("in does not follow the tree", "purpose in {safeguarding}", {}, False),
    ("is on a classification means equal", "resource.classification is official", {}, True),
    ("role attribute omitted", "context.approved_by is lead", {}, None),
    ("role attribute given", "context.approved_by is social_worker", {"context.approved_by": "lead"}, True),
    ("has: given", "has resource.subject_age", {"resource.subject_age": 3}, True),
    ("has: omitted", "has resource.subject_age", {}, False),
    ("has: a default is not given", "has requester.vetted", {}, False),
    ("has: null is omitted", "has resource.subject_age", {"resource.subject_age": None}, False),
    ("attribute compared with attribute", "requester.agency == resource.owner", {"resource.owner": "council"},
     True),
    ("constant", "true", {}, True),
]


@functools.cache
def both_ways(condition: str):
    return policy(rule(f"when {condition}", "permit", "p") + rule(f"when {condition}", "deny", "d")
                  + 'policy "t" {\n  combine permit-overrides\n}\n')


@pytest.mark.parametrize(("condition", "changes", "value"), [e[1:] for e in EXPRESSIONS],
                         ids=[e[0] for e in EXPRESSIONS])
def test_expression(condition, changes, value):
    # Under permit-overrides: true -> the permit decides; unknown -> only the deny applies
    # (fail closed); false -> nothing applies.
    decision = both_ways(condition).decide(request(changes), use_cache=False)
    got = {("permit", "p"): True, ("deny", "d"): None, ("deny", None): False}[
        (decision.decision, decision.reasons[0].rule if decision.reasons else None)]
    assert got is value


def test_index_narrows_to_the_rules_that_could_apply():
    rules = "".join(rule(f"action {a}\nrole {r}\npurpose {p}", name=f"r_{a}_{r}_{p}")
                    for a in ("view", "share") for r in ("gp", "police_officer") for p in ("research", "adults"))
    compiled = policy(rules).compiled
    env = policy(rules)._schema.validate(request({"action": "share", "requester.role": "detective",
                                                 "purpose": "adults"}))
    chosen = [compiled.rules[i].id for i in range(len(compiled.rules)) if compiled.candidates(env) >> i & 1]
    assert chosen == ["r_share_police_officer_adults"]


def test_rules_without_a_clause_are_in_every_bucket():
    compiled = policy(rule("action view", name="a") + rule("role gp", name="b")).compiled
    env = policy(rule("action view", name="a"))._schema.validate(request())
    assert compiled.candidates(env) == 0b01  # `a` by its action; `b` fails on role


def test_compiled_clauses_keep_their_clause_and_words():
    text = "permit p {\n  purpose children\n  when context.risk_of_harm or\n    context.consent == given\n}\n"
    from conftest import VOCABULARY
    policy_set, _ = parse_sources([Source("t.policy", VOCABULARY + text)])
    compiled = compile_policy(policy_set, build_vocabulary(policy_set))
    purpose, when = compiled.rules[0].clauses
    assert (purpose.kind, purpose.needed, purpose.reads) == ("purpose", "children", ("purpose",))
    assert (when.kind, when.needed) == ("when", "context.risk_of_harm or context.consent == given")
    assert when.reads == ("context.risk_of_harm", "context.consent")
    assert when.span.line == purpose.span.line + 1


def test_reads_are_what_rules_and_obligations_need():
    compiled = policy(rule("data any up to official\nwhen has resource.subject_age\nobligation n context.consent")
                      ).compiled
    assert compiled.reads == {"resource.classification", "resource.subject_age", "context.consent"}


def test_a_request_omitting_an_attribute_keeps_it_out_of_the_environment():
    p = permit_only("action view")
    env = p._schema.validate(request())
    assert "resource.subject_age" not in env
    assert env["requester.vetted"] is False and env["requester.clearance"] == 1
    assert env["purpose"] == "safeguarding.children" and env["resource.category"] == "special_category.health"


@pytest.mark.parametrize("changes", [{}, {"requester.id": DELETE}, {"context": DELETE}], ids=["given", "no id",
                                                                                              "no context"])
def test_generated_and_careful_validation_agree(changes):
    schema = permit_only("action view")._schema
    raw = request(changes)
    fast, slow = schema.fast_validate(raw), schema.validate_slowly(raw)
    assert fast == slow


def test_a_generated_function_is_not_in_its_own_globals():
    # Left there, it would make a cycle with them, and a replaced set's index tables would
    # wait for the cyclic garbage collector instead of going with the set.
    from conftest import VOCABULARY
    policy_set, _ = parse_sources([Source("t.policy", VOCABULARY + "permit p {\n  purpose children\n}\n")])
    compiled = compile_policy(policy_set, build_vocabulary(policy_set))
    assert "candidates" not in compiled.select.__globals__
    assert "_T0" in compiled.select.__globals__
