import datetime as dt
import gc
import os

import pytest

import engine
from conftest import VOCABULARY, request, rule
from engine import ast
from engine.symbols import Vocabulary

EXAMPLE_REQUEST = {
    "requester": {"id": "u-17", "role": "social_worker", "agency": "manchester_cs"},
    "action": "share",
    "resource": {"id": "r-9", "category": "health", "classification": "official_sensitive", "owner": "mft"},
    "purpose": "safeguarding.children.child_protection",
    "context": {"date": "2025-06-01", "risk_of_harm": True},
}


@pytest.fixture(scope="module")
def example():
    return engine.load()


def test_the_example_policies_load_and_decide(example):
    decision = example.decide(EXAMPLE_REQUEST)
    assert decision.decision == "permit" and decision.permitted
    assert decision.reasons[0].rule == "child_protection_enquiry"
    assert decision.reasons[0].file.endswith(".policy") and "/" not in decision.reasons[0].file


def test_policy_describes_itself(example):
    assert example.version.startswith("sha256:") and len(example.version) == len("sha256:") + 16
    assert example.title == "Manchester multi-agency safeguarding (example)" and example.label == "1.0"
    assert example.combine is ast.Combine.DENY_OVERRIDES
    assert example.files[0] == "00_vocabulary.policy" and example.files == sorted(example.files)
    assert all(isinstance(r, ast.Rule) for r in example.rules) and example.rules
    assert isinstance(example.vocabulary, Vocabulary)
    assert example.loaded_at.tzinfo == dt.timezone.utc
    assert all(not d.is_error for d in example.warnings)


def test_decide_many_in_order(example):
    other = {**EXAMPLE_REQUEST, "purpose": "marketing"}
    decisions = example.decide_many([EXAMPLE_REQUEST, other, EXAMPLE_REQUEST])
    assert [d.decision for d in decisions] == ["permit", "deny", "permit"]
    assert len({d.decision_id for d in decisions}) == 3


def test_decide_many_names_the_request_that_is_wrong(example):
    bad = {**EXAMPLE_REQUEST, "purpose": "marketting"}
    with pytest.raises(engine.RequestError) as caught:
        example.decide_many([EXAMPLE_REQUEST, EXAMPLE_REQUEST, EXAMPLE_REQUEST, bad])
    assert caught.value.field == "requests[3].purpose"
    assert caught.value.help == "did you mean `marketing`?"


@pytest.mark.parametrize(("requests", "field"), [({}, "requests"), ([[]], "requests[0]")], ids=["not a list",
                                                                                              "not an object"])
def test_decide_many_rejects_what_is_not_a_list_of_requests(example, requests, field):
    with pytest.raises(engine.RequestError) as caught:
        example.decide_many(requests)
    assert caught.value.field == field


def test_cache_stats(example):
    stats = example.cache_stats()
    assert set(stats) == {"hits", "misses", "size", "maxsize", "ttl"}
    assert (stats["maxsize"], stats["ttl"]) == (10_000, 300.0)


def test_load_options(tmp_path):
    (tmp_path / "a.policy").write_text(VOCABULARY + rule("action view"), encoding="utf-8")
    p = engine.load(tmp_path, cache_size=5, cache_ttl=1.5)
    assert (p.cache_stats()["maxsize"], p.cache_stats()["ttl"]) == (5, 1.5)
    assert p.title is None and p.label is None and p.files == ["a.policy"]
    assert p.decide(request()).permitted


def test_a_set_with_errors_raises_with_every_diagnostic(tmp_path):
    (tmp_path / "a.policy").write_text("actions { view }\npermit p {\n  action veiw\n  role nobody\n}\n",
                                       encoding="utf-8")
    with pytest.raises(engine.PolicyLoadError) as caught:
        engine.load(tmp_path)
    assert caught.value.message == "policy set has 2 errors"
    assert [d.message for d in caught.value.diagnostics] == ["unknown action `veiw`", "unknown role `nobody`"]
    assert "a.policy:3:10: error: unknown action `veiw`" in caught.value.render()


def test_a_syntax_error_is_a_load_error(tmp_path):
    (tmp_path / "a.policy").write_text("permit p {\n", encoding="utf-8")
    with pytest.raises(engine.PolicyLoadError) as caught:
        engine.load(tmp_path)
    assert caught.value.message == "policy set has 1 error"


def test_an_unreadable_path_is_a_load_error(tmp_path):
    with pytest.raises(engine.PolicyLoadError) as caught:
        engine.load(tmp_path / "nowhere")
    assert "no such file or directory" in caught.value.message
    with pytest.raises(engine.PolicyLoadError):
        engine.check_path(tmp_path / "nowhere")


def test_check_path_reports_without_raising(tmp_path):
    (tmp_path / "a.policy").write_text("actions { view }\npermit p {\n  action veiw\n}\n", encoding="utf-8")
    result = engine.check_path(tmp_path)
    assert [d.message for d in result.errors] == ["unknown action `veiw`"] and not result.ok
    assert isinstance(result.policy_set, ast.PolicySet) and isinstance(result.vocabulary, Vocabulary)


def test_check_path_of_the_examples_is_clean():
    assert engine.check_path().ok


def test_public_names():
    for name in ("load", "check_path", "Policy", "Decision", "Reason", "Obligation", "NearMiss", "FailedClause",
                 "PolicyError", "PolicyLoadError", "RequestError", "explain_text"):
        assert hasattr(engine, name), name
    assert issubclass(engine.RequestError, engine.PolicyError)
    assert issubclass(engine.PolicyLoadError, engine.PolicyError)


def test_explain_text(example):
    text = engine.explain_text(example.decide(EXAMPLE_REQUEST))
    # Roles and agencies in the words their declarations give them.
    assert text.startswith("PERMIT\n\nPermitted: social worker (children's services) at Manchester City Council - "
                           "Children's Services may share health data owned by Manchester University NHS Foundation "
                           "Trust")
    assert "  - redact (nhs_number)" in text


def test_loading_pauses_the_collector_and_restores_it():
    from engine.pipeline import loading

    assert gc.isenabled()
    with loading():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with loading():
            pass
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()


def test_decision_ids_are_32_hex_digits_and_differ_in_a_forked_worker(example):
    def new_decision_id():
        return example.decide(EXAMPLE_REQUEST).decision_id

    here = new_decision_id()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: write one id and leave at once
        os.write(writer, new_decision_id().encode())
        os._exit(0)
    os.close(writer)
    there = os.read(reader, 64).decode()
    os.waitpid(pid, 0)
    os.close(reader)
    assert len(here) == len(there) == 32 and int(here, 16) >= 0 and int(there, 16) >= 0
    assert here[:20] != there[:20]  # a fresh random prefix after the fork
