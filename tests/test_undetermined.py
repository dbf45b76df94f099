"""Obligations whose condition or argument needs an omitted attribute: listed as undetermined,
said in the summary and the explanation, warned about by `engine check`, expected by tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine
from engine.commands.main import main
from engine.explain import explain_text

POLICY = """\
roles { gp }
agencies { surgery "Ardwick surgery" }
actions { view }
purposes { care }
categories { health }
classifications official
attributes {
  context.consent  bool
  context.n        number
  context.urgent   bool default false
}
on permit obligation audit
on permit obligation tell_patient when context.consent
on permit obligation count context.n
on permit obligation settled when has context.n and context.n > 2
permit p {
  role gp
  obligation ask_consent unless context.consent
  obligation expedite when context.urgent
  because "care"
}
"""

REQUEST = {"requester": {"role": "gp", "agency": "surgery"}, "action": "view",
           "resource": {"category": "health", "classification": "official", "owner": "surgery"},
           "purpose": "care", "context": {"date": "2025-06-01"}}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "a.policy").write_text(POLICY, encoding="utf-8")
    return root


def test_every_obligation_carries_a_status_and_undetermined_ones_what_they_need(policy_dir):
    decision = engine.load(policy_dir).decide(REQUEST)
    assert decision.to_dict()["obligations"] == [
        {"name": "audit", "args": [], "status": "applies"},
        {"name": "tell_patient", "args": [], "status": "undetermined", "needs": ["context.consent"]},
        {"name": "count", "args": [None], "status": "undetermined", "needs": ["context.n"]},
        {"name": "ask_consent", "args": [], "status": "undetermined", "needs": ["context.consent"]},
    ]


def test_given_the_facts_they_are_settled(policy_dir):
    request = {**REQUEST, "context": {"date": "2025-06-01", "consent": True, "n": 3}}
    decision = engine.load(policy_dir).decide(request)
    assert [(o.name, o.status) for o in decision.obligations] == [
        ("audit", "applies"), ("tell_patient", "applies"), ("count", "applies"), ("settled", "applies")]


def test_the_summary_and_the_explanation_say_so(policy_dir):
    decision = engine.load(policy_dir).decide(REQUEST)
    assert decision.summary.endswith(
        "; obligations tell_patient, count and ask_consent are undetermined because context.consent and "
        "context.n were not given (treat them as applying).")
    text = explain_text(decision)
    assert "  - tell_patient -- undetermined: context.consent was not given; treat it as applying" in text
    assert "  - audit\n" in text


def test_check_warns_where_an_obligation_reads_an_attribute_with_no_default(policy_dir, capsys):
    assert main(["check", str(policy_dir)]) == 0
    out = capsys.readouterr().out
    warned = [line for line in out.splitlines() if "obligation_may_be_undetermined" in line or "reads `" in line]
    assert [line.split(": warning: ")[1] for line in warned] == [
        ("obligation `tell_patient` reads `context.consent`, which has no default: a request without it leaves "
        "the obligation undetermined"),
        ("obligation `count` reads `context.n`, which has no default: a request without it leaves "
        "the obligation undetermined"),
        ("obligation `ask_consent` reads `context.consent`, which has no default: a request without it leaves "
        "the obligation undetermined"),
    ]  # not `settled`, which asks `has` first, nor `expedite`, whose attribute has a default
    assert f"{policy_dir}/a.policy:13:11: warning:" in out


CASES = """\
defaults:
  requester: {role: gp, agency: surgery}
  action: view
  resource: {category: health, classification: official, owner: surgery}
  purpose: care
  context: {date: 2025-06-01}
cases:
  - name: right
    request: {}
    expect: permit
    obligations: [audit]
    undetermined: [tell_patient, count, ask_consent]
  - name: wrong
    request: {}
    expect: permit
    obligations: [audit, tell_patient]
    undetermined: [count]
"""


def test_a_case_can_expect_undetermined_obligations(policy_dir, capsys):
    (policy_dir / "a.test.yaml").write_text(CASES, encoding="utf-8")
    assert main(["test", str(policy_dir)]) == 1
    out = capsys.readouterr().out
    assert "expected: permit; obligations: audit, tell_patient; undetermined: count" in out
    assert "actual:   permit by p; obligations: audit; undetermined: tell_patient, count, ask_consent" in out
    assert "obligations: missing tell_patient" in out
    assert "undetermined: not expected tell_patient, ask_consent" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_json_test_report_lists_undetermined_names(policy_dir, capsys):
    (policy_dir / "a.test.yaml").write_text(CASES, encoding="utf-8")
    main(["test", str(policy_dir), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    case = report["cases"][0]
    assert case["actual"]["undetermined"] == ["tell_patient", "count", "ask_consent"]
    assert case["expected"]["undetermined"] == ["tell_patient", "count", "ask_consent"]
