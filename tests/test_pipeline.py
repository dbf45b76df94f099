import json
import shutil
from pathlib import Path

import pytest
from conftest import SMALL_RULE, SMALL_VOCABULARY
from fastapi.testclient import TestClient

import engine
from engine.commands.main import main
from engine.service.app import create_app

VOCABULARY, RULE = SMALL_VOCABULARY, SMALL_RULE
OTHER = RULE.replace("permit r", "permit s")
EXAMPLES = Path(__file__).resolve().parent.parent / "policies"

# Broken sets, and the (file, line, code) of every error each door must report.
BROKEN = [
    pytest.param({"a": VOCABULARY.replace("actions { view }", "actions { view } &"), "b": RULE},
                 [("a.policy", 1, "policy_parse_error")], id="syntax-error-hides-its-echoes"),
    pytest.param({"a": VOCABULARY, "b": RULE.replace("{\n", "{{\n", 1), "c": "permit s {\n role\n}\n"},
                 [("b.policy", 1, "policy_parse_error"), ("c.policy", 3, "policy_parse_error")],
                 id="syntax-errors-in-two-files"),
    pytest.param({"a": VOCABULARY, "b": RULE.replace("role gp", "role g"),
                  "c": OTHER.replace("action view", "action edit")},
                 [("b.policy", 2, "unknown_name"), ("c.policy", 3, "unknown_name")], id="unknown-names-in-two-files"),
    pytest.param({"a": VOCABULARY, "b": RULE, "c": RULE}, [("c.policy", 1, "duplicate_name")], id="duplicate-rule"),
    pytest.param({"a": VOCABULARY, "b": RULE.replace("action view", 'action view\n  when requester.age > "x"')},
                 [("b.policy", 4, "unknown_attribute")], id="unknown-attribute"),
    pytest.param({"a": VOCABULARY, "b": RULE.replace("because", "becuse"), "c": OTHER.replace("role gp", "role nurse")},
                 [("b.policy", 4, "policy_parse_error")], id="syntax-error-beside-a-meaning-error"),
]


@pytest.fixture
def root(policy_files):
    return policy_files(a=VOCABULARY, b=RULE)


@pytest.fixture
def reload_client(root):
    with TestClient(create_app(root, admin_token="s3cret", watch=False)) as client:
        yield client


def where(diagnostics: list[dict]) -> list[tuple[str, int, str]]:
    return [(Path(d["location"]["file"]).name, d["location"]["line"], d["code"]) for d in diagnostics]


@pytest.mark.parametrize(("files", "expected"), BROKEN)
def test_every_door_reports_the_same_diagnostics(files, expected, root, reload_client, policy_files, capsys):
    policy_files(**files)

    with pytest.raises(engine.PolicyLoadError) as raised:
        engine.load(root)
    library = [d.to_json() for d in raised.value.diagnostics]
    assert where(library) == expected

    assert engine.check_path(root).errors == raised.value.diagnostics

    assert main(["check", str(root), "--format", "json"]) == 1
    checked = json.loads(capsys.readouterr().out)
    assert [d for d in checked["diagnostics"] if d["severity"] == "error"] == library

    refused = reload_client.post("/policy/reload", headers={"Authorization": "Bearer s3cret"})
    assert refused.status_code == 409
    assert refused.json()["diagnostics"] == library

    assert main(["doc", str(root)]) == 2
    assert capsys.readouterr().err == raised.value.render() + "\nthe policy set has errors: no document written\n"


def test_one_stray_character_in_the_examples_is_one_error(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "policies", ignore=shutil.ignore_patterns("*.yaml", "*.py"))
    vocabulary = tmp_path / "policies" / "00_vocabulary.policy"
    vocabulary.write_text(vocabulary.read_text(encoding="utf-8").replace("\n", "\n&", 1), encoding="utf-8")
    with pytest.raises(engine.PolicyLoadError) as raised:
        engine.load(tmp_path / "policies")
    assert [d.code for d in raised.value.diagnostics] == ["policy_parse_error"]


# After each load (`made`: objects it left), with (made since the last full collection, what that one left)
# before it: whether everything is collected again, and whether what stays is frozen.
SETTLING = [
    pytest.param((0, 0), 5_000, (False, False), (5_000, 0), id="small-sets-left-to-the-collector"),
    pytest.param((0, 0), 2_000_000, (True, True), (0, 900), id="first-large-set-collected-and-frozen"),
    pytest.param((0, 1_700_000), 40_000, (False, True), (40_000, 1_700_000), id="reload-frozen-uncollected"),
    pytest.param((1_690_000, 1_700_000), 40_000, (True, True), (0, 900), id="a-sets-worth-made-collects-all"),
    pytest.param((0, 1_700_000), 2_000_000, (True, True), (0, 900), id="a-larger-set-collects-all"),
]


@pytest.mark.parametrize(("before", "made", "expected", "after"), SETTLING)
def test_settling_after_a_load(monkeypatch, before, made, expected, after):
    from engine import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "_made", before[0])
    monkeypatch.setattr(pipeline, "_settled", before[1])
    monkeypatch.setattr(pipeline.gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(pipeline.gc, "collect", lambda: calls.append("collect"))
    monkeypatch.setattr(pipeline.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(pipeline.gc, "get_objects", lambda: [None] * 900)
    pipeline._settle(made)
    assert ("collect" in calls, "freeze" in calls) == expected
    assert calls.index("unfreeze") < calls.index("collect") if "collect" in calls else True
    assert (pipeline._made, pipeline._settled) == after
