"""Audit entries: what one line of the trail holds, and how lines are chained.

A line is one JSON object: first the chain's fields, always in this order,
`{"alg":…,"instance":…,"seq":…,"prev_hash":…,` then the entry's other fields
as canonical JSON (sorted keys, no spaces, UTF-8), then `"hash":"<64 hex>"}`
last. The hash covers exactly the bytes before it (the line without
`,"hash":"…"`, closed with `}`), so verifying a line needs neither to parse
nor to re-serialise it: the fixed header gives the chain, the hash the rest.
With an audit key the hash is HMAC-SHA-256 under the key (`alg`
"hmac-sha256"), else plain SHA-256 (`alg` "sha256").

Each writing process (an *instance*: a worker or a replica) keeps its own
chain: its entries are numbered `seq` 1, 2, 3… and each names the previous
one's hash in `prev_hash` (64 zeros for seq 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any

from engine.service.encoding import json_default

GENESIS = "0" * 64  # prev_hash of an instance's first entry
SUFFIX_LENGTH = len(',"hash":""}') + 64

# The kinds of entry: a decision answered; a request refused before deciding
# (an unknown key, an agency the key may not speak for); the trail resuming
# after it could not be written, saying what was set aside.
DECISION, REFUSAL, RECOVERED = "decision", "refusal", "recovered"


class EntryError(ValueError):
    """An entry that cannot be written as JSON text (a lone surrogate, say); only it is refused."""


class Hasher:
    """The chain's hash: HMAC-SHA-256 under the audit key, or SHA-256 without one."""

    def __init__(self, key: bytes | None):
        self.key = key
        self.alg = "hmac-sha256" if key else "sha256"

    def digest(self, body: bytes) -> str:
        if self.key:
            return hmac.digest(self.key, body, "sha256").hex()
        return hashlib.sha256(body).hexdigest()


def canonical(entry: dict[str, Any]) -> str:
    """An entry's canonical JSON text: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default)


CHAIN_FIELDS = ("alg", "instance", "seq", "prev_hash")
HEADER = re.compile(rb'\{"alg":"(sha256|hmac-sha256)","instance":"((?:[^"\\]|\\.)*)","seq":([0-9]+),'
                    rb'"prev_hash":"([0-9a-f]{64})",')


def seal(fields: dict[str, Any], hasher: Hasher) -> tuple[bytes, str]:
    """(the line's bytes with its newline, its hash) for fields that hold instance, seq and prev_hash."""
    rest = {key: value for key, value in fields.items() if key not in CHAIN_FIELDS}
    try:
        header = (f'{{"alg":"{hasher.alg}","instance":{json.dumps(fields["instance"], ensure_ascii=False)},'
                  f'"seq":{int(fields["seq"])},"prev_hash":"{fields["prev_hash"]}",')
        body = (header + canonical(rest)[1:]).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError) as err:
        raise EntryError(f"the entry cannot be written as UTF-8 JSON: {err}") from None
    digest = hasher.digest(body)
    return body[:-1] + b',"hash":"' + digest.encode() + b'"}\n', digest


def chain_of(line: bytes) -> tuple[str, str, int, str] | None:
    """(alg, instance, seq, prev_hash) from a line's fixed header, or None when it has none."""
    found = HEADER.match(line)
    if found is None:
        return None
    alg, instance, seq, prev = found.groups()
    name = instance.decode("utf-8", "replace")
    if b"\\" in instance:
        name = json.loads(b'"' + instance + b'"')
    return alg.decode(), name, int(seq), prev.decode()


def split(line: bytes) -> tuple[bytes, str] | None:
    """(the hashed body, the stated hash) of a line without its newline; None if it has no trailing hash."""
    if len(line) < SUFFIX_LENGTH + 2 or not line.endswith(b'"}') or line[-SUFFIX_LENGTH:-66] != b',"hash":"':
        return None
    return line[:-SUFFIX_LENGTH] + b"}", line[-66:-2].decode("ascii", "replace")


def timestamp(when: float) -> str:
    """An ISO 8601 UTC time with microseconds and a `Z`."""
    moment = dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def omit(request: Any, paths: Iterable[tuple[str, ...]]) -> Any:
    """The request without the attributes the operator chose to keep out of the trail."""
    if not isinstance(request, dict):
        return request
    kept = request
    for path in paths:
        kept = _without(kept, path)
    return kept


def _without(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    head = path[0]
    if head not in data:
        return data
    if len(path) == 1:
        return {key: value for key, value in data.items() if key != head}
    inner = data[head]
    if not isinstance(inner, dict):
        return data
    return {**data, head: _without(inner, path[1:])}


def applied_date(request: Any, today: str) -> Any:
    """The date the decision was made for: the request's `context.date`, else the service's today."""
    if isinstance(request, dict):
        context = request.get("context")
        if isinstance(context, dict) and "date" in context:
            return context["date"]
    return today


def decision_fields(decision: Any) -> dict[str, Any]:
    """What an entry keeps of a Decision (or of its to_dict())."""
    if isinstance(decision, dict):
        return {"decision_id": decision["decision_id"], "decision": decision["decision"],
                "reasons": [reason["rule"] for reason in decision["reasons"]],
                "obligations": decision["obligations"], "policy_version": decision["policy_version"]}
    return {"decision_id": decision.decision_id, "decision": decision.decision,
            "reasons": [reason.rule for reason in decision.reasons],
            "obligations": [obligation.to_dict() for obligation in decision.obligations],
            "policy_version": decision.policy_version}
