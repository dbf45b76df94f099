import gc
import json
import shutil
import weakref
from pathlib import Path

import pytest
from conftest import SMALL_RULE, SMALL_VOCABULARY
from fastapi.testclient import TestClient

import engine
from engine.commands.main import main
from engine.loader import default_policy_dir
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


# After each load (`made`: objects it left), with the memory in use after the last full collection
# (0: none yet) and now: whether everything is collected again, whether what stays is frozen, and the
# memory in use after the last full collection then.
SETTLING = [
    pytest.param(0, 5_000, 3_000_000, (False, False), 0, id="small-sets-left-to-the-collector"),
    pytest.param(0, 2_000_000, 3_000_000, (True, True), 3_000_000, id="first-large-set-collected-and-frozen"),
    pytest.param(3_000_000, 40_000, 3_100_000, (False, True), 3_000_000, id="reload-frozen-uncollected"),
    pytest.param(3_000_000, 40_000, 4_600_000, (True, True), 4_600_000, id="memory-grown-by-half-collects-all"),
    pytest.param(3_000_000, 5_000, 4_600_000, (True, True), 4_600_000, id="even-after-a-small-reload"),
]


@pytest.mark.parametrize(("settled", "made", "blocks", "expected", "after"), SETTLING)
def test_settling_after_a_load(monkeypatch, settled, made, blocks, expected, after):
    from engine import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "_settled", settled)
    monkeypatch.setattr(pipeline.gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(pipeline.gc, "collect", lambda: calls.append("collect"))
    monkeypatch.setattr(pipeline.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(pipeline.sys, "getallocatedblocks", lambda: blocks)
    pipeline._settle(made)
    assert ("collect" in calls, "freeze" in calls) == expected
    assert calls.index("unfreeze") < calls.index("collect") if "collect" in calls else True
    assert pipeline._settled == after


def test_a_reload_frees_the_set_it_replaces_without_the_cyclic_collector(tmp_path):
    """What a reload drops is freed by reference counting alone: once frozen (pipeline._settle),
    objects held in a reference cycle would wait for a full collection of the whole set.
    With the collector off, the replaced set, its decider and the compiled conditions of the
    edited file's rules (negated ones too, and obligations' conditions) must all be gone."""
    shutil.copytree(default_policy_dir(), tmp_path / "policies")
    changed = tmp_path / "policies" / "20_children.policy"
    text = changed.read_text(encoding="utf-8")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        policy = engine.load(tmp_path / "policies")
        for n in range(2):
            tests = _compiled_tests(rule for rule in policy.compiled.rules if rule.rule.span.path == changed.name)
            assert len(tests) > 5
            watched = [weakref.ref(x) for x in (policy, policy._decider, *tests)]
            del tests
            changed.write_text(text + f"\n# edited {n}\n", encoding="utf-8")
            policy = engine.load(tmp_path / "policies")  # the old set is held while the new one loads
            kept = {id(test) for test in _compiled_tests(policy.compiled.rules)}  # shared by rules alike
            assert [w() for w in watched if w() is not None and id(w()) not in kept] == []
    finally:
        if was_enabled:
            gc.enable()


def _compiled_tests(rules):
    """The compiled when/unless tests of `rules`, and their obligations' conditions."""
    rules = list(rules)
    return [test for rule in rules for test in rule.conditions] + \
        [o.condition for rule in rules for o in rule.obligations if o.condition is not None]
