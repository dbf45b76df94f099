import copy
import dataclasses
import pickle
import threading

import pytest

from conftest import VOCABULARY, policy, request, rule
from engine.decision import Decision, FailedClause, NearMiss, Obligation, Reason


FIRST_LINE = VOCABULARY.count("\n") + 1  # where the rules of a test start


def header(combine: str) -> str:
    return f'policy "Test set" {{\n  version "2.1"\n  combine {combine}\n}}\n'


APPLIES = "action view"
NOT = "action export"
MIGHT = "when resource.subject_age >= 18"  # unknown: the request has no subject_age

# (combining, rules as (effect, clauses) in set order, decision, reasons)
COMBINING = [
    ("deny-overrides: deny wins", "deny-overrides", [("permit", APPLIES), ("deny", APPLIES)], "deny", ["r1"]),
    ("deny-overrides: every applying permit", "deny-overrides", [("permit", APPLIES), ("deny", NOT),
                                                                ("permit", APPLIES)], "permit", ["r0", "r2"]),
    ("deny-overrides: nothing applies", "deny-overrides", [("permit", NOT), ("deny", NOT)], "deny", []),
    ("deny-overrides: a deny that might apply", "deny-overrides", [("permit", APPLIES), ("deny", MIGHT)],
     "deny", ["r1"]),
    ("deny-overrides: a permit that might apply", "deny-overrides", [("permit", MIGHT)], "deny", []),
    ("permit-overrides: permit wins", "permit-overrides", [("deny", APPLIES), ("permit", APPLIES)], "permit",
     ["r1"]),
    ("permit-overrides: every applying deny", "permit-overrides", [("deny", APPLIES), ("permit", NOT),
                                                                  ("deny", MIGHT)], "deny", ["r0", "r2"]),
    ("permit-overrides: a permit that might apply does not", "permit-overrides", [("deny", APPLIES),
                                                                                 ("permit", MIGHT)], "deny", ["r0"]),
    ("permit-overrides: nothing applies", "permit-overrides", [("deny", NOT)], "deny", []),
    ("first-applicable: first is a permit", "first-applicable", [("permit", NOT), ("permit", APPLIES),
                                                                ("deny", APPLIES)], "permit", ["r1"]),
    ("first-applicable: first is a deny", "first-applicable", [("deny", APPLIES), ("permit", APPLIES)], "deny",
     ["r0"]),
    ("first-applicable: a deny that might apply decides", "first-applicable", [("deny", MIGHT),
                                                                              ("permit", APPLIES)], "deny", ["r0"]),
    ("first-applicable: a permit that might apply is passed over", "first-applicable",
     [("permit", MIGHT), ("deny", APPLIES)], "deny", ["r1"]),
    ("first-applicable: nothing applies", "first-applicable", [("permit", NOT)], "deny", []),
]


@pytest.mark.parametrize(("combine", "rules", "outcome", "reasons"), [c[1:] for c in COMBINING],
                         ids=[c[0] for c in COMBINING])
def test_combining(combine, rules, outcome, reasons):
    text = header(combine) + "".join(rule(clauses, effect, f"r{i}") for i, (effect, clauses) in enumerate(rules))
    decision = policy(text).decide(request())
    assert (decision.decision, [r.rule for r in decision.reasons]) == (outcome, reasons)


def test_without_a_header_the_set_is_deny_overrides():
    p = policy(rule(APPLIES, "permit", "p") + rule(APPLIES, "deny", "d"))
    assert p.combine.value == "deny-overrides"
    assert p.decide(request()).decision == "deny"


# --- fail closed ------------------------------------------------------------------------


def test_a_deny_that_might_apply_names_what_was_missing():
    p = policy(rule("when resource.subject_age >= 18 and resource.recorded_on < 2020-01-01", "deny", "adults"))
    decision = p.decide(request())
    assert decision.reasons[0].missing == ("resource.subject_age", "resource.recorded_on")
    assert decision.to_dict()["reasons"][0]["missing"] == ["resource.subject_age", "resource.recorded_on"]
    assert decision.summary == (
        "Denied: social_worker at council may not view health data owned by nhs for safeguarding.children "
        "under rule adults (test), which counts as applying because resource.subject_age and "
        "resource.recorded_on were not given.")


def test_missing_names_only_attributes_whose_values_were_read():
    p = policy(rule("when has context.approved_by or resource.subject_age > 3", "deny", "d"))
    assert p.decide(request()).reasons[0].missing == ("resource.subject_age",)


def test_a_deny_that_applies_outright_has_nothing_missing():
    decision = policy(rule("when resource.subject_age >= 18", "deny", "d")).decide(
        request({"resource.subject_age": 30}))
    assert decision.reasons[0].missing == ()
    assert "missing" not in decision.to_dict()["reasons"][0]


def test_a_permit_that_might_apply_is_a_near_miss_naming_the_missing_attribute():
    decision = policy(rule("when resource.subject_age < 18", "permit", "children")).decide(request())
    assert decision.decision == "deny"
    assert [f.text for f in decision.near_misses[0].failed] == [
        "when: needs resource.subject_age < 18, request has no resource.subject_age"]


# --- obligations ------------------------------------------------------------------------

OBLIGATIONS = [
    ("a rule's own", rule("action view\nobligation audit"), {}, [("audit", ())]),
    ("condition true", rule("obligation a when context.risk_of_harm"), {"context.risk_of_harm": True},
     [("a", ())]),
    ("condition false", rule("obligation a when context.risk_of_harm"), {}, []),
    ("unknown condition: undetermined", rule("obligation a when resource.subject_age < 18"), {},
     [("a", (), "undetermined", ("resource.subject_age",))]),
    ("omitted argument: undetermined", rule("obligation a resource.subject_age"), {},
     [("a", (None,), "undetermined", ("resource.subject_age",))]),
    ("listed both ways: once, as applying", rule("obligation a when resource.subject_age < 18\n  obligation a"), {},
     [("a", ())]),
    ("unless", rule("obligation redact \"nhs_number\" unless requester.role is gp"), {},
     [("redact", ("nhs_number",))]),
    ("unless holding", rule("obligation redact \"nhs_number\" unless requester.role is gp"),
     {"requester.role": "gp"}, []),
    ("arguments from the request", rule("obligation notify resource.owner, requester.clearance, purpose, "
                                        "resource.recorded_on, resource.subject_age, context.risk_of_harm"),
     {"resource.recorded_on": "2020-02-03", "purpose": "children"},
     [("notify", ("nhs", "official", "safeguarding.children", "2020-02-03", None, False), "undetermined",
       ("resource.subject_age",))]),
    ("literal arguments", rule('obligation keep 7, 2.5, true, "text", 2026-01-01'), {},
     [("keep", (7, 2.5, True, "text", "2026-01-01"))]),
    ("same name and arguments once", rule('obligation audit\nobligation audit\nobligation n "a"\n'
                                          'obligation n "b"\nobligation n "a"'), {},
     [("audit", ()), ("n", ("a",)), ("n", ("b",))]),
    ("true and 1 are different arguments", rule("obligation n 1\nobligation n true\nobligation n 1.0"), {},
     [("n", (1,)), ("n", (True,))]),
    ("policy-wide in set order around the rule", "on any obligation first\n" + rule("obligation second")
     + "on permit obligation third\non deny obligation never\n", {},
     [("first", ()), ("second", ()), ("third", ())]),
    ("policy-wide on deny when nothing permits", rule("action export\nobligation never")
     + "on deny obligation escalate unless purpose is marketing\non permit obligation never2\n", {},
     [("escalate", ())]),
    ("only the reasons' rules", rule("obligation first", name="a") + rule("action export\nobligation second",
                                                                          name="b"), {}, [("first", ())]),
    ("every applying permit, deduplicated", rule("obligation audit\nobligation a", name="a")
     + rule("obligation audit\nobligation b", name="b"), {}, [("audit", ()), ("a", ()), ("b", ())]),
    ("a deny that might apply brings its obligations", rule("when resource.subject_age > 3\nobligation o",
                                                            "deny", "d"), {}, [("o", ())]),
]


@pytest.mark.parametrize(("rules", "changes", "expected"), [o[1:] for o in OBLIGATIONS],
                         ids=[o[0] for o in OBLIGATIONS])
def test_obligations(rules, changes, expected):
    decision = policy(rules).decide(request(changes))
    assert [(o.name, o.args) if o.status == "applies" else (o.name, o.args, o.status, o.needs)
            for o in decision.obligations] == expected
    assert [(o.name, tuple(o.args), o.status, o.needs) for o in decision.obligations] == \
        [(d["name"], tuple(d["args"]), d["status"], tuple(d.get("needs", ()))) for d in decision.to_dict()["obligations"]]


# --- near misses --------------------------------------------------------------------------


def test_near_misses_fewest_failures_first_ties_in_set_order():
    rules = (rule("action export\nrole gp", name="two")
             + rule("purpose research", name="one_a")
             + rule("action export\nrole gp\nowner school", name="three")
             + rule("owner school", name="one_b")
             + rule("when context.risk_of_harm", name="one_c")
             + rule("purpose marketing", name="one_d")
             + rule("purpose marketing", "deny", "denies_are_not_near_misses"))
    decision = policy(rules).decide(request())
    assert [(n.rule, len(n.failed)) for n in decision.near_misses] == [("one_a", 1), ("one_b", 1), ("one_c", 1)]


def test_near_misses_only_when_no_rule_applied():
    p = policy(rule("purpose research", name="p") + rule("action view", "deny", "d"))
    assert p.decide(request()).near_misses == ()


FAILED = [
    ("action", "action share, export", {}, "action", "share or export", "view",
     "action: needs share or export, request has view"),
    ("role", "role gp, police_officer, lead", {}, "role", "gp, police_officer or lead", "social_worker",
     "role: needs gp, police_officer or lead, request has social_worker"),
    ("agency", "agency partners", {"requester.agency": "school"}, "agency", "partners", "school",
     "agency: needs partners, request has school"),
    ("purpose", "purpose safeguarding.children", {"purpose": "research"}, "purpose", "safeguarding.children",
     "research", "purpose: needs safeguarding.children, request has research"),
    ("data category", "data education, social_care", {}, "data", "education or social_care",
     "special_category.health", "data: needs education or social_care, request has special_category.health"),
    ("data up to", "data health up to public", {}, "data", "health up to public",
     "special_category.health marked official",
     "data: needs health up to public, request has special_category.health marked official"),
    ("data any up to", "data any up to public", {}, "data", "any data up to public",
     "special_category.health marked official",
     "data: needs any data up to public, request has special_category.health marked official"),
    ("owner", "owner school", {}, "owner", "school", "nhs", "owner: needs school, request has nhs"),
    ("under: not a party", "under isa", {"resource.owner": "school"}, "under", "isa", "isa: school is not a party",
     "under: needs isa, but isa: school is not a party"),
    ("under: neither party", "under isa", {"resource.owner": "school", "requester.agency": "housing"}, "under",
     "isa", "isa: housing and school are not parties", "under: needs isa, but isa: housing and school are not parties"),
    ("under: out of date", "under isa", {"context.date": "2025-04-01"}, "under", "isa",
     "isa: 2025-04-01 is outside its dates 2024-04-01 to 2025-03-31",
     "under: needs isa, but isa: 2025-04-01 is outside its dates 2024-04-01 to 2025-03-31"),
    ("under: one-way, wrong direction", "under oneway", {"requester.agency": "nhs", "resource.owner": "police"},
     "under", "oneway", "oneway: police may not disclose under it and nhs may not receive under it",
     "under: needs oneway, but oneway: police may not disclose under it and nhs may not receive under it"),
    ("under: several agreements", "under forever, isa", {"resource.owner": "housing"}, "under", "forever or isa",
     "forever: housing is not a party; isa: housing is not a party",
     "under: needs forever or isa, but forever: housing is not a party; isa: housing is not a party"),
    ("when", "when context.risk_of_harm or context.consent == given", {}, "when",
     "context.risk_of_harm or context.consent == given", "context.risk_of_harm = false, context.consent = not_sought",
     "when: needs context.risk_of_harm or context.consent == given, "
     "request has context.risk_of_harm = false, context.consent = not_sought"),
    ("when with a string", 'when requester.team == "MASH"', {}, "when", 'requester.team == "MASH"',
     'requester.team = "none"', 'when: needs requester.team == "MASH", request has requester.team = "none"'),
    ("when unknown", "when resource.subject_age < 18 or context.risk_of_harm", {}, "when",
     "resource.subject_age < 18 or context.risk_of_harm", "no resource.subject_age, context.risk_of_harm = false",
     "when: needs resource.subject_age < 18 or context.risk_of_harm, "
     "request has no resource.subject_age, context.risk_of_harm = false"),
    ("unless", "unless requester.clearance >= official", {}, "unless", "requester.clearance >= official",
     "requester.clearance = official",
     "unless: needs requester.clearance >= official to be false, request has requester.clearance = official"),
]


@pytest.mark.parametrize(("clauses", "changes", "clause", "needed", "had", "text"), [f[1:] for f in FAILED],
                         ids=[f[0] for f in FAILED])
def test_failed_clause_words(clauses, changes, clause, needed, had, text):
    decision = policy(rule(clauses, name="near")).decide(request(changes))
    failed = decision.near_misses[0].failed[0]
    assert (failed.clause, failed.needed, failed.had, failed.text) == (clause, needed, had, text)


def test_near_miss_lists_every_failed_clause_in_order_with_its_rule():
    decision = policy(rule("action export\nrole social_worker\npurpose research", name="near")).decide(request())
    near = decision.near_misses[0]
    assert (near.rule, near.file, near.line) == ("near", "test.policy", FIRST_LINE)
    assert [f.clause for f in near.failed] == ["action", "purpose"]
    assert decision.to_dict()["near_misses"][0] == {
        "rule": "near", "description": None, "file": "test.policy", "line": FIRST_LINE,
        "failed": [{"clause": "action", "needed": "export", "had": "view",
                    "text": "action: needs export, request has view"},
                   {"clause": "purpose", "needed": "research", "had": "safeguarding.children",
                    "text": "purpose: needs research, request has safeguarding.children"}]}


def test_near_misses_are_the_same_when_remembered():
    p = policy(rule("purpose research", name="a") + rule("when resource.subject_age < 3", name="b"))
    first = p.decide(request(), use_cache=False).near_misses
    again = p.decide(request(), use_cache=False).near_misses
    other = p.decide(request({"resource.subject_age": 5}), use_cache=False).near_misses
    assert first == again
    assert other[1].failed[0].had == "resource.subject_age = 5"


# --- the decision as data -------------------------------------------------------------------


def test_summary_of_a_permit():
    p = policy(header("deny-overrides") + 'permit child_protection "Share for child protection" {\n'
               "  purpose safeguarding.children\n  because \"Children Act 1989 s.47\"\n}\n")
    decision = p.decide(request({"action": "share", "resource.category": "health", "purpose": "children"}))
    assert decision.summary == ("Permitted: social_worker at council may share health data owned by nhs for "
                                "children under rule child_protection (Children Act 1989 s.47).")


def test_summary_with_several_reasons():
    decision = policy(rule("action view", name="a") + rule("action view", name="b")).decide(request())
    assert decision.summary.endswith("under rules a and b.")


def test_summary_when_nothing_permits():
    decision = policy(rule("purpose research", name="research_only")).decide(request())
    assert decision.summary == ("Denied: no rule permits social_worker at council to view health data owned by "
                                "nhs for safeguarding.children; the nearest rule, research_only, fails on purpose.")


def test_summary_of_a_deny_by_rule():
    decision = policy(rule("action view", "deny", "never")).decide(request())
    assert decision.summary == ("Denied: social_worker at council may not view health data owned by nhs for "
                                "safeguarding.children under rule never (test).")


def test_reasons_carry_rule_words_and_place():
    p = policy('permit p "Described" {\n  action view\n  because "Law s.1"\n}\n')
    assert p.decide(request()).reasons == (Reason("p", "permit", "Described", "Law s.1", "test.policy",
                                                      FIRST_LINE),)


def test_to_dict_has_exactly_the_documented_shape():
    p = policy(header("deny-overrides") + rule("obligation audit"))
    data = p.decide(request()).to_dict()
    assert list(data) == ["decision", "decision_id", "policy_version", "policy", "reasons", "obligations",
                          "near_misses", "summary"]
    assert data["policy"] == {"title": "Test set", "version": "2.1"}
    assert data["policy_version"] == p.version and data["policy_version"].startswith("sha256:")
    assert data["reasons"] == [{"rule": "r", "effect": "permit", "description": None, "because": "test",
                                "file": "test.policy", "line": FIRST_LINE + 4}]


def test_without_a_header_there_is_no_policy_title():
    decision = policy(rule("action view")).decide(request())
    assert (decision.title, decision.label) == (None, None)
    assert "policy" not in decision.to_dict()


def test_decisions_are_frozen_and_permitted_says_the_outcome():
    decision = policy(rule("action view")).decide(request())
    assert decision.permitted and isinstance(decision, Decision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.decision = "deny"  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(Decision)] == [
        "decision", "decision_id", "policy_version", "title", "label", "reasons", "obligations", "near_misses",
        "summary", "denied_by"]
    assert dataclasses.replace(decision, decision_id="x").summary == decision.summary


def test_result_types_are_plain_data():
    assert Obligation("n", (1,)).to_dict() == {"name": "n", "args": [1], "status": "applies"}
    assert Obligation("n", (None,), "undetermined", ("context.n",)).to_dict() == \
        {"name": "n", "args": [None], "status": "undetermined", "needs": ["context.n"]}
    assert FailedClause("action", "a", "b", "t").to_dict() == {"clause": "action", "needed": "a", "had": "b",
                                                                "text": "t"}
    assert NearMiss("r", None, "f", 1, ()).to_dict()["failed"] == []


# --- explanations are computed when first read ------------------------------------------------


@pytest.mark.parametrize("asks", [False, True], ids=["values", "has"])
def test_explanations_describe_the_request_as_it_was_when_decided(asks):
    rules = rule("purpose research", name="research_only") + rule("role gp\naction export", name="gp_export")
    if asks:
        rules += rule("when has context.approved_by", name="approved")
    p = policy(rules)
    raw = request()
    decision = p.decide(raw, use_cache=False)
    fresh = p.decide(request(), use_cache=False)
    raw["requester"]["role"], raw["purpose"], raw["context"]["approved_by"] = "gp", "research", "lead"
    assert decision.summary == fresh.summary and decision.summary.startswith(
        "Denied: no rule permits social_worker at council to view")
    assert decision.near_misses == fresh.near_misses and len(decision.near_misses) == 2 + asks


def test_a_decision_built_by_hand_equals_one_explained_on_demand():
    decision = policy(rule("purpose research", name="r")).decide(request())
    by_hand = Decision(**{f.name: getattr(decision, f.name) for f in dataclasses.fields(Decision)})
    assert by_hand == decision and hash(by_hand) == hash(decision) and repr(by_hand) == repr(decision)


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, lambda d: pickle.loads(pickle.dumps(d))],
                         ids=["copy", "deepcopy", "pickle"])
def test_copies_carry_the_explanation(how):
    p = policy(rule("purpose research", name="r"))
    decision = p.decide(request(), use_cache=False)
    copied = how(decision)
    assert copied == decision and copied.near_misses[0].rule == "r" and copied.summary == decision.summary


def test_explanations_cannot_be_set():
    decision = policy(rule("purpose research")).decide(request())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.summary = "something else"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.near_misses = ()  # type: ignore[misc]
    assert decision.summary.startswith("Denied: no rule permits")


def test_threads_reading_an_explanation_at_once_agree():
    p = policy("".join(rule(f"purpose research\nrole gp\naction {a}", name=f"r_{a}") for a in ("share", "export")))
    decisions = [p.decide(request({"resource.subject_age": n}), use_cache=False) for n in range(50)]
    seen: list = []

    def read():
        seen.extend((d.summary, d.near_misses) for d in decisions)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 200 and len(set(seen)) == 1


@pytest.mark.parametrize(("clauses", "needed"), [
    ("purpose safeguarding\npurpose research", ["research"]),
    ("purpose research\npurpose safeguarding", ["research"]),
    ("purpose research\naction view\npurpose marketing", ["research", "marketing"]),
    ("data health\ndata social_care up to official\nunder forever", ["social_care up to official", "forever"]),
], ids=["second fails", "first fails", "both fail", "data twice and under"])
def test_a_near_miss_names_the_repeated_clause_that_failed(clauses, needed):
    decision = policy(rule(clauses, name="near")).decide(request(), use_cache=False)
    assert [f.needed for f in decision.near_misses[0].failed] == needed


def test_rules_whose_obligations_differ_only_as_true_and_1_keep_their_own():
    p = policy(rule("action view\nobligation n 1", name="counted")
               + rule("action share\nobligation n true", name="flagged"))
    assert p.decide(request()).obligations[0].args[0] is not True
    assert p.decide(request({"action": "share"})).obligations[0].args[0] is True
