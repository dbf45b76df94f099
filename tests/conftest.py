"""Shared test vocabulary: small policies and requests (a vocabulary, and a request to vary),
and a fixture that writes a policy directory. Test files import the helpers with
`from conftest import policy, request, rule`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.policy import Policy, from_sources
from engine.source import Source

VOCABULARY = """\
actions { view, share, export }
roles {
  social_worker
  senior_social_worker : social_worker
  police_officer
  detective : police_officer
  lead : social_worker, police_officer
  gp
}
purposes {
  safeguarding { children, adults }
  direct_care
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
group health_bodies = { nhs }
attributes {
  requester.vetted    bool                                  default false
  requester.clearance classification                        default official
  requester.team      string                                default "none"
  context.consent     one of { given, refused, not_sought } default not_sought
  context.risk_of_harm bool                                 default false
  resource.subject_age number
  resource.recorded_on date
  context.approved_by role
}
agreement isa "Two-way sharing agreement" {
  parties partners
  valid   2024-04-01 to 2025-03-31
}
agreement oneway "NHS to police" {
  from health_bodies
  to   police
}
agreement forever {
  parties council, school
}
"""

REQUEST: dict[str, Any] = {
    "requester": {"id": "u-1", "role": "social_worker", "agency": "council"},
    "action": "view",
    "resource": {"id": "r-1", "category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "safeguarding.children",
    "context": {"date": "2024-06-01"},
}

DELETE = object()


def request(changes: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """REQUEST with dotted paths set (`{"requester.role": "gp"}`), or removed with DELETE."""
    found = copy.deepcopy(REQUEST if base is None else base)
    for path, value in (changes or {}).items():
        *parents, leaf = path.split(".")
        node = found
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return found


def policy(rules: str, *, vocabulary: str = VOCABULARY, **options: Any) -> Policy:
    """A policy of VOCABULARY and `rules`, loaded from memory."""
    return from_sources([Source("test.policy", vocabulary + rules)], **options)


def rule(clauses: str, effect: str = "permit", name: str = "r") -> str:
    body = "\n".join(f"  {line.strip()}" for line in clauses.strip().splitlines())
    return f'{effect} {name} {{\n{body}\n  because "test"\n}}\n'


SMALL_VOCABULARY = """\
actions { view }
roles { social_worker, gp }
purposes { direct_care }
categories { health }
classifications official
agencies { nhs }
"""
SMALL_RULE = 'permit r {\n  role gp\n  action view\n  because "reason"\n}\n'


@pytest.fixture
def policy_files(tmp_path: Path) -> Callable[..., Path]:
    """`policy_files(a=TEXT, b=TEXT)`: writes tmp_path/policies/a.policy and b.policy, returns the directory."""
    root = tmp_path / "policies"

    def write(**files: str) -> Path:
        root.mkdir(exist_ok=True)
        for name, text in files.items():
            (root / f"{name}.policy").write_text(text, encoding="utf-8")
        return root

    return write
