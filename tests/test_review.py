"""Change review over every context value and every date: the diff misses no request.

Example-set cases: changes that only matter with consent, in an emergency, or
at the end of an agreement show as rows naming the rule and the context they
need; a pure re-layout is no change. Then a property test: for random policy
pairs and random complete requests (every attribute, any date), the two sets
decide differently exactly where a row of the diff covers the request.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import engine
from engine.commands.main import main
from engine.governance.diff import build_diff
from engine.governance.matrix import version_of
from engine.governance.table import Legend
from tests._context_requests import covering, random_request
from tests.test_matrix import EXPLORED_CLAUSES, explored_set

EXAMPLE = Path(__file__).resolve().parent.parent / "policies"


def edited(tmp_path: Path, file: str, pattern: str, replacement: str) -> Path:
    """A copy of the example set with one regular-expression edit in one file."""
    target = tmp_path / "new"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("*.yaml", "__pycache__", "*.py"))
    path = target / file
    text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.S)
    assert count == 1, pattern
    path.write_text(text)
    return target


def review(capsys, new: Path) -> tuple[int, dict]:
    status = main(["diff", str(EXAMPLE), str(new), "--format", "json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("file", "pattern", "rule", "when"), [
    ("20_children.policy", r"permit early_help_with_consent .*?\n}\n", "early_help_with_consent",
     "context.consent is given"),
    ("40_health_and_care.policy", r"permit emergency_break_glass .*?\n}\n", "emergency_break_glass",
     "context.emergency is true"),
], ids=["consent-only", "emergency-only"])
def test_removing_a_rule_that_needs_a_context_is_a_change(tmp_path, capsys, file, pattern, rule, when):
    status, report = review(capsys, edited(tmp_path, file, pattern, ""))
    assert status == 1
    rows = [row for row in report["rows"] if rule in row["was"]["rules"]]
    assert rows and all(when in row["when"] for row in rows)
    change = next(c for c in report["rule_changes"] if c["name"] == rule)
    assert change["change"] == "removed" and change["rows"] and change["effect"].startswith("decided differently")


def test_shortening_an_agreement_is_a_change_on_the_dates_it_no_longer_covers(tmp_path, capsys):
    new = edited(tmp_path, "10_agreements.policy", r"valid     2024-04-01 to 2028-03-31", "valid     2024-04-01 to 2026-06-30")
    status, report = review(capsys, new)
    assert status == 1
    for row in report["rows"]:  # only on the days the agreement no longer covers
        dates = [w for w in row["when"] if w.startswith("date from ")]
        assert dates, row["when"]
        start, end = dates[0].removeprefix("date from ").split(" to ")
        assert "2026-07-01" <= start <= end <= "2028-03-31", dates
    assert all(row["change"] == "now refused" or row["change"].startswith("obligations") for row in report["rows"])
    change = next(c for c in report["rule_changes"] if c["kind"] == "agreement")
    assert change["name"] == "gm_safeguarding_isa" and "+ valid     2024-04-01 to 2026-06-30" in change["text"]


def test_a_new_layout_is_no_change(tmp_path, capsys):
    target = tmp_path / "new"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("*.yaml", "__pycache__", "*.py"))
    for path in target.glob("*.policy"):  # squash the layout, then let fmt lay it out again
        path.write_text(re.sub(r"  +", " ", path.read_text()))
    assert main(["fmt", str(target)]) == 0
    capsys.readouterr()
    assert main(["diff", str(EXAMPLE), str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Changes from") and "No change: no request is decided differently" in out
    assert "What changed" not in out


def test_a_rule_with_no_effect_says_why(tmp_path, capsys):
    # A copy of a rule under a new name adds nothing: the analysis says it repeats the other.
    source = (EXAMPLE / "20_children.policy").read_text()
    block = re.search(r"permit early_help_with_consent .*?\n}\n", source, flags=re.S).group(0)
    new = edited(tmp_path, "20_children.policy", r"$", "\n" + block.replace("early_help_with_consent", "early_help_again"))
    status, report = review(capsys, new)
    assert status == 0 and report["rows"] == []
    change = report["rule_changes"][0]
    assert change["name"] == "early_help_again" and change["change"] == "added"
    assert change["effect"] == "no request is decided differently: rule `early_help_again` repeats rule " \
                               "`early_help_with_consent`"


# --- the property: a row exactly where a request is decided differently ----------------------

rules = st.lists(st.tuples(st.lists(st.sampled_from(EXPLORED_CLAUSES + ["under short_isa", "under one_way",
                                                                      "under one_way, care_isa"]), min_size=1,
                                    max_size=3), st.booleans()), min_size=1, max_size=4)


def _decided(policy, request) -> tuple:
    decision = policy.decide(request, use_cache=False)
    return decision.decision, sorted((o.name, tuple(map(str, o.args))) for o in decision.obligations)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=rules, edit=st.sampled_from(["drop", "add", "flip"]), extra=rules,
       combine=st.sampled_from(["deny-overrides", "permit-overrides", "first-applicable"]),
       seed=st.integers(0, 2**32))
def test_the_diff_has_a_row_exactly_where_a_request_is_decided_differently(old, edit, extra, combine, seed):
    new = list(old)
    if edit == "drop":
        new.pop(seed % len(new))
    elif edit == "add":
        new.append(extra[0])
    else:
        clauses, permit = new[seed % len(new)]
        new[seed % len(new)] = (clauses, not permit)
    note(f"old {old}\nnew {new}\n{combine}")
    with tempfile.TemporaryDirectory() as scratch:
        policies = []
        for name, rule_set in (("old", old), ("new", new)):
            path = explored_set(Path(scratch) / name, [r[0] for r in rule_set], [r[1] for r in rule_set], combine)
            try:
                policies.append(engine.load(str(path)))
            except engine.PolicyLoadError:
                return
        diff = build_diff(version_of(policies[0], None), version_of(policies[1], None))
    legend = Legend(policies[1].vocabulary, policies[0].vocabulary)
    chooser = random.Random(seed)
    for _ in range(150):
        request = random_request(policies[0].vocabulary, chooser)
        differs = _decided(policies[0], request) != _decided(policies[1], request)
        rows = covering(diff.rows, legend, diff.space, policies[1].vocabulary, request)
        assert bool(rows) == differs, (request, rows)


def dated_clinic(tmp_path: Path) -> Path:
    """The clinic with a rule comparing two dates: deciding it needs the search for a request."""
    target = tmp_path / "dated"
    shutil.copytree(Path(__file__).parent / "fixtures" / "matrix" / "clinic", target)
    with (target / "10_rules.policy").open("a", encoding="utf-8") as rules:
        rules.write('\npermit recent_records {\n  action view\n  role nurse\n  purpose care\n  data health up to official\n'
                    '  when context.date <= resource.recorded + 28 days\n  because "recent records only"\n}\n')
    return target


def test_combinations_the_search_cannot_settle_are_said_never_passed_over(tmp_path, capsys, monkeypatch):
    """When the search for a request gives up, the diff does not say "No change" and exits 1;
    the matrix says how many combinations it could not settle."""
    clinic, dated = Path(__file__).parent / "fixtures" / "matrix" / "clinic", dated_clinic(tmp_path)
    assert main(["diff", str(clinic), str(dated), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["unsettled"] == 0 and report["rows"]
    assert all(row["now"]["rules"] == ["recent_records"] for row in report["rows"])

    monkeypatch.setattr("engine.governance.context._SEARCH", 0)  # every search gives up at once
    assert main(["diff", str(clinic), str(dated), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["unsettled"] > 0 and report["rows"] == []
    assert report["summary"].startswith("No change found, but the comparison is not complete.")
    assert "could not be settled" in report["summary"]

    assert main(["matrix", str(dated)]) == 0
    assert "everything else is refused, but for" in capsys.readouterr().out
    assert main(["matrix", str(dated), "--date", "2025-06-01", "--context", "resource.recorded=2025-06-01"]) == 0
    assert "could not be settled" not in capsys.readouterr().out  # nothing left to search for


class _NoMemo(dict):
    """A subtree memo that remembers nothing: every subtree is walked for every path to it."""

    def get(self, key, default=None):
        return default


def test_unsettled_combinations_are_counted_for_every_path_to_a_subtree(tmp_path, monkeypatch):
    """A subtree walked once and met again counts its unsettled combinations each time."""
    from engine.governance.matrix import Walk

    clinic, dated = Path(__file__).parent / "fixtures" / "matrix" / "clinic", dated_clinic(tmp_path)
    old, new = version_of(engine.load(str(clinic)), None), version_of(engine.load(str(dated)), None)
    monkeypatch.setattr("engine.governance.context._SEARCH", 0)
    remembered = build_diff(old, new)
    walk = Walk._walk

    def unremembered(self, *args):
        if not isinstance(self.subtrees, _NoMemo):
            self.subtrees = _NoMemo()
        return walk(self, *args)

    monkeypatch.setattr(Walk, "_walk", unremembered)
    old, new = version_of(engine.load(str(clinic)), None), version_of(engine.load(str(dated)), None)
    walked = build_diff(old, new)
    assert walked.cells == remembered.cells
    assert walked.unsettled == remembered.unsettled > 0
