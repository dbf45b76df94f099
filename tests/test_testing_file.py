from pathlib import Path

import pytest

from engine.testing.cases import deep_merge, read_test_file

RULES = {"clinicians_view", "no_marketing", "clerk_contacts"}

GOOD_CASE = """\
  - name: nurse views
    request: {requester: {role: nurse}}
    expect: permit
"""


def read(tmp_path: Path, text: str):
    path = tmp_path / "t.test.yaml"
    path.write_text(text, encoding="utf-8")
    return read_test_file(path, "t.test.yaml", RULES)


@pytest.mark.parametrize(
    ("base", "over", "expected"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"r": {"role": "x", "agency": "y"}}, {"r": {"role": "z"}}, {"r": {"role": "z", "agency": "y"}}),
        ({"c": {"d": {"e": 1, "f": 2}}}, {"c": {"d": {"f": 3}}}, {"c": {"d": {"e": 1, "f": 3}}}),
        ({"r": {"role": "x"}}, {"r": "flat"}, {"r": "flat"}),
        ({"r": "flat"}, {"r": {"role": "x"}}, {"r": {"role": "x"}}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
    ],
    ids=["adds", "case wins", "nested merge", "deeply nested", "scalar replaces map", "map replaces scalar",
         "lists replace"],
)
def test_deep_merge(base, over, expected):
    assert deep_merge(base, over) == expected


def test_deep_merge_leaves_its_inputs_alone():
    base = {"r": {"role": "x"}}
    deep_merge(base, {"r": {"agency": "y"}})
    assert base == {"r": {"role": "x"}}


def test_defaults_merge_under_each_request_and_dates_become_text(tmp_path):
    test_file = read(tmp_path, """\
defaults:
  requester: {role: nurse, agency: clinic}
  context: {date: 2025-06-01}
cases:
  - name: one
    request: {requester: {role: doctor}, context: {emergency: true}}
    expect: permit
""")
    (case,) = test_file.cases
    assert case.request == {
        "requester": {"role": "doctor", "agency": "clinic"},
        "context": {"date": "2025-06-01", "emergency": True},
    }
    assert case.line == 5
    assert case.line_of("requester.role") == 6
    assert case.line_of("requester.agency") == 2
    assert case.line_of("resource.owner") == 5


@pytest.mark.parametrize(
    ("case_text", "message", "line", "help"),
    [
        ("  - name: a\n    request: {}\n    expect: permit\n    expct: deny\n",
         "unknown case field `expct`", 4, "did you mean `expect`?"),
        ("  - request: {}\n    expect: permit\n", "the case has no `name`", 1, None),
        ("  - name: a\n    expect: permit\n", "the case has no `request`", 1, None),
        ("  - name: a\n    request: {}\n", "the case has no `expect`", 1, None),
        ("  - name: a\n    request: {}\n    expect: allow\n",
         "`expect` must be permit or deny, not `allow`", 3, None),
        ("  - name: a\n    request: {}\n    expect: permt\n",
         "`expect` must be permit or deny, not `permt`", 3, "did you mean `permit`?"),
        ("  - name: a\n    request: {}\n    expect: permit\n    by: clinician_view\n",
         "`by` names `clinician_view`, which is not a rule of the policy set", 4,
         "did you mean `clinicians_view`?"),
        ("  - name: a\n    request: {}\n    expect: permit\n    by:\n      - clinicians_view\n      - no_marketting\n",
         "`by` names `no_marketting`, which is not a rule of the policy set", 6, "did you mean `no_marketing`?"),
        ("  - name: a\n    request: {}\n    expect: permit\n    by: {rule: x}\n",
         "`by` must be a rule id or a list of rule ids", 4, None),
        ("  - name: a\n    request: [role, nurse]\n    expect: permit\n",
         "`request` must be a mapping of request fields", 2, None),
        ("  - name: a\n    request: {}\n    expect: permit\n    obligations: {audit: 1}\n",
         "`obligations` must be a list of obligation names", 4, None),
        ("  - name: a\n    request: {}\n    expect: permit\n    expect: deny\n",
         "`expect` is given twice in one mapping", 4, "the second would silently win; keep one"),
        ("  - name: a\n    request:\n      requester: {role: nurse, role: doctor}\n    expect: permit\n",
         "`role` is given twice in one mapping", 3, "the second would silently win; keep one"),
        ("  - just a string\n", "a case must be a mapping with `name`, `request` and `expect`", 1, None),
    ],
    ids=["unknown field", "no name", "no request", "no expect", "wrong expect", "misspelt expect",
         "by unknown rule", "by list unknown rule", "by not a name", "request not a mapping",
         "obligations not a list", "duplicate field", "duplicate request field", "case not a mapping"],
)
def test_a_mistake_in_a_case_is_recorded_on_it_with_its_line(tmp_path, case_text, message, line, help):
    test_file = read(tmp_path, "cases:\n" + GOOD_CASE + case_text)
    assert test_file.problem is None
    good, bad = test_file.cases
    assert good.problems == ()
    assert [p.message for p in bad.problems] == [message]
    (problem,) = bad.problems
    assert (problem.path, problem.line) == ("t.test.yaml", line + 4)
    assert problem.help == help


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("cases:\n  - name: a\n    request: {requester: {role: nurse}\n    expect: permit\n",
         "not valid YAML: the `{` here is never closed", 3, 14),
        ("cases:\n  - name: a\n\t- name: b\n", "not valid YAML: a tab in the indentation", 3, 1),
        ("- name: a\n  request: {}\n  expect: permit\n", "the top level is not a mapping", 1, 1),
        ("just words\n", "the top level is not a mapping", 1, 1),
        ("", "the file is empty", 1, 1),
        ("defaults: {}\n", "no `cases` list", 1, 1),
        ("case:\n  - name: a\n", "unknown top-level field `case`", 1, 1),
        ("cases: {name: a}\n", "`cases` must be a list of cases", 1, 8),
        ("defaults: [a]\ncases: []\n", "`defaults` must be a mapping of request fields", 1, 11),
        ("cases: []\n---\ncases: []\n", "not valid YAML: but found another document", 2, 1),
        ("defaults: {}\ndefaults: {}\ncases: []\n", "`defaults` is given twice", 2, 1),
        ("defaults: {context: {date: 2025-06-01, date: 2025-06-02}}\ncases: []\n", "`date` is given twice", 1, 40),
    ],
    ids=["unclosed brace", "tab indent", "top-level list", "top-level scalar", "empty", "no cases",
         "misspelt cases", "cases not a list", "defaults not a mapping", "two documents",
         "duplicate top-level field", "duplicate default"],
)
def test_a_file_that_cannot_load_names_its_line_and_column(tmp_path, text, message, line, column):
    test_file = read(tmp_path, text)
    assert test_file.cases == ()
    assert message in test_file.problem.message
    assert (test_file.problem.line, test_file.problem.column) == (line, column)
    assert str(test_file.problem).startswith(f"t.test.yaml:{line}:{column}: ")


def test_empty_cases_list_is_a_file_without_cases(tmp_path):
    test_file = read(tmp_path, "cases: []\n")
    assert (test_file.problem, test_file.cases) == (None, ())


def test_yaml_anchors_and_merge_keys_work_in_requests(tmp_path):
    test_file = read(tmp_path, """\
cases:
  - name: one
    request: &base {requester: {role: nurse}, action: view}
    expect: permit
  - name: two
    request:
      <<: *base
      action: share
    expect: deny
""")
    one, two = test_file.cases
    assert (one.problems, two.problems) == ((), ())
    assert two.request == {"requester": {"role": "nurse"}, "action": "share"}


def test_a_file_that_is_not_utf8_cannot_load(tmp_path):
    path = tmp_path / "t.test.yaml"
    path.write_bytes(b"cases: []\n# \xff\n")
    assert "not UTF-8" in read_test_file(path, "t.test.yaml", RULES).problem.message


def test_quoted_and_plain_scalars_keep_their_own_types(tmp_path):
    test_file = read(tmp_path, """\
cases:
  - name: one
    request:
      context: {a: "true", b: true, c: "2025-06-01", d: 2025-06-01, e: "12", f: 12}
    expect: permit
  - name: two
    request:
      context: {a: true, b: "true", e: 12, f: "12"}
    expect: permit
""")
    one, two = test_file.cases
    assert one.request["context"] == {"a": "true", "b": True, "c": "2025-06-01", "d": "2025-06-01",
                                      "e": "12", "f": 12}
    assert two.request["context"] == {"a": True, "b": "true", "e": 12, "f": "12"}
