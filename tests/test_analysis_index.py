"""Rule analysis by index reports exactly what the pairwise comparison of rules reports.

The oracle, tests/_pairwise_analysis.py, is the pairwise implementation of the
covering checks (duplicate_rule, subsumed_rule, permit_never_effective,
deny_never_effective, rule_shadowed). Both analyses run on the same set and
must give the same diagnostics: codes, messages, spans, help and order.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from unittest import mock

import pytest
from _pairwise_analysis import PairwiseAnalysis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import ast
from engine.analysis import _KindIndex, analyse
from engine.errors import Diagnostic
from engine.loader import load_set
from engine.source import Source
from engine.symbols import build_vocabulary
from engine.syntax import parse

TODAY = dt.date(2025, 1, 1)
COMBINES = ["deny-overrides", "permit-overrides", "first-applicable"]
COVERING = {"duplicate_rule", "subsumed_rule", "permit_never_effective", "deny_never_effective", "rule_shadowed"}

VOCABULARY = """
actions { view, share, export }
roles {
  nurse
  lead : nurse
  doctor
  admin
}
purposes {
  care { urgent, routine }
  research
}
categories {
  special { health, genetic }
  contact
}
classifications official < sensitive < secret
agencies { hospital, council, police, school }
group health_partners = { hospital, council }
attributes {
  context.emergency  bool    default false
  context.reason     string
  context.count      number  default 0
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
agreement split_isa {
  parties hospital, police
  valid 2021-01-01 to 2999-12-31
}
agreement police_in {
  from hospital
  to police
}
"""

# Small pools, so that equal clauses, conditions and obligations recur across rules.
VALUES = {
    "action": ["view", "share", "export"],
    "role": ["nurse", "lead", "doctor", "admin"],
    "agency": ["hospital", "council", "police", "school", "health_partners"],
    "owner": ["hospital", "council", "police", "health_partners"],
    "purpose": ["care", "care.urgent", "routine", "research"],
    "under": ["care_isa", "old_isa", "long_isa", "split_isa", "police_in"],
}
CATEGORIES = ["health", "genetic", "special", "contact"]
LEVELS = ["official", "sensitive", "secret"]
CONDITIONS = [
    "context.emergency",
    "context.count > 3",
    "context.count > 5",
    'context.reason == "x"',
    "requester.role is lead",
    "context.emergency and context.count > 3",
    "action in {view, share}",
]
OBLIGATIONS = [
    "obligation audit",
    'obligation notify "dpo"',
    'obligation redact "nhs" when context.emergency',
    "obligation audit when context.count > 3",
]


@st.composite
def match_clause(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from([*VALUES, "data"]))
    if kind == "data":
        categories = draw(st.lists(st.sampled_from(CATEGORIES), min_size=0, max_size=2, unique=True))
        level = draw(st.none() | st.sampled_from(LEVELS))
        if not categories:
            return f"data any up to {level or 'secret'}"
        return "data " + ", ".join(categories) + (f" up to {level}" if level else "")
    values = draw(st.lists(st.sampled_from(VALUES[kind]), min_size=1, max_size=2, unique=True))
    return f"{kind} " + ", ".join(values)


@st.composite
def rule_body(draw: st.DrawFn) -> list[str]:
    """A rule's clauses but `because`: match clauses, conditions and obligations."""
    clauses = draw(st.lists(match_clause(), max_size=4))
    for condition in draw(st.lists(st.sampled_from(CONDITIONS), max_size=3, unique=True)):
        clauses.append(("unless " if draw(st.integers(0, 4)) == 0 else "when ") + condition)
    clauses += draw(st.lists(st.sampled_from(OBLIGATIONS), max_size=2, unique=True))
    return clauses


@st.composite
def rule_set(draw: st.DrawFn) -> str:
    """Rules drawn from a few bodies, so that exact repeats (clauses in another order) and
    rules covering one another are common; effects are drawn rule by rule."""
    bodies = draw(st.lists(rule_body(), min_size=1, max_size=6))
    count = draw(st.integers(1, 24))
    rules = []
    for n in range(count):
        body = list(draw(st.sampled_from(bodies)))
        if draw(st.booleans()):
            body.append(draw(match_clause()))  # narrower than the body it came from
        body = draw(st.permutations(body))
        effect = draw(st.sampled_from(["permit", "permit", "deny"]))
        lines = "".join(f"  {clause}\n" for clause in body)
        rules.append(f'{effect} r{n} "Rule {n}" {{\n{lines}  because "generated"\n}}\n')
    return "".join(rules)


def policy_set_of(rules: str, combine: str) -> ast.PolicySet:
    header = f'policy "x" {{\n  combine {combine}\n}}\n'
    return ast.PolicySet((parse(Source("00_vocabulary.policy", header + VOCABULARY)),
                          parse(Source("10_rules.policy", rules))))


def both(policy_set: ast.PolicySet) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(indexed, pairwise) analysis of one set."""
    vocabulary = build_vocabulary(policy_set)
    indexed = analyse(policy_set, vocabulary, today=TODAY)
    pairwise = PairwiseAnalysis(build_vocabulary(policy_set), TODAY).run()
    return indexed, pairwise


def shown(diagnostics: list[Diagnostic]) -> list[tuple[object, ...]]:
    return [(d.code, d.message, d.span and (d.span.path, d.span.line, d.span.column), d.help) for d in diagnostics]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_set(), combine=st.sampled_from(COMBINES))
def test_indexed_analysis_reports_what_pairwise_does(rules, combine):
    indexed, pairwise = both(policy_set_of(rules, combine))
    for code in sorted({d.code for d in pairwise} & COVERING):
        event(f"{combine}: {code}")
    assert shown(indexed) == shown(pairwise)
    assert indexed == pairwise


# --- the worst case of the pairwise comparison: rules alike but for a threshold --------------------

def threshold(name: str, n: int, effect: str = "permit", when: str | None = None,
              data: str = "education up to official", extra: str = "") -> str:
    """A rule as bench/load.py --adversarial writes them: `when` None is its threshold, "" none."""
    condition = f"context.records_requested > {n}" if when is None else when
    return (f'{effect} {name} "Threshold {n}" {{\n  action view\n  role social_worker\n  purpose safeguarding\n'
            f"  data {data}\n" + (f"  when {condition}\n" if condition else "") + extra
            + f'  because "Generated {n}"\n}}\n')


def adversarial(size: int, wider: bool) -> str:
    """`size` threshold rules, with repeats, narrower rules and denies mixed in; if `wider`, also rules
    without a threshold, which cover all the others."""
    rules = []
    for n in range(size):
        rules.append(threshold(f"r{n}", n))
        if n % 37 == 5:
            rules.append(threshold(f"again{n}", n))  # an exact repeat
        if n % 41 == 7:
            rules.append(threshold(f"narrow{n}", n, data="education up to public"))  # subsumed
        if n % 53 == 11:
            rules.append(threshold(f"audited{n}", n, extra="  obligation audit_access\n"))  # adds an obligation
        if n % 97 == 13:
            rules.append(threshold(f"refused{n}", n, effect="deny"))  # the same threshold refused
        if wider and n % 101 == 17:
            rules.append(threshold(f"never{n}", n, effect="deny", when=""))  # refused unconditionally
        if n % 89 == 19:
            rules.append(threshold(f"either{n}", n, when=f"context.records_requested > {n} or context.emergency"))
        if wider and n == size // 2:
            rules.append(threshold(f"wide{n}", n, when=""))  # wider than every threshold rule
            rules.append(threshold(f"wide_under{n}", n, when="", extra="  under gm_safeguarding_isa\n"))
    return "".join(rules)


def write_adversarial(root: Path, size: int, combine: str, wider: bool) -> None:
    for source in sorted((Path(__file__).resolve().parent.parent / "policies").glob("*.policy")):
        text = source.read_text(encoding="utf-8")
        if source.name.startswith("00_"):
            text, changed = re.subn(r"combine\s+[\w-]+", f"combine {combine}", text, count=1)
            assert changed
        (root / source.name).write_text(text, encoding="utf-8")
    (root / "99_thresholds.policy").write_text(adversarial(size, wider), encoding="utf-8")


@pytest.mark.parametrize("combine", COMBINES)
@pytest.mark.parametrize(("size", "wider"), [(300, False), (600, False), (400, True)])
def test_indexed_analysis_matches_pairwise_on_rules_alike_but_for_a_threshold(tmp_path, combine, size, wider):
    write_adversarial(tmp_path, size, combine, wider)
    policy_set, errors = load_set(tmp_path)
    assert [e for e in errors if e.is_error] == []
    indexed, pairwise = both(policy_set)
    assert shown(indexed) == shown(pairwise)
    assert indexed == pairwise
    codes = {d.code for d in pairwise}
    expected = {
        "deny-overrides": {"duplicate_rule", "subsumed_rule", "permit_never_effective"},
        "permit-overrides": {"duplicate_rule", "subsumed_rule"} | ({"deny_never_effective"} if wider else set()),
        "first-applicable": {"rule_shadowed"},
    }[combine]
    assert expected <= codes
    named = {re.findall(r"`(\w+)`", d.message)[1] for d in pairwise if d.code in COVERING}
    assert len(named) > (1 if wider else 10)  # without the wider rules, each finding names its own rule


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_set(), combine=st.sampled_from(COMBINES))
def test_indexed_analysis_scanning_condition_sets_reports_what_pairwise_does(rules, combine):
    """A rule with many conditions finds the rules with fewer by scanning the condition sets, not their subsets."""
    with mock.patch.object(_KindIndex, "SUBSETS_UP_TO", 1):
        indexed, pairwise = both(policy_set_of(rules, combine))
    assert shown(indexed) == shown(pairwise)
    assert indexed == pairwise
