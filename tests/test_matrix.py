import datetime as dt
import io
import itertools
import json
import random
import shutil
from pathlib import Path

import tempfile

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import engine
from engine.governance.terms import DIMENSIONS
from engine.commands.main import main
from engine.governance.matrix import (
    ContextError,
    Version,
    build_matrix,
    load_version,
    parse_context,
    render_matrix,
    version_of,
)
from engine.governance.table import SAME_AGENCY, Legend
from engine.commands.progress import Progress
from tests._context_requests import covering, random_request

CLINIC = Path(__file__).parent / "fixtures" / "matrix" / "clinic"
DATE = dt.date(2025, 6, 1)
HEADER = "| Action | Role | Agency | Purpose | Data | Classification | Owner | When | Permitted by | Obligations |"

# Worked out by hand from tests/fixtures/matrix/clinic: care_view admits nurses and
# leads, but lead_no_contact refuses leads contact details; urgent_share is the
# hospital's doctors only; emergency_police needs context.emergency.
CLINIC_ROWS = [
    "| view | nurse | health_partners | care | health | official | health_partners | always | care_view | audit |",
    "| view | nurse (only) | health_partners | care | contact | official | health_partners | always | care_view "
    "| audit |",
    "| view | doctor | hospital | care.urgent | health | any | hospital | always | urgent_share | - |",
    "| share | doctor | hospital | care.urgent | health | any | hospital | always | urgent_share | log_share |",
]
EMERGENCY_ROW = ("| view | nurse (only), doctor | police | care.urgent | contact | official | any "
                 "| {when} | emergency_police | notify resource.owner |")
# The clinic's context cases: requester.id and resource.id 2 each (any string, not given),
# emergency 3 (true, false, not given), count 2, reason 3, approver 4, resource.recorded 2
# (any date, not given); the date is fixed.
CASES = 2 * 2 * 3 * 2 * 3 * 4 * 2


def matrix_of(path, *context, date=DATE):
    return build_matrix(load_version(str(path), date, list(context)))


def defaults_matrix(path, *context, date=DATE):
    """The matrix with every attribute not given at its default: one context, as a request
    that says nothing more would have it."""
    policy = engine.load(str(path))
    given, restrict = parse_context(policy.vocabulary, list(context))
    return build_matrix(version_of(policy, date, given, restrict, at_defaults=True))


def table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index(HEADER) + 2:]


def test_clinic_matrix_rows_by_hand():
    matrix = matrix_of(CLINIC)
    assert table_rows(render_matrix(matrix, "md")) == CLINIC_ROWS + [
        EMERGENCY_ROW.format(when="context.emergency is true")]
    assert (matrix.cells, matrix.permitted) == (864 * CASES, (24 + 12 + 4) * CASES + 6 * CASES // 3)


def test_at_defaults_the_conditional_rule_is_off():
    matrix = defaults_matrix(CLINIC)
    assert table_rows(render_matrix(matrix, "md")) == CLINIC_ROWS
    assert (matrix.cells, matrix.permitted) == (864, 24 + 12 + 4)


def test_context_fixed_switches_a_conditional_rule_on():
    matrix = matrix_of(CLINIC, "emergency=true")
    assert table_rows(render_matrix(matrix, "md")) == CLINIC_ROWS + [EMERGENCY_ROW.format(when="always")]
    assert matrix.permitted == (40 + 6) * CASES // 3


def test_context_names_a_dimension_to_restrict_to():
    matrix = matrix_of(CLINIC, "purpose=care.urgent", "action=share")
    assert table_rows(render_matrix(matrix, "md")) == CLINIC_ROWS[3:]
    assert matrix.cells == 1 * 3 * 3 * 1 * 2 * 2 * 3 * CASES


def test_csv_has_one_line_per_row():
    text = render_matrix(matrix_of(CLINIC), "csv")
    lines = text.splitlines()
    assert lines[0] == "Action,Role,Agency,Purpose,Data,Classification,Owner,When,Permitted by,Obligations"
    assert lines[2] == ("view,nurse (only),health_partners,care,contact,official,health_partners,always,care_view,"
                        "audit")
    assert len(lines) == 1 + len(CLINIC_ROWS) + 1


def test_text_names_rules_and_obligations():
    text = render_matrix(defaults_matrix(CLINIC), "text")
    assert "40 of 864 combinations permitted, in 4 rows" in text
    assert "   When            always\n   Permitted by    care_view\n   Obligations     audit" in text
    explored = render_matrix(matrix_of(CLINIC), "text")
    assert "Covered every combination of vocabulary values and context cases, with context.date=2025-06-01 fixed" \
        in explored
    assert "   When            context.emergency is true\n   Permitted by    emergency_police" in explored


def test_html_is_one_escaped_page_with_filters():
    page = render_matrix(matrix_of(CLINIC), "html")
    assert page.startswith("<!DOCTYPE html>") and "<script>" in page and "<style>" in page
    assert "http" not in page.replace("http-equiv", "")  # no external assets
    assert '<select data-col="1"><option value="">all</option><option value="nurse">' in page
    # a row saying `nurse` also stands for `lead`, so choosing lead keeps it
    assert '<td data-v=" nurse lead ">nurse</td>' in page
    assert page.count("<tr><td") == len(CLINIC_ROWS) + 1


def test_html_escapes_names(tmp_path):
    shutil.copytree(CLINIC, tmp_path / "set")
    rules = tmp_path / "set" / "10_rules.policy"
    rules.write_text(rules.read_text().replace('obligation  audit', 'obligation  audit "<b>&"'))
    page = render_matrix(matrix_of(tmp_path / "set"), "html")
    assert "&quot;&lt;b&gt;&amp;&quot;" in page and "<b>&" not in page


def outcome_table(matrix) -> dict:
    """Every permitted combination of a matrix, expanded from its rows."""
    legend = Legend(matrix.version.vocab)
    found = {}
    for box, outcome in matrix.rows:
        for cell in itertools.product(*legend.expand(box)):
            if box[-1] != frozenset(("=requester.agency",)) or cell[2] == cell[-1]:
                assert cell not in found, "rows overlap"
                found[cell] = (outcome.rules, outcome.obligations)
    return found


def decide_everything(version: Version) -> dict:
    found = {}
    for cell in itertools.product(*(version.values(p) for p in DIMENSIONS)):
        outcome = version.judge(dict(zip(DIMENSIONS, cell)), {})[0]
        if outcome.decision == "permit":
            found[cell] = (outcome.rules, outcome.obligations)
    return found


@pytest.mark.parametrize("combine", ["deny-overrides", "permit-overrides", "first-applicable"])
@pytest.mark.parametrize("context", [(), ("emergency=true",)], ids=["defaults", "emergency"])
def test_matrix_equals_deciding_every_combination(tmp_path, combine, context):
    shutil.copytree(CLINIC, tmp_path / "set")
    vocabulary = tmp_path / "set" / "00_vocabulary.policy"
    vocabulary.write_text(vocabulary.read_text().replace("combine deny-overrides", f"combine {combine}"))
    matrix = defaults_matrix(tmp_path / "set", *context)
    assert outcome_table(matrix) == decide_everything(matrix.version)


RANDOM_CLAUSES = [
    "action view", "action share", "action view, share", "role nurse", "role lead", "role doctor, lead",
    "agency hospital", "agency health_partners", "agency police", "purpose care", "purpose care.urgent",
    "purpose research", "data health", "data contact up to official", "data any up to official",
    "owner hospital", "owner council, police", "under care_isa",
    "when context.emergency", "unless context.emergency", "when resource.owner == requester.agency",
    "when resource.classification > official or action == share", "when requester.role is nurse",
    "obligation audit", "obligation notify resource.owner", "obligation mark resource.classification",
    "obligation warn when purpose is care.urgent", "obligation tell requester.agency unless action == view",
    "when context.count > 1 or resource.classification == secret", "unless context.reason == review",
    "when has resource.recorded and resource.recorded < 2020-01-01", "when context.approver is nurse",
    'obligation note 3, "a b" when context.count >= 1 and action in {share}',
    "unless resource.category in {contact} and requester.agency in health_partners",
]
RANDOM_CONTEXTS = [(), ("emergency=true",), ("count=5", "reason=review"), ("approver=lead", "recorded=2019-05-01"),
                   ("approver=doctor", "emergency=true", "count=0")]


def random_rules(seed: int) -> str:
    chooser = random.Random(seed)
    rules = []
    for number in range(chooser.randint(2, 6)):
        effect = "permit" if chooser.random() < 0.65 else "deny"
        clauses = chooser.sample(RANDOM_CLAUSES, chooser.randint(1, 4))
        body = "\n".join(f"  {c}" for c in clauses)
        rules.append(f'{effect} r{number} {{\n{body}\n  because "test"\n}}\n')
    return "\n".join(rules)


@pytest.mark.parametrize("seed", range(15))
def test_matrix_of_random_rules_equals_deciding_every_combination(tmp_path, seed):
    shutil.copytree(CLINIC, tmp_path / "set")
    (tmp_path / "set" / "10_rules.policy").write_text(random_rules(seed))
    combine = ["deny-overrides", "permit-overrides", "first-applicable"][seed % 3]
    vocabulary = tmp_path / "set" / "00_vocabulary.policy"
    vocabulary.write_text(vocabulary.read_text().replace("combine deny-overrides", f"combine {combine}"))
    matrix = defaults_matrix(tmp_path / "set", *RANDOM_CONTEXTS[seed % len(RANDOM_CONTEXTS)])
    assert outcome_table(matrix) == decide_everything(matrix.version)


def test_example_policies_at_defaults_sampled_against_the_engine():
    matrix = defaults_matrix("policies")
    version = matrix.version
    found = outcome_table(matrix)
    chooser = random.Random(7)
    cells = [tuple(chooser.choice(version.values(p)) for p in DIMENSIONS) for _ in range(300)]
    cells += chooser.sample(sorted(found), min(300, len(found)))
    for cell in cells:
        outcome = version.judge(dict(zip(DIMENSIONS, cell)), {})[0]
        expected = (outcome.rules, outcome.obligations) if outcome.decision == "permit" else None
        assert found.get(cell) == expected, cell


def test_rows_merge_agencies_that_own_their_own_records(tmp_path):
    shutil.copytree(CLINIC, tmp_path / "set")
    (tmp_path / "set" / "10_rules.policy").write_text(
        'permit own {\n  action view\n  when resource.owner == requester.agency\n  because "x"\n}\n')
    rows = table_rows(render_matrix(matrix_of(tmp_path / "set"), "md"))
    assert rows == ["| view | any | any | any | any | any | requester's own agency | always | own | - |"]


# --- wording value sets ----------------------------------------------------------------


@pytest.fixture
def legend():
    return Legend(engine.load(str(CLINIC)).vocabulary)


@pytest.mark.parametrize(("path", "values", "shown"), [
    ("purpose", {"care", "care.urgent", "care.routine"}, ["care"]),
    ("purpose", {"care.urgent", "care.routine"}, ["care.urgent", "care.routine"]),
    ("purpose", {"care", "care.urgent"}, ["care (except care.routine)"]),
    ("purpose", {"care", "research"}, ["care (only)", "research"]),
    ("requester.role", {"nurse", "lead", "doctor"}, ["any"]),
    ("requester.role", {"nurse", "doctor"}, ["nurse (only)", "doctor"]),
    ("requester.agency", {"hospital", "council"}, ["health_partners"]),
    ("requester.agency", {"hospital", "police"}, ["hospital", "police"]),
    ("resource.classification", {"official"}, ["official"]),
    ("action", {"share"}, ["share"]),
], ids=lambda v: str(v))
def test_legend_words_value_sets(legend, path, values, shown):
    assert legend.show(path, frozenset(values)) == shown


# --- the command -------------------------------------------------------------------------


def test_cli_matrix_prints_the_table(capsys):
    assert main(["matrix", str(CLINIC), "--date", "2025-06-01", "--format", "md"]) == 0
    out, err = capsys.readouterr()
    assert table_rows(out) == CLINIC_ROWS + [EMERGENCY_ROW.format(when="context.emergency is true")]
    assert err == f"engine matrix: using {CLINIC} ({err.split('(')[-1]}"  # no progress bar when not a terminal


@pytest.mark.parametrize(("argv", "message"), [
    (["--context", "emergncy=true"], "no such attribute (did you mean `context.emergency`?)"),
    (["--context", "emergency=maybe"], "expected true or false"),
    (["--context", "purpose=dentistry"], "unknown purpose `dentistry`"),
    (["--date", "June"], "expected a date like 2025-06-01"),
    (["--context", "date=2025-01-01"], "give the date with --date"),
])
def test_cli_matrix_bad_context_exits_2(capsys, argv, message):
    assert main(["matrix", str(CLINIC), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_matrix_unloadable_set_exits_2_with_diagnostics(tmp_path, capsys):
    (tmp_path / "a.policy").write_text("permit x {\n  action fly\n}\n")
    assert main(["matrix", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown action `fly`" in err and "Traceback" not in err


def test_context_values_are_typed_by_the_schema():
    vocab = engine.load(str(CLINIC)).vocabulary
    assert parse_context(vocab, ["context.emergency=yes", "role=lead"]) == (
        {"context.emergency": True}, {"requester.role": frozenset({"lead"})})
    with pytest.raises(ContextError, match="expected KEY=VALUE"):
        parse_context(vocab, ["emergency"])


# --- progress ------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_piped():
    stream = io.StringIO()
    with Progress(10, "matrix", stream) as progress:
        progress.advance(10)
    assert stream.getvalue() == ""


def test_progress_draws_on_a_terminal_and_clears():
    stream = FakeTerminal()
    with Progress(4, "matrix", stream) as progress:
        progress.advance(2)
    assert "matrix [###############---------------]  50%" in stream.getvalue()
    assert stream.getvalue().endswith("\r\033[K")


def test_roles_held_at_agencies_leave_out_combinations_that_cannot_occur(tmp_path):
    (tmp_path / "set.policy").write_text(
        'actions { view, amend }\nroles {\n  gp at practices\n  housing_officer at housing\n}\n'
        "purposes { care }\ncategories { health }\nclassifications official < secret\n"
        "agencies { surgery, housing, trust }\ngroup practices = { surgery }\n"
        'permit anyone {\n  action view, amend\n  because "x"\n}\n', encoding="utf-8")
    matrix = matrix_of(tmp_path)
    found = outcome_table(matrix)
    held = {(cell[DIMENSIONS.index("requester.role")], cell[DIMENSIONS.index("requester.agency")]) for cell in found}
    assert held == {("gp", "surgery"), ("housing_officer", "housing")}
    assert len(found) == 2 * 2 * 2 * 3  # actions x held pairs x classifications x owners


AGENCIES = "agencies { schools, hospital, council, police, probation }\n"
SIDED_AGREEMENTS = ("agreement one_way { from hospital\n  to police, council\n  valid 2025-03-01 to 2026-06-30 }\n"
                    "agreement local_isa { parties hospital, probation }\n")


@pytest.mark.parametrize(("clauses", "pairs"), [
    ("under one_way", {("police", "hospital"), ("council", "hospital")}),
    ("under local_isa", {("hospital", "hospital"), ("hospital", "probation"), ("probation", "hospital"),
                         ("probation", "probation")}),
    ("agency schools\n  owner police, probation", {("schools", "police"), ("schools", "probation")}),
    ("agency schools, probation\n  owner hospital\n  obligation tell requester.agency",
     {("schools", "hospital"), ("probation", "hospital")}),
    ("when resource.owner == requester.agency\n  unless requester.agency in {council}",
     {(a, a) for a in ("schools", "hospital", "police", "probation")}),
    ("when resource.owner != police\n  agency police, council\n  under one_way",
     {("police", "hospital"), ("council", "hospital")}),
], ids=["one-way", "parties", "named", "argument", "own agency", "not equal"])
@pytest.mark.parametrize("explored", [False, True], ids=["date fixed", "every date"])
def test_requester_and_owner_pairs_are_those_the_rule_names(tmp_path, clauses, pairs, explored):
    """Agencies a rule does not name are walked as one group: the pairs permitted must be
    exactly the ones its agreements, lists and comparisons allow."""
    shutil.copytree(CLINIC, tmp_path / "set")
    vocabulary = tmp_path / "set" / "00_vocabulary.policy"
    vocabulary.write_text(vocabulary.read_text().replace("agencies { hospital, council, police }\n", AGENCIES)
                          + SIDED_AGREEMENTS)
    (tmp_path / "set" / "10_rules.policy").write_text(
        f'permit r {{\n  action view\n  role nurse\n  purpose care\n  data health\n  {clauses}\n'
        f'  because "x"\n}}\n')
    matrix = build_matrix(version_of(engine.load(str(tmp_path / "set")), None if explored else DATE))
    legend = Legend(matrix.version.vocab)
    found = set()
    for box, _outcome in matrix.rows:
        agencies = legend.expand(box)[DIMENSIONS.index("requester.agency")]
        if box[DIMENSIONS.index("resource.owner")] == SAME_AGENCY:
            found.update((a, a) for a in agencies)
        else:
            found.update(itertools.product(agencies, legend.expand(box)[DIMENSIONS.index("resource.owner")]))
    assert found == pairs


def test_context_gives_a_set_as_members_separated_by_commas(tmp_path):
    (tmp_path / "set.policy").write_text(
        "actions { view }\nroles { clerk }\npurposes { care, research }\ncategories { health }\n"
        "classifications official < secret\nagencies { trust }\n"
        "attributes {\n  context.consented set of purpose default {}\n}\n"
        'permit consented {\n  when purpose in context.consented\n  because "x"\n}\n', encoding="utf-8")
    purposes = {cell[DIMENSIONS.index("purpose")] for cell in outcome_table(matrix_of(tmp_path, "context.consented=care"))}
    assert purposes == {"care"}
    assert outcome_table(matrix_of(tmp_path, "context.consented=")) == {}
    both = outcome_table(matrix_of(tmp_path, "context.consented=care, research"))
    assert {cell[DIMENSIONS.index("purpose")] for cell in both} == {"care", "research"}


# --- every context value and every date ----------------------------------------------------

EXPLORED_VOCABULARY = """
attributes {
  resource.closed   date
  context.limit     number
  context.consented set of purpose default {}
}
"""
EXPLORED_CLAUSES = RANDOM_CLAUSES + [
    "when purpose in context.consented", "unless has context.consented",
    "when context.date <= resource.recorded + 28 days", "when resource.closed < context.date - 1 year",
    "when context.count > context.limit", "when resource.recorded >= resource.closed + 1 month",
    "when context.date >= 2025-03-01", "when context.count >= 18 and context.count < 100",
    "obligation remind context.reason", "obligation expire when context.date > 2026-01-31",
]


def explored_set(directory: Path, clauses: list[list[str]], effects: list[bool], combine: str) -> Path:
    shutil.copytree(CLINIC, directory)
    vocabulary = directory / "00_vocabulary.policy"
    vocabulary.write_text(vocabulary.read_text().replace("combine deny-overrides", f"combine {combine}")
                          + EXPLORED_VOCABULARY)
    rules = []
    for number, (body, permit) in enumerate(zip(clauses, effects)):
        lines = "\n".join(f"  {c}" for c in body)
        rules.append(f'{"permit" if permit else "deny"} r{number} {{\n{lines}\n  because "test"\n}}\n')
    (directory / "10_rules.policy").write_text("\n".join(rules))
    agreements = directory / "05_agreements.policy"
    agreements.write_text("agreement short_isa { parties health_partners\n  valid 2024-01-01 to 2025-12-31 }\n"
                          "agreement one_way { from hospital\n  to police, council\n  valid 2025-03-01 to 2026-06-30 }\n")
    return directory


rule_sets = st.lists(st.tuples(st.lists(st.sampled_from(EXPLORED_CLAUSES + ["under short_isa", "under one_way",
                                                                          "under one_way, care_isa"]), min_size=1,
                                        max_size=4), st.booleans()), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_sets, combine=st.sampled_from(["deny-overrides", "permit-overrides", "first-applicable"]),
       seed=st.integers(0, 2**32))
def test_every_row_decides_as_the_engine_over_every_context_and_date(rules, combine, seed):
    with tempfile.TemporaryDirectory() as scratch:
        path = explored_set(Path(scratch) / "set", [r[0] for r in rules], [r[1] for r in rules], combine)
        try:
            policy = engine.load(str(path))
        except engine.PolicyLoadError:
            event("a rule set that does not load")
            return  # a random rule that does not check (a clause repeated where it may not be)
        matrix = build_matrix(version_of(policy, None))
    note(f"rules {rules}, {combine}")
    legend = Legend(policy.vocabulary)
    chooser = random.Random(seed)
    for _ in range(150):
        request = random_request(policy.vocabulary, chooser)
        decision = policy.decide(request, use_cache=False)
        rows = covering(matrix.rows, legend, matrix.space, policy.vocabulary, request)
        assert len(rows) <= 1, "rows overlap"
        if decision.decision == "permit":
            assert rows, f"no row for a permitted request {request}"
            assert rows[0][1].rules == tuple(r.rule for r in decision.reasons)
            assert [o[0] for o in rows[0][1].obligations] == [o.name for o in decision.obligations]
        else:
            assert not rows, f"a row for a refused request {request}: {rows}"


def test_json_rows_carry_the_context_they_need(capsys):
    assert main(["matrix", str(CLINIC), "--date", "2025-06-01", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fixed"] == {"context.date": "2025-06-01"}
    emergency = [row for row in report["rows"] if row["rules"] == ["emergency_police"]]
    assert [row["when"] for row in emergency] == [["context.emergency is true"]]
    assert all(row["when"] == [] for row in report["rows"] if row["rules"] != ["emergency_police"])
    assert report["rows"][0]["requester.role"] == ["nurse"] and report["rows"][0]["obligations"] == ["audit"]


def test_when_words_an_attribute_by_its_label(tmp_path):
    """The When column speaks the author's words where the attribute carries a label."""
    labelled = tmp_path / "clinic"
    shutil.copytree(CLINIC, labelled)
    vocabulary = labelled / "00_vocabulary.policy"
    text = vocabulary.read_text(encoding="utf-8")
    vocabulary.write_text(text.replace('context.emergency  bool', 'context.emergency "the emergency flag" bool'),
                          encoding="utf-8")
    assert table_rows(render_matrix(matrix_of(labelled), "md")) == CLINIC_ROWS + [
        EMERGENCY_ROW.format(when="the emergency flag is true")]
