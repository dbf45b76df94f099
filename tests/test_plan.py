"""Query plans agree with `decide` on every resource, and say so in a form apps can use."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from conftest import policy as small_policy
from conftest import rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_data import (
    EXAMPLES,
    example_partial,
    example_resource,
    generated_cases,
    resource_values,
)

import engine
from engine.conditions import Compare, Field, PlanError, Shift, Value, shift_date
from engine.errors import RequestError

EXAMPLE = engine.load(EXAMPLES)
EXAMPLE_VALUES = resource_values(EXAMPLE)


def disagreements(policy, partial, resources) -> list[str]:
    plan = policy.plan(partial)
    found = []
    for resource in resources:
        decision = policy.decide({**partial, "resource": resource}, use_cache=False)
        expected = decision.permitted
        if expected:
            # The plan lists what the decision does, and undetermined ones besides (as applying).
            given = {(o.name, tuple(o.args)) for o in decision.obligations}
            if not given <= set(plan.obligations_for(resource)):
                found.append(f"{partial} {resource}: obligations {given} not all in the plan's "
                             f"{plan.obligations_for(resource)}")
        if plan.matches(resource) != expected:
            found.append(f"{partial} {resource}: decide says {'permit' if expected else 'deny'}, "
                         f"plan {plan.to_dict()['condition']}")
        if expected and plan.kind == "always_denied" or not expected and plan.kind == "always_allowed":
            found.append(f"{partial} {resource}: plan kind {plan.kind}")
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_example_set_plans_agree_with_decide(seed):
    rng = random.Random(seed)
    partial = example_partial(rng, EXAMPLE)
    resources = [example_resource(rng, EXAMPLE_VALUES) for _ in range(40)]
    assert disagreements(EXAMPLE, partial, resources) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_generated_set_plans_agree_with_decide(seed):
    policy, partials, resources = generated_cases(seed, partials=5, resources=40)
    for partial in partials:
        assert disagreements(policy, partial, resources) == []


# --- what a plan says -------------------------------------------------------------------

REQUESTER = {"requester": {"role": "social_worker", "agency": "council"}, "action": "view",
             "purpose": "safeguarding.children", "context": {"date": "2024-06-01"}}
HEALTH = {"category": "health", "classification": "official", "owner": "nhs"}


@pytest.mark.parametrize("rules, kind", [
    (rule("role social_worker"), "always_allowed"),
    (rule("role gp"), "always_denied"),
    (rule("role social_worker") + rule("purpose children", "deny", "d"), "always_denied"),
    (rule("data health"), "conditional"),
    (rule("data any up to secret"), "always_allowed"),
    (rule("when resource.subject_age < 18"), "conditional"),
    (rule("when requester.vetted"), "always_denied"),  # default false
    (rule("owner partners") + rule("when resource.subject_age >= 18", "deny", "d"), "conditional"),
])
def test_plan_kind(rules, kind):
    assert small_policy(rules).plan(REQUESTER).kind == kind


def test_conditional_plan_names_fields_rules_and_obligations():
    policy = small_policy(rule("data health up to official\n  obligation audit resource.owner", name="health")
                          + rule("when resource.subject_age < 18", "deny", "children_only_elsewhere"))
    plan = policy.plan(REQUESTER)
    assert plan.kind == "conditional"
    assert [b.rule for b in plan.branches] == ["health"]
    assert plan.denied_by == ("children_only_elsewhere",)
    adult = {**HEALTH, "subject_age": 40}
    assert plan.matches(adult)
    assert not plan.matches(HEALTH)  # the deny rule might apply: fail closed
    assert not plan.matches({**HEALTH, "subject_age": 12})
    assert not plan.matches({**adult, "classification": "secret"})
    assert not plan.matches({**adult, "category": "education"})
    assert plan.obligations_for(adult) == [("audit", ("nhs",))]
    data = plan.to_dict()
    assert data["kind"] == "conditional" and data["branches"][0]["obligations"][0]["name"] == "audit"
    assert {"field": "resource.subject_age", "type": "number"} in _operands(data["condition"])


def _operands(node):
    found = []
    for key in ("left", "right"):
        if key in node:
            found.append(node[key])
    for child in node.get("args", []) + ([node["arg"]] if "arg" in node else []):
        found += _operands(child)
    return found


def test_a_missing_field_fails_closed():
    """A deny rule that might apply (its field omitted, no default) keeps the resource out."""
    policy = small_policy(rule("role social_worker") + rule("when resource.subject_age < 18", "deny", "d"))
    plan = policy.plan(REQUESTER)
    assert not plan.matches(HEALTH)
    assert plan.matches({**HEALTH, "subject_age": 30})


def test_plan_requests_are_validated_like_decisions():
    with pytest.raises(RequestError) as caught:
        EXAMPLE.plan({**REQUESTER, "requester": {"role": "social_wroker", "agency": "manchester_cs"}})
    assert caught.value.field == "requester.role"
    with pytest.raises(RequestError) as caught:
        EXAMPLE.plan({**REQUESTER, "resource": HEALTH})
    assert caught.value.field == "resource"
    plan = small_policy(rule("data health")).plan(REQUESTER)
    with pytest.raises(RequestError) as caught:
        plan.matches({"category": "health", "classification": "official"})
    assert caught.value.field == "resource.owner"


def test_tree_values_match_by_any_spelling():
    plan = small_policy(rule("data special_category")).plan(REQUESTER)
    assert plan.matches(HEALTH)
    assert plan.matches({**HEALTH, "category": "special_category.health"})
    assert not plan.matches({**HEALTH, "category": "education"})


@pytest.mark.parametrize("start, amount, unit, expected", [
    ("2025-01-31", 1, "months", "2025-02-28"),
    ("2024-01-31", 1, "months", "2024-02-29"),
    ("2024-02-29", 12, "months", "2025-02-28"),
    ("2025-03-31", -1, "months", "2025-02-28"),
    ("2025-01-31", 28, "days", "2025-02-28"),
    ("2024-12-31", 2, "months", "2025-02-28"),
])
def test_dates_shift_by_the_calendar_and_clamp(start, amount, unit, expected):
    assert shift_date(dt.date.fromisoformat(start), amount, unit).isoformat() == expected
    condition = Compare("eq", Shift(Field("resource.d", "date"), amount, unit), Value(dt.date.fromisoformat(expected)))
    assert condition.holds({"resource.d": dt.date.fromisoformat(start)})
    assert not condition.holds({})


def test_plan_error_is_a_clear_refusal():
    error = PlanError("query plans cannot yet handle the condition form `x`")
    assert "cannot yet handle" in str(error)


def test_time_limits_sets_and_roles_held_at_agencies(tmp_path):
    (tmp_path / "set.policy").write_text(
        "actions { view }\nroles {\n  clerk at trust\n}\npurposes { care, research }\ncategories { health }\n"
        "classifications official < secret\nagencies { trust, council }\n"
        "attributes {\n  context.consented set of purpose default {}\n  resource.discharged_on date\n}\n"
        "permit follow_up {\n  when purpose in context.consented\n"
        '  when context.date <= resource.discharged_on + 28 days\n  because "x"\n}\n', encoding="utf-8")
    policy = engine.load(tmp_path)
    partial = {"requester": {"role": "clerk", "agency": "trust"}, "action": "view", "purpose": "care",
               "context": {"date": "2025-06-01", "consented": ["care"]}}
    plan = policy.plan(partial)
    base = {"category": "health", "classification": "official", "owner": "trust"}
    assert plan.kind == "conditional"
    assert [plan.matches({**base, "discharged_on": day}) for day in ("2025-05-04", "2025-05-03")] == [True, False]
    assert policy.plan({**partial, "context": {"date": "2025-06-01", "consented": ["research"]}}).kind == "always_denied"
    assert policy.plan({**partial, "requester": {"role": "clerk", "agency": "council"}}).kind == "always_denied"


def test_a_set_of_classifications_the_requester_holds_plans_as_decide_decides():
    vocabulary = SMALL_SETS_VOCABULARY
    policy = small_policy(rule("action view\nwhen secret in requester.cleared\nobligation redact purpose"),
                          vocabulary=vocabulary)
    partial = {"requester": {"role": "gp", "agency": "nhs", "cleared": ["official", "secret"]},
               "action": "view", "purpose": "direct_care", "context": {"date": "2025-06-01"}}
    resource = {"category": "health", "classification": "official", "owner": "nhs"}
    assert policy.decide({**partial, "resource": resource}).permitted
    assert policy.plan(partial).matches(resource)
    assert ("redact", ("direct_care",)) in policy.plan(partial).obligations_for(resource)


SMALL_SETS_VOCABULARY = """\
actions { view }
roles { gp }
purposes { direct_care }
categories { health }
classifications official < secret
agencies { nhs }
attributes {
  requester.cleared set of classification default {}
}
"""
