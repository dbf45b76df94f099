"""Explanations, summaries, near misses and `engine doc` say names in the words the
policy declared for them (labels), not as identifiers."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine import checker, loader
from engine.explain import explain_text
from engine.governance.document import render

POLICY = """\
roles {
  researcher "University researcher"
  gp "General practitioner"
}
agencies {
  uni "University of Manchester"
  surgery "Ardwick surgery"
}
actions { view }
purposes {
  research "Approved research"
  commercial "Commercial re-use"
}
categories { health "Health records" }
classifications official
attributes {
  context.consent "The patient's consent" one of { given, refused } default refused
}
permit studies "Researchers read health records with consent" {
  role researcher
  agency uni
  purpose research
  data health
  when context.consent == given
  because "UK GDPR Art 89"
}
"""

REQUEST = {"requester": {"role": "researcher", "agency": "uni"}, "action": "view",
           "resource": {"category": "health", "classification": "official", "owner": "surgery"},
           "purpose": "commercial", "context": {"date": "2025-06-01"}}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "a.policy").write_text(POLICY, encoding="utf-8")
    return tmp_path


def test_the_summary_uses_labels(policy_dir):
    decision = engine.load(policy_dir).decide(REQUEST)
    assert decision.summary == (
        "Denied: no rule permits university researcher at University of Manchester to view health records owned "
        "by Ardwick surgery for Commercial re-use; the nearest rule, studies, fails on purpose and when.")


def test_near_misses_use_labels_in_their_text_and_names_in_their_fields(policy_dir):
    decision = engine.load(policy_dir).decide(REQUEST)
    (near,) = decision.near_misses
    assert [f.text for f in near.failed] == [
        "purpose: needs Approved research, request has Commercial re-use",
        "when: needs context.consent == given, request has The patient's consent = refused",
    ]
    assert (near.failed[0].needed, near.failed[0].had) == ("research", "commercial")
    assert "    x purpose: needs Approved research, request has Commercial re-use" in explain_text(decision)


def test_the_document_uses_attribute_labels_and_says_a_university(policy_dir):
    policy_set, _ = loader.load_set(policy_dir)
    vocab, _ = checker.check(policy_set)
    document = render(policy_set, vocab, "md")
    assert "- `context.consent` (one of given, refused): The patient's consent, default `refused`" in document
    assert "and only when the patient's consent is `given`" in document  # the rule, in the label's words
    assert "Permits a university researcher who works for University of Manchester" in document
