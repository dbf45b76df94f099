import asyncio
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.commands.main import main
from engine.service.audit import GENESIS, AuditLog, AuditUnavailable, EntryError, verify
from engine.service.audit.checkpoints import make_checkpoint
from engine.service.audit.entries import Hasher, seal, split

KEY = b"correct horse battery staple"
WRONG = Hasher(b"a guess at the key")


def _decision(number: int, outcome: str = "permit") -> dict:
    return {
        "decision": outcome,
        "decision_id": f"d-{number}",
        "policy_version": "sha256:00000000000000aa",
        "reasons": [{"rule": "child_protection", "effect": outcome}],
        "obligations": [{"name": "audit", "args": []}],
    }


def _request(number: int) -> dict:
    return {"requester": {"role": "social_worker", "agency": "council", "id": f"u-{number}", "team": "north"},
            "resource": {"id": f"child-{number % 2}", "owner": "nhs", "category": "health"},
            "action": "view", "purpose": "safeguarding.children", "context": {"date": "2025-06-01"}}


def _write_log(path: Path, count: int, key: bytes | None = KEY, caller: str | None = "case-system",
               **options) -> AuditLog:
    log = AuditLog(path, key=key, **options)
    futures = [log.record(caller, _request(number), _decision(number)) for number in range(1, count + 1)]
    log.close()
    assert all(future.exception() is None for future in futures)
    return log


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.audit.jsonl"
    _write_log(path, 6)
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(path)]


def _verify(path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    status = main(["audit", "verify", str(path), *extra])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_AUDIT_KEY", KEY.decode())


# --- what an entry holds -------------------------------------------------------------------


def test_entries_carry_instance_sequence_date_and_a_keyed_chain(trail: Path) -> None:
    entries = _entries(trail)
    assert [entry["seq"] for entry in entries] == [1, 2, 3, 4, 5, 6]
    assert len({entry["instance"] for entry in entries}) == 1
    assert entries[0]["prev_hash"] == GENESIS
    for before, entry in itertools.pairwise(entries):
        assert entry["prev_hash"] == before["hash"]
    first = entries[0]
    assert first["kind"] == "decision" and first["alg"] == "hmac-sha256"
    assert first["date"] == "2025-06-01" and first["policy_version"] == "sha256:00000000000000aa"
    assert first["caller"] == "case-system" and first["reasons"] == ["child_protection"]
    body, digest = split(_lines(trail)[0].rstrip(b"\n"))
    assert Hasher(KEY).digest(body) == digest != Hasher(None).digest(body)


def test_an_intact_trail_verifies_with_its_key_and_checkpoints(trail: Path, capsys, keyed) -> None:
    status, output = _verify(trail, capsys)
    assert status == 0, output
    assert "6 entries verified (1 instance, 1 checkpoint)" in output


def test_a_keyed_trail_without_the_key_is_not_called_intact(trail: Path, capsys) -> None:
    status, output = _verify(trail, capsys)
    assert status == 1
    assert "give it (ENGINE_AUDIT_KEY or --key-file)" in output


def test_the_key_may_come_from_a_file(trail: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    assert _verify(trail, capsys, "--key-file", str(tmp_path / "key"))[0] == 0


def test_with_a_key_and_no_checkpoints_verify_fails(trail: Path, capsys, keyed) -> None:
    Path(f"{trail}.checkpoints").unlink()
    status, output = _verify(trail, capsys)
    assert status == 1 and "no checkpoints found" in output


def test_checkpoints_may_live_elsewhere(tmp_path: Path, capsys, keyed) -> None:
    path, elsewhere = tmp_path / "trail.jsonl", tmp_path / "other" / "checkpoints"
    elsewhere.parent.mkdir()
    _write_log(path, 3, checkpoints=str(elsewhere))
    assert not Path(f"{path}.checkpoints").exists()
    assert _verify(path, capsys)[0] == 1
    assert _verify(path, capsys, "--checkpoints", str(elsewhere))[0] == 0


@pytest.mark.parametrize("make", [lambda p: p / "missing.jsonl"], ids=["missing"])
def test_an_unreadable_trail_exits_2(tmp_path: Path, capsys, make) -> None:
    status, output = _verify(make(tmp_path), capsys)
    assert status == 2 and "cannot read" in output


# --- tampering -------------------------------------------------------------------------------


def _forge(fields: dict, hasher: Hasher = WRONG) -> bytes:
    fields = {key: value for key, value in fields.items() if key != "hash"}
    return seal({**fields, "alg": "hmac-sha256"}, hasher)[0]


def _rechain(entries: list[dict], start: int, hasher: Hasher = WRONG) -> list[bytes]:
    """Lines for entries[start:] re-hashed in turn, as someone rewriting the chain would."""
    lines, previous = [], entries[start - 1]["hash"] if start else GENESIS
    for entry in entries[start:]:
        line, previous = seal({**{k: v for k, v in entry.items() if k != "hash"}, "prev_hash": previous}, hasher)
        lines.append(line)
    return lines


def _edit(lines: list[bytes], index: int, **change) -> dict:
    return {**json.loads(lines[index]), **change}


def rehash_last(lines: list[bytes]) -> list[bytes]:
    return lines[:-1] + [_forge(_edit(lines, -1, decision="deny"))]


def edit_and_rechain(lines: list[bytes]) -> list[bytes]:
    entries = [json.loads(line) for line in lines]
    entries[2]["caller"] = "someone-else"
    return lines[:2] + _rechain(entries, 2)


def append_forged(lines: list[bytes]) -> list[bytes]:
    last = json.loads(lines[-1])
    return lines + [_forge({**last, "seq": last["seq"] + 1, "prev_hash": last["hash"], "decision_id": "forged"})]


def forge_whole_chain(lines: list[bytes]) -> list[bytes]:
    entries = [{**json.loads(line), "instance": "forger"} for line in lines]
    return lines + _rechain(entries, 0)


def rewrite_without_key(lines: list[bytes]) -> list[bytes]:
    entries = [{**json.loads(line), "alg": "sha256", "decision": "deny"} for line in lines]
    out, previous = [], GENESIS
    for entry in entries:
        line, previous = seal({**{k: v for k, v in entry.items() if k != "hash"}, "prev_hash": previous}, Hasher(None))
        out.append(line)
    return out


def duplicate_key(lines: list[bytes]) -> list[bytes]:
    line = lines[2]
    return lines[:2] + [line.replace(b'"decision":"permit"', b'"decision":"permit","decision":"deny"', 1)] + lines[3:]


TAMPERINGS: list[tuple[str, Callable[[list[bytes]], list[bytes]]]] = [
    ("re-hash an edited last line", rehash_last),
    ("edit a line, re-chain every later one", edit_and_rechain),
    ("append a forged entry", append_forged),
    ("forge a whole chain", forge_whole_chain),
    ("rewrite the trail with plain hashes", rewrite_without_key),
    ("empty the file", lambda lines: []),
    ("truncate the tail", lambda lines: lines[:-2]),
    ("cut the last line short", lambda lines: lines[:-1] + [lines[-1][:40]]),
    ("edit a field", lambda lines: lines[:2] + [lines[2].replace(b'"permit"', b'"deny"', 1)] + lines[3:]),
    ("delete a middle line", lambda lines: lines[:2] + lines[3:]),
    ("delete the first line", lambda lines: lines[1:]),
    ("reorder two lines", lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:]),
    ("duplicate a line", lambda lines: lines[:3] + [lines[2]] + lines[3:]),
    ("a duplicate JSON key in a line", duplicate_key),
    ("replace a line with garbage", lambda lines: lines[:2] + [b"not json at all\n"] + lines[3:]),
]


@pytest.mark.parametrize("tamper", [t for _, t in TAMPERINGS], ids=[name for name, _ in TAMPERINGS])
def test_every_tampering_is_detected_with_the_key_and_checkpoints(trail: Path, capsys, keyed, tamper) -> None:
    trail.write_bytes(b"".join(tamper(_lines(trail))))
    status, output = _verify(trail, capsys)
    assert status == 1, output
    assert "NOT intact" in output


def test_a_forged_checkpoint_is_detected(trail: Path, capsys, keyed) -> None:
    checkpoints = Path(f"{trail}.checkpoints")
    point = json.loads(checkpoints.read_bytes())
    trail.write_bytes(b"".join(_lines(trail)[:-2]))
    point.update(seq=4, hash=_entries(trail)[-1]["hash"])
    checkpoints.write_text(json.dumps(point) + "\n")
    status, output = _verify(trail, capsys)
    assert status == 1 and "checkpoint altered or forged" in output


# Without a key, anyone who can write the file can re-hash what they change:
# only changes that leave the chain or the (unsigned) checkpoints broken are seen.
UNKEYED_DETECTED = {
    "re-hash an edited last line": False,
    "edit a line, re-chain every later one": False,
    "append a forged entry": False,
    "forge a whole chain": False,
    "empty the file": True,
    "truncate the tail": True,
    "cut the last line short": True,
    "edit a field": True,
    "delete a middle line": True,
    "delete the first line": True,
    "reorder two lines": True,
    "duplicate a line": True,
    "a duplicate JSON key in a line": True,
    "replace a line with garbage": True,
}


@pytest.mark.parametrize(("name", "detected"), sorted(UNKEYED_DETECTED.items()))
def test_what_is_and_is_not_detected_without_a_key(tmp_path: Path, capsys, name: str, detected: bool) -> None:
    path = tmp_path / "plain.jsonl"
    _write_log(path, 6, key=None)
    tamper = dict(TAMPERINGS)[name]
    plain = Hasher(None)
    forged = [line.replace(b'"alg":"hmac-sha256"', b'"alg":"sha256"') for line in tamper(_lines(path))]
    # Re-hash what a forger would re-hash, and re-sign the checkpoints to match,
    # with the plain hash anyone can compute.
    if not detected:
        forged = _rehash_plain(forged, plain)
        ends = {entry["instance"]: entry for entry in map(json.loads, forged)}
        Path(f"{path}.checkpoints").write_bytes(b"".join(
            make_checkpoint(instance, entry["seq"], entry["hash"], 0.0, plain) for instance, entry in ends.items()))
    path.write_bytes(b"".join(forged))
    status, output = _verify(path, capsys)
    assert status == (1 if detected else 0), output


def _rehash_plain(lines: list[bytes], plain: Hasher) -> list[bytes]:
    out, chains = [], {}
    for line in lines:
        entry = {k: v for k, v in json.loads(line).items() if k != "hash"}
        entry["prev_hash"] = chains.get(entry["instance"], entry["prev_hash"])
        sealed, chains[entry["instance"]] = seal(entry, plain)
        out.append(sealed)
    return out


# --- writing: nothing lost, one bad entry alone refused, failures fail closed ----------------


def test_one_unwritable_entry_takes_no_other_with_it(tmp_path: Path, capsys, keyed) -> None:
    path = tmp_path / "trail.jsonl"
    log = AuditLog(path, key=KEY)
    good = [log.record("c", _request(number), _decision(number)) for number in range(3)]
    bad = log.record("c", {"requester": {"team": "\ud800"}}, _decision(99))
    good += [log.record("c", _request(number), _decision(number)) for number in range(3, 6)]
    log.close()
    assert isinstance(bad.exception(), EntryError)
    assert all(future.exception() is None for future in good)
    assert [entry["decision_id"] for entry in _entries(path)] == [f"d-{n}" for n in range(6)]
    assert _verify(path, capsys)[0] == 0


class FlakySink:
    """A file sink that fails while `broken` is set, as a full disk does."""

    def __init__(self, path: Path):
        from engine.service.audit.filesink import FileSink

        self.inner = FileSink(path)
        self.broken = False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def append(self, data: bytes) -> str | None:
        if self.broken and data:
            raise OSError(28, "No space left on device")
        return self.inner.append(data)


def test_a_failed_write_refuses_then_recovers_by_itself(tmp_path: Path, capsys) -> None:
    path = tmp_path / "trail.jsonl"
    sink = FlakySink(path)
    log = AuditLog(sink)

    async def scenario() -> list[str]:
        seen = []
        await log.commit("c", _request(1), _decision(1))
        sink.broken = True
        for number in (2, 3):
            try:
                await log.commit("c", _request(number), _decision(number))
                seen.append("written")
            except AuditUnavailable as err:
                seen.append(f"refused: {err}")
        assert not log.available and "No space left" in (log.problem or "")
        sink.broken = False
        for _ in range(40):
            if log.available:
                break
            await asyncio.sleep(0.1)
        await log.commit("c", _request(4), _decision(4))
        return seen

    seen = asyncio.run(scenario())
    log.close()
    assert all(item.startswith("refused") for item in seen)
    entries = _entries(path)
    assert [entry["kind"] for entry in entries] == ["decision", "recovered", "decision"]
    assert "No space left" in entries[1]["note"] and "1 entries were not written" in entries[1]["note"]
    assert [entry["decision_id"] for entry in entries if entry["kind"] == "decision"] == ["d-1", "d-4"]
    assert _verify(path, capsys)[0] == 0


def test_a_broken_last_line_is_set_aside_and_said_so(trail: Path, capsys, keyed) -> None:
    with trail.open("ab") as handle:
        handle.write(b'{"decision_id": "half a li')
    _write_log(trail, 2)
    entries = _entries(trail)
    recovered = [entry for entry in entries if entry["kind"] == "recovered"]
    assert len(recovered) == 1 and "moved to" in recovered[0]["note"]
    assert b"half a li" in Path(f"{trail}.quarantine").read_bytes()
    assert len(entries) == 9
    assert _verify(trail, capsys)[0] == 0


def test_an_empty_batch_is_answered_at_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "trail.jsonl")

    async def empty() -> None:
        await asyncio.wait_for(log.commit_many("c", [], []), 5)

    asyncio.run(empty())
    assert log.record_many("c", [], []).result(5) is None
    log.close()
    assert (tmp_path / "trail.jsonl").read_bytes() == b""


def test_refusals_are_entries_of_their_own(tmp_path: Path, capsys) -> None:
    path = tmp_path / "trail.jsonl"
    log = AuditLog(path)
    log.record_refusal("portal", "agency_not_allowed", "this key may not speak for police", field="requester.agency",
                       request={"requester": {"agency": "police"}})
    log.close()
    (entry,) = _entries(path)
    assert entry["kind"] == "refusal" and entry["code"] == "agency_not_allowed" and entry["caller"] == "portal"
    assert _verify(path, capsys)[0] == 0


def test_attributes_left_out_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "trail.jsonl"
    log = AuditLog(path, omit_paths=["requester.team", "context.note", "nowhere.at_all"])
    request = {**_request(1), "context": {"date": "2025-06-01", "note": "free text about a child"}}
    log.record("c", request, _decision(1))
    log.close()
    written = path.read_text()
    assert "north" not in written and "free text" not in written
    assert _entries(path)[0]["request"]["requester"]["id"] == "u-1"


def test_every_process_keeps_its_own_chain_in_a_shared_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "shared.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    for number in range(10):
        (first if number % 2 else second).record("w", _request(number), _decision(number)).result(5)
    first.close()
    second.close()
    assert {entry["instance"] for entry in _entries(path)} == {first.instance, second.instance}
    status, output = _verify(path, capsys)
    assert status == 0 and "10 entries verified (2 instances" in output


def test_the_in_memory_verify_keeps_its_shape(trail: Path) -> None:
    lines = _lines(trail)
    assert verify(b"".join(lines), KEY) == (6, [])
    count, problems = verify(b"".join(lines[:2] + lines[3:]), KEY)
    assert count == 5 and problems[0][0] == 3 and "removed" in problems[0][1]


# --- rotation -------------------------------------------------------------------------------


def test_rotation_by_size_keeps_one_chain_across_files(tmp_path: Path, capsys, keyed) -> None:
    path = tmp_path / "decisions.jsonl"
    log = AuditLog(path, key=KEY, rotate_bytes=2000)
    for number in range(12):
        log.record("c", _request(number), _decision(number)).result(5)
    log.close()
    rotated = sorted(tmp_path.glob("decisions.jsonl.2*"))
    assert len(rotated) >= 2
    assert all(file.stat().st_size <= 2000 for file in rotated)
    assert _verify(path, capsys)[0] == 0, "the live file with its rotated predecessors"
    status, output = _verify(tmp_path, capsys)
    assert status == 0 and "12 entries verified" in output
    rotated[0].unlink()  # an older file removed: the chain no longer starts at the first entry
    assert _verify(tmp_path, capsys)[0] == 1


@pytest.mark.parametrize("how", ["rename", "copytruncate"])
def test_external_rotation_is_followed(tmp_path: Path, capsys, keyed, how: str) -> None:
    path = tmp_path / "decisions.jsonl"
    log = AuditLog(path, key=KEY)
    log.start()
    log.record("c", _request(1), _decision(1)).result(5)
    if how == "rename":
        os.rename(path, tmp_path / "decisions.jsonl.1")
    else:
        (tmp_path / "decisions.jsonl.1").write_bytes(path.read_bytes())
        os.truncate(path, 0)
    log.reopen()
    log.record("c", _request(2), _decision(2)).result(5)
    log.close()
    assert _entries(path)[0]["seq"] == 2, "the chain continues rather than restarting from zeros"
    assert _entries(path)[0]["prev_hash"] == _entries(tmp_path / "decisions.jsonl.1")[0]["hash"]
    status, output = _verify(tmp_path, capsys)
    assert status == 0 and "2 entries verified" in output, output
