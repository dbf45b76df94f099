"""A FastAPI dependency for applications that ask the engine before they act.

    guard = Guard(AsyncPolicyClient(url, api_key=key), requester=current_user, obligations=obligations)

    @app.get("/cases/{case_id}")
    async def read_case(case_id: str,
                        decision: Decision = Depends(guard.require("view", "direct_care", resource=case_resource))):
        ...

`Guard.require(action, purpose, resource=...)` builds the request from the
route's request (the requester from `requester`, the resource from
`resource`, optional `context`), decides it with a loaded Policy, a
PolicyClient or an AsyncPolicyClient, and gives the route the Decision. A
deny answers 403 with the decision's summary; a decision the service could
not make (the client's ErrorDecision, failing closed) answers 503; the route
never runs in either case.

`Obligations` is the registry of what the application does for each
obligation name. A permit whose obligations the application cannot carry out
must not be acted on (a policy enforcement point, as in XACML): an
obligation without a handler, or whose handler raises, turns the answer into a
403. An obligation with `status: "undetermined"` (it needs a fact the request
did not give, docs/language.md, "How decisions are made") goes to its handler as applying, with
`needs` saying which facts. `Guard.obligation_report()` (call it at start-up)
compares the served set's obligation names with the handlers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from engine.decision import Decision, Obligation
from engine.errors import RequestError
from engine.names import obligation_names

log = logging.getLogger("engine.integrations")

RequestPart = Callable[[Request], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ObligationCall:
    """One obligation to carry out: its name and arguments, whether it is undetermined (and the
    facts it needs), the decision it came with, and the request being answered."""

    name: str
    args: tuple[Any, ...]
    undetermined: bool
    needs: tuple[str, ...]
    decision: Decision
    request: Request


Handler = Callable[[ObligationCall], None | Awaitable[None]]


@dataclass(frozen=True)
class ObligationReport:
    """The served set's obligation names against the registry: `unhandled` ones deny every permit
    that carries them; `unused` handlers are for names the set does not use."""

    handled: list[str]
    unhandled: list[str]
    unused: list[str]

    @property
    def complete(self) -> bool:
        return not self.unhandled


@dataclass
class Obligations:
    """What the application does for each obligation name."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler for obligation `name`."""
        def register(function: Handler) -> Handler:
            self.register(name, function)
            return function

        return register

    def register(self, name: str, function: Handler) -> None:
        if name in self.handlers:
            raise ValueError(f"obligation `{name}` already has a handler")
        self.handlers[name] = function

    def report(self, names: Iterable[str]) -> ObligationReport:
        served = list(dict.fromkeys(names))
        return ObligationReport([n for n in served if n in self.handlers],
                                [n for n in served if n not in self.handlers],
                                [n for n in self.handlers if n not in served])

    async def carry_out(self, decision: Decision, request: Request) -> str | None:
        """Run the handler of every obligation that applies or is undetermined; the reason the
        decision cannot be acted on, or None."""
        for obligation in decision.obligations:
            status, needs = _status(obligation)
            handler = self.handlers.get(obligation.name)
            if handler is None:
                return f"no handler for obligation `{obligation.name}`"
            call = ObligationCall(obligation.name, tuple(obligation.args), status == "undetermined", needs,
                                  decision, request)
            try:
                result = handler(call)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - any failure means the duty was not done
                log.error("obligation %s failed: %r", obligation.name, exc)
                return f"obligation `{obligation.name}` could not be carried out"
        return None


def _status(obligation: Obligation) -> tuple[str, tuple[str, ...]]:
    """An obligation's status and needs, read defensively: anything but `applies` counts as undetermined
    (it still goes to its handler: an undetermined duty is treated as applying)."""
    status = getattr(obligation, "status", "applies") or "applies"
    needs = tuple(getattr(obligation, "needs", ()) or ())
    return ("applies" if status == "applies" else "undetermined"), needs


class Guard:
    """Builds dependencies that decide a route's request before it runs.

    `decider` is a loaded Policy, a PolicyClient or an AsyncPolicyClient;
    `requester(request)` gives the requester part of the decision request
    (`{"role": ..., "agency": ..., "id": ...}`), for instance from the
    session or the identity provider's groups.
    """

    def __init__(self, decider: Any, *, requester: RequestPart, obligations: Obligations | None = None):
        self.decider = decider
        self.requester = requester
        self.obligations = obligations or Obligations()

    def require(self, action: str, purpose: str, *, resource: RequestPart,
                context: RequestPart | None = None) -> Callable[[Request], Awaitable[Decision]]:
        """A dependency deciding `action` for `purpose` on the resource `resource(request)` builds."""
        async def dependency(request: Request) -> Decision:
            body: dict[str, Any] = {
                "requester": dict(await _part(self.requester, request)),
                "action": action,
                "purpose": purpose,
                "resource": dict(await _part(resource, request)),
            }
            if context is not None:
                body["context"] = dict(await _part(context, request))
            decision = await self.decide(body)
            error = getattr(decision, "error", None)  # a client's ErrorDecision: the service did not decide
            if error:
                raise HTTPException(503, {"decision": "deny", "summary": decision.summary, "error": error})
            if not decision.permitted:
                raise HTTPException(403, {"decision": "deny", "summary": decision.summary,
                                          "decision_id": decision.decision_id})
            problem = await self.obligations.carry_out(decision, request)
            if problem is not None:
                raise HTTPException(403, {"decision": "deny", "decision_id": decision.decision_id,
                                          "summary": f"Denied: the permit cannot be acted on ({problem})."})
            return decision

        return dependency

    async def decide(self, body: dict[str, Any]) -> Decision:
        decide = self.decider.decide
        try:
            if inspect.iscoroutinefunction(decide):
                found: Decision = await decide(body)
            elif hasattr(self.decider, "compiled"):  # a loaded Policy: microseconds, on the loop
                found = decide(body)
            else:  # a blocking client: off the loop
                found = await run_in_threadpool(decide, body)
        except RequestError as err:
            raise HTTPException(422, {"field": err.field, "message": err.message}) from None
        return found

    async def obligation_report(self) -> ObligationReport:
        """The served set's obligation names against the handlers; logs the unhandled ones."""
        if hasattr(self.decider, "compiled"):
            names = obligation_names(self.decider)
        else:
            vocabulary = self.decider.vocabulary()
            if inspect.isawaitable(vocabulary):
                vocabulary = await vocabulary
            names = [o["name"] for o in vocabulary.get("obligations", ())]
        report = self.obligations.report(names)
        if report.unhandled:
            log.warning("no handler for obligation%s %s: permits carrying %s will be refused",
                        "s" if len(report.unhandled) > 1 else "", ", ".join(report.unhandled),
                        "them" if len(report.unhandled) > 1 else "it")
        return report


async def _part(builder: RequestPart, request: Request) -> Mapping[str, Any]:
    found = builder(request)
    if inspect.isawaitable(found):
        found = await found
    return found
