"""`POST /decide` itself: from a request's headers and body bytes to the JSON of its decision.

Both ways in call `Deciding.answer`: the FastAPI route (engine/service/app.py)
and the fast lane in front of the application (engine/service/fastpath.py),
so they cannot differ in what they check, count, trace or audit. In order:

1. the caller, by API key (401);
2. the body: UTF-8 JSON (415), within the size limit (413), parsed (400),
   an object (422);
3. the policy set served (503 before one is loaded, 409 for another
   X-Policy-Revision);
4. admission (engine/service/admission.py): bounded Unicode strings, the
   caller's agencies (403), `context.date` set to the service's date (422 if
   sent without leave);
5. the decision, its duration observed, audited (when on), counted and traced;
   refusals in steps 1–4 and the engine's 422 are counted by error code.

Steps 2 to 4 depend only on the body's bytes, the caller, the service's date
and the policy set, so for a body seen lately `AdmittedBodies` gives back the
request admitted then instead of parsing and checking it again (a cache hit
costs a dictionary look-up; parsing and admitting a typical request, about
30 µs). Refused bodies are never kept, so every refusal is answered (and
audited) afresh; with an audit trail on nothing is kept, each entry records
its own request. Each answer is a new decision with its own `decision_id`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import Headers

from engine.errors import RequestError
from engine.service.bodies import check_json_headers, parse_json, require_object
from engine.service.errors import ApiError

Reader = Callable[[int], Awaitable[bytes]]  # reads the whole body, given the size limit


class AdmittedBodies:
    """Recent request bodies and what admission made of them, for one policy set at a time.

    Keyed by (body bytes, caller, date): admission depends on nothing else but
    the policy set, and the entries are dropped when the set changes. Bounded:
    bodies over `max_body` bytes are not kept, and the whole map is emptied
    when it holds `max_entries` (the busy bodies come straight back).
    """

    def __init__(self, max_entries: int = 4096, max_body: int = 4096) -> None:
        self.max_entries = max_entries
        self.max_body = max_body
        self._policy: Any = None
        self._entries: dict[tuple[bytes, str | None, str], dict[str, Any]] = {}

    def get(self, policy: Any, body: bytes, caller: str | None, today: str) -> dict[str, Any] | None:
        """The request admitted for this body, caller and date under `policy`, if it is kept."""
        if policy is not self._policy:
            return None
        return self._entries.get((body, caller, today))

    def put(self, policy: Any, body: bytes, caller: str | None, today: str, admitted: dict[str, Any]) -> None:
        """Keep an admitted request (never changed afterwards: it is handed to every later answer)."""
        if len(body) > self.max_body:
            return
        if policy is not self._policy or len(self._entries) >= self.max_entries:
            self._entries = {}
            self._policy = policy
        self._entries[(body, caller, today)] = admitted

    def __len__(self) -> int:
        return len(self._entries)


def cache_hits(policy: Any) -> int:
    """The policy's decision-cache hits so far."""
    return int(policy.cache_stats()["hits"])


class Deciding:
    """What `POST /decide` does for one request, whichever way it came in."""

    def __init__(self, service: Any, bodies: AdmittedBodies | None = None) -> None:
        self.service = service
        self.bodies = bodies if bodies is not None else AdmittedBodies()
        # Whether the cache answered is worked out only for a span: reading the
        # cache's counters costs as much as a cached decision.
        self.tracing = service.telemetry.tracer is not None

    async def answer(self, headers: Headers, read: Reader) -> bytes:
        """The JSON bytes of the decision; ApiError or RequestError (counted by code) when refused."""
        service = self.service
        try:
            caller = service.keys.caller(headers)
            check_json_headers(headers, service.max_body)
            raw = await read(service.max_body)
            policy, request = self._admitted(raw, caller, headers)
            hits = cache_hits(policy) if self.tracing else None
            started = time.time_ns()
            decision = policy.decide(request)
        except (ApiError, RequestError) as err:
            service.metrics.reject(err.code)
            raise
        ended = time.time_ns()
        cached = None if hits is None else cache_hits(policy) > hits
        service.metrics.latency["decide"].observe((ended - started) / 1e9)
        if service.audit is not None:
            await service.audited(policy, caller, [request], [decision])
        service.record(decision, request, caller, cached, started, ended, service.telemetry.parent(headers))
        text: str = service.encoder.encode(decision)
        return text.encode()

    def _admitted(self, raw: bytes, caller: str | None, headers: Headers) -> tuple[Any, dict[str, Any]]:
        """The policy to decide with and the admitted request (steps 2 to 4 above)."""
        service = self.service
        keep = service.audit is None
        if keep:
            today = service.admission.today()
            known = self.bodies.get(service.holder.policy, raw, caller, today)
            if known is not None:
                # The body parsed and was admitted before: only the policy's own refusals remain.
                return service.current(headers), known
        body = require_object(parse_json(raw), "a decision request")
        policy = service.current(headers)
        today = service.admission.today()
        request: dict[str, Any] = service.admission.admit(body, caller, policy, today, service.audit)
        if keep:
            self.bodies.put(policy, raw, caller, today, request)
        return policy, request
