"""A reload takes each unchanged rule's check, analysis and compile results again, and gives exactly what a cold load gives.

Each step edits the example policies at random (a rule's clause changed, a
rule added, removed or renamed, a vocabulary, attribute or agreement
declaration edited, the header's combining changed, an error made and later
reverted), sometimes on another day, then loads the set twice: once with
every result kept from the step before, once cold. Both must give the same
version, the same diagnostics word for word and place for place, and the
same decisions.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_reload_by_file import _snapshot as loaded_snapshot

import engine
from engine import parse_cache, pipeline, reuse
from engine.compiler import _Compiler

REPO = Path(__file__).resolve().parent.parent


def _bench_generator() -> Callable[[Path, int], None]:
    """bench/load.py's realistic sets: a vocabulary, agreements, then files of 100 rules."""
    spec = importlib.util.spec_from_file_location("bench_load", REPO / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    write: Callable[[Path, int], None] = module.write_set
    return write


write_set = _bench_generator()

RULE = re.compile(r"^(permit|deny) (\w+)[^\n]*\{\n.*?^\}\n", re.DOTALL | re.MULTILINE)


def _rules_file(rng: random.Random, root: Path) -> Path:
    return rng.choice(sorted(p for p in root.glob("*.policy") if RULE.search(p.read_text(encoding="utf-8"))))


def _sub(path: Path, pattern: str, replace: str | Callable[[re.Match[str]], str], rng: random.Random) -> None:
    """Replace one occurrence of `pattern`, chosen at random."""
    text = path.read_text(encoding="utf-8")
    found = list(re.finditer(pattern, text, re.MULTILINE | re.DOTALL))
    if found:
        match = rng.choice(found)
        new = replace(match) if callable(replace) else match.expand(replace)
        path.write_text(text[:match.start()] + new + text[match.end():], encoding="utf-8")


def _add_rule(rng: random.Random, root: Path) -> None:
    path = _rules_file(rng, root)
    n = rng.randrange(1000)
    condition = rng.choice(["context.risk_of_harm", "context.emergency", 'requester.team == "MASH"',
                            "context.records_requested > 5"])
    obligation = rng.choice(["", "  obligation notify_dpo unless context.emergency\n"])
    path.write_text(path.read_text(encoding="utf-8") + (
        f'\n{rng.choice(["permit", "deny"])} added_{n} "Added {n}" {{\n  action {rng.choice(["view", "export"])}\n'
        f'  role {rng.choice(["gp", "social_worker", "police_officer"])}\n  purpose safeguarding\n'
        f'  when {condition}\n{obligation}  because "added {n}"\n}}\n'), encoding="utf-8")


def _remove_rule(rng: random.Random, root: Path) -> None:
    _sub(_rules_file(rng, root), RULE.pattern, "", rng)


def _rename_rule(rng: random.Random, root: Path) -> None:
    _sub(_rules_file(rng, root), r"^(permit|deny) (\w+)", r"\1 \2_renamed", rng)


def _change_clause(rng: random.Random, root: Path) -> None:
    path = _rules_file(rng, root)
    _sub(path, *rng.choice([
        (r"^(  action +[\w, ]+)$", r"\1, amend"),
        (r"^(  role +[\w, ]+)$", r"\1, caldicott_guardian"),
        (r"^(  purpose +[\w., ]+)$", r"\1, research"),
        (r"up to (\w+)$", lambda m: "up to " + ("public" if m[1] == "official" else "official")),
    ]), rng)


def _edit_vocabulary(rng: random.Random, root: Path) -> None:
    path = root / "00_vocabulary.policy"
    _sub(path, *rng.choice([
        (r"actions \{ view, share, export, amend \}", "actions { view, share, export, amend, print }"),
        (r"^  data_analyst, communications_officer$", "  data_analyst, communications_officer, auditor"),
        (r"^  social_worker( +)\"", r"  case_worker\1"),  # rules naming social_worker now fail
        (r"default official_sensitive", "default official"),
        (r"^  gp( +)\"General practitioner\" at gp_practices", r'  gp\1"General practitioner"'),
        (r"classifications public < official", "classifications public < internal < official"),
        (r"combine deny-overrides", rng.choice(["combine first-applicable", "combine permit-overrides"])),
    ]), rng)


def _edit_agreement(rng: random.Random, root: Path) -> None:
    _sub(root / "10_agreements.policy", r"valid +\d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d",
         rng.choice(["valid     2020-01-01 to 2021-06-30", "valid     2024-04-01 to 2099-12-31",
                     "valid     2026-01-01 to 2025-01-01"]), rng)


def _break(rng: random.Random, root: Path) -> None:
    path = _rules_file(rng, root)
    path.write_text(path.read_text(encoding="utf-8") + rng.choice([
        "\npermit broken {\n  action\n",  # a syntax error
        ('\npermit mistyped "Mistyped" {\n  action view\n  when context.records_requested == "many"\n'
         '  because "typed"\n}\n'),  # a type error
        '\ndeny unknown_role "Unknown" {\n  role nobody\n  because "unknown"\n}\n',  # an unknown name
    ]), encoding="utf-8")


EDITS = [_add_rule, _remove_rule, _rename_rule, _change_clause, _change_clause, _edit_vocabulary,
         _edit_agreement, _break]


def _revert(rng: random.Random, root: Path, originals: dict[str, str]) -> None:
    name = rng.choice(sorted(originals))
    (root / name).write_text(originals[name], encoding="utf-8")


def _snapshot(root: Path) -> tuple[Any, ...]:
    """The set's version, its diagnostics as shown, and its decisions (as the reload-by-file test takes them)."""
    version, diagnostics, _tree, decisions = loaded_snapshot(root)
    return version, diagnostics, decisions


def _cold() -> None:
    parse_cache.clear()
    reuse.clear()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root, ignore=shutil.ignore_patterns("*.yaml", "__*"))
    return root


@pytest.mark.parametrize("seed", range(4))
def test_reload_after_random_edits_gives_what_a_cold_load_gives(
    policies: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    originals = {p.name: p.read_text(encoding="utf-8") for p in policies.glob("*.policy")}
    _cold()
    pipeline.run(policies)
    for _ in range(8):
        for _ in range(rng.choice([1, 1, 2])):
            rng.choice(EDITS)(rng, policies)
        if rng.random() < 0.3:
            _revert(rng, policies, originals)
        if rng.random() < 0.2:  # agreements expire as days pass: a reload on another day
            day = rng.choice([dt.date(2025, 6, 1), dt.date(2028, 6, 1), dt.date(2100, 1, 1)])
            monkeypatch.setattr("engine.clock.today", lambda tz=None, day=day: day)
        kept = _snapshot(policies)
        _cold()
        assert kept == _snapshot(policies)


def test_each_edit_kind_changes_the_set(policies: Path) -> None:
    # The random edits must really edit: each kind, tried a few times, changes the files.
    for edit in EDITS:
        before = {p.name: p.read_text(encoding="utf-8") for p in policies.glob("*.policy")}
        for seed in range(3):
            edit(random.Random(seed), policies)
        assert before != {p.name: p.read_text(encoding="utf-8") for p in policies.glob("*.policy")}, edit.__name__


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    root = tmp_path / "generated"
    root.mkdir()
    write_set(root, 300)  # three files of 100 rules, after the vocabulary and the agreements
    return root


def _compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The rules compiled afresh from now on, by name."""
    names: list[str] = []
    real = _Compiler.made_rule
    monkeypatch.setattr(_Compiler, "made_rule", lambda self, rule: names.append(rule.id.text) or real(self, rule))
    return names


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_a_reload_after_one_file_changed_redoes_only_its_rules(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cold()
    engine.load(generated)
    compiled = _compiled(monkeypatch)
    _append(generated / "20_rules_0001.policy", "\n# reviewed\n")
    engine.load(generated)
    assert sorted(compiled) == sorted(f"rule_{n}" for n in range(100, 200))
    assert reuse.counts() == {stage: (200, 100) for stage in
                              ("rule_names", "expressions", "rule_shape", "obligation_needs", "analysis", "compile")}


@pytest.mark.parametrize(("edit", "kept"), [
    (lambda root: None, 300),
    (lambda root: _append(root / "20_rules_0002.policy", "\n# reviewed\n"), 200),
    (lambda root: _append(root / "00_vocabulary.policy", "\n# reviewed\n"), 0),
    (lambda root: _append(root / "10_agreements.policy", "\n# reviewed\n"), 0),
    (lambda root: (root / "20_rules_0000.policy").unlink(), 200),
], ids=["nothing", "a rule file", "the vocabulary", "the agreements", "a rule file removed"])
def test_what_a_reload_takes_again(generated: Path, edit: Callable[[Path], None], kept: int) -> None:
    _cold()
    engine.load(generated)
    edit(generated)
    rules = len(engine.load(generated).rules)
    assert reuse.counts()["compile"] == (kept, rules - kept)


def test_another_day_analyses_again_but_compiles_nothing(generated: Path) -> None:
    _cold()
    policy_set = engine.load(generated).policy_set
    from engine.checker import check

    check(policy_set, today=dt.date(2001, 1, 1))
    pipeline.run(generated)
    assert reuse.counts()["analysis"] == (0, 300)
    assert reuse.counts()["compile"] == (300, 0)


def test_clear_makes_the_next_load_cold(generated: Path) -> None:
    engine.load(generated)
    reuse.clear()
    engine.load(generated)
    assert reuse.counts()["compile"] == (0, 300)
