import itertools
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import datetime as dt

import pytest

import engine

from engine.governance.terms import DIMENSIONS
from engine.commands.main import main
from engine.governance.diff import build_diff, changed, load_pair, render_diff
from engine.governance.matrix import parse_context, version_of
from engine.governance.table import UNDECLARED, Outcome

CLINIC = Path(__file__).parent / "fixtures" / "matrix" / "clinic"
HEADER = "| Action | Role | Agency | Purpose | Data | Classification | Owner | When | Change | Was | Now |"


def amended(tmp_path: Path, *edits: tuple[str, str], name: str = "new") -> Path:
    """A copy of the clinic set with text replacements (file prefix, old, new) applied."""
    target = tmp_path / name
    shutil.copytree(CLINIC, target)
    for file_prefix, old, new in edits:
        path = next(target.glob(f"{file_prefix}*.policy"))
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))
    return target


def diff_rows(old: Path, new: Path, *context: str) -> list[str]:
    """The md table's rows; a When cell that says `always` is left out, to keep the tables short."""
    before, after = load_pair(str(old), str(new), "2025-06-01", list(context))
    text = render_diff(build_diff(before, after), "md")
    lines = text.splitlines()
    if HEADER not in lines:
        return []
    rows = lines[lines.index(HEADER) + 2:]
    rows = rows[:rows.index("")] if "" in rows else rows
    return [row.replace(" | always | ", " | ", 1) for row in rows]


def defaults_pair(old: Path, new: Path, *context: str):
    """Both versions with every attribute not given at its default: one context each."""
    pair = []
    for path in (old, new):
        policy = engine.load(str(path))
        given, restrict = parse_context(policy.vocabulary, list(context))
        pair.append(version_of(policy, dt.date(2025, 6, 1), given, restrict, at_defaults=True))
    return pair


def test_identical_sets_have_no_changes(tmp_path):
    assert diff_rows(CLINIC, amended(tmp_path)) == []


def test_added_rule(tmp_path):
    new = amended(tmp_path, ("10", "deny lead_no_contact",
                             'permit police_research {\n  action view\n  agency police\n  purpose research\n'
                             '  data health up to official\n  owner hospital\n  because "x"\n}\n\n'
                             "deny lead_no_contact"))
    assert diff_rows(CLINIC, new) == [
        "| view | any | police | research | health | official | hospital | now permitted "
        "| deny (no rule permits); obligations: none | permit by rule police_research; obligations: none |",
    ]


def test_removed_rule(tmp_path):
    new = amended(tmp_path, ("10", "permit urgent_share", "deny urgent_share"))
    assert diff_rows(CLINIC, new) == [
        "| view | doctor | hospital | care.urgent | health | any | hospital | now refused "
        "| permit by rule urgent_share; obligations: none | deny by rule urgent_share; obligations: none |",
        "| share | doctor | hospital | care.urgent | health | any | hospital | now refused "
        "| permit by rule urgent_share; obligations: log_share | deny by rule urgent_share; obligations: none |",
    ]


def test_narrowed_rule(tmp_path):
    new = amended(tmp_path, ("10", "  purpose     care\n", "  purpose     care.urgent\n"))
    was = "permit by rule care_view; obligations: audit"
    now = "deny (no rule permits); obligations: none"
    assert diff_rows(CLINIC, new) == [
        f"| view | nurse | health_partners | care (except care.urgent) | health | official | health_partners "
        f"| now refused | {was} | {now} |",
        f"| view | nurse (only) | health_partners | care (except care.urgent) | contact | official "
        f"| health_partners | now refused | {was} | {now} |",
    ]


def test_changed_obligations(tmp_path):
    new = amended(tmp_path, ("10", "  obligation  audit\n", '  obligation  audit\n  obligation  redact "nhs number"\n'))
    rows = diff_rows(CLINIC, new)
    assert len(rows) == 2
    assert rows[0] == (
        "| view | nurse | health_partners | care | health | official | health_partners "
        '| obligations change: + redact "nhs number" | permit by rule care_view; obligations: audit '
        '| permit by rule care_view; obligations: audit; redact "nhs number" |')


def test_policy_wide_obligation_on_refusals_changes_denied_cells(tmp_path):
    new = amended(tmp_path, ("00", "on permit obligation log_share", "on deny obligation explain when action == share\n"
                             "on permit obligation log_share"))
    before, after = defaults_pair(CLINIC, new)
    diff = build_diff(before, after)
    # every refused share: 3*3*4*2*2*3 = 432 shares in all, less the 2 permitted
    assert diff.changed == 432 - 2
    assert {row[1].new.obligations for row in diff.rows} == {(("explain", ()),)}


def test_vocabulary_difference_counts_as_refused_where_undeclared(tmp_path):
    new = amended(tmp_path, ("00", "agencies { hospital, council, police }",
                             "agencies { hospital, council, police, hospice }"),
                  ("00", "group health_partners = { hospital, council }",
                   "group health_partners = { hospital, council, hospice }"))
    was, now = "deny (not declared in this version)", "permit by rule care_view; obligations: audit"
    # health_partners means different agencies in the two versions, so it is spelt out
    assert diff_rows(CLINIC, new) == [
        f"| view | nurse | hospital, council | care | health | official | hospice | now permitted | {was} | {now} |",
        f"| view | nurse (only) | hospital, council | care | contact | official | hospice | now permitted "
        f"| {was} | {now} |",
        f"| view | nurse | hospice | care | health | official | hospital, council, hospice | now permitted "
        f"| {was} | {now} |",
        f"| view | nurse (only) | hospice | care | contact | official | hospital, council, hospice | now permitted "
        f"| {was} | {now} |",
        # the emergency rule lets police see a new owner's records, which the old version did not know
        "| view | nurse (only), doctor | police | care.urgent | contact | official | hospice "
        "| context.emergency is true | now permitted | deny (not declared in this version) "
        "| permit by rule emergency_police; obligations: notify hospice |",
    ]


def test_changes_equal_deciding_every_combination_in_both(tmp_path):
    new = amended(tmp_path, ("10", "  role        doctor\n", "  role        doctor, nurse\n"),
                  ("10", "  data        contact up to official\n", "  data        any up to official\n"))
    before, after = defaults_pair(CLINIC, new, "emergency=true")
    diff = build_diff(before, after)
    expected = set()
    for cell in itertools.product(*(before.values(p) for p in DIMENSIONS)):
        named = dict(zip(DIMENSIONS, cell))
        if changed(before.judge(named, {})[0], after.judge(named, {})[0]):
            expected.add(cell)
    found = set()
    for box, _change in diff.rows:
        found.update(itertools.product(*box[:len(DIMENSIONS)]))
    assert found == expected and expected


def test_same_obligation_worded_two_ways_is_no_change(tmp_path):
    # `tell resource.owner` and `tell "hospital"` are the same obligation for records the hospital
    # owns; the rule giving it moves, so the walk must decide the combinations to see that
    old = amended(tmp_path, ("10", "  obligation  audit\n", "  obligation  tell resource.owner\n"), name="old")
    new = amended(tmp_path, ("10", "  obligation  audit\n", ""), ("10", "deny lead_no_contact", """\
permit care_tell {
  action      view
  role        nurse
  purpose     care
  data        health, contact up to official
  under       care_isa
  obligation  tell "hospital" when resource.owner == hospital
  obligation  tell "council" when resource.owner == council
  because     "Direct care"
}

deny lead_no_contact"""))
    before, after = load_pair(str(old), str(new), "2025-06-01", [])
    diff = build_diff(before, after)
    assert diff.representatives > 0 and diff.rows == []


def test_undeclared_side_changes_only_against_a_permit():
    refused = Outcome("deny", (), (("explain", ()),))
    assert not changed(UNDECLARED, refused)
    assert changed(UNDECLARED, Outcome("permit", ("r",), ()))


# --- the command ------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["diff", str(CLINIC), str(amended(tmp_path, name="same"))]) == 0
    out = capsys.readouterr().out
    assert "No change: no request is decided differently. Compared every combination of vocabulary values and " \
           "context cases: every context value and every date (497,664 combinations)." in out
    narrowed = amended(tmp_path, ("10", "  purpose     care\n", "  purpose     care.urgent\n"), name="narrow")
    assert main(["diff", str(CLINIC), str(narrowed), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == 24 * 576 and report["rows"][0]["change"] == "now refused"
    assert report["rows"][0]["when"] == [] and report["rule_changes"][0]["name"] == "care_view"


def test_cli_unloadable_set_exits_2_without_traceback(tmp_path, capsys):
    broken = amended(tmp_path, ("10", "  action      view\n  role        nurse",
                                "  action      fly\n  role        nurse"))
    assert main(["diff", str(CLINIC), str(broken)]) == 2
    err = capsys.readouterr().err
    assert "the new set cannot be loaded" in err and "unknown action `fly`" in err and "Traceback" not in err


def test_cli_needs_two_paths_or_git(capsys):
    assert main(["diff", str(CLINIC)]) == 2
    assert "give OLD and NEW" in capsys.readouterr().err


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True,
                   capture_output=True)


def test_cli_diff_against_a_git_revision(tmp_path, capsys, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(CLINIC, repo / "policies")
    (repo / "policies" / "notes.txt").write_text("not a policy")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    rules = repo / "policies" / "10_rules.policy"
    rules.write_text(rules.read_text().replace("  purpose     care\n", "  purpose     care.urgent\n"))
    monkeypatch.chdir(repo)
    assert main(["diff", "--git", "HEAD", "--date", "2025-06-01"]) == 1
    out = capsys.readouterr().out
    assert "Changes from HEAD:policies" in out and "13,824 of 497,664 combinations change, in 2 rows" in out
    git(repo, "commit", "-q", "-am", "narrow")
    assert main(["diff", "--git", "HEAD", "policies", "--date", "2025-06-01"]) == 0
    assert main(["diff", "--git", "HEAD~1", "policies", "--date", "2025-06-01", "--format", "md"]) == 1
    capsys.readouterr()
    assert main(["diff", "--git", "no-such-rev"]) == 2
    assert "error:" in capsys.readouterr().err


def random_amendment(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    """Random rules, and a version with one dropped, others added, sometimes new names declared."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_matrix import random_rules

    chooser = random.Random(seed)
    old, new = amended(tmp_path, name="old"), amended(tmp_path, name="new")
    base = random_rules(seed)
    (old / "10_rules.policy").write_text(base)
    parts = base.split("\n\n")
    if chooser.random() < 0.5 and len(parts) > 1:
        parts.pop(chooser.randrange(len(parts)))
    if chooser.random() < 0.7:
        parts.append(random_rules(seed + 1000).replace("permit r", "permit n").replace("deny r", "deny n"))
    (new / "10_rules.policy").write_text("\n\n".join(parts))
    if chooser.random() < 0.3:
        vocabulary = new / "00_vocabulary.policy"
        vocabulary.write_text(vocabulary.read_text()
                              .replace("agencies { hospital, council, police }",
                                       "agencies { hospital, council, police, hospice }")
                              .replace("  lead : nurse\n", "  lead : nurse\n  matron : nurse\n"))
    return old, new


def expand(box) -> set:
    own = box[-1] == frozenset(("=requester.agency",))
    cells = itertools.product(*box[:-1], box[2] if own else box[-1])
    return {c for c in cells if not own or c[2] == c[-1]}


@pytest.mark.parametrize("seed", [2, 7, 22, 24, 40, 44, 84, 124])
def test_random_amendments_equal_deciding_every_combination(tmp_path, seed):
    old_path, new_path = random_amendment(tmp_path, seed)
    before, after = defaults_pair(old_path, new_path, *(["emergency=true"] if seed % 2 else []))
    diff = build_diff(before, after)
    found = set().union(*(expand(box[:len(DIMENSIONS)]) for box, _change in diff.rows)) if diff.rows else set()
    values = [list(dict.fromkeys(before.values(p) + after.values(p))) for p in DIMENSIONS]
    expected = set()
    for cell in itertools.product(*values):
        named = dict(zip(DIMENSIONS, cell))
        outcomes = [v.judge(named, {})[0] if all(named[p] in v.values(p) for p in DIMENSIONS) else UNDECLARED
                    for v in (before, after)]
        if changed(*outcomes):
            expected.add(cell)
    assert found == expected
