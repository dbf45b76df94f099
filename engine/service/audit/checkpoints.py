"""Signed checkpoints: each instance's latest sequence number and hash, kept apart from the trail.

A checkpoint is one JSON line `{instance, seq, hash, time, alg, mac}` where
`mac` is HMAC-SHA-256 under the audit key of the line without `mac` (plain
SHA-256 without a key, which guards against accidents, not against forgery).
`engine audit verify` checks that the trail reaches every instance's latest
checkpoint with the same hash there, so a trail cut short, emptied or with its
tail deleted is seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from engine.service.audit.entries import Hasher, canonical, timestamp


def make_checkpoint(instance: str, seq: int, digest: str, when: float, hasher: Hasher) -> bytes:
    """One checkpoint line, with its newline."""
    fields: dict[str, Any] = {"instance": instance, "seq": seq, "hash": digest, "time": timestamp(when),
                              "alg": hasher.alg}
    fields["mac"] = hasher.digest(canonical(fields).encode())
    return (canonical(fields) + "\n").encode()


class Checkpoints:
    """The latest checkpoint of each instance, and the problems found reading them."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, str]] = {}
        self.problems: list[str] = []
        self.count = 0

    def read(self, lines: Iterable[bytes], where: str, hasher: Hasher) -> None:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            self.count += 1
            try:
                fields = json.loads(line)
                mac = fields.pop("mac")
                instance, seq, digest = fields["instance"], fields["seq"], fields["hash"]
            except (ValueError, KeyError, TypeError, AttributeError):
                self.problems.append(f"{where}:{number}: not a checkpoint")
                continue
            if hasher.key and fields.get("alg") != hasher.alg:
                self.problems.append(f"{where}:{number}: checkpoint not signed with the audit key")
                continue
            if not hasher.key and fields.get("alg") != hasher.alg:
                pass  # signed with a key not given: its position is still used, unchecked
            elif hasher.digest(canonical(fields).encode()) != mac:
                self.problems.append(f"{where}:{number}: checkpoint altered or forged (its signature does not match)")
                continue
            if instance not in self.latest or seq > self.latest[instance][0]:
                self.latest[instance] = (seq, digest)
