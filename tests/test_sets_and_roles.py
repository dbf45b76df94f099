"""Set-valued attributes and roles held at agencies (LANGUAGE.md sections 2 and 3), as a
caller of the library sees them: request validation, decisions, cache, explanations."""

import copy

import pytest

import engine
from engine.errors import RequestError
from engine.explain import explain_text

POLICY = """on deny obligation record_refusal
on any obligation log_request
actions { view }
roles {
  gp "GP" at practices
  gp_trainee : gp at surgery_a
  ward_clerk at trust
  caseworker
}
purposes { care { emergency }, research, audit }
categories { health }
classifications official < secret
agencies { surgery_a, surgery_b, trust, council }
group practices = { surgery_a, surgery_b }
attributes {
  context.consented  "purposes the patient consented to" set of purpose default {}
  context.levels     set of classification
  context.tags       set of string
  context.seen_on    set of date
  context.counts     set of number
  context.choices    set of one of { a, b }
}
permit consented {
  purpose care, research
  when purpose in context.consented
  obligation note_consent
  because "consent"
}
permit secret_cleared {
  purpose audit
  when secret in context.levels
  because "audit"
}
permit tagged {
  purpose audit
  when "urgent" in context.tags and 2025-01-01 in context.seen_on and 3 in context.counts and b in context.choices
  because "tags"
}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    (root / "set.policy").write_text(POLICY, encoding="utf-8")
    return engine.load(root)


def request(role="caseworker", agency="council", purpose="care", **context):
    return {"requester": {"role": role, "agency": agency}, "action": "view", "purpose": purpose,
            "resource": {"category": "health", "classification": "official", "owner": "trust"},
            "context": {"date": "2025-06-01", **context}}


MEMBERSHIP = [
    ("purpose consented", request(consented=["care"]), "permit"),
    ("order and repeats do not matter", request(consented=["research", "care", "care"]), "permit"),
    ("exact: a parent does not cover a child", request(purpose="emergency", consented=["care"]), "deny"),
    ("the child listed itself", request(purpose="emergency", consented=["care.emergency"]), "permit"),
    ("default is the empty set", request(), "deny"),
    ("empty list", request(consented=[]), "deny"),
    ("short names resolve", request(purpose="research", consented=["research"]), "permit"),
    ("classification members", request(purpose="audit", levels=["official", "secret"]), "permit"),
    ("omitted set without default is unknown", request(purpose="audit"), "deny"),
    ("strings, dates, numbers, choices", request(purpose="audit", tags=["urgent"], seen_on=["2025-01-01"],
                                                 counts=[3.0], choices=["b"]), "permit"),
    ("a number is not true", request(purpose="audit", tags=["urgent"], seen_on=["2025-01-01"],
                                     counts=[1], choices=["a"]), "deny"),
]


@pytest.mark.parametrize(("req", "expected"), [m[1:] for m in MEMBERSHIP], ids=[m[0] for m in MEMBERSHIP])
def test_membership(policy, req, expected):
    for use_cache in (True, True, False):  # the second is a cache hit
        assert policy.decide(copy.deepcopy(req), use_cache=use_cache).decision == expected


INVALID = [
    ("a single value, not a list", request(consented="care"), "context.consented", "expected a list, got \"care\""),
    ("an undeclared member", request(consented=["care", "research", "reserch"]), "context.consented[2]",
     "unknown purpose `reserch`"),
    ("a member of the wrong type", request(counts=[1, True]), "context.counts[1]", "expected a number, got true"),
    ("a date that is not one", request(seen_on=["2025-02-30"]), "context.seen_on[0]",
     'expected a date like 2025-06-01, got "2025-02-30"'),
    ("an unknown choice", request(choices=["c"]), "context.choices[0]", 'expected one of a, b, got "c"'),
    ("a list inside the list", request(tags=[["x"]]), "context.tags[0]", "expected a string, got a list"),
]


@pytest.mark.parametrize(("req", "field", "message"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_members_are_named_by_place(policy, req, field, message):
    for use_cache in (True, False):
        with pytest.raises(RequestError) as caught:
            policy.decide(copy.deepcopy(req), use_cache=use_cache)
        assert (caught.value.field, caught.value.message) == (field, message)


def test_cache_hit_does_not_mix_up_numbers_and_booleans(policy):
    policy.clear_cache()
    assert policy.decide(request(counts=[1])).decision == "deny"
    with pytest.raises(RequestError):
        policy.decide(request(counts=[True]))


def test_explanation_shows_the_set(policy):
    decision = policy.decide(request(consented=["research", "audit"]))
    (failed,) = [f for f in decision.near_misses[0].failed if f.clause == "when"]
    assert failed.had == "purpose = care, context.consented = {audit, research}"


# --- roles held at agencies ---------------------------------------------------------------

HELD = [
    ("role held at a group member", "gp", "surgery_b", None),
    ("role held elsewhere", "gp", "council", "role gp is not held at agency council."),
    ("a child role: both its own at and its parent's", "gp_trainee", "surgery_a", None),
    ("a child role where only the parent allows", "gp_trainee", "surgery_b",
     "role gp_trainee is not held at agency surgery_b."),
    ("a role without at anywhere", "caseworker", "trust", None),
    ("a role at one agency", "ward_clerk", "council", "role ward_clerk is not held at agency council."),
]


@pytest.mark.parametrize(("role", "agency", "summary"), [h[1:] for h in HELD], ids=[h[0] for h in HELD])
def test_role_held_at(policy, role, agency, summary):
    decision = policy.decide(request(role=role, agency=agency, consented=["care"]))
    if summary is None:
        assert (decision.decision, decision.denied_by) == ("permit", None)
        assert "denied_by" not in decision.to_dict()
        return
    assert decision.to_dict() | {"decision_id": "", "policy_version": ""} == {
        "decision": "deny", "decision_id": "", "policy_version": "", "reasons": [],
        "obligations": [{"name": "record_refusal", "args": [], "status": "applies"},
                        {"name": "log_request", "args": [], "status": "applies"}],
        "near_misses": [], "summary": "Denied: " + summary, "denied_by": "role_not_held"}


def test_role_not_held_is_explained_for_caseworkers(policy):
    text = explain_text(policy.decide(request(role="gp", agency="council")))
    assert "Denied: role gp is not held at agency council." in text
    assert "Refused before any rule was looked at" in text
    assert "ask your information governance" in text


def test_a_policy_test_expects_role_not_held(tmp_path):
    (tmp_path / "set.policy").write_text(POLICY, encoding="utf-8")
    (tmp_path / "cases.test.yaml").write_text(
        "cases:\n  - name: gp at the council\n    request:\n      requester: {role: gp, agency: council}\n"
        "      action: view\n      purpose: care\n"
        "      resource: {category: health, classification: official, owner: trust}\n"
        "      context: {date: 2025-06-01}\n    expect: deny\n    by: role_not_held\n"
        "    obligations: [record_refusal, log_request]\n", encoding="utf-8")
    from engine.testing.runner import run_test_files

    report = run_test_files(engine.load(tmp_path), [tmp_path / "cases.test.yaml"])
    assert [(r.passed, r.mismatches, r.errors) for r in report.results] == [(True, (), ())]
