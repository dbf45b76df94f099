from pathlib import Path

import pytest

import engine
from engine.testing.report import render_text
from engine.testing.runner import run_test_files

CLINIC = Path(__file__).parent / "fixtures" / "testing" / "clinic"

# Every request starts as a nurse at the clinic viewing a health record for
# treatment: a permit by clinicians_view. Cases below change one thing.
HEADER = """\
defaults:
  requester: {role: nurse, agency: clinic}
  action: view
  resource: {category: health, classification: official, owner: clinic}
  purpose: treatment
  context: {date: 2025-06-01}
cases:
"""
FIRST_CASE_LINE = HEADER.count("\n") + 1


@pytest.fixture(scope="module")
def policy():
    return engine.load(CLINIC)


@pytest.fixture
def run(policy, tmp_path):
    def run(cases: str, keyword: str | None = None, name: str = "t.test.yaml"):
        path = tmp_path / name
        path.write_text(HEADER + cases, encoding="utf-8")
        return run_test_files(policy, [path], keyword=keyword)

    return run


def rule_line(rule: str) -> int:
    lines = (CLINIC / "clinic.policy").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if f" {rule} " in line and line.startswith(("permit", "deny")))


def test_the_clinic_examples_all_pass(policy):
    report = run_test_files(policy, [CLINIC / "clinic.test.yaml"])
    assert [r.status for r in report.results] == ["passed"] * 6
    assert (report.passed, report.failed, report.exit_code()) == (6, 0, 0)


@pytest.mark.parametrize(
    ("case", "passed", "mismatches"),
    [
        ("{name: c, request: {}, expect: permit}", True, ()),
        ("{name: c, request: {}, expect: deny}", False, ("decision",)),
        ("{name: c, request: {}, expect: permit, by: clinicians_view}", True, ()),
        ("{name: c, request: {}, expect: permit, by: clerk_contacts}", False, ("by",)),
        ("{name: c, request: {}, expect: permit, by: [clinicians_view]}", True, ()),
        ("{name: c, request: {}, expect: permit, by: [clinicians_view, clerk_contacts]}", False, ("by",)),
        ("{name: c, request: {purpose: marketing}, expect: permit, by: clinicians_view}", False,
         ("decision", "by")),
        ("{name: c, request: {}, expect: permit, obligations: [log_access]}", True, ()),
        ("{name: c, request: {}, expect: permit, obligations: [log_access, log_access]}", True, ()),
        ("{name: c, request: {}, expect: permit, obligations: []}", False, ("obligations",)),
        ("{name: c, request: {}, expect: permit, obligations: [log_access, notify]}", False, ("obligations",)),
        ("{name: c, request: {purpose: marketing}, expect: deny, by: no_marketing, obligations: []}", True, ()),
    ],
    ids=["permit", "wrong decision", "by", "by mismatch", "by list", "by list one missing",
         "decision and by", "obligations", "obligations repeated", "obligations missing one",
         "obligations extra", "deny with no obligations"],
)
def test_a_case_passes_when_decision_by_and_obligations_all_match(run, case, passed, mismatches):
    (result,) = run(f"  - {case}\n").results
    assert (result.passed, result.mismatches) == (passed, mismatches)
    assert result.decision is not None


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        ("{name: c, request: {}, expect: deny}",
         ["expected: deny", "actual:   permit by clinicians_view; obligations: log_access",
          'permit clinicians_view "Clinicians view health records for care" '
          f'(clinic.policy:{rule_line("clinicians_view")})', "because Duty of care"]),
        ("{name: c, request: {}, expect: permit, by: clerk_contacts}",
         ["expected: permit by clerk_contacts", "not among the reasons: clerk_contacts"]),
        ("{name: c, request: {}, expect: permit, obligations: [notify]}",
         ["expected: permit; obligations: notify", "obligations: missing notify; not expected log_access"]),
        ("{name: c, request: {purpose: marketing}, expect: permit}",
         ["actual:   deny by no_marketing", "because UK GDPR Art. 21(3)"]),
        ("{name: c, request: {requester: {role: clerk}}, expect: permit}",
         ["actual:   deny (no rule applied); obligations: none", "near misses:", "clinicians_view (", "role"]),
    ],
    ids=["decision", "by", "obligations", "deny reason", "near misses"],
)
def test_a_failure_shows_expected_actual_and_the_explanation(run, case, shown):
    report = run(f"  - {case}\n")
    text = render_text(report)
    assert text.startswith(f"FAIL {report.files[0].path}:{FIRST_CASE_LINE} c\n")
    for line in shown:
        assert line in text
    assert "summary: " in text


def test_defaults_merge_deeply_under_each_request(run):
    report = run("""\
  - name: the doctor keeps the default agency and adds consent
    request:
      requester: {role: doctor}
      action: share
      purpose: referral
      context: {consent: given}
    expect: permit
    by: referral_with_consent
    obligations: [notify, record_decision, log_access]
""")
    (result,) = report.results
    assert result.passed, render_text(report)
    assert result.case.request["requester"] == {"role": "doctor", "agency": "clinic"}
    assert result.case.request["context"] == {"date": "2025-06-01", "consent": "given"}


@pytest.mark.parametrize(
    ("keyword", "selected"),
    [
        (None, ["Nurse views", "nurse shares", "Clerk views", "case 4"]),
        ("nurse", ["Nurse views", "nurse shares"]),
        ("NURSE", ["Nurse views", "nurse shares"]),
        ("views", ["Nurse views", "Clerk views"]),
        ("surgeon", []),
    ],
)
def test_keyword_selects_cases_by_name_ignoring_case(run, keyword, selected):
    report = run("""\
  - {name: Nurse views, request: {}, expect: permit}
  - {name: nurse shares, request: {action: share}, expect: deny}
  - {name: Clerk views, request: {requester: {role: clerk}}, expect: deny}
  - {request: {}, expect: permit}
""", keyword=keyword)
    assert [r.case.name for r in report.results] == selected
    assert report.keyword == keyword


def test_an_invalid_request_fails_only_its_case_and_shows_the_error(run):
    report = run("""\
  - {name: before, request: {}, expect: permit}
  - name: an undeclared role
    request:
      requester: {role: surgeon}
    expect: permit
  - {name: after, request: {}, expect: permit}
""")
    before, invalid, after = report.results
    assert (before.passed, invalid.passed, after.passed) == (True, False, True)
    (error,) = invalid.errors
    assert (error.kind, error.field) == ("invalid_request", "requester.role")
    assert "surgeon" in error.message
    assert error.line == FIRST_CASE_LINE + 3  # the line of `requester:` in the case
    text = render_text(report)
    assert f"FAIL {invalid.case.path}:{FIRST_CASE_LINE + 1} an undeclared role" in text
    assert f"error: {invalid.case.path}:{FIRST_CASE_LINE + 3}: requester.role: {error.message}" in text


def test_a_mistake_in_a_case_fails_it_without_deciding(run):
    report = run("""\
  - {name: a typo, request: {}, expct: permit}
  - {name: fine, request: {}, expect: permit}
""")
    typo, fine = report.results
    assert (typo.passed, typo.decision, fine.passed) == (False, None, True)
    assert [e.message for e in typo.errors] == ["unknown case field `expct`", "the case has no `expect`"]
    text = render_text(report)
    assert f"error: {typo.case.path}:{FIRST_CASE_LINE}: unknown case field `expct`" in text
    assert "help: did you mean `expect`?" in text


def test_an_expected_obligation_the_set_never_names_gets_a_hint(run):
    report = run("  - name: c\n    request: {}\n    expect: permit\n    obligations: [log_acess]\n")
    (result,) = report.results
    assert not result.passed
    assert [(e.message, e.help, e.line) for e in result.errors] == [
        ("no rule or policy-wide obligation is called `log_acess`", "did you mean `log_access`?",
         FIRST_CASE_LINE + 3)]
    text = render_text(report)
    assert f"note: {result.case.path}:{FIRST_CASE_LINE + 3}: no rule or policy-wide obligation" in text


def test_coverage_counts_rules_among_the_reasons_of_passing_cases(policy):
    report = run_test_files(policy, [CLINIC / "clinic.test.yaml"])
    coverage = report.coverage
    assert [r.rule for r in coverage.covered] == [
        "clinicians_view", "referral_with_consent", "clerk_contacts", "no_marketing"]
    assert [(r.rule, r.line) for r in coverage.uncovered] == [("emergency_access", rule_line("emergency_access"))]
    assert (coverage.total, coverage.percent) == (5, 80.0)
    text = render_text(report)
    assert "rule coverage: 4/5 rules (80.0%)" in text
    assert f"  emergency_access  clinic.policy:{rule_line('emergency_access')}" in text


def test_a_failing_case_covers_no_rule(run):
    report = run("  - {name: c, request: {}, expect: permit, obligations: []}\n")
    assert report.coverage.covered == ()
    assert report.coverage.percent == 0.0


@pytest.mark.parametrize(
    ("minimum", "exit_code"),
    [(None, 0), (0, 0), (79.9, 0), (80, 0), (80.1, 1), (100, 1)],
)
def test_coverage_minimum_fails_the_run_below_it(policy, minimum, exit_code):
    report = run_test_files(policy, [CLINIC / "clinic.test.yaml"])
    assert report.exit_code(minimum) == exit_code
    below = "rule coverage 80.0% is below the minimum of" in render_text(report, coverage_min=minimum)
    assert below == bool(exit_code)


def test_test_files_run_in_the_order_given_and_a_broken_one_does_not_stop_the_rest(policy, tmp_path):
    broken = tmp_path / "a.test.yaml"
    broken.write_text("cases:\n  - name: x\n    request: {requester: {role: nurse}\n", encoding="utf-8")
    report = run_test_files(policy, [broken, CLINIC / "clinic.test.yaml"])
    assert [f.path for f in report.files] == [str(broken), str(CLINIC / "clinic.test.yaml")]
    assert (report.passed, report.failed, report.exit_code()) == (6, 0, 2)
    problem = report.files[0].problem
    assert str(problem).startswith(f"{broken}:3:14: not valid YAML")
    text = render_text(report)
    assert f"ERROR {broken}:3:14: not valid YAML" in text
    assert text.splitlines()[-2:] == ["1 test file could not be loaded", "6 passed, 0 failed"]


@pytest.mark.parametrize(
    ("cases", "closing"),
    [
        ("  - {name: a, request: {}, expect: permit}\n", "1 passed, 0 failed"),
        ("  - {name: a, request: {}, expect: deny}\n", "0 passed, 1 failed"),
        ("  - {name: a, request: {}, expect: permit}\n  - {name: b, request: {}, expect: deny}\n"
         "  - {name: c, request: {}, expect: permit}\n", "2 passed, 1 failed"),
        ("  []\n", "0 passed, 0 failed"),
    ],
)
def test_the_closing_line_is_last_and_plain(run, cases, closing):
    text = render_text(run(cases), colour=True, verbose=True)
    assert text.splitlines()[-1] == closing


def test_colour_marks_pass_and_fail_but_never_the_closing_line(run):
    report = run("  - {name: a, request: {}, expect: permit}\n  - {name: b, request: {}, expect: deny}\n")
    coloured = render_text(report, colour=True, verbose=True)
    assert "\x1b[32mPASS\x1b[0m" in coloured
    assert "\x1b[31;1mFAIL\x1b[0m" in coloured
    assert "\x1b" not in coloured.splitlines()[-1]
    assert "\x1b" not in render_text(report, colour=False, verbose=True)


def test_verbose_lists_passing_cases_too(run):
    report = run("  - {name: a, request: {}, expect: permit}\n")
    assert f"PASS {report.files[0].path}:{FIRST_CASE_LINE} a" in render_text(report, verbose=True)
    assert "PASS" not in render_text(report)
