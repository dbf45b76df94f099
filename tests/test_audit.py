import json
from pathlib import Path

import pytest

from engine.service.audit import GENESIS, AuditError, AuditLog, canonical, entry_hash, verify
from engine.commands.main import main


def _decision(number: int, outcome: str = "permit") -> dict:
    return {
        "decision": outcome,
        "decision_id": f"d-{number}",
        "policy_version": "sha256:00000000000000aa",
        "policy": None,
        "reasons": [{"rule": "child_protection", "effect": outcome, "description": None,
                     "because": "Children Act 1989 s.47", "file": "a.policy", "line": 3}],
        "obligations": [{"name": "audit", "args": []}],
        "near_misses": [],
        "summary": "…",
    }


def _request(number: int) -> dict:
    return {"requester": {"role": "social_worker", "agency": "council", "id": f"u-{number}"}, "action": "view"}


def _write_log(path: Path, count: int, caller: str | None = "case-system") -> None:
    log = AuditLog(path)
    log.start()
    for number in range(1, count + 1):
        log.record(caller, _request(number), _decision(number))
    log.close()


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.audit.jsonl"
    _write_log(path, 6)
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _verify(path: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    status = main(["audit", "verify", str(path)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_entries_are_chained_canonical_json_lines(trail: Path) -> None:
    entries = [json.loads(line) for line in _lines(trail)]
    assert len(entries) == 6
    assert entries[0]["prev_hash"] == GENESIS
    for before, entry in zip(entries, entries[1:]):
        assert entry["prev_hash"] == before["hash"]
    first = entries[0]
    assert set(first) == {"decision_id", "time", "caller", "request", "decision", "reasons", "obligations",
                          "policy_version", "prev_hash", "hash"}
    assert first["caller"] == "case-system"
    assert first["reasons"] == ["child_protection"]
    assert first["obligations"] == [{"name": "audit", "args": []}]
    assert first["time"].endswith("Z")
    assert first["hash"] == entry_hash(first)
    assert _lines(trail)[0] == canonical(first) + "\n"


def test_intact_trail_verifies(trail: Path, capsys: pytest.CaptureFixture) -> None:
    status, output = _verify(trail, capsys)
    assert status == 0
    assert "6 entries verified" in output


def test_empty_trail_verifies(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert _verify(path, capsys) == (0, f"{path}: 0 entries verified\n")


def _altered(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["decision"] = "deny"
    return lines[:2] + [json.dumps(entry, sort_keys=True) + "\n"] + lines[3:]


def _altered_and_rehashed(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["caller"] = "someone-else"
    entry["hash"] = entry_hash(entry)
    return lines[:2] + [canonical(entry) + "\n"] + lines[3:]


def _forged(lines: list[str]) -> list[str]:
    before = json.loads(lines[1])
    forged = {**json.loads(lines[2]), "decision_id": "forged", "prev_hash": before["hash"]}
    forged["hash"] = entry_hash(forged)
    return lines[:2] + [canonical(forged) + "\n"] + lines[2:]


@pytest.mark.parametrize(
    ("tamper", "line", "words"),
    [
        (_altered, 3, "altered"),
        (_altered_and_rehashed, 4, "line 3 was altered"),
        (lambda lines: lines[:2] + lines[3:], 3, "removed"),
        (lambda lines: lines[1:], 1, "removed"),
        (_forged, 3, "inserted"),
        (lambda lines: lines[:3] + [lines[1]] + lines[3:], 4, "repeats line 2"),
        (lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:], 3, "out of order"),
        (lambda lines: [lines[1], lines[0]] + lines[2:], 1, "out of order"),
        (lambda lines: lines[:2] + ["not json at all\n"] + lines[3:], 3, "altered"),
        (lambda lines: lines[:-1] + [lines[-1].rstrip("\n")], 6, "newline"),
    ],
    ids=["altered", "altered-rehashed", "removed", "first-removed", "inserted", "duplicated",
         "reordered", "first-two-swapped", "garbage", "truncated"],
)
def test_tampered_trail_names_the_line(trail: Path, capsys: pytest.CaptureFixture, tamper, line: int,
                                       words: str) -> None:
    trail.write_text("".join(tamper(_lines(trail))), encoding="utf-8")
    status, output = _verify(trail, capsys)
    assert status == 1
    assert f"{trail}:{line}: " in output
    assert words in output
    assert "NOT intact" in output


@pytest.mark.parametrize("make", [lambda p: p / "missing.jsonl", lambda p: p], ids=["missing", "directory"])
def test_unreadable_trail_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, make) -> None:
    status, output = _verify(make(tmp_path), capsys)
    assert status == 2
    assert "cannot read" in output


def test_reopening_continues_the_chain(trail: Path, capsys: pytest.CaptureFixture) -> None:
    _write_log(trail, 3, caller=None)
    entries = [json.loads(line) for line in _lines(trail)]
    assert len(entries) == 9
    assert entries[6]["prev_hash"] == entries[5]["hash"]
    assert entries[8]["caller"] is None
    assert _verify(trail, capsys)[0] == 0


def test_two_writers_share_one_chain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "shared.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    for number in range(10):
        (first if number % 2 else second).record("w", _request(number), _decision(number))
        (first if number % 2 else second)._write(list((first if number % 2 else second)._drain()))
    first.close()
    second.close()
    assert _verify(path, capsys) == (0, f"{path}: 10 entries verified\n")


def test_a_trail_ending_in_a_broken_line_is_not_continued(trail: Path) -> None:
    with trail.open("a", encoding="utf-8") as handle:
        handle.write('{"decision_id": "half a li')
    with pytest.raises(AuditError, match="engine audit verify"):
        AuditLog(trail)


def test_close_without_start_writes_what_was_queued(tmp_path: Path) -> None:
    path = tmp_path / "unstarted.jsonl"
    log = AuditLog(path)
    log.record(None, _request(1), _decision(1, "deny"))
    log.close()
    count, problems = verify(path.read_bytes())
    assert (count, problems) == (1, [])
