"""Verifying a trail, streaming, in memory that grows with the number of instances only.

Each line is checked on its own (the chain's header where it belongs, its
hash or HMAC matches its bytes), then against its instance's chain (the next sequence
number, naming the previous entry's hash), and at the end against the
checkpoints (every instance reaches its latest checkpoint with the same hash).
After a problem the chain is followed on from the offending line, so one
problem is reported once rather than at every later line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from engine.service.audit.checkpoints import Checkpoints
from engine.service.audit.entries import GENESIS, Hasher, chain_of, split

NEEDS_KEY = "written with an audit key: give the key (ENGINE_AUDIT_KEY) to check it"


@dataclass
class Report:
    """What verification found: problems as (where, message), and counts."""

    entries: int = 0
    bytes: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    instances: dict[str, tuple[int, str]] = field(default_factory=dict)
    checkpoints: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def parse_line(line: bytes, hasher: Hasher) -> tuple[tuple[str, int, str, str] | None, str | None]:
    """((instance, seq, prev_hash, hash), None) for a sound line, or (what could be read, what is wrong).

    Nothing is parsed as JSON: the fixed header gives the chain and the hash
    covers every other byte, so a line whose hash matches is as written.
    """
    chain, parts = chain_of(line), split(line)
    if chain is None or parts is None:
        return None, "altered: not an audit entry (no alg, instance, seq, prev_hash and hash where they belong)"
    alg, instance, seq, prev = chain
    body, stated = parts
    found = (instance, seq, prev, stated)
    if hasher.key and alg != hasher.alg:
        return found, "forged: not written with the audit key"
    if not hasher.key and alg != "sha256":
        return found, NEEDS_KEY
    if hasher.digest(body) != stated:
        return found, "altered: its content does not match its hash (edited, or a key repeated)"
    return found, None


class Verifier:
    """Feed it lines in trail order with `line()`, then `finish()` with the checkpoints."""

    def __init__(self, hasher: Hasher):
        self.hasher = hasher
        self.report = Report()
        self._where: dict[str, str] = {}
        self.needs_key = False

    def line(self, where: str, line: bytes) -> None:
        report = self.report
        report.entries += 1
        report.bytes += len(line) + 1
        entry, problem = parse_line(line, self.hasher)
        if problem is NEEDS_KEY:  # said once, at the end; the links are still followed
            self.needs_key, problem = True, None
        if problem is not None:
            report.problems.append((where, problem))
        if entry is None:
            return
        instance, seq, prev, digest = entry
        before = report.instances.get(instance)
        if problem is None:
            link = self._link(instance, seq, prev, before)
            if link:
                report.problems.append((where, link))
        report.instances[instance] = (seq, digest)
        self._where[instance] = where
        self._check_point(where, instance, seq, digest)

    def _link(self, instance: str, seq: int, prev: str, before: tuple[int, str] | None) -> str | None:
        if before is None:
            if seq == 1 and prev == GENESIS:
                return None
            return f"the entries of {instance} before it were removed (it is number {seq}, chained to an entry not here)"
        last_seq, last_hash = before
        if seq == last_seq + 1:
            if prev == last_hash:
                return None
            return (f"does not follow entry {last_seq} of {instance}: that entry was altered and re-hashed, "
                    f"or this one replaced")
        if seq == last_seq and prev != last_hash:
            return f"duplicated: it repeats entry {seq} of {instance}"
        if seq <= last_seq:
            return f"out of order: entry {seq} of {instance} comes after its entry {last_seq}"
        missing = seq - last_seq - 1
        return f"{missing} entr{'y' if missing == 1 else 'ies'} of {instance} removed before it (after number {last_seq})"

    def _check_point(self, where: str, instance: str, seq: int, digest: str) -> None:
        wanted = self._checkpoints.latest.get(instance) if self._checkpoints else None
        if wanted is not None and wanted[0] == seq and wanted[1] != digest:
            self.report.problems.append((where, (f"does not match the checkpoint of {instance} at entry {seq}: "
                                                "the chain was rewritten")))

    _checkpoints: Checkpoints | None = None

    def expect(self, checkpoints: Checkpoints) -> None:
        """Check against these checkpoints (give them before the lines)."""
        self._checkpoints = checkpoints
        self.report.checkpoints = checkpoints.count
        self.report.problems.extend(("checkpoints", problem) for problem in checkpoints.problems)

    def incomplete(self, where: str) -> None:
        self.report.problems.append((where, "incomplete: the trail does not end with a newline"))

    def finish(self, trail: str) -> Report:
        if self.needs_key:
            self.report.problems.append((trail, ("the entries are chained with an audit key: give it "
                                                "(ENGINE_AUDIT_KEY or --key-file) to check their hashes")))
        checkpoints = self._checkpoints
        if checkpoints is not None:
            for instance, (seq, _) in sorted(checkpoints.latest.items()):
                reached = self.report.instances.get(instance)
                if reached is None:
                    self.report.problems.append((trail, (f"emptied or cut short: {instance} has a checkpoint at "
                                                        f"entry {seq} but none of its entries are here")))
                elif reached[0] < seq:
                    self.report.problems.append((self._where[instance],
                                                 (f"cut short: {instance} ends at entry {reached[0]} but has a "
                                                 f"checkpoint at entry {seq}")))
        return self.report


def verify_lines(lines: Iterable[tuple[str, bytes]], hasher: Hasher, checkpoints: Checkpoints | None = None,
                 *, trail: str = "trail", missing_checkpoints: bool = False) -> Report:
    """Verify (where, line) pairs in order; a line not ending in a newline is reported incomplete.

    `missing_checkpoints`: a key was given and no checkpoints found, which is itself a problem.
    """
    verifier = Verifier(hasher)
    if checkpoints is not None:
        verifier.expect(checkpoints)
    if missing_checkpoints:
        missing = "no checkpoints found: with an audit key they are required, to see a trail cut short or emptied"
        verifier.report.problems.append(("checkpoints", missing))
    for where, line in lines:
        if line.endswith(b"\n"):
            verifier.line(where, line[:-1])
        else:
            verifier.line(where, line)
            verifier.incomplete(where)
    return verifier.finish(trail)


def numbered(path: str, handle: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(handle, 1):
        yield f"{path}:{number}", line


def verify(data: bytes, key: bytes | None = None) -> tuple[int, list[tuple[int, str]]]:
    """(number of entries, [(line number, problem)]) for a trail's bytes held in memory."""
    lines = data.splitlines(keepends=True)
    report = verify_lines(numbered("", lines), Hasher(key))
    problems = [(int(where.rsplit(":", 1)[1]), problem) for where, problem in report.problems]
    return report.entries, problems
