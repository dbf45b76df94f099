import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.commands.main import main
from engine.commands.test import wants_colour

FIXTURES = Path(__file__).parent / "fixtures" / "testing"
CLINIC = FIXTURES / "clinic"
ROOT = Path(__file__).parent.parent

FAILING = """\
defaults:
  requester: {role: nurse, agency: clinic}
  action: view
  resource: {category: health, classification: official, owner: clinic}
  purpose: treatment
cases:
  - {name: nurse views for treatment, request: {}, expect: permit}
  - {name: nurse is refused for treatment, request: {}, expect: deny}
  - {name: surgeon views, request: {requester: {role: surgeon}}, expect: permit}
"""
BAD_YAML = "cases:\n  - name: a\n    request: {requester: {role: nurse}\n"
NOT_A_MAPPING = "- name: a\n  request: {}\n  expect: permit\n"


@pytest.fixture
def policies(tmp_path):
    """A copy of the clinic set and its passing tests; add more test files with write()."""
    root = tmp_path / "policies"
    shutil.copytree(CLINIC, root)

    def write(name: str, text: str) -> Path:
        path = root / name
        path.write_text(text, encoding="utf-8")
        return path

    write.root = root
    return write


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out, without_used_set("test", err)


def without_used_set(command: str, err: str) -> str:
    """Standard error without the line naming the policy set used (every command prints it first)."""
    first, _, rest = err.partition("\n")
    return rest if first.startswith(f"engine {command}: using ") else err


@pytest.mark.parametrize(
    ("extra_files", "args", "exit_code", "closing"),
    [
        ({}, [], 0, "6 passed, 0 failed"),
        ({"more.test.yaml": FAILING}, [], 1, "7 passed, 2 failed"),
        ({"more.test.yaml": FAILING}, ["-k", "for treatment"], 1, "2 passed, 1 failed"),
        ({"more.test.yaml": FAILING}, ["-k", "views"], 1, "3 passed, 1 failed"),
        ({"more.test.yaml": FAILING}, ["-k", "clerk"], 0, "2 passed, 0 failed"),
        ({"bad.test.yaml": BAD_YAML}, [], 2, "6 passed, 0 failed"),
        ({"bad.test.yaml": NOT_A_MAPPING}, [], 2, "6 passed, 0 failed"),
        ({"bad.test.yaml": BAD_YAML, "more.test.yaml": FAILING}, [], 2, "7 passed, 2 failed"),
        ({}, ["--coverage-min", "80"], 0, "6 passed, 0 failed"),
        ({}, ["--coverage-min", "80.5"], 1, "6 passed, 0 failed"),
        ({}, ["-k", "surgeon"], 2, "0 passed, 0 failed"),
        ({}, ["-k", "surgeon", "--coverage-min", "50"], 2, "0 passed, 0 failed"),
    ],
    ids=["all pass", "a case fails", "keyword with a failure", "keyword", "keyword all pass",
         "bad yaml", "top level not a mapping", "bad yaml and a failure", "coverage met", "coverage short",
         "keyword matches nothing", "keyword matches nothing, coverage asked"],
)
def test_exit_status_and_closing_line(capsys, policies, extra_files, args, exit_code, closing):
    for name, text in extra_files.items():
        policies(name, text)
    code, out, err = run(capsys, str(policies.root), *args)
    assert code == exit_code
    assert out.splitlines()[-1] == closing
    assert "Traceback" not in out + err


def test_a_policy_set_that_does_not_load_exits_2_with_its_diagnostics(capsys):
    code, out, err = run(capsys, str(FIXTURES / "broken_policy"))
    assert code == 2
    assert "broken.policy:12:17: error: unexpected `surgeon`" in err
    assert "    role    nurse surgeon" in err
    assert "Traceback" not in out + err
    assert out == ""


def test_a_missing_policy_directory_exits_2(capsys, tmp_path):
    code, out, err = run(capsys, str(tmp_path / "nowhere"))
    assert code == 2
    assert "no such file or directory" in err


def test_an_unloadable_test_file_is_reported_and_the_rest_still_run(capsys, policies):
    bad = policies("a_bad.test.yaml", BAD_YAML)
    top = policies("b_top.test.yaml", NOT_A_MAPPING)
    code, out, _ = run(capsys, str(policies.root))
    assert code == 2
    assert f"ERROR {bad}:3:14: not valid YAML: the `{{` here is never closed" in out
    assert f"ERROR {top}:1:1: the top level is not a mapping" in out
    assert out.splitlines()[-2:] == ["2 test files could not be loaded", "6 passed, 0 failed"]


def test_failures_are_shown_with_their_line_and_passes_only_when_verbose(capsys, policies):
    more = policies("more.test.yaml", FAILING)
    _, out, _ = run(capsys, str(policies.root))
    assert f"FAIL {more}:8 nurse is refused for treatment\n  expected: deny\n" in out
    assert f"FAIL {more}:9 surgeon views\n  error: {more}:9: requester.role: " in out
    assert "PASS" not in out
    _, verbose, _ = run(capsys, str(policies.root), "-v")
    assert f"PASS {more}:7 nurse views for treatment\n" in verbose
    assert f"PASS {policies.root / 'clinic.test.yaml'}:8 nurse views a health record for treatment\n" in verbose


def test_coverage_is_listed_and_a_short_minimum_says_so(capsys, policies):
    code, out, _ = run(capsys, str(policies.root), "--coverage-min", "90")
    assert code == 1
    lines = out.splitlines()
    assert lines[-5:] == [
        "rule coverage: 4/5 rules (80.0%)",
        "rules no passing case made decide:",
        "  emergency_access  clinic.policy:73",
        "rule coverage 80.0% is below the minimum of 90%",
        "6 passed, 0 failed",
    ]


@pytest.mark.parametrize("minimum", ["-1", "100.5"])
def test_a_coverage_minimum_outside_0_to_100_is_refused(capsys, policies, minimum):
    code, _, err = run(capsys, str(policies.root), "--coverage-min", minimum)
    assert code == 2
    assert "--coverage-min must be between 0 and 100" in err


def test_output_is_plain_when_not_a_terminal(capsys, policies):
    policies("more.test.yaml", FAILING)
    _, out, _ = run(capsys, str(policies.root), "-v")
    assert "\x1b[" not in out


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "environ", "colour"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, False),
        (False, {"NO_COLOR": "1"}, False),
        (True, {"TERM": "xterm"}, True),
    ],
    ids=["terminal", "piped", "NO_COLOR", "NO_COLOR empty", "piped and NO_COLOR", "other variables"],
)
def test_colour_only_on_a_terminal_without_no_color(tty, environ, colour):
    assert wants_colour(_Stream(tty), environ) is colour


def test_junit_xml_parses_and_counts_the_same_cases(capsys, policies, tmp_path):
    more = policies("more.test.yaml", FAILING)
    junit = tmp_path / "junit.xml"
    _, out, _ = run(capsys, str(policies.root), "--junit", str(junit))
    assert out.splitlines()[-1] == "7 passed, 2 failed"
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "2", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(policies.root / "clinic.test.yaml"), str(more)]
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("6", "0"), ("3", "2")]
    cases = root.iter("testcase")
    assert sum(1 for _ in cases) == 9
    failed = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("name"), c.get("classname"), c.get("line")) for c in failed] == [
        ("nurse is refused for treatment", str(more), "8"), ("surgeon views", str(more), "9")]
    refused = failed[0].find("failure")
    assert refused.get("message").startswith("expected deny; got permit by clinicians_view")
    assert "because Duty of care" in refused.text
    surgeon = failed[1].find("failure")
    assert surgeon.get("type") == "invalid_request"
    assert surgeon.get("message").startswith("requester.role: ")


def test_junit_xml_shows_a_test_file_that_could_not_load(capsys, policies, tmp_path):
    bad = policies("bad.test.yaml", BAD_YAML)
    junit = tmp_path / "junit.xml"
    code, _, _ = run(capsys, str(policies.root), "--junit", str(junit))
    assert code == 2
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "0", "1")
    (error,) = root.iter("error")
    assert error.get("message").startswith("not valid YAML")
    assert error.text.startswith(f"{bad}:3:14: ")


def test_a_junit_file_that_cannot_be_written_is_said_plainly(capsys, policies, tmp_path):
    code, _, err = run(capsys, str(policies.root), "--junit", str(tmp_path / "missing" / "junit.xml"))
    assert code == 2
    assert err.startswith(f"engine test: cannot write {tmp_path / 'missing' / 'junit.xml'}: ")


def test_json_format_reports_cases_coverage_and_totals(capsys, policies):
    more = policies("more.test.yaml", FAILING)
    code, out, _ = run(capsys, str(policies.root), "--format", "json", "--coverage-min", "50")
    assert code == 1
    report = json.loads(out)
    assert report["totals"] == {"passed": 7, "failed": 2, "files": 2, "files_not_loaded": 0}
    assert report["exit_code"] == 1
    assert len(report["cases"]) == 9
    refused = report["cases"][7]
    assert {k: refused[k] for k in ("name", "file", "line", "status")} == {
        "name": "nurse is refused for treatment", "file": str(more), "line": 8, "status": "failed"}
    assert refused["expected"] == {"decision": "deny", "by": [], "obligations": None, "undetermined": None}
    assert refused["actual"] == {"decision": "permit", "reasons": ["clinicians_view"], "obligations": ["log_access"],
                                 "undetermined": []}
    assert refused["error"] is None
    assert refused["explanation"]["decision"] == "permit"
    surgeon = report["cases"][8]
    assert (surgeon["actual"], surgeon["error"]["field"], surgeon["error"]["line"]) == (None, "requester.role", 9)
    assert report["coverage"] == {
        "covered": 4, "total": 5, "percent": 80.0, "minimum": 50.0, "ok": True,
        "uncovered": [{"rule": "emergency_access", "effect": "permit",
                       "file": "clinic.policy", "line": 73}],
    }


def test_json_format_reports_a_policy_set_that_does_not_load(capsys):
    code, out, _ = run(capsys, str(FIXTURES / "broken_policy"), "--format", "json")
    assert code == 2
    report = json.loads(out)
    (diagnostic,) = report["error"]["diagnostics"]
    assert diagnostic["location"]["line"] == 12
    assert report["exit_code"] == 2


def test_one_test_file_runs_against_the_set_beside_it(capsys, policies):
    more = policies("more.test.yaml", FAILING)
    code, out, _ = run(capsys, str(more))
    assert code == 1
    assert out.splitlines()[-1] == "1 passed, 2 failed"


def test_without_a_path_policies_here_is_used(capsys, policies, monkeypatch):
    policies("more.test.yaml", FAILING)
    monkeypatch.chdir(policies.root.parent)
    code, out, _ = run(capsys)
    assert code == 1
    assert "FAIL policies/more.test.yaml:8 nurse is refused for treatment" in out
    assert out.splitlines()[-1] == "7 passed, 2 failed"


def test_the_example_set_and_its_tests_run_when_asked_for(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--example", "-v")
    cases = [line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert cases and all(line.split()[1].startswith("policies/") for line in cases)
    assert code in (0, 1)


def test_keyword_says_coverage_counts_only_the_selected_cases(capsys, policies):
    _, out, _ = run(capsys, str(policies.root), "-k", "clerk")
    assert "rule coverage: 1/5 rules (20.0%)\n  (counting only the cases whose name contains `clerk`)\n" in out


@pytest.mark.parametrize(
    ("test_files", "args", "said"),
    [
        ({}, [], "no test files (*.test.yaml) found: nothing was tested"),
        ({"empty.test.yaml": "cases: []\n"}, [], "the test files hold no cases: nothing was tested"),
        ({"clinic.test.yaml": FAILING}, ["-k", "midwife"], "no case name contains `midwife`: nothing was tested"),
    ],
    ids=["no test files", "no cases", "keyword matches nothing"],
)
def test_a_run_that_tests_nothing_says_so_and_fails(capsys, tmp_path, test_files, args, said):
    shutil.copy(CLINIC / "clinic.policy", tmp_path)
    for name, text in test_files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, str(tmp_path), *args)
    assert code == 2
    assert out.splitlines() == [said, "", "0 passed, 0 failed"]


def test_python_dash_m_engine_test_runs_in_a_fresh_process(policies):
    policies("more.test.yaml", FAILING)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "engine", "test", str(policies.root)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "7 passed, 2 failed"
    assert "\x1b[" not in done.stdout  # piped: plain
    assert done.stderr == f"engine test: using {policies.root} ({done.stderr.split('(')[-1]}"
