"""Reloading after a change parses only the changed files, and gives exactly what a cold load gives.

Each step edits the example policies at random (a rule added or reworded, a
syntax error, a file removed or restored, a file reverted), then loads the
set twice: once with the parses kept from the step before, once cold. Both
must give the same version, the same diagnostics word for word and place for
place, the same tree, and the same decisions.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import engine
from engine import parse_cache, pipeline, reuse, syntax
from engine.errors import PolicyLoadError, RequestError

REPO = Path(__file__).resolve().parent.parent


def _requests() -> list[dict[str, Any]]:
    found = []
    for path in sorted((REPO / "policies").glob("*.test.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        defaults = document.get("defaults", {})
        for case in document.get("cases", []):
            request = {**defaults, **case["request"]}
            for key in ("requester", "resource", "context"):
                if isinstance(defaults.get(key), dict) and isinstance(case["request"].get(key), dict):
                    request[key] = {**defaults[key], **case["request"][key]}
            found.append(json.loads(json.dumps(request, default=str)))
    return found[:40]


REQUESTS = _requests()


def _edit(rng: random.Random, root: Path, originals: dict[str, str]) -> None:
    names = sorted(originals)
    name = rng.choice(names[1:])  # the vocabulary stays
    path = root / name
    kind = rng.choice(["add_rule", "reword", "break", "remove", "revert", "revert"])
    if kind == "remove":
        path.unlink(missing_ok=True)
        return
    if kind == "revert" or not path.exists():
        path.write_text(originals[name], encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    if kind == "add_rule":
        n = rng.randrange(10_000)
        text += (f'\ndeny edit_{n} "Edit {n}" {{\n  action export\n  role {rng.choice(["gp", "social_worker"])}\n'
                 f'  when context.emergency\n  because "edited {n}"\n}}\n')
    elif kind == "reword":
        text = text.replace('because "', f'because "Reworded {rng.randrange(100)}: ', 1)
    else:
        text += "\npermit broken {\n  action\n"
    path.write_text(text, encoding="utf-8")


def _snapshot(root: Path) -> tuple[Any, ...]:
    checked = pipeline.run(root)
    diagnostics = [d.render() for d in checked.diagnostics]
    try:
        policy = engine.load(root)
    except PolicyLoadError:
        decisions = None
    else:
        decisions = [_decision(policy, request) for request in REQUESTS]
    return checked.policy_set.version, diagnostics, checked.policy_set, decisions


def _decision(policy: Any, request: dict[str, Any]) -> Any:
    try:
        answer = policy.decide(request, use_cache=False).to_dict()
    except RequestError as exc:  # a request error is part of what must match
        return type(exc).__name__, str(exc)
    answer.pop("decision_id", None)
    return answer


@pytest.mark.parametrize("seed", range(3))
def test_reload_after_random_edits_matches_a_cold_load(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "policies"
    root.mkdir()
    for source in sorted((REPO / "policies").glob("*.policy")):
        shutil.copy(source, root / source.name)
    originals = {p.name: p.read_text(encoding="utf-8") for p in root.glob("*.policy")}
    parse_cache.clear()
    pipeline.run(root)
    for _ in range(6):
        _edit(rng, root, originals)
        kept = _snapshot(root)
        parse_cache.clear()
        reuse.clear()
        cold = _snapshot(root)
        assert kept == cold


def test_only_changed_files_are_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root, ignore=shutil.ignore_patterns("*.yaml", "__*"))
    parse_cache.clear()
    pipeline.run(root)
    parsed: list[str] = []
    real = syntax.parse
    monkeypatch.setattr("engine.loader.parse", lambda source: parsed.append(Path(source.path).name) or real(source))
    changed = root / "30_adults.policy"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    pipeline.run(root)
    assert parsed == ["30_adults.policy"]
    pipeline.run(root)
    assert parsed == ["30_adults.policy"]
