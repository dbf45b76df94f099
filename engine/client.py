"""A typed client for the decision service, sync and async (httpx; the optional extra `client`).

    with PolicyClient("http://decisions.internal:8000", api_key="...") as client:
        decision = client.decide(request)          # an engine Decision, as the library returns
        if decision.permitted: ...

It fails closed: a timeout, a connection error or a 5xx answer becomes a
deny `ErrorDecision` (its `error` says what went wrong), never an exception an
application forgets to catch; `raise_errors=True` raises ServiceUnavailable
instead. A request the service finds invalid (422) raises RequestError naming
the field, as `Policy.decide` does. Batches longer than the service's limit
are sent in several calls and come back in order. One connection pool is kept
per client: make one client per process and share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

from engine.conditions import FALSE
from engine.decision import DENY, Decision, FailedClause, NearMiss, Obligation, Reason
from engine.errors import RequestError
from engine.plan import ALWAYS_DENIED, Plan, plan_from_dict

__all__ = [
    "DEFAULT_BATCH_LIMIT",
    "AsyncPolicyClient",
    "ErrorDecision",
    "ErrorPlan",
    "PolicyClient",
    "ServiceUnavailable",
]

DEFAULT_BATCH_LIMIT = 1000  # the service's MAX_BATCH


class ServiceUnavailable(Exception):
    """The service did not answer (with `raise_errors=True`): timeout, connection error, or a 5xx."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ErrorDecision(Decision):
    """A deny made by the client because the service could not decide; `error` says why."""

    error: str = ""


@dataclass(frozen=True)
class ErrorPlan(Plan):
    """An always_denied plan made by the client because the service could not plan; `error` says why."""

    error: str = ""


def error_decision(message: str) -> ErrorDecision:
    return ErrorDecision(decision=DENY, decision_id="", policy_version="", title=None, label=None, reasons=(),
                         obligations=(), near_misses=(),
                         summary=f"Denied because the decision service could not decide ({message}).",
                         error=message)


def error_plan(message: str) -> ErrorPlan:
    return ErrorPlan(ALWAYS_DENIED, FALSE, (), (), (), "", lambda resource: {}, error=message)


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """An engine Decision from the service's JSON."""
    policy = data.get("policy") or {}
    return Decision(
        decision=data["decision"], decision_id=data.get("decision_id", ""),
        policy_version=data.get("policy_version", ""), title=policy.get("title"), label=policy.get("version"),
        reasons=tuple(Reason(r["rule"], r["effect"], r.get("description"), r.get("because"), r.get("file", ""),
                             r.get("line", 0), tuple(r.get("missing") or ())) for r in data.get("reasons", ())),
        obligations=tuple(_obligation(o) for o in data.get("obligations", ())),
        near_misses=tuple(NearMiss(n["rule"], n.get("description"), n.get("file", ""), n.get("line", 0),
                                   tuple(FailedClause(f["clause"], f["needed"], f.get("had") or "", f["text"])
                                         for f in n.get("failed", ())))
                          for n in data.get("near_misses", ())),
        summary=data.get("summary", ""),
        denied_by=data.get("denied_by"),
    )


def _obligation(data: Mapping[str, Any]) -> Obligation:
    """An Obligation, with its `status` and `needs` (an older service sends neither: it applies)."""
    return Obligation(data["name"], tuple(data.get("args", ())), str(data.get("status", "applies")),
                      tuple(data.get("needs", ())))


class _Calls:
    """What the sync and async clients share: building calls and reading answers."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, raise_errors: bool,
                 batch_limit: int, max_connections: int):
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["X-API-Key"] = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout)
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.raise_errors = raise_errors
        self.batch_limit = batch_limit

    def failed(self, message: str, status: int | None = None) -> str:
        if self.raise_errors:
            raise ServiceUnavailable(message, status)
        return message

    def read(self, response: httpx.Response, offset: int = 0) -> Any:
        """The JSON of a 200 answer; RequestError for a 422; anything else is a failure (str)."""
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                return self.failed("the service answered with something that is not JSON", 200)
        if response.status_code == 422:
            body = _json(response)
            raise RequestError(_shift(body.get("field") or "", offset), body.get("message", "invalid request"),
                               body.get("help"))
        body = _json(response)
        message = f"HTTP {response.status_code}" + (f": {body['message']}" if body.get("message") else "")
        return self.failed(message, response.status_code)

    def exception(self, exc: Exception) -> str:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
        return self.failed(f"the decision service {kind}: {exc.__class__.__name__}")

    def chunks(self, requests: Sequence[Any]) -> list[tuple[int, Sequence[Any]]]:
        return [(start, requests[start:start + self.batch_limit])
                for start in range(0, len(requests), self.batch_limit)]

    def batch(self, answer: Any, size: int) -> list[Decision]:
        if isinstance(answer, str):
            return [error_decision(answer) for _ in range(size)]
        decisions = [decision_from_dict(d) for d in answer.get("decisions", ())]
        if len(decisions) != size:
            message = self.failed(f"the service answered {len(decisions)} decisions for {size} requests")
            return [error_decision(message) for _ in range(size)]
        return decisions


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _shift(field: str, offset: int) -> str:
    """`requests[3].purpose` of the second chunk of 1,000 is `requests[1003].purpose` of the caller's list."""
    if not offset:
        return field
    return re.sub(r"^requests\[(\d+)\]", lambda m: f"requests[{int(m.group(1)) + offset}]", field)


def _listed(requests: Iterable[Any]) -> Sequence[Any]:
    if isinstance(requests, (dict, str, bytes)):
        raise RequestError("requests", "expected a list of requests")
    return requests if isinstance(requests, Sequence) else list(requests)


class PolicyClient:
    """A blocking client; thread-safe, one connection pool. Use as a context manager or `close()`."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0,
                 raise_errors: bool = False, batch_limit: int = DEFAULT_BATCH_LIMIT, max_connections: int = 20,
                 transport: httpx.BaseTransport | None = None):
        self._calls = calls = _Calls(base_url, api_key, timeout, raise_errors, batch_limit, max_connections)
        self._http = httpx.Client(base_url=calls.base_url, headers=calls.headers, timeout=calls.timeout,
                                  limits=calls.limits, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, offset: int = 0) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            return self._calls.exception(exc)
        return self._calls.read(response, offset)

    def decide(self, request: Mapping[str, Any]) -> Decision:
        """The service's decision; a deny ErrorDecision when it could not decide."""
        answer = self._call("POST", "/decide", request)
        return error_decision(answer) if isinstance(answer, str) else decision_from_dict(answer)

    def decide_many(self, requests: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """Decisions in the order of `requests`, sent in batches of at most `batch_limit`."""
        listed = _listed(requests)
        found: list[Decision] = []
        for start, chunk in self._calls.chunks(listed):
            answer = self._call("POST", "/decide/batch", {"requests": list(chunk)}, start)
            found += self._calls.batch(answer, len(chunk))
        return found

    def plan(self, partial_request: Mapping[str, Any]) -> Plan:
        """A query plan (a request without `resource`); an always_denied ErrorPlan when it could not plan."""
        answer = self._call("POST", "/plan", partial_request)
        return error_plan(answer) if isinstance(answer, str) else plan_from_dict(answer)

    def vocabulary(self) -> dict[str, Any]:
        """Every name the served set declares (`GET /policy/vocabulary`); ServiceUnavailable when it cannot."""
        answer = self._call("GET", "/policy/vocabulary")
        if isinstance(answer, str):
            raise ServiceUnavailable(answer)
        found: dict[str, Any] = answer
        return found


class AsyncPolicyClient:
    """The same client for asyncio code; one connection pool. Use `async with` or `await aclose()`."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0,
                 raise_errors: bool = False, batch_limit: int = DEFAULT_BATCH_LIMIT, max_connections: int = 20,
                 transport: httpx.AsyncBaseTransport | None = None):
        self._calls = calls = _Calls(base_url, api_key, timeout, raise_errors, batch_limit, max_connections)
        self._http = httpx.AsyncClient(base_url=calls.base_url, headers=calls.headers, timeout=calls.timeout,
                                       limits=calls.limits, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None, offset: int = 0) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            return self._calls.exception(exc)
        return self._calls.read(response, offset)

    async def decide(self, request: Mapping[str, Any]) -> Decision:
        """The service's decision; a deny ErrorDecision when it could not decide."""
        answer = await self._call("POST", "/decide", request)
        return error_decision(answer) if isinstance(answer, str) else decision_from_dict(answer)

    async def decide_many(self, requests: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """Decisions in the order of `requests`, sent in batches of at most `batch_limit`."""
        listed = _listed(requests)
        found: list[Decision] = []
        for start, chunk in self._calls.chunks(listed):
            answer = await self._call("POST", "/decide/batch", {"requests": list(chunk)}, start)
            found += self._calls.batch(answer, len(chunk))
        return found

    async def plan(self, partial_request: Mapping[str, Any]) -> Plan:
        """A query plan (a request without `resource`); an always_denied ErrorPlan when it could not plan."""
        answer = await self._call("POST", "/plan", partial_request)
        return error_plan(answer) if isinstance(answer, str) else plan_from_dict(answer)

    async def vocabulary(self) -> dict[str, Any]:
        """Every name the served set declares (`GET /policy/vocabulary`); ServiceUnavailable when it cannot."""
        answer = await self._call("GET", "/policy/vocabulary")
        if isinstance(answer, str):
            raise ServiceUnavailable(answer)
        found: dict[str, Any] = answer
        return found
