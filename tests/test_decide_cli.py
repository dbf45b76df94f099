import io
import json

import pytest

from conftest import VOCABULARY, request, rule
from engine.commands.main import main

REQUEST_YAML = """\
requester: {id: u-1, role: social_worker, agency: council}
action: view
resource: {category: health, classification: official, owner: nhs}
purpose: children
context: {date: 2024-06-01}
"""


@pytest.fixture
def policy_dir(tmp_path):
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "set.policy").write_text(
        'policy "CLI set" {\n  version "3"\n}\n' + VOCABULARY + rule("purpose safeguarding\nobligation audit",
                                                                    name="care"), encoding="utf-8")
    return directory


def run(capsys, *argv):
    status = main(["decide", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, without_used_set("decide", err)


def without_used_set(command: str, err: str) -> str:
    """Standard error without the line naming the policy set used (every command prints it first)."""
    first, _, rest = err.partition("\n")
    return rest if first.startswith(f"engine {command}: using ") else err


def test_prints_the_decision_as_json(capsys, tmp_path, policy_dir):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request()), encoding="utf-8")
    status, out, err = run(capsys, "--policy", policy_dir, path)
    data = json.loads(out)
    assert (status, err) == (0, "")
    assert data["decision"] == "permit" and data["policy"] == {"title": "CLI set", "version": "3"}
    assert out.startswith('{\n  "decision": "permit",\n  "decision_id": ')


def test_reads_yaml(capsys, tmp_path, policy_dir):
    path = tmp_path / "request.yaml"
    path.write_text(REQUEST_YAML, encoding="utf-8")
    status, out, _ = run(capsys, "--policy", policy_dir, path)
    assert status == 0 and json.loads(out)["reasons"][0]["rule"] == "care"


@pytest.mark.parametrize("text", [json.dumps(request({"purpose": "research"})), REQUEST_YAML.replace(
    "children", "research")], ids=["json", "yaml"])
def test_reads_standard_input_and_exits_0_on_deny(capsys, monkeypatch, policy_dir, text):
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    status, out, _ = run(capsys, "--policy", policy_dir, "-")
    assert status == 0 and json.loads(out)["decision"] == "deny"


def test_explain_prints_text_for_a_caseworker(capsys, monkeypatch, policy_dir):
    monkeypatch.setattr("sys.stdin", io.StringIO(REQUEST_YAML.replace("children", "research")))
    status, out, _ = run(capsys, "--policy", policy_dir, "--explain", "-")
    assert status == 0
    assert out.startswith("DENY\n\nDenied: no rule permits social_worker at council to view health data owned by "
                          "nhs for research; the nearest rule, care, fails on purpose.\n")
    assert "No rule applied." in out
    assert "  care (set.policy:" in out  # files shown relative to the policy root
    assert "    x purpose: needs safeguarding, request has research\n" in out


def test_explain_lists_rules_and_obligations(capsys, tmp_path, policy_dir):
    path = tmp_path / "request.yaml"
    path.write_text(REQUEST_YAML, encoding="utf-8")
    status, out, _ = run(capsys, "--policy", policy_dir, "--explain", path)
    assert status == 0
    assert "Decided by:\n  permit care\n    because: test\n" in out
    assert "You must:\n  - audit\n" in out


def test_invalid_request_exits_1_naming_the_field(capsys, monkeypatch, policy_dir):
    monkeypatch.setattr("sys.stdin", io.StringIO(REQUEST_YAML.replace("social_worker", "socal_worker")))
    status, out, err = run(capsys, "--policy", policy_dir, "-")
    assert (status, out) == (1, "")
    assert err == "invalid request: requester.role: unknown role `socal_worker` (did you mean `social_worker`?)\n"


@pytest.mark.parametrize("text", ["[1, 2]", "just words", ""], ids=["list", "text", "empty"])
def test_a_request_that_is_not_an_object_exits_1(capsys, monkeypatch, policy_dir, text):
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    status, _, err = run(capsys, "--policy", policy_dir, "-")
    assert status == 1 and err.startswith("invalid request: expected a request object")


def test_unreadable_request_file_exits_2(capsys, tmp_path, policy_dir):
    status, out, err = run(capsys, "--policy", policy_dir, tmp_path / "missing.json")
    assert (status, out) == (2, "")
    assert err == f"error: {tmp_path / 'missing.json'}: cannot be read (No such file or directory)\n"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", '{"action": ', "not valid JSON: Expecting value"),
    ("bad.yaml", "requester: [", "not valid YAML"),
], ids=["json", "yaml"])
def test_unparsable_request_file_exits_2(capsys, tmp_path, policy_dir, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    status, _, err = run(capsys, "--policy", policy_dir, path)
    assert status == 2 and message in err and str(path) in err


def test_policy_with_errors_exits_2_with_diagnostics(capsys, tmp_path):
    (tmp_path / "bad.policy").write_text("actions { view }\npermit p {\n  action veiw\n}\n", encoding="utf-8")
    status, out, err = run(capsys, "--policy", tmp_path, "-")
    assert (status, out) == (2, "")
    assert "bad.policy:3:10: error: unknown action `veiw`" in err and "Traceback" not in err


def test_missing_policy_directory_exits_2(capsys, tmp_path):
    status, _, err = run(capsys, "--policy", tmp_path / "nowhere", "-")
    assert status == 2 and "no such file or directory" in err


def test_default_policy_is_the_example_set(capsys, monkeypatch):
    example = {"requester": {"role": "social_worker", "agency": "manchester_cs"}, "action": "view",
               "resource": {"category": "health", "classification": "official", "owner": "mft"},
               "purpose": "marketing", "context": {"date": "2025-06-01"}}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(example)))
    status, out, _ = run(capsys, "-")
    assert status == 0 and json.loads(out)["decision"] == "deny"


@pytest.mark.parametrize(("name", "text", "where"), [
    ("twice.json", '{"action": "view",\n "purpose": "care",\n "action": "share"}', ":3:2: the key `action` appears twice"),
    ("nested.json", '{"requester": {"role": "gp", "role": "nurse"}}', ":1:30: the key `role` appears twice"),
    ("twice.yaml", "action: view\npurpose: care\naction: share\n", ":3:1: the key `action` appears twice"),
], ids=["json", "json-nested", "yaml"])
def test_a_key_given_twice_is_refused_naming_it(capsys, tmp_path, policy_dir, name, text, where):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    status, out, err = run(capsys, "--policy", policy_dir, path)
    assert (status, out) == (2, "")
    assert f"{path}{where}" in err
